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

/// A capture in which 172.16.0.8 sends one UDP datagram to each of `flows` different remote
/// endpoints within one second: one flow summary per datagram, each unique.
fn many_flows_pcap(path: &std::path::Path, flows: u32) -> Result<()> {
    let mut out = Vec::with_capacity(24 + flows as usize * 58);
    out.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    out.extend_from_slice(&2_u16.to_le_bytes());
    out.extend_from_slice(&4_u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535_u32.to_le_bytes());
    out.extend_from_slice(&1_u32.to_le_bytes()); // Ethernet
    for i in 0..flows {
        let mut frame = Vec::with_capacity(50);
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let dst = [203, 0, (i >> 8) as u8 % 250, i as u8];
        let mut ip = vec![0x45, 0, 0, 36, 0, 0, 0x40, 0, 64, 17, 0, 0, 172, 16, 0, 8];
        ip.extend_from_slice(&dst);
        let mut sum = 0u32;
        for pair in ip.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        frame.extend_from_slice(&ip);
        let dport = 1024 + (i / 64_000) as u16;
        frame.extend_from_slice(&40_000_u16.to_be_bytes());
        frame.extend_from_slice(&dport.to_be_bytes());
        frame.extend_from_slice(&16_u16.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        out.extend_from_slice(&1_700_000_000_u32.to_le_bytes());
        out.extend_from_slice(&(i % 500_000).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// The records `replay` writes locally for `pcap`, each as its JSON text, sorted.
fn local_records(pcap: &std::path::Path, config: &std::path::Path) -> Result<Vec<String>> {
    let local = Command::new(bin("picket-agent"))
        .args(["replay", "--local-ip", "172.16.0.8", "--config"])
        .arg(config)
        .arg("--pcap")
        .arg(pcap)
        .output()?;
    anyhow::ensure!(local.status.success(), "{local:?}");
    let mut out: Vec<String> = String::from_utf8(local.stdout)?
        .lines()
        .filter(|l| !l.starts_with("{\"stats\""))
        .map(|l| {
            serde_json::from_str::<Record>(l).map(|r| serde_json::to_string(&r).unwrap_or_default())
        })
        .collect::<Result<_, _>>()?;
    out.sort();
    Ok(out)
}

/// Every record the aggregator stored for the agent, as JSON text, sorted.
fn stored_records(agg_dir: &std::path::Path, instance: &str) -> Result<Vec<String>> {
    let store = BatchStore::open(agg_dir)?;
    let (batches, bad) = store.batches_of(&AgentId::new(ACCOUNT, instance)?)?;
    anyhow::ensure!(bad == 0, "{bad} undecodable batches");
    let mut out: Vec<String> = batches
        .into_iter()
        .flat_map(|b| b.records)
        .map(|r| serde_json::to_string(&r).unwrap_or_default())
        .collect();
    out.sort();
    Ok(out)
}

fn replay_args(pcap: &std::path::Path) -> Result<Vec<String>> {
    Ok(vec![
        "--local-ip".into(),
        "172.16.0.8".into(),
        "--timeout-secs".into(),
        "300".into(),
        "--pcap".into(),
        path_str(pcap)?.to_owned(),
    ])
}

/// kill -9 of `replay --aggregator` while it uploads, then the same command again: every
/// record arrives exactly once (not once per run), and the staging file is gone at the end.
#[test]
fn replay_killed_mid_upload_and_rerun_delivers_every_record_exactly_once() -> Result<()> {
    const INSTANCE: &str = "i-0replaykill";
    let work = tempfile::tempdir()?;
    let pcap = work.path().join("flows.pcap");
    many_flows_pcap(&pcap, 60_000)?;
    let config = work.path().join("agent.toml");
    std::fs::write(&config, picket_tests::FAST_AGENT_CONFIG)?;
    let expected = local_records(&pcap, &config)?;
    assert!(expected.len() >= 20_000, "{} records", expected.len());

    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let (mut agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let args = replay_args(&pcap)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = || {
        picket_tests::start_agent_cmd(
            "replay",
            &args,
            picket_tests::FAST_AGENT_CONFIG,
            &pki,
            &leaf,
            &addr,
            agent_dir.path(),
            ACCOUNT,
            INSTANCE,
        )
    };
    let mut first = run()?;
    first.wait_for("acked", 1, |_| true)?;
    assert!(
        first.wait_exit(std::time::Duration::ZERO).is_err(),
        "replay finished before it could be killed mid-upload; make the capture bigger"
    );
    first.kill();
    // The store is the aggregator's: read it only while the aggregator is down.
    agg.kill();
    let partial = stored_records(agg_dir.path(), INSTANCE)?;
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "killed after {} of {} records arrived",
        partial.len(),
        expected.len()
    );
    let (agg2, addr2) = start_aggregator(&pki, &server, agg_dir.path(), addr_port(&addr)?, &[])?;
    assert_eq!(addr2, addr);
    let mut second = run()?;
    let status = second.wait_exit(std::time::Duration::from_secs(300))?;
    assert!(status.success(), "{}", second.tail(20));
    drop(agg2);
    let received = stored_records(agg_dir.path(), INSTANCE)?;
    assert_eq!(
        received.len(),
        expected.len(),
        "exactly once, not once per run"
    );
    assert_eq!(received, expected);
    let staged = std::fs::read_dir(agent_dir.path().join("replay"))?.count();
    assert_eq!(staged, 0, "staging file removed once all was acked");
    Ok(())
}

/// kill -9 of `replay --aggregator` after it buffered everything while the aggregator was
/// down, then the same command with the aggregator up: the buffered records are sent and
/// none is buffered a second time.
#[test]
fn replay_killed_while_offline_and_rerun_sends_the_buffer_once() -> Result<()> {
    const INSTANCE: &str = "i-0replayoffline";
    let work = tempfile::tempdir()?;
    let pcap = synscan();
    let config = work.path().join("agent.toml");
    std::fs::write(&config, picket_tests::FAST_AGENT_CONFIG)?;
    let expected = local_records(&pcap, &config)?;
    assert!(expected.len() > 2);

    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let args = replay_args(&pcap)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = || {
        picket_tests::start_agent_cmd(
            "replay",
            &args,
            picket_tests::FAST_AGENT_CONFIG,
            &pki,
            &leaf,
            &addr,
            agent_dir.path(),
            ACCOUNT,
            INSTANCE,
        )
    };
    let mut first = run()?;
    first.wait_for("all input buffered; waiting for acks", 1, |_| true)?;
    first.kill();
    let (agg, _) = start_aggregator(&pki, &server, agg_dir.path(), port, &[])?;
    let mut second = run()?;
    let status = second.wait_exit(std::time::Duration::from_secs(120))?;
    assert!(status.success(), "{}", second.tail(20));
    let resumed = second.events("resuming after lines already uploaded");
    assert_eq!(resumed.len(), 1, "{}", second.tail(20));
    drop(agg);
    let received = stored_records(agg_dir.path(), INSTANCE)?;
    assert_eq!(received, expected);
    Ok(())
}

fn addr_port(addr: &str) -> Result<u16> {
    Ok(addr
        .rsplit(':')
        .next()
        .context("address without a port")?
        .parse()?)
}
