//! The aggregator's batch store (sled).
//!
//! Invariants:
//! - A batch is stored under `batches/<account>/<instance>\0<seq as u64 big-endian>`, so one
//!   agent's batches are contiguous and in sequence order.
//! - Each agent's high-water mark (`hwm/<account>/<instance>`, u64 big-endian) is the highest
//!   sequence number applied. The batch and the mark are written in one sled transaction, so a
//!   replayed batch (seq <= mark) is recognised and not applied twice, even across a crash.
//! - [`BatchStore::append`] returns only after sled has flushed to disk; only then may the
//!   caller ack, because an ack tells the agent it may delete its copy.
//! - A high-water mark that is not 8 bytes is reported as [`StoreError::Corrupt`], never read
//!   as zero (which would re-apply every batch).

use std::path::{Path, PathBuf};

use picket_proto::AgentId;
use picket_proto::v1::Batch;
use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

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
    /// Occurs when a stored high-water mark has the wrong length.
    #[error("batch store: high-water mark of {agent} is {len} bytes, expected 8")]
    Corrupt {
        /// The agent whose mark is damaged.
        agent: String,
        /// Its length.
        len: usize,
    },
    /// Occurs when a batch has sequence number 0 (sequence numbers start at 1).
    #[error("batch sequence numbers start at 1, got 0")]
    ZeroSeq,
}

/// What [`BatchStore::append`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch was new and is now durable; `hwm` is the agent's new high-water mark.
    Applied {
        /// The agent's high-water mark after the write.
        hwm: u64,
    },
    /// The batch had been applied before (a replay after reconnect); nothing was written.
    Duplicate {
        /// The agent's unchanged high-water mark.
        hwm: u64,
    },
}

impl AppendOutcome {
    /// The high-water mark after the call: every batch with seq <= it is durable.
    pub fn hwm(self) -> u64 {
        match self {
            AppendOutcome::Applied { hwm } | AppendOutcome::Duplicate { hwm } => hwm,
        }
    }
}

/// Durable, deduplicating store of agent batches.
#[derive(Clone)]
pub struct BatchStore {
    path: PathBuf,
    db: sled::Db,
    batches: sled::Tree,
    marks: sled::Tree,
}

impl BatchStore {
    /// Opens (or creates) the store in `dir/ingest`.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when sled cannot open it (e.g. another process holds it).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("ingest");
        let sled_err = |source| StoreError::Sled {
            path: path.clone(),
            source,
        };
        let db = sled::open(&path).map_err(sled_err)?;
        let batches = db.open_tree("batches").map_err(sled_err)?;
        let marks = db.open_tree("hwm").map_err(sled_err)?;
        Ok(Self {
            path,
            db,
            batches,
            marks,
        })
    }

    /// Applies a batch unless already applied, then flushes.
    ///
    /// # Errors
    /// [`StoreError`] on a zero sequence number, corruption or a sled failure; nothing is
    /// acked in that case.
    pub async fn append(
        &self,
        agent: &AgentId,
        batch: &Batch,
    ) -> Result<AppendOutcome, StoreError> {
        if batch.seq == 0 {
            return Err(StoreError::ZeroSeq);
        }
        let agent_key = agent.store_key();
        let batch_key = batch_key(&agent_key, batch.seq);
        let value = batch.encode_to_vec();
        let outcome = (&self.batches, &self.marks)
            .transaction(|(batches, marks)| {
                let hwm = match marks.get(&agent_key)? {
                    None => 0,
                    Some(v) => match <[u8; 8]>::try_from(v.as_ref()) {
                        Ok(b) => u64::from_be_bytes(b),
                        Err(_) => {
                            return Err(ConflictableTransactionError::Abort(StoreError::Corrupt {
                                agent: agent.to_string(),
                                len: v.len(),
                            }));
                        }
                    },
                };
                if batch.seq <= hwm {
                    return Ok(AppendOutcome::Duplicate { hwm });
                }
                batches.insert(batch_key.as_slice(), value.as_slice())?;
                marks.insert(agent_key.as_slice(), &batch.seq.to_be_bytes())?;
                Ok(AppendOutcome::Applied { hwm: batch.seq })
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(source) => StoreError::Sled {
                    path: self.path.clone(),
                    source,
                },
            })?;
        if matches!(outcome, AppendOutcome::Applied { .. }) {
            self.db
                .flush_async()
                .await
                .map_err(|source| StoreError::Sled {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(outcome)
    }

    /// The agent's high-water mark, 0 when it has sent nothing.
    ///
    /// # Errors
    /// [`StoreError`] on corruption or a sled failure.
    pub fn high_water_mark(&self, agent: &AgentId) -> Result<u64, StoreError> {
        let v = self
            .marks
            .get(agent.store_key())
            .map_err(|source| StoreError::Sled {
                path: self.path.clone(),
                source,
            })?;
        match v {
            None => Ok(0),
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    agent: agent.to_string(),
                    len: v.len(),
                }),
        }
    }

    /// One stored batch, if present and decodable.
    ///
    /// # Errors
    /// [`StoreError::Sled`] on a sled failure.
    pub fn get(&self, agent: &AgentId, seq: u64) -> Result<Option<Batch>, StoreError> {
        let v = self
            .batches
            .get(batch_key(&agent.store_key(), seq))
            .map_err(|source| StoreError::Sled {
                path: self.path.clone(),
                source,
            })?;
        Ok(v.and_then(|v| Batch::decode(v.as_ref()).ok()))
    }
}

