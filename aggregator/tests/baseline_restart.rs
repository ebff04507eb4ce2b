//! Baselines survive an aggregator restart: what the baseline detectors learned is saved into
//! the findings store (sled on disk) and restored into a fresh pipeline, which then judges new
//! activity against it instead of learning from scratch.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use picket_aggregator::detectors::{AgentSource, DetectorContext, DetectorsConfig, Event};
use picket_aggregator::findings::engine::EngineConfig;
use picket_aggregator::findings::store::FindingStore;
use picket_aggregator::findings::suppression::SuppressionRules;
use picket_aggregator::pipeline::{Clock, Pipeline};
use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, DnsSummary, FlowSummary, Record};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn source() -> AgentSource {
    AgentSource {
        account_id: "123456789012".into(),
        instance_id: "i-0restart".into(),
        region: "eu-west-1".into(),
    }
}

fn flow(local: &str, remote: &str, port: u32, bytes_out: u64, at: i64) -> Event {
    Event::Agent {
        source: source(),
        record: Record {
            record: Some(R::Flow(FlowSummary {
                interval_start_ms: at - 60_000,
                interval_end_ms: at,
                direction: Direction::Egress as i32,
                local_addr: local.into(),
                remote_addr: remote.into(),
                protocol: 6,
                service_port: port,
                connections: 1,
                packets_out: 10,
                packets_in: 10,
                bytes_out,
                bytes_in: 2_000,
                first_seen_ms: at - 1_000,
                last_seen_ms: at,
                remote_answered: true,
                ..FlowSummary::default()
            })),
        },
    }
}

fn dns(client: &str, resolver: &str, at: i64) -> Event {
    Event::Agent {
        source: source(),
        record: Record {
            record: Some(R::Dns(DnsSummary {
                interval_start_ms: at - 60_000,
                interval_end_ms: at,
                client_addr: client.into(),
                registered_domain: "example.com".into(),
                queries: 2,
                responses: 2,
                distinct_names: 1,
                example_names: vec!["www.example.com".into()],
                resolvers: vec![resolver.into()],
                first_seen_ms: at - 1_000,
                last_seen_ms: at,
                ..DnsSummary::default()
            })),
        },
    }
}

/// One hour of learning, 20 observations for each baseline detector.
fn config() -> DetectorsConfig {
    let mut c = DetectorsConfig::default();
    c.network_port_unusual.learning_secs = 3_600;
    c.network_port_unusual.min_observations = 20;
    c.traffic_volume_unusual.learning_secs = 3_600;
    c.traffic_volume_unusual.min_observations = 20;
    c.spambot.learning_secs = 3_600;
    c.spambot.min_observations = 20;
    c.unusual_dns_resolver.learning_secs = 3_600;
    c.unusual_dns_resolver.min_observations = 20;
    c
}

fn pipeline() -> Pipeline {
    Pipeline::new(
        EngineConfig::default(),
        SuppressionRules::default(),
        Clock::EventTime,
        &config(),
        &DetectorContext::default(),
    )
}

/// `v4` for an IPv4 host, else `v6`.
fn pick(local: &str, v4: &str, v6: &str) -> String {
    if local.contains(':') { v6 } else { v4 }.to_owned()
}

/// Two hours of an ordinary host: HTTPS of up to a few megabytes at irregular times, DNS through the VPC
/// resolver and one public resolver.
fn learning(local: &str) -> Vec<Event> {
    let web = pick(local, "192.0.2.80", "2001:db8:80::1");
    let vpc = pick(local, "10.0.0.2", "fd00:ec2::253");
    let public = pick(local, "192.0.2.53", "2001:db8:53::1");
    // Irregular, as people and cron jobs are (a regular series would be a beacon).
    const GAPS: [i64; 7] = [5_000, 20_000, 60_000, 150_000, 40_000, 90_000, 10_000];
    const SIZES: [u64; 5] = [100_000, 3_000_000, 700_000, 40_000, 1_500_000];
    let mut at = T0;
    (0..160)
        .flat_map(|i| {
            at += GAPS[i % GAPS.len()];
            [
                flow(local, &web, 443, SIZES[i % SIZES.len()], at),
                dns(local, &vpc, at),
                dns(local, &public, at),
            ]
        })
        .collect()
}

