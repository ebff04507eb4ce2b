//! Queries waiting for their response: a bounded table with a timeout.
//!
//! Queries arrive in time order, so a FIFO queue beside the map is the expiry index: the
//! oldest query is always at its front. Answered queries leave the map at once and their
//! queue entries are skipped when they reach the front (the sequence number tells).

use std::collections::{HashMap, VecDeque};

use crate::capture::Timestamp;
use crate::flow_table::Endpoint;

/// What pairs a response with its query: both ends, the transport and the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PendingKey {
    /// The end that asked.
    pub client: Endpoint,
    /// The resolver asked.
    pub server: Endpoint,
    /// IP protocol: UDP or TCP.
    pub protocol: u8,
    /// DNS transaction id.
    pub id: u16,
}

/// A query still waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingQuery {
    /// When it was sent.
    pub ts: Timestamp,
    /// The name asked for.
    pub name: String,
    /// The type asked for.
    pub qtype: u16,
    seq: u64,
}

/// Bounded table of unanswered queries.
#[derive(Debug)]
pub struct PendingQueries {
    map: HashMap<PendingKey, PendingQuery, foldhash::fast::RandomState>,
    order: VecDeque<(Timestamp, u64, PendingKey)>,
    capacity: usize,
    timeout_nanos: u64,
    next_seq: u64,
    evicted: u64,
}

impl PendingQueries {
    /// A table of at most `capacity` queries (at least one), each waiting at most `timeout`.
    pub fn new(capacity: usize, timeout: std::time::Duration) -> Self {
        Self {
            map: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            timeout_nanos: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            next_seq: 0,
            evicted: 0,
        }
    }

    /// Records a query; a retransmission with the same key keeps the first send time.
    /// When full, the oldest query is given up on and returned through `gave_up`.
    pub fn insert(
        &mut self,
        ts: Timestamp,
        key: PendingKey,
        name: String,
        qtype: u16,
        gave_up: &mut impl FnMut(PendingKey, PendingQuery),
    ) {
        if self.map.contains_key(&key) {
            return;
        }
        while self.map.len() >= self.capacity {
            let Some((_, seq, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&oldest).is_some_and(|q| q.seq == seq) {
                if let Some(query) = self.map.remove(&oldest) {
                    self.evicted = self.evicted.saturating_add(1);
                    gave_up(oldest, query);
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.map.insert(
            key,
            PendingQuery {
                ts,
                name,
                qtype,
                seq,
            },
        );
        self.order.push_back((ts, seq, key));
    }

    /// Takes the query a response answers, if it is still waiting.
    pub fn take(&mut self, key: &PendingKey) -> Option<PendingQuery> {
        self.map.remove(key)
    }

    /// Gives up on queries older than the timeout at `now`, returning them through `gave_up`.
    #[inline]
    pub fn expire(&mut self, now: Timestamp, gave_up: &mut impl FnMut(PendingKey, PendingQuery)) {
        // The common case on every packet: nothing due and nothing to compact.
        if self.any_due(now) || self.queue_outgrown() {
            self.expire_due(now, gave_up);
        }
    }

    fn expire_due(&mut self, now: Timestamp, gave_up: &mut impl FnMut(PendingKey, PendingQuery)) {
        while let Some(&(ts, seq, key)) = self.order.front() {
            if ts.saturating_add_nanos(self.timeout_nanos) > now {
                break;
            }
            self.order.pop_front();
            if self.map.get(&key).is_some_and(|q| q.seq == seq) {
                if let Some(query) = self.map.remove(&key) {
                    gave_up(key, query);
                }
            }
        }
        if self.queue_outgrown() {
            let map = &self.map;
            self.order
                .retain(|(_, seq, key)| map.get(key).is_some_and(|q| q.seq == *seq));
        }
    }

    /// Whether the queue holds over twice the map's capacity: answered queries leave stale
    /// entries in it, which are then swept so it cannot outgrow the map.
    #[inline]
    fn queue_outgrown(&self) -> bool {
        self.order.len() > self.capacity.saturating_mul(2)
    }

    /// Whether the oldest queued query (or a stale entry of an answered one) is due at `now`.
    #[inline]
    fn any_due(&self, now: Timestamp) -> bool {
        self.order
            .front()
            .is_some_and(|(ts, _, _)| ts.saturating_add_nanos(self.timeout_nanos) <= now)
    }

    /// Gives up on every waiting query (end of a replay).
    pub fn drain(&mut self, gave_up: &mut impl FnMut(PendingKey, PendingQuery)) {
        for (_, seq, key) in std::mem::take(&mut self.order) {
            if self.map.get(&key).is_some_and(|q| q.seq == seq) {
                if let Some(query) = self.map.remove(&key) {
                    gave_up(key, query);
                }
            }
        }
        self.map.clear();
    }

    /// Queries given up on to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Queries waiting now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no query is waiting.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
