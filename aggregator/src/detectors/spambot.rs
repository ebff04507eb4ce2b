//! `Backdoor:EC2/Spambot`: an instance with no history of mail suddenly sends SMTP to many
//! remotes.
//!
//! Input: flow summaries. Every summary of an instance advances its learning period
//! ([`super::baseline`]). Distinct remotes on the SMTP ports (25, and 465/587 with
//! `submission_ports`) are counted per instance in tumbling windows, while learning too: SMTP
//! seen while an instance learns gives it a history of mail (it is a mail server or relays
//! through one) and the learned peak of remotes per window. After learning, a window is
//! reported once when it reaches `min_remotes` distinct remotes and, for an instance with a
//! history of mail, also `history_factor` times its learned peak: a host that mailed its relay
//! while learning and now mails hundreds of servers is still a spambot, while a mail server
//! keeps to its usual fan-out. Refused or unanswered attempts count too (port 25 is often
//! blocked, and a spambot keeps trying): the agent folds them under service port 0 and names
//! the ports tried in `failed_ports`; a summary whose complete list is at most
//! [`MAX_REFUSED_PORTS`] ports, one of them SMTP, is a refused mail attempt (more ports is a
//! scan, port_scan's business).

use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::FlowSummary;
use serde::{Deserialize, Serialize};

use super::baseline::{self, Baselines, Learning};
use super::summary::{self, MAX_EXAMPLES};
use super::window::{DistinctSet, NameKey, WindowTable, keep_example};
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Distinct remotes kept per window; far above any sensible `min_remotes`.
const REMOTE_CAP: usize = 4096;

/// Most ports a failed-attempts summary may name and still be read as a refused mail attempt.
pub const MAX_REFUSED_PORTS: usize = 3;

/// `[detectors.spambot]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpambotConfig {
    /// Event time an instance learns whether it sends mail, in seconds.
    #[serde(default = "baseline::default_learning_secs")]
    pub learning_secs: u64,
    /// Flow summaries an instance must have shown before it can be reported.
    #[serde(default = "baseline::default_min_observations")]
    pub min_observations: u64,
    /// Distinct SMTP remotes within a window that make a spambot.
    #[serde(default = "default_min_remotes")]
    pub min_remotes: NonZeroU32,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// For an instance that sent SMTP while learning: how many times its learned peak of
    /// distinct SMTP remotes per window a window must reach (at least 1).
    #[serde(default = "default_history_factor")]
    pub history_factor: f64,
    /// Also count the submission ports 465 and 587, not only 25.
    #[serde(default)]
    pub submission_ports: bool,
    /// Instances kept; the least recently seen is evicted (and relearns) beyond this.
    #[serde(default = "baseline::default_max_instances")]
    pub max_instances: NonZeroUsize,
}

impl Default for SpambotConfig {
    fn default() -> Self {
        Self {
            learning_secs: baseline::default_learning_secs(),
            min_observations: baseline::default_min_observations(),
            min_remotes: default_min_remotes(),
            window_secs: default_window_secs(),
            history_factor: default_history_factor(),
            submission_ports: false,
            max_instances: baseline::default_max_instances(),
        }
    }
}

fn default_min_remotes() -> NonZeroU32 {
    NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(3_600).unwrap_or(NonZeroU32::MIN)
}
fn default_history_factor() -> f64 {
    // A mail server's hourly fan-out varies by a factor of two or three with the day; a
    // compromised host blasting spam goes far past its usual relay or handful of peers.
    4.0
}

impl SpambotConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(self.history_factor.is_finite() && self.history_factor >= 1.0) {
            problems.push(format!(
                "detectors.spambot.history_factor must be a number of at least 1, got {}",
                self.history_factor
            ));
        }
    }
}

/// Whether an instance sent mail while it learned, and to how many remotes per window at most.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct MailHistory {
    smtp_while_learning: bool,
    /// Most distinct SMTP remotes in one window while learning (0 in state saved before it
    /// was kept: read as 1).
    #[serde(default)]
    peak_remotes: u32,
}

#[derive(Debug, Default)]
struct Burst {
    remotes: DistinctSet<String>,
    /// Summaries of refused or unanswered SMTP attempts among them.
    refused: u64,
    flows: Vec<FlowSummary>,
}

