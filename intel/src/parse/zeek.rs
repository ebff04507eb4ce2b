//! Zeek intel framework files: a `#fields` header (`indicator indicator_type meta.source
//! meta.desc ...`) and TAB-separated rows. `Intel::ADDR`, `Intel::SUBNET` and `Intel::DOMAIN` are
//! used; `Intel::URL` gives its host when enabled; other types are counted and skipped.

use super::lines::for_each_line;
use super::{Collector, Meta};
use crate::category::Category;
use crate::indicator::LineProblem;

/// Column positions taken from the `#fields` header.
struct Columns {
    indicator: usize,
    kind: usize,
    source: Option<usize>,
    desc: Option<usize>,
}

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    let mut columns: Option<Columns> = None;
    for_each_line(bytes, out, |line, text, out| {
        if let Some(fields) = text.strip_prefix("#fields") {
            let names: Vec<&str> = fields
                .split('\t')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            let find = |n: &str| names.iter().position(|f| *f == n);
            match (find("indicator"), find("indicator_type")) {
                (Some(indicator), Some(kind)) => {
                    columns = Some(Columns {
                        indicator,
                        kind,
                        source: find("meta.source"),
                        desc: find("meta.desc"),
                    });
                }
                (None, _) => out.reject(line, LineProblem::MissingField { field: "indicator" }),
                (_, None) => out.reject(
                    line,
                    LineProblem::MissingField {
                        field: "indicator_type",
                    },
                ),
            }
            return;
        }
        if text.trim().is_empty() || text.starts_with('#') {
            return;
        }
        let Some(cols) = &columns else {
            out.reject(line, LineProblem::NoFieldsHeader);
            return;
        };
        let fields: Vec<&str> = text.split('\t').map(str::trim).collect();
        // Zeek writes `-` for an unset field.
        let get = |i: usize| {
            fields
                .get(i)
                .copied()
                .filter(|f| !f.is_empty() && *f != "-")
        };
        let Some(value) = get(cols.indicator) else {
            out.reject(line, LineProblem::MissingField { field: "indicator" });
            return;
        };
        let Some(kind) = get(cols.kind) else {
            out.reject(
                line,
                LineProblem::MissingField {
                    field: "indicator_type",
                },
            );
            return;
        };
        let description = cols.desc.and_then(get).unwrap_or("");
        let source = cols.source.and_then(get);
        let category = Category::guess_from_text(description)
            .or_else(|| source.and_then(Category::guess_from_text));
        let meta = Meta {
            category,
            source,
            description,
        };
        match kind {
            "Intel::ADDR" | "Intel::SUBNET" => out.add_address(line, value, meta),
            "Intel::DOMAIN" => out.add_domain(line, value, meta),
            "Intel::URL" => out.add_url(line, value, kind, meta),
            other => out.skip(other),
        }
    });
}
