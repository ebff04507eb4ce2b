//! Delivery benchmark (delivery issue). Prints:
//! - where the time goes, per stage in isolation (JSON parse of `upload`'s input, batch
//!   encode, batch decode as the aggregator does it);
//! - the agent outbox's write path, records/s with durability on (flush per batch);
//! - sustained ingest of the agent's own records (the path `run` uses: records handed to the
//!   outbox, streamed by the transport) to a real aggregator process over mTLS on loopback,
//!   records/s end to end with acks, and bytes/record on the wire;
//! - a buffered backlog of the agent's records draining to a running aggregator;
//! - the same through `picket-agent upload` (includes parsing the JSON input), and how long a
//!   backlog buffered by `upload` takes to drain once the aggregator starts.
//!
//! Run: `cargo bench -p picket-tests --bench delivery` (release binaries; `PICKET_BENCH_RECORDS`
//! sets the record count, default 1,000,000; `PICKET_BENCH_ONLY=agent` runs only the agent's
//! sustained ingest and backlog drain, the issue 6 figures, each with the CPU time the agent
//! and the aggregator process used; `PICKET_BENCH_PID_FILE=<file>` writes the sustained run's
//! aggregator pid there, to attach a profiler).

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::Result;
use picket_agent::config::{ConfigFile, Overrides, Settings};
use picket_agent::health::Health;
use picket_agent::outbox::Outbox;
use picket_agent::records_sink::RecordSink;
use picket_agent::transport::Transport;
use picket_proto::v1::{Batch, FlowSummary, Lane, Record, record};
use picket_tests::{FAST_AGENT_CONFIG, Leaf, Pki, path_str, start_agent_cmd, start_aggregator};
use prost::Message;
use tokio::sync::{Notify, watch};

/// Records per batch on the agent's own path (what `upload` uses too).
const BATCH: u64 = 1000;

const ACCOUNT: &str = "123456789012";

fn flow(i: u64) -> Record {
    Record {
        record: Some(record::Record::Flow(FlowSummary {
            interval_start_ms: 1_700_000_000_000,
            interval_end_ms: 1_700_000_060_000,
            direction: 2,
            local_addr: "10.0.3.17".into(),
            remote_addr: format!("203.0.{}.{}", (i / 250) % 250, i % 250),
            protocol: 6,
            service_port: 443,
            connections: i,
            packets_out: 12,
            packets_in: 10,
            bytes_out: 1_480,
            bytes_in: 9_600,
            distinct_ports: 3,
            first_seen_ms: 1_700_000_001_000,
            last_seen_ms: 1_700_000_059_000,
            tcp_flags: 0x1b,
            remote_answered: true,
            ..FlowSummary::default()
        })),
    }
}

