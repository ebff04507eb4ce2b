//! End-to-end delivery tests (delivery issue): real processes, real mTLS, real sled. Records
//! carry a unique id (`FlowSummary.connections`) and are counted at the aggregator's store.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use picket_aggregator::certs::LeafKind;
use picket_aggregator::ingest::BatchStore;
use picket_proto::AgentId;
use picket_proto::v1::{FlowSummary, Record, record};
use picket_tests::{
    FAST_AGENT_CONFIG, Leaf, Pki, Proc, path_str, start_agent_cmd, start_aggregator,
};

const ACCOUNT: &str = "123456789012";

/// Writes records with ids `ids` as JSON lines.
fn write_records(path: &Path, ids: std::ops::RangeInclusive<u64>) -> Result<()> {
    let mut out = String::new();
    for id in ids {
        let r = Record {
            record: Some(record::Record::Flow(FlowSummary {
                connections: id,
                remote_addr: format!("198.51.100.{}", id % 250),
                local_addr: "10.0.0.5".into(),
                protocol: 6,
                service_port: 443,
                ..FlowSummary::default()
            })),
        };
        out.push_str(&serde_json::to_string(&r)?);
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// Every flow id stored for the agent, with how often each arrived.
fn ids_at_aggregator(agg_dir: &Path, instance: &str) -> Result<BTreeMap<u64, u32>> {
    let store = BatchStore::open(agg_dir)?;
    let (batches, bad) = store.batches_of(&AgentId::new(ACCOUNT, instance)?)?;
    ensure!(bad == 0, "{bad} stored batches do not decode");
    let mut seen = BTreeMap::new();
    for b in batches {
        for r in b.records {
            if let Some(record::Record::Flow(f)) = r.record {
                *seen.entry(f.connections).or_insert(0) += 1;
            }
        }
    }
    Ok(seen)
}

/// Bytes of every file below `dir`.
fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

fn assert_exactly_once(seen: &BTreeMap<u64, u32>, n: u64) {
    let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicates at the aggregator: {dups:?}");
    let missing: Vec<u64> = (1..=n).filter(|i| !seen.contains_key(i)).take(5).collect();
    assert!(
        missing.is_empty(),
        "missing at the aggregator (first few): {missing:?}"
    );
    assert_eq!(seen.len() as u64, n);
}

struct Setup {
    pki: Pki,
    server: Leaf,
    leaf: Leaf,
    agg_dir: tempfile::TempDir,
    agent_dir: tempfile::TempDir,
    input: std::path::PathBuf,
}

fn setup(instance: &str, n: u64) -> Result<Setup> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, instance)?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let input = agent_dir.path().join("records.jsonl");
    write_records(&input, 1..=n)?;
    Ok(Setup {
        pki,
        server,
        leaf,
        agg_dir,
        agent_dir,
        input,
    })
}

fn upload(s: &Setup, addr: &str, instance: &str, config: &str) -> Result<Proc> {
    start_agent_cmd(
        "upload",
        &["--records", path_str(&s.input)?],
        config,
        &s.pki,
        &s.leaf,
        addr,
        s.agent_dir.path(),
        ACCOUNT,
        instance,
    )
}

/// A free loopback port (bound, read, released) for an aggregator that starts later.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[test]
fn records_buffered_while_the_aggregator_is_down_all_arrive_exactly_once() -> Result<()> {
    let n = 20_000;
    let s = setup("i-0d01", n)?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut up = upload(&s, &addr, "i-0d01", FAST_AGENT_CONFIG)?;
    up.wait_for("all input buffered; waiting for acks", 1, |_| true)?;
    up.wait_for("connection to aggregator failed", 2, |_| true)?;

    let (mut agg, _) = start_aggregator(&s.pki, &s.server, s.agg_dir.path(), port, &[])?;
    let status = up.wait_exit(Duration::from_secs(60))?;
    assert!(status.success(), "upload failed: {status}");
    agg.terminate()?;
    assert_exactly_once(&ids_at_aggregator(s.agg_dir.path(), "i-0d01")?, n);
    Ok(())
}

#[test]
fn killing_the_uploading_agent_mid_stream_and_restarting_delivers_exactly_once() -> Result<()> {
    let n = 200_000;
    let s = setup("i-0d02", n)?;
    let (mut agg, addr) = start_aggregator(&s.pki, &s.server, s.agg_dir.path(), 0, &[])?;
    let mut up = upload(&s, &addr, "i-0d02", FAST_AGENT_CONFIG)?;
    up.wait_for("acked", 3, |_| true)?;
    up.kill();

    let mut again = upload(&s, &addr, "i-0d02", FAST_AGENT_CONFIG)?;
    let status = again.wait_exit(Duration::from_secs(120))?;
    assert!(status.success(), "second upload failed: {status}");
    again.wait_for("resuming after lines already uploaded", 1, |_| true)?;
    agg.terminate()?;
    assert_exactly_once(&ids_at_aggregator(s.agg_dir.path(), "i-0d02")?, n);
    Ok(())
}

