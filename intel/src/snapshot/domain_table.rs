//! An open-addressing hash table from normalised domain names to domain rows.
//!
//! Slots hold `fingerprint << 32 | (row + 1)`, zero meaning empty: a probe compares the 32-bit
//! fingerprint in the slot first and touches the stored name only when it agrees, so a miss
//! usually costs one cache line. A one-bit-per-slot-pair filter (a sixteenth of the table's size,
//! small enough to stay in cache) answers most misses without touching the table at all. Both are
//! rebuilt from the rows on load, never shipped.

use super::content::DomainRows;
use crate::domain::name_hash;

/// Slots per name, at least; keeps linear-probe chains short (load factor at most 1/2).
const MIN_SLOTS_PER_NAME: usize = 2;

/// Filter bits per name, at least: about one false "maybe" in eight for an absent name.
const MIN_FILTER_BITS_PER_NAME: usize = 8;

#[derive(Debug, Clone, Default)]
pub(crate) struct DomainTable {
    slots: Vec<u64>,
    mask: usize,
    /// One bit per filter position; a clear bit means no stored name has this hash.
    filter: Vec<u64>,
    filter_mask: usize,
}

/// The filter position of a hash: bits the slot index and the fingerprint use least.
#[inline]
fn filter_bit(hash: u64, mask: usize) -> usize {
    ((hash >> 20) as usize ^ (hash >> 44) as usize) & mask
}

impl DomainTable {
    /// Indexes `rows`. Several rows may share a name (one per list or category); the table keeps,
    /// per name, the first trusted row if any, else the first row.
    pub(crate) fn build(rows: &DomainRows, row_trusted: &dyn Fn(u32) -> bool) -> Self {
        let n = rows.len();
        let cap = (n.max(1) * MIN_SLOTS_PER_NAME).next_power_of_two();
        let bits = (n.max(1) * MIN_FILTER_BITS_PER_NAME)
            .next_power_of_two()
            .max(64);
        let mut t = DomainTable {
            slots: vec![0; cap],
            mask: cap - 1,
            filter: vec![0; bits / 64],
            filter_mask: bits - 1,
        };
        let mut i = 0;
        while i < n {
            let name = rows.name(i);
            let mut j = i + 1;
            while j < n && rows.name(j) == name {
                j += 1;
            }
            let chosen = (i..j).find(|&k| row_trusted(k as u32)).unwrap_or(i);
            t.insert(name_hash(name), chosen as u32);
            i = j;
        }
        t
    }

    fn insert(&mut self, hash: u64, row: u32) {
        let bit = filter_bit(hash, self.filter_mask);
        if let Some(word) = self.filter.get_mut(bit / 64) {
            *word |= 1 << (bit % 64);
        }
        let fp = hash >> 32;
        let mut s = (hash as usize) & self.mask;
        loop {
            let Some(slot) = self.slots.get_mut(s) else {
                return;
            };
            if *slot == 0 {
                *slot = (fp << 32) | (u64::from(row) + 1);
                return;
            }
            s = (s + 1) & self.mask;
        }
    }

    /// The row whose name hashes to `hash` and satisfies `is_name`, if any.
    #[inline]
    pub(crate) fn find(&self, hash: u64, is_name: impl Fn(u32) -> bool) -> Option<u32> {
        let bit = filter_bit(hash, self.filter_mask);
        if self.filter.get(bit / 64)? & (1 << (bit % 64)) == 0 {
            return None;
        }
        let fp = hash >> 32;
        let mut s = (hash as usize) & self.mask;
        loop {
            let slot = *self.slots.get(s)?;
            if slot == 0 {
                return None;
            }
            if slot >> 32 == fp {
                let row = u32::try_from(slot & 0xffff_ffff).ok()?.checked_sub(1)?;
                if is_name(row) {
                    return Some(row);
                }
            }
            s = (s + 1) & self.mask;
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.slots.capacity() + self.filter.capacity()) * 8
    }
}
