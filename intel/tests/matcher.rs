//! Lookups through a compiled snapshot: longest prefix, suffix matching, normalisation,
//! trusted beats threat, special-purpose addresses, the canary list, hashes and stats.

use picket_intel::{
    BuildError, Category, FindingType, Indicator, IndicatorValue, ListKind, ListOptions,
    MatchedValue, ParsedList, Snapshot, SnapshotBuilder, Verdict, canary_list, parse_list,
};
use std::net::IpAddr;

fn list(name: &str, kind: ListKind, category: Category, values: &[&str]) -> ParsedList {
    let opts = ListOptions::new(name, kind).category(category);
    let text = values.join("\n");
    let parsed = parse_list(
        name,
        text.as_bytes(),
        &opts.format(picket_intel::ListFormat::Plain),
    )
    .expect("plain lists always parse");
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    parsed
}

fn build(lists: Vec<ParsedList>) -> Snapshot {
    let mut b = SnapshotBuilder::new();
    for l in lists {
        b.add_list(l);
    }
    b.build(1).expect("build")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn matched_net(snap: &Snapshot, addr: &str) -> Option<String> {
    snap.match_ip(ip(addr)).map(|h| match h.indicator {
        MatchedValue::Net(n) => n.to_string(),
        MatchedValue::Domain(d) => d.to_owned(),
    })
}

fn matched_name(snap: &Snapshot, name: &str) -> Option<String> {
    snap.match_domain(name).map(|h| match h.indicator {
        MatchedValue::Net(n) => n.to_string(),
        MatchedValue::Domain(d) => d.to_owned(),
    })
}

#[test]
fn the_longest_prefix_wins_and_host_bits_are_masked() {
    let snap = build(vec![list(
        "c2",
        ListKind::Threat,
        Category::C2,
        &[
            "45.0.0.0/8",
            "45.95.19.77/24",
            "45.95.19.50",
            "2a06:e480::/29",
            "2a06:e480::1",
        ],
    )]);
    assert_eq!(
        matched_net(&snap, "45.95.19.50").as_deref(),
        Some("45.95.19.50/32")
    );
    assert_eq!(
        matched_net(&snap, "45.95.19.51").as_deref(),
        Some("45.95.19.0/24")
    );
    assert_eq!(
        matched_net(&snap, "45.1.1.1").as_deref(),
        Some("45.0.0.0/8")
    );
    assert_eq!(matched_net(&snap, "46.0.0.0"), None);
    assert_eq!(
        matched_net(&snap, "2a06:e480::1").as_deref(),
        Some("2a06:e480::1/128")
    );
    assert_eq!(
        matched_net(&snap, "2a06:e487:ffff::1").as_deref(),
        Some("2a06:e480::/29")
    );
    assert_eq!(matched_net(&snap, "2a06:e488::"), None);
}

#[test]
fn ipv4_mapped_ipv6_addresses_match_ipv4_entries() {
    let snap = build(vec![list(
        "c2",
        ListKind::Threat,
        Category::C2,
        &["45.95.19.50"],
    )]);
    assert!(snap.match_ip(ip("::ffff:45.95.19.50")).is_some());
    assert!(snap.match_ip(ip("::ffff:45.95.19.51")).is_none());
}

#[test]
fn a_hit_carries_list_category_source_description_and_finding_type() {
    let opts = ListOptions::new("zeek-c2", ListKind::Threat).format(picket_intel::ListFormat::Zeek);
    let text = b"#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n\
                 45.95.19.50\tIntel::ADDR\tfeodo\tC2 server\n\
                 evil.example\tIntel::DOMAIN\tfeodo\tC2 name\n";
    let parsed = parse_list("zeek-c2", text, &opts).expect("parse");
    let snap = build(vec![parsed]);
    let hit = snap.match_ip(ip("45.95.19.50")).expect("listed address");
    assert_eq!(hit.list, "zeek-c2");
    assert_eq!(hit.list_kind, ListKind::Threat);
    assert_eq!(hit.category, Category::C2);
    assert_eq!(hit.source, "feodo");
    assert_eq!(hit.description, "C2 server");
    assert_eq!(
        hit.finding_type().map(FindingType::as_str),
        Some("Backdoor:EC2/C&CActivity.B")
    );
    let hit = snap
        .match_domain("www.evil.example")
        .expect("listed parent name");
    assert_eq!(hit.indicator, MatchedValue::Domain("evil.example"));
    assert_eq!(hit.finding_type(), Some(FindingType::C2Dns));
}

#[test]
fn trusted_addresses_never_yield_threat_matches() {
    let snap = build(vec![
        list(
            "threats",
            ListKind::Threat,
            Category::C2,
            &["45.95.19.50", "45.95.20.0/24", "8.8.8.8"],
        ),
        list(
            "ours",
            ListKind::Trusted,
            Category::Custom,
            &["45.95.0.0/16", "8.8.8.8"],
        ),
    ]);
    assert_eq!(snap.match_ip(ip("45.95.19.50")), None);
    assert_eq!(snap.match_ip(ip("45.95.20.9")), None);
    assert_eq!(snap.match_ip(ip("8.8.8.8")), None);
    assert!(matches!(snap.lookup_ip(ip("45.95.19.50")), Verdict::Trusted(h) if h.list == "ours"));
    assert!(matches!(snap.lookup_ip(ip("8.8.8.8")), Verdict::Trusted(_)));
    assert_eq!(snap.lookup_ip(ip("9.9.9.9")), Verdict::NoMatch);
}

#[test]
fn trusted_names_never_yield_threat_matches() {
    let snap = build(vec![
        list(
            "threats",
            ListKind::Threat,
            Category::Phishing,
            &["login.corp.example", "bad.example"],
        ),
        list(
            "ours",
            ListKind::Trusted,
            Category::Custom,
            &["corp.example", "bad.example"],
        ),
    ]);
    assert_eq!(snap.match_domain("login.corp.example"), None);
    assert_eq!(snap.match_domain("x.login.corp.example"), None);
    assert_eq!(snap.match_domain("bad.example"), None);
    assert!(matches!(
        snap.lookup_domain("a.bad.example"),
        Verdict::Trusted(_)
    ));
}

#[test]
fn names_with_many_labels_or_past_the_length_limit_still_match_their_listed_parents() {
    let snap = build(vec![
        list(
            "threats",
            ListKind::Threat,
            Category::C2,
            &["bad.example", "c.d.e.f.g.h.i.j.bad.example"],
        ),
        list("ours", ListKind::Trusted, Category::Custom, &["ok.example"]),
    ]);
    // Eleven labels: the suffixes are looked up in two batches; the longer listed name is in
    // the second and wins as the more specific one.
    let deep = "a.b.c.d.e.f.g.h.i.j.bad.example";
    assert_eq!(
        matched_name(&snap, deep).as_deref(),
        Some("c.d.e.f.g.h.i.j.bad.example")
    );
    assert_eq!(
        matched_name(&snap, "x.y.z.e.f.g.h.i.j.bad.example").as_deref(),
        Some("bad.example")
    );
    // A trusted parent beats a threat sub-name however many labels lie between.
    let trusted_deep = format!("{}.ok.example", "l.".repeat(20).trim_end_matches('.'));
    assert!(matches!(
        snap.lookup_domain(&trusted_deep),
        Verdict::Trusted(_)
    ));
    // Longer than any DNS name: the parent names that could be listed still match.
    let long = format!("{}.bad.example", "x".repeat(60).repeat(5));
    assert_eq!(matched_name(&snap, &long).as_deref(), Some("bad.example"));
    let long_labels = format!("{}bad.example", "abcdefgh.".repeat(40));
    assert_eq!(
        matched_name(&snap, &long_labels).as_deref(),
        Some("bad.example")
    );
    assert_eq!(matched_name(&snap, "example"), None);
    assert_eq!(
        matched_name(&snap, ".bad.example"),
        Some("bad.example".to_owned())
    );
}

#[test]
fn special_purpose_addresses_never_match_even_inside_a_listed_network() {
    let mut loaded = list(
        "broad",
        ListKind::Threat,
        Category::Custom,
        &["192.0.0.0/8"],
    );
    // A list built by hand (not parsed) can still carry a private entry; the matcher ignores it.
    loaded.indicators.push(Indicator {
        value: IndicatorValue::Net("127.0.0.1/32".parse().expect("net")),
        category: Category::C2,
        source: "hand".into(),
        description: String::new(),
        line: 0,
    });
    let snap = build(vec![loaded]);
    assert!(snap.match_ip(ip("192.1.2.3")).is_some());
    assert_eq!(snap.match_ip(ip("192.168.1.1")), None);
    assert_eq!(snap.match_ip(ip("192.0.2.1")), None);
    assert!(snap.match_ip(ip("192.0.3.0")).is_some());
    assert_eq!(snap.match_ip(ip("127.0.0.1")), None);
}

#[test]
fn private_entries_in_a_threat_list_are_ignored_with_their_line() {
    let opts = ListOptions::new("feed", ListKind::Threat);
    let parsed = parse_list(
        "feed.txt",
        b"127.0.0.1\n10.1.2.3\n45.95.19.50\nfd00::1\n",
        &opts,
    )
    .expect("parse");
    let lines: Vec<u32> = parsed.ignored.iter().map(|i| i.line).collect();
    assert_eq!(lines, [1, 2, 4]);
    assert_eq!(
        parsed.ignored[0].to_string(),
        "feed.txt:1: `127.0.0.1` is in the loopback range and is ignored"
    );
    let snap = build(vec![parsed]);
    assert_eq!(snap.indicator_count(), 1);
    assert_eq!(snap.stats().lists[0].ignored, 3);
}

#[test]
fn a_listed_name_matches_itself_and_its_sub_names_only() {
    let snap = build(vec![list(
        "d",
        ListKind::Threat,
        Category::C2,
        &["evil.example"],
    )]);
    assert!(snap.match_domain("evil.example").is_some());
    assert!(snap.match_domain("a.b.evil.example").is_some());
    assert_eq!(snap.match_domain("notevil.example"), None);
    assert_eq!(snap.match_domain("evil.example.org"), None);
    assert_eq!(snap.match_domain("example"), None);
    assert_eq!(snap.match_domain(""), None);
    assert_eq!(snap.match_domain("."), None);
}

#[test]
fn the_most_specific_listed_name_wins() {
    let snap = build(vec![
        list("c2", ListKind::Threat, Category::C2, &["evil.example"]),
        list(
            "phish",
            ListKind::Threat,
            Category::Phishing,
            &["login.evil.example"],
        ),
    ]);
    let hit = snap.match_domain("a.login.evil.example").expect("listed");
    assert_eq!(hit.category, Category::Phishing);
    assert_eq!(
        snap.match_domain("other.evil.example").map(|h| h.category),
        Some(Category::C2)
    );
}

#[test]
fn case_trailing_dots_and_punycode_are_normalised_on_both_sides() {
    let snap = build(vec![list(
        "d",
        ListKind::Threat,
        Category::C2,
        &["Bücher.Example.", "EVIL.example"],
    )]);
    assert_eq!(
        matched_name(&snap, "xn--bcher-kva.example").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(
        matched_name(&snap, "WWW.XN--BCHER-KVA.EXAMPLE.").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(
        matched_name(&snap, "www.bücher.example").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(
        matched_name(&snap, "Mail.Evil.Example.").as_deref(),
        Some("evil.example")
    );
    assert_eq!(matched_name(&snap, "bucher.example"), None);
}

#[test]
fn the_canary_list_matches_the_guardduty_tester_names_and_their_sub_names() {
    let snap = build(vec![canary_list()]);
    let cases = [
        ("guarddutyc2activityb.com", "Backdoor:EC2/C&CActivity.B!DNS"),
        (
            "x.guarddutydroppointactivity.com",
            "Trojan:EC2/DropPoint!DNS",
        ),
        (
            "GuardDutyBlackholeActivity.com.",
            "Trojan:EC2/BlackholeTraffic!DNS",
        ),
        (
            "a.b.guarddutyphishingactivity.com",
            "Trojan:EC2/PhishingDomainRequest!DNS",
        ),
        (
            "guarddutydrivebyactivity.com",
            "Trojan:EC2/DriveBySourceTraffic!DNS",
        ),
        (
            "guarddutydgaactivity.com",
            "Trojan:EC2/DGADomainRequest.C!DNS",
        ),
    ];
    for (name, want) in cases {
        let hit = snap
            .match_domain(name)
            .unwrap_or_else(|| panic!("{name} should match"));
        assert_eq!(
            hit.finding_type().map(FindingType::as_str),
            Some(want),
            "{name}"
        );
        assert_eq!(hit.list, "picket-canary");
    }
    assert_eq!(snap.match_domain("guardduty.com"), None);
}

#[test]
fn the_content_hash_ignores_list_order_and_version_but_not_content() {
    let a = || {
        list(
            "a",
            ListKind::Threat,
            Category::C2,
            &["45.95.19.50", "evil.example"],
        )
    };
    let b = || list("b", ListKind::Trusted, Category::Custom, &["8.8.8.8"]);
    let mut one = SnapshotBuilder::new();
    one.add_list(a()).add_list(b());
    let mut two = SnapshotBuilder::new();
    two.add_list(b()).add_list(a());
    let (one, two) = (one.build(1).expect("build"), two.build(7).expect("build"));
    assert_eq!(one.content_hash(), two.content_hash());
    assert_eq!(one.version(), 1);
    assert_eq!(two.version(), 7);
    let three = build(vec![
        a(),
        list("b", ListKind::Trusted, Category::Custom, &["8.8.4.4"]),
    ]);
    assert_ne!(one.content_hash(), three.content_hash());
    assert_eq!(one.content_hash_hex().len(), 64);
}

#[test]
fn two_lists_with_one_name_are_refused() {
    let mut b = SnapshotBuilder::new();
    b.add_list(list("same", ListKind::Threat, Category::C2, &["1.1.1.1"]));
    b.add_list(list("same", ListKind::Trusted, Category::C2, &["1.1.1.2"]));
    assert_eq!(
        b.build(1).err(),
        Some(BuildError::DuplicateList {
            name: "same".into()
        })
    );
}

#[test]
fn stats_count_per_list_kind_and_category_with_rejections() {
    let opts = ListOptions::new("mixed", ListKind::Threat).category(Category::Crypto);
    let parsed = parse_list(
        "mixed.txt",
        b"45.95.19.50\n45.95.20.0/24\n2a06:e480::1\n2a06:e480::/29\npool.example\nbogus line here\n",
        &opts,
    )
    .expect("parse");
    let snap = build(vec![parsed, canary_list()]);
    let stats = snap.stats();
    assert_eq!(stats.lists.len(), 2);
    let mixed = stats
        .lists
        .iter()
        .find(|l| l.name == "mixed")
        .expect("mixed list");
    assert_eq!(
        (
            mixed.by_kind.ipv4,
            mixed.by_kind.ipv6,
            mixed.by_kind.cidr,
            mixed.by_kind.domain
        ),
        (1, 1, 2, 1)
    );
    assert_eq!(mixed.by_category.get(&Category::Crypto), Some(&5));
    assert_eq!(mixed.rejected, 1);
    assert_eq!(stats.by_kind().domain, 7);
    assert_eq!(stats.by_category().get(&Category::Dga), Some(&1));
    assert_eq!(stats.rejected(), 1);
}

#[test]
fn a_name_on_both_lists_is_trusted_whichever_list_name_sorts_first() {
    // Found by the property test: with the threat list sorting first, the table once kept the
    // threat row for a name that was also trusted.
    for (threat_name, trusted_name) in [("a-threats", "z-trusted"), ("z-threats", "a-trusted")] {
        let snap = build(vec![
            list(
                threat_name,
                ListKind::Threat,
                Category::C2,
                &["both.example"],
            ),
            list(
                trusted_name,
                ListKind::Trusted,
                Category::Custom,
                &["both.example"],
            ),
        ]);
        assert_eq!(snap.match_domain("both.example"), None, "{threat_name}");
        assert_eq!(snap.match_domain("x.both.example"), None, "{threat_name}");
        assert!(
            matches!(snap.lookup_domain("both.example"), Verdict::Trusted(h) if h.list == trusted_name)
        );
    }
}

#[test]
fn hand_built_lists_with_unnormalised_names_are_refused() {
    let mut l = ParsedList::new("hand", ListKind::Threat);
    l.indicators.push(Indicator {
        value: IndicatorValue::Domain("Upper.Example".into()),
        category: Category::C2,
        source: String::new(),
        description: String::new(),
        line: 0,
    });
    let mut b = SnapshotBuilder::new();
    b.add_list(l);
    assert!(
        matches!(b.build(1), Err(BuildError::BadDomain { name, .. }) if name == "Upper.Example")
    );
}

#[test]
fn snapshots_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Snapshot>();
    let snap = std::sync::Arc::new(build(vec![canary_list()]));
    let worker = {
        let snap = std::sync::Arc::clone(&snap);
        std::thread::spawn(move || snap.match_domain("guarddutyc2activityb.com").is_some())
    };
    assert_eq!(worker.join().ok(), Some(true));
}
