//! Per-principal API baselines, one core: memory with 1,000,000 distinct principals (bytes
//! per principal, from the table's own accounting and from the process's resident size), and
//! events per second through the detector once baselines are learned. The reference run in
//! the same process only hashes each call's dimensions and principal (the work no baseline
//! can avoid); the detector's rate is reported beside it as a ratio.
//!
//! Run: `cargo bench -p picket-aggregator --bench api_baseline`

use std::hint::black_box;
use std::time::Instant;

use picket_aggregator::cloudtrail::{ApiEvent, CallerAddress, EventOrigin, LazyJson, Principal};
use picket_aggregator::detectors::api_baseline::profile::{CallKeys, stable_hash};
use picket_aggregator::detectors::api_baseline::{ApiBaselineConfig, ApiBaselineDetector};
use picket_aggregator::detectors::window::SharedNames;
use picket_aggregator::detectors::{Detector, Event, EventFacts};

const PRINCIPALS: usize = 1_000_000;
const STEADY_PRINCIPALS: usize = 10_000;
const STEADY_EVENTS: usize = 2_000_000;
const T0: i64 = 1_700_000_000_000;

const APIS: [(&str, &str); 8] = [
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "ListBuckets"),
    ("iam.amazonaws.com", "ListUsers"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("ec2.amazonaws.com", "DescribeSecurityGroups"),
    ("lambda.amazonaws.com", "ListFunctions"),
    ("s3.amazonaws.com", "PutObject"),
];

fn template() -> ApiEvent {
    ApiEvent {
        event_id: String::new(),
        time_ms: T0,
        event_source: String::new(),
        event_name: String::new(),
        event_type: "AwsApiCall".into(),
        region: "eu-west-1".into(),
        recipient_account_id: "111111111111".into(),
        principal: Principal {
            kind: "IAMUser".into(),
            arn: String::with_capacity(64),
            account_id: "111111111111".into(),
            ..Principal::default()
        },
        source: CallerAddress::Ip([198, 51, 100, 10].into()),
        user_agent: "aws-cli/2.13.5 Python/3.11.4".into(),
        error_code: String::new(),
        error_message: String::new(),
        read_only: Some(true),
        request_parameters: LazyJson::null(),
        response_elements: LazyJson::null(),
        additional_event_data: LazyJson::null(),
        resources: Vec::new(),
        vpc_endpoint_id: None,
        origin: EventOrigin::default(),
    }
}

/// Rewrites the template in place as call `i` of principal `p` (no allocation once warm).
fn set(e: &mut ApiEvent, p: usize, i: usize, at_ms: i64) {
    use std::fmt::Write;
    e.principal.arn.clear();
    let _ = write!(e.principal.arn, "arn:aws:iam::111111111111:user/u{p}");
    let (source, name) = APIS[i % APIS.len()];
    e.event_source.clear();
    e.event_source.push_str(source);
    e.event_name.clear();
    e.event_name.push_str(name);
    e.source = CallerAddress::Ip([198, 51, 100, (p % 200) as u8].into());
    e.time_ms = at_ms;
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    // Memory: one event each for 1,000,000 principals.
    let mut d = ApiBaselineDetector::new(ApiBaselineConfig::default());
    let mut names = SharedNames::default();
    let mut event = Event::Api(Box::new(template()));
    let mut out = Vec::new();
    let rss_before = rss_bytes();
    let start = Instant::now();
    for p in 0..PRINCIPALS {
        if let Event::Api(e) = &mut event {
            set(e, p, p, T0 + p as i64);
        }
        d.observe(&event, &EventFacts::of(&event, &mut names), &mut out);
    }
    let fill = start.elapsed();
    let rss_after = rss_bytes();
    assert_eq!(d.tracked_keys(), PRINCIPALS);
    let table = d.approx_bytes();
    println!(
        "api_baseline memory: {} principals, table {:.1} MiB = {:.1} bytes/principal",
        d.tracked_keys(),
        table as f64 / 1048576.0,
        table as f64 / PRINCIPALS as f64
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!(
            "api_baseline memory: resident size grew {:.1} MiB = {:.1} bytes/principal",
            b.saturating_sub(a) as f64 / 1048576.0,
            b.saturating_sub(a) as f64 / PRINCIPALS as f64
        );
    }
    println!(
        "api_baseline fill: {:.0} new principals/s",
        PRINCIPALS as f64 / fill.as_secs_f64()
    );
    let state = d.save_state().unwrap_or_default();
    println!(
        "api_baseline persisted state: {:.1} MiB ({:.1} bytes/principal)",
        state.len() as f64 / 1048576.0,
        state.len() as f64 / PRINCIPALS as f64
    );
    drop(state);
    drop(d);

    // Throughput: learned principals calling their usual APIs (and now and then a new one).
    let config = ApiBaselineConfig {
        learning_events: 10,
        learning_days: 0,
        ..ApiBaselineConfig::default()
    };
    let mut d = ApiBaselineDetector::new(config);
    let mut names = SharedNames::default();
    for i in 0..STEADY_PRINCIPALS * 20 {
        if let Event::Api(e) = &mut event {
            set(
                e,
                i % STEADY_PRINCIPALS,
                i / STEADY_PRINCIPALS % 6,
                T0 + i as i64,
            );
        }
        d.observe(&event, &EventFacts::of(&event, &mut names), &mut out);
    }
    out.clear();

    let start = Instant::now();
    let mut floor = 0u64;
    for i in 0..STEADY_EVENTS {
        if let Event::Api(e) = &mut event {
            set(e, i % STEADY_PRINCIPALS, i, T0 + i as i64);
            let k = CallKeys::of(e);
            floor ^= k.api ^ k.network ^ stable_hash(&[e.principal.arn.as_bytes()]);
        }
    }
    black_box(floor);
    let reference = start.elapsed();

    let start = Instant::now();
    for i in 0..STEADY_EVENTS {
        if let Event::Api(e) = &mut event {
            set(e, i % STEADY_PRINCIPALS, i, T0 + i as i64);
        }
        d.observe(&event, &EventFacts::of(&event, &mut names), &mut out);
        out.clear();
    }
    let detector = start.elapsed();
    let ref_rate = STEADY_EVENTS as f64 / reference.as_secs_f64();
    let rate = STEADY_EVENTS as f64 / detector.as_secs_f64();
    println!("api_baseline reference (rewrite event + hash dimensions): {ref_rate:.0} events/s");
    println!(
        "api_baseline detector: {rate:.0} events/s ({:.2}x the reference's time)",
        detector.as_secs_f64() / reference.as_secs_f64()
    );
}
