//! The domain index: the rows' record arena laid out in cache lines by hash (two-choice), so a
//! found name costs one round of random memory access to the arena, behind a small filter that
//! answers most absent names without touching the arena at all.
//!
//! Each indexed name may live in either of two 64-byte lines chosen by its hash; building the
//! index puts its record (`[length][metadata index][name]`, whole) in whichever of the two has
//! more room. The two candidate lines do not depend on each other, so a probe's two line reads
//! are in flight together: a found name costs the filter read, which mostly stays cached, and
//! one memory round trip. The stored name is always compared, so a hash collision can never
//! produce a false match. A line's first byte holds flags; its records follow, and a zero length
//! (padding) ends them. A name whose record fits neither line (both full, or the name too long
//! for a line) goes to a small stash sorted by hash, and both its lines are flagged so only
//! lookups that could need the stash search it. Rows keep their canonical offsets (lines first,
//! then the records the lines do not hold), so the layout changes neither the encoding nor the
//! content hash.
//!
//! Earlier layouts cost a hit three dependent random reads (filter, slot, record), then two
//! (bucket word, record).
//!
//! The blocked filter (two bits per name, both in one 64-bit word, so one memory access) is
//! checked for every suffix of a name without branching ([`DomainTable::maybe_mask`]), so the
//! filter reads of one name overlap instead of waiting on each other. Layout, stash and filter
//! are rebuilt from the rows on load, never shipped.

use super::content::{DomainRows, RECORD_HEADER, header_at, put_record, record_at};
use crate::domain::name_hash;

/// Bytes per line: one cache line.
const LINE: usize = 64;

/// Bytes at the start of a line before its records: the flags.
const LINE_HEADER: usize = 1;

/// Line flag: some name whose candidate lines include this one is in the stash.
const STASHED: u8 = 1;

/// Line bytes per indexed record byte, as numerator and denominator: lines about 80% full, which
/// two choices keep almost free of overflow.
const LINE_SLACK: (usize, usize) = (3, 2);

/// Filter bits per name, at least: with two bits set per name, about one false "maybe" in fifty
/// for an absent name.
const MIN_FILTER_BITS_PER_NAME: usize = 8;

/// A found name: its metadata index and where its bytes sit in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) meta: u32,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DomainTable {
    /// How many lines the arena starts with.
    lines: usize,
    /// Names in no line: (hash, record offset), sorted.
    stash: Vec<(u64, u32)>,
    /// Filter words; a name sets two bits of one word, and a hash whose two bits are not both
    /// set belongs to no stored name.
    filter: Vec<u64>,
    /// Filter words minus one (the word count is a power of two).
    filter_mask: usize,
}

/// The filter word of a hash and the two bits it needs set there, from the high half of the
/// hash (the lines come from the low half).
#[inline]
fn filter_probe(hash: u64, word_mask: usize) -> (usize, u64) {
    let word = (hash >> 32) as usize & word_mask;
    let bits = (1u64 << ((hash >> 52) & 63)) | (1u64 << ((hash >> 58) & 63));
    (word, bits)
}

/// The two candidate lines of a hash among `lines` (multiply-shift of two 16-bit-rotated views
/// of the low 32 bits, so any line count works and the two are independent enough).
#[inline]
fn lines_of(hash: u64, lines: usize) -> (usize, usize) {
    let low = hash as u32;
    let a = (u64::from(low) * lines as u64) >> 32;
    let b = (u64::from(low.rotate_left(16) ^ (hash >> 44) as u32) * lines as u64) >> 32;
    (a as usize, b as usize)
}

