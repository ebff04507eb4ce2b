//! Picket's findings against GuardDuty's `Finding` shape from botocore's service model
//! (`fixtures/guardduty-finding-shapes.json`, see `fixtures/README.md`): every key a member of
//! its shape under its JSON name, types and enums right, required members present.

use picket_aggregator::detectors::window::SharedNames;
use picket_aggregator::detectors::{self, AgentSource, Event, EventFacts};
use picket_aggregator::findings::engine::{EngineConfig, FindingEngine};
use picket_aggregator::findings::model::Timestamp;
use picket_aggregator::findings::samples::samples;
use picket_aggregator::findings::suppression::SuppressionRules;
use picket_aggregator::findings::types::FindingType;
use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, IntelHit, MatchSite, Record};
use serde_json::Value;

const SHAPES: &str = include_str!("fixtures/guardduty-finding-shapes.json");

/// Shapes whose extra keys are allowed: GuardDuty's own exports add keys to `additionalInfo`.
const OPEN_SHAPES: &[&str] = &["ServiceAdditionalInfo"];

mod common;
use common::shape_checker::Checker;

#[test]
fn every_sample_finding_matches_guardduty_finding_shape() {
    let checker = Checker::load(SHAPES, "Finding", OPEN_SHAPES);
    let all = samples("123456789012", "us-east-1", Timestamp(1_700_000_000_000));
    assert_eq!(all.len(), FindingType::ALL.len());
    for f in &all {
        let json = serde_json::to_value(f).expect("serialize");
        let errs = checker.check_finding(&json);
        assert!(errs.is_empty(), "{}: {errs:#?}", f.finding_type);
    }
}

#[test]
fn findings_from_intel_hits_match_guardduty_finding_shape() {
    let checker = Checker::load(SHAPES, "Finding", OPEN_SHAPES);
    let source = AgentSource {
        account_id: "123456789012".into(),
        instance_id: "i-0abc".into(),
        region: "eu-west-1".into(),
    };
    let mut hits = Vec::new();
    for category in [
        "c2",
        "crypto",
        "tor",
        "blackhole",
        "drop_point",
        "phishing",
        "drive_by",
        "dga",
        "scanner",
        "custom",
        "weird",
    ] {
        for (site, value) in [
            (MatchSite::RemoteAddr, "198.51.100.7"),
            (MatchSite::DnsQuery, "bad.example"),
            (MatchSite::RemoteAddr, "2001:db8::7"),
        ] {
            for direction in [Direction::Egress, Direction::Ingress] {
                hits.push(IntelHit {
                    observed_at_ms: 1_700_000_000_000,
                    matched_value: value.into(),
                    indicator: value.into(),
                    list_name: "l".into(),
                    category: category.into(),
                    site: site as i32,
                    direction: direction as i32,
                    local_addr: "10.0.0.5".into(),
                    remote_addr: if site == MatchSite::RemoteAddr {
                        value.into()
                    } else {
                        String::new()
                    },
                    protocol: 6,
                    local_port: 22,
                    remote_port: 50000,
                    ..IntelHit::default()
                });
            }
        }
    }
    let mut dets = detectors::all(&Default::default(), &Default::default());
    let mut names = SharedNames::default();
    let mut engine = FindingEngine::new(EngineConfig::default(), SuppressionRules::default());
    let mut out = Vec::new();
    for hit in hits {
        let event = Event::Agent {
            source: source.clone(),
            record: Record {
                record: Some(R::IntelHit(hit)),
            },
        };
        let facts = EventFacts::of(&event, &mut names);
        for d in &mut dets {
            d.observe(&event, &facts, &mut out);
        }
    }
    assert_eq!(out.len(), 66);
    for o in &out {
        engine.observe(o, Timestamp(o.at_ms));
    }
    let findings = engine.drain();
    assert!(findings.len() > 20, "{}", findings.len());
    for f in &findings {
        let errs = checker.check_finding(&serde_json::to_value(f).expect("serialize"));
        assert!(errs.is_empty(), "{}: {errs:#?}", f.finding_type);
    }
}

