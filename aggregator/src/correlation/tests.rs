//! The correlation stage end to end through [`Pipeline`]: agent `HostStats` joined with
//! CloudTrail, activity across member accounts, and attack sequences built from every
//! detector's observations, suppressed ones included.

use picket_proto::v1::record::Record as R;
use picket_proto::v1::{HostStats, Record};

use crate::detectors::accounts::AccountsConfig;
use crate::detectors::api_evidence::{ApiBehaviourEvidence, SequenceEvidence};
use crate::detectors::api_testing::{
    ACCOUNT, DAY, MIN, T0, api, fixture_path, instance_call, ip, user_call,
};
use crate::detectors::{AgentSource, DetectorContext, DetectorsConfig, Event, EvidenceDetail};
use crate::findings::engine::EngineConfig;
use crate::findings::model::Finding;
use crate::findings::suppression::{Filter, SuppressionRule, SuppressionRules};
use crate::findings::types::FindingType;
use crate::pipeline::{Clock, Pipeline};

const OTHER: &str = "222222222222";
const THIRD: &str = "333333333333";

fn pipeline_with(config: &DetectorsConfig, rules: SuppressionRules) -> Pipeline {
    Pipeline::new(
        EngineConfig::default(),
        rules,
        Clock::EventTime,
        config,
        &DetectorContext::default(),
    )
}

fn pipeline(config: &DetectorsConfig) -> Pipeline {
    pipeline_with(config, SuppressionRules::default())
}

fn host_stats(account: &str, instance: &str, addrs: &[&str], at_ms: i64) -> Event {
    Event::Agent {
        source: AgentSource {
            account_id: account.into(),
            instance_id: instance.into(),
            region: "eu-west-1".into(),
        },
        record: Record {
            record: Some(R::HostStats(HostStats {
                interval_start_ms: at_ms - MIN,
                interval_end_ms: at_ms,
                addresses: addrs.iter().map(|a| (*a).to_owned()).collect(),
                ..HostStats::default()
            })),
        },
    }
}

fn of_type(findings: &[Finding], t: FindingType) -> Vec<&Finding> {
    findings.iter().filter(|f| f.finding_type == t).collect()
}

fn served() -> DetectorsConfig {
    let mut c = DetectorsConfig {
        accounts: AccountsConfig {
            administrator: Some("999999999999".into()),
            members: vec![ACCOUNT.into(), OTHER.into(), THIRD.into()],
        },
        ..DetectorsConfig::default()
    };
    c.instance_credentials.aws_ip_ranges = Some(fixture_path("ip-ranges.json"));
    c
}

// === instance credentials ===

#[test]
fn an_instance_session_used_from_an_outside_address_is_outside_aws_high() {
    let mut p = pipeline(&served());
    p.feed(&host_stats(ACCOUNT, "i-0abc", &["10.0.0.5"], T0));
    p.feed(&api(instance_call(
        "i-0abc",
        "DescribeInstances",
        "10.0.0.5",
        T0 + MIN,
    )));
    p.feed(&api(instance_call(
        "i-0abc",
        "ListBuckets",
        "203.0.113.9",
        T0 + 2 * MIN,
    )));
    let findings = p.drain();
    let hits = of_type(
        &findings,
        FindingType::UnauthorizedAccessInstanceCredentialExfiltrationOutsideAws,
    );
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let f = hits[0];
    assert_eq!(f.severity, 8.0);
    assert_eq!(f.resource.resource_type.as_str(), "AccessKey");
    let call = f
        .service
        .action
        .aws_api_call_action
        .as_ref()
        .expect("api call");
    assert_eq!(call.api, "ListBuckets");
    let Some(EvidenceDetail::ApiBehaviour(b)) = &f.service.additional_info.evidence else {
        panic!("{f:?}");
    };
    let ApiBehaviourEvidence::InstanceCredentials(ev) = &**b else {
        panic!("{b:?}");
    };
    assert_eq!(ev.instance_id, "i-0abc");
    assert_eq!(ev.instance_addresses, ["10.0.0.5"]);
    assert_eq!(ev.caller_address, "203.0.113.9");
    assert!(!ev.caller_in_aws);
    assert_eq!(ev.ec2_role_delivery.as_deref(), Some("2.0"));
    // Rendered as GuardDuty JSON, the type and the evidence are there.
    let json = serde_json::to_value(f).expect("json");
    assert_eq!(
        json["type"],
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
    );
    assert_eq!(
        json["service"]["additionalInfo"]["picketEvidence"]["callerAddress"],
        "203.0.113.9"
    );
}