/// After the learning period: a log4j-style LDAP callback, a gigabyte upload, a spam burst and
/// a new public resolver.
fn anomalies(local: &str) -> Vec<Event> {
    let at = T0 + 3 * HOUR;
    let mut events = vec![
        flow(
            local,
            &pick(local, "203.0.113.66", "2001:db8:66::1"),
            1389,
            3_000,
            at,
        ),
        flow(
            local,
            &pick(local, "203.0.113.77", "2001:db8:77::1"),
            443,
            1 << 30,
            at,
        ),
        dns(local, &pick(local, "198.51.100.53", "2001:db8:53::2"), at),
    ];
    events.extend((0..20).map(|i| {
        let mx = pick(
            local,
            &format!("198.51.100.{i}"),
            &format!("2001:db8:25::{i:x}"),
        );
        flow(local, &mx, 25, 4_000, at + i)
    }));
    events
}

fn finding_types(p: &mut Pipeline) -> BTreeSet<String> {
    p.drain()
        .into_iter()
        .map(|f| f.finding_type.name().to_owned())
        .collect()
}

fn reopen(dir: &Path) -> FindingStore {
    // sled's background flusher may hold the lock a moment after the drop (same process only;
    // a restart is a new process): wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match FindingStore::open(dir) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("reopen kept failing: {e}"),
        }
    }
}

const BASELINE_TYPES: [&str; 4] = [
    "Backdoor:EC2/Spambot",
    "Behavior:EC2/NetworkPortUnusual",
    "Behavior:EC2/TrafficVolumeUnusual",
    "DefenseEvasion:EC2/UnusualDNSResolver",
];

#[test]
fn baselines_saved_in_the_findings_store_are_restored_by_a_fresh_pipeline_ipv4_and_ipv6() {
    for local in ["10.0.0.5", "2001:db8::5"] {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut before = pipeline();
            for e in learning(local) {
                before.feed(&e);
            }
            let quiet = finding_types(&mut before);
            assert!(quiet.is_empty(), "learning is quiet: {quiet:?}");
            let states = before.save_states();
            let names: BTreeSet<&str> = states.iter().map(|(n, _)| *n).collect();
            for name in [
                "network_port_unusual",
                "traffic_volume_unusual",
                "spambot",
                "unusual_dns_resolver",
            ] {
                assert!(names.contains(name), "{name} saved nothing: {names:?}");
            }
            let store = FindingStore::open(dir.path()).expect("store");
            store.save_detector_states(&states).expect("saved");
        }

        let store = reopen(dir.path());
        let mut after = pipeline();
        let refused = after.restore_states(|name| store.detector_state(name).expect("readable"));
        assert!(refused.is_empty(), "{refused:?}");
        for e in anomalies(local) {
            after.feed(&e);
        }
        let found = finding_types(&mut after);
        for t in BASELINE_TYPES {
            assert!(found.contains(t), "{local}: {t} missing from {found:?}");
        }

        // Without the saved state the same activity is only the start of a new learning period.
        let mut amnesiac = pipeline();
        for e in anomalies(local) {
            amnesiac.feed(&e);
        }
        let found = finding_types(&mut amnesiac);
        for t in BASELINE_TYPES {
            assert!(
                !found.contains(t),
                "{local}: {t} without a baseline: {found:?}"
            );
        }
    }
}

#[test]
fn a_damaged_saved_state_is_refused_naming_the_detector_and_it_relearns() {
    let mut p = pipeline();
    let refused = p.restore_states(|name| (name == "spambot").then(|| b"{not json".to_vec()));
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "spambot");
    for e in learning("10.0.0.5") {
        p.feed(&e);
    }
    assert!(finding_types(&mut p).is_empty());
}
