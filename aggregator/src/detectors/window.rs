//! Bounded per-key windows shared by the behavioural detectors: a [`WindowTable`] of tumbling
//! windows keyed by outside data (remote addresses, ports, domains), and a [`DistinctSet`] that
//! counts distinct values up to a cap.
//!
//! Every table has a cap on keys, an eviction rule and eviction counters, so a flood of new
//! remotes cannot grow memory: when full, the key updated least recently goes first. A key's
//! window opens at its first event and closes `window_ms` later (event time, not wall time, so
//! `analyze` gives the same answer as `serve`).

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::sync::Arc;

use hashbrown::HashTable;

use super::DetectorCounter;

/// The tables' hasher: keys come from outside data and are hashed on every record, so a fast
/// seeded hash (as the baselines and the agent's flow table use) rather than SipHash.
type Hasher = foldhash::fast::RandomState;

/// One key's window: when it opened, whether it already fired, and the detector's state.
#[derive(Debug, Clone)]
pub struct Window<S> {
    /// Event time the window opened (ms since the epoch).
    pub start_ms: i64,
    /// Event time of the latest update.
    pub last_ms: i64,
    /// Set by the detector once it has reported this window, so one window reports once.
    pub fired: bool,
    /// The detector's counts.
    pub state: S,
}

/// Tumbling windows per key, at most `cap` keys.
///
/// The windows sit densely in a vector with their (start, last update) times in a compact
/// vector beside it, and a map from key to position: making room then scans 16 bytes per
/// window instead of walking the whole map, which on a table kept full by a flood of new keys
/// was most of a detector's time and pushed every other detector's state out of the cache.
///
/// The map ([`PositionIndex`]) holds only positions with part of the key's hash (8 bytes
/// each), found by the key's hash (kept beside the times) and checked against the key at that
/// position: each key is stored once, so a new window copies its key once (a reference count
/// for a [`NameKey`], no string copy) and a lookup none ([`Self::window_named`]). New
/// windows go at the end, whose lines are asked for one insertion ahead; a detector can ask
/// for a lookup's index slot before it looks ([`Self::prefetch_named`]), and removals ask for
/// theirs a few removals ahead.
#[derive(Debug)]
pub struct WindowTable<K, S> {
    index: PositionIndex,
    hasher: Hasher,
    // Keys and windows in two vectors rather than one of pairs: an element then mostly fits
    // in a cache line, whose start a prefetch can name (see `prefetch_next`); a pair of both
    // spanned lines that no element starts in.
    keys: Vec<K>,
    windows: Vec<Window<S>>,
    // (start_ms, last_ms) of the window at the same position in `windows`.
    times: Vec<(i64, i64)>,
    // The key's hash of the window at the same position in `windows`.
    hashes: Vec<u64>,
    cap: NonZeroUsize,
    window_ms: i64,
    evicted_full: u64,
    expired: u64,
    // Live windows' last update times while making room, kept between calls: a fresh buffer
    // of the whole table's size per batch cost page faults on every eviction.
    lasts: Vec<i64>,
    // Positions to remove while making room, highest first, kept between calls as `lasts`.
    doomed: Vec<usize>,
}

impl<K: Hash + Eq, S: Default> WindowTable<K, S> {
    /// A table of at most `cap` keys with windows `window_ms` long (at least 1 ms).
    pub fn new(cap: NonZeroUsize, window_ms: i64) -> Self {
        Self {
            index: PositionIndex::default(),
            hasher: Hasher::default(),
            keys: Vec::new(),
            windows: Vec::new(),
            times: Vec::new(),
            hashes: Vec::new(),
            cap,
            window_ms: window_ms.max(1),
            evicted_full: 0,
            expired: 0,
            lasts: Vec::new(),
            doomed: Vec::new(),
        }
    }

    fn fresh(at_ms: i64) -> Window<S> {
        Window {
            start_ms: at_ms,
            last_ms: at_ms,
            fired: false,
            state: S::default(),
        }
    }

    /// The window for `key` at event time `at_ms`: the open one, or a fresh one when the key
    /// is new or its window has ended. Makes room first when the table is full.
    pub fn window(&mut self, key: K, at_ms: i64) -> &mut Window<S> {
        let hash = self.hasher.hash_one(&key);
        match self.position(hash, |held| *held == key) {
            Some(i) => self.touch(i, at_ms),
            None => self.open(hash, key, at_ms),
        }
    }

