//! FireEye iSIGHT threat intelligence CSV (GuardDuty `FIRE_EYE`): a header row naming columns
//! (`reportId, title, threatScape, ..., cidr, domain, ..., ip, ..., url, malwareFamily, ...`);
//! each row contributes every network indicator column it fills.

use super::csv_records::for_each_record;
use super::{Collector, Meta};
use crate::category::Category;
use crate::indicator::LineProblem;

/// What a header column holds.
#[derive(Clone, Copy)]
enum Column {
    Address,
    Domain,
    Url,
}

fn column_kind(name: &str) -> Option<Column> {
    match name {
        "ip" | "sourceip" | "cidr" => Some(Column::Address),
        "domain" | "sourcedomain" => Some(Column::Domain),
        "url" => Some(Column::Url),
        _ => None,
    }
}

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    let mut header: Option<Vec<String>> = None;
    for_each_record(bytes, out, |line, rec, out| {
        let Some(cols) = &header else {
            let cols: Vec<String> = rec.iter().map(str::to_ascii_lowercase).collect();
            if cols.iter().any(|c| column_kind(c).is_some()) {
                header = Some(cols);
            } else {
                out.reject(
                    line,
                    LineProblem::MissingField {
                        field: "header with ip/domain/url columns",
                    },
                );
            }
            return;
        };
        let field = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .and_then(|i| rec.get(i))
                .filter(|v| !v.is_empty())
        };
        let description = field("title")
            .or_else(|| field("malwarefamily"))
            .unwrap_or("");
        let category = Category::guess_from_text(description)
            .or_else(|| field("malwarefamily").and_then(Category::guess_from_text));
        let meta = Meta {
            category,
            ..Meta::described(description)
        };
        let mut found = false;
        for (i, name) in cols.iter().enumerate() {
            let (Some(kind), Some(value)) =
                (column_kind(name), rec.get(i).filter(|v| !v.is_empty()))
            else {
                continue;
            };
            found = true;
            match kind {
                Column::Address => out.add_address(line, value, meta),
                Column::Domain => out.add_domain(line, value, meta),
                Column::Url => out.add_url(line, value, "fireeye:url", meta),
            }
        }
        if !found {
            out.skip("fireeye:no network indicator");
        }
    });
}
