//! The agent's outbox (sled): every batch the agent produces waits here until the aggregator
//! acks it.
//!
//! Invariants:
//! - Two lanes, each with its own sequence space starting at 1 and increasing by one per
//!   batch across restarts (the next number is stored with each batch in one transaction).
//!   Intel hits go in the priority lane, so they can overtake a backlog of summaries while
//!   the aggregator still deduplicates each lane with a plain high-water mark.
//! - [`Outbox::push`] returns only after sled has flushed; only then does a batch count as
//!   buffered, and only then is it handed out to be sent: each lane has a durable high-water
//!   mark, advanced after the flush returns, and the readers stop at it. Without it the
//!   transport could send (and on the ack delete) a batch written to sled but not yet on disk.
//! - A batch leaves only through [`Outbox::ack`] (the aggregator holds it) or eviction.
//! - The encoded bytes held stay within `max_bytes`: a push that would exceed it evicts the
//!   oldest bulk batches first and priority batches only when no bulk batch is left. Every
//!   evicted record is counted by kind in `dropped/<kind>`, persisted, and reported to the
//!   aggregator; nothing leaves silently.
//! - A stored batch that no longer decodes is removed and counted (`corrupt_dropped`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use picket_proto::record_kind;
use picket_proto::v1::{Batch, Lane, Record};
use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

const CORRUPT_KEY: &[u8] = b"corrupt_dropped";

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// Occurs when sled fails.
    #[error("outbox {path}: {source}")]
    Sled {
        /// The database folder.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Occurs when the stored next sequence number is damaged.
    #[error("outbox {path}: stored next sequence number is {len} bytes, expected 8")]
    Corrupt {
        /// The database folder.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

/// Counts describing the outbox now.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStats {
    /// Bulk batches waiting for an ack.
    pub batches: u64,
    /// Priority batches waiting for an ack.
    pub priority_batches: u64,
    /// Encoded size of all waiting batches.
    pub bytes: u64,
    /// The byte bound.
    pub max_bytes: u64,
    /// Oldest waiting bulk batch.
    pub first_seq: Option<u64>,
    /// Oldest waiting priority batch.
    pub first_priority_seq: Option<u64>,
    /// When the oldest waiting batch (either lane) was sealed, Unix ms.
    pub oldest_created_at_ms: Option<i64>,
    /// Records evicted to stay within the bound, by kind, since the outbox was created.
    pub dropped: BTreeMap<String, u64>,
    /// Batches removed because they no longer decoded.
    pub corrupt_dropped: u64,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// The batch's sequence number in its lane.
    pub seq: u64,
    /// Records evicted to make room (this batch's own, if it alone exceeds the bound).
    pub evicted_records: u64,
}

/// A waiting batch as stored: the encoded `Batch` message, sent as is (no decode and
/// re-encode per send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// The batch's sequence number in its lane.
    pub seq: u64,
    /// The encoded `picket.v1.Batch`.
    pub bytes: bytes::Bytes,
}

/// `Batch` with every record left opaque: decoding it checks the protobuf framing of the batch
/// and of each record (tags, lengths, varints) without allocating, so a damaged value is caught
/// before it is sent (the aggregator would refuse the whole frame).
#[derive(Clone, PartialEq, prost::Message)]
struct BatchShape {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(message, repeated, tag = "2")]
    records: Vec<OpaqueRecord>,
}

/// A record whose fields are skipped (a zero-sized type: a `Vec` of them never allocates).
#[derive(Clone, PartialEq, prost::Message)]
struct OpaqueRecord {}

/// Durable, bounded queue of batches awaiting acks.
#[derive(Clone)]
pub struct Outbox {
    path: PathBuf,
    db: sled::Db,
    batches: sled::Tree,
    meta: sled::Tree,
    max_bytes: u64,
    // Bytes held. A std Mutex: held only around synchronous sled calls, never across an
    // await, so pushes from several tasks evict consistently. It also orders the pushes'
    // transactions, which is what lets a flush vouch for every seq below its own.
    bytes: Arc<Mutex<u64>>,
    // Per lane (indexed by `Lane as usize`), the highest seq known to be on disk. Raised
    // only after a flush returns; the readers hand out nothing above it.
    durable: Arc<[AtomicU64; 2]>,
}