#[test]
fn an_instance_session_used_from_its_own_address_is_no_finding() {
    let mut p = pipeline(&served());
    p.feed(&host_stats(
        ACCOUNT,
        "i-0abc",
        &["10.0.0.5", "2001:db8::5"],
        T0,
    ));
    p.feed(&api(instance_call(
        "i-0abc",
        "ListBuckets",
        "10.0.0.5",
        T0 + MIN,
    )));
    p.feed(&api(instance_call(
        "i-0abc",
        "ListBuckets",
        "2001:db8::5",
        T0 + MIN,
    )));
    // An instance no agent reported is not judged either.
    p.feed(&api(instance_call(
        "i-0ffff",
        "ListBuckets",
        "203.0.113.9",
        T0 + MIN,
    )));
    let findings = p.drain();
    assert!(findings.is_empty(), "{findings:#?}");
    let unknown = p
        .counters()
        .into_iter()
        .find(|(n, c)| *n == "correlation" && c.name == "instance_calls_unknown_instance")
        .map(|(_, c)| c.count);
    assert_eq!(unknown, Some(1));
}

#[test]
fn an_instance_session_used_from_an_aws_address_is_inside_aws() {
    let mut p = pipeline(&served());
    p.feed(&host_stats(ACCOUNT, "i-0abc", &["10.0.0.5"], T0));
    p.feed(&api(instance_call(
        "i-0abc",
        "ListBuckets",
        "3.5.141.20",
        T0 + MIN,
    )));
    let findings = p.drain();
    let hits = of_type(
        &findings,
        FindingType::UnauthorizedAccessInstanceCredentialExfiltrationInsideAws,
    );
    assert_eq!(hits.len(), 1, "{findings:#?}");
    assert_eq!(hits[0].severity, 8.0);
}

#[test]
fn an_instance_session_used_from_an_instance_of_another_served_account_is_medium() {
    let mut p = pipeline(&served());
    p.feed(&host_stats(ACCOUNT, "i-0abc", &["10.0.0.5"], T0));
    p.feed(&host_stats(OTHER, "i-0def", &["198.18.7.7"], T0));
    p.feed(&api(instance_call(
        "i-0abc",
        "ListBuckets",
        "198.18.7.7",
        T0 + MIN,
    )));
    let findings = p.drain();
    let hits = of_type(
        &findings,
        FindingType::UnauthorizedAccessInstanceCredentialExfiltrationInsideAws,
    );
    assert_eq!(hits.len(), 1, "{findings:#?}");
    assert_eq!(hits[0].severity, 5.0, "affiliated");
}

#[test]
fn without_aws_ranges_a_foreign_aws_address_counts_as_outside() {
    let mut config = served();
    config.instance_credentials.aws_ip_ranges = None;
    let mut p = pipeline(&config);
    p.feed(&host_stats(ACCOUNT, "i-0abc", &["10.0.0.5"], T0));
    p.feed(&api(instance_call(
        "i-0abc",
        "ListBuckets",
        "3.5.141.20",
        T0 + MIN,
    )));
    let findings = p.drain();
    assert_eq!(
        of_type(
            &findings,
            FindingType::UnauthorizedAccessInstanceCredentialExfiltrationOutsideAws
        )
        .len(),
        1,
        "{findings:#?}"
    );
}

// === cross-account ===

fn multi_account(findings: &[Finding]) -> Vec<&Finding> {
    of_type(findings, FindingType::DiscoveryMultiAccountActivity)
}