fn batch_key(agent_key: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(agent_key.len() + 9);
    k.extend_from_slice(agent_key);
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_proto::v1::{HostStats, Record, record};

    fn batch(seq: u64) -> Batch {
        Batch {
            seq,
            records: vec![Record {
                record: Some(record::Record::HostStats(HostStats {
                    packets: seq * 10,
                    ..HostStats::default()
                })),
            }],
            created_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn replayed_batch_is_not_applied_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let id = AgentId::new("123456789012", "i-1").unwrap();
        assert_eq!(
            store.append(&id, &batch(1)).await.unwrap(),
            AppendOutcome::Applied { hwm: 1 }
        );
        assert_eq!(
            store.append(&id, &batch(2)).await.unwrap(),
            AppendOutcome::Applied { hwm: 2 }
        );
        assert_eq!(
            store.append(&id, &batch(1)).await.unwrap(),
            AppendOutcome::Duplicate { hwm: 2 }
        );
        assert_eq!(store.get(&id, 2).unwrap().unwrap(), batch(2));
    }

    #[tokio::test]
    async fn batches_and_marks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = AgentId::new("123456789012", "i-1").unwrap();
        {
            let store = BatchStore::open(dir.path()).unwrap();
            store.append(&id, &batch(7)).await.unwrap();
        }
        let store = BatchStore::open(dir.path()).unwrap();
        assert_eq!(store.high_water_mark(&id).unwrap(), 7);
        assert_eq!(store.get(&id, 7).unwrap().unwrap(), batch(7));
        assert_eq!(
            store.append(&id, &batch(7)).await.unwrap(),
            AppendOutcome::Duplicate { hwm: 7 }
        );
    }

    #[tokio::test]
    async fn agents_do_not_share_marks_and_seq_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let a = AgentId::new("123456789012", "i-1").unwrap();
        let b = AgentId::new("123456789012", "i-10").unwrap();
        store.append(&a, &batch(5)).await.unwrap();
        assert_eq!(
            store.append(&b, &batch(1)).await.unwrap(),
            AppendOutcome::Applied { hwm: 1 }
        );
        assert!(matches!(
            store.append(&a, &batch(0)).await,
            Err(StoreError::ZeroSeq)
        ));
    }

    #[tokio::test]
    async fn a_damaged_mark_is_reported_not_read_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let a = AgentId::new("123456789012", "i-1").unwrap();
        store.marks.insert(a.store_key(), &[1u8, 2, 3][..]).unwrap();
        assert!(matches!(
            store.append(&a, &batch(1)).await,
            Err(StoreError::Corrupt { len: 3, .. })
        ));
    }
}
