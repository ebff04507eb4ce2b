//! Every export format produced from the same findings and checked: ASFF against Security
//! Hub's `AwsSecurityFinding` shape from botocore's service model
//! (`fixtures/securityhub-finding-shapes.json`, see `fixtures/README.md`), OCSF Detection
//! Finding's required attributes and their types, the EventBridge envelope, and GuardDuty JSON
//! unchanged.

use picket_aggregator::detectors::window::SharedNames;
use picket_aggregator::detectors::{self, AgentSource, Event, EventFacts};
use picket_aggregator::exports::formats::Format;
use picket_aggregator::findings::Finding;
use picket_aggregator::findings::engine::{EngineConfig, FindingEngine};
use picket_aggregator::findings::model::Timestamp;
use picket_aggregator::findings::samples::samples;
use picket_aggregator::findings::suppression::SuppressionRules;
use picket_aggregator::findings::types::FindingType;
use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, IntelHit, MatchSite, Record};
use serde_json::Value;

const SHAPES: &str = include_str!("fixtures/securityhub-finding-shapes.json");

/// ASFF has no open shapes; `ProductFields` is a map of strings.
const OPEN_SHAPES: &[&str] = &[];

mod common;
use common::shape_checker::Checker;

/// Every sample (one per type, archived) plus findings from intel hits (active, with threat
/// intel, network and DNS actions, IPv4 and IPv6), one of them updated.
fn findings() -> Vec<Finding> {
    let mut all = samples("123456789012", "us-east-1", Timestamp(1_700_000_000_000));
    let source = AgentSource {
        account_id: "210987654321".into(),
        instance_id: "i-0abc".into(),
        region: "eu-west-1".into(),
    };
    let mut dets = detectors::all(&Default::default(), &Default::default());
    let mut names = SharedNames::default();
    let mut engine = FindingEngine::new(EngineConfig::default(), SuppressionRules::default());
    let mut out = Vec::new();
    for (i, (category, site, value, direction)) in [
        (
            "c2",
            MatchSite::RemoteAddr,
            "198.51.100.7",
            Direction::Egress,
        ),
        ("c2", MatchSite::DnsQuery, "bad.example", Direction::Egress),
        (
            "crypto",
            MatchSite::RemoteAddr,
            "2001:db8::7",
            Direction::Egress,
        ),
        (
            "scanner",
            MatchSite::RemoteAddr,
            "203.0.113.9",
            Direction::Ingress,
        ),
        (
            "c2",
            MatchSite::RemoteAddr,
            "198.51.100.7",
            Direction::Egress,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let hit = IntelHit {
            observed_at_ms: 1_700_000_000_000 + i as i64 * 1_000,
            matched_value: value.into(),
            indicator: value.into(),
            list_name: "test-list".into(),
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
            local_port: 40000,
            remote_port: 443,
            ..IntelHit::default()
        };
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
    for o in &out {
        engine.observe(o, Timestamp(o.at_ms));
    }
    let live = engine.drain();
    assert_eq!(live.len(), 4, "{live:#?}");
    assert!(
        live.iter().any(|f| f.service.count == 2),
        "one finding was seen twice"
    );
    all.extend(live);
    all
}

fn encode(format: &Format, f: &Finding) -> Value {
    let bytes = format.encode(f).expect("encode");
    assert!(!bytes.contains(&b'\n'), "one line per finding");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn asff_of_every_finding_matches_security_hub_s_finding_shape() {
    let checker = Checker::load(SHAPES, "AwsSecurityFinding", OPEN_SHAPES);
    let format = Format::Asff { product_arn: None };
    let all = findings();
    assert_eq!(all.len(), FindingType::ALL.len() + 4);
    for f in &all {
        let asff = encode(&format, f);
        let errs = checker.check_finding(&asff);
        assert!(errs.is_empty(), "{}: {errs:#?}\n{asff:#}", f.finding_type);
        assert_eq!(asff["SchemaVersion"], "2018-10-08");
        assert_eq!(asff["Id"], Value::from(f.arn.clone()));
        assert_eq!(asff["AwsAccountId"], Value::from(f.account_id.clone()));
        let types = asff["Types"].as_array().expect("Types");
        assert_eq!(types.len(), 1);
        let t = types[0].as_str().expect("type");
        assert_eq!(t.split('/').count(), 3, "{t}");
        assert!(
            [
                "TTPs/",
                "Effects/",
                "Software and Configuration Checks/",
                "Unusual Behaviors/"
            ]
            .iter()
            .any(|ns| t.starts_with(ns)),
            "{t}"
        );
        let state = if f.service.archived {
            "ARCHIVED"
        } else {
            "ACTIVE"
        };
        assert_eq!(asff["RecordState"], state);
        let resource = &asff["Resources"][0];
        let kind = match f.resource.resource_type.as_str() {
            "Instance" => "AwsEc2Instance",
            "AccessKey" => "AwsIamAccessKey",
            _ => "AwsS3Bucket",
        };
        assert_eq!(resource["Type"], kind);
        assert_eq!(
            asff["Severity"]["Original"],
            Value::from(format!("{:.1}", f.severity))
        );
    }
    // The findings from intel hits all name the list entry that matched.
    let with_intel: Vec<_> = all[FindingType::ALL.len()..]
        .iter()
        .map(|f| encode(&format, f))
        .filter(|a| a.get("ThreatIntelIndicators").is_some())
        .collect();
    assert_eq!(with_intel.len(), 4);
    let outbound = with_intel
        .iter()
        .find(|a| a["Network"]["DestinationIpV4"] == "198.51.100.7")
        .expect("the C&C connection");
    assert_eq!(outbound["Network"]["Direction"], "OUT");
    assert_eq!(outbound["ThreatIntelIndicators"][0]["Source"], "test-list");
}

#[test]
fn the_asff_checker_rejects_what_security_hub_would() {
    let checker = Checker::load(SHAPES, "AwsSecurityFinding", OPEN_SHAPES);
    let f = &findings()[0];
    let good = encode(&Format::Asff { product_arn: None }, f);
    assert!(checker.check_finding(&good).is_empty());
    let mut bad = good.clone();
    bad["RecordState"] = Value::from("DELETED");
    bad["Severity"]["Normalized"] = Value::from("80");
    bad.as_object_mut().expect("object").remove("GeneratorId");
    bad["Resources"][0]["Detail"] = Value::from("x");
    let errs = checker.check_finding(&bad);
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn ocsf_detection_findings_carry_the_required_attributes_with_their_types() {
    let all = findings();
    let mut updates = 0;
    for f in &all {
        let o = encode(&Format::Ocsf, f);
        let int = |v: &Value, path: &str| {
            assert!(
                v.is_i64() || v.is_u64(),
                "{}: {path} is {v}",
                f.finding_type
            );
            v.as_i64().expect("int")
        };
        let text = |v: &Value, path: &str| {
            assert!(
                v.as_str().is_some_and(|s| !s.is_empty()),
                "{}: {path} is {v}",
                f.finding_type
            );
        };
        assert_eq!(int(&o["class_uid"], "class_uid"), 2004);
        assert_eq!(int(&o["category_uid"], "category_uid"), 2);
        let activity = int(&o["activity_id"], "activity_id");
        assert!(activity == 1 || activity == 2);
        assert_eq!(int(&o["type_uid"], "type_uid"), 200_400 + activity);
        let severity = int(&o["severity_id"], "severity_id");
        let want = match f.severity {
            s if s >= 9.0 => 5,
            s if s >= 7.0 => 4,
            s if s >= 4.0 => 3,
            _ => 2,
        };
        assert_eq!(severity, want, "{}", f.finding_type);
        assert_eq!(int(&o["time"], "time"), f.updated_at.0);
        text(&o["metadata"]["version"], "metadata.version");
        assert_eq!(o["metadata"]["product"]["name"], "Picket");
        text(&o["metadata"]["product"]["vendor_name"], "vendor_name");
        let info = &o["finding_info"];
        text(&info["uid"], "finding_info.uid");
        text(&info["title"], "finding_info.title");
        text(&info["desc"], "finding_info.desc");
        assert_eq!(info["types"][0], Value::from(f.finding_type.name()));
        for t in [
            "created_time",
            "modified_time",
            "first_seen_time",
            "last_seen_time",
        ] {
            int(&info[t], t);
        }
        assert_eq!(o["cloud"]["provider"], "AWS");
        assert_eq!(
            o["cloud"]["account"]["uid"],
            Value::from(f.account_id.clone())
        );
        assert_eq!(o["cloud"]["region"], Value::from(f.region.clone()));
        let resources = o["resources"].as_array().expect("resources");
        assert_eq!(resources.len(), 1);
        text(&resources[0]["uid"], "resources[0].uid");
        text(&resources[0]["type"], "resources[0].type");
        let (status, name) = if f.service.archived {
            (5, "Archived")
        } else {
            (1, "New")
        };
        assert_eq!(int(&o["status_id"], "status_id"), status);
        assert_eq!(o["status"], name);
        assert!(o["unmapped"]["action"]["actionType"].is_string());
        if activity == 2 {
            updates += 1;
            assert!(f.service.count > 1 || f.updated_at > f.created_at);
        }
    }
    assert_eq!(updates, 1, "exactly the finding seen twice is an update");
}

#[test]
fn eventbridge_events_wrap_the_finding_as_guardduty_sends_it() {
    for f in findings() {
        let gd = encode(&Format::GuardDuty, &f);
        assert_eq!(gd, serde_json::to_value(&f).expect("serialize"));
        let custom = encode(
            &Format::EventBridge {
                source: "picket.findings".into(),
            },
            &f,
        );
        assert_eq!(custom["source"], "picket.findings");
        let e = encode(
            &Format::EventBridge {
                source: "aws.guardduty".into(),
            },
            &f,
        );
        assert_eq!(e["version"], "0");
        assert_eq!(e["detail-type"], "GuardDuty Finding");
        assert_eq!(e["source"], "aws.guardduty");
        assert_eq!(e["account"], Value::from(f.account_id.clone()));
        assert_eq!(e["region"], Value::from(f.region.clone()));
        assert_eq!(e["resources"], Value::Array(Vec::new()));
        assert_eq!(e["detail"], gd);
        let time = e["time"].as_str().expect("time");
        assert!(time.ends_with('Z') && !time.contains('.'), "{time}");
        assert_eq!(
            Timestamp::parse(time).expect("time").0,
            f.updated_at.0 / 1000 * 1000
        );
        let id = e["id"].as_str().expect("id");
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