#[test]
fn the_checker_reports_unknown_keys_wrong_types_and_missing_required_members() {
    let checker = Checker::load(SHAPES, "Finding", OPEN_SHAPES);
    let f = &samples("123456789012", "us-east-1", Timestamp(0))[0];
    let good = serde_json::to_value(f).expect("serialize");
    assert!(checker.check_finding(&good).is_empty());

    let mut unknown = good.clone();
    unknown["resource"]["instanceDetails"]["instanceID"] = Value::from("i-1");
    let errs = checker.check_finding(&unknown);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("instanceID"));

    let mut wrong_type = good.clone();
    wrong_type["service"]["count"] = Value::from("2");
    assert_eq!(checker.check_finding(&wrong_type).len(), 1);

    let mut missing = good;
    if let Some(obj) = missing.as_object_mut() {
        obj.remove("arn");
    }
    let errs = checker.check_finding(&missing);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("arn"));
}

#[test]
fn findings_from_the_network_detectors_match_guardduty_finding_shape() {
    use picket_aggregator::analyze::{AnalyzeOptions, analyze};
    let checker = Checker::load(SHAPES, "Finding", OPEN_SHAPES);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/network_detections.jsonl");
    let report = analyze(&AnalyzeOptions {
        agent_records: vec![path],
        identity_from_replay_stats: false,
        default_source: AgentSource {
            account_id: "123456789012".into(),
            instance_id: "i-0abc".into(),
            region: "eu-west-1".into(),
        },
        engine: EngineConfig::default(),
        rules: SuppressionRules::default(),
        detectors: Default::default(),
        context: Default::default(),
        cloudtrail: Vec::new(),
    })
    .expect("analyze");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.findings.len(), 12);
    for f in &report.findings {
        let errs = checker.check_finding(&serde_json::to_value(f).expect("serialize"));
        assert!(errs.is_empty(), "{}: {errs:#?}", f.finding_type);
    }
}

#[test]
fn findings_from_the_cloudtrail_rules_match_guardduty_finding_shape() {
    use picket_aggregator::analyze::{AnalyzeOptions, analyze};
    use picket_aggregator::detectors::DetectorContext;
    let checker = Checker::load(SHAPES, "Finding", OPEN_SHAPES);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudtrail");
    let settings = picket_aggregator::intel::IntelSettings::from_files(
        &[dir.join("threats.txt")],
        &[dir.join("trusted.txt")],
    );
    let snapshot =
        picket_aggregator::intel::sources::load_snapshot(&settings, 0).expect("intel lists");
    let report = analyze(&AnalyzeOptions {
        agent_records: Vec::new(),
        identity_from_replay_stats: false,
        default_source: AgentSource {
            account_id: "123456789012".into(),
            instance_id: "i-0abc".into(),
            region: "eu-west-1".into(),
        },
        engine: EngineConfig::default(),
        rules: SuppressionRules::default(),
        detectors: Default::default(),
        context: DetectorContext::with_fixed_intel(snapshot),
        cloudtrail: vec![dir.join("rules.jsonl"), dir.join("quirks.jsonl")],
    })
    .expect("analyze");
    assert!(
        report.cloudtrail_problems.is_empty(),
        "{:?}",
        report.cloudtrail_problems
    );
    assert_eq!(report.findings.len(), 13);
    for f in &report.findings {
        let errs = checker.check_finding(&serde_json::to_value(f).expect("serialize"));
        assert!(errs.is_empty(), "{}: {errs:#?}", f.finding_type);
    }
}

