//! `Behavior:EC2/TrafficVolumeUnusual`: the instance sends a remote far more than it usually
//! sends anyone.
//!
//! Input: egress flow summaries. Each instance keeps an exponentially weighted mean and mean
//! absolute deviation of the bytes it sends per summary (one remote, port and interval). Once
//! its learning period is over, a summary above both `mean + deviations × spread` and the
//! absolute floor `min_bytes` is reported; the floor keeps small hosts, whose spread is tiny,
//! from firing on an ordinary download. The spread is at least a tenth of the mean, so a host
//! with perfectly steady traffic needs at least double its usual volume. Values are folded into
//! the baseline clipped at the threshold, so one burst cannot teach the baseline that bursts
//! are normal, while a lasting change in volume still moves it.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use super::baseline::{self, Baselines, Learning};
use super::summary;
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// `[detectors.traffic_volume_unusual]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficVolumeUnusualConfig {
    /// Event time an instance learns its volumes before outliers are reported, in seconds.
    #[serde(default = "baseline::default_learning_secs")]
    pub learning_secs: u64,
    /// Egress summaries an instance must have shown before outliers are reported.
    #[serde(default = "baseline::default_min_observations")]
    pub min_observations: u64,
    /// How many spreads above the mean a summary must be.
    #[serde(default = "default_deviations")]
    pub deviations: f64,
    /// Bytes a summary must carry out, whatever the baseline (so small hosts do not fire).
    #[serde(default = "default_min_bytes")]
    pub min_bytes: u64,
    /// Weight of each new summary in the moving mean and spread (0 < alpha ≤ 1).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Instances kept; the least recently seen is evicted (and relearns) beyond this.
    #[serde(default = "baseline::default_max_instances")]
    pub max_instances: NonZeroUsize,
}

impl Default for TrafficVolumeUnusualConfig {
    fn default() -> Self {
        Self {
            learning_secs: baseline::default_learning_secs(),
            min_observations: baseline::default_min_observations(),
            deviations: default_deviations(),
            min_bytes: default_min_bytes(),
            alpha: default_alpha(),
            max_instances: baseline::default_max_instances(),
        }
    }
}

impl TrafficVolumeUnusualConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(self.deviations.is_finite() && self.deviations > 0.0) {
            problems.push(format!(
                "detectors.traffic_volume_unusual.deviations must be a positive number, got {}",
                self.deviations
            ));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            problems.push(format!(
                "detectors.traffic_volume_unusual.alpha must be in (0, 1], got {}",
                self.alpha
            ));
        }
    }
}

fn default_deviations() -> f64 {
    10.0
}
// 64 MiB in one summary interval (a minute by default) is about 9 Mbit/s sustained to one remote.
fn default_min_bytes() -> u64 {
    64 << 20
}
// About the last hundred summaries dominate the mean.
fn default_alpha() -> f64 {
    0.02
}

/// The moving statistics of one instance's per-summary egress bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Volume {
    mean: f64,
    spread: f64,
    samples: u64,
}

impl Volume {
    fn threshold(&self, deviations: f64) -> f64 {
        self.mean + deviations * self.spread.max(self.mean / 10.0)
    }

    fn fold(&mut self, x: f64, alpha: f64) {
        if self.samples == 0 {
            self.mean = x;
            self.spread = 0.0;
        } else {
            let dev = (x - self.mean).abs();
            self.mean += alpha * (x - self.mean);
            self.spread += alpha * (dev - self.spread);
        }
        self.samples = self.samples.saturating_add(1);
    }
}

/// Keeps each instance's volume baseline and reports outliers.
#[derive(Debug)]
pub struct TrafficVolumeUnusualDetector {
    config: TrafficVolumeUnusualConfig,
    learning: Learning,
    baselines: Baselines<Volume>,
    reported: u64,
}

impl TrafficVolumeUnusualDetector {
    /// A detector with `config`.
    pub fn new(config: TrafficVolumeUnusualConfig) -> Self {
        Self {
            learning: Learning::new(config.learning_secs, config.min_observations),
            baselines: Baselines::new(config.max_instances),
            config,
            reported: 0,
        }
    }
}

impl Detector for TrafficVolumeUnusualDetector {
    fn name(&self) -> &'static str {
        "traffic_volume_unusual"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if summary::direction(f) != ConnectionDirection::Outbound || f.bytes_out == 0 {
            return;
        }
        let at = summary::flow_time(f);
        let learning = self.learning;
        let (deviations, alpha) = (self.config.deviations, self.config.alpha);
        let profile = self.baselines.observe(name, at);
        let learned = profile.learned(learning);
        let before = profile.data;
        let threshold = before.threshold(deviations);
        let x = f.bytes_out as f64;
        let outlier = learned && x > threshold && f.bytes_out >= self.config.min_bytes;
        let age = profile.age_secs();
        let folded = if learned { x.min(threshold) } else { x };
        profile.data.fold(folded, alpha);
        if !outlier {
            return;
        }
        self.reported += 1;
        let evidence = BehaviourEvidence {
            detector: "traffic_volume_unusual".to_owned(),
            window_ms: f.interval_end_ms.saturating_sub(f.interval_start_ms),
            thresholds: vec![
                ThresholdCrossed {
                    key: "detectors.traffic_volume_unusual.deviations".into(),
                    limit: threshold,
                    observed: x,
                },
                ThresholdCrossed {
                    key: "detectors.traffic_volume_unusual.min_bytes".into(),
                    limit: self.config.min_bytes as f64,
                    observed: x,
                },
            ],
            example_names: Vec::new(),
            flows: vec![f.clone()],
            dns: Vec::new(),
            note: Some(format!(
                "baseline over {age:.0} s and {} summaries: mean {:.0} bytes, spread {:.0} \
                 bytes per summary; this summary sent {} bytes ({:.1}× the mean)",
                before.samples,
                before.mean,
                before.spread,
                f.bytes_out,
                if before.mean > 0.0 {
                    x / before.mean
                } else {
                    0.0
                },
            )),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::BehaviorTrafficVolumeUnusual,
                source,
                local_addr: &f.local_addr,
                role: ResourceRole::Actor,
                activity: summary::network_activity(f),
                at_ms: at,
                severity: None,
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn tracked_keys(&self) -> usize {
        self.baselines.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "evicted_instances",
                count: self.baselines.evicted(),
            },
            DetectorCounter {
                name: "reported",
                count: self.reported,
            },
        ]
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        self.baselines.save()
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.baselines.restore(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, flow, flow_event, run};

