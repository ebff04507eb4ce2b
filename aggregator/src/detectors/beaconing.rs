//! `Backdoor:EC2/Beaconing` (Picket's own type): an instance calls one remote at machine-like
//! regular intervals with machine-like regular sizes, as implants checking in with their
//! command-and-control server do.
//!
//! Input: egress TCP/UDP flow summaries to public addresses (by default), keyed by (instance,
//! remote, protocol, port). Each pair keeps fixed-size rings of its latest connection start
//! times and sizes (`max_samples`), so memory per pair is bounded, and at most `max_pairs` pairs
//! are held (when full, the least recently active tenth is evicted and counted). Scores are
//! RITA's ([`super::beacon_score`]), recomputed incrementally as connections arrive and reported
//! as soon as they cross `min_score` — an interim result while the pair is still talking, not
//! after it ends — at most once per `report_every_secs`.
//!
//! What a summary tells: one connection → its start (`first_seen_ms`) and bytes. Several in one
//! interval → only the first start and the last packet, so their starts are spread evenly over
//! that span (exact for a strict beacon, an estimate otherwise) with the mean size each. A
//! summary with no new connection is the agent's interim record of a connection still open: it
//! adds no start, but marks the pair open and is reported in the evidence with how long the
//! connection has lasted.
//!
//! Most remotes are contacted once. A pair is only held from its second sighting: the first
//! leaves its hash in a fixed-size, direct-mapped seen-once filter, so one-off remotes cost a
//! hash and a store instead of an entry (the first connection's start is not scored; a slot
//! overwritten between two sightings just delays the pair).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::FlowSummary;
use serde::Deserialize;

use super::beacon_score::{self, BeaconScore, Scratch};
use super::summary;
use super::window::NameKey;
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Intervals listed in evidence, at most.
const EVIDENCE_INTERVALS: usize = 16;
/// Slots of the seen-once filter (2^18 × 4 bytes = 1 MiB), a power of two.
const SEEN_SLOTS: usize = 1 << 18;

/// `[detectors.beaconing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconingConfig {
    /// Beacon score (0–1) at which a pair is reported.
    #[serde(default = "default_min_score")]
    pub min_score: f64,
    /// Score from which the finding is High rather than Medium.
    #[serde(default = "default_high_score")]
    pub high_score: f64,
    /// Connections a pair must have made before it is scored.
    #[serde(default = "default_min_connections")]
    pub min_connections: NonZeroU32,
    /// Event time between a pair's first and latest connection before it is scored, seconds.
    #[serde(default = "default_min_span_secs")]
    pub min_span_secs: u64,
    /// Connection times and sizes kept per pair (the scoring reservoir).
    #[serde(default = "default_max_samples")]
    pub max_samples: NonZeroUsize,
    /// Pairs kept; beyond this the least recently active tenth is evicted.
    #[serde(default = "default_max_pairs")]
    pub max_pairs: NonZeroUsize,
    /// A pair is reported again at most this often, seconds.
    #[serde(default = "default_report_every_secs")]
    pub report_every_secs: u64,
    /// Remote ports never scored (DNS and NTP are periodic by design).
    #[serde(default = "default_ignore_ports")]
    pub ignore_ports: Vec<u32>,
    /// Score only public remotes (internal monitoring and service meshes beacon by design).
    #[serde(default = "default_public_only")]
    pub public_only: bool,
}

impl Default for BeaconingConfig {
    fn default() -> Self {
        Self {
            min_score: default_min_score(),
            high_score: default_high_score(),
            min_connections: default_min_connections(),
            min_span_secs: default_min_span_secs(),
            max_samples: default_max_samples(),
            max_pairs: default_max_pairs(),
            report_every_secs: default_report_every_secs(),
            ignore_ports: default_ignore_ports(),
            public_only: default_public_only(),
        }
    }
}

impl BeaconingConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        for (key, v) in [
            ("min_score", self.min_score),
            ("high_score", self.high_score),
        ] {
            if !(0.0..=1.0).contains(&v) {
                problems.push(format!(
                    "detectors.beaconing.{key} must be between 0 and 1, got {v}"
                ));
            }
        }
        if self.max_samples.get() < 3 {
            problems.push(format!(
                "detectors.beaconing.max_samples must be at least 3, got {}",
                self.max_samples
            ));
        }
    }
}