#[test]
fn an_attack_sequence_with_its_detection_block_matches_guardduty_finding_shape() {
    use picket_aggregator::analyze::{AnalyzeOptions, analyze};
    use picket_aggregator::detectors::DetectorContext;
    use picket_intel::{Category, ListKind, ListOptions, SnapshotBuilder, parse_list};
    let checker = Checker::load(SHAPES, "Finding", OPEN_SHAPES);
    let list = parse_list(
        "c2",
        b"91.240.118.0/24\n",
        &ListOptions {
            category: Category::C2,
            ..ListOptions::new("c2", ListKind::Threat)
        },
    )
    .expect("list");
    let mut b = SnapshotBuilder::new();
    b.add_list(list);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudtrail");
    let report = analyze(&AnalyzeOptions {
        agent_records: Vec::new(),
        identity_from_replay_stats: false,
        default_source: AgentSource {
            account_id: "111122223333".into(),
            instance_id: "i-0abc".into(),
            region: "us-east-1".into(),
        },
        engine: EngineConfig::default(),
        rules: SuppressionRules::default(),
        detectors: Default::default(),
        context: DetectorContext::with_fixed_intel(b.build(1).expect("snapshot")),
        cloudtrail: vec![dir.join("sequence.jsonl")],
    })
    .expect("analyze");
    assert!(report.cloudtrail_problems.is_empty());
    let mut types: Vec<&str> = report
        .findings
        .iter()
        .map(|f| f.finding_type.name())
        .collect();
    types.sort_unstable();
    // ListBuckets names no bucket and is still an S3 type (issue 9).
    assert!(
        types.contains(&"Discovery:S3/MaliciousIPCaller"),
        "{types:?}"
    );
    let seq: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.finding_type == FindingType::AttackSequenceS3CompromisedData)
        .collect();
    assert_eq!(seq.len(), 1, "{types:?}");
    let json = serde_json::to_value(seq[0]).expect("serialize");
    let sequence = &json["service"]["detection"]["sequence"];
    assert_eq!(sequence["uid"], json["id"]);
    let signals = sequence["signals"].as_array().expect("signals");
    let names: Vec<&str> = signals.iter().filter_map(|s| s["name"].as_str()).collect();
    for expected in [
        "Discovery:S3/MaliciousIPCaller",
        "Persistence:IAMUser/AccessKeyCreatedForOtherUser",
        "Exfiltration:S3/MaliciousIPCaller",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    // Each signal's uid is the id of its own finding, which the run also produced.
    for s in signals {
        assert!(
            report.findings.iter().any(|f| s["uid"] == f.id.as_str()),
            "{s}"
        );
    }
    assert_eq!(sequence["actors"][0]["user"]["name"], "mallory");
    assert!(
        sequence["endpoints"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["ip"] == "91.240.118.9")),
        "{sequence}"
    );
    let errs = checker.check_finding(&json);
    assert!(errs.is_empty(), "{errs:#?}\n{json:#}");

    // Other findings carry no detection block at all.
    for f in report.findings.iter().filter(|f| f.id != seq[0].id) {
        let json = serde_json::to_value(f).expect("serialize");
        assert!(json["service"].get("detection").is_none(), "{json}");
        let errs = checker.check_finding(&json);
        assert!(errs.is_empty(), "{}: {errs:#?}", f.finding_type);
    }
}

#[test]
fn the_checker_rejects_a_detection_sequence_that_breaks_botocore_shapes() {
    let checker = Checker::load(SHAPES, "Finding", OPEN_SHAPES);
    let f = &samples("123456789012", "us-east-1", Timestamp(0))[0];
    let mut bad = serde_json::to_value(f).expect("serialize");
    // A signal without its required members, and an indicator key GuardDuty does not have.
    bad["service"]["detection"] = serde_json::json!({"sequence": {
        "uid": "x", "description": "d",
        "signals": [{"uid": "s", "type": "FINDING", "signalIndicators": [{"key": "SUPPRESSED"}]}]
    }});
    let errs = checker.check_finding(&bad);
    assert!(errs.iter().any(|e| e.contains("createdAt")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("SUPPRESSED")), "{errs:#?}");
}
