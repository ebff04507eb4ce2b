//! Each list format parsed from its fixture: what loads, which lines are rejected (with their
//! line numbers), what is ignored and what is skipped.

use picket_intel::{
    Category, IndicatorValue, LineProblem, ListFormat, ListKind, ListOptions, ParsedList,
    SuricataCategories, parse_list,
};
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse(name: &str, format: ListFormat) -> ParsedList {
    let opts = ListOptions::new(name, ListKind::Threat).format(format);
    parse_list(name, &fixture(name), &opts).unwrap_or_else(|e| panic!("{e}"))
}

fn values(list: &ParsedList) -> Vec<String> {
    list.indicators
        .iter()
        .map(|i| i.value.to_string())
        .collect()
}

fn rejected_lines(list: &ParsedList) -> Vec<u32> {
    list.rejected.iter().map(|r| r.line).collect()
}

fn ignored_lines(list: &ParsedList) -> Vec<u32> {
    list.ignored.iter().map(|r| r.line).collect()
}

#[test]
fn plain_lists_load_ips_cidrs_domains_hosts_lines_and_first_csv_fields() {
    let list = parse("plain.txt", ListFormat::Plain);
    assert_eq!(
        values(&list),
        [
            "45.95.19.50",
            "185.126.224.0/22",
            "2a06:e480::1",
            "evil-example.com",
            "nanopool.org",
            "1.2.3.4",
            "sfkh21okrrnlu.com",
            "ads.tracker-example.com",
            "other.tracker-example.com",
        ]
    );
    assert_eq!(rejected_lines(&list), [12, 14, 15, 16]);
    assert!(matches!(
        list.rejected[1].problem,
        LineProblem::TooBroad { min: 8, .. }
    ));
    assert_eq!(list.rejected[3].problem, LineProblem::NotUtf8);
    assert_eq!(ignored_lines(&list), [13]);
    assert_eq!(list.skipped.get("hosts-file local name"), Some(&1));
    assert_eq!(
        list.rejected[0].to_string(),
        "plain.txt:12: `not a valid line` is not an IP address, CIDR or domain name"
    );
}