/// The arena length as an offset; the arena is capped well below `u32::MAX` (content building
/// and decoding refuse a quarter of it, and the layout adds about a quarter).
fn offset_u32(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

impl DomainTable {
    /// Indexes `rows`, laying their record arena out in lines. Several rows may share a name (one
    /// per list or category); the index keeps, per name, the first row whose metadata `trusted`
    /// accepts if any, else the first row.
    pub(crate) fn build(rows: &mut DomainRows, trusted: &dyn Fn(u32) -> bool) -> Self {
        let n = rows.len();
        // The chosen row of each distinct name, with its hash.
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
        let record_bytes: usize = chosen
            .iter()
            .map(|&(_, row)| RECORD_HEADER + rows.name_bytes(row as usize).len())
            .sum();
        let lines = (record_bytes * LINE_SLACK.0 / LINE_SLACK.1)
            .div_ceil(LINE - LINE_HEADER)
            .max(1);
        let words = (chosen.len().max(1) * MIN_FILTER_BITS_PER_NAME)
            .next_power_of_two()
            .max(64)
            / 64;
        let mut t = DomainTable {
            lines,
            stash: Vec::new(),
            filter: vec![0u64; words],
            filter_mask: words - 1,
        };

        let mut items: Vec<Item> = chosen
            .iter()
            .map(|&(hash, row)| {
                let (a, b) = lines_of(hash, lines);
                Item {
                    hash,
                    row,
                    size: RECORD_HEADER + rows.name_bytes(row as usize).len(),
                    lines: [a, b],
                }
            })
            .collect();
        drop(chosen);
        // Longest records first (then row order, so equal content lays out alike): small ones
        // then fill the gaps long ones leave, which keeps lines from overflowing.
        items.sort_unstable_by_key(|it| (std::cmp::Reverse(it.size), it.row));
        for item in &items {
            let (word, bits) = filter_probe(item.hash, t.filter_mask);
            if let Some(w) = t.filter.get_mut(word) {
                *w |= bits;
            }
        }
        let (members, stashed) = assign(&items, lines);

        let mut arena = Vec::with_capacity(lines * LINE + rows.records.len() / 8);
        arena.resize(lines * LINE, 0);
        let mut offsets = rows.offsets.clone();
        let mut indexed = vec![false; n];
        let mut record = Vec::with_capacity(LINE);
        for (line, in_line) in members.iter().enumerate() {
            let mut at = line * LINE + LINE_HEADER;
            for &k in in_line.items() {
                let Some((row, (_, meta, name))) = items
                    .get(k as usize)
                    .and_then(|it| Some((it.row as usize, rows.row(it.row as usize)?)))
                else {
                    continue;
                };
                record.clear();
                put_record(&mut record, name, meta);
                if let Some(dst) = arena.get_mut(at..at + record.len()) {
                    dst.copy_from_slice(&record);
                }
                if let Some(o) = offsets.get_mut(row) {
                    *o = offset_u32(at);
                }
                if let Some(flag) = indexed.get_mut(row) {
                    *flag = true;
                }
                at += record.len();
            }
        }
        for &k in &stashed {
            let Some(item) = items.get(k as usize) else {
                continue;
            };
            for l in item.lines {
                if let Some(flags) = arena.get_mut(l * LINE) {
                    *flags |= STASHED;
                }
            }
            let at = append_record(rows, item.row as usize, &mut arena, &mut offsets);
            t.stash.push((item.hash, at));
            if let Some(flag) = indexed.get_mut(item.row as usize) {
                *flag = true;
            }
        }
        t.stash.sort_unstable();
        for (row, done) in indexed.iter().enumerate() {
            if !done {
                append_record(rows, row, &mut arena, &mut offsets);
            }
        }
        arena.shrink_to_fit();
        rows.records = arena;
        rows.offsets = offsets;
        t
    }

    /// Bit `i` set when `hashes[i]` may be a stored name's hash (clear: it is not), for up to
    /// 64 hashes. Branch-free, so the filter reads of all the hashes are in flight together.
    /// (Reading each hash's lines here too, to overlap them with the filter read, would make
    /// absent names, the common case, cost arena reads as well.)
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
    /// rows' record arena (as [`DomainTable::build`] laid it out); for a hash
    /// [`DomainTable::maybe_mask`] passed.
    #[inline]
    pub(crate) fn find(&self, hash: u64, records: &[u8], name: &[u8]) -> Option<Found> {
        let (a, b) = lines_of(hash, self.lines);
        // Both lines are read before either is scanned, so their misses overlap.
        let flags = records.get(a * LINE).copied().unwrap_or(0)
            | records.get(b * LINE).copied().unwrap_or(0);
        let in_a = scan_line(records, a, name);
        let in_b = scan_line(records, b, name);
        in_a.or(in_b).or_else(|| {
            if flags & STASHED == 0 {
                return None;
            }
            let first = self.stash.partition_point(|&(h, _)| h < hash);
            self.stash
                .get(first..)?
                .iter()
                .take_while(|&&(h, _)| h == hash)
                .find_map(|&(_, at)| found_at(records, at as usize, name))
        })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.filter.capacity() * 8 + self.stash.capacity() * std::mem::size_of::<(u64, u32)>()
    }
}

/// The record in line `line` whose name equals `name`, if any.
#[inline]
fn scan_line(records: &[u8], line: usize, name: &[u8]) -> Option<Found> {
    let end = line * LINE + LINE;
    let mut at = line * LINE + LINE_HEADER;
    while at + RECORD_HEADER <= end {
        let (len, _) = header_at(records, at)?;
        if len == 0 {
            return None;
        }
        if len == name.len()
            && let Some(found) = found_at(records, at, name)
        {
            return Some(found);
        }
        at += RECORD_HEADER + len;
    }
    None
}

/// The record at `at` if its name equals `name`.
#[inline]
fn found_at(records: &[u8], at: usize, name: &[u8]) -> Option<Found> {
    let (meta, stored) = record_at(records, at)?;
    if !stored.eq_ignore_ascii_case(name) {
        return None;
    }
    let start = at + RECORD_HEADER;
    Some(Found {
        meta,
        start,
        end: start + stored.len(),
    })
}

/// A name to place: its hash, row, record size and candidate lines.
struct Item {
    hash: u64,
    row: u32,
    size: usize,
    lines: [usize; 2],
}

/// Assigns items (in the given order) to lines: each to the emptier of its two lines; when
/// neither has room, one record already in either line moves to its own other line if that makes
/// room (one cuckoo step). Returns each line's items and the items no line could take.
fn assign(items: &[Item], lines: usize) -> (Vec<Members>, Vec<u32>) {
    let cap = LINE - LINE_HEADER;
    let mut used = vec![0usize; lines];
    let mut members: Vec<Members> = vec![Members::default(); lines];
    let mut stashed = Vec::new();
    let fits =
        |used: &[usize], line: usize, size: usize| used.get(line).is_some_and(|u| u + size <= cap);
    for (k, item) in items.iter().enumerate() {
        // Item indexes fit in u32: there are no more than rows.
        let k = k as u32;
        let [a, b] = item.lines;
        let emptier = if used.get(a) <= used.get(b) { a } else { b };
        if fits(&used, emptier, item.size) {
            place(&mut used, &mut members, emptier, k, item.size);
            continue;
        }
        let mut moved = None;
        'lines: for line in [a, b] {
            for (slot, &m) in members
                .get(line)
                .map_or(&[][..], Members::items)
                .iter()
                .enumerate()
            {
                let Some(other) = items.get(m as usize) else {
                    continue;
                };
                let alt = if other.lines[0] == line {
                    other.lines[1]
                } else {
                    other.lines[0]
                };
                let room = used.get(line).map_or(0, |u| cap - u + other.size);
                if alt != line && fits(&used, alt, other.size) && item.size <= room {
                    moved = Some((line, slot, m, other.size, alt));
                    break 'lines;
                }
            }
        }
        match moved {
            Some((line, slot, m, size, alt)) => {
                if let Some(list) = members.get_mut(line) {
                    list.remove(slot);
                }
                if let Some(u) = used.get_mut(line) {
                    *u -= size;
                }
                place(&mut used, &mut members, alt, m, size);
                place(&mut used, &mut members, line, k, item.size);
            }
            None => stashed.push(k),
        }
    }
    (members, stashed)
}