// RITA's default reporting threshold.
fn default_min_score() -> f64 {
    0.8
}
fn default_high_score() -> f64 {
    0.95
}
fn default_min_connections() -> NonZeroU32 {
    NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN)
}
// Half an hour: long enough that a burst of retries is not a beacon.
fn default_min_span_secs() -> u64 {
    1_800
}
fn default_max_samples() -> NonZeroUsize {
    NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_pairs() -> NonZeroUsize {
    NonZeroUsize::new(20_000).unwrap_or(NonZeroUsize::MIN)
}
fn default_report_every_secs() -> u64 {
    3_600
}
fn default_ignore_ports() -> Vec<u32> {
    vec![53, 123]
}
fn default_public_only() -> bool {
    true
}

/// (remote, protocol, port) under one instance.
type PairKey = (IpAddr, u32, u32);

/// A pair's key with the instance borrowed, to look a pair up without taking a copy of the
/// instance's shared key (a reference count) on every record; hashes and compares as the
/// owned `(NameKey, PairKey)`.
#[derive(Debug, Hash)]
struct PairRef<'a> {
    name: &'a NameKey,
    key: PairKey,
}

impl hashbrown::Equivalent<(NameKey, PairKey)> for PairRef<'_> {
    fn equivalent(&self, held: &(NameKey, PairKey)) -> bool {
        *self.name == held.0 && self.key == held.1
    }
}

/// The maps' hasher: a fast seeded hash, as the agent's flow table uses, since every egress
/// record is looked up.
type Hasher = foldhash::fast::RandomState;

/// One pair's bounded history.
#[derive(Debug)]
struct Pair {
    /// (connection start, bytes) of the latest connections, oldest first.
    samples: VecDeque<(i64, u64)>,
    connections: u64,
    first_ms: i64,
    last_ms: i64,
    since_score: u32,
    reported_ms: Option<i64>,
    /// Start of the connection the latest interim record continues, when one is open.
    open_since: Option<i64>,
    interim_records: u64,
}

impl Pair {
    // The rings grow on demand up to the cap: most pairs never make more than a few
    // connections, so they should not pay for a full reservoir.
    fn new(at: i64) -> Self {
        Self {
            samples: VecDeque::new(),
            connections: 0,
            first_ms: at,
            last_ms: at,
            since_score: 0,
            reported_ms: None,
            open_since: None,
            interim_records: 0,
        }
    }

    fn push(&mut self, t: i64, size: u64, cap: usize) {
        if self.samples.len() >= cap {
            self.samples.pop_front();
        }
        self.samples.push_back((t, size));
    }

    /// Adds what a summary says; returns whether it brought new connections.
    fn add(&mut self, f: &FlowSummary, cap: usize) -> bool {
        let first = if f.first_seen_ms > 0 {
            f.first_seen_ms
        } else {
            f.interval_start_ms
        };
        let last = summary::flow_time(f).max(first);
        self.first_ms = self.first_ms.min(first);
        self.last_ms = self.last_ms.max(last);
        if f.connections == 0 {
            self.interim_records += 1;
            if self.open_since.is_none() {
                self.open_since = self.samples.back().map(|s| s.0).or(Some(first));
            }
            return false;
        }
        self.open_since = None;
        let n = f.connections;
        self.connections = self.connections.saturating_add(n);
        let size = f.bytes_out.saturating_add(f.bytes_in) / n;
        // Only the newest `cap` starts matter; older ones would be pushed out at once.
        let keep = n.min(cap as u64);
        let step = if n > 1 {
            (last - first) / i64::try_from(n - 1).unwrap_or(i64::MAX)
        } else {
            0
        };
        for i in (n - keep)..n {
            let t = first.saturating_add(step.saturating_mul(i64::try_from(i).unwrap_or(0)));
            self.push(t, size, cap);
        }
        self.since_score = self
            .since_score
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        true
    }
}

