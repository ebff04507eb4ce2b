//! What an agent delivered, read back from the aggregator's store, and checks on its flow
//! summaries.

use std::path::Path;

use anyhow::{Result, ensure};
use picket_aggregator::ingest::BatchStore;
use picket_proto::AgentId;
use picket_proto::v1::{Direction, FlowSummary, record};

/// Every record the aggregator whose store is at `dir` holds from agent `account`/`instance`,
/// in delivery order; fails if any stored batch does not decode.
pub fn stored_records(dir: &Path, account: &str, instance: &str) -> Result<Vec<record::Record>> {
    let store = BatchStore::open(dir)?;
    let (batches, bad) = store.batches_of(&AgentId::new(account, instance)?)?;
    ensure!(bad == 0, "{bad} undecodable batches");
    Ok(batches
        .into_iter()
        .flat_map(|b| b.records)
        .filter_map(|r| r.record)
        .collect())
}

/// The flow summaries among `records`.
pub fn flow_summaries(records: &[record::Record]) -> Vec<&FlowSummary> {
    records
        .iter()
        .filter_map(|r| match r {
            record::Record::Flow(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// What the one flow summary of a service port should say: the service port that picks it,
/// the interface it was counted on, its direction, its local address and its packets (out,
/// in).
pub type SeenOnce<'a> = (u32, &'a str, Direction, &'a str, (u64, u64));

/// Checks, for each of `expected`, that exactly one of `flows` has its service port and that
/// it says the rest: each flow was counted once, where it should be.
pub fn ensure_each_seen_once(flows: &[&FlowSummary], expected: &[SeenOnce<'_>]) -> Result<()> {
    for &(service_port, interface, direction, local, packets) in expected {
        let seen: Vec<&FlowSummary> = flows
            .iter()
            .copied()
            .filter(|f| f.service_port == service_port)
            .collect();
        ensure!(
            seen.len() == 1
                && seen[0].interface == interface
                && seen[0].direction() == direction
                && seen[0].local_addr == local
                && (seen[0].packets_out, seen[0].packets_in) == packets,
            "port {service_port}: {seen:#?}"
        );
    }
    Ok(())
}