/// Most records a line can hold: records are at least 8 bytes (a name has two labels).
const MAX_PER_LINE: usize = (LINE - LINE_HEADER) / (RECORD_HEADER + 3);

/// The items assigned to one line, kept inline so assigning allocates nothing per line.
#[derive(Clone, Copy, Default)]
struct Members {
    items: [u32; MAX_PER_LINE],
    len: u8,
}

impl Members {
    fn items(&self) -> &[u32] {
        self.items.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Adds an item; the caller has checked its bytes fit, so its count does too.
    fn push(&mut self, k: u32) {
        if let Some(slot) = self.items.get_mut(usize::from(self.len)) {
            *slot = k;
            self.len += 1;
        }
    }

    /// Removes the item at `slot`, moving the last one there.
    fn remove(&mut self, slot: usize) {
        let last = usize::from(self.len).saturating_sub(1);
        if slot <= last {
            self.items.swap(slot, last);
            self.len -= 1;
        }
    }
}

/// Puts item `k` of `size` bytes in `line`.
fn place(used: &mut [usize], members: &mut [Members], line: usize, k: u32, size: usize) {
    if let (Some(u), Some(list)) = (used.get_mut(line), members.get_mut(line)) {
        *u += size;
        list.push(k);
    }
}

/// Appends row `row`'s record after the arena's lines, points its offset there and returns that
/// offset.
fn append_record(rows: &DomainRows, row: usize, arena: &mut Vec<u8>, offsets: &mut [u32]) -> u32 {
    let at = offset_u32(arena.len());
    if let Some((_, meta, name)) = rows.row(row) {
        put_record(arena, name, meta);
    }
    if let Some(o) = offsets.get_mut(row) {
        *o = at;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(names: &[(String, u32)]) -> DomainRows {
        let mut r = DomainRows::default();
        for (n, m) in names {
            assert!(r.push(n.as_bytes(), *m));
        }
        r
    }

    /// Builds a table over `list`, checks every row reads back unchanged, every name is found
    /// (with the trusted row where it has one) and absent names are not; returns the stash size.
    fn check(mut list: Vec<(String, u32)>, trusted_meta: u32) -> usize {
        list.sort_unstable();
        let mut r = rows(&list);
        let before: Vec<(u32, Vec<u8>)> = (0..r.len())
            .map(|i| (r.meta(i), r.name_bytes(i).to_vec()))
            .collect();
        let t = DomainTable::build(&mut r, &|m| m == trusted_meta);
        let after: Vec<(u32, Vec<u8>)> = (0..r.len())
            .map(|i| (r.meta(i), r.name_bytes(i).to_vec()))
            .collect();
        assert_eq!(before, after, "rows read back unchanged in canonical order");
        for (n, _) in &list {
            let h = name_hash(n);
            assert!(t.maybe_mask(&[h]) == 1, "{n} passes the filter");
            let found = t
                .find(h, &r.records, n.to_ascii_uppercase().as_bytes())
                .unwrap_or_else(|| panic!("{n} is found"));
            assert_eq!(r.records.get(found.start..found.end), Some(n.as_bytes()));
            let on_trusted = list.iter().any(|(m, k)| m == n && *k == trusted_meta);
            if on_trusted {
                assert_eq!(found.meta, trusted_meta, "{n}: the trusted row is indexed");
            }
        }
        for absent in ["absent.example", "n1.exampl", "xn1.example"] {
            assert_eq!(
                t.find(name_hash(absent), &r.records, absent.as_bytes()),
                None
            );
        }
        t.stash.len()
    }

    #[test]
    fn every_name_is_found_in_its_lines_or_the_stash_and_rows_read_back_unchanged() {
        let mut list: Vec<(String, u32)> =
            (0..2000).map(|i| (format!("n{i}.example"), 0)).collect();
        // A name on two lists: the row the trust test accepts is the one indexed.
        list.push(("n7.example".into(), 3));
        // Names too long for a line, one of them on two lists.
        for i in 0..20 {
            list.push((format!("{}.n{i}.example", "x".repeat(60)), 0));
        }
        list.push((format!("{}.n3.example", "x".repeat(60)), 3));
        assert!(check(list, 3) >= 20, "long names are stashed");
    }

    #[test]
    fn names_that_fill_their_lines_go_to_the_stash() {
        // Records of 45 bytes: one per line, so with 1.25 lines per record's bytes many of them
        // find both their lines taken.
        let list: Vec<(String, u32)> = (0..300)
            .map(|i| (format!("{}{i:03}.example", "y".repeat(29)), 0))
            .collect();
        assert!(check(list, 9) > 0, "some records overflow");
        check(vec![("a.example".into(), 0)], 0);
        check(Vec::new(), 0);
    }
}
