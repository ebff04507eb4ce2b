//! Where the flow table keeps its flows: fixed-size slots in chunks that never move, and a
//! hash index holding only slot numbers.
//!
//! Why not `HashMap<FlowKey, Entry>`: a map's buckets come in powers of two and run between
//! 7/16 and 7/8 full, so an entry of about 150 bytes costs up to 340 bytes per flow right
//! after the map grows. Here an empty bucket costs 8 bytes (a slot number and 32 bits of the
//! key's hash), the slots are allocated [`CHUNK`] at a time and reused through a free list, so
//! the memory per flow stays close to the slot size; and a slot number is a 4-byte handle the
//! expiry heap can hold instead of a whole key.
//!
//! The index is hand-written open addressing (linear probing, at most half full, backward-shift
//! deletion) rather than `hashbrown::HashTable<u32>`: a lookup there reads a control byte and
//! then, in another cache line, the slot number, before it can read the slot. Keeping the slot
//! number beside the hash bits makes a lookup one index read and one slot read; on the replay
//! bench those dependent cache misses were most of the flow table's time.
//!
//! Keys are stored packed ([`PackedKey`]: five machine words), so comparing and hashing a
//! key on the per-packet path is five word operations rather than a walk over two `IpAddr`
//! enums. The hash is foldhash with a seed drawn per table: packet headers are chosen by
//! remote senders, and a per-process random seed keeps them from aiming at collisions.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::key::{Endpoint, FlowKey, Side};

/// A [`FlowKey`] as five words: lower address, upper address (each as 128 bits, IPv4 in
/// the low 32), then lower port, upper port, protocol and family in the last word. Both
/// addresses of a packet have the same family, so ordering the numbers orders the endpoints
/// as [`FlowKey`] does.
#[derive(Debug, Clone, Copy, Eq)]
pub struct PackedKey([u64; 5]);

impl PartialEq for PackedKey {
    /// Word by word, without branches: the derived comparison of the array calls `memcmp`,
    /// which was a tenth of the replay's time.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

/// Family bit in the last word.
const V6: u64 = 1 << 24;

impl Hash for PackedKey {
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        for w in self.0 {
            state.write_u64(w);
        }
    }
}

fn bits(addr: IpAddr) -> (u128, bool) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

fn addr(bits: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        // The low 32 bits were an IPv4 address.
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    }
}

impl PackedKey {
    /// The key of a packet from `src` to `dst`, and which side of the key `src` is; the
    /// same canonical order as [`FlowKey::new`].
    #[inline]
    pub fn new(protocol: u8, src: Endpoint, dst: Endpoint) -> (Self, Side) {
        // Most packets are IPv4: an address and port fit one u64, so ordering the endpoints is
        // one compare instead of a (u128, u16) pair's.
        if let (IpAddr::V4(s), IpAddr::V4(d)) = (src.addr, dst.addr) {
            let s = u64::from(u32::from(s)) << 16 | u64::from(src.port);
            let d = u64::from(u32::from(d)) << 16 | u64::from(dst.port);
            let (lo, hi, side) = if s <= d {
                (s, d, Side::Lower)
            } else {
                (d, s, Side::Upper)
            };
            let last = (lo & 0xffff) | (hi & 0xffff) << 32 | u64::from(protocol) << 16;
            return (Self([0, lo >> 16, 0, hi >> 16, last]), side);
        }
        let (s, v6) = bits(src.addr);
        let (d, _) = bits(dst.addr);
        let (lo, hi, side) = if (s, src.port) <= (d, dst.port) {
            ((s, src.port), (d, dst.port), Side::Lower)
        } else {
            ((d, dst.port), (s, src.port), Side::Upper)
        };
        let last = u64::from(lo.1)
            | u64::from(hi.1) << 32
            | u64::from(protocol) << 16
            | if v6 { V6 } else { 0 };
        let words = [
            (lo.0 >> 64) as u64,
            lo.0 as u64,
            (hi.0 >> 64) as u64,
            hi.0 as u64,
            last,
        ];
        (Self(words), side)
    }

