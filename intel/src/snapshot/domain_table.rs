//! A bucketed hash index from normalised domain names to domain rows, laid out so a found name
//! costs two dependent random reads (bucket word, then the name's record) and an absent one
//! usually a single read.
//!
//! Building the index reorders the rows' record arena (`[metadata index][length][name]`) so the
//! records of each hash bucket sit next to each other, bucket after bucket. One 64-bit word per
//! bucket holds where its records start and a 32-bit signature (two bits per name in the bucket)
//! that answers most absent names without touching the arena, so the word is filter and index
//! in one memory access. A probe that passes the signature scans that bucket's records (about
//! one and a half, mostly in one cache line), comparing the stored name, which is therefore
//! always verified: a hash collision can never produce a false match. (The previous layout, a
//! filter, then a slot table of fingerprints and record offsets, then the record, cost a hit
//! three dependent random reads.) Rows are still addressed canonically by their offsets, so
//! reordering the arena changes neither the encoding nor the content hash. The index is rebuilt
//! from the rows on load, never shipped.

use super::content::{DomainRows, RECORD_HEADER, record_at};
use crate::domain::name_hash;

/// Indexed names per bucket, at most, before rounding the bucket count up to a power of two (so
/// between 1 and 2): few enough that a bucket's records mostly share a cache line and its
/// signature stays sparse, many enough that the bucket words (8 bytes a bucket) stay small.
const MAX_NAMES_PER_BUCKET: usize = 2;

/// A found name: its metadata index and where its bytes sit in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) meta: u32,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DomainTable {
    /// One word per bucket, `signature << 32 | first record offset`, then one more holding the
    /// end of the last bucket's records (the records of rows not indexed, duplicates of an
    /// indexed name, follow it). The signature has two bits set per name in the bucket; a hash
    /// whose two bits are not both set belongs to no name there.
    buckets: Vec<u64>,
    /// Buckets minus one (the bucket count is a power of two).
    bucket_mask: usize,
}

/// The bucket of a hash (its low bits).
#[inline]
fn bucket_of(hash: u64, mask: usize) -> usize {
    hash as usize & mask
}

/// The two signature bits a hash needs set in its bucket word, from bits the bucket index never
/// uses (signature bits sit above the 32-bit record offset).
#[inline]
fn signature(hash: u64) -> u64 {
    ((1u64 << ((hash >> 32) & 31)) | (1u64 << ((hash >> 37) & 31))) << 32
}

impl DomainTable {
    /// Indexes `rows`, reordering their record arena into bucket order. Several rows may share a
    /// name (one per list or category); the index keeps, per name, the first row whose metadata
    /// `trusted` accepts if any, else the first row.
    pub(crate) fn build(rows: &mut DomainRows, trusted: &dyn Fn(u32) -> bool) -> Self {
        let n = rows.len();
        // Chosen row per distinct name, with its hash.
        let mut chosen: Vec<(u64, u32)> = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            let name = rows.name_bytes(i);
            let mut j = i + 1;
            while j < n && rows.name_bytes(j) == name {
                j += 1;
            }
            let pick = (i..j).find(|&k| trusted(rows.meta(k))).unwrap_or(i);
            // Row indexes fit in u32: content building and decoding refuse more rows.
            chosen.push((name_hash(rows.name(pick)), pick as u32));
            i = j;
        }
        let buckets = chosen
            .len()
            .div_ceil(MAX_NAMES_PER_BUCKET)
            .max(1)
            .next_power_of_two();
        let mask = buckets - 1;
        // Row order within a bucket, so equal content always lays out the same way.
        chosen.sort_unstable_by_key(|&(h, row)| (bucket_of(h, mask), row));