#[test]
fn a_mistyped_address_is_rejected_not_loaded_as_a_domain() {
    let opts = ListOptions::new("typos.txt", ListKind::Threat).format(ListFormat::Plain);
    let text = b"45.95.19.50\n999.1.1.1\n45.95.19\nexample.com\n";
    let list = parse_list("typos.txt", text, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(values(&list), ["45.95.19.50", "example.com"]);
    assert_eq!(rejected_lines(&list), [2, 3]);
    assert_eq!(
        list.rejected[0].to_string(),
        "typos.txt:2: `999.1.1.1` is not an IP address, CIDR or domain name"
    );
}

#[test]
fn hosts_file_lines_load_their_names_and_skip_the_header() {
    let list = parse(
        "hosts_blocklistproject_crypto_excerpt.txt",
        ListFormat::Plain,
    );
    assert_eq!(list.indicators.len(), 8);
    assert_eq!(
        list.indicators[0].value,
        IndicatorValue::Domain("0slot.trade".into())
    );
    assert_eq!(list.indicators[0].line, 5);
    assert!(list.rejected.is_empty(), "{:?}", list.rejected);
}

#[test]
fn stix_or_compounds_load_each_network_observable_and_count_the_rest() {
    let list = parse("stix_picket_mixed.json", ListFormat::Stix);
    assert_eq!(
        values(&list),
        [
            "apple.cmdnetview.com",
            "60.10.1.120",
            "2a05:d018::1",
            "223.166.0.0/15",
            "60.10.1.115"
        ]
    );
    assert!(
        list.indicators
            .iter()
            .take(3)
            .all(|i| i.category == Category::C2)
    );
    assert_eq!(list.indicators[0].line, 8);
    assert_eq!(list.indicators[0].description, "Poison Ivy C2 servers");
    // The malformed domain (indicator id on line 26) and the unterminated pattern (line 53).
    assert_eq!(rejected_lines(&list), [26, 53]);
    assert!(matches!(
        list.rejected[0].problem,
        LineProblem::BadDomain { .. }
    ));
    assert!(matches!(
        list.rejected[1].problem,
        LineProblem::BadPattern { .. }
    ));
    assert_eq!(list.skipped.get("stix:and-compound"), Some(&1));
    assert_eq!(list.skipped.get("stix:file"), Some(&1));
    assert_eq!(list.skipped.get("stix:pattern_type sigma"), Some(&1));
}

#[test]
fn stix_examples_with_only_private_addresses_load_nothing_but_say_why() {
    let list = parse("stix_oasis_c2_with_coa.json", ListFormat::Stix);
    assert!(list.indicators.is_empty());
    assert_eq!(list.ignored.len(), 1);
    assert!(
        matches!(&list.ignored[0].problem, LineProblem::Reserved { value, .. } if value == "10.0.0.0")
    );
    assert_eq!(list.skipped.get("stix:file"), Some(&1));

    let single = parse("stix_oasis_c2_ip.json", ListFormat::Stix);
    assert!(single.indicators.is_empty());
    assert_eq!(ignored_lines(&single), [9]);
}

#[test]
fn stix_url_indicators_are_skipped_unless_url_hosts_are_enabled() {
    let name = "stix_unit42_pikabot.json";
    let off = parse(name, ListFormat::Stix);
    assert!(off.indicators.is_empty());
    assert_eq!(off.skipped.get("stix:url"), Some(&7));
    assert_eq!(off.skipped.get("stix:file"), Some(&3));

    let mut opts = ListOptions::new(name, ListKind::Threat).format(ListFormat::Stix);
    opts.url_hosts = true;
    let on = parse_list(name, &fixture(name), &opts).expect("parse");
    assert_eq!(
        values(&on),
        [
            "orangebrands.co.tz",
            "orangebrands.co.tz",
            "gloverstech.com",
            "gloverstech.com",
            "158.220.80.167",
            "104.129.55.103",
            "158.220.80.157",
        ]
    );
}

#[test]
fn stix_that_is_not_json_or_not_a_bundle_is_a_file_error() {
    let opts = ListOptions::new("x", ListKind::Threat).format(ListFormat::Stix);
    let err = parse_list("x.json", b"{\n  \"type\": ", &opts).expect_err("truncated JSON");
    assert!(err.to_string().starts_with("x.json:2:"), "{err}");
    let err = parse_list("y.json", b"\"just a string\"", &opts).expect_err("not a bundle");
    assert_eq!(
        err.to_string(),
        "y.json: JSON is not a STIX bundle, object list or indicator"
    );
    // An OTX pulse export is a JSON array too, but of untyped objects.
    let pulses = br#"[{"id": "5a0f", "name": "pulse", "indicators": [{"type": "IPv4"}]}]"#;
    let err = parse_list("p.json", pulses, &opts).expect_err("pulses are not STIX");
    assert!(
        matches!(err, picket_intel::ParseError::NotStix { .. }),
        "{err}"
    );
    let empty_bundle = br#"{"type": "bundle", "objects": []}"#;
    let empty = parse_list("e.json", empty_bundle, &opts).expect("an empty bundle is fine");
    assert!(empty.indicators.is_empty());
}

#[test]
fn otx_csv_loads_addresses_networks_and_names_and_skips_other_types() {
    let list = parse("otx.csv", ListFormat::Otx);
    assert_eq!(
        values(&list),
        [
            "45.95.19.50",
            "171.25.193.0/24",
            "2a06:e480::1",
            "evil-example.com",
            "cdn.evil-example.net"
        ]
    );
    assert_eq!(list.indicators[0].category, Category::C2);
    assert_eq!(list.indicators[3].category, Category::Phishing);
    assert_eq!(rejected_lines(&list), [9]);
    assert_eq!(ignored_lines(&list), [10]);
    assert_eq!(list.skipped.get("otx:filehash-sha256"), Some(&1));
    assert_eq!(list.skipped.get("otx:url"), Some(&1));
}

#[test]
fn alienvault_reputation_lines_load_with_activity_as_category_and_description() {
    let list = parse("alienvault.txt", ListFormat::AlienVault);
    assert_eq!(
        values(&list),
        ["45.95.19.50", "171.25.193.25", "185.71.66.20"]
    );
    let cats: Vec<Category> = list.indicators.iter().map(|i| i.category).collect();
    assert_eq!(cats, [Category::Custom, Category::Scanner, Category::C2]);
    assert_eq!(list.indicators[0].description, "Malicious Host");
    assert_eq!(rejected_lines(&list), [5, 6, 7]);
    assert!(matches!(
        list.rejected[1].problem,
        LineProblem::BadNumber { field: "risk", .. }
    ));
    assert_eq!(
        list.rejected[2].problem,
        LineProblem::MissingField { field: "activity" }
    );
    assert_eq!(ignored_lines(&list), [8]);
}

#[test]
fn proofpoint_ip_and_domain_files_map_et_categories() {
    let ips = parse("proofpoint_ip.csv", ListFormat::Proofpoint);
    assert_eq!(
        values(&ips),
        ["45.95.19.50", "171.25.193.25", "185.71.66.20"]
    );
    let cats: Vec<Category> = ips.indicators.iter().map(|i| i.category).collect();
    assert_eq!(cats, [Category::C2, Category::Tor, Category::Crypto]);
    assert_eq!(
        ips.indicators[0].description,
        "ET category 1 (CnC), score 100"
    );
    assert_eq!(rejected_lines(&ips), [5, 6]);
    assert!(matches!(
        ips.rejected[1].problem,
        LineProblem::BadNumber { field: "score", .. }
    ));

    let names = parse("proofpoint_domain.csv", ListFormat::Proofpoint);
    assert_eq!(values(&names), ["c2.evil-example.com", "sink.example.net"]);
    assert_eq!(names.indicators[1].category, Category::Blackhole);
    assert_eq!(rejected_lines(&names), [4]);
}

#[test]
fn fireeye_rows_load_every_filled_network_column() {
    let list = parse("fireeye.csv", ListFormat::FireEye);
    assert_eq!(
        values(&list),
        ["c2.banker-example.com", "45.95.19.50", "185.126.224.0/22"]
    );
    assert_eq!(list.indicators[0].description, "Banking trojan C2, wave 2");
    assert_eq!(list.indicators[0].category, Category::C2);
    assert_eq!(list.indicators[2].category, Category::Phishing);
    assert_eq!(list.skipped.get("fireeye:url"), Some(&1));
    assert_eq!(list.skipped.get("fireeye:no network indicator"), Some(&1));
    assert_eq!(rejected_lines(&list), [5]);
}

#[test]
fn fireeye_without_a_usable_header_rejects_its_first_line() {
    let opts = ListOptions::new("f", ListKind::Threat).format(ListFormat::FireEye);
    let list = parse_list("f.csv", b"a,b,c\n1,2,3\n", &opts).expect("parse");
    assert!(list.indicators.is_empty());
    assert_eq!(rejected_lines(&list), [1, 2]);
}

#[test]
fn zeek_intel_uses_addr_subnet_and_domain_and_counts_other_types() {
    let list = parse("zeek_mixed.intel", ListFormat::Zeek);
    assert_eq!(
        values(&list),
        ["45.95.19.50", "192.42.116.0/24", "c2.evil-example.com"]
    );
    assert_eq!(list.indicators[0].source, "picket-test");
    assert_eq!(list.indicators[0].category, Category::C2);
    assert_eq!(list.indicators[1].category, Category::Tor);
    assert_eq!(list.indicators[2].description, "");
    assert_eq!(list.skipped.get("Intel::URL"), Some(&1));
    assert_eq!(list.skipped.get("Intel::FILE_HASH"), Some(&1));
    assert_eq!(rejected_lines(&list), [8, 9]);
}

#[test]
fn zeek_real_feeds_drop_loopback_and_private_traps_and_reject_addresses_typed_as_domains() {
    let cs = parse("zeek_cobaltstrike_excerpt.intel", ListFormat::Zeek);
    assert_eq!(cs.indicators.len(), 5);
    assert_eq!(ignored_lines(&cs), [7, 8, 9]);
    assert!(
        cs.ignored
            .iter()
            .all(|i| matches!(i.problem, LineProblem::Reserved { .. }))
    );

    let mixed = parse("zeek_cps_mixed_excerpt.intel", ListFormat::Zeek);
    assert_eq!(mixed.indicators.len(), 5);
    assert_eq!(rejected_lines(&mixed), [4]);
    assert_eq!(mixed.skipped.get("Intel::URL"), Some(&2));
    assert_eq!(mixed.skipped.get("Intel::FILE_HASH"), Some(&2));
    assert_eq!(mixed.skipped.get("Intel::EMAIL"), Some(&1));
}

#[test]
fn zeek_data_before_the_fields_header_is_rejected() {
    let opts = ListOptions::new("z", ListKind::Threat).format(ListFormat::Zeek);
    let list = parse_list("z.intel", b"1.2.3.4\tIntel::ADDR\n", &opts).expect("parse");
    assert!(list.indicators.is_empty());
    assert_eq!(list.rejected[0].problem, LineProblem::NoFieldsHeader);
}

#[test]
fn suricata_iprep_uses_its_categories_file_for_meaning() {
    let (cats, issues) = SuricataCategories::parse(
        "suricata_categories.txt",
        &fixture("suricata_categories.txt"),
    );
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(cats.by_id.len(), 10);
    let name = "suricata_iprep_excerpt.list";
    let mut opts = ListOptions::new(name, ListKind::Threat).format(ListFormat::Suricata);
    opts.suricata_categories = Some(cats);
    let list = parse_list(name, &fixture(name), &opts).expect("parse");
    assert_eq!(list.indicators.len(), 15);
    assert_eq!(list.indicators[0].value.to_string(), "4.4.4.4");
    assert_eq!(list.indicators[0].line, 2);
    assert_eq!(list.indicators[1].category, Category::Tor);
    assert!(
        list.indicators[0]
            .description
            .starts_with("ET DROP Dshield Block Listed Source")
    );
    assert_eq!(list.indicators[14].value.to_string(), "8.8.8.8");
    assert_eq!(list.indicators[14].line, 16);
    assert_eq!(list.indicators[12].value.to_string(), "185.126.224.0/22");
}

#[test]
fn suricata_iprep_rejects_unknown_categories_and_out_of_range_scores() {
    let (cats, _) = SuricataCategories::parse("c", b"1,CnC,ET CNC test\n");
    let mut opts = ListOptions::new("i", ListKind::Threat).format(ListFormat::Suricata);
    opts.suricata_categories = Some(cats);
    let list =
        parse_list("i", b"1.2.3.4,1,50\n1.2.3.5,7,50\n1.2.3.6,1,128\n", &opts).expect("parse");
    assert_eq!(values(&list), ["1.2.3.4"]);
    assert_eq!(list.indicators[0].category, Category::C2);
    assert_eq!(
        list.rejected[0].problem,
        LineProblem::UnknownCategory { id: 7 }
    );
    assert_eq!(rejected_lines(&list), [2, 3]);
}

#[test]
fn spamhaus_drop_text_and_json_lines_load_with_sbl_ids() {
    let list = parse("spamhaus_drop.txt", ListFormat::Spamhaus);
    assert_eq!(
        values(&list),
        ["1.4.0.0/17", "2a06:e480::/29", "5.8.37.0/24"]
    );
    assert_eq!(list.indicators[0].description, "SBL256893");
    assert_eq!(rejected_lines(&list), [6]);
    assert_eq!(ignored_lines(&list), [7]);

    let json = parse("spamhaus_drop_v4.json", ListFormat::Spamhaus);
    assert_eq!(values(&json), ["1.10.16.0/20", "1.19.0.0/16"]);
    assert_eq!(json.indicators[1].description, "SBL434604");
    assert!(json.rejected.is_empty());
}

#[test]
fn dshield_blocks_become_cidrs_and_inconsistent_ranges_are_rejected() {
    let list = parse("dshield_block.txt", ListFormat::DShield);
    assert_eq!(values(&list), ["43.229.53.0/24", "194.63.140.0/24"]);
    assert_eq!(list.indicators[0].description, "Japan Inet (JP)");
    assert_eq!(rejected_lines(&list), [7, 8]);
    assert!(matches!(
        list.rejected[0].problem,
        LineProblem::RangeMismatch { prefix: 24, .. }
    ));
}

#[test]
fn every_fixture_is_detected_as_its_own_format() {
    let cases = [
        ("plain.txt", ListFormat::Plain),
        (
            "hosts_blocklistproject_crypto_excerpt.txt",
            ListFormat::Plain,
        ),
        ("stix_picket_mixed.json", ListFormat::Stix),
        ("stix_unit42_pikabot.json", ListFormat::Stix),
        ("otx.csv", ListFormat::Otx),
        ("alienvault.txt", ListFormat::AlienVault),
        ("proofpoint_ip.csv", ListFormat::Proofpoint),
        ("proofpoint_domain.csv", ListFormat::Proofpoint),
        ("fireeye.csv", ListFormat::FireEye),
        ("zeek_mixed.intel", ListFormat::Zeek),
        ("zeek_cobaltstrike_excerpt.intel", ListFormat::Zeek),
        ("suricata_iprep_excerpt.list", ListFormat::Suricata),
        ("spamhaus_drop.txt", ListFormat::Spamhaus),
        ("spamhaus_drop_v4.json", ListFormat::Spamhaus),
        ("dshield_block.txt", ListFormat::DShield),
    ];
    for (name, want) in cases {
        assert_eq!(ListFormat::detect(&fixture(name)), Some(want), "{name}");
    }
}

#[test]
fn a_detected_format_parses_like_the_named_one() {
    let name = "zeek_mixed.intel";
    let detected = parse_list(
        name,
        &fixture(name),
        &ListOptions::new(name, ListKind::Threat),
    );
    assert_eq!(detected, Ok(parse(name, ListFormat::Zeek)));
}

#[test]
fn the_entry_cap_stops_loading_and_says_so() {
    let mut opts = ListOptions::new("cap", ListKind::Threat).format(ListFormat::Plain);
    opts.max_entries = 2;
    let list = parse_list("cap", b"1.1.1.1\n1.1.1.2\n1.1.1.3\n1.1.1.4\n", &opts).expect("parse");
    assert_eq!(list.indicators.len(), 2);
    assert_eq!(list.rejected.len(), 1);
    assert_eq!(list.rejected[0].line, 3);
    assert_eq!(
        list.rejected[0].problem,
        LineProblem::TooManyEntries { cap: 2 }
    );
}

#[test]
fn trusted_lists_keep_private_ranges_that_threat_lists_ignore() {
    let opts = ListOptions::new("t", ListKind::Trusted).format(ListFormat::Plain);
    let list = parse_list("t", b"10.0.0.0/8\n", &opts).expect("parse");
    assert_eq!(values(&list), ["10.0.0.0/8"]);
    assert!(list.ignored.is_empty());
}