    /// The packed form of `key`.
    pub fn from_key(key: &FlowKey) -> Self {
        Self::new(key.protocol, key.lower, key.upper).0
    }

    /// Orders as the unpacked [`FlowKey`]s do (protocol, then the lower endpoint, then the
    /// upper; an address by family, then its bits; both ends share a family), in integers
    /// rather than through `IpAddr`'s comparisons.
    pub fn order(&self) -> (u8, bool, u128, u16, u128, u16) {
        let [a, b, c, d, last] = self.0;
        (
            (last >> 16) as u8,
            last & V6 != 0,
            u128::from(a) << 64 | u128::from(b),
            last as u16,
            u128::from(c) << 64 | u128::from(d),
            (last >> 32) as u16,
        )
    }

    /// The key this packs.
    pub fn unpack(&self) -> FlowKey {
        let [a, b, c, d, last] = self.0;
        let v6 = last & V6 != 0;
        let lo = u128::from(a) << 64 | u128::from(b);
        let hi = u128::from(c) << 64 | u128::from(d);
        FlowKey {
            protocol: (last >> 16) as u8,
            lower: Endpoint {
                addr: addr(lo, v6),
                port: last as u16,
            },
            upper: Endpoint {
                addr: addr(hi, v6),
                port: (last >> 32) as u16,
            },
        }
    }
}

/// Slots allocated at a time; the most a table holds beyond its flows is one chunk.
pub const CHUNK: usize = 4096;

/// A slot: the flow's key and, while it is live, its state. Aligned to a cache line so a
/// 128-byte slot spans two lines, never three.
#[derive(Debug)]
#[repr(align(64))]
struct Slot<V> {
    key: PackedKey,
    value: Option<V>,
}

/// An index entry that holds nothing. Slot numbers stay far below `u32::MAX` (the table's
/// capacity bounds them), so no live entry looks like this.
const EMPTY: u64 = u64::MAX;

/// Open-addressed index from a key's hash to its slot number; see the module docs.
///
/// Each entry is `slot << 32 | low 32 bits of the hash`, or [`EMPTY`]. An entry's home
/// position is its hash bits masked to the table size, so growing and deleting never need the
/// key again. At most half full, so probes are short and a search always meets an empty entry.
#[derive(Debug, Default)]
struct Index {
    entries: Vec<u64>,
    len: usize,
}

impl Index {
    #[inline]
    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    #[inline]
    fn home(&self, hash_bits: u64) -> usize {
        // The low 32 bits only, so a stored entry finds its home the same way.
        (hash_bits as u32 as usize) & self.mask()
    }

    /// The slot number of the first entry with `hash`'s bits for which `is` says yes.
    #[inline]
    fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = hash & 0xffff_ffff;
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            let entry = *self.entries.get(i)?;
            if entry == EMPTY {
                return None;
            }
            let id = (entry >> 32) as u32;
            if entry & 0xffff_ffff == tag && is(id) {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, hash: u64, id: u32) {
        if (self.len + 1).saturating_mul(2) > self.entries.len() {
            self.grow();
        }
        self.place(u64::from(id) << 32 | (hash & 0xffff_ffff));
        self.len += 1;
    }

    /// Puts `entry` at the first empty position from its home (there always is one).
    fn place(&mut self, entry: u64) {
        let mask = self.mask();
        let mut i = self.home(entry);
        while let Some(e) = self.entries.get_mut(i) {
            if *e == EMPTY {
                *e = entry;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = self.entries.len().saturating_mul(2).max(16);
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; size]);
        for entry in old.into_iter().filter(|e| *e != EMPTY) {
            self.place(entry);
        }
    }

