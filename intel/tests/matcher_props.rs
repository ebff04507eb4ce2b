//! Property test: the compiled matcher agrees with a naive reference (scan every entry) on
//! random sets of addresses, networks and names, threat and trusted.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use picket_intel::reserved::range_of;
use picket_intel::{
    Category, Indicator, IndicatorValue, ListKind, MatchedValue, ParsedList, Snapshot,
    SnapshotBuilder, Verdict,
};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a verdict says, reduced to what the reference can compute: kind and matched value.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Threat(String),
    Trusted(String),
    None,
}

fn seen(v: Verdict<'_>) -> Seen {
    let text = |m: MatchedValue<'_>| match m {
        MatchedValue::Net(n) => n.to_string(),
        MatchedValue::Domain(d) => d.to_owned(),
    };
    match v {
        Verdict::Threat(h) => Seen::Threat(text(h.indicator)),
        Verdict::Trusted(h) => Seen::Trusted(text(h.indicator)),
        Verdict::NoMatch => Seen::None,
    }
}

/// Entries drawn from a few crowded regions so that networks nest, overlap and repeat, with
/// some inside special-purpose ranges.
fn v4_net() -> impl Strategy<Value = IpNet> {
    (
        prop::sample::select(vec![1u8, 8, 10, 45, 192, 203]),
        any::<u16>(),
        any::<u8>(),
        8u8..=32,
    )
        .prop_map(|(a, bc, d, len)| {
            let [b, c] = bc.to_be_bytes();
            let addr = Ipv4Addr::new(a, b & 0x0f, c, d);
            IpNet::V4(Ipv4Net::new(addr, len).expect("len <= 32").trunc())
        })
}

fn v6_net() -> impl Strategy<Value = IpNet> {
    (
        prop::sample::select(vec![0x2a06u16, 0x2001, 0xfd00]),
        any::<u16>(),
        any::<u16>(),
        16u8..=128,
    )
        .prop_map(|(a, b, h, len)| {
            let addr = Ipv6Addr::new(a, b & 0x000f, 0, 0, 0, 0, 0, h & 0x00ff);
            IpNet::V6(Ipv6Net::new(addr, len).expect("len <= 128").trunc())
        })
}

fn name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "xn--bcher-kva"]),
            // Past eight labels the lookup checks suffixes in more than one batch.
            1..12,
        ),
        prop::sample::select(vec!["com", "net"]),
    )
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

fn entry() -> impl Strategy<Value = IndicatorValue> {
    prop_oneof![
        v4_net().prop_map(IndicatorValue::Net),
        v6_net().prop_map(IndicatorValue::Net),
        name().prop_map(IndicatorValue::Domain),
    ]
}

fn parsed(name: &str, kind: ListKind, values: &[IndicatorValue]) -> ParsedList {
    let mut list = ParsedList::new(name, kind);
    list.indicators = values
        .iter()
        .map(|v| Indicator {
            value: v.clone(),
            category: Category::Custom,
            source: "prop".into(),
            description: String::new(),
            line: 0,
        })
        .collect();
    list
}

/// The reference: scan everything. Special-purpose addresses never match; any trusted entry
/// wins (the longest); otherwise the longest threat entry.
fn reference_ip(threat: &[IndicatorValue], trusted: &[IndicatorValue], ip: IpAddr) -> Seen {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if range_of(ip).is_some() {
        return Seen::None;
    }
    let best = |set: &[IndicatorValue]| {
        set.iter()
            .filter_map(|v| match v {
                IndicatorValue::Net(n) if n.contains(&ip) => Some(*n),
                _ => None,
            })
            .max_by_key(|n| n.prefix_len())
    };
    if let Some(n) = best(trusted) {
        Seen::Trusted(n.to_string())
    } else if let Some(n) = best(threat) {
        Seen::Threat(n.to_string())
    } else {
        Seen::None
    }
}