/// Learns who sends mail and reports SMTP bursts from those that do not.
#[derive(Debug)]
pub struct SpambotDetector {
    config: SpambotConfig,
    learning: Learning,
    baselines: Baselines<MailHistory>,
    // Keyed by the event's shared instance key, looked up borrowed (no copy of the id per
    // record).
    windows: WindowTable<(NameKey, ()), Burst>,
}

impl SpambotDetector {
    /// A detector with `config`.
    pub fn new(config: SpambotConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            learning: Learning::new(config.learning_secs, config.min_observations),
            baselines: Baselines::new(config.max_instances),
            windows: WindowTable::new(config.max_instances, window_ms),
            config,
        }
    }

    fn is_smtp_port(&self, port: u32) -> bool {
        port == 25 || (self.config.submission_ports && matches!(port, 465 | 587))
    }

    /// Whether `f` is SMTP: answered on an SMTP port, or (second value) refused attempts at a
    /// few ports, one of them SMTP.
    fn smtp(&self, f: &FlowSummary) -> (bool, bool) {
        if f.protocol != 6 {
            return (false, false);
        }
        if f.service_port != 0 {
            return (self.is_smtp_port(f.service_port), false);
        }
        let complete = f.failed_ports.len() as u64 == f.distinct_ports;
        let refused = complete
            && f.failed_ports.len() <= MAX_REFUSED_PORTS
            && f.failed_ports.iter().any(|p| self.is_smtp_port(*p));
        (refused, refused)
    }
}

impl Detector for SpambotDetector {
    fn name(&self) -> &'static str {
        "spambot"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        let at = summary::flow_time(f);
        let (smtp, refused) = self.smtp(f);
        let smtp = smtp && summary::direction(f) == ConnectionDirection::Outbound;
        let learning = self.learning;
        let profile = self.baselines.observe(name, at);
        if !smtp {
            return;
        }
        let w = self.windows.window_named(name, (), at);
        w.state.remotes.insert(f.remote_addr.clone(), REMOTE_CAP);
        w.state.refused += u64::from(refused);
        keep_example(&mut w.state.flows, MAX_EXAMPLES, || f.clone());
        let seen = w.state.remotes.len();
        if !profile.learned(learning) {
            profile.data.smtp_while_learning = true;
            profile.data.peak_remotes = profile
                .data
                .peak_remotes
                .max(u32::try_from(seen).unwrap_or(u32::MAX));
            return;
        }
        let min = self.config.min_remotes.get();
        let mut thresholds = vec![ThresholdCrossed {
            key: "detectors.spambot.min_remotes".into(),
            limit: f64::from(min),
            observed: seen as f64,
        }];
        let history = profile.data;
        if history.smtp_while_learning {
            let peak = history.peak_remotes.max(1);
            thresholds.push(ThresholdCrossed {
                key: "detectors.spambot.history_factor".into(),
                limit: f64::from(peak) * self.config.history_factor,
                observed: seen as f64,
            });
        }
        if w.fired || thresholds.iter().any(|t| t.observed < t.limit) {
            return;
        }
        w.fired = true;
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let note = if history.smtp_while_learning {
            format!(
                "SMTP to {seen} remotes in one window; at most {} per window during its {} s learning period",
                history.peak_remotes.max(1),
                self.config.learning_secs
            )
        } else {
            format!(
                "no SMTP from this instance during its {} s learning period",
                self.config.learning_secs
            )
        };
        let note = if w.state.refused > 0 {
            format!(
                "{note}; {} of the SMTP summaries were refused or unanswered attempts",
                w.state.refused
            )
        } else {
            note
        };
        let evidence = BehaviourEvidence {
            detector: "spambot".to_owned(),
            window_ms,
            thresholds,
            example_names: Vec::new(),
            flows: std::mem::take(&mut w.state.flows),
            dns: Vec::new(),
            note: Some(note),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::BackdoorSpambot,
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

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        self.windows.expire(now_ms);
    }

