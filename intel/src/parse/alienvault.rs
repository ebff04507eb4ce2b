//! AlienVault reputation (GuardDuty `ALIEN_VAULT`):
//! `ip#risk#reliability#activity#country#city#lat,long#x`.

use super::lines::for_each_line;
use super::{Collector, Meta};
use crate::category::Category;
use crate::indicator::LineProblem;

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    for_each_line(bytes, out, |line, text, out| {
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return;
        }
        let fields: Vec<&str> = text.split('#').map(str::trim).collect();
        let ip = fields.first().copied().unwrap_or("");
        for (i, name) in [(1, "risk"), (2, "reliability")] {
            let value = fields.get(i).copied().unwrap_or("");
            if value.is_empty() {
                out.reject(line, LineProblem::MissingField { field: name });
                return;
            }
            if value.parse::<u8>().is_err() {
                let value = super::cut(value);
                out.reject(
                    line,
                    LineProblem::BadNumber {
                        field: name,
                        value,
                        expected: "0..=255",
                    },
                );
                return;
            }
        }
        let Some(activity) = fields.get(3).copied().filter(|a| !a.is_empty()) else {
            out.reject(line, LineProblem::MissingField { field: "activity" });
            return;
        };
        let meta = Meta {
            category: Category::guess_from_text(activity),
            ..Meta::described(activity)
        };
        out.add_address(line, ip, meta);
    });
}
