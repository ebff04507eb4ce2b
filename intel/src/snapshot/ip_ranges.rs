//! Compiles address rows into sorted, non-overlapping ranges, each naming the one row that wins
//! there, and answers lookups with a binary search.
//!
//! Who wins at an address: a special-purpose range (nothing is reported there), then any trusted
//! row, then the threat row with the longest prefix, then the lowest row index. CIDRs are always
//! nested or disjoint, so one sweep with a stack of open ranges resolves every overlap.

use crate::reserved::RESERVED_RANGES;
use ipnet::IpNet;
use std::cmp::Reverse;

/// Rank of a candidate at an address; the greatest wins.
type Rank = (u8, u8, Reverse<u32>);

const CLASS_THREAT: u8 = 1;
const CLASS_TRUSTED: u8 = 2;
const CLASS_RESERVED: u8 = 3;

/// One input range.
#[derive(Clone, Copy)]
struct Item {
    start: u128,
    end: u128,
    rank: Rank,
}

/// Resolves `items` into `(start, end, row)` segments, merged where neighbours share a row.
fn resolve(mut items: Vec<Item>) -> Vec<(u128, u128, u32)> {
    items.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<(u128, u128, u32)> = Vec::with_capacity(items.len());
    let emit = |out: &mut Vec<(u128, u128, u32)>, s: u128, e: u128, best: Rank| {
        if best.0 == CLASS_RESERVED {
            return;
        }
        let row = best.2.0;
        if let Some(last) = out.last_mut()
            && last.2 == row
            && last.1.checked_add(1) == Some(s)
        {
            last.1 = e;
            return;
        }
        out.push((s, e, row));
    };
    // (end, best rank among this range and all ranges enclosing it)
    let mut stack: Vec<(u128, Rank)> = Vec::with_capacity(130);
    // First address not yet covered by an emitted segment; `None` once past the top of the space.
    let mut cursor: Option<u128> = Some(0);
    let close = |stack: &mut Vec<(u128, Rank)>, out: &mut Vec<_>, cursor: &mut Option<u128>| {
        if let Some((end, best)) = stack.pop() {
            if let Some(c) = *cursor
                && c <= end
            {
                emit(out, c, end, best);
            }
            *cursor = end.checked_add(1);
        }
    };
    for it in items {
        while stack.last().is_some_and(|&(end, _)| end < it.start) {
            close(&mut stack, &mut out, &mut cursor);
        }
        if let (Some(&(_, best)), Some(c)) = (stack.last(), cursor)
            && c < it.start
        {
            emit(&mut out, c, it.start - 1, best);
        }
        cursor = Some(it.start);
        let best = stack.last().map_or(it.rank, |&(_, b)| b.max(it.rank));
        stack.push((it.end, best));
    }
    while !stack.is_empty() {
        close(&mut stack, &mut out, &mut cursor);
    }
    out
}

fn items_for(
    addr: &[u128],
    prefix: &[u8],
    meta: &[u32],
    bits: u8,
    trusted: &dyn Fn(u32) -> bool,
    reserved: impl Iterator<Item = (u128, u8)>,
) -> Vec<Item> {
    let host_mask = |p: u8| -> u128 {
        let host_bits = u32::from(bits.saturating_sub(p));
        if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        }
    };
    let mut items: Vec<Item> = addr
        .iter()
        .zip(prefix)
        .zip(meta)
        .enumerate()
        .map(|(row, ((&a, &p), &m))| {
            let class = if trusted(m) {
                CLASS_TRUSTED
            } else {
                CLASS_THREAT
            };
            Item {
                start: a,
                end: a | host_mask(p),
                rank: (class, p, Reverse(row as u32)),
            }
        })
        .collect();
    items.extend(reserved.map(|(a, p)| Item {
        start: a,
        end: a | host_mask(p),
        rank: (CLASS_RESERVED, p, Reverse(u32::MAX)),
    }));
    items
}

/// IPv4 ranges with a first-level index on the top 16 bits, so a lookup searches a handful of
/// ranges instead of the whole array.
///
/// Each range's start and end sit side by side, so the search and the containment check touch
/// the same cache line: a miss (the common case) costs about one memory access after the
/// index, which is small enough (256 KiB) to stay in cache.
#[derive(Debug, Clone, Default)]
pub(crate) struct V4Ranges {
    /// `index[b]` is the first range whose start is at or above `b << 16`; 65,537 entries.
    index: Vec<u32>,
    /// `[start, end]` of each range, sorted and disjoint.
    spans: Vec<[u32; 2]>,
    /// The winning row of each range.
    rows: Vec<u32>,
    /// One bit per /24 block, set when any range touches the block; empty for small sets.
    ///
    /// Real traffic mostly misses, and most /24 blocks hold no listed address, so one load from
    /// this 2 MiB bitmap answers most lookups without the search.
    blocks: Vec<u64>,
}

