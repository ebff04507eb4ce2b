//! Per-instance baselines shared by the baseline detectors (unusual port, traffic volume,
//! spambot, unusual DNS resolver): a [`Baselines`] table of one [`Profile`] per instance with a
//! learning period, and a [`RecentSet`] of what an instance has used.
//!
//! Bounds: at most `max_instances` profiles (the least recently seen instance is evicted and
//! relearns) and at most `max_entries` values per profile (the least recently used value is
//! forgotten); both evictions are counted. Learning runs in event time, so `analyze` and `serve`
//! agree. State is saved as versioned JSON through [`Baselines::save`] / [`Baselines::restore`],
//! which is what a detector's `save_state`/`restore_state` hand to the findings store.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroUsize;

use serde::de::DeserializeOwned;

use super::window::NameKey;
use serde::{Deserialize, Serialize};

/// The maps' hasher: keys are instance ids and addresses, hashed on every record, so a fast
/// seeded hash (as the agent's flow table uses) rather than SipHash.
type Hasher = foldhash::fast::RandomState;

/// Version of the saved encoding; a different one is refused (the detector relearns).
const STATE_VERSION: u32 = 1;

/// When a profile has learned enough to judge new activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learning {
    /// Event time a profile must span, in ms (0: no time condition).
    pub period_ms: i64,
    /// Observations a profile must have counted (0: no count condition).
    pub min_observations: u64,
}

impl Learning {
    /// From the `learning_secs` / `min_observations` keys every baseline section has.
    pub fn new(learning_secs: u64, min_observations: u64) -> Self {
        Self {
            period_ms: i64::try_from(learning_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            min_observations,
        }
    }
}

/// One instance's baseline: when it was first and last seen, how much was counted, and the
/// detector's own data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile<P> {
    /// Event time of the first observation (ms since the epoch).
    pub first_ms: i64,
    /// Event time of the latest observation.
    pub last_ms: i64,
    /// Observations counted.
    pub observations: u64,
    /// The detector's learned data.
    pub data: P,
}

impl<P> Profile<P> {
    /// Whether the learning period is over: the profile spans the period and has the count.
    pub fn learned(&self, learning: Learning) -> bool {
        self.last_ms.saturating_sub(self.first_ms) >= learning.period_ms
            && self.observations >= learning.min_observations
    }

    /// Event time the profile has spanned so far, in seconds (for evidence).
    pub fn age_secs(&self) -> f64 {
        self.last_ms.saturating_sub(self.first_ms) as f64 / 1000.0
    }
}

/// Profiles per instance id, at most `cap`.
#[derive(Debug)]
pub struct Baselines<P> {
    // Keyed by the event's shared instance key ([`super::EventFacts::instance`]), which
    // hashes and compares no string; hashbrown's map for `entry_ref`, so a known instance
    // (nearly every record) is one lookup by the borrowed key and only a new one copies it.
    profiles: hashbrown::HashMap<NameKey, Profile<P>, Hasher>,
    cap: NonZeroUsize,
    evicted: u64,
}

#[derive(Serialize, Deserialize)]
struct Saved<P> {
    version: u32,
    profiles: Vec<(String, Profile<P>)>,
}

impl<P: Default + Serialize + DeserializeOwned> Baselines<P> {
    /// A table of at most `cap` instances.
    pub fn new(cap: NonZeroUsize) -> Self {
        Self {
            profiles: hashbrown::HashMap::default(),
            cap,
            evicted: 0,
        }
    }

    /// The profile of `instance`, updated to `at_ms` and counting one observation; made (after
    /// evicting the least recently seen instance when full) if new. Allocates only for a new
    /// instance.
    pub fn observe(&mut self, instance: &NameKey, at_ms: i64) -> &mut Profile<P> {
        if self.profiles.len() >= self.cap.get() && !self.profiles.contains_key(instance) {
            self.evict_least_recent();
        }
        let p = self
            .profiles
            .entry_ref(instance)
            .or_insert_with(|| Profile {
                first_ms: at_ms,
                last_ms: at_ms,
                observations: 0,
                data: P::default(),
            });
        p.first_ms = p.first_ms.min(at_ms);
        p.last_ms = p.last_ms.max(at_ms);
        p.observations = p.observations.saturating_add(1);
        p
    }

