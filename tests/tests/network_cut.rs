//! Delivery across a network cut (delivery issue, test 4): the aggregator and the agent live in
//! two network namespaces joined by a veth pair; the link goes down for a while mid-stream and
//! comes back; every record arrives exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use picket_aggregator::certs::LeafKind;
use picket_aggregator::ingest::BatchStore;
use picket_proto::AgentId;
use picket_proto::v1::{FlowSummary, Record, record};
use picket_tests::{
    FAST_AGENT_CONFIG, NetnsPair, Pki, can_use_netns, path_str, start_agent_cmd_in,
    start_aggregator_in,
};

const ACCOUNT: &str = "123456789012";

#[test]
fn every_record_arrives_exactly_once_after_the_link_goes_down_and_up() -> Result<()> {
    if !can_use_netns() {
        println!("skipped: needs root and iproute2 to create network namespaces");
        return Ok(());
    }
    let net = NetnsPair::new(&format!("pk{}", std::process::id() % 100_000), 7)?;
    let (agg_ns, agent_ns) = (net.names.0.clone(), net.names.1.clone());
    let pki = Pki::new()?;
    let server = pki.issue("server", LeafKind::Server(net.addrs.0.clone()))?;
    let leaf = pki.agent(ACCOUNT, "i-0cut")?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;

    let n = 100_000u64;
    let input = agent_dir.path().join("records.jsonl");
    let mut text = String::new();
    for id in 1..=n {
        let r = Record {
            record: Some(record::Record::Flow(FlowSummary {
                connections: id,
                ..FlowSummary::default()
            })),
        };
        text.push_str(&serde_json::to_string(&r)?);
        text.push('\n');
    }
    std::fs::write(&input, text)?;

    let listen = format!("{}:7443", net.addrs.0);
    let (mut agg, addr) =
        start_aggregator_in(Some(&agg_ns), &listen, &pki, &server, agg_dir.path(), &[])?;
    // HTTP/2 keepalive is what notices a silent link; make it quick for the test.
    let config = FAST_AGENT_CONFIG.to_owned();
    let mut up = start_agent_cmd_in(
        Some(&agent_ns),
        "upload",
        &["--records", path_str(&input)?],
        &config,
        &pki,
        &leaf,
        &addr,
        agent_dir.path(),
        ACCOUNT,
        "i-0cut",
    )?;
    up.wait_for("acked", 2, |_| true)?;
    net.set_b_link(false)?;
    std::thread::sleep(Duration::from_secs(3));
    net.set_b_link(true)?;
    let status = up.wait_exit(Duration::from_secs(240))?;
    ensure!(status.success(), "upload failed: {status}");
    agg.terminate()?;

    let store = BatchStore::open(agg_dir.path())?;
    let (batches, bad) = store.batches_of(&AgentId::new(ACCOUNT, "i-0cut")?)?;
    assert_eq!(bad, 0);
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for b in batches {
        for r in b.records {
            if let Some(record::Record::Flow(f)) = r.record {
                *seen.entry(f.connections).or_insert(0) += 1;
            }
        }
    }
    assert!(
        seen.values().all(|c| *c == 1),
        "duplicates at the aggregator"
    );
    assert_eq!(seen.len() as u64, n, "records missing at the aggregator");
    Ok(())
}
