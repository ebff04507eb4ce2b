//! The names the host resolved, by address: fed by A/AAAA answers, read to name the remote
//! end of later flows. Bounded; the oldest entry goes first, and that is counted.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::capture::Timestamp;

/// Shortest time a name is kept, whatever the record's TTL: flows often start after a short
/// TTL has run out (TTL 0 answers are common), and the name is still the right one.
pub const MIN_KEEP_SECS: u64 = 300;

#[derive(Debug, Clone)]
struct NameEntry {
    name: Box<str>,
    expires: Timestamp,
    seq: u64,
}

/// Bounded address → name map.
#[derive(Debug)]
pub struct IpNames {
    map: HashMap<IpAddr, NameEntry, foldhash::fast::RandomState>,
    order: VecDeque<(IpAddr, u64)>,
    capacity: usize,
    next_seq: u64,
    evicted: u64,
}

impl IpNames {
    /// A map of at most `capacity` addresses (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            evicted: 0,
        }
    }

    /// Remembers that `addr` is `name` from `now` for `ttl` seconds (at least
    /// [`MIN_KEEP_SECS`]). A newer answer for the same address replaces the older.
    pub fn insert(&mut self, now: Timestamp, addr: IpAddr, name: &str, ttl: u32) {
        let keep = u64::from(ttl)
            .max(MIN_KEEP_SECS)
            .saturating_mul(1_000_000_000);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let expires = now.saturating_add_nanos(keep);
        let added = match self.map.entry(addr) {
            Entry::Occupied(held) => {
                let held = held.into_mut();
                // The same answer again is the common case (a host resolving a name it uses
                // often): it keeps its copy of the name.
                if *held.name != *name {
                    held.name = name.into();
                }
                held.expires = expires;
                held.seq = seq;
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(NameEntry {
                    name: name.into(),
                    expires,
                    seq,
                });
                true
            }
        };
        if added {
            while self.map.len() > self.capacity {
                let Some((oldest, oldest_seq)) = self.order.pop_front() else {
                    break;
                };
                if self.map.get(&oldest).is_some_and(|e| e.seq == oldest_seq) {
                    self.map.remove(&oldest);
                    self.evicted = self.evicted.saturating_add(1);
                }
            }
        }
        self.order.push_back((addr, seq));
        // Replaced entries leave stale queue entries; keep the queue from outgrowing the map.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order
                .retain(|(addr, seq)| map.get(addr).is_some_and(|e| e.seq == *seq));
        }
    }

    /// The name `addr` was resolved from, if known and not expired at `now`.
    pub fn get(&self, addr: IpAddr, now: Timestamp) -> Option<&str> {
        self.map
            .get(&addr)
            .filter(|e| e.expires > now)
            .map(|e| &*e.name)
    }

    /// Addresses forgotten to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Addresses held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no address is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