    /// The profile of `instance`, if held.
    pub fn get(&self, instance: &NameKey) -> Option<&Profile<P>> {
        self.profiles.get(instance)
    }

    // A linear scan, but only when a new instance arrives at a full table.
    fn evict_least_recent(&mut self) {
        let oldest = self
            .profiles
            .iter()
            .min_by_key(|(_, p)| p.last_ms)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.profiles.remove(&k);
            self.evicted += 1;
        }
    }

    /// The profile of `instance` to change, if held.
    pub fn get_mut(&mut self, instance: &NameKey) -> Option<&mut Profile<P>> {
        self.profiles.get_mut(instance)
    }

    /// Instances held now.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether no instance is held.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// Instances evicted because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Every profile, encoded for the findings store.
    pub fn save(&self) -> Option<Vec<u8>>
    where
        P: Clone,
    {
        let saved = Saved {
            version: STATE_VERSION,
            profiles: self
                .profiles
                .iter()
                .map(|(k, p)| (k.as_str().to_owned(), p.clone()))
                .collect(),
        };
        serde_json::to_vec(&saved).ok()
    }

    /// Replaces the profiles with what [`Self::save`] wrote, keeping the `cap` most recently
    /// seen if there are more.
    ///
    /// # Errors
    /// A message saying why the bytes were refused (not JSON of this shape, other version);
    /// the table is then left as it was.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let saved: Saved<P> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a saved baseline: {e}"))?;
        if saved.version != STATE_VERSION {
            return Err(format!(
                "saved baseline version {} is not {STATE_VERSION}",
                saved.version
            ));
        }
        let mut profiles = saved.profiles;
        if profiles.len() > self.cap.get() {
            profiles.sort_by_key(|(_, p)| std::cmp::Reverse(p.last_ms));
            let dropped = profiles.len() - self.cap.get();
            profiles.truncate(self.cap.get());
            self.evicted += dropped as u64;
        }
        // Keys of their own, equal by text to the shared ones the events will bring.
        self.profiles = profiles
            .into_iter()
            .map(|(k, p)| (NameKey::new(&k), p))
            .collect();
        Ok(())
    }
}

/// What [`RecentSet::use_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// The value was not held before.
    pub new: bool,
    /// An older value was forgotten to make room.
    pub forgot: bool,
}

/// Values an instance has used, each with the event time it was last used, at most a cap; the
/// least recently used value is forgotten first. Saved as a list of pairs so any key type
/// (ports, addresses) encodes the same way.
#[derive(Debug, Clone)]
pub struct RecentSet<K> {
    used: HashMap<K, i64, Hasher>,
}

impl<K> Default for RecentSet<K> {
    fn default() -> Self {
        Self {
            used: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> RecentSet<K> {
    /// Whether `key` is held.
    pub fn contains(&self, key: &K) -> bool {
        self.used.contains_key(key)
    }

    /// Marks `key` used at `at_ms`, adding it if new; returns whether an older value had to be
    /// forgotten to stay within `cap`.
    pub fn touch(&mut self, key: &K, at_ms: i64, cap: usize) -> bool {
        self.use_key(key, at_ms, cap).forgot
    }

    /// [`Self::touch`], also saying whether `key` was new: one lookup for a known value where
    /// [`Self::contains`] then [`Self::touch`] take two.
    pub fn use_key(&mut self, key: &K, at_ms: i64, cap: usize) -> Used {
        if let Some(t) = self.used.get_mut(key) {
            *t = (*t).max(at_ms);
            return Used {
                new: false,
                forgot: false,
            };
        }
        let mut evicted = false;
        if self.used.len() >= cap.max(1) {
            let oldest = self
                .used
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.used.remove(&k);
                evicted = true;
            }
        }
        self.used.insert(key.clone(), at_ms);
        Used {
            new: true,
            forgot: evicted,
        }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

impl<K: Serialize> Serialize for RecentSet<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.used.iter())
    }
}

impl<'de, K: Deserialize<'de> + Hash + Eq> Deserialize<'de> for RecentSet<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(K, i64)>::deserialize(d)?;
        Ok(Self {
            used: pairs.into_iter().collect(),
        })
    }
}

