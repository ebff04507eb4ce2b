//! Picket's own health as findings: `DefenseEvasion:EC2/SensorStoppedReporting` when an agent
//! goes quiet, `Impact:EC2/SensorDataLoss` when it reports losing data.
//!
//! Input: `HostStats` records, which every agent ships each summary interval (from the sensor,
//! or from the reporter when nothing is captured), so they double as a heartbeat that reached
//! detection. Silence is judged in [`Detector::on_tick`] against the tick's clock: an agent is
//! last seen at the later of its record's interval end and the latest tick before the record
//! arrived, so an agent whose clock runs slow is not taken for a silent one. Each silence is
//! reported once, until the agent reports again. Loss is judged per record: packets the kernel
//! or agent dropped (enough of them, and a large enough share of what was captured), or
//! records dropped by the sensor or outbox.
//!
//! State: one entry per agent, capped at `max_agents` (the longest-silent is evicted first and
//! counted); agents silent longer than `forget_after_secs` are forgotten. Last-seen times are
//! saved across restarts, so an agent that never comes back after a restart is still noticed.

use std::collections::HashMap;
use std::num::{NonZeroU64, NonZeroUsize};

use serde::{Deserialize, Serialize};

use super::{
    Activity, AgentSource, BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter,
    Event, EventFacts, EventKind, EvidenceDetail, NetworkActivity, Observation, ResourceRef,
    ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// `[detectors.agent_health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentHealthConfig {
    /// Seconds without a `HostStats` record after which an agent has stopped reporting.
    /// Keep it several summary intervals long (default 600 s = ten 60 s intervals).
    #[serde(default = "default_silence_secs")]
    pub silence_secs: NonZeroU64,
    /// Seconds of silence after which an agent is forgotten (decommissioned hosts).
    #[serde(default = "default_forget_after_secs")]
    pub forget_after_secs: NonZeroU64,
    /// Packets lost (kernel plus internal drops) in one interval from which capture loss is
    /// reported, provided the share below is also reached.
    #[serde(default = "default_min_lost_packets")]
    pub min_lost_packets: NonZeroU64,
    /// Share of packets lost, lost / (captured + lost), from which capture loss is reported.
    #[serde(default = "default_min_loss_ratio")]
    pub min_loss_ratio: f64,
    /// Records dropped (sensor or outbox) in one interval from which data loss is reported.
    #[serde(default = "default_min_dropped_records")]
    pub min_dropped_records: NonZeroU64,
    /// Agents tracked at most.
    #[serde(default = "default_max_agents")]
    pub max_agents: NonZeroUsize,
}

impl Default for AgentHealthConfig {
    fn default() -> Self {
        Self {
            silence_secs: default_silence_secs(),
            forget_after_secs: default_forget_after_secs(),
            min_lost_packets: default_min_lost_packets(),
            min_loss_ratio: default_min_loss_ratio(),
            min_dropped_records: default_min_dropped_records(),
            max_agents: default_max_agents(),
        }
    }
}

impl AgentHealthConfig {
    /// Pushes every out-of-range value onto `problems`, naming its key.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(self.min_loss_ratio > 0.0 && self.min_loss_ratio <= 1.0) {
            problems.push(format!(
                "detectors.agent_health.min_loss_ratio must be in (0, 1], got {}",
                self.min_loss_ratio
            ));
        }
        if self.forget_after_secs <= self.silence_secs {
            problems.push(format!(
                "detectors.agent_health.forget_after_secs must exceed silence_secs ({}), got {}",
                self.silence_secs, self.forget_after_secs
            ));
        }
    }
}

fn nz(v: u64) -> NonZeroU64 {
    NonZeroU64::new(v).unwrap_or(NonZeroU64::MIN)
}
fn default_silence_secs() -> NonZeroU64 {
    nz(600)
}
fn default_forget_after_secs() -> NonZeroU64 {
    nz(7 * 24 * 3600)
}
fn default_min_lost_packets() -> NonZeroU64 {
    nz(1000)
}
fn default_min_loss_ratio() -> f64 {
    0.01
}
fn default_min_dropped_records() -> NonZeroU64 {
    nz(1)
}
fn default_max_agents() -> NonZeroUsize {
    NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN)
}

/// What is kept per agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Seen {
    account_id: String,
    region: String,
    last_seen_ms: i64,
    /// Set once the current silence has been reported.
    #[serde(default)]
    reported: bool,
}