    /// Removes the entry of slot `id`, whose key hashed to `hash`.
    fn remove(&mut self, hash: u64, id: u32) {
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            match self.entries.get(i) {
                None => return,
                Some(&EMPTY) => return,
                Some(&e) if (e >> 32) as u32 == id => break,
                Some(_) => i = (i + 1) & mask,
            }
        }
        // Backward shift: later entries of the run move into the hole unless that would put
        // them before their home, so no search ever stops early at a hole.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some(&entry) = self.entries.get(j) {
            if entry == EMPTY {
                break;
            }
            let from_home = j.wrapping_sub(self.home(entry)) & mask;
            let from_hole = j.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                if let Some(h) = self.entries.get_mut(hole) {
                    *h = entry;
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(h) = self.entries.get_mut(hole) {
            *h = EMPTY;
        }
        self.len -= 1;
    }

    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .filter(|e| **e != EMPTY)
            .map(|e| (e >> 32) as u32)
    }
}

/// Flows by key in numbered slots; see the module docs.
#[derive(Debug)]
pub struct Store<V> {
    index: Index,
    chunks: Vec<Vec<Slot<V>>>,
    free: Vec<u32>,
    hasher: foldhash::fast::RandomState,
}

impl<V> Store<V> {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            index: Index::default(),
            chunks: Vec::new(),
            free: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Live flows.
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// Whether no flow is live.
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    /// The hash of `key`, computed once per packet and passed to the other calls. Forced
    /// inline: left to itself the compiler made `hash_one` a call on the express lane.
    #[inline(always)]
    #[allow(clippy::manual_hash_one)]
    pub fn hash(&self, key: &PackedKey) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        key.hash(&mut hasher);
        hasher.finish()
    }

    fn slot(&self, id: u32) -> Option<&Slot<V>> {
        let id = usize::try_from(id).ok()?;
        self.chunks.get(id / CHUNK)?.get(id % CHUNK)
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut Slot<V>> {
        let id = usize::try_from(id).ok()?;
        self.chunks.get_mut(id / CHUNK)?.get_mut(id % CHUNK)
    }

    /// The slot number of `key` (whose hash is `hash`), if it is live.
    #[inline]
    pub fn find(&self, hash: u64, key: &PackedKey) -> Option<u32> {
        let chunks = &self.chunks;
        self.index.find(hash, |id| {
            let id = id as usize;
            chunks
                .get(id / CHUNK)
                .and_then(|c| c.get(id % CHUNK))
                .is_some_and(|s| s.key == *key)
        })
    }

    /// The live flow in slot `id`.
    #[inline]
    pub fn get(&self, id: u32) -> Option<(&PackedKey, &V)> {
        let slot = self.slot(id)?;
        slot.value.as_ref().map(|v| (&slot.key, v))
    }

    /// The live flow in slot `id`, to update.
    #[inline]
    pub fn get_mut(&mut self, id: u32) -> Option<(&PackedKey, &mut V)> {
        let slot = self.slot_mut(id)?;
        slot.value.as_mut().map(|v| (&slot.key, v))
    }

    /// Stores a flow whose key is not live (the caller looked it up first) and returns its
    /// slot number.
    pub fn insert(&mut self, hash: u64, key: PackedKey, value: V) -> u32 {
        let id = if let Some(id) = self.free.pop() {
            if let Some(slot) = self.slot_mut(id) {
                *slot = Slot {
                    key,
                    value: Some(value),
                };
            }
            id
        } else {
            if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                self.chunks.push(Vec::with_capacity(CHUNK));
            }
            let n = self.chunks.len().saturating_sub(1);
            let id = n * CHUNK + self.chunks.last().map_or(0, Vec::len);
            if let Some(chunk) = self.chunks.last_mut() {
                chunk.push(Slot {
                    key,
                    value: Some(value),
                });
            }
            // More than 4 billion slots would need 500 GB; the capacity is far below that.
            u32::try_from(id).unwrap_or(u32::MAX)
        };
        self.index.insert(hash, id);
        id
    }

    /// Takes the flow out of slot `id`; the slot is reused by a later insert.
    pub fn remove(&mut self, id: u32) -> Option<(PackedKey, V)> {
        let slot = self.slot_mut(id)?;
        let value = slot.value.take()?;
        let key = slot.key;
        let hash = self.hash(&key);
        self.index.remove(hash, id);
        self.free.push(id);
        Some((key, value))
    }

    /// Every live flow's slot number, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.ids()
    }

    /// Forgets every flow and frees the slots' memory.
    pub fn clear(&mut self) {
        self.index = Index::default();
        self.chunks = Vec::new();
        self.free = Vec::new();
    }

    /// Bytes of one slot: what each flow costs in the chunks.
    pub const SLOT_BYTES: usize = std::mem::size_of::<Slot<V>>();

    /// Bytes this store holds on the heap, for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.index.entries.capacity() * std::mem::size_of::<u64>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<Slot<V>>>()
            + self.chunks.iter().map(Vec::capacity).sum::<usize>() * std::mem::size_of::<Slot<V>>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }
}

