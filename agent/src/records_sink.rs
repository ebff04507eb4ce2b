//! Where the agent's pipeline hands its records: intel hits go to the outbox's priority lane
//! (they overtake any backlog), everything else to the bulk lane; while the aggregator is
//! unreachable each hit is also logged locally at once, so an operator on the host sees it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use picket_proto::v1::{Lane, Record, record};
use tokio::sync::Notify;
use tracing::warn;

use crate::health::Health;
use crate::outbox::{Outbox, OutboxError};
use crate::transport::now_ms;

/// Hands records to the outbox and wakes the transport.
#[derive(Clone)]
pub struct RecordSink {
    outbox: Outbox,
    new_batches: Arc<Notify>,
    health: Arc<Health>,
    /// The public IPv4 from instance metadata, added to each `HostStats` on the way (`run`).
    public_ipv4: Option<Arc<crate::imds::PublicIpv4>>,
}

impl RecordSink {
    /// A sink into `outbox`, notifying `new_batches` after each push.
    pub fn new(outbox: Outbox, new_batches: Arc<Notify>, health: Arc<Health>) -> Self {
        Self {
            outbox,
            new_batches,
            health,
            public_ipv4: None,
        }
    }

    /// This sink, adding `cell`'s public IPv4 to every `HostStats` it buffers (see
    /// [`crate::host_stats::add_public_ip`]).
    #[must_use]
    pub fn with_public_ipv4(mut self, cell: Arc<crate::imds::PublicIpv4>) -> Self {
        self.public_ipv4 = Some(cell);
        self
    }

    /// Buffers `records` durably: hits in one priority batch, the rest in one bulk batch.
    ///
    /// # Errors
    /// [`OutboxError`] when the outbox cannot store them; the caller counts them as dropped.
    pub async fn submit(&self, records: Vec<Record>) -> Result<(), OutboxError> {
        self.submit_with_cursor(records, None).await
    }

    /// As [`RecordSink::submit`], storing `cursor` in the same transaction as the records.
    ///
    /// # Errors
    /// [`OutboxError`] when the outbox cannot store them.
    pub async fn submit_with_cursor(
        &self,
        mut records: Vec<Record>,
        cursor: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), OutboxError> {
        if let Some(cell) = &self.public_ipv4 {
            let public = cell.get();
            for r in &mut records {
                if let Some(record::Record::HostStats(h)) = &mut r.record {
                    crate::host_stats::add_public_ip(h, &public);
                }
            }
        }
        self.health.count_records(&records);
        let is_hit = |r: &Record| matches!(r.record, Some(record::Record::IntelHit(_)));
        // Most submissions hold no hit: then the records go to the bulk lane as they are,
        // instead of being moved one by one into a new, repeatedly grown Vec.
        let (hits, rest): (Vec<Record>, Vec<Record>) = if records.iter().any(is_hit) {
            records.into_iter().partition(is_hit)
        } else {
            (Vec::new(), records)
        };
        let offline = self.health.connected.load(Ordering::Relaxed) == 0;
        if offline {
            for r in &hits {
                if let Some(record::Record::IntelHit(h)) = &r.record {
                    warn!(
                        indicator = %h.indicator,
                        matched = %h.matched_value,
                        list = %h.list_name,
                        category = %h.category,
                        local = %h.local_addr,
                        remote = %h.remote_addr,
                        query = %h.dns_query_name,
                        "intel hit (aggregator unreachable; buffered)"
                    );
                }
            }
        }
        let pushed = self
            .outbox
            .push_parts(
                vec![(Lane::Priority, hits), (Lane::Bulk, rest)],
                now_ms(),
                cursor,
            )
            .await?;
        if pushed.evicted_records > 0 {
            warn!(
                evicted = pushed.evicted_records,
                "outbox full: oldest records dropped (counted and reported)"
            );
        }
        self.new_batches.notify_one();
        Ok(())
    }

    /// The outbox behind the sink.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_proto::v1::{FlowSummary, IntelHit};

    fn flow(n: u64) -> Record {
        Record {
            record: Some(record::Record::Flow(FlowSummary {
                connections: n,
                ..FlowSummary::default()
            })),
        }
    }

    fn hit(indicator: &str) -> Record {
        Record {
            record: Some(record::Record::IntelHit(IntelHit {
                indicator: indicator.into(),
                ..IntelHit::default()
            })),
        }
    }

    fn sink(dir: &std::path::Path) -> RecordSink {
        let db = sled::open(dir).unwrap();
        let outbox = Outbox::open(&db, dir.to_owned(), 1 << 20).unwrap();
        RecordSink::new(outbox, Arc::new(Notify::new()), Arc::new(Health::default()))
    }

    fn lane(sink: &RecordSink, lane: Lane) -> Vec<Vec<Record>> {
        sink.outbox()
            .pending_from(lane, 1, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|b| b.records)
            .collect()
    }

    #[tokio::test]
    async fn hits_go_to_the_priority_lane_and_the_rest_keeps_its_order_in_bulk() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path());
        sink.submit(vec![flow(1), hit("a.example"), flow(2), hit("b.example")])
            .await
            .unwrap();
        assert_eq!(
            lane(&sink, Lane::Priority),
            vec![vec![hit("a.example"), hit("b.example")]]
        );
        assert_eq!(lane(&sink, Lane::Bulk), vec![vec![flow(1), flow(2)]]);
    }

    #[tokio::test]
    async fn a_submission_without_hits_is_one_bulk_batch_and_no_priority_batch() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path());
        sink.submit(vec![flow(1), flow(2), flow(3)]).await.unwrap();
        assert!(lane(&sink, Lane::Priority).is_empty());
        assert_eq!(
            lane(&sink, Lane::Bulk),
            vec![vec![flow(1), flow(2), flow(3)]]
        );
    }
}
