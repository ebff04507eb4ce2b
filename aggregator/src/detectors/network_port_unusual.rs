//! `Behavior:EC2/NetworkPortUnusual`: the instance talks on a port it has not used before.
//!
//! Input: TCP/UDP flow summaries. Each instance learns the (direction, protocol, port) triples
//! it uses ([`super::baseline`]); once its learning period is over, an outbound connection to a
//! remote port it never used, or an inbound connection to a local service port it never
//! served, is reported once and then joins the baseline. Inbound connections to ephemeral high
//! ports are never judged: they are the answers of the host's own clients in disguise (FTP data,
//! NAT), not services. Outbound LDAP ports (389, 1389, 636) are High: they are where log4j/JNDI
//! injection payloads (CVE-2021-44228) call back to. Unanswered TCP attempts are the scan
//! detectors' business and never count here.

use std::num::NonZeroUsize;

use picket_proto::v1::FlowSummary;
use serde::Deserialize;

use super::baseline::{self, Baselines, Learning, RecentSet};
use super::summary;
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Remote ports that log4j/JNDI (LDAP) callbacks use; outbound to these is High.
const JNDI_PORTS: [u32; 3] = [389, 636, 1389];

/// `[detectors.network_port_unusual]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPortUnusualConfig {
    /// Event time an instance learns its ports before new ones are reported, in seconds.
    #[serde(default = "baseline::default_learning_secs")]
    pub learning_secs: u64,
    /// Flow summaries an instance must have shown before new ports are reported.
    #[serde(default = "baseline::default_min_observations")]
    pub min_observations: u64,
    /// Inbound connections to local ports at or above this are never judged (ephemeral range).
    #[serde(default = "default_ephemeral_port_floor")]
    pub ephemeral_port_floor: u32,
    /// Instances kept; the least recently seen is evicted (and relearns) beyond this.
    #[serde(default = "baseline::default_max_instances")]
    pub max_instances: NonZeroUsize,
    /// Ports kept per instance; the least recently used is forgotten beyond this.
    #[serde(default = "default_max_ports")]
    pub max_ports: NonZeroUsize,
}

impl Default for NetworkPortUnusualConfig {
    fn default() -> Self {
        Self {
            learning_secs: baseline::default_learning_secs(),
            min_observations: baseline::default_min_observations(),
            ephemeral_port_floor: default_ephemeral_port_floor(),
            max_instances: baseline::default_max_instances(),
            max_ports: default_max_ports(),
        }
    }
}

impl NetworkPortUnusualConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(1024..=65_536).contains(&self.ephemeral_port_floor) {
            problems.push(format!(
                "detectors.network_port_unusual.ephemeral_port_floor must be between 1024 and \
                 65536, got {}",
                self.ephemeral_port_floor
            ));
        }
    }
}

// Linux's default ip_local_port_range starts at 32768.
fn default_ephemeral_port_floor() -> u32 {
    32_768
}
fn default_max_ports() -> NonZeroUsize {
    NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN)
}

/// (inbound, protocol, port).
type PortKey = (bool, u32, u32);

/// Learns each instance's ports and reports new ones.
#[derive(Debug)]
pub struct NetworkPortUnusualDetector {
    config: NetworkPortUnusualConfig,
    learning: Learning,
    baselines: Baselines<RecentSet<PortKey>>,
    ports_forgotten: u64,
    reported: u64,
}

impl NetworkPortUnusualDetector {
    /// A detector with `config`.
    pub fn new(config: NetworkPortUnusualConfig) -> Self {
        Self {
            learning: Learning::new(config.learning_secs, config.min_observations),
            baselines: Baselines::new(config.max_instances),
            config,
            ports_forgotten: 0,
            reported: 0,
        }
    }

