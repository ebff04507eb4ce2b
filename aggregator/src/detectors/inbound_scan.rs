//! `Recon:EC2/InboundPortscan` (Picket's own type, in GuardDuty's grammar): one remote address
//! probes many ports of the instance.
//!
//! GuardDuty has no such type: it reports an inbound probe only as
//! `Recon:EC2/PortProbeUnprotectedPort`, and only when the prober is on its scanner list (the
//! intel-hit detector does that here). A Zeek or Suricata user expects a scan to be named even
//! when the scanner is on no list, so this detector counts, per (instance, local address, remote
//! address) in a tumbling window, the distinct local ports the remote probed: the attempts the
//! agent folded under service port 0 (handshake never completed: a closed port answered by a
//! reset, or a filtered one), by their `distinct_ports`. A scan finds most ports closed, so
//! these carry it; answered connections (open services, brute force) never open a key, which
//! keeps the detector cheap on a busy server.
//! The window reports once, at Low severity, when it reaches `min_ports`: an internet-facing
//! host is scanned all day, so this is context for other findings, not an alarm.

use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::FlowSummary;
use serde::Deserialize;

use super::summary::{self, MAX_EXAMPLES};
use super::window::{NameKey, RemoteKey, WindowTable, keep_example};
use super::{
    Activity, BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, PortProbeActivity, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// `[detectors.inbound_scan]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundScanConfig {
    /// Distinct local ports one remote address probes within a window that make a scan.
    #[serde(default = "default_min_ports")]
    pub min_ports: NonZeroU32,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// Remote addresses tracked at once; the least recently seen is evicted beyond this.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for InboundScanConfig {
    fn default() -> Self {
        Self {
            min_ports: default_min_ports(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

fn default_min_ports() -> NonZeroU32 {
    // The same bar as the outbound scan: nmap's quickest scan (-F) probes 100 ports, while a
    // client reaching a handful of a server's services stays far below.
    NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN)
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(300).unwrap_or(NonZeroU32::MIN)
}

/// Whether `f` is what this detector counts: inbound TCP attempts the agent folded under
/// service port 0 (what `prefetch` and `observe` both check).
fn is_probe(f: &picket_proto::v1::FlowSummary) -> bool {
    summary::direction(f) == ConnectionDirection::Inbound && f.protocol == 6 && f.service_port == 0
}

// (instance, (local address, remote address)): the instance is the event's shared key, looked
// up borrowed, and the addresses its parsed ones, so a probe allocates no key and hashes no
// string.
type Key = (NameKey, (RemoteKey, RemoteKey));

#[derive(Debug, Default)]
struct Scan {
    /// The largest count of ports in one folded summary of failed attempts (not the sum:
    /// intervals may repeat ports).
    folded_ports: u64,
    flows: Vec<FlowSummary>,
}

/// Counts the instance's ports probed per remote address.
#[derive(Debug)]
pub struct InboundScanDetector {
    config: InboundScanConfig,
    table: WindowTable<Key, Scan>,
    probes: u64,
}

impl InboundScanDetector {
    /// A detector with `config`.
    pub fn new(config: InboundScanConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
            probes: 0,
        }
    }
}

impl Detector for InboundScanDetector {
    fn name(&self) -> &'static str {
        "inbound_scan"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn prefetch_inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    // As denial of service: a probe is mostly from a new remote, whose index slot has left
    // the cache; asked for here, it arrives meanwhile.
    fn prefetch(&self, event: &Event, facts: &EventFacts<'_>) {
        let (Some((_, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if !is_probe(f) {
            return;
        }
        // Addresses that are not addresses would be copied into the key: not worth a hint.
        if let (Some(local), Some(remote)) = (facts.local(), facts.remote()) {
            let addrs = (RemoteKey::Addr(local.ip), RemoteKey::Addr(remote.ip));
            self.table.prefetch_named(name, &addrs);
        }
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if !is_probe(f) {
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
        w.state.folded_ports = w.state.folded_ports.max(f.distinct_ports);
        keep_example(&mut w.state.flows, MAX_EXAMPLES, || f.clone());
        let seen = usize::try_from(w.state.folded_ports).unwrap_or(usize::MAX);
        if w.fired || seen < min as usize {
            return;
        }
        w.fired = true;
        let evidence = BehaviourEvidence {
            detector: "inbound_scan".to_owned(),
            window_ms,
            thresholds: vec![ThresholdCrossed {
                key: "detectors.inbound_scan.min_ports".into(),
                limit: f64::from(min),
                observed: seen as f64,
            }],
            example_names: Vec::new(),
            flows: std::mem::take(&mut w.state.flows),
            dns: Vec::new(),
            note: Some(format!(
                "{seen} ports refused or unanswered in one summary interval"
            )),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::ReconInboundPortscan,
                source,
                local_addr: &f.local_addr,
                role: ResourceRole::Target,
                activity: Activity::PortProbe(PortProbeActivity {
                    local_ip: f.local_addr.clone(),
                    local_port: f.service_port,
                    remote_ip: f.remote_addr.clone(),
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
        self.table.counters(&[("probes", self.probes)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, counter, flow, flow_event, run};
    use crate::findings::types::SeverityBand;

    /// What the agent sends for a SYN scan of the instance: one ingress summary of failed
    /// attempts under service port 0 counting the ports tried.
    fn folded(local: &str, remote: &str, ports: u64) -> Event {
        let mut f = flow(false, local, remote, 6, 0, T0);
        f.remote_answered = false;
        f.distinct_ports = ports;
        f.unanswered_syns = ports;
        f.resets = ports;
        flow_event(f)
    }

    /// An open port the scanner touched: answered, then reset after the handshake.
    fn open_probe(local: &str, remote: &str, port: u32, at: i64) -> Event {
        let mut f = flow(false, local, remote, 6, port, at);
        f.resets = 1;
        f.short_connections = 1;
        flow_event(f)
    }

    #[test]
    fn a_syn_scan_of_the_instance_from_an_unlisted_ipv4_or_ipv6_address_is_a_low_inbound_portscan()
    {
        for (local, remote) in [
            ("64.13.134.52", "172.16.0.8"),
            ("2001:db8::52", "2001:db8:bad::8"),
        ] {
            let mut d = InboundScanDetector::new(InboundScanConfig::default());
            let mut events = vec![folded(local, remote, 995)];
            events.extend([22, 53, 80, 443, 31337].map(|p| open_probe(local, remote, p, T0)));
            let out = run(&mut d, events);
            assert_eq!(out.len(), 1, "{remote}");
            let o = &out[0];
            assert_eq!(o.finding_type, FindingType::ReconInboundPortscan);
            assert_eq!(o.role, ResourceRole::Target);
            assert_eq!(o.activity.remote(), remote);
            assert_eq!(
                SeverityBand::of(o.severity.unwrap_or(o.finding_type.default_severity())),
                SeverityBand::Low
            );
        }
    }

    #[test]
    fn two_syns_clients_of_real_services_and_outbound_scans_are_not_an_inbound_portscan() {
        let mut d = InboundScanDetector::new(InboundScanConfig::default());
        // The suricata detection_filter capture: 2 SYNs, ports 80 and 81.
        assert!(run(&mut d, [folded("1.1.1.1", "3.3.3.3", 2)]).is_empty());
        assert!(run(&mut d, [folded("2001:db8::5", "2001:db8:1::7", 49)]).is_empty());
        // Long, answered conversations with sixty services: a client, not a prober.
        let served =
            (0..60).map(|p| flow_event(flow(false, "10.0.0.5", "198.51.100.7", 6, 2000 + p, T0)));
        assert!(run(&mut d, served).is_empty());
        // Our own scan of someone else is port_scan's business.
        let mut egress = flow(true, "10.0.0.5", "198.51.100.7", 6, 0, T0);
        egress.remote_answered = false;
        egress.distinct_ports = 1000;
        assert!(run(&mut d, [flow_event(egress)]).is_empty());
    }

    #[test]
    fn answered_probes_of_open_ports_alone_never_make_a_scan() {
        let mut d = InboundScanDetector::new(InboundScanConfig::default());
        let events = (0..80).map(|p| open_probe("10.0.0.5", "198.51.100.9", 8000 + p, T0));
        assert!(run(&mut d, events).is_empty());
        assert_eq!(d.table.len(), 0);
    }

    #[test]
    fn min_ports_and_the_window_from_config_are_honoured() {
        let mut d = InboundScanDetector::new(InboundScanConfig {
            min_ports: NonZeroU32::new(3).expect("3"),
            window_secs: NonZeroU32::new(10).expect("10"),
            ..InboundScanConfig::default()
        });
        assert!(run(&mut d, [folded("10.0.0.5", "198.51.100.9", 2)]).is_empty());
        assert_eq!(
            run(&mut d, [folded("10.0.0.5", "198.51.100.10", 3)]).len(),
            1
        );
        assert_eq!(counter(&d, "probes"), Some(2));
    }
}
