//! An open-addressing hash table from normalised domain names to domain rows.
//!
//! A slot holds the hash's high 32 bits (a fingerprint) and the offset plus one (zero: empty) of
//! the row's record in the name arena, which holds the metadata index beside the name. A probe
//! compares the fingerprint first and then the name in the record, so a found name costs about
//! two memory accesses and a colliding fingerprint can never produce a false match. Slots are
//! 8 bytes so the table stays small. A blocked filter (two bits per name, both in one 64-bit
//! word, so one memory access), small enough to stay in cache, answers most absent names
//! without touching the table at all: the lookup checks every suffix of a name against it
//! without branching ([`DomainTable::maybe_mask`]), so the filter reads of one name overlap
//! instead of waiting on each other. Both are rebuilt from the rows on load, never shipped.

use super::content::{DomainRows, RECORD_HEADER, record_at};
use crate::domain::name_hash;

/// Slots per name, at least (load factor at most 0.8, and lower after rounding up to a power of
/// two); fingerprints keep the longer probe runs cheap.
const MIN_SLOTS_PER_NAME_X4: usize = 5;

/// Filter bits per name, at least: with two bits set per name, about one false "maybe" in fifty
/// for an absent name.
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
    /// Filter words; a name sets two bits of one word, and a hash whose two bits are not both
    /// set belongs to no stored name.
    filter: Vec<u64>,
    /// Filter words minus one (the word count is a power of two).
    filter_mask: usize,
}

/// The filter word of a hash and the two bits it needs set there, from bits the slot index
/// (low bits) and the fingerprint (high 32 bits) use least or only in part.
#[inline]
fn filter_probe(hash: u64, word_mask: usize) -> (usize, u64) {
    let word = ((hash >> 20) as usize ^ (hash >> 40) as usize) & word_mask;
    let bits = (1u64 << ((hash >> 52) & 63)) | (1u64 << ((hash >> 58) & 63));
    (word, bits)
}

impl DomainTable {
    /// Indexes `rows`. Several rows may share a name (one per list or category); the table keeps,
    /// per name, the first row whose metadata `trusted` accepts if any, else the first row.
    pub(crate) fn build(rows: &DomainRows, trusted: &dyn Fn(u32) -> bool) -> Self {
        let n = rows.len();
        let cap = (n.max(1) * MIN_SLOTS_PER_NAME_X4 / 4 + 1).next_power_of_two();
        let words = (n.max(1) * MIN_FILTER_BITS_PER_NAME)
            .next_power_of_two()
            .max(64)
            / 64;
        let mut t = DomainTable {
            slots: vec![[0; 2]; cap],
            mask: cap - 1,
            filter: vec![0; words],
            filter_mask: words - 1,
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
        let (word, bits) = filter_probe(hash, self.filter_mask);
        if let Some(w) = self.filter.get_mut(word) {
            *w |= bits;
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

    /// Bit `i` set when `hashes[i]` may be a stored name's hash (clear: it is not), for up to
    /// 64 hashes. Branch-free, so the filter reads of all the hashes are in flight together.
    /// (Reading each hash's home slot here too, to overlap it with the filter read, measured
    /// slower: absent names, the common case, then cost a table read as well.)
    #[inline]
    pub(crate) fn maybe_mask(&self, hashes: &[u64]) -> u64 {
        let mut mask = 0u64;
        for (i, &h) in hashes.iter().enumerate().take(64) {
            let (word, bits) = filter_probe(h, self.filter_mask);
            let w = self.filter.get(word).copied().unwrap_or(0);
            mask |= u64::from(w & bits == bits) << i;
        }
        mask
    }

    /// The stored name equal to `name` (ASCII case-insensitively), given its `hash` and the
    /// rows' record arena; for a hash [`DomainTable::maybe_mask`] passed (probes the slots only).
    #[inline]
    pub(crate) fn find_in_slots(&self, hash: u64, records: &[u8], name: &[u8]) -> Option<Found> {
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
