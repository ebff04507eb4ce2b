//! The rules against real, labelled data: Panther's rule tests (each case says whether the rule
//! should match) and a Stratus Red Team detonation. A true case must raise the matching
//! GuardDuty type, a false case must not (where Panther and GuardDuty agree).

use std::path::Path;

use serde_json::Value;

use super::testing::event_from;
use crate::detectors::{self, DetectorContext, DetectorsConfig, Event, Observation};
use crate::findings::types::FindingType;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloudtrail")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON")
}

fn observe_all(log: &Value) -> Vec<Observation> {
    let mut detectors = detectors::all(&DetectorsConfig::default(), &DetectorContext::default());
    let event = Event::Api(Box::new(event_from(log)));
    let mut out = Vec::new();
    for d in &mut detectors {
        if d.inputs().contains(&detectors::EventKind::Api) {
            crate::detectors::testing::observe(d.as_mut(), &event, &mut out);
        }
    }
    out
}

/// Checks every case of a Panther file whose event name is in `names` (all when empty).
fn check_panther(file: &str, t: FindingType, names: &[&str]) {
    let doc = fixture(file);
    let cases = doc["cases"].as_array().expect("cases");
    let mut checked = 0;
    for case in cases {
        let log = &case["log"];
        let name = log["eventName"].as_str().unwrap_or_default();
        if !names.is_empty() && !names.contains(&name) {
            continue;
        }
        let expected = case["expected_result"].as_bool().expect("expected_result");
        let fired = observe_all(log).iter().any(|o| o.finding_type == t);
        assert_eq!(fired, expected, "{file}: case {:?}", case["name"]);
        checked += 1;
    }
    assert!(checked >= 2, "{file}: only {checked} cases checked");
}

#[test]
fn panther_cloudtrail_stopped_cases_agree() {
    check_panther(
        "panther.aws_cloudtrail_stopped.json",
        FindingType::StealthCloudTrailLoggingDisabled,
        &[],
    );
}

#[test]
fn panther_event_selectors_disabled_cases_agree() {
    check_panther(
        "panther.aws_cloudtrail_event_selectors_disabled.json",
        FindingType::StealthCloudTrailLoggingDisabled,
        &[],
    );
}

#[test]
fn panther_public_access_block_deleted_cases_agree() {
    check_panther(
        "panther.aws_s3_delete_public_access_block.json",
        FindingType::PolicyBucketBlockPublicAccessDisabled,
        &[],
    );
}

#[test]
fn panther_bucket_logging_cases_agree() {
    check_panther(
        "panther.aws_s3_security_control_disabling.json",
        FindingType::StealthS3ServerAccessLoggingDisabled,
        &["PutBucketLogging"],
    );
}

#[test]
fn the_stratus_event_selectors_detonation_is_logging_disabled() {
    let doc = fixture("aws.defense-evasion.cloudtrail-event-selectors.json");
    let events = doc.as_array().expect("array");
    assert_eq!(events.len(), 1);
    let obs = observe_all(&events[0]);
    assert_eq!(obs.len(), 1, "{obs:?}");
    assert_eq!(
        obs[0].finding_type,
        FindingType::StealthCloudTrailLoggingDisabled
    );
    assert_eq!(obs[0].region, "cn-northsouth-2r");
}

#[test]
fn the_stratus_admin_user_detonation_raises_no_rule_finding() {
    // Creating an admin user is the IAM persistence detector's business (one event at a
    // time it sees the AdministratorAccess attachment); no single-event rule may fire.
    let doc = fixture("aws.persistence.iam-create-admin-user.json");
    for e in doc.as_array().expect("array") {
        let others: Vec<_> = observe_all(e)
            .into_iter()
            .filter(|o| {
                !matches!(
                    o.finding_type,
                    FindingType::PrivilegeEscalationAdministrativePolicyAttached
                        | FindingType::PrivilegeEscalationNewUserFullAccess
                        | FindingType::PersistenceAccessKeyCreatedForOtherUser
                        | FindingType::PersistenceLoginProfileCreatedForOtherUser
                )
            })
            .collect();
        assert!(others.is_empty(), "{}: {others:?}", e["eventName"]);
    }
}
