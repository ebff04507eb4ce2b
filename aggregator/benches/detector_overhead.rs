//! What the detectors add to `analyze`: the same generated agent records (JSON lines, ≥ 1 M)
//! through `analyze::read_only` (the reference: `analyze`'s own reading and parsing with the
//! detectors off), then through `analyze::analyze` with every detector, correlation and the
//! finding engine on. Each side runs twice, alternating, and keeps its best. Prints both times
//! (wall clock, and the thread's CPU time where the kernel reports it), the ratio and the overhead
//! (the target is ≤ 20%), then each detector's own time and observation count over the same records
//! so a regression can be pinned on one.
//!
//! The input is an hour-long-ish fleet of 200 instances (a fifth on IPv6): HTTPS to a pool of
//! public remotes, DNS flows to the VPC resolver, inbound SSH, scan noise, a beacon per
//! instance, DNS summaries, host stats and a few intel hits. Baseline learning is shortened to
//! ten minutes so the baseline detectors judge most of the input instead of only learning.
//!
//! Run: `cargo bench -p picket-aggregator --bench detector_overhead [-- RECORDS [RUNS]]`

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use picket_aggregator::analyze::{AnalyzeOptions, analyze, read_only};
use picket_aggregator::detectors::window::SharedNames;
use picket_aggregator::detectors::{
    self, AgentSource, DetectorContext, DetectorsConfig, Event, EventFacts,
};
use picket_aggregator::findings::engine::EngineConfig;
use picket_aggregator::findings::suppression::SuppressionRules;
use picket_proto::v1::record::Record as R;
use picket_proto::v1::{
    Direction, DnsSummary, FlowSummary, HostStats, IntelHit, MatchSite, Record, TypeCount,
};
use serde::{Deserialize, Serialize};

const T0: i64 = 1_700_000_000_000;
const INSTANCES: u64 = 200;
/// Records per simulated minute across the fleet.
const PER_MINUTE: u64 = 20_000;

/// SplitMix64: a tiny deterministic generator, so the input is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Serialize)]
struct Line<'a> {
    account_id: &'a str,
    instance_id: &'a str,
    region: &'a str,
    record: &'a Record,
}

fn addrs(instance: u64, v6: bool) -> (String, String) {
    if v6 {
        (format!("2001:db8:a::{instance:x}"), "fd00:ec2::253".into())
    } else {
        (
            format!("10.0.{}.{}", instance / 250, instance % 250 + 1),
            "10.0.0.2".into(),
        )
    }
}

fn public(v6: bool, n: u64) -> String {
    if v6 {
        format!("2001:db8:{:x}::{:x}", 1 + n / 60_000, n % 60_000 + 1)
    } else {
        format!("198.{}.{}.{}", 18 + (n >> 16) % 2, (n >> 8) % 256, n % 256)
    }
}

fn flow_base(local: &str, remote: String, egress: bool, port: u32, at: i64) -> FlowSummary {
    FlowSummary {
        interval_start_ms: at - at % 60_000,
        interval_end_ms: at - at % 60_000 + 60_000,
        direction: if egress {
            Direction::Egress
        } else {
            Direction::Ingress
        } as i32,
        local_addr: local.to_owned(),
        remote_addr: remote,
        protocol: 6,
        service_port: port,
        connections: 1,
        packets_out: 12,
        packets_in: 14,
        bytes_out: 1_400,
        bytes_in: 9_000,
        first_seen_ms: at - 2_000,
        last_seen_ms: at,
        remote_answered: true,
        ..FlowSummary::default()
    }
}