/// Default cap on instances a baseline detector keeps: a large fleet, a few MB per detector.
pub fn default_max_instances() -> NonZeroUsize {
    NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN)
}

/// Default learning period: one day, long enough to see a daily cycle of jobs.
pub fn default_learning_secs() -> u64 {
    86_400
}

/// Default observations a profile needs besides its learning period.
pub fn default_min_observations() -> u64 {
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cap: usize) -> Baselines<RecentSet<u32>> {
        Baselines::new(NonZeroUsize::new(cap).expect("cap"))
    }

    #[test]
    fn a_profile_is_learned_only_after_both_the_period_and_the_count() {
        let learning = Learning::new(10, 3);
        let mut b = table(4);
        b.observe(&NameKey::new("i-1"), 0);
        b.observe(&NameKey::new("i-1"), 11_000);
        assert!(!b.get(&NameKey::new("i-1")).expect("held").learned(learning));
        b.observe(&NameKey::new("i-1"), 11_000);
        assert!(b.get(&NameKey::new("i-1")).expect("held").learned(learning));
        b.observe(&NameKey::new("i-2"), 0);
        for _ in 0..5 {
            b.observe(&NameKey::new("i-2"), 5_000);
        }
        assert!(!b.get(&NameKey::new("i-2")).expect("held").learned(learning));
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_seen_instance_and_counts_it() {
        let mut b = table(2);
        b.observe(&NameKey::new("i-1"), 0);
        b.observe(&NameKey::new("i-2"), 10);
        b.observe(&NameKey::new("i-1"), 20);
        b.observe(&NameKey::new("i-3"), 30);
        assert_eq!((b.len(), b.evicted()), (2, 1));
        assert!(b.get(&NameKey::new("i-2")).is_none());
        assert!(b.get(&NameKey::new("i-1")).is_some());
    }

    #[test]
    fn a_recent_set_forgets_its_least_recently_used_value_at_its_cap() {
        let mut s = RecentSet::default();
        assert!(!s.touch(&1u32, 0, 2));
        assert!(!s.touch(&2, 5, 2));
        assert!(!s.touch(&1, 10, 2));
        assert!(s.touch(&3, 11, 2));
        assert!(s.contains(&1) && s.contains(&3) && !s.contains(&2));
    }

    #[test]
    fn using_a_value_says_whether_it_was_new_and_whether_one_was_forgotten() {
        let mut s = RecentSet::default();
        assert_eq!(
            s.use_key(&1u32, 0, 2),
            Used {
                new: true,
                forgot: false
            }
        );
        assert_eq!(
            s.use_key(&1, 5, 2),
            Used {
                new: false,
                forgot: false
            }
        );
        s.use_key(&2, 6, 2);
        assert_eq!(
            s.use_key(&3, 7, 2),
            Used {
                new: true,
                forgot: true
            }
        );
        assert!(!s.contains(&1) && s.contains(&2) && s.contains(&3));
    }

    #[test]
    fn saved_profiles_restore_and_bad_bytes_are_refused_leaving_the_table_alone() {
        let mut b = table(4);
        b.observe(&NameKey::new("i-1"), 0).data.touch(&443, 0, 8);
        b.observe(&NameKey::new("i-2"), 5).data.touch(&22, 5, 8);
        let bytes = b.save().expect("encodes");
        let mut fresh = table(4);
        fresh.restore(&bytes).expect("restores");
        assert_eq!(fresh.len(), 2);
        assert!(
            fresh
                .get(&NameKey::new("i-1"))
                .expect("i-1")
                .data
                .contains(&443)
        );
        assert!(fresh.restore(b"{\"version\":7,\"profiles\":[]}").is_err());
        assert!(fresh.restore(b"garbage").is_err());
        assert_eq!(fresh.len(), 2);
        let mut small = table(1);
        small.restore(&bytes).expect("restores");
        assert_eq!((small.len(), small.evicted()), (1, 1));
        assert!(
            small.get(&NameKey::new("i-2")).is_some(),
            "the most recent instance is kept"
        );
    }
}
