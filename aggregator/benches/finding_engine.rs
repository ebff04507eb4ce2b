//! Finding engine throughput, one core: observations per second through `FindingEngine::observe`
//! when most observations repeat an open finding (the common case), when every one creates a
//! finding (the worst case), and through the whole pipeline from `IntelHit` records. The id hash
//! alone is run first as the in-process baseline the others are compared with.
//!
//! Run: `cargo bench -p picket-aggregator --bench finding_engine`

use std::hint::black_box;
use std::time::Instant;

use picket_aggregator::detectors::{
    Activity, AgentSource, ConnectionDirection, Event, EvidenceDetail, NetworkActivity,
    Observation, ResourceRef, ResourceRole, ThreatIntel,
};
use picket_aggregator::findings::engine::{EngineConfig, FindingEngine, FindingId};
use picket_aggregator::findings::model::Timestamp;
use picket_aggregator::findings::suppression::{Filter, SuppressionRule, SuppressionRules};
use picket_aggregator::findings::types::FindingType;
use picket_aggregator::pipeline::{Clock, Pipeline};
use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, IntelHit, MatchSite, Record};

fn observation(i: usize) -> Observation {
    let remote = format!("198.51.{}.{}", (i / 250) % 250, i % 250);
    Observation {
        finding_type: FindingType::ALL[i % 4],
        account_id: format!("{:012}", 100_000_000_000 + (i % 7)),
        region: "eu-west-1".into(),
        resource: ResourceRef::Instance {
            instance_id: format!("i-{:017x}", i % 97),
            private_ip: Some("10.0.0.5".into()),
        },
        role: ResourceRole::Actor,
        activity: Activity::Network(NetworkActivity {
            direction: ConnectionDirection::Outbound,
            protocol: 6,
            local_ip: "10.0.0.5".into(),
            local_port: 40_000,
            remote_ip: remote,
            remote_port: 443,
        }),
        at_ms: 1_700_000_000_000,
        threat_intel: Some(ThreatIntel {
            list_name: "bench".into(),
            threat_names: vec!["bench".into()],
        }),
        severity: None,
        evidence: EvidenceDetail::Sample,
    }
}

fn rules() -> SuppressionRules {
    let filter = Filter::parse_str(
        r#"{"criterion": {"type": {"eq": ["Recon:EC2/Portscan"]}, "severity": {"gte": 7}}}"#,
    )
    .unwrap_or_else(|e| panic!("bench filter: {e}"));
    SuppressionRules::new(vec![SuppressionRule {
        name: "bench".into(),
        filter,
    }])
}

fn report(label: &str, n: usize, secs: f64, baseline: Option<f64>) -> f64 {
    let rate = n as f64 / secs;
    match baseline {
        Some(b) => println!(
            "{label:<44} {rate:>12.0} observations/s  ({:.2}x the id-hash baseline's time)",
            b / rate
        ),
        None => println!("{label:<44} {rate:>12.0} observations/s"),
    }
    rate
}

fn main() {
    const DISTINCT: usize = 10_000;
    const N: usize = 2_000_000;
    let pool: Vec<Observation> = (0..DISTINCT).map(observation).collect();

    // Baseline: only the finding key's SHA-256, the floor of any per-observation work.
    let start = Instant::now();
    for i in 0..N {
        black_box(FindingId::of(&pool[i % DISTINCT]));
    }
    let baseline = report(
        "id hash only (baseline)",
        N,
        start.elapsed().as_secs_f64(),
        None,
    );

    // Common case: repeats of open findings (10,000 distinct keys).
    let mut engine = FindingEngine::new(EngineConfig::default(), rules());
    let start = Instant::now();
    for i in 0..N {
        let at = Timestamp(1_700_000_000_000 + i as i64);
        black_box(engine.observe(&pool[i % DISTINCT], at));
    }
    let repeats = report(
        "engine, 10k distinct keys, mostly repeats",
        N,
        start.elapsed().as_secs_f64(),
        Some(baseline),
    );
    assert_eq!(engine.drain().len(), DISTINCT);

    // Worst case: every observation creates a finding.
    const FRESH: usize = 200_000;
    let fresh: Vec<Observation> = (0..FRESH).map(|i| observation(i * 31 + 7)).collect();
    let mut engine = FindingEngine::new(EngineConfig::default(), rules());
    let start = Instant::now();
    for o in &fresh {
        black_box(engine.observe(o, Timestamp(o.at_ms)));
    }
    let observed = start.elapsed().as_secs_f64();
    report(
        "engine, every observation a new finding",
        FRESH,
        observed,
        Some(baseline),
    );
    let drained = black_box(engine.drain());
    report(
        "  the same, including the drain",
        FRESH,
        start.elapsed().as_secs_f64(),
        Some(baseline),
    );
    drop(drained);

    // Whole pipeline: IntelHit records through the detectors and the engine.
    let source = AgentSource {
        account_id: "123456789012".into(),
        instance_id: "i-0abc".into(),
        region: "eu-west-1".into(),
    };
    let events: Vec<Event> = (0..DISTINCT)
        .map(|i| Event::Agent {
            source: source.clone(),
            record: Record {
                record: Some(R::IntelHit(IntelHit {
                    observed_at_ms: 1_700_000_000_000,
                    matched_value: format!("198.51.{}.{}", i / 250, i % 250),
                    indicator: "198.51.0.0/16".into(),
                    list_name: "bench".into(),
                    category: ["c2", "crypto", "tor", "custom"][i % 4].into(),
                    site: MatchSite::RemoteAddr as i32,
                    direction: Direction::Egress as i32,
                    local_addr: "10.0.0.5".into(),
                    remote_addr: format!("198.51.{}.{}", i / 250, i % 250),
                    protocol: 6,
                    local_port: 40_000,
                    remote_port: 443,
                    ..IntelHit::default()
                })),
            },
        })
        .collect();
    const EVENTS: usize = 1_000_000;
    let mut pipeline = Pipeline::new(
        EngineConfig::default(),
        rules(),
        Clock::EventTime,
        &Default::default(),
        &Default::default(),
    );
    let start = Instant::now();
    for i in 0..EVENTS {
        pipeline.feed(&events[i % DISTINCT]);
    }
    report(
        "pipeline: IntelHit records -> findings",
        EVENTS,
        start.elapsed().as_secs_f64(),
        Some(baseline),
    );
    black_box(pipeline.drain());
    println!("target: >= 200000 observations/s on one core (engine, repeats)");
    if repeats < 200_000.0 {
        println!("BELOW TARGET");
    }
}
