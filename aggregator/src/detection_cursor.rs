//! How far detection has observed each agent's stored batches, so that a restart hands
//! detection the batches that were stored and acked before a crash but never observed.
//!
//! Sessions hand a batch to detection only after storing and acking it, through a bounded
//! queue; a crash loses whatever was queued or being observed. The detection task notes the
//! highest sequence number it has observed per agent and lane, and saves those marks in the
//! findings store (tree `detection_cursor`) right after each regular write of findings. On start,
//! before any agent can connect, [`catch_up`] sends every stored batch above its lane's mark
//! to detection.
//!
//! Delivery into detection is therefore at least once: the batches observed after the last
//! save (at most [`crate::detection::FLUSH_EVERY`] of them) are observed again after a crash.
//! The findings they raised are absorbed by the store (counts add), and the windows the crash
//! emptied are refilled by them.
//!
//! A store written before this cursor existed has no marks: the first start takes every
//! agent's high-water mark as observed (the past was detected by the old process, or lost with
//! it), instead of replaying the whole history.

use std::collections::HashMap;

use picket_proto::AgentId;
use picket_proto::v1::Lane;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::findings::store::{FindingStore, StoreError as FindingStoreError};
use crate::ingest::StoredBatch;
use crate::ingest::store::{BatchStore, StoreError};
use crate::ingest::wire::BatchHeader;

/// The findings store's tree holding the marks.
const TREE: &str = "detection_cursor";
/// Present once marks are kept; its absence means a store from before the cursor.
const STARTED: &[u8] = b"\xffstarted";

/// Why the cursor could not be read, saved or caught up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    /// Occurs when the findings store fails.
    #[error(transparent)]
    Findings(#[from] FindingStoreError),
    /// Occurs when the batch store fails.
    #[error(transparent)]
    Batches(#[from] StoreError),
    /// Occurs when a saved mark is not eight bytes.
    #[error("findings store {path}: detection cursor of {agent} is damaged")]
    Damaged {
        /// The findings store.
        path: std::path::PathBuf,
        /// The agent and lane the mark belongs to.
        agent: String,
    },
}

/// The marks the detection task keeps: the highest sequence number observed per agent and lane.
#[derive(Debug)]
pub struct DetectionCursor {
    store: FindingStore,
    tree: sled::Tree,
    /// Marks raised since the last save.
    dirty: Marks,
}

impl DetectionCursor {
    /// The cursor kept in `store`.
    ///
    /// # Errors
    /// [`CursorError::Findings`] when the tree cannot be opened.
    pub fn open(store: &FindingStore) -> Result<Self, CursorError> {
        Ok(Self {
            tree: store.aux_tree(TREE)?,
            store: store.clone(),
            dirty: HashMap::new(),
        })
    }

    /// Notes that detection observed `batch` (a batch from outside the store, seq 0, is not
    /// tracked).
    pub fn observed(&mut self, batch: &StoredBatch) {
        if batch.seq == 0 {
            return;
        }
        let mark = self
            .dirty
            .entry((batch.agent.clone(), batch.lane))
            .or_insert(0);
        *mark = (*mark).max(batch.seq);
    }

    /// The marks raised since the last save, to be written off the async workers (sled's
    /// flush blocks). Take them after the findings those batches raised were written.
    pub fn take_pending(&mut self) -> PendingMarks {
        PendingMarks {
            tree: self.tree.clone(),
            store: self.store.clone(),
            marks: std::mem::take(&mut self.dirty),
        }
    }

    /// Puts back marks whose write failed, so the next save retries them.
    pub fn restore(&mut self, marks: Marks) {
        for (k, seq) in marks {
            let mark = self.dirty.entry(k).or_insert(0);
            *mark = (*mark).max(seq);
        }
    }

    /// The saved mark of one agent's lane (0 when it has none).
    ///
    /// # Errors
    /// [`CursorError`] when sled fails or the mark is damaged.
    pub fn saved(&self, agent: &AgentId, lane: Lane) -> Result<u64, CursorError> {
        let Some(v) = self
            .tree
            .get(key(agent, lane))
            .map_err(|e| self.sled_err(e))?
        else {
            return Ok(0);
        };
        <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| CursorError::Damaged {
                path: self.store.path().to_path_buf(),
                agent: format!("{agent} ({})", lane.as_str_name()),
            })
    }

    fn sled_err(&self, source: sled::Error) -> CursorError {
        CursorError::Findings(FindingStoreError::Sled {
            path: self.store.path().to_path_buf(),
            source,
        })
    }
}

/// Marks taken from a [`DetectionCursor`] to be written.
#[derive(Debug)]
pub struct PendingMarks {
    tree: sled::Tree,
    store: FindingStore,
    marks: Marks,
}

