//! The aggregator's batch store (sled).
//!
//! Invariants:
//! - A batch is stored under `<account>/<instance>\0<lane u8><seq u64 big-endian>`, so one
//!   agent's batches are contiguous and in sequence order per lane.
//! - Each agent has one ledger (`ledgers` tree, an encoded `AgentLedger`) holding the highest
//!   applied sequence number of each lane and exact counts. The batch and the ledger are
//!   written in one sled transaction, so a replayed batch (seq <= the lane's mark) is
//!   recognised and not applied twice, even across a crash, and the counts never drift.
//! - [`BatchStore::append`] returns only after sled has flushed; only then may the caller ack,
//!   because an ack tells the agent it may delete its copy.
//! - A ledger that does not decode is reported as [`StoreError::Corrupt`], never read as empty
//!   (which would re-apply every batch).

use std::path::{Path, PathBuf};

use picket_proto::v1::{AgentHealth, AgentLedger, Batch, Lane};
use picket_proto::{AgentId, record_kind};
use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Occurs when sled cannot open or write the database.
    #[error("batch store {path}: {source}")]
    Sled {
        /// The database folder.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Occurs when a stored ledger does not decode.
    #[error("batch store: ledger of {agent} is damaged ({reason})")]
    Corrupt {
        /// The agent whose ledger is damaged.
        agent: String,
        /// The decode error.
        reason: String,
    },
    /// Occurs when a batch has sequence number 0 (sequence numbers start at 1).
    #[error("batch sequence numbers start at 1, got 0")]
    ZeroSeq,
    /// Occurs when a batch names a lane this aggregator does not know.
    #[error("unknown lane {0}")]
    UnknownLane(i32),
}

/// What [`BatchStore::append`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch was new and is now durable; `hwm` is the lane's new high-water mark.
    Applied {
        /// The lane's high-water mark after the write.
        hwm: u64,
    },
    /// The batch had been applied before (a replay after reconnect); nothing was written.
    Duplicate {
        /// The lane's unchanged high-water mark.
        hwm: u64,
    },
}

impl AppendOutcome {
    /// The high-water mark after the call: every batch of the lane with seq <= it is durable.
    pub fn hwm(self) -> u64 {
        match self {
            AppendOutcome::Applied { hwm } | AppendOutcome::Duplicate { hwm } => hwm,
        }
    }
}

/// A batch as [`BatchStore::apply_encoded`] takes it: the encoded `picket.v1.Batch` and what
/// the ledger needs from it.
#[derive(Debug, Clone, Copy)]
pub struct EncodedBatch<'a> {
    /// `Batch.seq`.
    pub seq: u64,
    /// `Batch.lane`, as sent.
    pub lane: i32,
    /// Records per kind (as [`picket_proto::record_kind`] names them).
    pub kinds: &'a [(&'static str, u64)],
    /// The encoded `picket.v1.Batch`, stored as is.
    pub bytes: &'a [u8],
}

/// Durable, deduplicating store of agent batches with a ledger per agent.
#[derive(Clone)]
pub struct BatchStore {
    path: PathBuf,
    db: sled::Db,
    batches: sled::Tree,
    ledgers: sled::Tree,
}

fn lane_mark(ledger: &mut AgentLedger, lane: Lane) -> &mut u64 {
    match lane {
        Lane::Bulk => &mut ledger.last_acked_seq,
        Lane::Priority => &mut ledger.last_acked_priority_seq,
    }
}

fn read_ledger(
    tree: &TransactionalTree,
    agent: &AgentId,
) -> Result<AgentLedger, ConflictableTransactionError<StoreError>> {
    match tree.get(agent.store_key())? {
        None => Ok(AgentLedger {
            account_id: agent.account_id().to_owned(),
            instance_id: agent.instance_id().to_owned(),
            ..AgentLedger::default()
        }),
        Some(v) => AgentLedger::decode(v.as_ref()).map_err(|e| {
            ConflictableTransactionError::Abort(StoreError::Corrupt {
                agent: agent.to_string(),
                reason: e.to_string(),
            })
        }),
    }
}