    fn evidence(
        &self,
        f: &FlowSummary,
        known: usize,
        age_secs: f64,
        obs: u64,
    ) -> BehaviourEvidence {
        let inbound = summary::direction(f) == ConnectionDirection::Inbound;
        let proto = if f.protocol == 6 { "TCP" } else { "UDP" };
        let mut note = format!(
            "{} port {}/{proto} is not among the {known} ports this instance used while \
             learning",
            if inbound { "local service" } else { "remote" },
            f.service_port,
        );
        if !inbound && JNDI_PORTS.contains(&f.service_port) {
            note.push_str(
                "; LDAP ports are where log4j/JNDI injection (CVE-2021-44228) payloads call back \
                 to",
            );
        }
        BehaviourEvidence {
            detector: "network_port_unusual".to_owned(),
            window_ms: 0,
            thresholds: vec![
                ThresholdCrossed {
                    key: "detectors.network_port_unusual.learning_secs".into(),
                    limit: self.config.learning_secs as f64,
                    observed: age_secs,
                },
                ThresholdCrossed {
                    key: "detectors.network_port_unusual.min_observations".into(),
                    limit: self.config.min_observations as f64,
                    observed: obs as f64,
                },
            ],
            example_names: Vec::new(),
            flows: vec![f.clone()],
            dns: Vec::new(),
            note: Some(note),
        }
    }
}

impl Detector for NetworkPortUnusualDetector {
    fn name(&self) -> &'static str {
        "network_port_unusual"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if !matches!(f.protocol, 6 | 17) || f.service_port == 0 {
            return;
        }
        let direction = summary::direction(f);
        let inbound = match direction {
            ConnectionDirection::Inbound => true,
            ConnectionDirection::Outbound => false,
            ConnectionDirection::Unknown => return,
        };
        // Unanswered TCP is a probe (ours or someone's), not use of a port.
        if f.protocol == 6 && !f.remote_answered {
            return;
        }
        if inbound && f.service_port >= self.config.ephemeral_port_floor {
            return;
        }
        let at = summary::flow_time(f);
        let cap = self.config.max_ports.get();
        let learning = self.learning;
        let key = (inbound, f.protocol, f.service_port);
        let profile = self.baselines.observe(name, at);
        let learned = profile.learned(learning);
        let (known, age, obs) = (profile.data.len(), profile.age_secs(), profile.observations);
        let used = profile.data.use_key(&key, at, cap);
        if used.forgot {
            self.ports_forgotten += 1;
        }
        if !used.new || !learned {
            return;
        }
        self.reported += 1;
        let severity = (!inbound && JNDI_PORTS.contains(&f.service_port)).then_some(8.0);
        let evidence = self.evidence(f, known, age, obs);
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::BehaviorNetworkPortUnusual,
                source,
                local_addr: &f.local_addr,
                role: if inbound {
                    ResourceRole::Target
                } else {
                    ResourceRole::Actor
                },
                activity: summary::network_activity(f),
                at_ms: at,
                severity,
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
                name: "ports_forgotten",
                count: self.ports_forgotten,
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

    const HOUR: i64 = 3_600_000;

    fn config() -> NetworkPortUnusualConfig {
        NetworkPortUnusualConfig {
            learning_secs: 3_600,
            min_observations: 10,
            ..NetworkPortUnusualConfig::default()
        }
    }

    /// Two hours of an instance using 443 and 53 outbound and serving 22.
    fn learn(local: &str, remote: &str) -> Vec<Event> {
        (0..24)
            .flat_map(|i| {
                let at = T0 + i * 5 * 60_000;
                [
                    flow_event(flow(true, local, remote, 6, 443, at)),
                    flow_event(flow(true, local, remote, 17, 53, at)),
                    flow_event(flow(false, local, remote, 6, 22, at)),
                ]
            })
            .collect()
    }

