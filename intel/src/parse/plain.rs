//! Plain lists (GuardDuty `TXT`): one IP, CIDR or domain a line, `#`/`;` comments, hosts-file
//! lines (`0.0.0.0 name ...`, `127.0.0.1 name ...`) and CSV feeds whose first field is the
//! indicator (Bambenek's `domain,description,date,url`).

use super::lines::{before_comment, for_each_line};
use super::{Collector, Meta};
use crate::indicator::LineProblem;

/// Addresses that hosts-file block lists point names at.
const HOSTS_SINKS: &[&str] = &["0.0.0.0", "127.0.0.1", "::", "::1"];

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    for_each_line(bytes, out, |line, text, out| {
        let text = before_comment(text).trim();
        if text.is_empty() {
            return;
        }
        let first_field = text.split(',').next().unwrap_or("").trim();
        let mut tokens = first_field.split_whitespace();
        let Some(first) = tokens.next() else {
            out.reject(
                line,
                LineProblem::NotAnIndicator {
                    value: super::cut(text),
                },
            );
            return;
        };
        let rest: Vec<&str> = tokens.collect();
        if HOSTS_SINKS.contains(&first) && !rest.is_empty() {
            for name in rest {
                // `127.0.0.1 localhost` and friends are the host's own names, not indicators.
                if !name.contains('.') {
                    out.skip("hosts-file local name");
                    continue;
                }
                out.add_domain(line, name, Meta::default());
            }
        } else if rest.is_empty() {
            out.add_any(line, first, Meta::default());
        } else {
            out.reject(
                line,
                LineProblem::NotAnIndicator {
                    value: super::cut(first_field),
                },
            );
        }
    });
}