/// Batches written to sled by [`Outbox::stage`] but not yet flushed, so not yet buffered.
#[derive(Debug)]
struct Staged {
    // Per lane, the last seq written (0: none).
    last: [u64; 2],
    seq: u64,
    evicted_records: u64,
}

fn key(lane: Lane, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = lane as u8;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn parse_key(k: &[u8]) -> Option<(Lane, u64)> {
    let (lane, seq) = k.split_first()?;
    let lane = Lane::try_from(i32::from(*lane)).ok()?;
    Some((lane, u64::from_be_bytes(<[u8; 8]>::try_from(seq).ok()?)))
}

fn next_seq_key(lane: Lane) -> &'static [u8] {
    match lane {
        Lane::Bulk => b"next_seq",
        Lane::Priority => b"next_seq_priority",
    }
}

fn dropped_key(kind: &str) -> Vec<u8> {
    format!("dropped/{kind}").into_bytes()
}

fn be_u64(v: &[u8]) -> u64 {
    <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes)
}

impl Outbox {
    /// Opens the outbox trees in an agent's sled database, bounded to `max_bytes`.
    ///
    /// # Errors
    /// [`OutboxError::Sled`] when the trees cannot be opened or read.
    pub fn open(db: &sled::Db, path: PathBuf, max_bytes: u64) -> Result<Self, OutboxError> {
        let sled_err = |source| OutboxError::Sled {
            path: path.clone(),
            source,
        };
        let batches = db.open_tree("outbox").map_err(sled_err)?;
        let meta = db.open_tree("outbox_meta").map_err(sled_err)?;
        let mut bytes = 0u64;
        for item in batches.iter() {
            let (_, v) = item.map_err(sled_err)?;
            bytes += v.len() as u64;
        }
        // What sled recovered at open is what reached the disk, so all of it is durable.
        let durable = [Lane::Bulk, Lane::Priority].map(|lane| {
            let last = batches
                .range(key(lane, 0)..=key(lane, u64::MAX))
                .keys()
                .next_back()
                .and_then(|k| k.ok())
                .and_then(|k| parse_key(&k))
                .map_or(0, |(_, seq)| seq);
            AtomicU64::new(last)
        });
        Ok(Self {
            path,
            db: db.clone(),
            batches,
            meta,
            max_bytes,
            bytes: Arc::new(Mutex::new(bytes)),
            durable: Arc::new(durable),
        })
    }

    /// The highest seq of `lane` that may be handed out (known to be on disk).
    fn durable_seq(&self, lane: Lane) -> u64 {
        self.durable[lane as usize].load(Ordering::Acquire)
    }