    const MIB: u64 = 1 << 20;

    fn config() -> TrafficVolumeUnusualConfig {
        TrafficVolumeUnusualConfig {
            learning_secs: 3_600,
            min_observations: 20,
            ..TrafficVolumeUnusualConfig::default()
        }
    }

    fn sent(local: &str, remote: &str, bytes: u64, at: i64) -> Event {
        let mut f = flow(true, local, remote, 6, 443, at);
        f.bytes_out = bytes;
        flow_event(f)
    }

    /// Two hours of 1–3 MiB summaries.
    fn learn(d: &mut TrafficVolumeUnusualDetector, local: &str, remote: &str) {
        let events =
            (0..120).map(|i| sent(local, remote, (1 + (i as u64 % 3)) * MIB, T0 + i * 60_000));
        assert!(run(d, events).is_empty());
    }

    #[test]
    fn a_summary_far_above_the_baseline_is_reported_ipv4_and_ipv6() {
        for (local, remote) in [
            ("10.0.0.5", "198.51.100.7"),
            ("2001:db8::5", "2001:db8:9::7"),
        ] {
            let mut d = TrafficVolumeUnusualDetector::new(config());
            learn(&mut d, local, remote);
            let out = run(
                &mut d,
                [sent(local, "203.0.113.50", 900 * MIB, T0 + 3 * 3_600_000)],
            );
            assert_eq!(out.len(), 1, "{local}");
            assert_eq!(
                out[0].finding_type,
                FindingType::BehaviorTrafficVolumeUnusual
            );
            assert_eq!(out[0].activity.remote(), "203.0.113.50");
        }
    }

    #[test]
    fn a_large_summary_below_the_floor_or_inside_the_baseline_is_not() {
        let mut d = TrafficVolumeUnusualDetector::new(config());
        learn(&mut d, "10.0.0.5", "198.51.100.7");
        let at = T0 + 3 * 3_600_000;
        // Twenty times the mean but under the 64 MiB floor.
        assert!(run(&mut d, [sent("10.0.0.5", "198.51.100.7", 40 * MIB, at)]).is_empty());
        let mut big = TrafficVolumeUnusualDetector::new(config());
        let events = (0..120).map(|i| {
            sent(
                "2001:db8::5",
                "2001:db8:9::7",
                (200 + (i as u64 % 5) * 100) * MIB,
                T0 + i * 60_000,
            )
        });
        assert!(run(&mut big, events).is_empty());
        // A busy host sending 900 MiB is within its spread.
        assert!(
            run(
                &mut big,
                [sent("2001:db8::5", "2001:db8:9::7", 900 * MIB, at)]
            )
            .is_empty()
        );
    }

    #[test]
    fn nothing_is_reported_while_learning_and_the_floor_from_config_is_honoured() {
        let mut d = TrafficVolumeUnusualDetector::new(config());
        let early = (0..10).map(|i| sent("10.0.0.5", "198.51.100.7", MIB, T0 + i * 60_000));
        assert!(run(&mut d, early).is_empty());
        assert!(
            run(
                &mut d,
                [sent("10.0.0.5", "198.51.100.7", 900 * MIB, T0 + 700_000)]
            )
            .is_empty()
        );
        let mut strict = TrafficVolumeUnusualDetector::new(TrafficVolumeUnusualConfig {
            min_bytes: 1 << 30,
            ..config()
        });
        learn(&mut strict, "10.0.0.5", "198.51.100.7");
        let at = T0 + 3 * 3_600_000;
        assert!(
            run(
                &mut strict,
                [sent("10.0.0.5", "198.51.100.7", 900 * MIB, at)]
            )
            .is_empty()
        );
        assert_eq!(
            run(&mut strict, [sent("10.0.0.5", "198.51.100.7", 2 << 30, at)]).len(),
            1
        );
    }

    #[test]
    fn the_baseline_survives_save_and_restore() {
        let mut d = TrafficVolumeUnusualDetector::new(config());
        learn(&mut d, "10.0.0.5", "198.51.100.7");
        let mut fresh = TrafficVolumeUnusualDetector::new(config());
        fresh
            .restore_state(&d.save_state().expect("state"))
            .expect("restores");
        let out = run(
            &mut fresh,
            [sent(
                "10.0.0.5",
                "198.51.100.7",
                900 * MIB,
                T0 + 3 * 3_600_000,
            )],
        );
        assert_eq!(out.len(), 1);
    }
}
