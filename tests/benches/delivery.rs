//! Delivery benchmark (delivery issue). Prints:
//! - the agent outbox's write path, records/s with durability on (flush per batch);
//! - sustained ingest from one agent (`picket-agent upload`) to the aggregator over mTLS on
//!   loopback, records/s end to end with acks, and bytes/record of the encoded batches;
//! - how long a buffered backlog takes to drain once the aggregator is back.
//!
//! Run: `cargo bench -p picket-tests --bench delivery` (release binaries; `PICKET_BENCH_RECORDS`
//! sets the record count, default 1,000,000).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use picket_agent::outbox::Outbox;
use picket_proto::v1::{FlowSummary, Lane, Record, record};
use picket_tests::{FAST_AGENT_CONFIG, Pki, path_str, start_agent_cmd, start_aggregator};

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

fn outbox_write_path(n: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = sled::open(dir.path())?;
    let outbox = Outbox::open(&db, dir.path().to_owned(), u64::MAX)?;
    let rt = tokio::runtime::Runtime::new()?;
    let batch = 1000u64;
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
    outbox_write_path(n)?;
    ingest(n, &input)?;
    backlog_drain(n, &input)?;
    Ok(())
}