/// Scores (instance, remote, port) pairs for beaconing.
#[derive(Debug)]
pub struct BeaconingDetector {
    config: BeaconingConfig,
    // One flat map keyed by the event's shared instance key (compared by identity), looked up
    // borrowed, so a record is one lookup that hashes no string and takes no count.
    pairs: hashbrown::HashMap<(NameKey, PairKey), Pair, Hasher>,
    // Pairs' last activity while making room, kept between calls (no fresh buffer per batch).
    lasts: Vec<i64>,
    held: usize,
    seen: Box<[u32]>,
    hasher: Hasher,
    first_sightings: u64,
    scratch: Scratch,
    evicted: u64,
    scored: u64,
    bad_addresses: u64,
}

impl BeaconingDetector {
    /// A detector with `config`.
    pub fn new(config: BeaconingConfig) -> Self {
        Self {
            config,
            pairs: hashbrown::HashMap::default(),
            lasts: Vec::new(),
            held: 0,
            seen: vec![0; SEEN_SLOTS].into_boxed_slice(),
            hasher: Hasher::default(),
            first_sightings: 0,
            scratch: Scratch::default(),
            evicted: 0,
            scored: 0,
            bad_addresses: 0,
        }
    }

    /// Whether `f` is a flow this detector scores, as far as its fields tell (the remote is
    /// checked after).
    fn scores(&self, f: &FlowSummary) -> bool {
        summary::direction(f) == ConnectionDirection::Outbound
            && matches!(f.protocol, 6 | 17)
            && f.service_port != 0
            && !self.config.ignore_ports.contains(&f.service_port)
    }

    /// The seen-once filter's slot for the pair `key` of `instance`, and the fingerprint the
    /// pair leaves there (an associated function, so it can run while the pair map is
    /// borrowed).
    fn seen_slot(hasher: &Hasher, instance: &NameKey, key: PairKey) -> (usize, u32) {
        // By the hash of the name's text, not the shared copy: the filter must recognise a
        // pair across a sweep of unused names.
        let h = hasher.hash_one((instance.text_hash(), key));
        // The low bits pick the slot, the high half is the fingerprint kept in it: 32 bits
        // halve the filter (1 MiB) against a 2^-32 chance that a pair's first sighting
        // matches another's fingerprint. Never 0, so an empty slot cannot match.
        let slot = usize::try_from(h).unwrap_or(0) & (SEEN_SLOTS - 1);
        let fingerprint = u32::try_from(h >> 32).unwrap_or(u32::MAX) | 1;
        (slot, fingerprint)
    }

    /// Evicts the least recently active tenth of the pairs: one pass per `max_pairs / 10`
    /// new pairs, so a flood of new remotes costs O(1) per pair, amortised.
    fn make_room(&mut self) {
        self.lasts.clear();
        self.lasts.extend(self.pairs.values().map(|p| p.last_ms));
        let drop = (self.lasts.len() / 10).max(1);
        let Some(idx) = drop.checked_sub(1) else {
            return;
        };
        if idx >= self.lasts.len() {
            return;
        }
        let (_, cutoff, _) = self.lasts.select_nth_unstable(idx);
        let cutoff = *cutoff;
        let mut removed = 0usize;
        self.pairs.retain(|_, p| {
            let keep = p.last_ms > cutoff || removed >= drop;
            if !keep {
                removed += 1;
            }
            keep
        });
        self.held -= removed;
        self.evicted += removed as u64;
    }
}

/// The evidence of a reported pair: the thresholds, the scores, intervals and counts.
fn evidence(
    config: &BeaconingConfig,
    score: &BeaconScore,
    pair: &Pair,
    f: &FlowSummary,
    intervals: &[f64],
) -> BehaviourEvidence {
    let recent: Vec<f64> = intervals.iter().take(EVIDENCE_INTERVALS).copied().collect();
    let open_for = pair
        .open_since
        .map(|s| pair.last_ms.saturating_sub(s) as f64 / 1000.0);
    let details = serde_json::json!({
        "scores": score,
        "connections": pair.connections,
        "spanSecs": pair.last_ms.saturating_sub(pair.first_ms) as f64 / 1000.0,
        "sortedIntervalsSecs": recent,
        "open": open_for.is_some(),
        "openForSecs": open_for,
        "interimRecords": pair.interim_records,
    });
    BehaviourEvidence {
        detector: "beaconing".to_owned(),
        window_ms: pair.last_ms.saturating_sub(pair.first_ms),
        thresholds: vec![
            ThresholdCrossed {
                key: "detectors.beaconing.min_score".into(),
                limit: config.min_score,
                observed: score.score,
            },
            ThresholdCrossed {
                key: "detectors.beaconing.min_connections".into(),
                limit: f64::from(config.min_connections.get()),
                observed: pair.connections as f64,
            },
            ThresholdCrossed {
                key: "detectors.beaconing.min_span_secs".into(),
                limit: config.min_span_secs as f64,
                observed: pair.last_ms.saturating_sub(pair.first_ms) as f64 / 1000.0,
            },
        ],
        example_names: Vec::new(),
        flows: vec![f.clone()],
        dns: Vec::new(),
        note: Some(details.to_string()),
    }
}