    /// The position of the key `is` accepts, found by its `hash`; always within the vectors.
    fn position(&self, hash: u64, is: impl Fn(&K) -> bool) -> Option<usize> {
        let keys = &self.keys;
        let i = self.index.find(hash, |at| keys.get(at).is_some_and(&is))?;
        // Always in bounds (the index and the vectors change together); checked so a slip
        // cannot panic.
        (i < self.windows.len() && i < self.times.len()).then_some(i)
    }

    /// The window at position `i` (in bounds, from [`Self::position`]) at `at_ms`, started
    /// over when it has ended.
    fn touch(&mut self, i: usize, at_ms: i64) -> &mut Window<S> {
        let window_ms = self.window_ms;
        let w = &mut self.windows[i];
        if at_ms.saturating_sub(w.start_ms) >= window_ms {
            *w = Self::fresh(at_ms);
        }
        w.last_ms = w.last_ms.max(at_ms);
        self.times[i] = (w.start_ms, w.last_ms);
        w
    }

    /// A fresh window for the new `key` (whose hash is `hash`), making room first when full.
    fn open(&mut self, hash: u64, key: K, at_ms: i64) -> &mut Window<S> {
        if self.windows.len() >= self.cap.get() {
            self.make_room(at_ms);
        }
        // Positions fit in u32: the cap bounds the table and is far below 2^32 keys' memory.
        let i = u32::try_from(self.windows.len()).unwrap_or(u32::MAX);
        self.hashes.push(hash);
        self.index.insert(hash, i);
        self.times.push((at_ms, at_ms));
        self.keys.push(key);
        self.windows.push(Self::fresh(at_ms));
        self.prefetch_next();
        let Some(w) = self.windows.last_mut() else {
            unreachable!("pushed above")
        };
        w
    }

    // A new key's window is written at the end of the vectors, whose lines have long left the
    // cache when the table is full: a batch of evictions moved the last windows into the
    // freed places, and new keys refill those positions one by one over the following
    // records. Writing them was most of a full table's time, waiting for each line; asking
    // for the next position's lines now lets them arrive before the next new key. (Beyond
    // the vectors' capacity this asks for memory nothing uses, which a prefetch allows.)
    fn prefetch_next(&self) {
        let next = self.windows.len();
        // An element of at most a line (most keys and windows here) lies in its first line
        // and the one the next element starts in; a larger one gets its first lines only.
        for at in [next, next + 1] {
            prefetch_index::prefetch_index(&self.keys, at);
            prefetch_index::prefetch_index(&self.windows, at);
        }
        prefetch_index::prefetch_index(&self.times, next);
        prefetch_index::prefetch_index(&self.hashes, next);
    }

    /// Removes the windows at `positions` (highest first), as [`Self::remove_at`] one by
    /// one. The positions are scattered over a table larger than the cache, and each
    /// removal reads and rewrites its window: the lines of the windows a few removals ahead
    /// are asked for first, so the removals wait for memory together instead of in turn.
    fn remove_all(&mut self, positions: &[usize]) {
        const AHEAD: usize = 8;
        for (n, &i) in positions.iter().enumerate() {
            if let Some(&ahead) = positions.get(n + AHEAD) {
                for at in [ahead, ahead + 1] {
                    prefetch_index::prefetch_index(&self.keys, at);
                    prefetch_index::prefetch_index(&self.windows, at);
                }
                prefetch_index::prefetch_index(&self.times, ahead);
                prefetch_index::prefetch_index(&self.hashes, ahead);
            }
            // The index slots of a removal half as far ahead, from the hashes asked for above
            // (by now arrived): the removed window's and that of the last window, which moves
            // into its place (the last is a step further down for each removal before it).
            if let Some(&near) = positions.get(n + AHEAD / 2) {
                let last = self.hashes.len().saturating_sub(1 + AHEAD / 2);
                for at in [near, last] {
                    if let Some(&hash) = self.hashes.get(at) {
                        self.index.prefetch(hash);
                    }
                }
            }
            self.remove_at(i);
        }
    }