#[test]
fn one_address_active_against_two_member_accounts_raises_one_finding_naming_both() {
    let mut config = served();
    config.cross_account.min_accounts = 2;
    let mut p = pipeline(&config);
    let mut a = user_call("alice", "iam.amazonaws.com", "ListRoles", T0);
    a.source = ip("203.0.113.50");
    let mut b = user_call("bob", "iam.amazonaws.com", "ListRoles", T0 + MIN);
    b.source = ip("203.0.113.50");
    b.recipient_account_id = OTHER.into();
    b.principal.account_id = OTHER.into();
    b.principal.arn = format!("arn:aws:iam::{OTHER}:user/bob");
    p.feed(&api(a));
    p.feed(&api(b));
    let findings = p.drain();
    let hits = multi_account(&findings);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let f = hits[0];
    assert_eq!(f.account_id, "999999999999", "belongs to the administrator");
    let Some(EvidenceDetail::ApiBehaviour(b)) = &f.service.additional_info.evidence else {
        panic!("{f:?}");
    };
    let ApiBehaviourEvidence::MultiAccount(ev) = &**b else {
        panic!("{b:?}");
    };
    assert_eq!(ev.actor_kind, "address");
    assert_eq!(ev.actor, "203.0.113.50");
    assert_eq!(ev.accounts, [ACCOUNT, OTHER]);
    assert_eq!(ev.calls.len(), 2);
}

#[test]
fn two_accounts_outside_the_window_or_outside_the_members_raise_nothing() {
    let mut config = served();
    config.cross_account.min_accounts = 2;
    config.cross_account.window_secs = 600;
    let mut p = pipeline(&config);
    let mut a = user_call("alice", "iam.amazonaws.com", "ListRoles", T0);
    a.source = ip("203.0.113.50");
    let mut late = user_call("bob", "iam.amazonaws.com", "ListRoles", T0 + 11 * MIN);
    late.source = ip("203.0.113.50");
    late.recipient_account_id = OTHER.into();
    late.principal.arn = format!("arn:aws:iam::{OTHER}:user/bob");
    let mut stranger = user_call("carol", "iam.amazonaws.com", "ListRoles", T0 + MIN);
    stranger.source = ip("203.0.113.50");
    stranger.recipient_account_id = "444444444444".into();
    stranger.principal.arn = "arn:aws:iam::444444444444:user/carol".into();
    for e in [a, stranger, late] {
        p.feed(&api(e));
    }
    let findings = p.drain();
    assert!(multi_account(&findings).is_empty(), "{findings:#?}");
}

