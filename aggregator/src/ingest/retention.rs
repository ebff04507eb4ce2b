//! Retention of received batches: once detection has observed a batch (its lane's saved
//! detection mark covers it) and the agent made it more than `server.batch_retention_days`
//! ago, it is deleted, so the batch store does not grow for ever. Findings carry their own
//! evidence; the batches serve a restart's catch-up and inspection. Ledgers keep their marks
//! and counts, so a deleted batch is still recognised if an agent replays it.

use std::num::NonZeroU32;
use std::time::Duration;

use picket_proto::AgentId;
use picket_proto::v1::Lane;
use tracing::{info, warn};

use super::store::{BatchStore, now_ms};
use crate::detection_cursor::{CursorError, DetectionCursor};
use crate::findings::store::FindingStore;

/// How often the sweep runs (also once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Deletes every observed batch made before `now_ms - days`; returns how many went.
///
/// # Errors
/// [`CursorError`] when either store fails.
pub fn sweep(
    batches: &BatchStore,
    findings: &FindingStore,
    now_ms: i64,
    days: NonZeroU32,
) -> Result<u64, CursorError> {
    let cursor = DetectionCursor::open(findings)?;
    let cutoff = now_ms.saturating_sub(i64::from(days.get()).saturating_mul(DAY_MS));
    let mut pruned = 0;
    for l in batches.ledgers()? {
        let Ok(agent) = AgentId::new(&l.account_id, &l.instance_id) else {
            continue;
        };
        for lane in [Lane::Bulk, Lane::Priority] {
            let observed = cursor.saved(&agent, lane)?;
            if observed > 0 {
                pruned += batches.prune_observed(&agent, lane, observed, cutoff)?;
            }
        }
    }
    Ok(pruned)
}

/// Runs [`sweep`] now and every [`SWEEP_EVERY`] until the task is aborted.
pub fn spawn(
    batches: BatchStore,
    findings: FindingStore,
    days: NonZeroU32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            let (b, f) = (batches.clone(), findings.clone());
            match tokio::task::spawn_blocking(move || sweep(&b, &f, now_ms(), days)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => info!(
                    batches = n,
                    days = days.get(),
                    "observed batches past retention deleted"
                ),
                Ok(Err(e)) => warn!(error = %e, "batch retention failed"),
                Err(e) => warn!(error = %e, "batch retention task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::{Batch, HostStats, Record, record};

    use super::*;
    use crate::ingest::StoredBatch;

    fn store(batches: &BatchStore, agent: &AgentId, seq: u64, created_at_ms: i64) {
        let batch = Batch {
            seq,
            records: vec![Record {
                record: Some(record::Record::HostStats(HostStats::default())),
            }],
            created_at_ms,
            lane: Lane::Bulk as i32,
        };
        batches.apply(agent, &batch, created_at_ms).unwrap();
    }

    #[test]
    fn only_batches_both_observed_and_past_retention_go_and_replays_stay_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let batches = BatchStore::open(dir.path()).unwrap();
        let findings = FindingStore::open(dir.path()).unwrap();
        let agent = AgentId::new("123456789012", "i-1").unwrap();
        let now = 100 * DAY_MS;
        // Seqs 1-3 are ten days old, 4 is one day old, 5 is ten days old but unobserved.
        for (seq, age_days) in [(1, 10), (2, 10), (3, 10), (4, 1), (5, 10)] {
            store(&batches, &agent, seq, now - age_days * DAY_MS);
        }
        let mut cursor = DetectionCursor::open(&findings).unwrap();
        let mut observed = StoredBatch::from_records(agent.clone(), String::new(), vec![]);
        (observed.seq, observed.lane) = (4, Lane::Bulk);
        cursor.observed(&observed);
        cursor.take_pending().write().unwrap();

        let days = NonZeroU32::new(7).unwrap();
        assert_eq!(sweep(&batches, &findings, now, days).unwrap(), 3);
        let (left, bad) = batches.batches_of(&agent).unwrap();
        let seqs: Vec<u64> = left.iter().map(|b| b.seq).collect();
        assert_eq!((seqs, bad), (vec![4, 5], 0));
        // Nothing more to do; and the ledger still refuses a replay of a deleted batch.
        assert_eq!(sweep(&batches, &findings, now, days).unwrap(), 0);
        let replay = Batch {
            seq: 2,
            lane: Lane::Bulk as i32,
            ..Batch::default()
        };
        assert!(matches!(
            batches.apply(&agent, &replay, now).unwrap(),
            crate::ingest::AppendOutcome::Duplicate { hwm: 5 }
        ));
    }
}