impl PendingMarks {
    /// Writes the marks and flushes the store.
    ///
    /// # Errors
    /// [`UnsavedMarks`]: the error and the marks, to be given back with
    /// [`DetectionCursor::restore`].
    pub fn write(self) -> Result<(), Box<UnsavedMarks>> {
        if self.marks.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for ((agent, lane), seq) in &self.marks {
            batch.insert(key(agent, *lane), &seq.to_be_bytes());
        }
        let path = self.store.path().to_path_buf();
        let written = self
            .tree
            .apply_batch(batch)
            .map_err(|source| CursorError::Findings(FindingStoreError::Sled { path, source }))
            .and_then(|()| self.store.flush().map_err(CursorError::from));
        written.map_err(|error| {
            Box::new(UnsavedMarks {
                error,
                marks: self.marks,
            })
        })
    }
}

/// Marks per agent and lane: the highest sequence number observed.
pub type Marks = HashMap<(AgentId, Lane), u64>;

/// Marks whose write failed, with why.
#[derive(Debug)]
pub struct UnsavedMarks {
    /// Why the write failed.
    pub error: CursorError,
    /// The marks, to be written with the next save.
    pub marks: Marks,
}

/// `account/instance\0lane`: one mark per agent and lane.
fn key(agent: &AgentId, lane: Lane) -> Vec<u8> {
    let mut k = agent.store_key();
    k.push(0);
    k.push(u8::try_from(lane as i32).unwrap_or(u8::MAX));
    k
}

/// What [`catch_up`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Stored batches sent to detection again.
    pub batches: u64,
    /// Their records.
    pub records: u64,
    /// Stored batches whose framing is damaged, skipped.
    pub damaged: u64,
}

