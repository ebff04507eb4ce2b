//! `picket-agent replay --aggregator ...`: the records a capture gives reach the aggregator
//! through the outbox and the mTLS session, every one, and replay exits 0 only after the acks.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use picket_aggregator::ingest::BatchStore;
use picket_proto::AgentId;
use picket_proto::v1::Record;
use picket_tests::{Pki, bin, path_str, start_aggregator};

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "i-0replay";

fn synscan() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures/pcap/ndpi_synscan.pcap")
}

#[test]
fn replay_to_an_aggregator_delivers_exactly_the_records_replay_writes() -> Result<()> {
    // What replay writes locally: the records, then the stats line.
    let local = Command::new(bin("picket-agent"))
        .args(["replay", "--local-ip", "172.16.0.8", "--pcap"])
        .arg(synscan())
        .output()?;
    assert!(local.status.success(), "{local:?}");
    let text = String::from_utf8(local.stdout)?;
    let mut expected: Vec<Record> = text
        .lines()
        .filter(|l| !l.starts_with("{\"stats\""))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(expected.len() > 2, "{text}");

    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let (mut agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let ca = pki.ca();
    let sent = Command::new(bin("picket-agent"))
        .args(["replay", "--local-ip", "172.16.0.8", "--pcap"])
        .arg(synscan())
        .args(["--aggregator", &format!("https://{addr}")])
        .args(["--ca", path_str(&ca)?, "--cert", path_str(&leaf.cert)?])
        .args(["--key", path_str(&leaf.key)?, "--data-dir"])
        .arg(agent_dir.path())
        .args(["--account-id", ACCOUNT, "--instance-id", INSTANCE])
        .args(["--timeout-secs", "60"])
        .output()?;
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "{stderr}");
    assert!(stderr.contains("all acked"), "{stderr}");

    agg.kill();
    let store = BatchStore::open(agg_dir.path())?;
    let (batches, bad) = store.batches_of(&AgentId::new(ACCOUNT, INSTANCE)?)?;
    assert_eq!(bad, 0);
    let mut received: Vec<Record> = batches.into_iter().flat_map(|b| b.records).collect();
    let key = |r: &Record| serde_json::to_string(r).unwrap_or_default();
    received.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(received.len(), expected.len());
    assert_eq!(received, expected);
    // The staging file is gone once everything was acked.
    let staged = std::fs::read_dir(agent_dir.path().join("replay"))
        .context("replay staging folder")?
        .count();
    assert_eq!(staged, 0);
    Ok(())
}
