//! `Backdoor:EC2/DenialOfService.Tcp/.Udp/.Dns/.UdpOnTcpPorts/.UnusualProtocol`: the instance
//! sends a flood to a public address.
//!
//! Input: egress flow summaries to public addresses. Packets out and in are summed per
//! (instance, remote, class) in a tumbling window, the class coming from the protocol and
//! service port. A window reports once when packets out reach `min_packets` and the remote
//! answered at most `max_reply_ratio` of them: a flood is one-sided, while a big upload gets
//! acknowledgements back. The evidence keeps up to five summaries from the second half of
//! the way to `min_packets`, so windows that stay quiet copy none.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};

use picket_proto::v1::FlowSummary;
use serde::Deserialize;

use super::summary::{self, MAX_EXAMPLES};
use super::window::{NameKey, WindowTable, keep_example};
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Ports of TCP services; UDP floods aimed at them get their own type, as GuardDuty's.
const TCP_SERVICE_PORTS: [u32; 12] = [21, 22, 23, 25, 80, 110, 143, 443, 445, 993, 3389, 8080];

/// `[detectors.denial_of_service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenialOfServiceConfig {
    /// Packets sent to one remote within a window that make a flood.
    #[serde(default = "default_min_packets")]
    pub min_packets: NonZeroU64,
    /// Largest share (0–1) of packets answered for the traffic to still count as a flood.
    #[serde(default = "default_max_reply_ratio")]
    pub max_reply_ratio: f64,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// (remote, class) pairs tracked at once; the least recently seen is evicted beyond this.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for DenialOfServiceConfig {
    fn default() -> Self {
        Self {
            min_packets: default_min_packets(),
            max_reply_ratio: default_max_reply_ratio(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

impl DenialOfServiceConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(0.0..=1.0).contains(&self.max_reply_ratio) {
            problems.push(format!(
                "detectors.denial_of_service.max_reply_ratio must be in [0, 1], got {}",
                self.max_reply_ratio
            ));
        }
    }
}

fn default_min_packets() -> NonZeroU64 {
    // 100k packets a minute (about 1,700 per second) to one address is far beyond any client.
    NonZeroU64::new(100_000).unwrap_or(NonZeroU64::MIN)
}
fn default_max_reply_ratio() -> f64 {
    0.1
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN)
}

/// The finding type for a flood of `protocol` to `port`.
pub fn class(protocol: u32, port: u32) -> FindingType {
    match protocol {
        6 => FindingType::BackdoorDenialOfServiceTcp,
        17 if port == 53 => FindingType::BackdoorDenialOfServiceDns,
        17 if TCP_SERVICE_PORTS.contains(&port) => {
            FindingType::BackdoorDenialOfServiceUdpOnTcpPorts
        }
        17 => FindingType::BackdoorDenialOfServiceUdp,
        _ => FindingType::BackdoorDenialOfServiceUnusualProtocol,
    }
}

// Only the sums the threshold test reads are inline; the examples, which nearly every window
// never takes, sit behind one pointer, so a window is smaller and more of the table stays in
// the cache.
#[derive(Debug, Default)]
struct Volume {
    packets_out: u64,
    packets_in: u64,
    bytes_out: u64,
    #[expect(
        clippy::box_collection,
        reason = "boxed for the window's size: 8 bytes inline instead of a Vec's 24"
    )]
    flows: Option<Box<Vec<FlowSummary>>>,
}

/// Sums outbound packets per public remote.
#[derive(Debug)]
pub struct DenialOfServiceDetector {
    config: DenialOfServiceConfig,
    // Keyed by (instance, (remote, class)); the instance is the event's shared key, looked
    // up borrowed, so a record allocates no key and hashes no string.
    table: WindowTable<(NameKey, (IpAddr, FindingType)), Volume>,
    not_public: u64,
}

impl DenialOfServiceDetector {
    /// A detector with `config`.
    pub fn new(config: DenialOfServiceConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
            not_public: 0,
        }
    }
}

