//! An open-addressing hash table from normalised domain names to domain rows.
//!
//! A slot holds the hash's high 32 bits (a fingerprint) and the offset plus one (zero: empty) of
//! the row's record in the name arena, which holds the metadata index beside the name. A probe
//! compares the fingerprint first and then the name in the record, so a found name costs about
//! two memory accesses and a colliding fingerprint can never produce a false match. Slots are
//! 8 bytes so the table stays small. A one-bit-per-position filter, small enough to stay in
//! cache, answers most absent names without touching the table at all. Both are rebuilt from
//! the rows on load, never shipped.

use super::content::{DomainRows, RECORD_HEADER, record_at};
use crate::domain::name_hash;

/// Slots per name, at least (load factor at most 0.8, and lower after rounding up to a power of
/// two); fingerprints keep the longer probe runs cheap.
const MIN_SLOTS_PER_NAME_X4: usize = 5;

/// Filter bits per name, at least: about one false "maybe" in eight for an absent name.
const MIN_FILTER_BITS_PER_NAME: usize = 8;

/// `[fingerprint, record offset + 1]`.
type Slot = [u32; 2];

/// A found name: its metadata index and where its bytes sit in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) meta: u32,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DomainTable {
    slots: Vec<Slot>,
    mask: usize,
    /// One bit per filter position; a clear bit means no stored name has this hash.
    filter: Vec<u64>,
    filter_mask: usize,
}

/// The filter position of a hash, from bits the slot index and the fingerprint use least.
#[inline]
fn filter_bit(hash: u64, mask: usize) -> usize {
    ((hash >> 20) as usize ^ (hash >> 44) as usize) & mask
}

impl DomainTable {
    /// Indexes `rows`. Several rows may share a name (one per list or category); the table keeps,
    /// per name, the first row whose metadata `trusted` accepts if any, else the first row.
    pub(crate) fn build(rows: &DomainRows, trusted: &dyn Fn(u32) -> bool) -> Self {
        let n = rows.len();
        let cap = (n.max(1) * MIN_SLOTS_PER_NAME_X4 / 4 + 1).next_power_of_two();
        let bits = (n.max(1) * MIN_FILTER_BITS_PER_NAME)
            .next_power_of_two()
            .max(64);
        let mut t = DomainTable {
            slots: vec![[0; 2]; cap],
            mask: cap - 1,
            filter: vec![0; bits / 64],
            filter_mask: bits - 1,
        };
        let mut i = 0;
        while i < n {
            let name = rows.name_bytes(i);
            let mut j = i + 1;
            while j < n && rows.name_bytes(j) == name {
                j += 1;
            }
            let chosen = (i..j).find(|&k| trusted(rows.meta(k))).unwrap_or(i);
            if let Some((offset, _, _)) = rows.row(chosen) {
                t.insert(name_hash(rows.name(chosen)), offset);
            }
            i = j;
        }
        t
    }

    fn insert(&mut self, hash: u64, offset: u32) {
        let bit = filter_bit(hash, self.filter_mask);
        if let Some(word) = self.filter.get_mut(bit / 64) {
            *word |= 1 << (bit % 64);
        }
        let mut s = (hash as usize) & self.mask;
        // The table always has free slots (load below 1), so this ends.
        loop {
            let Some(slot) = self.slots.get_mut(s) else {
                return;
            };
            if slot[1] == 0 {
                // Offsets are below `u32::MAX` (the arena is capped), so `+ 1` cannot wrap.
                *slot = [(hash >> 32) as u32, offset.saturating_add(1)];
                return;
            }
            s = (s + 1) & self.mask;
        }
    }

    /// The stored name equal to `name` (ASCII case-insensitively), given its `hash` and the
    /// rows' record arena.
    #[inline]
    pub(crate) fn find(&self, hash: u64, records: &[u8], name: &[u8]) -> Option<Found> {
        let bit = filter_bit(hash, self.filter_mask);
        if self.filter.get(bit / 64)? & (1 << (bit % 64)) == 0 {
            return None;
        }
        let fp = (hash >> 32) as u32;
        let mut s = (hash as usize) & self.mask;
        loop {
            let [slot_fp, offset] = *self.slots.get(s)?;
            let offset = offset.checked_sub(1)? as usize;
            if slot_fp == fp
                && let Some((meta, stored)) = record_at(records, offset)
                && stored.eq_ignore_ascii_case(name)
            {
                let start = offset + RECORD_HEADER;
                return Some(Found {
                    meta,
                    start,
                    end: start + stored.len(),
                });
            }
            s = (s + 1) & self.mask;
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.filter.capacity() * 8
    }
}
