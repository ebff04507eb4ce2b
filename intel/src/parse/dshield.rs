//! DShield recommended block list: `start<TAB>end<TAB>prefix<TAB>attacks<TAB>name<TAB>country...`
//! with `#` comments and a `Start End Netblock ...` header; start, end and prefix must agree.

use super::lines::for_each_line;
use super::{Collector, Meta};
use crate::indicator::LineProblem;
use ipnet::{IpNet, Ipv4Net};
use std::net::Ipv4Addr;

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    for_each_line(bytes, out, |line, text, out| {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return;
        }
        if trimmed
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("start"))
        {
            return; // column header
        }
        let fields: Vec<&str> = trimmed.split('\t').map(str::trim).collect();
        let get = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
        let (Some(start), Some(end), Some(prefix)) = (get(0), get(1), get(2)) else {
            out.reject(
                line,
                LineProblem::MissingField {
                    field: "start, end and prefix",
                },
            );
            return;
        };
        let Ok(prefix_len) = prefix.parse::<u8>() else {
            let value = super::cut(prefix);
            out.reject(
                line,
                LineProblem::BadNumber {
                    field: "prefix",
                    value,
                    expected: "0..=32",
                },
            );
            return;
        };
        let (Ok(s), Ok(e)) = (start.parse::<Ipv4Addr>(), end.parse::<Ipv4Addr>()) else {
            out.reject(
                line,
                LineProblem::BadAddress {
                    value: super::cut(&format!("{start}-{end}")),
                },
            );
            return;
        };
        let net = Ipv4Net::new(s, prefix_len)
            .ok()
            .filter(|n| n.network() == s && n.broadcast() == e);
        let Some(net) = net else {
            let problem = LineProblem::RangeMismatch {
                start: super::cut(start),
                end: super::cut(end),
                prefix: prefix_len,
            };
            out.reject(line, problem);
            return;
        };
        let description = match (get(4), get(5)) {
            (Some(name), Some(cc)) => format!("{name} ({cc})"),
            (Some(name), None) => name.to_owned(),
            (None, Some(cc)) => cc.to_owned(),
            (None, None) => String::new(),
        };
        out.add_net(line, IpNet::V4(net), Meta::described(&description));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::ListKind;
    use crate::parse::ListOptions;

    #[test]
    fn a_short_line_starting_with_multibyte_text_is_rejected_not_a_panic() {
        // Found by the parser property test: the header check sliced inside a character.
        let opts = ListOptions::new("d", ListKind::Threat);
        let mut out = Collector::new("d", &opts);
        parse("ORéé#fields\n".as_bytes(), &mut out);
        assert_eq!(out.finish().rejected.len(), 1);
    }
}