/// Names: the query and each parent; the shortest trusted parent wins (the walk meets it first),
/// else the longest threat.
fn reference_name(threat: &[IndicatorValue], trusted: &[IndicatorValue], q: &str) -> Seen {
    let q = q.trim_end_matches('.').to_ascii_lowercase();
    let listed = |set: &[IndicatorValue], s: &str| {
        set.iter()
            .any(|v| matches!(v, IndicatorValue::Domain(d) if d == s))
    };
    let mut suffixes: Vec<&str> = vec![q.as_str()];
    suffixes.extend(q.match_indices('.').map(|(i, _)| &q[i + 1..]));
    if let Some(s) = suffixes.iter().rev().find(|s| listed(trusted, s)) {
        return Seen::Trusted((*s).to_owned());
    }
    match suffixes.iter().find(|s| listed(threat, s)) {
        Some(s) => Seen::Threat((*s).to_owned()),
        None => Seen::None,
    }
}

fn build(threat: &[IndicatorValue], trusted: &[IndicatorValue]) -> Snapshot {
    let mut b = SnapshotBuilder::new();
    b.add_list(parsed("threat", ListKind::Threat, threat));
    b.add_list(parsed("trusted", ListKind::Trusted, trusted));
    b.build(1).expect("build")
}

/// Query addresses: the listed networks' first and last addresses and their neighbours, plus
/// random ones in the same regions.
fn probes(values: &[IndicatorValue], extra: &[IpNet]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for v in values {
        if let IndicatorValue::Net(n) = v {
            let (lo, hi) = (n.network(), n.broadcast());
            out.extend([lo, hi]);
            match (lo, hi) {
                (IpAddr::V4(l), IpAddr::V4(h)) => {
                    out.push(IpAddr::V4(Ipv4Addr::from(u32::from(l).wrapping_sub(1))));
                    out.push(IpAddr::V4(Ipv4Addr::from(u32::from(h).wrapping_add(1))));
                    out.push(IpAddr::V6(l.to_ipv6_mapped()));
                }
                (IpAddr::V6(l), IpAddr::V6(h)) => {
                    out.push(IpAddr::V6(Ipv6Addr::from(u128::from(l).wrapping_sub(1))));
                    out.push(IpAddr::V6(Ipv6Addr::from(u128::from(h).wrapping_add(1))));
                }
                _ => {}
            }
        }
    }
    out.extend(extra.iter().map(|n| n.addr()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_matcher_agrees_with_a_naive_scan(
        threat in prop::collection::vec(entry(), 0..40),
        trusted in prop::collection::vec(entry(), 0..8),
        extra_ips in prop::collection::vec(prop_oneof![v4_net(), v6_net()], 0..30),
        names in prop::collection::vec((name(), any::<bool>(), any::<bool>()), 0..30),
    ) {
        let snap = build(&threat, &trusted);
        let mut all = threat.clone();
        all.extend(trusted.iter().cloned());
        for ip in probes(&all, &extra_ips) {
            prop_assert_eq!(seen(snap.lookup_ip(ip)), reference_ip(&threat, &trusted, ip), "ip {}", ip);
        }
        let listed = all.iter().filter_map(|v| match v {
            IndicatorValue::Domain(d) => Some((format!("x.{d}"), false, false)),
            IndicatorValue::Net(_) => None,
        });
        for (q, upper, dot) in names.into_iter().chain(listed) {
            let mut q = if upper { q.to_ascii_uppercase() } else { q };
            if dot {
                q.push('.');
            }
            prop_assert_eq!(seen(snap.lookup_domain(&q)), reference_name(&threat, &trusted, &q), "name {}", q);
        }
    }

    #[test]
    fn decoding_an_encoding_gives_the_same_answers(
        threat in prop::collection::vec(entry(), 0..30),
        trusted in prop::collection::vec(entry(), 0..5),
    ) {
        let snap = build(&threat, &trusted);
        let back = Snapshot::from_bytes(&snap.to_bytes()).expect("own encoding decodes");
        prop_assert_eq!(back.content_hash(), snap.content_hash());
        let mut all = threat.clone();
        all.extend(trusted.iter().cloned());
        for ip in probes(&all, &[]) {
            prop_assert_eq!(back.lookup_ip(ip), snap.lookup_ip(ip));
        }
        for v in &all {
            if let IndicatorValue::Domain(d) = v {
                prop_assert_eq!(back.lookup_domain(d), snap.lookup_domain(d));
            }
        }
    }
}