fn record(i: u64, rng: &mut Rng) -> (u64, Record) {
    let instance = i % INSTANCES;
    let v6 = instance % 5 == 0;
    let minute = i / PER_MINUTE;
    let at = T0 + i64::try_from(minute * 60_000 + rng.below(60_000)).unwrap_or(0);
    let (local, resolver) = addrs(instance, v6);
    let kind = rng.below(100);
    let body = match kind {
        0..55 => {
            let mut f = flow_base(&local, public(v6, rng.below(20_000)), true, 443, at);
            f.connections = 1 + rng.below(4);
            f.bytes_out = 500 + rng.below(200_000);
            f.bytes_in = 2_000 + rng.below(2_000_000);
            f.app_protocol = "tls".into();
            f.tls_server_names = vec![format!("svc{}.example.com", rng.below(500))];
            R::Flow(f)
        }
        55..65 => {
            let mut f = flow_base(&local, resolver.clone(), true, 53, at);
            f.protocol = 17;
            f.connections = 1 + rng.below(30);
            R::Flow(f)
        }
        65..70 => {
            let mut f = flow_base(&local, public(v6, rng.below(50_000)), false, 22, at);
            f.short_connections = rng.below(3);
            f.app_protocol = "ssh".into();
            R::Flow(f)
        }
        70..72 => {
            let mut f = flow_base(&local, public(v6, rng.below(50_000)), false, 0, at);
            f.remote_answered = false;
            f.unanswered_syns = 1 + rng.below(20);
            f.distinct_ports = f.unanswered_syns;
            f.bytes_in = 0;
            f.packets_in = 0;
            R::Flow(f)
        }
        72..74 => {
            // One beacon per instance: the same remote, about once a minute.
            let mut f = flow_base(&local, public(v6, 60_000 + instance), true, 8443, at);
            f.bytes_out = 600 + rng.below(20);
            R::Flow(f)
        }
        74..97 => {
            let domain = format!("site{}.example", rng.below(2_000));
            R::Dns(DnsSummary {
                interval_start_ms: at - at % 60_000,
                interval_end_ms: at - at % 60_000 + 60_000,
                client_addr: local.clone(),
                registered_domain: domain.clone(),
                queries: 1 + rng.below(20),
                queries_by_type: vec![TypeCount {
                    qtype: "A".into(),
                    count: 1,
                }],
                responses: 1,
                distinct_names: 1 + rng.below(4),
                max_label_len: 8,
                mean_label_len: 5.0,
                mean_label_entropy: 2.1,
                example_names: vec![format!("www.{domain}")],
                resolvers: vec![resolver],
                first_seen_ms: at - 1_000,
                last_seen_ms: at,
                ..DnsSummary::default()
            })
        }
        97..99 => R::HostStats(HostStats {
            interval_start_ms: at - at % 60_000,
            interval_end_ms: at - at % 60_000 + 60_000,
            packets: 100_000,
            bytes: 50_000_000,
            flows_active: 3_000,
            ..HostStats::default()
        }),
        _ => R::IntelHit(IntelHit {
            observed_at_ms: at,
            matched_value: public(v6, 7),
            indicator: public(v6, 7),
            list_name: "bench".into(),
            category: "c2".into(),
            site: MatchSite::RemoteAddr as i32,
            direction: Direction::Egress as i32,
            local_addr: local,
            remote_addr: public(v6, 7),
            protocol: 6,
            remote_port: 443,
            ..IntelHit::default()
        }),
    };
    (instance, Record { record: Some(body) })
}