    fn sled_err(&self, source: sled::Error) -> OutboxError {
        OutboxError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    fn add_counter(&self, key: &[u8], n: u64) -> Result<(), OutboxError> {
        self.meta
            .update_and_fetch(key, |old| {
                Some(
                    old.map_or(0, be_u64)
                        .saturating_add(n)
                        .to_be_bytes()
                        .to_vec(),
                )
            })
            .map(drop)
            .map_err(|e| self.sled_err(e))
    }

    /// Seals `records` into the next batch of `lane` and makes it durable, evicting the oldest
    /// batches if the bound requires it.
    ///
    /// # Errors
    /// [`OutboxError`] on corruption or a sled failure; the batch is then not buffered.
    pub async fn push(
        &self,
        lane: Lane,
        records: Vec<Record>,
        created_at_ms: i64,
    ) -> Result<Pushed, OutboxError> {
        self.push_parts(vec![(lane, records)], created_at_ms, None)
            .await
    }

    /// Seals each non-empty part into the next batch of its lane, all in one transaction
    /// together with an optional `(key, value)` written to the outbox's metadata (an input
    /// position, so a reader that crashes neither loses nor repeats input), then flushes.
    /// Returns the last part's seq.
    ///
    /// # Errors
    /// [`OutboxError`] on corruption or a sled failure; nothing is buffered then.
    pub async fn push_parts(
        &self,
        parts: Vec<(Lane, Vec<Record>)>,
        created_at_ms: i64,
        cursor: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Pushed, OutboxError> {
        let staged = self.stage(parts, created_at_ms, cursor)?;
        self.make_durable(staged).await
    }

    /// Flushes and only then raises the lanes' durable marks to what `staged` wrote. Pushes'
    /// transactions commit in seq order (under the `bytes` lock), and a flush that returns
    /// covers every transaction committed before it started, so raising a mark to our seq
    /// also vouches for any lower seq whose own flush has not returned yet.
    async fn make_durable(&self, staged: Staged) -> Result<Pushed, OutboxError> {
        self.db.flush_async().await.map_err(|e| self.sled_err(e))?;
        for (mark, last) in self.durable.iter().zip(staged.last) {
            if last > 0 {
                mark.fetch_max(last, Ordering::AcqRel);
            }
        }
        Ok(Pushed {
            seq: staged.seq,
            evicted_records: staged.evicted_records,
        })
    }

    /// The write half of [`Outbox::push_parts`]: one transaction, then eviction. Nothing it
    /// writes is handed out before [`Outbox::make_durable`].
    fn stage(
        &self,
        parts: Vec<(Lane, Vec<Record>)>,
        created_at_ms: i64,
        cursor: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Staged, OutboxError> {
        // Encoded once, outside the transaction (whose closure may run more than once). The
        // seq is prepended inside it: concatenated protobuf messages merge, so
        // `Batch{seq}` ++ `Batch{records, …}` decodes as the whole batch.
        let bodies: Vec<(Lane, Vec<u8>)> = parts
            .into_iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(lane, records)| {
                let body = Batch {
                    seq: 0,
                    records,
                    created_at_ms,
                    lane: lane as i32,
                }
                .encode_to_vec();
                (lane, body)
            })
            .collect();
        let mut held = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, total) = (&self.batches, &self.meta)
            .transaction(|(batches, meta)| {
                let mut last = [0u64; 2];
                let mut total = 0u64;
                for (lane, body) in &bodies {
                    let lane = *lane;
                    let seq = match meta.get(next_seq_key(lane))? {
                        None => 1,
                        Some(v) => match <[u8; 8]>::try_from(v.as_ref()) {
                            Ok(b) => u64::from_be_bytes(b),
                            Err(_) => return Err(ConflictableTransactionError::Abort(v.len())),
                        },
                    };
                    let mut value = Batch {
                        seq,
                        ..Batch::default()
                    }
                    .encode_to_vec();
                    value.extend_from_slice(body);
                    total += value.len() as u64;
                    batches.insert(&key(lane, seq), value)?;
                    meta.insert(next_seq_key(lane), &seq.saturating_add(1).to_be_bytes())?;
                    last[lane as usize] = seq;
                }
                if let Some((k, v)) = &cursor {
                    meta.insert(k.as_slice(), v.as_slice())?;
                }
                Ok((last, total))
            })
            .map_err(|e| match e {
                TransactionError::Abort(len) => OutboxError::Corrupt {
                    path: self.path.clone(),
                    len,
                },
                TransactionError::Storage(e) => self.sled_err(e),
            })?;
        *held += total;
        let evicted_records = self.evict_to_bound(&mut held)?;
        // The last part's seq (parts keep their order; empty ones were skipped).
        let seq = bodies.last().map_or(0, |(lane, _)| last[*lane as usize]);
        Ok(Staged {
            last,
            seq,
            evicted_records,
        })
    }

    /// A value stored with [`Outbox::push_parts`]'s cursor.
    ///
    /// # Errors
    /// [`OutboxError::Sled`] on a sled failure.
    pub fn cursor(&self, key: &[u8]) -> Result<Option<Vec<u8>>, OutboxError> {
        Ok(self
            .meta
            .get(key)
            .map_err(|e| self.sled_err(e))?
            .map(|v| v.to_vec()))
    }

    /// Evicts oldest-first (bulk lane before priority) until within the bound.
    fn evict_to_bound(&self, held: &mut u64) -> Result<u64, OutboxError> {
        let mut evicted = 0u64;
        while *held > self.max_bytes {
            let victim = match self
                .batches
                .scan_prefix([Lane::Bulk as u8])
                .next()
                .or_else(|| self.batches.scan_prefix([Lane::Priority as u8]).next())
            {
                Some(item) => item.map_err(|e| self.sled_err(e))?,
                None => break,
            };
            let (k, v) = victim;
            if self
                .batches
                .remove(&k)
                .map_err(|e| self.sled_err(e))?
                .is_none()
            {
                continue;
            }
            *held = held.saturating_sub(v.len() as u64);
            match Batch::decode(v.as_ref()) {
                Ok(batch) => {
                    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
                    for r in &batch.records {
                        *by_kind.entry(record_kind(r)).or_insert(0) += 1;
                    }
                    for (kind, n) in by_kind {
                        self.add_counter(&dropped_key(kind), n)?;
                        evicted += n;
                    }
                }
                Err(_) => self.add_counter(CORRUPT_KEY, 1)?,
            }
        }
        Ok(evicted)
    }

    /// Up to `max` waiting batches of `lane` with seq >= `from`, in order, only those known
    /// to be on disk. Undecodable ones are removed and counted.
    ///
    /// # Errors
    /// [`OutboxError::Sled`] on a sled failure.
    pub fn pending_from(
        &self,
        lane: Lane,
        from: u64,
        max: usize,
    ) -> Result<Vec<Batch>, OutboxError> {
        let mut out = Vec::new();
        let durable = self.durable_seq(lane);
        if from > durable {
            return Ok(out);
        }
        let end = key(lane, durable);
        for item in self.batches.range(key(lane, from)..=end) {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            match Batch::decode(v.as_ref()) {
                Ok(b) => out.push(b),
                Err(e) => {
                    tracing::error!(outbox = %self.path.display(), error = %e, "dropping undecodable outbox batch");
                    if let Some(old) = self.batches.remove(&k).map_err(|e| self.sled_err(e))? {
                        let mut held = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
                        *held = held.saturating_sub(old.len() as u64);
                    }
                    self.add_counter(CORRUPT_KEY, 1)?;
                }
            }
        }
        Ok(out)
    }

    /// As [`Outbox::pending_from`], but the batches stay encoded (the transport's path):
    /// only their framing is checked; a value whose framing is damaged or whose seq differs
    /// from its key is removed and counted.
    ///
    /// # Errors
    /// [`OutboxError::Sled`] on a sled failure.
    pub fn pending_encoded_from(
        &self,
        lane: Lane,
        from: u64,
        max: usize,
    ) -> Result<Vec<EncodedBatch>, OutboxError> {
        let mut out = Vec::new();
        let durable = self.durable_seq(lane);
        if from > durable {
            return Ok(out);
        }
        let end = key(lane, durable);
        for item in self.batches.range(key(lane, from)..=end) {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let seq = parse_key(&k).map_or(0, |(_, s)| s);
            match BatchShape::decode(v.as_ref()) {
                // The bytes stay sled's (shared, immutable): no copy of the batch per send.
                Ok(shape) if shape.seq == seq && seq > 0 => out.push(EncodedBatch {
                    seq,
                    bytes: bytes::Bytes::from_owner(v),
                }),
                bad => {
                    let why = bad.map_or_else(
                        |e| e.to_string(),
                        |s| format!("seq {} under key seq {seq}", s.seq),
                    );
                    tracing::error!(outbox = %self.path.display(), error = %why, "dropping damaged outbox batch");
                    if let Some(old) = self.batches.remove(&k).map_err(|e| self.sled_err(e))? {
                        let mut held = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
                        *held = held.saturating_sub(old.len() as u64);
                    }
                    self.add_counter(CORRUPT_KEY, 1)?;
                }
            }
        }
        Ok(out)
    }

    /// Removes every batch of `lane` with seq <= `seq`; returns how many were removed.
    ///
    /// # Errors
    /// [`OutboxError::Sled`] on a sled failure.
    pub fn ack(&self, lane: Lane, seq: u64) -> Result<u64, OutboxError> {
        let mut removed = 0;
        let mut held = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        for item in self.batches.range(key(lane, 0)..=key(lane, seq)) {
            let (k, _) = item.map_err(|e| self.sled_err(e))?;
            if let Some(old) = self.batches.remove(k).map_err(|e| self.sled_err(e))? {
                *held = held.saturating_sub(old.len() as u64);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// What the outbox holds now.
    ///
    /// # Errors
    /// [`OutboxError::Sled`] on a sled failure.
    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let mut stats = OutboxStats {
            max_bytes: self.max_bytes,
            bytes: *self.bytes.lock().unwrap_or_else(PoisonError::into_inner),
            ..OutboxStats::default()
        };
        for item in self.batches.iter().keys() {
            let k = item.map_err(|e| self.sled_err(e))?;
            match parse_key(&k) {
                Some((Lane::Bulk, seq)) => {
                    stats.batches += 1;
                    stats.first_seq.get_or_insert(seq);
                }
                Some((Lane::Priority, seq)) => {
                    stats.priority_batches += 1;
                    stats.first_priority_seq.get_or_insert(seq);
                }
                None => {}
            }
        }
        for first in [
            stats.first_seq.map(|s| key(Lane::Bulk, s)),
            stats.first_priority_seq.map(|s| key(Lane::Priority, s)),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(v) = self.batches.get(first).map_err(|e| self.sled_err(e))? {
                if let Ok(b) = picket_proto::BatchSealTime::decode(v.as_ref()) {
                    let t = stats.oldest_created_at_ms.get_or_insert(b.created_at_ms);
                    *t = (*t).min(b.created_at_ms);
                }
            }
        }
        for item in self.meta.scan_prefix(b"dropped/") {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let kind = String::from_utf8_lossy(&k[b"dropped/".len()..]).into_owned();
            stats.dropped.insert(kind, be_u64(&v));
        }
        stats.corrupt_dropped = self
            .meta
            .get(CORRUPT_KEY)
            .map_err(|e| self.sled_err(e))?
            .map_or(0, |v| be_u64(&v));
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_proto::v1::{FlowSummary, HostStats, IntelHit, record};

    fn host(n: u64) -> Vec<Record> {
        vec![Record {
            record: Some(record::Record::HostStats(HostStats {
                packets: n,
                ..HostStats::default()
            })),
        }]
    }

    fn flows(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                record: Some(record::Record::Flow(FlowSummary {
                    remote_addr: format!("198.51.100.{}", i % 250),
                    connections: i as u64,
                    ..FlowSummary::default()
                })),
            })
            .collect()
    }

    fn hit() -> Vec<Record> {
        vec![Record {
            record: Some(record::Record::IntelHit(IntelHit {
                indicator: "guarddutyc2activityb.com".into(),
                ..IntelHit::default()
            })),
        }]
    }

    /// Opens the outbox, waiting (bounded) for the file lock: after a drop in the same
    /// process, sled's background flusher can hold the database a moment longer. A restart
    /// in production is a new process, which never sees this.
    fn open(dir: &std::path::Path, max: u64) -> Outbox {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let db = loop {
            match sled::open(dir) {
                Ok(db) => break db,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("sled::open({}) kept failing: {e}", dir.display()),
            }
        };
        Outbox::open(&db, dir.to_owned(), max).unwrap()
    }

    #[tokio::test]
    async fn sequence_numbers_continue_across_restarts_even_when_all_acked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let ob = open(dir.path(), 1 << 20);
            assert_eq!(ob.push(Lane::Bulk, host(1), 0).await.unwrap().seq, 1);
            assert_eq!(ob.push(Lane::Bulk, host(2), 0).await.unwrap().seq, 2);
            assert_eq!(ob.push(Lane::Priority, hit(), 0).await.unwrap().seq, 1);
            assert_eq!(ob.ack(Lane::Bulk, 2).unwrap(), 2);
        }
        let ob = open(dir.path(), 1 << 20);
        assert_eq!(ob.push(Lane::Bulk, host(3), 0).await.unwrap().seq, 3);
        assert_eq!(ob.push(Lane::Priority, hit(), 0).await.unwrap().seq, 2);
    }