#[test]
fn killing_the_aggregator_mid_stream_and_restarting_delivers_exactly_once() -> Result<()> {
    let n = 200_000;
    let s = setup("i-0d03", n)?;
    let (mut agg, addr) = start_aggregator(&s.pki, &s.server, s.agg_dir.path(), 0, &[])?;
    let port = addr.rsplit(':').next().unwrap_or("0").parse::<u16>()?;
    let mut up = upload(&s, &addr, "i-0d03", FAST_AGENT_CONFIG)?;
    up.wait_for("acked", 3, |_| true)?;
    agg.kill();
    up.wait_for("connection to aggregator failed", 1, |_| true)?;

    let (mut agg, _) = start_aggregator(&s.pki, &s.server, s.agg_dir.path(), port, &[])?;
    let status = up.wait_exit(Duration::from_secs(120))?;
    assert!(status.success(), "upload failed: {status}");
    agg.terminate()?;
    assert_exactly_once(&ids_at_aggregator(s.agg_dir.path(), "i-0d03")?, n);
    Ok(())
}

#[test]
fn a_full_outbox_drops_oldest_records_counts_them_and_reports_them() -> Result<()> {
    let n = 20_000;
    let s = setup("i-0d04", n)?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let bound: u64 = 64 * 1024;
    let config = format!("{FAST_AGENT_CONFIG}[outbox]\nmax_bytes = {bound}\n");
    let mut up = upload(&s, &addr, "i-0d04", &config)?;
    up.wait_for("all input buffered; waiting for acks", 1, |_| true)?;

    // Offline and full: the status command shows the bound held and the drops.
    let deadline = std::time::Instant::now() + picket_tests::WAIT;
    let status = loop {
        let out = std::process::Command::new(picket_tests::bin("picket-agent"))
            .args([
                "status",
                "--format",
                "json",
                "--data-dir",
                path_str(s.agent_dir.path())?,
            ])
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["dropped"]["flow"].as_u64().unwrap_or(0) > 0 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["connected"], false, "{status}");
    assert!(
        status["buffered_bytes"].as_u64().unwrap_or(u64::MAX) <= bound,
        "{status}"
    );
    assert!(
        status["dropped"]["flow"].as_u64().unwrap_or(0) > 0,
        "{status}"
    );
    let du: u64 = walk_size(s.agent_dir.path());
    println!("agent data folder on disk: {du} bytes for a {bound}-byte outbox bound");

    let (mut agg, _) = start_aggregator(&s.pki, &s.server, s.agg_dir.path(), port, &[])?;
    let exit = up.wait_exit(Duration::from_secs(60))?;
    assert!(exit.success(), "upload failed: {exit}");

    let admin = s.pki.issue("admin", LeafKind::Admin("ops".into()))?;
    let url = format!("https://{addr}");
    let listed = std::process::Command::new(picket_tests::bin("picket-aggregator"))
        .args([
            "agents",
            "list",
            "--format",
            "json",
            "--aggregator",
            &url,
            "--ca",
            path_str(&s.pki.ca())?,
            "--cert",
            path_str(&admin.cert)?,
            "--key",
            path_str(&admin.key)?,
        ])
        .output()?;
    ensure!(
        listed.status.success(),
        "agents list failed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let agents: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
    let me = agents
        .as_array()
        .and_then(|a| a.iter().find(|x| x["instance_id"] == "i-0d04"))
        .cloned()
        .unwrap_or_default();
    let received = me["records_received"]["flow"].as_u64().unwrap_or(0);
    let dropped = me["records_dropped_reported"]["flow"].as_u64().unwrap_or(0);
    agg.terminate()?;

    let seen = ids_at_aggregator(s.agg_dir.path(), "i-0d04")?;
    assert!(
        dropped > 0,
        "nothing was dropped: the test did not fill the outbox"
    );
    assert_eq!(
        seen.len() as u64,
        received,
        "the ledger counts what the store holds"
    );
    assert_eq!(
        received + dropped,
        n,
        "every record arrived or was counted as dropped"
    );
    assert!(seen.values().all(|c| *c == 1));
    // Oldest first: what arrived is the newest suffix of the input.
    let first = *seen.keys().next().unwrap_or(&0);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (first..=n).collect::<Vec<_>>()
    );
    Ok(())
}