/// Reports silent agents and agents losing data.
#[derive(Debug)]
pub struct AgentHealthDetector {
    config: AgentHealthConfig,
    /// By instance id.
    agents: HashMap<String, Seen>,
    last_tick_ms: i64,
    evicted_full: u64,
    forgotten: u64,
}

impl AgentHealthDetector {
    /// A detector with `config`.
    pub fn new(config: AgentHealthConfig) -> Self {
        Self {
            config,
            agents: HashMap::new(),
            last_tick_ms: 0,
            evicted_full: 0,
            forgotten: 0,
        }
    }

    fn remember(&mut self, source: &AgentSource, at_ms: i64) {
        let seen_at = at_ms.max(self.last_tick_ms);
        if let Some(s) = self.agents.get_mut(&source.instance_id) {
            s.last_seen_ms = s.last_seen_ms.max(seen_at);
            s.reported = false;
            return;
        }
        if self.agents.len() >= self.config.max_agents.get() {
            let oldest = self
                .agents
                .iter()
                .min_by_key(|(_, s)| s.last_seen_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.agents.remove(&k);
                self.evicted_full += 1;
            }
        }
        self.agents.insert(
            source.instance_id.clone(),
            Seen {
                account_id: source.account_id.clone(),
                region: source.region.clone(),
                last_seen_ms: seen_at,
                reported: false,
            },
        );
    }
}

/// The agent an observation is about.
struct Subject<'a> {
    account_id: &'a str,
    region: &'a str,
    instance_id: &'a str,
}

fn observation(
    finding_type: FindingType,
    who: &Subject<'_>,
    at_ms: i64,
    window_ms: i64,
    thresholds: Vec<ThresholdCrossed>,
    note: String,
) -> Observation {
    Observation {
        finding_type,
        account_id: who.account_id.to_owned(),
        region: who.region.to_owned(),
        resource: ResourceRef::Instance {
            instance_id: who.instance_id.to_owned(),
            private_ip: None,
        },
        role: ResourceRole::Target,
        // GuardDuty has no action for a sensor's own state; an empty connection keeps the
        // finding in the instance/network shape, and the evidence says what happened.
        activity: Activity::Network(NetworkActivity {
            direction: ConnectionDirection::Unknown,
            protocol: 0,
            local_ip: String::new(),
            local_port: 0,
            remote_ip: String::new(),
            remote_port: 0,
        }),
        at_ms,
        threat_intel: None,
        severity: None,
        evidence: EvidenceDetail::Behaviour(Box::new(BehaviourEvidence {
            detector: "agent_health".to_owned(),
            window_ms,
            thresholds,
            example_names: Vec::new(),
            flows: Vec::new(),
            dns: Vec::new(),
            note: Some(note),
        })),
    }
}

const KEY: &str = "detectors.agent_health";