fn write_input(path: &Path, n: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 1..=n {
        serde_json::to_writer(&mut f, &flow(i))?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// Each stage alone on one thread, records/s: what one record costs where.
fn breakdown(n: u64, input: &Path) -> Result<()> {
    let text = std::fs::read(input)?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .take(n as usize)
        .collect();
    let started = Instant::now();
    let mut parsed = Vec::with_capacity(lines.len());
    for l in &lines {
        parsed.push(serde_json::from_slice::<Record>(l)?);
    }
    let parse = started.elapsed().as_secs_f64();
    let batches: Vec<Batch> = parsed
        .chunks(BATCH as usize)
        .enumerate()
        .map(|(i, c)| Batch {
            seq: i as u64 + 1,
            records: c.to_vec(),
            created_at_ms: 1,
            lane: 0,
        })
        .collect();
    let started = Instant::now();
    let mut encoded = Vec::with_capacity(batches.len());
    for b in &batches {
        encoded.push(b.encode_to_vec());
    }
    let encode = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut kept = 0usize;
    for e in &encoded {
        kept += Batch::decode(e.as_slice())?.records.len();
    }
    let decode = started.elapsed().as_secs_f64();
    anyhow::ensure!(kept == parsed.len(), "decode lost records");
    let m = parsed.len() as f64;
    for (stage, secs) in [
        ("JSON parse (upload's input)", parse),
        (
            "batch encode (outbox push; aggregator store before this change)",
            encode,
        ),
        ("batch decode (aggregator, once per batch)", decode),
    ] {
        println!(
            "stage {stage}: {:.0} records/s = {:.2} µs/record",
            m / secs,
            secs * 1e6 / m
        );
    }
    Ok(())
}

fn outbox_write_path(n: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = sled::open(dir.path())?;
    let outbox = Outbox::open(&db, dir.path().to_owned(), u64::MAX)?;
    let rt = tokio::runtime::Runtime::new()?;
    let batch = BATCH;
    let started = Instant::now();
    rt.block_on(async {
        let mut i = 1;
        while i <= n {
            let records: Vec<Record> = (i..(i + batch).min(n + 1)).map(flow).collect();
            outbox.push(Lane::Bulk, records, 0).await?;
            i += batch;
        }
        anyhow::Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let stats = outbox.stats()?;
    println!(
        "outbox write path: {n} records in {secs:.2} s = {:.0} records/s (batches of {batch}, flushed each), {:.1} bytes/record encoded",
        n as f64 / secs,
        stats.bytes as f64 / n as f64
    );
    // Disk amplification: what sled holds on disk for the logical bytes, full and after half
    // the batches were acked (sled reclaims space by rewriting segments, lazily).
    db.flush()?;
    let full = dir_bytes(dir.path())?;
    let half = stats.batches / 2;
    let first = stats.first_seq.unwrap_or(1);
    outbox.ack(Lane::Bulk, first + half)?;
    db.flush()?;
    let after = outbox.stats()?;
    let halved = dir_bytes(dir.path())?;
    println!(
        "outbox on disk: {full} bytes for {} logical ({:.2}x); after acking half: {halved} bytes for {} logical ({:.2}x)",
        stats.bytes,
        full as f64 / stats.bytes.max(1) as f64,
        after.bytes,
        halved as f64 / after.bytes.max(1) as f64
    );
    Ok(())
}

/// `picket-agent run`'s transport in this process, streaming `outbox` to `addr`.
struct InProcessAgent {
    outbox: Outbox,
    sink: RecordSink,
    stop: watch::Sender<bool>,
    transport: Option<tokio::task::JoinHandle<()>>,
}

fn agent_settings(
    pki: &Pki,
    leaf: &Leaf,
    addr: &str,
    dir: &Path,
    instance: &str,
) -> Result<Settings> {
    let cfg = dir.join("agent.toml");
    std::fs::write(&cfg, FAST_AGENT_CONFIG)?;
    let file = ConfigFile::load(&cfg)?;
    Ok(Settings::resolve(
        file,
        Overrides {
            aggregator: Some(format!("https://{addr}")),
            ca: Some(pki.ca()),
            cert: Some(leaf.cert.clone()),
            key: Some(leaf.key.clone()),
            data_dir: Some(dir.to_owned()),
            account_id: Some(ACCOUNT.into()),
            instance_id: Some(instance.into()),
            ..Overrides::default()
        },
    )?)
}

impl InProcessAgent {
    /// Opens the agent's outbox; the transport starts with [`InProcessAgent::connect`].
    fn open(settings: &Settings) -> Result<(Self, sled::Db)> {
        let db = picket_agent::run::open_state(&settings.data_dir)?;
        let outbox = Outbox::open(&db, settings.data_dir.clone(), u64::MAX)?;
        let sink = RecordSink::new(
            outbox.clone(),
            Arc::new(Notify::new()),
            Arc::new(Health::default()),
        );
        let (stop, _) = watch::channel(false);
        Ok((
            Self {
                outbox,
                sink,
                stop,
                transport: None,
            },
            db,
        ))
    }

    fn connect(&mut self, settings: Settings, db: &sled::Db) -> Result<()> {
        let tls = picket_agent::tls::client_config(
            &settings.ca,
            &settings.cert,
            &settings.key,
            &settings.server_name,
        )?;
        let intel = picket_agent::intel_cache::IntelCache::open(db)?;
        // A fresh sink shares the outbox; its notify wakes this transport.
        let notify = Arc::new(Notify::new());
        let health = Arc::new(Health::default());
        self.sink = RecordSink::new(
            self.outbox.clone(),
            Arc::clone(&notify),
            Arc::clone(&health),
        );
        let transport = Transport::new(settings, tls, self.outbox.clone(), notify, health, intel);
        self.transport = Some(tokio::spawn(transport.run(self.stop.subscribe())));
        Ok(())
    }

    async fn drained(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let s = self.outbox.stats()?;
            if s.batches + s.priority_batches == 0 {
                return Ok(());
            }
            if self.transport.as_ref().is_none_or(|t| t.is_finished()) {
                anyhow::bail!("the transport stopped with {} batches unacked", s.batches);
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "{} batches still unacked after 600 s (first {:?})",
                s.batches,
                s.first_seq
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.transport.take() {
            let _ = t.await;
        }
    }
}

/// The agent's records in batches, built before any clock starts.
fn agent_batches(n: u64) -> Vec<Vec<Record>> {
    (1..=n)
        .step_by(BATCH as usize)
        .map(|i| (i..(i + BATCH).min(n + 1)).map(flow).collect())
        .collect()
}

/// Bytes per record of the batch frames on the wire, before HTTP/2 and TLS framing: the
/// encoded batch, its `AgentFrame` tag and length, and gRPC's 5-byte message header.
fn wire_bytes_per_record(batches: &[Vec<Record>]) -> f64 {
    let mut bytes = 0usize;
    let mut records = 0usize;
    for (i, b) in batches.iter().enumerate() {
        let body = Batch {
            seq: i as u64 + 1,
            records: b.clone(),
            created_at_ms: 1_700_000_000_000,
            lane: 0,
        }
        .encoded_len();
        bytes += 5 + 1 + prost::length_delimiter_len(body) + body;
        records += b.len();
    }
    bytes as f64 / records as f64
}

/// Sustained ingest of the agent's own records, and a backlog of them draining.
fn agent_ingest(n: u64) -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let rt = tokio::runtime::Runtime::new()?;
    for (instance, backlog) in [("i-0bench03", false), ("i-0bench04", true)] {
        let leaf = pki.agent(ACCOUNT, instance)?;
        let agg_dir = tempfile::tempdir()?;
        let agent_dir = tempfile::tempdir()?;
        let (agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
        let settings = agent_settings(&pki, &leaf, &addr, agent_dir.path(), instance)?;
        if let (false, Ok(file)) = (backlog, std::env::var("PICKET_BENCH_PID_FILE")) {
            // For attaching a profiler to the aggregator during the sustained run.
            std::fs::write(file, agg.pid().to_string())?;
        }
        let mut batches = agent_batches(n);
        let wire = wire_bytes_per_record(&batches);
        let n_batches = batches.len();
        let agg_pid = agg.pid().to_string();
        let (started, secs, agent_cpu, agg_start, agg_at_ack) = rt.block_on(async {
            let (mut agent, db) = InProcessAgent::open(&settings)?;
            if backlog {
                for b in std::mem::take(&mut batches) {
                    agent.sink.submit(b).await?;
                }
            } else {
                agent.connect(settings.clone(), &db)?;
            }
            let (agent_start, agg_start) = (cpu_secs("self")?, cpu_secs(&agg_pid)?);
            let started = Instant::now();
            if backlog {
                agent.connect(settings.clone(), &db)?;
            } else {
                for b in std::mem::take(&mut batches) {
                    agent.sink.submit(b).await?;
                }
            }
            agent.drained().await?;
            let secs = started.elapsed().as_secs_f64();
            let (agent_end, agg_at_ack) = (cpu_secs("self")?, cpu_secs(&agg_pid)?);
            agent.stop().await;
            anyhow::Ok((
                started,
                secs,
                agent_end - agent_start,
                agg_start,
                agg_at_ack,
            ))
        })?;
        // Detection runs after the ack, so it may still hold batches when the last ack
        // arrives: wait until it has observed every one, for the aggregator's whole CPU cost.
        let observed = |agg: &picket_tests::Proc| agg.events("agent records observed").len();
        let at_ack = observed(&agg);
        while observed(&agg) < n_batches {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "detection observed {} of {n_batches} batches after 600 s",
                observed(&agg)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let all_observed = started.elapsed().as_secs_f64();
        let agg_all = cpu_secs(&agg_pid)? - agg_start;
        let per_record = |cpu: f64| cpu * 1e6 / n as f64;
        if backlog {
            println!(
                "backlog drain (agent's records, buffered before the transport starts, aggregator up): {n} records in {secs:.2} s = {:.0} records/s",
                n as f64 / secs
            );
        } else {
            println!(
                "sustained ingest (agent's own records → outbox → mTLS → aggregator, loopback, acked): {n} records in {secs:.2} s = {:.0} records/s, {wire:.1} bytes/record on the wire (gRPC messages, before HTTP/2+TLS framing)",
                n as f64 / secs
            );
        }
        println!(
            "  CPU: agent (bench process) {:.2} µs/record; aggregator {:.2} µs/record until the last ack ({at_ack}/{n_batches} batches observed by detection then), {:.2} µs/record once detection observed all ({all_observed:.2} s after the start); agent + aggregator {:.2} µs/record",
            per_record(agent_cpu),
            per_record(agg_at_ack - agg_start),
            per_record(agg_all),
            per_record(agent_cpu + agg_all)
        );
    }
    Ok(())
}

fn ingest(n: u64, input: &Path) -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0bench01")?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let (_agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let started = Instant::now();
    let mut up = start_agent_cmd(
        "upload",
        &["--records", path_str(input)?],
        FAST_AGENT_CONFIG,
        &pki,
        &leaf,
        &addr,
        agent_dir.path(),
        ACCOUNT,
        "i-0bench01",
    )?;
    let status = up.wait_exit(Duration::from_secs(1800))?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "upload failed: {status}");
    println!(
        "sustained ingest (upload → aggregator, mTLS, loopback, acked): {n} records in {secs:.2} s = {:.0} records/s (includes reading and parsing the JSON input)",
        n as f64 / secs
    );
    Ok(())
}

fn backlog_drain(n: u64, input: &Path) -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0bench02")?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut up = start_agent_cmd(
        "upload",
        &["--records", path_str(input)?],
        FAST_AGENT_CONFIG,
        &pki,
        &leaf,
        &addr,
        agent_dir.path(),
        ACCOUNT,
        "i-0bench02",
    )?;
    up.wait_for("all input buffered; waiting for acks", 1, |_| true)?;
    let started = Instant::now();
    let (_agg, _) = start_aggregator(&pki, &server, agg_dir.path(), port, &[])?;
    let status = up.wait_exit(Duration::from_secs(1800))?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "upload failed: {status}");
    println!(
        "backlog drain: {n} buffered records delivered and acked {secs:.2} s after the aggregator started (includes its start and the agent's reconnect backoff ≤ 1 s) = {:.0} records/s",
        n as f64 / secs
    );
    Ok(())
}

fn main() -> Result<()> {
    let n: u64 = std::env::var("PICKET_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let work = tempfile::tempdir()?;
    let input = work.path().join("records.jsonl");
    write_input(&input, n)?;
    println!(
        "input: {n} flow summaries, {} bytes of JSON lines",
        std::fs::metadata(&input)?.len()
    );
    println!("load before: {}", loadavg());
    if std::env::var("PICKET_BENCH_ONLY").is_ok_and(|v| v == "agent") {
        agent_ingest(n)?;
        println!("load after: {}", loadavg());
        return Ok(());
    }
    breakdown(n.min(200_000), &input)?;
    outbox_write_path(n)?;
    agent_ingest(n)?;
    ingest(n, &input)?;
    backlog_drain(n, &input)?;
    println!("load after: {}", loadavg());
    Ok(())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// User + system CPU seconds used so far by process `pid` (`"self"`: this one), from
/// `/proc/<pid>/stat`.
fn cpu_secs(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat has no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat is short"))?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 (1-based), so 11 and 12 after the state's.
    // In clock ticks of USER_HZ, which is 100 on every Linux target.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|e| e.to_string(), |s| s.trim().to_owned())
}