    #[tokio::test]
    async fn unacked_batches_survive_restart_and_ack_touches_only_its_lane() {
        let dir = tempfile::tempdir().unwrap();
        {
            let ob = open(dir.path(), 1 << 20);
            for i in 1..=5 {
                ob.push(Lane::Bulk, host(i), 100 + i as i64).await.unwrap();
            }
            ob.push(Lane::Priority, hit(), 50).await.unwrap();
            assert_eq!(ob.ack(Lane::Bulk, 2).unwrap(), 2);
        }
        let ob = open(dir.path(), 1 << 20);
        let pending = ob.pending_from(Lane::Bulk, 1, 10).unwrap();
        assert_eq!(
            pending.iter().map(|b| b.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(ob.pending_from(Lane::Bulk, 4, 1).unwrap()[0].seq, 4);
        assert_eq!(ob.pending_from(Lane::Priority, 1, 10).unwrap().len(), 1);
        let s = ob.stats().unwrap();
        assert_eq!(
            (s.batches, s.first_seq, s.priority_batches),
            (3, Some(3), 1)
        );
        assert_eq!(s.oldest_created_at_ms, Some(50));
        assert!(s.bytes > 0);
    }

    #[tokio::test]
    async fn a_batch_not_yet_flushed_is_not_handed_out_to_be_sent() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(dir.path(), 1 << 20);
        ob.push(Lane::Bulk, host(1), 0).await.unwrap();
        // Written to sled in the push's transaction, its flush not yet returned.
        let staged = ob
            .stage(
                vec![(Lane::Priority, hit()), (Lane::Bulk, host(2))],
                0,
                None,
            )
            .unwrap();
        let seqs = |lane| -> Vec<u64> {
            ob.pending_encoded_from(lane, 1, 10)
                .unwrap()
                .iter()
                .map(|b| b.seq)
                .collect()
        };
        assert_eq!(seqs(Lane::Bulk), vec![1]);
        assert_eq!(seqs(Lane::Priority), Vec::<u64>::new());
        assert!(
            ob.pending_encoded_from(Lane::Bulk, 2, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(ob.pending_from(Lane::Bulk, 1, 10).unwrap().len(), 1);
        let pushed = ob.make_durable(staged).await.unwrap();
        assert_eq!(pushed.seq, 2, "the last part's seq");
        assert_eq!(seqs(Lane::Bulk), vec![1, 2]);
        assert_eq!(seqs(Lane::Priority), vec![1]);
    }

    #[tokio::test]
    async fn a_later_flush_vouches_for_an_earlier_staged_batch() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(dir.path(), 1 << 20);
        let first = ob.stage(vec![(Lane::Bulk, host(1))], 0, None).unwrap();
        let second = ob.stage(vec![(Lane::Bulk, host(2))], 0, None).unwrap();
        ob.make_durable(second).await.unwrap();
        let sent: Vec<u64> = ob
            .pending_encoded_from(Lane::Bulk, 1, 10)
            .unwrap()
            .iter()
            .map(|b| b.seq)
            .collect();
        assert_eq!(sent, vec![1, 2]);
        ob.make_durable(first).await.unwrap();
        assert_eq!(ob.pending_encoded_from(Lane::Bulk, 1, 10).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn stats_read_the_oldest_seal_time_past_many_records() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(dir.path(), 1 << 20);
        ob.push(Lane::Bulk, flows(200), 1_700_000_000_123)
            .await
            .unwrap();
        ob.push(Lane::Bulk, flows(3), 1_700_000_000_999)
            .await
            .unwrap();
        assert_eq!(
            ob.stats().unwrap().oldest_created_at_ms,
            Some(1_700_000_000_123)
        );
        ob.ack(Lane::Bulk, 1).unwrap();
        assert_eq!(
            ob.stats().unwrap().oldest_created_at_ms,
            Some(1_700_000_000_999)
        );
    }

    #[tokio::test]
    async fn a_full_outbox_evicts_oldest_summaries_first_counts_them_and_keeps_hits() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(dir.path(), 64 * 1024);
        ob.push(Lane::Priority, hit(), 0).await.unwrap();
        let mut evicted = 0;
        let mut pushed_flows = 0;
        for _ in 0..100 {
            evicted += ob
                .push(Lane::Bulk, flows(50), 0)
                .await
                .unwrap()
                .evicted_records;
            pushed_flows += 50;
        }
        let s = ob.stats().unwrap();
        assert!(s.bytes <= 64 * 1024, "{} bytes held", s.bytes);
        assert_eq!(
            s.priority_batches, 1,
            "the intel hit was evicted before summaries"
        );
        assert_eq!(s.dropped.get("flow").copied().unwrap_or(0), evicted);
        assert!(evicted > 0);
        let held: u64 = ob
            .pending_from(Lane::Bulk, 1, usize::MAX)
            .unwrap()
            .iter()
            .map(|b| b.records.len() as u64)
            .sum();
        assert_eq!(
            held + evicted,
            pushed_flows,
            "every flow is held or counted"
        );
        // The oldest went first: what is left is the newest suffix.
        let seqs: Vec<u64> = ob
            .pending_from(Lane::Bulk, 1, usize::MAX)
            .unwrap()
            .iter()
            .map(|b| b.seq)
            .collect();
        assert_eq!(seqs.last(), Some(&100));
    }

    #[tokio::test]
    async fn hits_are_evicted_only_when_no_summary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(dir.path(), 200);
        for _ in 0..20 {
            ob.push(Lane::Priority, hit(), 0).await.unwrap();
        }
        let s = ob.stats().unwrap();
        assert!(s.bytes <= 200);
        assert!(s.dropped.get("intel_hit").copied().unwrap_or(0) > 0);
    }

    #[tokio::test]
    async fn an_undecodable_batch_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(dir.path(), 1 << 20);
        ob.push(Lane::Bulk, host(1), 0).await.unwrap();
        ob.push(Lane::Bulk, host(2), 0).await.unwrap();
        ob.batches
            .insert(key(Lane::Bulk, 1), &[0xff, 0xff, 0xff][..])
            .unwrap();
        let pending = ob.pending_from(Lane::Bulk, 1, 10).unwrap();
        assert_eq!(pending.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![2]);
        assert_eq!(ob.stats().unwrap().corrupt_dropped, 1);
    }

