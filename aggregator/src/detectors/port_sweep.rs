//! `Impact:EC2/PortSweep`: the instance probes one port on many remote hosts.
//!
//! Input: egress TCP/UDP flow summaries that look like probes (see
//! [`super::port_scan::is_probe`]). Distinct remote addresses are counted per (instance,
//! protocol, service port) in a tumbling window; the window reports once at `min_hosts`.
//! Answered conversations never count, so a crawler or a client of many web servers is not a
//! sweep.

use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::FlowSummary;
use serde::Deserialize;

use super::port_scan::is_probe;
use super::summary::{self, MAX_EXAMPLES};
use super::window::{DistinctSet, NameKey, WindowTable, keep_example};
use super::{
    Activity, BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, PortProbeActivity, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Distinct hosts kept per port; far above any sensible `min_hosts`.
const HOST_CAP: usize = 4096;

/// `[detectors.port_sweep]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSweepConfig {
    /// Distinct remote hosts probed on one port within a window that make a sweep.
    #[serde(default = "default_min_hosts")]
    pub min_hosts: NonZeroU32,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// Ports tracked at once; the least recently seen is evicted beyond this.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for PortSweepConfig {
    fn default() -> Self {
        Self {
            min_hosts: default_min_hosts(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

fn default_min_hosts() -> NonZeroU32 {
    NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN)
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(300).unwrap_or(NonZeroU32::MIN)
}

// (instance, (protocol, port)): the instance is the event's shared key, looked up borrowed,
// so a probe allocates no key and hashes no string.
type Key = (NameKey, (u32, u32));

#[derive(Debug, Default)]
struct Sweep {
    hosts: DistinctSet<String>,
    first_remote: Option<String>,
    flows: Vec<FlowSummary>,
}

/// Counts probed hosts per port.
#[derive(Debug)]
pub struct PortSweepDetector {
    config: PortSweepConfig,
    table: WindowTable<Key, Sweep>,
}

impl PortSweepDetector {
    /// A detector with `config`.
    pub fn new(config: PortSweepConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
        }
    }
}

impl Detector for PortSweepDetector {
    fn name(&self) -> &'static str {
        "port_sweep"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if summary::direction(f) != ConnectionDirection::Outbound
            || !matches!(f.protocol, 6 | 17)
            || !is_probe(f)
        {
            return;
        }
        let at = summary::flow_time(f);
        let min = self.config.min_hosts.get();
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let w = self
            .table
            .window_named(name, (f.protocol, f.service_port), at);
        w.state.hosts.insert(f.remote_addr.clone(), HOST_CAP);
        if w.state.first_remote.is_none() {
            w.state.first_remote = Some(f.remote_addr.clone());
        }
        keep_example(&mut w.state.flows, MAX_EXAMPLES, || f.clone());
        let seen = w.state.hosts.len();
        if w.fired || seen < min as usize {
            return;
        }
        w.fired = true;
        // The first host of the window names the finding, so one sweep is one finding.
        let remote = w
            .state
            .first_remote
            .clone()
            .unwrap_or_else(|| f.remote_addr.clone());
        let evidence = BehaviourEvidence {
            detector: "port_sweep".to_owned(),
            window_ms,
            thresholds: vec![ThresholdCrossed {
                key: "detectors.port_sweep.min_hosts".into(),
                limit: f64::from(min),
                observed: seen as f64,
            }],
            example_names: Vec::new(),
            flows: std::mem::take(&mut w.state.flows),
            dns: Vec::new(),
            note: None,
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::ImpactPortSweep,
                source,
                local_addr: &f.local_addr,
                role: ResourceRole::Actor,
                activity: Activity::PortProbe(PortProbeActivity {
                    local_ip: f.local_addr.clone(),
                    local_port: f.service_port,
                    remote_ip: remote,
                }),
                at_ms: at,
                severity: None,
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        self.table.expire(now_ms);
    }

    fn tracked_keys(&self) -> usize {
        self.table.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        self.table.counters(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, flow, flow_event, run};

    fn probe(local: &str, remote: String, port: u32, at: i64) -> Event {
        let mut f = flow(true, local, &remote, 6, port, at);
        f.remote_answered = false;
        f.unanswered_syns = 1;
        flow_event(f)
    }

    #[test]
    fn one_port_probed_on_fifty_ipv4_hosts_is_a_sweep() {
        let mut d = PortSweepDetector::new(PortSweepConfig::default());
        let events = (0..60).map(|i| {
            probe(
                "10.0.0.5",
                format!("198.51.100.{i}"),
                6379,
                T0 + i64::from(i),
            )
        });
        let out = run(&mut d, events);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, FindingType::ImpactPortSweep);
        assert!(
            matches!(&out[0].activity, Activity::PortProbe(p) if p.local_port == 6379 && p.remote_ip == "198.51.100.0")
        );
    }

    #[test]
    fn one_port_probed_on_fifty_ipv6_hosts_is_a_sweep() {
        let mut d = PortSweepDetector::new(PortSweepConfig::default());
        let events = (0..50).map(|i| probe("2001:db8::5", format!("2001:db8:1::{i:x}"), 22, T0));
        assert_eq!(run(&mut d, events).len(), 1);
    }

    #[test]
    fn answered_connections_to_many_hosts_or_probes_of_different_ports_are_not_a_sweep() {
        let mut d = PortSweepDetector::new(PortSweepConfig::default());
        let answered = (0..80).map(|i| {
            flow_event(flow(
                true,
                "10.0.0.5",
                &format!("198.51.100.{i}"),
                6,
                443,
                T0,
            ))
        });
        assert!(run(&mut d, answered).is_empty());
        let spread =
            (0..80).map(|i| probe("2001:db8::5", format!("2001:db8:1::{i:x}"), 1000 + i, T0));
        assert!(run(&mut d, spread).is_empty());
    }

    #[test]
    fn min_hosts_from_config_is_honoured() {
        let mut d = PortSweepDetector::new(PortSweepConfig {
            min_hosts: NonZeroU32::new(100).expect("100"),
            ..PortSweepConfig::default()
        });
        let events = (0..99).map(|i| probe("10.0.0.5", format!("198.51.{}.1", i), 22, T0));
        assert!(run(&mut d, events).is_empty());
        assert_eq!(
            run(&mut d, [probe("10.0.0.5", "203.0.113.9".into(), 22, T0)]).len(),
            1
        );
    }
}