/// Sends to detection every stored batch above its lane's saved mark, agent by agent, in
/// sequence order. Run it before agents may connect, so these batches come before new ones.
///
/// # Errors
/// [`CursorError`] when either store fails; nothing is skipped silently.
pub async fn catch_up(
    batches: &BatchStore,
    findings: &FindingStore,
    detection: &mpsc::Sender<StoredBatch>,
) -> Result<CatchUp, CursorError> {
    let cursor = DetectionCursor::open(findings)?;
    let ledgers = batches.ledgers()?;
    let mut done = CatchUp::default();
    let started = cursor
        .tree
        .contains_key(STARTED)
        .map_err(|e| cursor.sled_err(e))?;
    if !started {
        // A store from before the cursor: take what is stored as observed.
        let mut marks = sled::Batch::default();
        for l in &ledgers {
            let Ok(agent) = AgentId::new(&l.account_id, &l.instance_id) else {
                continue;
            };
            for (lane, hwm) in [
                (Lane::Bulk, l.last_acked_seq),
                (Lane::Priority, l.last_acked_priority_seq),
            ] {
                marks.insert(key(&agent, lane), &hwm.to_be_bytes());
            }
        }
        marks.insert(STARTED, &[]);
        cursor
            .tree
            .apply_batch(marks)
            .map_err(|e| cursor.sled_err(e))?;
        findings.flush()?;
        info!(
            agents = ledgers.len(),
            "detection cursor started at every agent's high-water mark"
        );
        return Ok(done);
    }
    for l in &ledgers {
        let agent = match AgentId::new(&l.account_id, &l.instance_id) {
            Ok(a) => a,
            Err(e) => {
                warn!(account_id = %l.account_id, instance_id = %l.instance_id, error = %e, "ledger names no valid agent; its batches are not caught up");
                continue;
            }
        };
        for lane in [Lane::Bulk, Lane::Priority] {
            let from = cursor.saved(&agent, lane)?;
            for item in batches.stored_after(&agent, lane, from) {
                let (seq, bytes) = item?;
                let Ok(header) = <BatchHeader as prost::Message>::decode(bytes.as_ref()) else {
                    done.damaged += 1;
                    warn!(%agent, seq, "stored batch is damaged; not observed by detection");
                    continue;
                };
                done.batches += 1;
                done.records += header.records.len() as u64;
                let stored = StoredBatch {
                    agent: agent.clone(),
                    region: l.region.clone(),
                    bytes: bytes::Bytes::copy_from_slice(&bytes),
                    records: header.records.len(),
                    seq,
                    lane,
                };
                if detection.send(stored).await.is_err() {
                    // Detection has stopped (shutdown during start): the rest waits for the
                    // next start, its marks unchanged.
                    return Ok(done);
                }
            }
        }
    }
    if done.batches > 0 || done.damaged > 0 {
        info!(
            batches = done.batches,
            records = done.records,
            damaged = done.damaged,
            "stored batches not yet observed sent to detection"
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::Batch;

    use super::*;
    use crate::config::FindingsSection;
    use crate::detectors::{DetectorContext, DetectorsConfig};
    use crate::findings::store::ListQuery;
    use crate::findings::suppression::SuppressionRules;

    fn agent(instance: &str) -> AgentId {
        AgentId::new("123456789012", instance).unwrap()
    }

    /// A stored batch of one intel hit to `remote`.
    fn store_hit(store: &BatchStore, agent: &AgentId, lane: Lane, seq: u64, remote: &str) {
        let record = crate::detection::tests::hit_to(remote);
        let batch = Batch {
            seq,
            records: vec![record],
            created_at_ms: 1,
            lane: lane as i32,
        };
        store.apply(agent, &batch, 1).unwrap();
    }

    async fn caught_up(batches: &BatchStore, findings: &FindingStore) -> Vec<StoredBatch> {
        let (tx, mut rx) = mpsc::channel(64);
        catch_up(batches, findings, &tx).await.unwrap();
        drop(tx);
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.push(b);
        }
        out
    }

    #[tokio::test]
    async fn a_store_from_before_the_cursor_starts_at_the_high_water_marks() {
        let dir = tempfile::tempdir().unwrap();
        let batches = BatchStore::open(dir.path()).unwrap();
        let findings = FindingStore::open(dir.path()).unwrap();
        let a = agent("i-1");
        store_hit(&batches, &a, Lane::Bulk, 1, "198.51.100.1");
        store_hit(&batches, &a, Lane::Bulk, 2, "198.51.100.2");
        store_hit(&batches, &a, Lane::Priority, 1, "198.51.100.3");
        assert!(caught_up(&batches, &findings).await.is_empty());
        let cursor = DetectionCursor::open(&findings).unwrap();
        assert_eq!(cursor.saved(&a, Lane::Bulk).unwrap(), 2);
        assert_eq!(cursor.saved(&a, Lane::Priority).unwrap(), 1);
        // Batches stored after that start are caught up from there.
        store_hit(&batches, &a, Lane::Bulk, 3, "198.51.100.4");
        let again = caught_up(&batches, &findings).await;
        let seqs: Vec<(u64, Lane)> = again.iter().map(|b| (b.seq, b.lane)).collect();
        assert_eq!(seqs, vec![(3, Lane::Bulk)]);
    }

    #[tokio::test]
    async fn batches_stored_but_never_observed_before_a_crash_are_findings_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let batches = BatchStore::open(dir.path()).unwrap();
        let findings = FindingStore::open(dir.path()).unwrap();
        // First start on an empty store: the cursor begins.
        assert!(caught_up(&batches, &findings).await.is_empty());
        let (a, b) = (agent("i-1"), agent("i-2"));
        for (seq, remote) in [
            (1, "198.51.100.1"),
            (2, "198.51.100.2"),
            (3, "198.51.100.3"),
        ] {
            store_hit(&batches, &a, Lane::Bulk, seq, remote);
        }
        store_hit(&batches, &b, Lane::Priority, 1, "198.51.100.9");
        // Detection observed a's first batch and saved its mark; then the process died.
        let mut cursor = DetectionCursor::open(&findings).unwrap();
        let (first, _) = batches.batches_of(&a).unwrap();
        let mut observed = StoredBatch::from_records(a.clone(), String::new(), vec![]);
        (observed.seq, observed.lane) = (first[0].seq, Lane::Bulk);
        cursor.observed(&observed);
        cursor.take_pending().write().unwrap();

        // Restart: detection runs, the catch-up feeds it what it never observed.
        let (tx, stop) = crate::detection::spawn(
            findings.clone(),
            &FindingsSection::default(),
            SuppressionRules::default(),
            &DetectorsConfig::default(),
            &DetectorContext::default(),
        );
        let done = catch_up(&batches, &findings, &tx).await.unwrap();
        assert_eq!(
            done,
            CatchUp {
                batches: 3,
                records: 3,
                damaged: 0
            }
        );
        stop.stop().await;
        let mut remotes: Vec<String> = findings
            .list(&ListQuery::default())
            .unwrap()
            .findings
            .iter()
            .filter_map(|f| f.remote_ipv4().map(str::to_owned))
            .collect();
        remotes.sort();
        assert_eq!(remotes, ["198.51.100.2", "198.51.100.3", "198.51.100.9"]);
        // The stop saved the cursor: a second restart has nothing to catch up.
        assert!(caught_up(&batches, &findings).await.is_empty());
        let cursor = DetectionCursor::open(&findings).unwrap();
        assert_eq!(cursor.saved(&a, Lane::Bulk).unwrap(), 3);
        assert_eq!(cursor.saved(&b, Lane::Priority).unwrap(), 1);
    }

    #[test]
    fn marks_given_back_after_a_failed_write_keep_the_highest() {
        let dir = tempfile::tempdir().unwrap();
        let findings = FindingStore::open(dir.path()).unwrap();
        let mut cursor = DetectionCursor::open(&findings).unwrap();
        let a = agent("i-1");
        let mut batch = StoredBatch::from_records(a.clone(), String::new(), vec![]);
        batch.seq = 5;
        cursor.observed(&batch);
        let mut taken = cursor.take_pending().marks;
        batch.seq = 7;
        cursor.observed(&batch);
        taken.insert((a.clone(), Lane::Bulk), 6);
        cursor.restore(taken);
        cursor.take_pending().write().unwrap();
        assert_eq!(cursor.saved(&a, Lane::Bulk).unwrap(), 7);
        // A batch from outside the store (seq 0) moves nothing.
        batch.seq = 0;
        cursor.observed(&batch);
        assert!(cursor.take_pending().marks.is_empty());
    }
}
