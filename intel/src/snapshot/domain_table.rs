//! An open-addressing hash table from normalised domain names to domain rows.
//!
//! A slot holds the hash's high 32 bits (a fingerprint), the row plus one (zero: empty) and where
//! the row's name sits in the name arena: a probe compares the fingerprint first and then the
//! name straight from the arena, so a successful probe costs about two memory accesses and a
//! colliding fingerprint can never produce a false match. A one-bit-per-position filter, small
//! enough to stay in cache, answers most absent names without touching the table at all. Both
//! are rebuilt from the rows on load, never shipped.

use super::content::DomainRows;
use crate::domain::name_hash;

/// Slots per name, at least (load factor at most 0.8, and lower after rounding up to a power of
/// two); fingerprints keep the longer probe runs cheap.
const MIN_SLOTS_PER_NAME_X4: usize = 5;

/// Filter bits per name, at least: about one false "maybe" in eight for an absent name.
const MIN_FILTER_BITS_PER_NAME: usize = 8;

/// `[fingerprint, row + 1, name start, name end]`.
type Slot = [u32; 4];

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
    /// per name, the first row `row_trusted` accepts if any, else the first row.
    pub(crate) fn build(rows: &DomainRows, row_trusted: &dyn Fn(u32) -> bool) -> Self {
        let n = rows.len();
        let cap = (n.max(1) * MIN_SLOTS_PER_NAME_X4 / 4 + 1).next_power_of_two();
        let bits = (n.max(1) * MIN_FILTER_BITS_PER_NAME)
            .next_power_of_two()
            .max(64);
        let mut t = DomainTable {
            slots: vec![[0; 4]; cap],
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
            let chosen = (i..j).find(|&k| row_trusted(k as u32)).unwrap_or(i);
            let (start, end) = rows.span(chosen);
            t.insert(name_hash(rows.name(chosen)), chosen as u32, start, end);
            i = j;
        }
        t
    }

    fn insert(&mut self, hash: u64, row: u32, start: u32, end: u32) {
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
                *slot = [(hash >> 32) as u32, row + 1, start, end];
                return;
            }
            s = (s + 1) & self.mask;
        }
    }

    /// The row whose name equals `name` (ASCII case-insensitively), given its `hash` and the
    /// rows' name arena.
    #[inline]
    pub(crate) fn find(&self, hash: u64, arena: &[u8], name: &[u8]) -> Option<u32> {
        let bit = filter_bit(hash, self.filter_mask);
        if self.filter.get(bit / 64)? & (1 << (bit % 64)) == 0 {
            return None;
        }
        let fp = (hash >> 32) as u32;
        let mut s = (hash as usize) & self.mask;
        loop {
            let [slot_fp, row, start, end] = *self.slots.get(s)?;
            let row = row.checked_sub(1)?;
            if slot_fp == fp
                && arena
                    .get(start as usize..end as usize)
                    .is_some_and(|stored| stored.eq_ignore_ascii_case(name))
            {
                return Some(row);
            }
            s = (s + 1) & self.mask;
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.filter.capacity() * 8
    }
}