    #[test]
    fn a_new_outbound_ldap_port_after_learning_is_high_with_a_log4j_note_ipv4_and_ipv6() {
        for (local, remote) in [
            ("10.0.0.5", "198.51.100.7"),
            ("2001:db8::5", "2001:db8:9::7"),
        ] {
            let mut d = NetworkPortUnusualDetector::new(config());
            assert!(run(&mut d, learn(local, remote)).is_empty());
            let at = T0 + 3 * HOUR;
            let out = run(&mut d, [flow_event(flow(true, local, remote, 6, 1389, at))]);
            assert_eq!(out.len(), 1, "{local}");
            assert_eq!(out[0].finding_type, FindingType::BehaviorNetworkPortUnusual);
            assert_eq!(out[0].severity, Some(8.0));
            let crate::detectors::EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
                panic!("behaviour evidence");
            };
            assert!(ev.note.as_deref().is_some_and(|n| n.contains("log4j")));
            // Reported once: the port is now part of the baseline.
            assert!(
                run(
                    &mut d,
                    [flow_event(flow(true, local, remote, 6, 1389, at + 1))]
                )
                .is_empty()
            );
        }
    }

    #[test]
    fn a_new_ordinary_port_is_medium_and_a_known_port_or_learning_instance_is_quiet() {
        let mut d = NetworkPortUnusualDetector::new(config());
        // Still learning: nothing is reported, whatever the port.
        let early = run(
            &mut d,
            [flow_event(flow(
                true,
                "10.0.0.5",
                "198.51.100.7",
                6,
                8081,
                T0,
            ))],
        );
        assert!(early.is_empty());
        run(&mut d, learn("10.0.0.5", "198.51.100.7"));
        let at = T0 + 3 * HOUR;
        let known = run(
            &mut d,
            [
                flow_event(flow(true, "10.0.0.5", "203.0.113.9", 6, 443, at)),
                flow_event(flow(true, "10.0.0.5", "198.51.100.7", 6, 8081, at)),
            ],
        );
        assert!(
            known.is_empty(),
            "443 was learned, 8081 was seen while learning"
        );
        let out = run(
            &mut d,
            [flow_event(flow(
                true,
                "10.0.0.5",
                "198.51.100.7",
                6,
                6667,
                at,
            ))],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].severity, None);
        assert_eq!(out[0].role, ResourceRole::Actor);
    }

    #[test]
    fn inbound_ephemeral_ports_and_unanswered_attempts_are_never_judged() {
        let mut d = NetworkPortUnusualDetector::new(config());
        run(&mut d, learn("2001:db8::5", "2001:db8:9::7"));
        let at = T0 + 3 * HOUR;
        let mut unanswered = flow(true, "2001:db8::5", "2001:db8:9::7", 6, 4444, at);
        unanswered.remote_answered = false;
        let out = run(
            &mut d,
            [
                flow_event(flow(false, "2001:db8::5", "2001:db8:9::7", 6, 40_000, at)),
                flow_event(unanswered),
            ],
        );
        assert!(out.is_empty());
        let inbound = run(
            &mut d,
            [flow_event(flow(
                false,
                "2001:db8::5",
                "2001:db8:9::7",
                6,
                3306,
                at,
            ))],
        );
        assert_eq!(inbound.len(), 1);
        assert_eq!(inbound[0].role, ResourceRole::Target);
    }

    #[test]
    fn the_learning_thresholds_from_config_are_honoured() {
        let mut d = NetworkPortUnusualDetector::new(NetworkPortUnusualConfig {
            learning_secs: 4 * 3_600,
            ..config()
        });
        run(&mut d, learn("10.0.0.5", "198.51.100.7"));
        let out = run(
            &mut d,
            [flow_event(flow(
                true,
                "10.0.0.5",
                "198.51.100.7",
                6,
                6667,
                T0 + 3 * HOUR,
            ))],
        );
        assert!(
            out.is_empty(),
            "three hours is inside a four-hour learning period"
        );
        let out = run(
            &mut d,
            [flow_event(flow(
                true,
                "10.0.0.5",
                "198.51.100.7",
                6,
                6668,
                T0 + 5 * HOUR,
            ))],
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn the_baseline_survives_save_and_restore() {
        let mut d = NetworkPortUnusualDetector::new(config());
        run(&mut d, learn("10.0.0.5", "198.51.100.7"));
        let bytes = d.save_state().expect("state");
        let mut fresh = NetworkPortUnusualDetector::new(config());
        fresh.restore_state(&bytes).expect("restores");
        let at = T0 + 3 * HOUR;
        assert!(
            run(
                &mut fresh,
                [flow_event(flow(
                    true,
                    "10.0.0.5",
                    "198.51.100.7",
                    6,
                    443,
                    at
                ))]
            )
            .is_empty()
        );
        assert_eq!(
            run(
                &mut fresh,
                [flow_event(flow(
                    true,
                    "10.0.0.5",
                    "198.51.100.7",
                    6,
                    1389,
                    at
                ))]
            )
            .len(),
            1
        );
    }
}