    #[tokio::test]
    async fn the_encoded_path_sends_stored_bytes_and_drops_damaged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(dir.path(), 1 << 20);
        for n in 1..=4 {
            ob.push(Lane::Bulk, host(n), 7).await.unwrap();
        }
        // Framing broken inside a record: the length says more bytes than there are.
        let mut bad = Batch {
            seq: 2,
            ..Batch::default()
        }
        .encode_to_vec();
        bad.extend_from_slice(&[0x12, 0x05, 0x0a, 0x09, 0x01]);
        ob.batches.insert(key(Lane::Bulk, 2), bad).unwrap();
        // Well formed but stored under another seq's key.
        let moved = ob.batches.get(key(Lane::Bulk, 4)).unwrap().unwrap();
        ob.batches.insert(key(Lane::Bulk, 3), moved).unwrap();
        let pending = ob.pending_encoded_from(Lane::Bulk, 1, 10).unwrap();
        assert_eq!(
            pending.iter().map(|b| b.seq).collect::<Vec<_>>(),
            vec![1, 4]
        );
        let decoded = Batch::decode(pending[1].bytes.as_ref()).unwrap();
        assert_eq!(decoded.seq, 4);
        assert_eq!(decoded.created_at_ms, 7);
        assert_eq!(decoded.records, host(4));
        assert_eq!(ob.stats().unwrap().corrupt_dropped, 2);
    }
}