    fn tracked_keys(&self) -> usize {
        self.baselines.len().max(self.windows.len())
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "evicted_instances",
                count: self.baselines.evicted(),
            },
            DetectorCounter {
                name: "evicted_windows",
                count: self.windows.evicted_full(),
            },
            DetectorCounter {
                name: "expired_windows",
                count: self.windows.expired(),
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

    const HOUR: i64 = 3_600_000;

    fn config() -> SpambotConfig {
        SpambotConfig {
            learning_secs: 3_600,
            min_observations: 10,
            ..SpambotConfig::default()
        }
    }

    /// Two hours of web traffic, with one mail to a relay when `mail` is set.
    fn learn(local: &str, mail: bool) -> Vec<Event> {
        let mut events: Vec<Event> = (0..24)
            .map(|i| flow_event(flow(true, local, "192.0.2.80", 6, 443, T0 + i * 5 * 60_000)))
            .collect();
        if mail {
            events.insert(
                1,
                flow_event(flow(true, local, "192.0.2.25", 6, 25, T0 + 60_000)),
            );
        }
        events
    }

    fn burst(local: &str, v6: bool, n: u32, port: u32) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let remote = if v6 {
                    format!("2001:db8:25::{i:x}")
                } else {
                    format!("198.51.100.{i}")
                };
                flow_event(flow(
                    true,
                    local,
                    &remote,
                    6,
                    port,
                    T0 + 3 * HOUR + i64::from(i),
                ))
            })
            .collect()
    }

    #[test]
    fn smtp_to_many_remotes_with_no_mail_history_is_a_spambot_ipv4_and_ipv6() {
        for (local, v6) in [("10.0.0.5", false), ("2001:db8::5", true)] {
            let mut d = SpambotDetector::new(config());
            assert!(run(&mut d, learn(local, false)).is_empty());
            let out = run(&mut d, burst(local, v6, 30, 25));
            assert_eq!(out.len(), 1, "{local}");
            assert_eq!(out[0].finding_type, FindingType::BackdoorSpambot);
        }
    }

    #[test]
    fn a_mail_sender_few_remotes_or_submission_ports_by_default_are_not() {
        let mut history = SpambotDetector::new(config());
        run(&mut history, learn("10.0.0.5", true));
        assert!(run(&mut history, burst("10.0.0.5", false, 9, 25)).is_empty());
        let mut few = SpambotDetector::new(config());
        run(&mut few, learn("2001:db8::5", false));
        assert!(run(&mut few, burst("2001:db8::5", true, 9, 25)).is_empty());
        let mut submission = SpambotDetector::new(config());
        run(&mut submission, learn("10.0.0.5", false));
        assert!(run(&mut submission, burst("10.0.0.5", false, 30, 587)).is_empty());
    }

    #[test]
    fn a_host_that_mailed_its_relay_while_learning_is_still_a_spambot_when_it_fans_out() {
        // Learned peak: one remote (the relay) per window; 4 x 1 < 10, so min_remotes rules.
        let mut d = SpambotDetector::new(config());
        run(&mut d, learn("10.0.0.5", true));
        let out = run(&mut d, burst("10.0.0.5", false, 30, 25));
        assert_eq!(out.len(), 1);
        let super::super::EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
            panic!("expected behaviour evidence");
        };
        assert_eq!(ev.thresholds.len(), 2);
        assert!(
            ev.note
                .as_deref()
                .is_some_and(|n| n.contains("at most 1 per window"))
        );
    }

    /// Learning with SMTP to `peak` remotes in one window (a mail server's usual fan-out).
    fn learn_mail_server(local: &str, peak: u32) -> Vec<Event> {
        let mut events = learn(local, false);
        events.extend((0..peak).map(|i| {
            flow_event(flow(
                true,
                local,
                &format!("192.0.2.{i}"),
                6,
                25,
                T0 + 2 * 60_000 + i64::from(i),
            ))
        }));
        events.sort_by_key(|e| match summary::flow(e) {
            Some((_, f)) => summary::flow_time(f),
            None => 0,
        });
        events
    }

    #[test]
    fn a_mail_server_within_its_usual_fan_out_is_not_and_far_past_it_is() {
        for (local, v6) in [("10.0.0.25", false), ("2001:db8::25", true)] {
            let mut d = SpambotDetector::new(config());
            assert!(run(&mut d, learn_mail_server(local, 20)).is_empty());
            // 79 remotes: under 4 x 20.
            assert!(run(&mut d, burst(local, v6, 79, 25)).is_empty(), "{local}");
            let mut d = SpambotDetector::new(config());
            run(&mut d, learn_mail_server(local, 20));
            assert_eq!(run(&mut d, burst(local, v6, 80, 25)).len(), 1, "{local}");
        }
    }

    #[test]
    fn min_remotes_and_submission_ports_from_config_are_honoured() {
        let mut d = SpambotDetector::new(SpambotConfig {
            min_remotes: NonZeroU32::new(40).expect("40"),
            submission_ports: true,
            ..config()
        });
        run(&mut d, learn("10.0.0.5", false));
        assert!(run(&mut d, burst("10.0.0.5", false, 39, 587)).is_empty());
        let more = flow_event(flow(
            true,
            "10.0.0.5",
            "203.0.113.1",
            6,
            465,
            T0 + 3 * HOUR + 50,
        ));
        assert_eq!(run(&mut d, [more]).len(), 1);
    }

    #[test]
    fn the_mail_history_survives_save_and_restore() {
        let mut d = SpambotDetector::new(config());
        run(&mut d, learn_mail_server("10.0.0.5", 20));
        let mut fresh = SpambotDetector::new(config());
        fresh
            .restore_state(&d.save_state().expect("state"))
            .expect("restores");
        assert!(run(&mut fresh, burst("10.0.0.5", false, 30, 25)).is_empty());
        let mut blank = SpambotDetector::new(config());
        run(&mut blank, learn("10.0.0.5", false));
        let mut fresh = SpambotDetector::new(config());
        fresh
            .restore_state(&blank.save_state().expect("state"))
            .expect("restores");
        assert_eq!(run(&mut fresh, burst("10.0.0.5", false, 30, 25)).len(), 1);
    }

    /// Refused attempts at `ports` of `n` remotes, as the agent folds them (service port 0).
    fn refused(local: &str, n: u32, ports: &[u32]) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut f = flow(
                    true,
                    local,
                    &format!("198.51.100.{i}"),
                    6,
                    0,
                    T0 + 3 * HOUR + i64::from(i),
                );
                f.remote_answered = false;
                f.unanswered_syns = 3;
                f.failed_ports = ports.to_vec();
                f.distinct_ports = ports.len() as u64;
                flow_event(f)
            })
            .collect()
    }

    #[test]
    fn refused_smtp_attempts_count_and_scans_or_other_ports_do_not() {
        let mut d = SpambotDetector::new(config());
        run(&mut d, learn("10.0.0.5", false));
        let out = run(&mut d, refused("10.0.0.5", 12, &[25]));
        assert_eq!(out.len(), 1);
        let super::super::EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
            panic!("expected behaviour evidence");
        };
        assert!(
            ev.note
                .as_deref()
                .is_some_and(|n| n.contains("10 of the SMTP summaries were refused")),
            "{:?}",
            ev.note
        );
        // A scan's failed attempts (port 25 among many) and refused HTTPS are not mail.
        let mut d = SpambotDetector::new(config());
        run(&mut d, learn("10.0.0.5", false));
        assert!(run(&mut d, refused("10.0.0.5", 12, &[21, 22, 23, 25])).is_empty());
        assert!(run(&mut d, refused("10.0.0.5", 12, &[443])).is_empty());
        // An incomplete list (more ports tried than named) is not trusted either.
        let mut partial = refused("10.0.0.5", 12, &[25]);
        for e in &mut partial {
            if let Event::Agent { record, .. } = e
                && let Some(picket_proto::v1::record::Record::Flow(f)) = &mut record.record
            {
                f.distinct_ports = 40;
            }
        }
        assert!(run(&mut d, partial).is_empty());
    }

    #[test]
    fn a_history_factor_below_one_is_named() {
        let mut problems = Vec::new();
        SpambotConfig {
            history_factor: 0.5,
            ..SpambotConfig::default()
        }
        .check(&mut problems);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("detectors.spambot.history_factor"));
    }
}