impl BatchStore {
    /// Opens (or creates) the store in `dir/ingest`.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when sled cannot open it (e.g. another process holds it), naming
    /// the folder; it never silently starts empty elsewhere.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("ingest");
        let sled_err = |source| StoreError::Sled {
            path: path.clone(),
            source,
        };
        let db = sled::open(&path).map_err(sled_err)?;
        let batches = db.open_tree("batches").map_err(sled_err)?;
        let ledgers = db.open_tree("ledgers").map_err(sled_err)?;
        Ok(Self {
            path,
            db,
            batches,
            ledgers,
        })
    }

    /// Another tree of the same sled database, for state that must share its durability (the
    /// intel manager's last published version).
    ///
    /// # Errors
    /// [`StoreError::Sled`] naming the folder.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|e| self.sled_err(e))
    }

    fn sled_err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    fn map_tx(&self, e: TransactionError<StoreError>) -> StoreError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(source) => self.sled_err(source),
        }
    }

    /// Applies a batch unless already applied, then flushes.
    ///
    /// # Errors
    /// [`StoreError`] on a zero sequence number, an unknown lane, corruption or a sled
    /// failure; nothing may be acked in that case.
    pub async fn append(
        &self,
        agent: &AgentId,
        batch: &Batch,
    ) -> Result<AppendOutcome, StoreError> {
        let outcome = self.apply(agent, batch, now_ms())?;
        if matches!(outcome, AppendOutcome::Applied { .. }) {
            self.flush().await?;
        }
        Ok(outcome)
    }

    /// Applies a batch in one transaction without flushing; callers that apply several
    /// batches flush once with [`BatchStore::flush`] before acking any of them.
    ///
    /// # Errors
    /// As [`BatchStore::append`].
    pub fn apply(
        &self,
        agent: &AgentId,
        batch: &Batch,
        now_ms: i64,
    ) -> Result<AppendOutcome, StoreError> {
        // Counted by the kinds' static names: no allocation per record.
        let mut kinds: Vec<(&'static str, u64)> = Vec::with_capacity(4);
        for r in &batch.records {
            let kind = record_kind(r);
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
        let value = batch.encode_to_vec();
        self.apply_encoded(
            agent,
            EncodedBatch {
                seq: batch.seq,
                lane: batch.lane,
                kinds: &kinds,
                bytes: &value,
            },
            now_ms,
        )
    }

    /// As [`BatchStore::apply`] for a batch still encoded as the agent sent it: stores those
    /// bytes as they are (the ingest path, which never decodes a batch before acking it).
    ///
    /// # Errors
    /// As [`BatchStore::append`].
    pub fn apply_encoded(
        &self,
        agent: &AgentId,
        batch: EncodedBatch<'_>,
        now_ms: i64,
    ) -> Result<AppendOutcome, StoreError> {
        if batch.seq == 0 {
            return Err(StoreError::ZeroSeq);
        }
        let lane = Lane::try_from(batch.lane).map_err(|_| StoreError::UnknownLane(batch.lane))?;
        let agent_key = agent.store_key();
        let batch_key = batch_key(agent, lane, batch.seq);
        (&self.batches, &self.ledgers)
            .transaction(|(batches, ledgers)| {
                let mut ledger = read_ledger(ledgers, agent)?;
                ledger.last_seen_ms = now_ms;
                if ledger.first_seen_ms == 0 {
                    ledger.first_seen_ms = now_ms;
                }
                let hwm = *lane_mark(&mut ledger, lane);
                let outcome = if batch.seq <= hwm {
                    ledger.duplicates_discarded += 1;
                    AppendOutcome::Duplicate { hwm }
                } else {
                    batches.insert(batch_key.as_slice(), batch.bytes)?;
                    *lane_mark(&mut ledger, lane) = batch.seq;
                    ledger.batches_received += 1;
                    for (kind, n) in batch.kinds {
                        match ledger.records_received.get_mut(*kind) {
                            Some(total) => *total += n,
                            None => {
                                ledger.records_received.insert((*kind).to_owned(), *n);
                            }
                        }
                    }
                    AppendOutcome::Applied { hwm: batch.seq }
                };
                ledgers.insert(agent_key.as_slice(), ledger.encode_to_vec())?;
                Ok(outcome)
            })
            .map_err(|e| self.map_tx(e))
    }

    /// Makes everything applied so far durable.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when the flush fails.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush_async()
            .await
            .map(drop)
            .map_err(|e| self.sled_err(e))
    }

    /// Records what an agent said about itself in `Hello` and heartbeats.
    ///
    /// # Errors
    /// [`StoreError`] on corruption or a sled failure.
    pub fn note_agent(
        &self,
        agent: &AgentId,
        region: Option<&str>,
        version: Option<&str>,
        health: Option<&AgentHealth>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.ledgers
            .transaction(|ledgers| {
                let mut ledger = read_ledger(ledgers, agent)?;
                ledger.last_seen_ms = now_ms;
                if ledger.first_seen_ms == 0 {
                    ledger.first_seen_ms = now_ms;
                }
                if let Some(r) = region {
                    ledger.region = r.to_owned();
                }
                if let Some(v) = version {
                    ledger.agent_version = v.to_owned();
                }
                if let Some(h) = health {
                    ledger.records_dropped_reported = h.records_dropped.clone();
                    ledger.last_health = Some(h.clone());
                }
                ledgers.insert(agent.store_key(), ledger.encode_to_vec())?;
                Ok(())
            })
            .map_err(|e| self.map_tx(e))
    }

    /// The agent's ledger, if it ever sent anything.
    ///
    /// # Errors
    /// [`StoreError`] on corruption or a sled failure.
    pub fn ledger(&self, agent: &AgentId) -> Result<Option<AgentLedger>, StoreError> {
        let v = self
            .ledgers
            .get(agent.store_key())
            .map_err(|e| self.sled_err(e))?;
        v.map(|v| {
            AgentLedger::decode(v.as_ref()).map_err(|e| StoreError::Corrupt {
                agent: agent.to_string(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Every agent's ledger, sorted by account then instance; damaged ones are reported.
    ///
    /// # Errors
    /// [`StoreError`] on corruption or a sled failure.
    pub fn ledgers(&self) -> Result<Vec<AgentLedger>, StoreError> {
        self.ledgers
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(|e| self.sled_err(e))?;
                AgentLedger::decode(v.as_ref()).map_err(|e| StoreError::Corrupt {
                    agent: String::from_utf8_lossy(&k).into_owned(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// The lane's high-water mark, 0 when the agent has sent nothing in it.
    ///
    /// # Errors
    /// [`StoreError`] on corruption or a sled failure.
    pub fn high_water_mark(&self, agent: &AgentId, lane: Lane) -> Result<u64, StoreError> {
        Ok(self
            .ledger(agent)?
            .map_or(0, |mut l| *lane_mark(&mut l, lane)))
    }

    /// Every stored batch of one agent, bulk lane first, each in sequence order.
    ///
    /// # Errors
    /// [`StoreError::Sled`] on a sled failure; undecodable batches are skipped and counted in
    /// the second value.
    pub fn batches_of(&self, agent: &AgentId) -> Result<(Vec<Batch>, u64), StoreError> {
        let mut prefix = agent.store_key();
        prefix.push(0);
        let mut out = Vec::new();
        let mut bad = 0;
        for item in self.batches.scan_prefix(prefix) {
            let (_, v) = item.map_err(|e| self.sled_err(e))?;
            match Batch::decode(v.as_ref()) {
                Ok(b) => out.push(b),
                Err(_) => bad += 1,
            }
        }
        Ok((out, bad))
    }

    /// Deletes one lane's batches from its start up to `observed` (inclusive) that the agent
    /// made before `cutoff_ms`, stopping at the first that is newer; returns how many went.
    /// The ledger keeps its marks and counts, so deleted batches are still recognised as
    /// replays.
    ///
    /// # Errors
    /// [`StoreError::Sled`] on a sled failure. A batch whose age cannot be read is kept.
    pub fn prune_observed(
        &self,
        agent: &AgentId,
        lane: Lane,
        observed: u64,
        cutoff_ms: i64,
    ) -> Result<u64, StoreError> {
        let start = batch_key(agent, lane, 0);
        let end = batch_key(agent, lane, observed);
        let mut gone = sled::Batch::default();
        let mut n = 0;
        for item in self.batches.range(start..=end) {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            match picket_proto::BatchSealTime::decode(v.as_ref()) {
                Ok(b) if b.created_at_ms < cutoff_ms => {
                    gone.remove(k);
                    n += 1;
                }
                _ => break,
            }
            // Bounded write batches: a first sweep may meet months of batches.
            if n % PRUNE_CHUNK == 0 {
                self.batches
                    .apply_batch(std::mem::take(&mut gone))
                    .map_err(|e| self.sled_err(e))?;
            }
        }
        self.batches
            .apply_batch(gone)
            .map_err(|e| self.sled_err(e))?;
        Ok(n)
    }

    /// One lane's stored batches with a sequence number above `after`, in order, as
    /// (seq, encoded `Batch`): what detection has not yet observed after a restart.
    pub fn stored_after(
        &self,
        agent: &AgentId,
        lane: Lane,
        after: u64,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        let start = batch_key(agent, lane, after.saturating_add(1));
        let end = batch_key(agent, lane, u64::MAX);
        let seq_at = end.len() - 8;
        self.batches
            .range(start..=end)
            .map(move |item| {
                let (k, v) = item.map_err(|e| self.sled_err(e))?;
                let seq = k
                    .get(seq_at..)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Ok((seq, v))
            })
            // Only `after == u64::MAX` (start saturated) can reach one at or below it.
            .filter(move |r| !matches!(r, Ok((seq, _)) if *seq <= after))
    }
}

/// Deletions applied together by [`BatchStore::prune_observed`].
const PRUNE_CHUNK: u64 = 4096;

/// Where a batch is stored: `<account>/<instance>\0<lane u8><seq u64 big-endian>`.
fn batch_key(agent: &AgentId, lane: Lane, seq: u64) -> Vec<u8> {
    let agent_key = agent.store_key();
    let mut key = Vec::with_capacity(agent_key.len() + 10);
    key.extend_from_slice(&agent_key);
    key.push(0);
    key.push(u8::try_from(lane as i32).unwrap_or(u8::MAX));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_proto::v1::{HostStats, IntelHit, Record, record};

    fn batch(seq: u64, lane: Lane) -> Batch {
        let r = match lane {
            Lane::Bulk => record::Record::HostStats(HostStats {
                packets: seq * 10,
                ..HostStats::default()
            }),
            Lane::Priority => record::Record::IntelHit(IntelHit {
                indicator: format!("x{seq}.example"),
                ..IntelHit::default()
            }),
        };
        Batch {
            seq,
            records: vec![Record { record: Some(r) }],
            created_at_ms: 1,
            lane: lane as i32,
        }
    }

    fn id(instance: &str) -> AgentId {
        AgentId::new("123456789012", instance).unwrap()
    }

    #[tokio::test]
    async fn replayed_batch_is_not_applied_twice_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let a = id("i-1");
        assert_eq!(
            store.append(&a, &batch(1, Lane::Bulk)).await.unwrap(),
            AppendOutcome::Applied { hwm: 1 }
        );
        assert_eq!(
            store.append(&a, &batch(2, Lane::Bulk)).await.unwrap(),
            AppendOutcome::Applied { hwm: 2 }
        );
        assert_eq!(
            store.append(&a, &batch(1, Lane::Bulk)).await.unwrap(),
            AppendOutcome::Duplicate { hwm: 2 }
        );
        let ledger = store.ledger(&a).unwrap().unwrap();
        assert_eq!(ledger.duplicates_discarded, 1);
        assert_eq!(ledger.batches_received, 2);
        assert_eq!(ledger.records_received.get("host_stats"), Some(&2));
        let (batches, bad) = store.batches_of(&a).unwrap();
        assert_eq!((batches.len(), bad), (2, 0));
    }

    #[tokio::test]
    async fn a_priority_batch_overtaking_the_backlog_does_not_hide_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let a = id("i-1");
        // The agent had bulk 1..=3 buffered when a hit (priority 1) arrived and went first.
        store.append(&a, &batch(1, Lane::Priority)).await.unwrap();
        for seq in 1..=3 {
            assert!(matches!(
                store.append(&a, &batch(seq, Lane::Bulk)).await.unwrap(),
                AppendOutcome::Applied { .. }
            ));
        }
        assert_eq!(store.high_water_mark(&a, Lane::Bulk).unwrap(), 3);
        assert_eq!(store.high_water_mark(&a, Lane::Priority).unwrap(), 1);
    }

    #[tokio::test]
    async fn batches_and_marks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = id("i-1");
        {
            let store = BatchStore::open(dir.path()).unwrap();
            store.append(&a, &batch(7, Lane::Bulk)).await.unwrap();
        }
        // sled's background flusher may hold the lock a moment after the drop (same process
        // only; a restart is a new process): wait for it, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let store = loop {
            match BatchStore::open(dir.path()) {
                Ok(s) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("reopen kept failing: {e}"),
            }
        };
        assert_eq!(store.high_water_mark(&a, Lane::Bulk).unwrap(), 7);
        assert_eq!(
            store.append(&a, &batch(7, Lane::Bulk)).await.unwrap(),
            AppendOutcome::Duplicate { hwm: 7 }
        );
    }

    #[tokio::test]
    async fn agents_do_not_share_marks_and_seq_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        store
            .append(&id("i-1"), &batch(5, Lane::Bulk))
            .await
            .unwrap();
        assert_eq!(
            store
                .append(&id("i-10"), &batch(1, Lane::Bulk))
                .await
                .unwrap(),
            AppendOutcome::Applied { hwm: 1 }
        );
        assert!(matches!(
            store.append(&id("i-1"), &batch(0, Lane::Bulk)).await,
            Err(StoreError::ZeroSeq)
        ));
        let mut b = batch(9, Lane::Bulk);
        b.lane = 7;
        assert!(matches!(
            store.append(&id("i-1"), &b).await,
            Err(StoreError::UnknownLane(7))
        ));
    }

    #[tokio::test]
    async fn a_damaged_ledger_is_reported_not_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let a = id("i-1");
        store
            .ledgers
            .insert(a.store_key(), &[0xff, 0xff, 0xff][..])
            .unwrap();
        assert!(matches!(
            store.append(&a, &batch(1, Lane::Bulk)).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(store.ledgers().is_err());
    }

    #[test]
    fn a_store_held_by_another_process_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let _held = BatchStore::open(dir.path()).unwrap();
        // sled locks the folder; a second open in the same process also fails.
        let err = BatchStore::open(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ingest"), "{err}");
    }
}