impl<V> Default for Store<V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::flow_table::Endpoint;

    fn key(i: u16) -> PackedKey {
        let a = Endpoint {
            addr: IpAddr::from([10, 0, 0, 1]),
            port: i,
        };
        let b = Endpoint {
            addr: IpAddr::from([10, 0, 0, 2]),
            port: 80,
        };
        PackedKey::new(6, a, b).0
    }

    #[test]
    fn packed_keys_order_and_unpack_as_flow_keys_do() {
        let cases = [
            ("10.0.0.1", 40_000, "52.1.2.3", 443, 6),
            ("52.1.2.3", 443, "10.0.0.1", 40_000, 6),
            ("10.0.0.1", 53, "10.0.0.1", 40_000, 17),
            ("10.0.0.1", 9, "10.0.0.1", 9, 1),
            ("fd00::5", 5000, "2001:db8::1", 80, 6),
            ("2001:db8::1", 80, "fd00::5", 5000, 6),
            ("::ffff:10.0.0.1", 1, "::ffff:10.0.0.2", 2, 17),
            ("255.255.255.255", 65535, "0.0.0.0", 0, 255),
        ];
        for (s, sp, d, dp, proto) in cases {
            let src = Endpoint {
                addr: s.parse().unwrap(),
                port: sp,
            };
            let dst = Endpoint {
                addr: d.parse().unwrap(),
                port: dp,
            };
            let (key, side) = FlowKey::new(proto, src, dst);
            let (packed, packed_side) = PackedKey::new(proto, src, dst);
            assert_eq!(packed.unpack(), key, "{s} {d}");
            assert_eq!(packed_side, side, "{s} {d}");
            assert_eq!(PackedKey::from_key(&key), packed);
            assert_eq!(
                PackedKey::new(proto, dst, src).0,
                packed,
                "either direction"
            );
        }
        let v4 = PackedKey::new(
            17,
            Endpoint {
                addr: "10.0.0.1".parse().unwrap(),
                port: 1,
            },
            Endpoint {
                addr: "10.0.0.2".parse().unwrap(),
                port: 2,
            },
        )
        .0;
        let (mapped, _) = PackedKey::new(
            17,
            Endpoint {
                addr: "::ffff:10.0.0.1".parse().unwrap(),
                port: 1,
            },
            Endpoint {
                addr: "::ffff:10.0.0.2".parse().unwrap(),
                port: 2,
            },
        );
        assert_ne!(v4, mapped, "families stay apart");
    }

    fn endpoint() -> impl proptest::strategy::Strategy<Value = (IpAddr, u16, IpAddr, u16, u8)> {
        use proptest::prelude::*;
        // Few distinct values, so equal protocols, addresses and ports are common.
        let v4 = (0_u32..4, 0_u32..4).prop_map(|(a, b)| {
            (
                IpAddr::from(std::net::Ipv4Addr::from(a << 30 | 7)),
                IpAddr::from(std::net::Ipv4Addr::from(b << 30 | 7)),
            )
        });
        let v6 = (0_u128..4, 0_u128..4).prop_map(|(a, b)| {
            (
                IpAddr::from(std::net::Ipv6Addr::from(a << 126 | 7)),
                IpAddr::from(std::net::Ipv6Addr::from(b << 126 | 7)),
            )
        });
        (
            prop_oneof![v4, v6],
            0_u16..3,
            0_u16..3,
            prop_oneof![Just(6_u8), Just(17)],
        )
            .prop_map(|((s, d), sp, dp, proto)| (s, sp * 30_000, d, dp * 30_000, proto))
    }

    proptest::proptest! {
        #[test]
        fn packed_keys_order_as_flow_keys_do(x in endpoint(), y in endpoint()) {
            let key = |(s, sp, d, dp, proto): (IpAddr, u16, IpAddr, u16, u8)| {
                let src = Endpoint { addr: s, port: sp };
                let dst = Endpoint { addr: d, port: dp };
                (FlowKey::new(proto, src, dst).0, PackedKey::new(proto, src, dst).0)
            };
            let ((kx, px), (ky, py)) = (key(x), key(y));
            proptest::prop_assert_eq!(px.order().cmp(&py.order()), kx.cmp(&ky));
        }

        /// The index against a map: any mix of inserts and removes (few distinct keys, so
        /// runs collide and removals shift entries back) leaves every key found or not found
        /// exactly as the map says, with the slot it was given.
        #[test]
        fn the_index_agrees_with_a_map(ops in proptest::collection::vec((0_u16..300, proptest::bool::ANY), 1..2000)) {
            let mut store: Store<u16> = Store::new();
            let mut model: std::collections::HashMap<u16, u32> = std::collections::HashMap::new();
            for (i, insert) in ops {
                let k = key(i);
                let h = store.hash(&k);
                match (insert, model.get(&i).copied()) {
                    (true, None) => {
                        model.insert(i, store.insert(h, k, i));
                    }
                    (false, Some(id)) => {
                        proptest::prop_assert_eq!(store.remove(id), Some((k, i)));
                        model.remove(&i);
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(store.len(), model.len());
            }
            for i in 0..300_u16 {
                let k = key(i);
                proptest::prop_assert_eq!(store.find(store.hash(&k), &k), model.get(&i).copied());
            }
            let mut ids: Vec<u32> = store.ids().collect();
            ids.sort_unstable();
            let mut expected: Vec<u32> = model.values().copied().collect();
            expected.sort_unstable();
            proptest::prop_assert_eq!(ids, expected);
        }
    }

    #[test]
    fn flows_are_found_by_key_removed_and_their_slots_reused() {
        let mut store: Store<u64> = Store::new();
        let mut ids = Vec::new();
        for i in 0..10_000_u16 {
            let k = key(i);
            let h = store.hash(&k);
            assert_eq!(store.find(h, &k), None);
            ids.push(store.insert(h, k, u64::from(i)));
        }
        assert_eq!(store.len(), 10_000);
        for (i, id) in ids.iter().enumerate() {
            let k = key(u16::try_from(i).unwrap());
            assert_eq!(store.find(store.hash(&k), &k), Some(*id));
            assert_eq!(store.get(*id).map(|(_, v)| *v), Some(i as u64));
        }
        let (k, v) = store.remove(ids[7]).unwrap();
        assert_eq!((k, v), (key(7), 7));
        assert_eq!(store.remove(ids[7]), None, "removed once");
        assert_eq!(store.get(ids[7]), None);
        assert_eq!(store.find(store.hash(&k), &k), None);
        let h = store.hash(&key(60_000));
        assert_eq!(store.insert(h, key(60_000), 1), ids[7], "slot reused");
        assert_eq!(store.len(), 10_000);
        assert_eq!(store.ids().count(), 10_000);
        store.clear();
        assert_eq!(store.len(), 0);
        assert_eq!(store.get(ids[0]), None);
    }
}