        let mut words = Vec::with_capacity(buckets + 1);
        let mut indexed = vec![false; n];
        let mut arena: Vec<u8> = Vec::with_capacity(rows.records.len());
        let mut offsets = rows.offsets.clone();
        let mut next = chosen.iter().peekable();
        for b in 0..buckets {
            let mut word = u64::from(arena_offset(&arena));
            while let Some(&&(h, row)) = next.peek() {
                if bucket_of(h, mask) != b {
                    break;
                }
                next.next();
                word |= signature(h);
                copy_record(rows, row as usize, &mut arena, &mut offsets);
                if let Some(flag) = indexed.get_mut(row as usize) {
                    *flag = true;
                }
            }
            words.push(word);
        }
        words.push(u64::from(arena_offset(&arena)));
        for (row, done) in indexed.iter().enumerate() {
            if !done {
                copy_record(rows, row, &mut arena, &mut offsets);
            }
        }
        rows.records = arena;
        rows.offsets = offsets;
        DomainTable {
            buckets: words,
            bucket_mask: mask,
        }
    }

    /// Bit `i` set when `hashes[i]` may be a stored name's hash (clear: it is not), for up to
    /// 64 hashes. Branch-free, so the bucket-word reads of all the hashes are in flight together;
    /// for a name that is found, this read is also the index read, so a hit costs two dependent
    /// random reads (bucket word, then record) and a miss one.
    #[inline]
    pub(crate) fn maybe_mask(&self, hashes: &[u64]) -> u64 {
        let mut mask = 0u64;
        for (i, &h) in hashes.iter().enumerate().take(64) {
            let sig = signature(h);
            let w = self
                .buckets
                .get(bucket_of(h, self.bucket_mask))
                .copied()
                .unwrap_or(0);
            mask |= u64::from(w & sig == sig) << i;
        }
        mask
    }

    /// The stored name equal to `name` (ASCII case-insensitively), given its `hash` and the
    /// rows' record arena (as [`DomainTable::build`] laid it out); for a hash
    /// [`DomainTable::maybe_mask`] passed.
    #[inline]
    pub(crate) fn find(&self, hash: u64, records: &[u8], name: &[u8]) -> Option<Found> {
        let b = bucket_of(hash, self.bucket_mask);
        // The low 32 bits of a bucket word are its first record's offset.
        let mut at = (*self.buckets.get(b)? as u32) as usize;
        let end = (*self.buckets.get(b + 1)? as u32) as usize;
        while at < end {
            let (meta, stored) = record_at(records, at)?;
            let start = at + RECORD_HEADER;
            if stored.len() == name.len() && stored.eq_ignore_ascii_case(name) {
                return Some(Found {
                    meta,
                    start,
                    end: start + stored.len(),
                });
            }
            at = start + stored.len();
        }
        None
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * 8
    }
}

/// The arena's length as an offset (the arena never passes `u32::MAX` bytes: content building
/// and decoding refuse larger ones, and reordering keeps its size).
fn arena_offset(arena: &[u8]) -> u32 {
    u32::try_from(arena.len()).unwrap_or(u32::MAX)
}

/// Appends row `row`'s record to `arena` and points its offset there.
fn copy_record(rows: &DomainRows, row: usize, arena: &mut Vec<u8>, offsets: &mut [u32]) {
    let Some((offset, _, name)) = rows.row(row) else {
        return;
    };
    let start = offset as usize;
    let Some(record) = rows.records.get(start..start + RECORD_HEADER + name.len()) else {
        return;
    };
    if let Some(o) = offsets.get_mut(row) {
        *o = arena_offset(arena);
    }
    arena.extend_from_slice(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(names: &[(&str, u32)]) -> DomainRows {
        let mut r = DomainRows::default();
        for (n, m) in names {
            assert!(r.push(n.as_bytes(), *m));
        }
        r
    }

    #[test]
    fn reordering_keeps_every_row_and_finds_each_name_once_indexed() {
        let names: Vec<String> = (0..500).map(|i| format!("n{i:03}.example")).collect();
        let mut list: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 0)).collect();
        // A name on two lists: the row the trust test accepts is the one indexed.
        list.push(("n007.example", 3));
        list.sort_unstable();
        let mut r = rows(&list);
        let before: Vec<(u32, Vec<u8>)> = (0..r.len())
            .map(|i| (r.meta(i), r.name_bytes(i).to_vec()))
            .collect();
        let t = DomainTable::build(&mut r, &|m| m == 3);
        let after: Vec<(u32, Vec<u8>)> = (0..r.len())
            .map(|i| (r.meta(i), r.name_bytes(i).to_vec()))
            .collect();
        assert_eq!(before, after, "rows read back unchanged in canonical order");
        for n in &names {
            let h = name_hash(n);
            let found = t
                .find(h, &r.records, n.to_ascii_uppercase().as_bytes())
                .expect("every name is found");
            assert_eq!(r.records.get(found.start..found.end), Some(n.as_bytes()));
            assert_eq!(found.meta, if n == "n007.example" { 3 } else { 0 });
        }
        assert_eq!(
            t.find(name_hash("absent.example"), &r.records, b"absent.example"),
            None
        );
    }
}