impl Detector for DenialOfServiceDetector {
    fn name(&self) -> &'static str {
        "denial_of_service"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn prefetch_inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    // Nearly every egress summary in a busy fleet is a new (remote, class) whose lookup
    // missed the cache in the table's index: asked for here, the slot arrives while the
    // detectors before this one work.
    fn prefetch(&self, event: &Event, facts: &EventFacts<'_>) {
        let (Some((_, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if summary::direction(f) != ConnectionDirection::Outbound || f.packets_out == 0 {
            return;
        }
        if let Some(remote) = facts.remote().filter(|a| a.public) {
            let t = class(f.protocol, f.service_port);
            self.table.prefetch_named(name, &(remote.ip, t));
        }
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        if summary::direction(f) != ConnectionDirection::Outbound || f.packets_out == 0 {
            return;
        }
        let Some(remote) = facts.remote().filter(|a| a.public) else {
            self.not_public += 1;
            return;
        };
        let t = class(f.protocol, f.service_port);
        let at = summary::flow_time(f);
        let min = self.config.min_packets.get();
        let max_ratio = self.config.max_reply_ratio;
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let w = self.table.window_named(name, (remote.ip, t), at);
        let v = &mut w.state;
        v.packets_out = v.packets_out.saturating_add(f.packets_out);
        v.packets_in = v.packets_in.saturating_add(f.packets_in);
        v.bytes_out = v.bytes_out.saturating_add(f.bytes_out);
        // Examples come from the second half of the way to the threshold: a window that never
        // gets there (nearly all of them) then never copies a summary.
        if v.packets_out.saturating_mul(2) >= min {
            keep_example(v.flows.get_or_insert_default(), MAX_EXAMPLES, || f.clone());
        }
        if w.fired || v.packets_out < min {
            return;
        }
        let ratio = v.packets_in as f64 / v.packets_out as f64;
        if ratio > max_ratio {
            return;
        }
        w.fired = true;
        let evidence = BehaviourEvidence {
            detector: "denial_of_service".to_owned(),
            window_ms,
            thresholds: vec![
                ThresholdCrossed {
                    key: "detectors.denial_of_service.min_packets".into(),
                    limit: min as f64,
                    observed: v.packets_out as f64,
                },
                ThresholdCrossed {
                    key: "detectors.denial_of_service.max_reply_ratio".into(),
                    limit: max_ratio,
                    observed: ratio,
                },
            ],
            example_names: Vec::new(),
            flows: v.flows.take().map(|flows| *flows).unwrap_or_default(),
            dns: Vec::new(),
            note: Some(format!("{} bytes sent in the window", v.bytes_out)),
        };
        out.push(
            summary::ObservationParts {
                finding_type: t,
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
        self.table.counters(&[("not_public", self.not_public)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, counter, flow, flow_event, run};

    fn flood(local: &str, remote: &str, protocol: u32, port: u32, out: u64, back: u64) -> Event {
        let mut f = flow(true, local, remote, protocol, port, T0);
        f.packets_out = out;
        f.packets_in = back;
        f.bytes_out = out * 60;
        flow_event(f)
    }

    fn detector() -> DenialOfServiceDetector {
        DenialOfServiceDetector::new(DenialOfServiceConfig::default())
    }

    #[test]
    fn each_protocol_and_port_maps_to_its_dos_type_over_ipv4_and_ipv6() {
        use FindingType as T;
        let cases = [
            ("198.51.100.7", 6, 80, T::BackdoorDenialOfServiceTcp),
            ("2001:db8:1::7", 17, 53, T::BackdoorDenialOfServiceDns),
            (
                "198.51.100.8",
                17,
                443,
                T::BackdoorDenialOfServiceUdpOnTcpPorts,
            ),
            ("2001:db8:1::8", 17, 27015, T::BackdoorDenialOfServiceUdp),
            (
                "198.51.100.9",
                47,
                0,
                T::BackdoorDenialOfServiceUnusualProtocol,
            ),
        ];
        let mut d = detector();
        for (remote, protocol, port, expected) in cases {
            let local = if remote.contains(':') {
                "2001:db8::5"
            } else {
                "10.0.0.5"
            };
            let out = run(&mut d, [flood(local, remote, protocol, port, 150_000, 10)]);
            assert_eq!(out.len(), 1, "{remote}");
            assert_eq!(out[0].finding_type, expected, "{remote}");
        }
    }

    #[test]
    fn an_acknowledged_upload_a_private_target_or_a_smaller_burst_is_not_a_flood() {
        let mut d = detector();
        let out = run(
            &mut d,
            [
                flood("10.0.0.5", "198.51.100.7", 6, 443, 200_000, 100_000),
                flood("10.0.0.5", "10.0.9.9", 17, 9999, 500_000, 0),
                flood("2001:db8::5", "fd00::9", 17, 9999, 500_000, 0),
                flood("2001:db8::5", "2001:db8:1::7", 17, 9999, 99_999, 0),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(counter(&d, "not_public"), Some(2));
    }

    #[test]
    fn thresholds_from_config_are_honoured_and_a_bad_ratio_is_named() {
        let mut d = DenialOfServiceDetector::new(DenialOfServiceConfig {
            min_packets: NonZeroU64::new(1_000).expect("1000"),
            ..DenialOfServiceConfig::default()
        });
        assert_eq!(
            run(
                &mut d,
                [flood("10.0.0.5", "198.51.100.7", 17, 9999, 1_000, 0)]
            )
            .len(),
            1
        );
        let mut problems = Vec::new();
        DenialOfServiceConfig {
            max_reply_ratio: -0.5,
            ..DenialOfServiceConfig::default()
        }
        .check(&mut problems);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("max_reply_ratio") && problems[0].contains("-0.5"));
    }
}