impl Detector for AgentHealthDetector {
    fn name(&self) -> &'static str {
        "agent_health"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::HostStats]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Agent { source, record } = event else {
            return;
        };
        let Some(picket_proto::v1::record::Record::HostStats(h)) = &record.record else {
            return;
        };
        self.remember(source, h.interval_end_ms);
        let window_ms = h.interval_end_ms.saturating_sub(h.interval_start_ms);
        let lost = h.kernel_drops.saturating_add(h.internal_drops);
        let seen = h.packets.saturating_add(lost);
        let ratio = if seen == 0 {
            0.0
        } else {
            lost as f64 / seen as f64
        };
        if lost >= self.config.min_lost_packets.get() && ratio >= self.config.min_loss_ratio {
            out.push(observation(
                FindingType::ImpactSensorDataLoss,
                &Subject {
                    account_id: &source.account_id,
                    region: &source.region,
                    instance_id: &source.instance_id,
                },
                h.interval_end_ms,
                window_ms,
                vec![
                    ThresholdCrossed {
                        key: format!("{KEY}.min_lost_packets"),
                        limit: self.config.min_lost_packets.get() as f64,
                        observed: lost as f64,
                    },
                    ThresholdCrossed {
                        key: format!("{KEY}.min_loss_ratio"),
                        limit: self.config.min_loss_ratio,
                        observed: ratio,
                    },
                ],
                format!(
                    "capture loss: {} kernel and {} internal packet drops against {} packets captured in the interval",
                    h.kernel_drops, h.internal_drops, h.packets
                ),
            ));
        }
        let dropped: u64 = h
            .records_dropped
            .iter()
            .fold(0_u64, |a, c| a.saturating_add(c.count));
        if dropped >= self.config.min_dropped_records.get() {
            let mut kinds: Vec<String> = h
                .records_dropped
                .iter()
                .filter(|c| c.count > 0)
                .map(|c| format!("{}={}", c.kind, c.count))
                .collect();
            kinds.sort();
            out.push(observation(
                FindingType::ImpactSensorDataLoss,
                &Subject {
                    account_id: &source.account_id,
                    region: &source.region,
                    instance_id: &source.instance_id,
                },
                h.interval_end_ms,
                window_ms,
                vec![ThresholdCrossed {
                    key: format!("{KEY}.min_dropped_records"),
                    limit: self.config.min_dropped_records.get() as f64,
                    observed: dropped as f64,
                }],
                format!("records dropped before delivery: {}", kinds.join(", ")),
            ));
        }
    }

    fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Observation>) {
        self.last_tick_ms = self.last_tick_ms.max(now_ms);
        let silence_ms =
            i64::try_from(self.config.silence_secs.get().saturating_mul(1000)).unwrap_or(i64::MAX);
        let forget_ms = i64::try_from(self.config.forget_after_secs.get().saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let before = self.agents.len();
        self.agents
            .retain(|_, s| now_ms.saturating_sub(s.last_seen_ms) < forget_ms);
        self.forgotten += (before - self.agents.len()) as u64;
        for (instance, s) in &mut self.agents {
            let quiet = now_ms.saturating_sub(s.last_seen_ms);
            if s.reported || quiet < silence_ms {
                continue;
            }
            s.reported = true;
            out.push(observation(
                FindingType::DefenseEvasionSensorStoppedReporting,
                &Subject {
                    account_id: &s.account_id,
                    region: &s.region,
                    instance_id: instance,
                },
                now_ms,
                quiet,
                vec![ThresholdCrossed {
                    key: format!("{KEY}.silence_secs"),
                    limit: self.config.silence_secs.get() as f64,
                    observed: (quiet / 1000) as f64,
                }],
                format!(
                    "no host statistics for {} s (last at {} ms since the epoch)",
                    quiet / 1000,
                    s.last_seen_ms
                ),
            ));
        }
    }

    fn tracked_keys(&self) -> usize {
        self.agents.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "evicted_full",
                count: self.evicted_full,
            },
            DetectorCounter {
                name: "forgotten",
                count: self.forgotten,
            },
        ]
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(&self.agents).ok()
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        let agents: HashMap<String, Seen> =
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        self.agents = agents
            .into_iter()
            .take(self.config.max_agents.get())
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::record::Record as R;
    use picket_proto::v1::{Counter, HostStats, Record};

    use super::super::testing::{T0, source};
    use super::*;

    fn stats(end_ms: i64, packets: u64, kernel: u64, dropped: &[(&str, u64)]) -> Event {
        Event::Agent {
            source: source(),
            record: Record {
                record: Some(R::HostStats(HostStats {
                    interval_start_ms: end_ms - 60_000,
                    interval_end_ms: end_ms,
                    packets,
                    kernel_drops: kernel,
                    records_dropped: dropped
                        .iter()
                        .map(|(k, n)| Counter {
                            kind: (*k).into(),
                            count: *n,
                        })
                        .collect(),
                    ..HostStats::default()
                })),
            },
        }
    }

    fn run(d: &mut AgentHealthDetector, events: &[Event], tick: Option<i64>) -> Vec<Observation> {
        let mut out = Vec::new();
        for e in events {
            crate::detectors::testing::observe(d, e, &mut out);
        }
        if let Some(now) = tick {
            d.on_tick(now, &mut out);
        }
        out
    }

    #[test]
    fn an_agent_silent_past_the_limit_is_reported_once_until_it_reports_again() {
        let mut d = AgentHealthDetector::new(AgentHealthConfig::default());
        assert!(run(&mut d, &[stats(T0, 100, 0, &[])], Some(T0)).is_empty());
        let out = run(&mut d, &[], Some(T0 + 600_000));
        assert_eq!(out.len(), 1);
        let o = &out[0];
        assert_eq!(
            o.finding_type,
            FindingType::DefenseEvasionSensorStoppedReporting
        );
        assert_eq!(o.resource.id(), "i-0abc");
        assert_eq!(o.account_id, "123456789012");
        assert!(run(&mut d, &[], Some(T0 + 1_200_000)).is_empty(), "once");
        // It comes back, then goes quiet again: a new report.
        assert!(
            run(
                &mut d,
                &[stats(T0 + 1_300_000, 1, 0, &[])],
                Some(T0 + 1_300_000)
            )
            .is_empty()
        );
        assert_eq!(run(&mut d, &[], Some(T0 + 1_900_000)).len(), 1);
    }

    #[test]
    fn an_agent_quiet_for_just_under_the_limit_is_not_reported() {
        let mut d = AgentHealthDetector::new(AgentHealthConfig::default());
        run(&mut d, &[stats(T0, 100, 0, &[])], None);
        assert!(run(&mut d, &[], Some(T0 + 599_999)).is_empty());
    }

    #[test]
    fn an_agent_with_a_slow_clock_is_seen_when_its_record_arrives() {
        let mut d = AgentHealthDetector::new(AgentHealthConfig::default());
        run(&mut d, &[], Some(T0 + 3_600_000));
        // Its interval claims to have ended an hour ago, but it arrived now.
        run(&mut d, &[stats(T0, 100, 0, &[])], None);
        assert!(run(&mut d, &[], Some(T0 + 3_600_000 + 60_000)).is_empty());
    }

    #[test]
    fn heavy_kernel_drops_are_capture_loss_but_a_few_or_a_small_share_are_not() {
        let mut d = AgentHealthDetector::new(AgentHealthConfig::default());
        let out = run(&mut d, &[stats(T0, 50_000, 2_000, &[])], None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, FindingType::ImpactSensorDataLoss);
        // Below the count.
        assert!(run(&mut d, &[stats(T0, 10, 999, &[])], None).is_empty());
        // Enough drops but under 1% of traffic.
        assert!(run(&mut d, &[stats(T0, 1_000_000, 5_000, &[])], None).is_empty());
    }

    #[test]
    fn dropped_records_are_data_loss_and_none_is_nothing() {
        let mut d = AgentHealthDetector::new(AgentHealthConfig::default());
        let out = run(
            &mut d,
            &[stats(T0, 10, 0, &[("flow", 3), ("sensor_channel_full", 2)])],
            None,
        );
        assert_eq!(out.len(), 1);
        let EvidenceDetail::Behaviour(e) = &out[0].evidence else {
            panic!("behaviour evidence");
        };
        assert_eq!(
            e.note.as_deref(),
            Some("records dropped before delivery: flow=3, sensor_channel_full=2")
        );
        assert!(run(&mut d, &[stats(T0, 10, 0, &[("flow", 0)])], None).is_empty());
    }

    #[test]
    fn state_is_capped_forgets_the_long_gone_and_survives_a_restart() {
        let config = AgentHealthConfig {
            max_agents: NonZeroUsize::new(2).unwrap(),
            ..AgentHealthConfig::default()
        };
        let mut d = AgentHealthDetector::new(config.clone());
        for (i, at) in [(1, T0), (2, T0 + 1), (3, T0 + 2)] {
            let mut s = source();
            s.instance_id = format!("i-{i}");
            let Event::Agent { record, .. } = stats(at, 1, 0, &[]) else {
                unreachable!()
            };
            crate::detectors::testing::observe(
                &mut d,
                &Event::Agent { source: s, record },
                &mut Vec::new(),
            );
        }
        assert_eq!(d.tracked_keys(), 2);
        assert!(d.agents.contains_key("i-3") && !d.agents.contains_key("i-1"));
        let saved = d.save_state().unwrap();
        let mut restored = AgentHealthDetector::new(config);
        restored.restore_state(&saved).unwrap();
        assert_eq!(run(&mut restored, &[], Some(T0 + 700_000)).len(), 2);
        run(&mut restored, &[], Some(T0 + 8 * 24 * 3600 * 1000));
        assert_eq!(restored.tracked_keys(), 0);
        assert!(restored.restore_state(b"not json").is_err());
    }

    #[test]
    fn bad_thresholds_are_named() {
        let config = AgentHealthConfig {
            min_loss_ratio: 0.0,
            forget_after_secs: nz(10),
            ..AgentHealthConfig::default()
        };
        let mut p = Vec::new();
        config.check(&mut p);
        assert_eq!(p.len(), 2);
        assert!(p[0].starts_with("detectors.agent_health.min_loss_ratio"));
        assert!(p[1].starts_with("detectors.agent_health.forget_after_secs"));
    }
}
