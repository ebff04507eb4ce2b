//! Text for people: what `intel check` says about each value and what `intel stats` counts.

use std::fmt::Write;
use std::net::IpAddr;

use picket_intel::{Hit, MatchedValue, ParsedList, Snapshot, Verdict};

/// Rejected lines printed by `intel stats`; the rest are counted.
pub const MAX_PRINTED_REJECTIONS: usize = 100;

fn describe(hit: &Hit<'_>) -> String {
    let entry = match hit.indicator {
        MatchedValue::Net(net) => net.to_string(),
        MatchedValue::Domain(d) => d.to_owned(),
    };
    let mut s = format!(
        "list {}, entry {entry}, category {}, source {}",
        hit.list,
        hit.category.wire_name(),
        hit.source
    );
    if !hit.description.is_empty() {
        let _ = write!(s, ", description {:?}", hit.description);
    }
    s
}

/// One line per value: threat (with the finding type it leads to), trusted, or no match.
pub fn check(snapshot: &Snapshot, values: &[String]) -> String {
    let mut out = String::new();
    for value in values {
        let verdict = match value.parse::<IpAddr>() {
            Ok(ip) => snapshot.lookup_ip(ip),
            Err(_) => snapshot.lookup_domain(value),
        };
        let _ = match verdict {
            Verdict::Threat(hit) => writeln!(
                out,
                "{value}: threat: {}; finding {}",
                describe(&hit),
                hit.finding_type().map_or(
                    "none (scanner entries are context for port-probe findings)",
                    |f| f.as_str()
                )
            ),
            Verdict::Trusted(hit) => {
                writeln!(out, "{value}: trusted: {}; never a finding", describe(&hit))
            }
            Verdict::NoMatch => writeln!(out, "{value}: no match"),
        };
    }
    out
}

/// Counts per list (by kind of indicator and category) and overall, then the rejected lines.
pub fn stats(snapshot: &Snapshot, lists: &[ParsedList]) -> String {
    let stats = snapshot.stats();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}  CATEGORIES",
        "LIST", "KIND", "IPV4", "IPV6", "CIDR", "DOMAIN", "TOTAL", "REJECTED", "IGNORED", "SKIPPED"
    );
    for l in &stats.lists {
        let cats: Vec<String> = l
            .by_category
            .iter()
            .map(|(c, n)| format!("{}={n}", c.wire_name()))
            .collect();
        let kind: &'static str = l.kind.into();
        let _ = writeln!(
            out,
            "{:<32} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}  {}",
            l.name,
            kind,
            l.by_kind.ipv4,
            l.by_kind.ipv6,
            l.by_kind.cidr,
            l.by_kind.domain,
            l.by_kind.total(),
            l.rejected,
            l.ignored,
            l.skipped,
            if cats.is_empty() {
                "-".to_owned()
            } else {
                cats.join(",")
            }
        );
    }
    let k = stats.by_kind();
    let _ = writeln!(
        out,
        "total: {} indicators (ipv4={} ipv6={} cidr={} domain={}), {} rejected lines, version {}, content hash {}",
        k.total(),
        k.ipv4,
        k.ipv6,
        k.cidr,
        k.domain,
        stats.rejected(),
        snapshot.version(),
        snapshot.content_hash_hex()
    );
    let cats: Vec<String> = stats
        .by_category()
        .iter()
        .map(|(c, n)| format!("{}={n}", c.wire_name()))
        .collect();
    let _ = writeln!(
        out,
        "by category: {}",
        if cats.is_empty() {
            "-".to_owned()
        } else {
            cats.join(" ")
        }
    );
    let rejected: Vec<_> = lists.iter().flat_map(|l| &l.rejected).collect();
    if !rejected.is_empty() {
        let _ = writeln!(out, "rejected lines:");
        for issue in rejected.iter().take(MAX_PRINTED_REJECTIONS) {
            let _ = writeln!(out, "  {issue}");
        }
        if rejected.len() > MAX_PRINTED_REJECTIONS {
            let _ = writeln!(
                out,
                "  … and {} more",
                rejected.len() - MAX_PRINTED_REJECTIONS
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_intel::{ListKind, ListOptions, SnapshotBuilder, canary_list, parse_list};

    fn snapshot() -> (Snapshot, Vec<ParsedList>) {
        let threat = parse_list(
            "t.txt",
            b"93.184.216.0/24\nbad.example\n!!\n",
            &ListOptions::new("t", ListKind::Threat),
        )
        .unwrap();
        let trusted = parse_list(
            "ok.txt",
            b"93.184.216.7\n",
            &ListOptions::new("ok", ListKind::Trusted),
        )
        .unwrap();
        let lists = vec![threat, trusted, canary_list()];
        let mut b = SnapshotBuilder::new();
        for l in lists.clone() {
            b.add_list(l);
        }
        (b.build(3).unwrap(), lists)
    }

    #[test]
    fn check_names_list_entry_category_and_finding_or_says_trusted_or_no_match() {
        let (s, _) = snapshot();
        let out = check(
            &s,
            &[
                "www.guarddutyc2activityb.com".into(),
                "93.184.216.9".into(),
                "93.184.216.7".into(),
                "good.example".into(),
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("www.guarddutyc2activityb.com: threat: list picket-canary, entry guarddutyc2activityb.com, category c2"), "{out}");
        assert!(
            lines[0].ends_with("finding Backdoor:EC2/C&CActivity.B!DNS"),
            "{out}"
        );
        assert!(
            lines[1].contains("threat: list t, entry 93.184.216.0/24, category custom"),
            "{out}"
        );
        assert!(
            lines[1].ends_with("finding UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("93.184.216.7: trusted: list ok"),
            "{out}"
        );
        assert_eq!(lines[3], "good.example: no match");
    }

    #[test]
    fn stats_counts_each_list_and_prints_its_rejected_lines() {
        let (s, lists) = snapshot();
        let out = stats(&s, &lists);
        let t = out.lines().find(|l| l.starts_with("t ")).unwrap();
        let cols: Vec<&str> = t.split_whitespace().collect();
        assert_eq!(
            cols[..10],
            ["t", "threat", "0", "0", "1", "1", "2", "1", "0", "0"],
            "{out}"
        );
        assert!(out.contains("total: 9 indicators"), "{out}");
        assert!(out.contains("rejected lines:\n  t.txt:3: "), "{out}");
    }
}