/// The cross-account finding keyed by the address actor, with its evidence.
fn by_address(
    findings: &[Finding],
) -> Vec<(
    &Finding,
    &crate::detectors::api_evidence::MultiAccountEvidence,
)> {
    multi_account(findings)
        .into_iter()
        .filter_map(|f| match &f.service.additional_info.evidence {
            Some(EvidenceDetail::ApiBehaviour(b)) => match &**b {
                ApiBehaviourEvidence::MultiAccount(ev) if ev.actor_kind == "address" => {
                    Some((f, ev))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// One address calling into `account` at `at_ms`.
fn roaming_call(account: &str, at_ms: i64) -> crate::cloudtrail::ApiEvent {
    let mut e = user_call("alice", "iam.amazonaws.com", "ListRoles", at_ms);
    e.source = ip("203.0.113.50");
    e.recipient_account_id = account.into();
    e
}

#[test]
fn when_a_third_account_joins_later_the_open_finding_names_all_three() {
    let mut config = served();
    config.cross_account.min_accounts = 2;
    let mut p = pipeline(&config);
    for (account, at) in [(ACCOUNT, T0), (OTHER, T0 + MIN), (THIRD, T0 + 2 * MIN)] {
        p.feed(&api(roaming_call(account, at)));
    }
    let findings = p.drain();
    let hits = by_address(&findings);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let (f, ev) = hits[0];
    assert_eq!(
        f.service.count, 2,
        "raised with two accounts, then again with three"
    );
    assert_eq!(ev.accounts, [ACCOUNT, OTHER, THIRD]);
    for account in [ACCOUNT, OTHER, THIRD] {
        assert!(f.description.contains(account), "{}", f.description);
    }
}

#[test]
fn when_a_third_account_joins_after_the_finding_was_stored_the_stored_one_names_all_three() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::findings::store::FindingStore::open(dir.path()).expect("store");
    let mut config = served();
    config.cross_account.min_accounts = 2;
    let mut p = pipeline(&config);
    p.feed(&api(roaming_call(ACCOUNT, T0)));
    p.feed(&api(roaming_call(OTHER, T0 + MIN)));
    let first = p.drain();
    store.upsert_all(&first).expect("stored");
    let (stored_first, ev) = by_address(&first)[0];
    assert_eq!(ev.accounts, [ACCOUNT, OTHER]);
    assert!(!stored_first.description.contains(THIRD));

    // A later drain, as in `serve`: the repeat goes through the store's merge.
    p.feed(&api(roaming_call(THIRD, T0 + 2 * MIN)));
    let second = p.drain();
    assert_eq!(by_address(&second).len(), 1, "{second:#?}");
    assert_eq!(by_address(&second)[0].0.id, stored_first.id, "same finding");
    store.upsert_all(&second).expect("stored");
    let stored = store.get(&stored_first.id).expect("get").expect("present");
    let stored_list = [stored];
    let (f, ev) = by_address(&stored_list)[0];
    assert_eq!(f.service.count, 2);
    assert_eq!(ev.accounts, [ACCOUNT, OTHER, THIRD]);
    assert_eq!(ev.calls.len(), 3);
    for account in [ACCOUNT, OTHER, THIRD] {
        assert!(f.description.contains(account), "{}", f.description);
    }

    // Near miss: a call into an account already named changes nothing stored.
    p.feed(&api(roaming_call(OTHER, T0 + 3 * MIN)));
    assert!(by_address(&p.drain()).is_empty());
}

// === attack sequences ===

/// Baselines that learn fast, so a test can build a principal's history in a few calls.
fn sequence_config() -> DetectorsConfig {
    let mut c = DetectorsConfig::default();
    c.api_baseline.learning_events = 3;
    c.api_baseline.learning_days = 1;
    c
}

/// Mallory's history: a few days of routine EC2 reads from the office.
fn routine(p: &mut Pipeline) {
    for i in 0..6 {
        p.feed(&api(user_call(
            "mallory",
            "ec2.amazonaws.com",
            "DescribeInstances",
            T0 + i * 12 * 3600 * 1000,
        )));
    }
}

/// Discovery, persistence and S3 exfiltration by mallory's key from a new address and tool.
fn chain(p: &mut Pipeline, start: i64, order: [usize; 3]) {
    let mut discovery = user_call("mallory", "iam.amazonaws.com", "ListUsers", 0);
    discovery.region = "ap-south-1".into();
    let mut persistence = user_call("mallory", "iam.amazonaws.com", "CreateAccessKey", 0);
    *persistence.request_parameters.value_mut() = serde_json::json!({"userName": "backup-admin"});
    let mut exfil = user_call("mallory", "s3.amazonaws.com", "GetObject", 0);
    *exfil.request_parameters.value_mut() =
        serde_json::json!({"bucketName": "payroll", "key": "all.csv"});
    // Each step is in a region mallory never used, so with its new API it is new on two
    // dimensions whatever the order (the address and tool are learned at the first step).
    exfil.region = "us-east-1".into();
    let steps = [discovery, persistence, exfil];
    for (n, i) in order.into_iter().enumerate() {
        let mut e = steps[i].clone();
        e.time_ms = start + n as i64 * 10 * MIN;
        e.source = ip("203.0.113.66");
        e.user_agent = "python-requests/2.31".into();
        p.feed(&api(e));
    }
}

fn sequence_evidence(f: &Finding) -> &SequenceEvidence {
    let Some(EvidenceDetail::ApiBehaviour(b)) = &f.service.additional_info.evidence else {
        panic!("{f:?}");
    };
    let ApiBehaviourEvidence::Sequence(ev) = &**b else {
        panic!("{b:?}");
    };
    ev
}

#[test]
fn discovery_then_persistence_then_s3_exfiltration_is_a_critical_s3_sequence() {
    let mut p = pipeline(&sequence_config());
    routine(&mut p);
    chain(&mut p, T0 + 4 * DAY, [0, 1, 2]);
    let findings = p.drain();
    let hits = of_type(&findings, FindingType::AttackSequenceS3CompromisedData);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let f = hits[0];
    assert_eq!(f.severity, 9.0);
    let ev = sequence_evidence(f);
    let types: Vec<_> = ev.signals.iter().map(|s| s.finding_type.as_str()).collect();
    assert!(
        types.contains(&"Discovery:IAMUser/AnomalousBehavior"),
        "{types:?}"
    );
    assert!(
        types.contains(&"Persistence:IAMUser/AccessKeyCreatedForOtherUser"),
        "{types:?}"
    );
    assert!(
        types.contains(&"Exfiltration:S3/AnomalousBehavior"),
        "{types:?}"
    );
    assert_eq!(ev.suppressed_signals, 0);
    assert_eq!(
        f.resource
            .s3_bucket_details
            .as_ref()
            .map(|b| b[0].name.as_str()),
        Some("payroll")
    );
}

/// A suppression rule archiving every access key created for another user (a service
/// account's routine), so the persistence step of a sequence is a suppressed signal.
fn suppress_access_keys_for_others() -> SuppressionRules {
    let filter = Filter::parse_str(
        r#"{"criterion": {"type": {"eq": ["Persistence:IAMUser/AccessKeyCreatedForOtherUser"]}}}"#,
    )
    .expect("filter");
    SuppressionRules::new(vec![SuppressionRule {
        name: "service accounts".into(),
        filter,
    }])
}

#[test]
fn a_suppressed_signal_still_completes_a_sequence_and_is_marked() {
    let mut p = pipeline_with(&sequence_config(), suppress_access_keys_for_others());
    routine(&mut p);
    chain(&mut p, T0 + 4 * DAY, [0, 1, 2]);
    let findings = p.drain();
    let persistence = of_type(
        &findings,
        FindingType::PersistenceAccessKeyCreatedForOtherUser,
    );
    assert_eq!(persistence.len(), 1);
    assert!(persistence[0].service.archived, "the rule archived it");
    let hits = of_type(&findings, FindingType::AttackSequenceS3CompromisedData);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let ev = sequence_evidence(hits[0]);
    assert_eq!(ev.suppressed_signals, 1);
    let suppressed: Vec<_> = ev
        .signals
        .iter()
        .filter(|s| s.suppressed)
        .map(|s| s.finding_type.as_str())
        .collect();
    assert_eq!(
        suppressed,
        ["Persistence:IAMUser/AccessKeyCreatedForOtherUser"]
    );
    assert!(!hits[0].service.archived);
}

#[test]
fn a_sequence_carries_guardduty_detection_sequence_listing_every_signal_suppressed_or_not() {
    let mut p = pipeline_with(&sequence_config(), suppress_access_keys_for_others());
    routine(&mut p);
    chain(&mut p, T0 + 4 * DAY, [0, 1, 2]);
    let findings = p.drain();
    let hits = of_type(&findings, FindingType::AttackSequenceS3CompromisedData);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let f = hits[0];
    let seq = f
        .service
        .detection
        .as_ref()
        .and_then(|d| d.sequence.as_ref())
        .expect("detection.sequence");
    assert_eq!(seq.uid, f.id);
    // Every signal of the evidence is a signal of the sequence, pointing at its finding.
    let ev = sequence_evidence(f);
    for s in &ev.signals {
        assert!(
            seq.signals
                .iter()
                .any(|g| g.name == s.finding_type && g.uid == s.finding_id),
            "{s:?} not in {:#?}",
            seq.signals
        );
        assert!(
            findings.iter().any(|f| f.id == s.finding_id),
            "signal {s:?} names no finding"
        );
    }
    let persistence = seq
        .signals
        .iter()
        .find(|g| g.name == "Persistence:IAMUser/AccessKeyCreatedForOtherUser")
        .expect("the suppressed signal is listed");
    assert!(
        persistence
            .description
            .as_deref()
            .is_some_and(|d| d.contains("suppression rule")),
        "{persistence:?}"
    );
    let others_marked = seq
        .signals
        .iter()
        .filter(|g| g.name != persistence.name)
        .filter(|g| {
            g.description
                .as_deref()
                .is_some_and(|d| d.contains("suppression"))
        })
        .count();
    assert_eq!(others_marked, 0);
    assert!(
        seq.signals
            .iter()
            .all(|g| g.actor_ids == [ev.principal.clone()])
    );
    assert!(
        seq.endpoints
            .iter()
            .any(|e| e.ip.as_deref() == Some("203.0.113.66"))
    );
    assert!(
        seq.resources
            .iter()
            .any(|r| r.uid == "payroll" && r.resource_type == "S3_BUCKET")
    );
    // Ordinary findings have no detection block.
    assert!(
        findings
            .iter()
            .filter(|g| g.id != f.id)
            .all(|g| g.service.detection.is_none())
    );
}

#[test]
fn the_same_steps_out_of_order_or_without_the_last_stage_are_no_sequence() {
    let mut p = pipeline(&sequence_config());
    routine(&mut p);
    // Exfiltration first, then persistence, then discovery: not the chain.
    chain(&mut p, T0 + 4 * DAY, [2, 1, 0]);
    let findings = p.drain();
    for t in [
        FindingType::DiscoveryIamAnomalousBehavior,
        FindingType::PersistenceAccessKeyCreatedForOtherUser,
        FindingType::ExfiltrationS3AnomalousBehavior,
    ] {
        assert_eq!(of_type(&findings, t).len(), 1, "every signal is there: {t}");
    }
    assert!(
        of_type(&findings, FindingType::AttackSequenceS3CompromisedData).is_empty()
            && of_type(
                &findings,
                FindingType::AttackSequenceIamCompromisedCredentials
            )
            .is_empty(),
        "{findings:#?}"
    );

    let mut p = pipeline(&sequence_config());
    routine(&mut p);
    let mut discovery = user_call("mallory", "iam.amazonaws.com", "ListUsers", T0 + 4 * DAY);
    discovery.source = ip("203.0.113.66");
    discovery.user_agent = "python-requests/2.31".into();
    let mut persistence = user_call(
        "mallory",
        "iam.amazonaws.com",
        "CreateAccessKey",
        T0 + 4 * DAY + MIN,
    );
    *persistence.request_parameters.value_mut() = serde_json::json!({"userName": "backup-admin"});
    p.feed(&api(discovery));
    p.feed(&api(persistence));
    let findings = p.drain();
    assert!(!findings.is_empty(), "the signals themselves are findings");
    assert!(
        of_type(
            &findings,
            FindingType::AttackSequenceIamCompromisedCredentials
        )
        .is_empty(),
        "{findings:#?}"
    );
}

#[test]
fn a_chain_spread_wider_than_the_window_is_no_sequence() {
    let mut config = sequence_config();
    config.attack_sequence.window_secs = 15 * 60;
    let mut p = pipeline(&config);
    routine(&mut p);
    // Steps 10 minutes apart: discovery to exfiltration is 20 minutes.
    chain(&mut p, T0 + 4 * DAY, [0, 1, 2]);
    let findings = p.drain();
    assert!(
        of_type(&findings, FindingType::AttackSequenceS3CompromisedData).is_empty(),
        "{findings:#?}"
    );
}

// === baselines through the store ===

#[test]
fn baselines_survive_a_restart_through_the_findings_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = sequence_config();
    {
        let mut p = pipeline(&config);
        routine(&mut p);
        let store = crate::findings::store::FindingStore::open(dir.path()).expect("store");
        let states = p.save_states();
        assert!(states.iter().any(|(n, _)| *n == "api_baseline"));
        store.save_detector_states(&states).expect("save");
    }
    let store = crate::findings::store::FindingStore::open(dir.path()).expect("reopen");
    let mut restored = pipeline(&config);
    let refused = restored.restore_states(|name| store.detector_state(name).expect("read"));
    assert!(refused.is_empty(), "{refused:?}");
    let mut discovery = user_call("mallory", "iam.amazonaws.com", "ListUsers", T0 + 4 * DAY);
    discovery.source = ip("203.0.113.66");
    discovery.user_agent = "python-requests/2.31".into();
    restored.feed(&api(discovery.clone()));
    let findings = restored.drain();
    assert_eq!(
        of_type(&findings, FindingType::DiscoveryIamAnomalousBehavior).len(),
        1,
        "{findings:#?}"
    );
    // Without the saved state the same call only starts a baseline.
    let mut fresh = pipeline(&config);
    fresh.feed(&api(discovery));
    assert!(fresh.drain().is_empty());
}
