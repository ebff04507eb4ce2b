//! Spamhaus DROP/EDROP: `CIDR ; SBL123` lines with `;` comments, or the JSON-lines form
//! (`{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}`, plus one metadata line).

use super::lines::for_each_line;
use super::{Collector, Meta};
use crate::indicator::LineProblem;

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    for_each_line(bytes, out, |line, text, out| {
        let text = text.trim();
        if text.is_empty() || text.starts_with(';') || text.starts_with('#') {
            return;
        }
        if text.starts_with('{') {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                out.reject(
                    line,
                    LineProblem::NotAnIndicator {
                        value: super::cut(text),
                    },
                );
                return;
            };
            let Some(cidr) = v.get("cidr").and_then(|c| c.as_str()) else {
                // The metadata record (`{"type":"metadata",...}`) carries no network.
                return;
            };
            let sbl = v.get("sblid").and_then(|s| s.as_str()).unwrap_or("");
            out.add_address(line, cidr, Meta::described(sbl));
            return;
        }
        let (cidr, sbl) = text.split_once(';').unwrap_or((text, ""));
        out.add_address(line, cidr.trim(), Meta::described(sbl.trim()));
    });
}
