//! `Recon:EC2/Portscan`: the instance probes many ports of one remote host.
//!
//! Input: egress TCP/UDP flow summaries. A summary is a probe when the remote never answered,
//! or a SYN went unanswered, or the connection was reset or short. Distinct probed service
//! ports are counted per (instance, local address, remote address) in a tumbling window; the
//! window reports once when the count reaches `min_ports`.

use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::FlowSummary;
use serde::Deserialize;

use super::summary::{self, MAX_EXAMPLES};
use super::window::{DistinctSet, NameKey, RemoteKey, WindowTable, keep_example};
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Distinct ports kept per key; far above any sensible `min_ports`.
const PORT_CAP: usize = 4096;

/// `[detectors.port_scan]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortScanConfig {
    /// Distinct ports of one remote host probed within a window that make a scan.
    #[serde(default = "default_min_ports")]
    pub min_ports: NonZeroU32,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// Remote hosts tracked at once; the least recently seen is evicted beyond this.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        Self {
            min_ports: default_min_ports(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

fn default_min_ports() -> NonZeroU32 {
    // nmap's quickest scan (-F) probes 100 ports; 50 leaves room for partial scans while a
    // client talking to a handful of services on one host stays far below.
    NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN)
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(300).unwrap_or(NonZeroU32::MIN)
}

// (instance, (local address, remote address)): the instance is the event's shared key, looked
// up borrowed, and the addresses its parsed ones, so a probe allocates no key and hashes no
// string.
type Key = (NameKey, (RemoteKey, RemoteKey));

#[derive(Debug, Default)]
struct Scan {
    ports: DistinctSet<u32>,
    /// Ports tried by attempts the agent folded into one summary: it keys TCP attempts that
    /// never completed a handshake under service port 0 and counts the ports they tried in
    /// `distinct_ports`. The largest such count in the window (not the sum: intervals may
    /// repeat ports).
    folded_ports: u64,
    flows: Vec<FlowSummary>,
}

/// Counts probed ports per remote host.
#[derive(Debug)]
pub struct PortScanDetector {
    config: PortScanConfig,
    table: WindowTable<Key, Scan>,
    probes: u64,
}

impl PortScanDetector {
    /// A detector with `config`.
    pub fn new(config: PortScanConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
            probes: 0,
        }
    }
}

/// Whether a summary looks like a probe rather than a conversation.
pub fn is_probe(f: &FlowSummary) -> bool {
    !f.remote_answered || f.unanswered_syns > 0 || f.resets > 0 || f.short_connections > 0
}