    /// Removes the window at position `i`; the last window moves into its place.
    fn remove_at(&mut self, i: usize) {
        let Some(&hash) = self.hashes.get(i) else {
            return;
        };
        let at = u32::try_from(i).unwrap_or(u32::MAX);
        self.index.remove(hash, i);
        let last = self.windows.len().saturating_sub(1);
        self.keys.swap_remove(i);
        self.windows.swap_remove(i);
        self.times.swap_remove(i);
        self.hashes.swap_remove(i);
        if i < last
            && let Some(&moved) = self.hashes.get(i)
        {
            self.index.moved(moved, last, at);
        }
    }

    /// Drops every window that ended before `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let window_ms = self.window_ms;
        let mut doomed = std::mem::take(&mut self.doomed);
        doomed.clear();
        // Backwards, as removals go: a removal moves only the last window, already looked at.
        doomed.extend(
            self.times
                .iter()
                .enumerate()
                .rev()
                .filter(|&(_, &(start, _))| now_ms.saturating_sub(start) >= window_ms)
                .map(|(i, _)| i),
        );
        self.remove_all(&doomed);
        let n = doomed.len();
        self.doomed = doomed;
        self.expired += n as u64;
        n
    }

    // Drops ended windows and, when that frees less than a batch (a sixteenth of the cap),
    // evicts the least recently updated live ones to make up the batch. Freeing a batch at a
    // time keeps a table that a flood of new keys holds full at O(1) per new key amortised:
    // expiring alone frees a window or two at a time when windows end one by one, and a full
    // scan per new key was the detectors' hotspot. One scan of the compact times finds the
    // cutoff, a second removes: the ended windows, then live ones updated at or before it.
    fn make_room(&mut self, at_ms: i64) {
        let batch = (self.cap.get() / 16).max(1);
        let target = self.cap.get().saturating_sub(batch);
        let window_ms = self.window_ms;
        let ended = move |start: i64| at_ms.saturating_sub(start) >= window_ms;
        self.lasts.clear();
        self.lasts.extend(
            self.times
                .iter()
                .filter(|&&(start, _)| !ended(start))
                .map(|&(_, last)| last),
        );
        // Live windows beyond the target, evicted least recent first.
        let evict = self.lasts.len().saturating_sub(target);
        let cutoff = match evict.checked_sub(1) {
            Some(idx) => *self.lasts.select_nth_unstable(idx).1,
            None => i64::MIN,
        };
        let (mut expired, mut evicted) = (0usize, 0usize);
        let mut doomed = std::mem::take(&mut self.doomed);
        doomed.clear();
        // Removing a window moves only the last one, from above every position still to be
        // looked at, so the positions can be chosen before any is removed.
        for (i, &(start, last)) in self.times.iter().enumerate().rev() {
            if ended(start) {
                expired += 1;
            } else if evicted < evict && last <= cutoff {
                evicted += 1;
            } else {
                continue;
            }
            doomed.push(i);
        }
        self.remove_all(&doomed);
        self.doomed = doomed;
        self.expired += expired as u64;
        self.evicted_full += evicted as u64;
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The key cap.
    pub fn cap(&self) -> usize {
        self.cap.get()
    }

    /// Live windows evicted because the table was full.
    pub fn evicted_full(&self) -> u64 {
        self.evicted_full
    }

    /// Windows dropped because they ended.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// A windowed detector's counters: its own `extra` ones, then this table's evictions and
    /// expiries, which every such detector reports the same way.
    pub fn counters(&self, extra: &[(&'static str, u64)]) -> Vec<DetectorCounter> {
        extra
            .iter()
            .map(|&(name, count)| DetectorCounter { name, count })
            .chain([
                DetectorCounter {
                    name: "evicted_full",
                    count: self.evicted_full,
                },
                DetectorCounter {
                    name: "expired",
                    count: self.expired,
                },
            ])
            .collect()
    }
}

impl<R: Hash + Eq, S: Default> WindowTable<(NameKey, R), S> {
    /// Starts loading the index slot that [`Self::window_named`] for the same key reads
    /// first, changing nothing: a detector's [`super::Detector::prefetch`] calls it so that
    /// on a table larger than the cache the lookup finds its slot arrived.
    pub fn prefetch_named(&self, name: &NameKey, rest: &R) {
        self.index.prefetch(self.hasher.hash_one((name, rest)));
    }

    /// [`Self::window`] for the key (`name`, `rest`), looked up by the borrowed name: only a
    /// new window takes a copy of it (a reference count, whose atomic update would make the
    /// CPU finish every earlier memory access first, on every record).
    pub fn window_named(&mut self, name: &NameKey, rest: R, at_ms: i64) -> &mut Window<S> {
        // A tuple hashes as its fields in turn and a reference as what it points to, so this
        // is the hash of the owned key.
        let hash = self.hasher.hash_one((name, &rest));
        match self.position(hash, |(n, r)| n == name && *r == rest) {
            Some(i) => self.touch(i, at_ms),
            None => self.open(hash, (name.clone(), rest), at_ms),
        }
    }
}

/// The key → position map of a [`WindowTable`]: open addressing with linear probing over one
/// vector of 8-byte slots, each holding the high half of the key's hash and the position
/// (plus one; 0 is empty), at most three quarters full. Hand-written instead of hashbrown's table so a
/// detector can ask for the slot a key's lookup will read before it looks
/// ([`WindowTable::prefetch_named`]): on a full table nearly every lookup of a new key
/// missed the cache there, and hashbrown does not say where a hash's group lies. Removal
/// shifts the following slots back (no tombstones), so probes stay short however many
/// windows come and go.
#[derive(Debug, Default)]
struct PositionIndex {
    slots: Vec<u64>,
    len: usize,
}

impl PositionIndex {
    /// The slot's tag: the hash's high half, whose low bits also pick the home slot.
    fn tag(hash: u64) -> u64 {
        hash >> 32
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn home(&self, tag: u64) -> usize {
        // The tag is 32 bits, so it fits a usize on every platform the crate builds for.
        usize::try_from(tag).unwrap_or(usize::MAX) & self.mask()
    }

    /// Starts loading the slot where a lookup of `hash` begins.
    fn prefetch(&self, hash: u64) {
        if !self.slots.is_empty() {
            prefetch_index::prefetch_index(&self.slots, self.home(Self::tag(hash)));
        }
    }

    /// The position stored for `hash` that `is` accepts.
    fn find(&self, hash: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        self.slot_of(hash, is).map(|(_, at)| at)
    }

    /// The slot and position stored for `hash` that `is` accepts.
    fn slot_of(&self, hash: u64, is: impl Fn(usize) -> bool) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = Self::tag(hash);
        let mask = self.mask();
        let mut i = self.home(tag);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if slot >> 32 == tag {
                let at = (slot & u64::from(u32::MAX)) as usize - 1;
                if is(at) {
                    return Some((i, at));
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds position `at` for `hash` (not already held).
    fn insert(&mut self, hash: u64, at: u32) {
        // At most three quarters full: a lookup of a new key then reads about four slots,
        // mostly in the one line its prefetch asked for.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(Self::tag(hash) << 32 | (u64::from(at) + 1));
        self.len += 1;
    }

    fn place(&mut self, slot: u64) {
        let mask = self.mask();
        let mut i = self.home(slot >> 32);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    // Twice the slots; a slot's home under the wider mask comes from its tag, so the
    // positions' hashes are not needed.
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![0; (old.len() * 2).max(16)];
        for slot in old.into_iter().filter(|&s| s != 0) {
            self.place(slot);
        }
    }

    /// Removes position `at`, stored for `hash`.
    fn remove(&mut self, hash: u64, at: usize) {
        let Some((mut hole, _)) = self.slot_of(hash, |held| held == at) else {
            return;
        };
        let mask = self.mask();
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            // A slot may move back into the hole when the hole lies between its home and it.
            let home = self.home(slot >> 32);
            if i.wrapping_sub(home) & mask >= i.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                hole = i;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
    }

    /// Records that the window stored for `hash` at position `from` is now at `to`.
    fn moved(&mut self, hash: u64, from: usize, to: u32) {
        if let Some((i, _)) = self.slot_of(hash, |held| held == from) {
            self.slots[i] = Self::tag(hash) << 32 | (u64::from(to) + 1);
        }
    }
}

/// Distinct values, counted exactly up to a cap and then saturating (the count stops, nothing
/// more is stored). Thresholds sit far below the cap, so saturation never hides a finding.
#[derive(Debug, Clone)]
pub struct DistinctSet<T> {
    values: HashSet<T, Hasher>,
    saturated: bool,
}

impl<T> Default for DistinctSet<T> {
    fn default() -> Self {
        Self {
            values: HashSet::default(),
            saturated: false,
        }
    }
}

impl<T: Hash + Eq> DistinctSet<T> {
    /// Adds `value` unless `cap` values are already held.
    pub fn insert(&mut self, value: T, cap: usize) {
        if self.values.len() >= cap {
            self.saturated |= !self.values.contains(&value);
            return;
        }
        self.values.insert(value);
    }

    /// Distinct values counted (at most the cap).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether a value was refused because the cap was reached.
    pub fn saturated(&self) -> bool {
        self.saturated
    }
}

/// Instance ids (or other names that key many windows) shared as [`NameKey`]s: one copy per
/// name, hashed once when first seen, so a record for a known name costs one lookup by text
/// and no allocation. The pipeline keeps one set and hands each event's key to every
/// detector. Names no key elsewhere holds any more are dropped whenever the set has doubled
/// since the last sweep, so it stays bounded by the tables that use it.
#[derive(Debug, Default)]
pub struct SharedNames {
    names: HashTable<NameKey>,
    sweep_at: usize,
}

impl SharedNames {
    /// Fewest names held before a sweep is worth its scan.
    const MIN_SWEEP: usize = 1024;

    /// The shared key of `name`, made on first sight.
    pub fn key(&mut self, name: &str) -> &NameKey {
        let hash = name_hash(name);
        // The sweep's test first, so a known name (nearly every record) costs one lookup.
        if self.names.len() >= self.sweep_at.max(Self::MIN_SWEEP)
            && self
                .names
                .find(hash, |held| held.as_str() == name)
                .is_none()
        {
            // Only this set holds them: no window or profile is keyed by them any more.
            self.names.retain(|n| Arc::strong_count(&n.name) > 1);
            self.sweep_at = self.names.len().saturating_mul(2);
        }
        self.names
            .entry(hash, |held| held.as_str() == name, |held| held.hash)
            .or_insert_with(|| NameKey {
                name: Arc::from(name),
                hash,
            })
            .into_mut()
    }

    /// Names held now (some may be unused until the next sweep).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The hasher of names' text: one per process, so the same text has the same hash in every
/// table and every set of shared names (a restored baseline's keys, a test's own set).
fn name_hash(name: &str) -> u64 {
    static HASHER: std::sync::LazyLock<Hasher> = std::sync::LazyLock::new(Hasher::default);
    HASHER.hash_one(name)
}

/// A name (an instance id) as part of a key: the text shared behind an `Arc` with the hash of
/// the text worked out once. It hashes as that stored hash and compares by identity first
/// (the shared copy's address, the usual case), then by text, so a lookup hashes and compares
/// no string when both sides come from one [`SharedNames`], and a key made on its own
/// ([`NameKey::new`], e.g. restored from saved state) still equals the shared one.
#[derive(Debug, Clone)]
pub struct NameKey {
    name: Arc<str>,
    hash: u64,
}

impl NameKey {
    /// A key of its own for `name` (not shared): equal to the shared key of the same text.
    pub fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            hash: name_hash(name),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The hash of the name's text, the same for every key of that text in this process.
    pub fn text_hash(&self) -> u64 {
        self.hash
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.name, &other.name)
            || (self.hash == other.hash && *self.name == *other.name)
    }
}

impl Eq for NameKey {}

impl Hash for NameKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A remote address as part of a window key: the parsed address when it is one (a `Copy`
/// value, no allocation per record), else the text as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoteKey {
    /// A well-formed IPv4 or IPv6 address.
    Addr(std::net::IpAddr),
    /// Anything else an agent wrote.
    Text(Box<str>),
}

impl RemoteKey {
    /// The key for `remote` as an agent wrote it.
    pub fn of(remote: &str) -> Self {
        Self::parsed(super::addr_text::parse(remote), remote)
    }

    /// The key for `text` as an agent wrote it, given its parse (an [`super::EventFacts`]
    /// address), so the text is not parsed again.
    pub fn parsed(addr: Option<std::net::IpAddr>, text: &str) -> Self {
        addr.map_or_else(|| Self::Text(text.into()), Self::Addr)
    }
}

/// Pushes `make()` onto `examples` while fewer than `cap` are held: evidence stays small, and
/// nothing is cloned once it is full.
pub fn keep_example<T>(examples: &mut Vec<T>, cap: usize, make: impl FnOnce() -> T) {
    if examples.len() < cap {
        examples.push(make());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn table(cap: usize, window_ms: i64) -> WindowTable<u32, u64> {
        WindowTable::new(NonZeroUsize::new(cap).expect("cap"), window_ms)
    }

    #[test]
    fn a_key_accumulates_within_its_window_and_starts_over_after_it() {
        let mut t = table(4, 1_000);
        t.window(1, 0).state += 1;
        t.window(1, 999).state += 1;
        assert_eq!(t.window(1, 999).state, 2);
        let w = t.window(1, 1_000);
        assert_eq!((w.state, w.start_ms, w.fired), (0, 1_000, false));
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_updated_key_and_counts_it() {
        let mut t = table(2, 10_000);
        t.window(1, 0).state = 1;
        t.window(2, 5).state = 2;
        t.window(1, 6).state = 3;
        t.window(3, 7).state = 4;
        assert_eq!(t.len(), 2);
        assert_eq!(t.evicted_full(), 1);
        // Key 2 was the least recent, so it starts over; key 1 kept its count.
        assert_eq!(t.window(1, 8).state, 3);
        assert_eq!(t.evicted_full(), 1);
        assert_eq!(t.window(2, 9).state, 0);
        assert_eq!(t.evicted_full(), 2);
    }

    #[test]
    fn a_full_table_drops_ended_windows_before_evicting_live_ones() {
        let mut t = table(2, 100);
        t.window(1, 0);
        t.window(2, 50);
        t.window(3, 120);
        assert_eq!((t.expired(), t.evicted_full()), (1, 0));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn expire_removes_only_ended_windows() {
        let mut t = table(8, 100);
        t.window(1, 0);
        t.window(2, 90);
        assert_eq!(t.expire(150), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.expired(), 1);
    }

    #[test]
    fn shared_names_are_one_copy_and_unused_ones_are_swept() {
        let mut names = SharedNames::default();
        let a = names.key("i-1").clone();
        assert!(Arc::ptr_eq(&a.name, &names.key("i-1").name));
        for i in 0..SharedNames::MIN_SWEEP {
            names.key(&format!("i-x{i}"));
        }
        // The set reached the sweep size on the last of those: the sweep kept only the name
        // still held, then added that last one.
        assert_eq!(names.len(), 2);
        assert!(Arc::ptr_eq(&a.name, &names.key("i-1").name));
        assert_eq!(names.key("i-2").as_str(), "i-2");
    }

    #[test]
    fn name_keys_are_equal_exactly_when_their_names_are() {
        use std::hash::BuildHasher;
        let mut names = SharedNames::default();
        let a = names.key("i-1").clone();
        let again = names.key(&String::from("i-1")).clone();
        let b = names.key("i-2").clone();
        // A key made on its own (as restored state makes them) equals the shared one.
        let own = NameKey::new("i-1");
        assert!(!Arc::ptr_eq(&own.name, &a.name));
        assert_eq!(a, again);
        assert_eq!(a, own);
        assert_ne!(a, b);
        assert_ne!(own, b);
        let h = Hasher::default();
        assert_eq!(h.hash_one(&a), h.hash_one(&again));
        assert_eq!(h.hash_one(&a), h.hash_one(&own));
        assert_eq!(again.as_str(), "i-1");
        let mut t: WindowTable<(NameKey, u32), u64> =
            WindowTable::new(NonZeroUsize::new(4).expect("4"), 1_000);
        t.window((a, 7), 0).state += 1;
        assert_eq!(t.window((again.clone(), 7), 1).state, 1);
        assert_eq!(t.window((own, 7), 1).state, 1);
        // The borrowed lookup finds the same windows as the owned key.
        assert_eq!(t.window_named(&again, 7, 1).state, 1);
        assert_eq!(t.window_named(&b, 7, 2).state, 0);
        t.window_named(&b, 7, 2).state += 5;
        assert_eq!(t.window((b, 7), 2).state, 5);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn making_room_expires_and_evicts_in_one_pass_as_counted() {
        // Cap 16 frees one key per new key: an ended window goes first (expired), else the
        // least recently updated live one (evicted).
        let mut t = table(16, 100);
        for k in 0..16 {
            t.window(k, 50 + k as i64);
        }
        t.window(3, 80);
        t.window(100, 120);
        assert_eq!((t.expired(), t.evicted_full(), t.len()), (0, 1, 16));
        // Key 0 (last updated at 50) went; key 3 (updated at 80) kept its window.
        assert_eq!(t.window(3, 121).start_ms, 53);
        // At 160 the windows opened at 51..=60 (keys 1 to 10) have ended: they are enough room.
        t.window(101, 160);
        assert_eq!((t.expired(), t.evicted_full(), t.len()), (10, 1, 7));
    }

    #[test]
    fn a_full_table_frees_a_batch_when_windows_end_one_at_a_time() {
        let mut t = table(32, 100);
        for k in 0..32 {
            t.window(k, k as i64);
        }
        // One window has ended; a sixteenth of the cap (2) is freed, the other live.
        t.window(100, 100);
        assert_eq!((t.expired(), t.evicted_full()), (1, 1));
        assert_eq!(t.len(), 31);
        // The next new key fits without another scan.
        t.window(101, 101);
        assert_eq!((t.expired(), t.evicted_full(), t.len()), (1, 1, 32));
    }

    #[test]
    fn every_key_finds_its_own_window_after_removals_move_others() {
        // Removing a window moves the last one into its place. Against a plain model of
        // tumbling windows (the cap is never reached, so only expiry removes), every key must
        // keep finding its own window and count: a lost or crossed position would restart a
        // count or show another key's.
        let mut t = table(1_000, 100);
        let mut model: HashMap<u32, (i64, u64)> = HashMap::new();
        for i in 0..5_000i64 {
            let key = u32::try_from(i).expect("small").wrapping_mul(7_919) % 50;
            if i % 7 == 0 {
                t.expire(i);
            }
            let expected = model.entry(key).or_insert((i, 0));
            if i - expected.0 >= 100 {
                *expected = (i, 0);
            }
            expected.1 += 1;
            let w = t.window(key, i);
            w.state += 1;
            assert_eq!((w.start_ms, w.state), *expected, "key {key} at {i}");
        }
        assert!(t.expired() > 100, "{}", t.expired());
    }

    #[test]
    fn the_position_index_finds_every_position_through_collisions_removals_and_growth() {
        // Tags from forty values around 0 (homes at both ends of the slots, so runs wrap), so
        // many entries share a home and every removal must shift a run back correctly.
        let mut index = PositionIndex::default();
        let mut held: Vec<(usize, u64)> = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut fresh = 0usize;
        let check = |index: &PositionIndex, held: &[(usize, u64)], step: i32| {
            assert_eq!(index.len, held.len(), "step {step}");
            for &(at, hash) in held {
                assert_eq!(index.find(hash, |p| p == at), Some(at), "step {step}");
            }
        };
        for step in 0..20_000 {
            let r = next();
            if held.is_empty() || r % 3 != 0 {
                let tag = (next() % 40).wrapping_sub(20) & u64::from(u32::MAX);
                let hash = tag << 32 | (next() & u64::from(u32::MAX));
                index.insert(hash, u32::try_from(fresh).expect("small"));
                held.push((fresh, hash));
                fresh += 1;
            } else if r % 2 == 0 {
                let (at, hash) = held.swap_remove((next() % held.len() as u64) as usize);
                index.remove(hash, at);
                assert_eq!(index.find(hash, |p| p == at), None, "step {step}");
            } else {
                let k = (next() % held.len() as u64) as usize;
                let (at, hash) = held[k];
                index.moved(hash, at, u32::try_from(fresh).expect("small"));
                assert_eq!(index.find(hash, |p| p == at), None, "step {step}");
                held[k] = (fresh, hash);
                fresh += 1;
            }
            if step % 97 == 0 {
                check(&index, &held, step);
            }
        }
        check(&index, &held, -1);
    }

    #[test]
    fn a_distinct_set_counts_repeats_once_and_saturates_at_its_cap() {
        let mut s = DistinctSet::default();
        for v in [1, 2, 2, 3] {
            s.insert(v, 3);
        }
        assert_eq!((s.len(), s.saturated()), (3, false));
        s.insert(3, 3);
        assert!(!s.saturated());
        s.insert(4, 3);
        assert_eq!((s.len(), s.saturated()), (3, true));
    }
}