/// Range count from which the /24 bitmap pays for its 2 MiB; below it the ranges fit in cache.
const BLOCK_FILTER_MIN_RANGES: usize = 4096;

impl V4Ranges {
    pub(crate) fn build(
        addr: &[u32],
        prefix: &[u8],
        meta: &[u32],
        trusted: &dyn Fn(u32) -> bool,
    ) -> Self {
        let wide: Vec<u128> = addr.iter().map(|&a| u128::from(a)).collect();
        let reserved = RESERVED_RANGES.iter().filter_map(|r| match r.net {
            IpNet::V4(n) => Some((u128::from(u32::from(n.network())), n.prefix_len())),
            IpNet::V6(_) => None,
        });
        let segs = resolve(items_for(&wide, prefix, meta, 32, trusted, reserved));
        let mut r = V4Ranges {
            index: Vec::with_capacity(65_537),
            spans: Vec::with_capacity(segs.len()),
            rows: Vec::with_capacity(segs.len()),
            blocks: Vec::new(),
        };
        for (s, e, row) in segs {
            // Segments come from 32-bit rows, so they fit; anything else is dropped, not wrapped.
            if let (Ok(s), Ok(e)) = (u32::try_from(s), u32::try_from(e)) {
                r.spans.push([s, e]);
                r.rows.push(row);
            }
        }
        if r.spans.len() >= BLOCK_FILTER_MIN_RANGES {
            r.blocks = vec![0u64; (1 << 24) / 64];
            for &[s, e] in &r.spans {
                // Spans are disjoint, so all spans together set each bit at most a few times.
                for block in (s >> 8)..=(e >> 8) {
                    if let Some(word) = r.blocks.get_mut((block / 64) as usize) {
                        *word |= 1 << (block % 64);
                    }
                }
            }
        }
        let mut i = 0usize;
        for b in 0..=65_536u64 {
            while r
                .spans
                .get(i)
                .is_some_and(|&[s, _]| u64::from(s) < (b << 16))
            {
                i += 1;
            }
            r.index.push(i as u32);
        }
        r
    }

    /// The winning row at `ip`, if any.
    #[inline]
    pub(crate) fn find(&self, ip: u32) -> Option<u32> {
        if !self.blocks.is_empty() {
            let block = ip >> 8;
            if self.blocks.get((block / 64) as usize)? & (1 << (block % 64)) == 0 {
                return None;
            }
        }
        let b = (ip >> 16) as usize;
        let lo = *self.index.get(b)? as usize;
        let hi = *self.index.get(b + 1)? as usize;
        let bucket = self.spans.get(lo..hi)?;
        let i = lo + bucket.partition_point(|&[s, _]| s <= ip);
        let k = i.checked_sub(1)?;
        let [_, end] = *self.spans.get(k)?;
        if end >= ip {
            self.rows.get(k).copied()
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.index.capacity() + self.rows.capacity()) * 4
            + (self.spans.capacity() + self.blocks.capacity()) * 8
    }
}

/// IPv6 ranges, searched with one binary search.
#[derive(Debug, Clone, Default)]
pub(crate) struct V6Ranges {
    starts: Vec<u128>,
    ends: Vec<u128>,
    rows: Vec<u32>,
}

impl V6Ranges {
    pub(crate) fn build(
        addr: &[u128],
        prefix: &[u8],
        meta: &[u32],
        trusted: &dyn Fn(u32) -> bool,
    ) -> Self {
        let reserved = RESERVED_RANGES.iter().filter_map(|r| match r.net {
            IpNet::V6(n) => Some((u128::from(n.network()), n.prefix_len())),
            IpNet::V4(_) => None,
        });
        let segs = resolve(items_for(addr, prefix, meta, 128, trusted, reserved));
        let mut r = V6Ranges::default();
        for (s, e, row) in segs {
            r.starts.push(s);
            r.ends.push(e);
            r.rows.push(row);
        }
        r
    }