fn generate(path: &Path, records: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::new(File::create(path)?);
    let mut rng = Rng(42);
    for i in 0..records {
        let (instance, rec) = record(i, &mut rng);
        let id = format!("i-{instance:017x}");
        let line = Line {
            account_id: "123456789012",
            instance_id: &id,
            region: "eu-west-1",
            record: &rec,
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

#[derive(Deserialize)]
struct Identified {
    account_id: String,
    instance_id: String,
    region: String,
    record: Record,
}

fn config() -> DetectorsConfig {
    let mut c = DetectorsConfig::default();
    c.network_port_unusual.learning_secs = 600;
    c.traffic_volume_unusual.learning_secs = 600;
    c.spambot.learning_secs = 600;
    c.unusual_dns_resolver.learning_secs = 600;
    c
}

/// Each detector's own time and observations over every record of `path`, slowest last.
fn per_detector(path: &Path) -> std::io::Result<Vec<(&'static str, Duration, u64)>> {
    let mut detectors = detectors::all(&config(), &DetectorContext::default());
    let mut spent = vec![(Duration::ZERO, 0u64); detectors.len()];
    let mut obs = Vec::new();
    let mut names = SharedNames::default();
    let reader = BufReader::new(File::open(path)?);
    for line in reader.lines() {
        let Ok(r) = serde_json::from_str::<Identified>(&line?) else {
            continue;
        };
        let event = Event::Agent {
            source: AgentSource {
                account_id: r.account_id,
                instance_id: r.instance_id,
                region: r.region,
            },
            record: r.record,
        };
        let Some(kind) = event.kind() else {
            continue;
        };
        // Worked out once per record, as the pipeline does, outside every detector's time.
        let facts = EventFacts::of(&event, &mut names);
        for (d, (t, n)) in detectors.iter_mut().zip(spent.iter_mut()) {
            if d.inputs().contains(&kind) {
                let start = Instant::now();
                d.observe(&event, &facts, &mut obs);
                *t += start.elapsed();
                *n += obs.len() as u64;
                obs.clear();
            }
        }
    }
    let mut out: Vec<_> = detectors
        .iter()
        .zip(spent)
        .map(|(d, (t, n))| (d.name(), t, n))
        .collect();
    out.sort_by_key(|&(_, t, _)| t);
    Ok(out)
}

/// This thread's time on a CPU so far (`/proc/thread-self/schedstat`), when the kernel tells:
/// on a shared, loaded machine the wall clock also counts time spent waiting for a core, which
/// lands on either side at random, while CPU time mostly does not.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f`, returning its result with the wall time and CPU time (when known) it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Option<Duration>) {
    let cpu = cpu_time();
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed();
    let cpu = cpu.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    (out, wall, cpu)
}

/// The aggregator binary's allocator (see `src/main.rs`), so both runs see what `analyze` sees.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    // Positional numbers after `--`: records (default 1 M), then runs of each side (default 2).
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let records = numbers.first().copied().unwrap_or(1_000_000);
    let runs = numbers.get(1).copied().unwrap_or(2).max(1);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("records.jsonl");
    let start = Instant::now();
    let bytes = generate(&path, records)?;
    println!(
        "generated {records} records ({:.0} MB) in {:.1?}",
        bytes as f64 / 1e6,
        start.elapsed()
    );

    let opts = AnalyzeOptions {
        agent_records: vec![path.clone()],
        identity_from_replay_stats: false,
        default_source: AgentSource {
            account_id: "000000000000".into(),
            instance_id: "i-00000000".into(),
            region: "us-east-1".into(),
        },
        engine: EngineConfig::default(),
        rules: SuppressionRules::default(),
        detectors: config(),
        context: DetectorContext::default(),
        cloudtrail: Vec::new(),
    };
    // Warm the page cache so neither run pays for the first read.
    read_only(&opts).map_err(std::io::Error::other)?;
    // Alternate the two runs and keep each one's best, so a burst of load from elsewhere on
    // the machine does not land on one side only.
    let (mut reference, mut full) = (Duration::MAX, Duration::MAX);
    let (mut reference_cpu, mut full_cpu) = (None::<Duration>, None::<Duration>);
    let best = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let (mut parsed, mut report) = (0, None);
    for _ in 0..runs {
        let (r, wall, cpu) = timed(|| read_only(&opts));
        parsed = r.map_err(std::io::Error::other)?.records;
        reference = reference.min(wall);
        reference_cpu = best(reference_cpu, cpu);
        let (r, wall, cpu) = timed(|| analyze(&opts));
        report = Some(r.map_err(std::io::Error::other)?);
        full = full.min(wall);
        full_cpu = best(full_cpu, cpu);
    }
    let report = report.ok_or_else(|| std::io::Error::other("no run"))?;
    assert_eq!(report.records, parsed, "both runs read the same records");

    let per_s = |d: Duration| parsed as f64 / d.as_secs_f64();
    println!(
        "analyze, detectors off (read + parse only): {reference:.2?}  ({:.0} records/s)",
        per_s(reference)
    );
    println!(
        "analyze, every detector (+ correlation, engine, suppression): {full:.2?}  ({:.0} records/s), {} findings",
        per_s(full),
        report.findings.len()
    );
    let ratio = full.as_secs_f64() / reference.as_secs_f64();
    println!(
        "ratio {ratio:.3} → detectors add {:.1}% (target ≤ 20%)",
        (ratio - 1.0) * 100.0
    );
    if let (Some(r), Some(f)) = (reference_cpu, full_cpu) {
        let ratio = f.as_secs_f64() / r.as_secs_f64();
        println!(
            "CPU time (this thread on a core; steadier than wall time on a loaded machine): \
             detectors off {r:.2?}, every detector {f:.2?}, ratio {ratio:.3} → detectors add {:.1}%",
            (ratio - 1.0) * 100.0
        );
    }

    println!("per detector over all {parsed} records (observe only, timed per call):");
    for (name, t, n) in per_detector(&path)? {
        println!(
            "  {name:<24} {t:>10.2?}  ({:>6.0} ns/record)  {n} observations",
            t.as_nanos() as f64 / parsed as f64
        );
    }
    Ok(())
}