impl Detector for PortScanDetector {
    fn name(&self) -> &'static str {
        "port_scan"
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
        self.probes += 1;
        let at = summary::flow_time(f);
        let addrs = (
            RemoteKey::parsed(facts.local().map(|a| a.ip), &f.local_addr),
            RemoteKey::parsed(facts.remote().map(|a| a.ip), &f.remote_addr),
        );
        let min = self.config.min_ports.get();
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let w = self.table.window_named(name, addrs, at);
        if f.service_port == 0 {
            w.state.folded_ports = w.state.folded_ports.max(f.distinct_ports);
        } else {
            w.state.ports.insert(f.service_port, PORT_CAP);
        }
        keep_example(&mut w.state.flows, MAX_EXAMPLES, || f.clone());
        let seen = w
            .state
            .ports
            .len()
            .saturating_add(usize::try_from(w.state.folded_ports).unwrap_or(usize::MAX));
        if w.fired || seen < min as usize {
            return;
        }
        w.fired = true;
        // The agent's folded summary says how many ports; the example flows show which.
        let evidence = BehaviourEvidence {
            detector: "port_scan".to_owned(),
            window_ms,
            thresholds: vec![ThresholdCrossed {
                key: "detectors.port_scan.min_ports".into(),
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
                finding_type: FindingType::ReconPortscan,
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
        self.table.expire(now_ms);
    }

    fn tracked_keys(&self) -> usize {
        self.table.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        self.table.counters(&[("probes", self.probes)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, counter, flow, flow_event, run};

    fn probe(local: &str, remote: &str, port: u32, at: i64) -> Event {
        let mut f = flow(true, local, remote, 6, port, at);
        f.remote_answered = false;
        f.unanswered_syns = 1;
        flow_event(f)
    }

    fn scan(local: &str, remote: &str, ports: u32) -> Vec<Event> {
        (0..ports)
            .map(|p| probe(local, remote, 1000 + p, T0 + i64::from(p)))
            .collect()
    }

    #[test]
    fn fifty_probed_ports_of_one_ipv4_host_are_one_portscan() {
        let mut d = PortScanDetector::new(PortScanConfig::default());
        let out = run(&mut d, scan("10.0.0.5", "198.51.100.7", 60));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, FindingType::ReconPortscan);
        assert_eq!(out[0].role, ResourceRole::Actor);
        assert_eq!(out[0].activity.remote(), "198.51.100.7");
        let super::super::EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
            panic!("expected behaviour evidence");
        };
        assert_eq!(ev.thresholds[0].observed, 50.0);
        assert_eq!(ev.flows.len(), MAX_EXAMPLES);
    }

    /// The agent folds a host's failed attempts into one summary under service port 0 with
    /// `distinct_ports` counting the ports tried (a SYN scan of 1,000 ports is one record).
    fn folded(local: &str, remote: &str, ports: u64) -> Event {
        let mut f = flow(true, local, remote, 6, 0, T0);
        f.remote_answered = false;
        f.distinct_ports = ports;
        f.unanswered_syns = ports;
        flow_event(f)
    }

    #[test]
    fn a_folded_summary_of_many_failed_attempts_is_a_portscan_and_a_small_one_is_not() {
        let mut d = PortScanDetector::new(PortScanConfig::default());
        let out = run(&mut d, [folded("172.16.0.8", "64.13.134.52", 1000)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, FindingType::ReconPortscan);
        let mut d = PortScanDetector::new(PortScanConfig::default());
        assert!(run(&mut d, [folded("2001:db8::5", "2001:db8:1::7", 49)]).is_empty());
        let mut d = PortScanDetector::new(PortScanConfig::default());
        assert_eq!(
            run(&mut d, [folded("2001:db8::5", "2001:db8:1::7", 50)]).len(),
            1
        );
    }

    #[test]
    fn probed_ports_of_an_ipv6_host_are_a_portscan_too() {
        let mut d = PortScanDetector::new(PortScanConfig::default());
        let out = run(&mut d, scan("2001:db8::5", "2001:db8:1::7", 50));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].activity.remote(), "2001:db8:1::7");
    }

    #[test]
    fn forty_nine_ports_or_answered_conversations_are_not_a_scan() {
        let mut d = PortScanDetector::new(PortScanConfig::default());
        assert!(run(&mut d, scan("10.0.0.5", "198.51.100.7", 49)).is_empty());
        // Sixty answered, long-lived connections to different ports of one host: a client.
        let answered = (0..60)
            .map(|p| flow_event(flow(true, "2001:db8::5", "2001:db8:1::7", 6, 2000 + p, T0)));
        assert!(run(&mut d, answered).is_empty());
    }

    #[test]
    fn probes_spread_over_more_than_one_window_do_not_add_up() {
        let mut d = PortScanDetector::new(PortScanConfig::default());
        let events = (0..60).map(|p| {
            probe(
                "10.0.0.5",
                "198.51.100.7",
                1000 + p,
                T0 + i64::from(p) * 10_000,
            )
        });
        assert!(run(&mut d, events).is_empty());
    }

    #[test]
    fn min_ports_from_config_is_honoured() {
        let mut d = PortScanDetector::new(PortScanConfig {
            min_ports: NonZeroU32::new(5).expect("5"),
            ..PortScanConfig::default()
        });
        assert_eq!(run(&mut d, scan("10.0.0.5", "198.51.100.7", 5)).len(), 1);
        assert_eq!(counter(&d, "probes"), Some(5));
    }

    #[test]
    fn the_remote_table_is_capped_and_evictions_are_counted() {
        let mut d = PortScanDetector::new(PortScanConfig {
            max_keys: NonZeroUsize::new(3).expect("3"),
            ..PortScanConfig::default()
        });
        let events = (0..10).map(|i| {
            probe(
                "10.0.0.5",
                &format!("198.51.100.{i}"),
                80,
                T0 + i64::from(i),
            )
        });
        run(&mut d, events);
        assert_eq!(d.table.len(), 3);
        assert_eq!(counter(&d, "evicted_full"), Some(7));
    }
}