impl Detector for BeaconingDetector {
    fn name(&self) -> &'static str {
        "beaconing"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn prefetch_inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    // Most scored flows are a pair's first sighting, whose one read of the seen-once filter
    // (1 MiB, far larger than the share of the cache it keeps) was most of this detector's
    // time: started here, it arrives while the detectors before this one work.
    fn prefetch(&self, event: &Event, facts: &EventFacts<'_>) {
        let (Some((_, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if !self.scores(f) {
            return;
        }
        let Some(remote) = facts.remote() else {
            return;
        };
        if self.config.public_only && !remote.public {
            return;
        }
        let (slot, _) =
            Self::seen_slot(&self.hasher, name, (remote.ip, f.protocol, f.service_port));
        prefetch_index::prefetch_index(&self.seen, slot);
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if !self.scores(f) {
            return;
        }
        let Some(remote) = facts.remote() else {
            self.bad_addresses += 1;
            return;
        };
        if self.config.public_only && !remote.public {
            return;
        }
        let key = (remote.ip, f.protocol, f.service_port);
        let cap = self.config.max_samples.get();
        let at = summary::flow_time(f);
        // One lookup whether the pair is held or not.
        let pair = match self.pairs.entry_ref(&PairRef { name, key }) {
            hashbrown::hash_map::EntryRef::Occupied(held) => held.into_mut(),
            hashbrown::hash_map::EntryRef::Vacant(new) => {
                let (slot, fingerprint) = Self::seen_slot(&self.hasher, name, key);
                if let Some(s) = self.seen.get_mut(slot) {
                    if *s != fingerprint {
                        *s = fingerprint;
                        self.first_sightings += 1;
                        return;
                    }
                    *s = 0;
                }
                self.held += 1;
                if self.held > self.config.max_pairs.get() {
                    self.make_room();
                    self.pairs
                        .entry((name.clone(), key))
                        .or_insert_with(|| Pair::new(at))
                } else {
                    new.insert_with_key((name.clone(), key), Pair::new(at))
                }
            }
        };
        let new_connections = pair.add(f, cap);
        let config = &self.config;
        let min_conns = u64::from(config.min_connections.get());
        let span_ms = pair.last_ms.saturating_sub(pair.first_ms);
        let min_span_ms =
            i64::try_from(config.min_span_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let report_every_ms =
            i64::try_from(config.report_every_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let due = pair
            .reported_ms
            .is_none_or(|r| at.saturating_sub(r) >= report_every_ms);
        // Rescore only when enough has changed: a few new connections, or an interim record.
        let changed = pair.since_score >= 4 || !new_connections;
        if pair.connections < min_conns || span_ms < min_span_ms || !due || !changed {
            return;
        }
        pair.since_score = 0;
        self.scored += 1;
        let Some(score) = beacon_score::score(
            pair.samples.iter().map(|s| s.0),
            pair.samples.iter().map(|s| s.1),
            &mut self.scratch,
        ) else {
            return;
        };
        if score.score < config.min_score {
            return;
        }
        pair.reported_ms = Some(at);
        let severity = (score.score >= config.high_score).then_some(8.0);
        let evidence = evidence(config, &score, pair, f, self.scratch.intervals());
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::BackdoorBeaconing,
                source,
                local_addr: &f.local_addr,
                role: ResourceRole::Actor,
                activity: summary::network_activity(f),
                at_ms: at,
                severity,
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn tracked_keys(&self) -> usize {
        self.held
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "evicted_pairs",
                count: self.evicted,
            },
            DetectorCounter {
                name: "first_sightings",
                count: self.first_sightings,
            },
            DetectorCounter {
                name: "scored",
                count: self.scored,
            },
            DetectorCounter {
                name: "bad_remote_address",
                count: self.bad_addresses,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::EvidenceDetail;
    use crate::detectors::testing::{T0, counter, flow, flow_event, run};

    /// One summary per connection: `n` connections to `remote` whose starts follow `gaps`.
    fn series(
        local: &str,
        remote: &str,
        n: i64,
        gap: impl Fn(i64) -> i64,
        size: impl Fn(i64) -> u64,
    ) -> Vec<Event> {
        let mut t = T0;
        (0..n)
            .map(|i| {
                t += gap(i);
                let mut f = flow(true, local, remote, 6, 443, t + 400);
                f.first_seen_ms = t;
                f.bytes_out = size(i);
                f.bytes_in = 0;
                flow_event(f)
            })
            .collect()
    }

    fn jittered(i: i64) -> i64 {
        60_000 - (i * 7_919 % 12_000)
    }

    #[test]
    fn a_jittered_one_minute_beacon_is_reported_with_its_scores_ipv4_and_ipv6() {
        for (local, remote) in [
            ("10.0.0.5", "198.51.100.7"),
            ("2001:db8::5", "2001:db8:9::7"),
        ] {
            let mut d = BeaconingDetector::new(BeaconingConfig::default());
            let out = run(
                &mut d,
                series(local, remote, 90, jittered, |i| 600 + (i as u64 % 7)),
            );
            assert_eq!(
                out.len(),
                1,
                "{remote}: reported once per report_every_secs"
            );
            assert_eq!(out[0].finding_type, FindingType::BackdoorBeaconing);
            assert_eq!(out[0].activity.remote(), remote);
            let EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
                panic!("behaviour evidence");
            };
            let note: serde_json::Value =
                serde_json::from_str(ev.note.as_deref().unwrap_or("")).expect("JSON note");
            assert!(
                note["scores"]["score"].as_f64().is_some_and(|s| s >= 0.8),
                "{note}"
            );
            assert!(
                note["sortedIntervalsSecs"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            );
            assert!(note["connections"].as_u64().is_some_and(|c| c >= 20));
        }
    }

    #[test]
    fn irregular_short_or_private_series_are_not_beacons() {
        let mut d = BeaconingDetector::new(BeaconingConfig::default());
        let human_gap = |i: i64| {
            [2_000, 45_000, 900_000, 7_000, 3_600_000, 120_000][i as usize % 6] + i * 1_000
        };
        let human_size =
            |i: i64| [300u64, 2_000_000, 45_000, 900, 8_000_000, 12_000][i as usize % 6];
        assert!(
            run(
                &mut d,
                series("10.0.0.5", "198.51.100.7", 90, human_gap, human_size)
            )
            .is_empty()
        );
        // Regular, but only 25 minutes of it.
        assert!(
            run(
                &mut d,
                series("2001:db8::5", "2001:db8:9::7", 25, |_| 60_000, |_| 600)
            )
            .is_empty()
        );
        // Regular, but to a private address.
        assert!(
            run(
                &mut d,
                series("10.0.0.5", "10.0.9.9", 90, |_| 60_000, |_| 600)
            )
            .is_empty()
        );
    }

    #[test]
    fn several_connections_in_one_summary_are_spread_over_its_span() {
        // A 10 s beacon: six connections in each one-minute summary.
        let mut d = BeaconingDetector::new(BeaconingConfig::default());
        let events = (0..40).map(|i| {
            let start = T0 + i * 60_000;
            let mut f = flow(true, "10.0.0.5", "203.0.113.20", 6, 8443, start + 50_000);
            f.first_seen_ms = start;
            f.connections = 6;
            f.bytes_out = 6 * 400;
            f.bytes_in = 0;
            flow_event(f)
        });
        let out = run(&mut d, events);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].severity, Some(8.0), "a strict beacon is High");
    }

    #[test]
    fn an_interim_record_of_an_open_connection_adds_no_start_and_is_reported_as_open() {
        let mut d = BeaconingDetector::new(BeaconingConfig {
            report_every_secs: 0,
            ..BeaconingConfig::default()
        });
        let mut events = series("10.0.0.5", "198.51.100.7", 40, |_| 60_000, |_| 500);
        let mut interim = flow(
            true,
            "10.0.0.5",
            "198.51.100.7",
            6,
            443,
            T0 + 41 * 60_000 + 30_000,
        );
        interim.connections = 0;
        interim.first_seen_ms = T0 + 41 * 60_000;
        events.push(flow_event(interim));
        let out = run(&mut d, events);
        let last = out.last().expect("reported");
        let EvidenceDetail::Behaviour(ev) = &last.evidence else {
            panic!("behaviour evidence");
        };
        let note: serde_json::Value =
            serde_json::from_str(ev.note.as_deref().unwrap_or("")).expect("JSON note");
        assert_eq!(note["open"], serde_json::Value::Bool(true), "{note}");
        // The first connection only marked the pair as seen.
        assert_eq!(note["connections"].as_u64(), Some(39));
        assert_eq!(note["interimRecords"].as_u64(), Some(1));
    }

    #[test]
    fn thresholds_from_config_are_honoured() {
        let strict = BeaconingConfig {
            min_connections: NonZeroU32::new(200).expect("200"),
            ..BeaconingConfig::default()
        };
        let mut d = BeaconingDetector::new(strict);
        assert!(
            run(
                &mut d,
                series("10.0.0.5", "198.51.100.7", 90, jittered, |_| 600)
            )
            .is_empty()
        );
        let ignored = BeaconingConfig {
            ignore_ports: vec![443],
            ..BeaconingConfig::default()
        };
        let mut d = BeaconingDetector::new(ignored);
        assert!(
            run(
                &mut d,
                series("10.0.0.5", "198.51.100.7", 90, jittered, |_| 600)
            )
            .is_empty()
        );
    }

    #[test]
    fn netdet_sections_parse_from_toml_and_bad_values_are_named() {
        let c: crate::detectors::DetectorsConfig = toml::from_str(
            "[detectors.beaconing]\nmin_score = 1.5\nmax_samples = 2\n\
             [detectors.traffic_volume_unusual]\nalpha = 0.0\n\
             [detectors.network_port_unusual]\nephemeral_port_floor = 80\n\
             [detectors.tor]\nmin_inbound_nodes = 4\n[detectors.spambot]\nmin_remotes = 3\n",
        )
        .map(
            |w: std::collections::HashMap<String, crate::detectors::DetectorsConfig>| {
                w.into_values().next().unwrap_or_default()
            },
        )
        .expect("parses");
        assert_eq!(c.tor.min_inbound_nodes.get(), 4);
        assert_eq!(c.spambot.min_remotes.get(), 3);
        let problems = c.problems().join("\n");
        for key in [
            "detectors.beaconing.min_score",
            "detectors.beaconing.max_samples",
            "detectors.traffic_volume_unusual.alpha",
            "detectors.network_port_unusual.ephemeral_port_floor",
        ] {
            assert!(problems.contains(key), "{key} not in {problems}");
        }
        let unknown =
            toml::from_str::<crate::detectors::DetectorsConfig>("[beaconing]\nmin_scroe = 0.5\n");
        assert!(unknown.is_err_and(|e| e.to_string().contains("min_scroe")));
    }

    #[test]
    fn pairs_stay_within_their_cap_and_evictions_are_counted() {
        let mut d = BeaconingDetector::new(BeaconingConfig {
            max_pairs: NonZeroUsize::new(10).expect("10"),
            ..BeaconingConfig::default()
        });
        let once = (0..100).map(|i| {
            flow_event(flow(
                true,
                "10.0.0.5",
                &format!("198.51.100.{i}"),
                6,
                443,
                T0 + i,
            ))
        });
        run(&mut d, once);
        assert_eq!(d.tracked_keys(), 0, "a remote seen once is not held");
        assert_eq!(counter(&d, "first_sightings"), Some(100));
        let twice = (0..100).flat_map(|i| {
            let remote = format!("2001:db8:9::{i:x}");
            [
                flow_event(flow(true, "2001:db8::5", &remote, 6, 443, T0 + i)),
                flow_event(flow(true, "2001:db8::5", &remote, 6, 443, T0 + i + 1)),
            ]
        });
        run(&mut d, twice);
        assert!(d.tracked_keys() <= 10, "{}", d.tracked_keys());
        assert!(counter(&d, "evicted_pairs").is_some_and(|n| n >= 90));
    }
}