    /// The winning row at `ip`, if any.
    #[inline]
    pub(crate) fn find(&self, ip: u128) -> Option<u32> {
        let k = self.starts.partition_point(|&s| s <= ip).checked_sub(1)?;
        if *self.ends.get(k)? >= ip {
            self.rows.get(k).copied()
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.starts.capacity() + self.ends.capacity()) * 16 + self.rows.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(rows: &[(&str, bool)]) -> (V4Ranges, Vec<u32>) {
        let nets: Vec<ipnet::Ipv4Net> = rows.iter().map(|(s, _)| s.parse().expect("net")).collect();
        let addr: Vec<u32> = nets.iter().map(|n| u32::from(n.network())).collect();
        let prefix: Vec<u8> = nets.iter().map(|n| n.prefix_len()).collect();
        let meta: Vec<u32> = (0..rows.len() as u32).collect();
        let trusted_rows: Vec<bool> = rows.iter().map(|r| r.1).collect();
        let trusted = move |m: u32| trusted_rows.get(m as usize).copied().unwrap_or(false);
        (V4Ranges::build(&addr, &prefix, &meta, &trusted), meta)
    }

    fn at(r: &V4Ranges, ip: &str) -> Option<u32> {
        r.find(u32::from(ip.parse::<std::net::Ipv4Addr>().expect("ip")))
    }

    #[test]
    fn the_longest_prefix_wins_and_the_outer_range_resumes_after_it() {
        let (r, _) = v4(&[
            ("8.0.0.0/8", false),
            ("8.8.8.0/24", false),
            ("8.8.8.8/32", false),
        ]);
        assert_eq!(at(&r, "8.8.8.8"), Some(2));
        assert_eq!(at(&r, "8.8.8.9"), Some(1));
        assert_eq!(at(&r, "8.8.9.0"), Some(0));
        assert_eq!(at(&r, "8.255.255.255"), Some(0));
        assert_eq!(at(&r, "9.0.0.0"), None);
        assert_eq!(at(&r, "7.255.255.255"), None);
    }

    #[test]
    fn a_broader_trusted_range_beats_a_narrower_threat() {
        let (r, _) = v4(&[
            ("8.8.0.0/16", true),
            ("8.8.8.8/32", false),
            ("9.9.9.9/32", false),
        ]);
        assert_eq!(at(&r, "8.8.8.8"), Some(0));
        assert_eq!(at(&r, "9.9.9.9"), Some(2));
    }

    #[test]
    fn reserved_ranges_inside_a_listed_network_are_holes() {
        let (r, _) = v4(&[("8.0.0.0/5", false)]);
        assert_eq!(at(&r, "9.1.1.1"), Some(0));
        assert_eq!(at(&r, "10.1.1.1"), None);
        assert_eq!(at(&r, "11.0.0.0"), Some(0));
    }

    #[test]
    fn ranges_at_the_ends_of_the_space_resolve() {
        let (r, _) = v4(&[("1.0.0.0/32", false), ("223.255.255.255/32", false)]);
        assert_eq!(at(&r, "1.0.0.0"), Some(0));
        assert_eq!(at(&r, "223.255.255.255"), Some(1));
        assert_eq!(at(&r, "0.0.0.0"), None);
        assert_eq!(at(&r, "255.255.255.255"), None);
    }

    #[test]
    fn large_sets_use_the_block_bitmap_and_still_find_every_edge() {
        // Enough ranges to switch the /24 bitmap on; addresses spread over many blocks.
        let n = (BLOCK_FILTER_MIN_RANGES + 100) as u32;
        let mut addr: Vec<u32> = (0..n).map(|i| 0x2d00_0000 + i * 1_003).collect();
        let mut prefix = vec![32u8; addr.len()];
        addr.push(0x5000_0000); // 80.0.0.0/20 spans sixteen /24 blocks
        prefix.push(20);
        let meta: Vec<u32> = (0..addr.len() as u32).collect();
        let r = V4Ranges::build(&addr, &prefix, &meta, &|_| false);
        assert!(!r.blocks.is_empty());
        for (row, &a) in addr.iter().enumerate().take(n as usize) {
            assert_eq!(r.find(a), Some(row as u32));
            assert_eq!(r.find(a + 1), None);
            assert_eq!(r.find(a - 1), None);
        }
        assert_eq!(r.find(0x5000_0000), Some(n));
        assert_eq!(r.find(0x5000_0fff), Some(n));
        assert_eq!(r.find(0x5000_1000), None);
        assert_eq!(r.find(0x4fff_ffff), None);
    }

    #[test]
    fn ipv6_ranges_resolve_up_to_the_top_of_the_space() {
        let nets: Vec<ipnet::Ipv6Net> = ["2a06:e480::/29", "2a06:e480::1/128"]
            .iter()
            .map(|s| s.parse().expect("net"))
            .collect();
        let addr: Vec<u128> = nets.iter().map(|n| u128::from(n.network())).collect();
        let prefix: Vec<u8> = nets.iter().map(|n| n.prefix_len()).collect();
        let r = V6Ranges::build(&addr, &prefix, &[0, 1], &|_| false);
        let ip = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().expect("ip"));
        assert_eq!(r.find(ip("2a06:e480::1")), Some(1));
        assert_eq!(r.find(ip("2a06:e480::2")), Some(0));
        assert_eq!(r.find(ip("2a06:e488::")), None);
        assert_eq!(r.find(ip("ffff::1")), None);
    }
}
