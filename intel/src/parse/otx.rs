//! AlienVault OTX CSV export (GuardDuty `OTX_CSV`): a header `Indicator type,Indicator,Description`
//! and rows such as `IPv4,192.0.2.1,scanner` or `domain,evil.example,C2`.

use super::csv_records::for_each_record;
use super::{Collector, Meta};
use crate::category::Category;
use crate::indicator::LineProblem;

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    // Column positions; a header row may reorder them.
    let mut cols = (0usize, 1usize, 2usize);
    for_each_record(bytes, out, |line, rec, out| {
        let lower: Vec<String> = rec.iter().map(str::to_ascii_lowercase).collect();
        if lower.iter().any(|f| f == "indicator type") {
            let find = |n: &str, d: usize| lower.iter().position(|f| f == n).unwrap_or(d);
            cols = (
                find("indicator type", 0),
                find("indicator", 1),
                find("description", 2),
            );
            return;
        }
        if rec.iter().all(str::is_empty) {
            return;
        }
        let kind = lower.get(cols.0).map(String::as_str).unwrap_or("");
        let Some(value) = rec.get(cols.1).filter(|v| !v.is_empty()) else {
            out.reject(line, LineProblem::MissingField { field: "indicator" });
            return;
        };
        let description = rec.get(cols.2).unwrap_or("");
        let meta = Meta {
            category: Category::guess_from_text(description),
            ..Meta::described(description)
        };
        match kind {
            "ipv4" | "ipv6" | "cidr" => out.add_address(line, value, meta),
            "domain" | "hostname" => out.add_domain(line, value, meta),
            "url" => out.add_url(line, value, "otx:url", meta),
            "" => out.reject(
                line,
                LineProblem::MissingField {
                    field: "indicator type",
                },
            ),
            other => out.skip(&format!("otx:{other}")),
        }
    });
}
