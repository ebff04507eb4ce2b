//! `DefenseEvasion:EC2/UnusualDoTActivity`: the instance resolves names over DNS over TLS
//! (TCP port 853), bypassing the VPC resolver and any DNS monitoring on it.
//!
//! Input: egress TCP flow summaries to port 853 (or tagged `app_protocol = "dot"`) that the
//! remote answered. Stateless: each such summary is one observation, aggregated by the finding
//! engine per remote. Remotes in `allowed_remotes` (an internal DoT resolver) are skipped.

use serde::Deserialize;

use super::summary;
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventKind,
    Observation, ResourceRole,
};
use crate::findings::types::FindingType;

/// DNS over TLS's port (RFC 7858 §3.1).
pub const DOT_PORT: u32 = 853;

/// `[detectors.unusual_dot]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnusualDotConfig {
    /// Remote addresses the instance may use for DNS over TLS (e.g. your own resolvers).
    #[serde(default)]
    pub allowed_remotes: Vec<std::net::IpAddr>,
}

/// Reports DNS over TLS sessions.
#[derive(Debug)]
pub struct UnusualDotDetector {
    config: UnusualDotConfig,
    allowed: u64,
}

impl UnusualDotDetector {
    /// A detector with `config`.
    pub fn new(config: UnusualDotConfig) -> Self {
        Self { config, allowed: 0 }
    }
}

impl Detector for UnusualDotDetector {
    fn name(&self) -> &'static str {
        "unusual_dot"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, out: &mut Vec<Observation>) {
        let Some((source, f)) = summary::flow(event) else {
            return;
        };
        let tagged = f.app_protocol.trim().eq_ignore_ascii_case("dot");
        if summary::direction(f) != ConnectionDirection::Outbound
            || f.protocol != 6
            || !(f.service_port == DOT_PORT || tagged)
            || !f.remote_answered
        {
            return;
        }
        if let Ok(remote) = f.remote_addr.parse::<std::net::IpAddr>() {
            if self.config.allowed_remotes.contains(&remote) {
                self.allowed += 1;
                return;
            }
        }
        let evidence = BehaviourEvidence {
            detector: "unusual_dot".to_owned(),
            window_ms: 0,
            thresholds: Vec::new(),
            example_names: f.tls_server_names.clone(),
            flows: vec![f.clone()],
            dns: Vec::new(),
            note: Some(if tagged {
                "payload identified as DNS over TLS".to_owned()
            } else {
                format!("answered TCP connection to port {DOT_PORT}")
            }),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::DefenseEvasionUnusualDoTActivity,
                source,
                local_addr: &f.local_addr,
                role: ResourceRole::Actor,
                activity: summary::network_activity(f),
                at_ms: summary::flow_time(f),
                severity: None,
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![DetectorCounter {
            name: "allowed_remote",
            count: self.allowed,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, flow, flow_event, run};

    fn detector() -> UnusualDotDetector {
        UnusualDotDetector::new(UnusualDotConfig::default())
    }

    #[test]
    fn answered_tcp_853_over_ipv4_and_ipv6_is_dot_activity() {
        let out = run(
            &mut detector(),
            [
                flow_event(flow(true, "10.0.0.5", "1.1.1.1", 6, 853, T0)),
                flow_event(flow(
                    true,
                    "2001:db8::5",
                    "2606:4700:4700::1111",
                    6,
                    853,
                    T0,
                )),
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|o| o.finding_type == FindingType::DefenseEvasionUnusualDoTActivity)
        );
        assert_eq!(out[1].activity.remote(), "2606:4700:4700::1111");
    }

    #[test]
    fn unanswered_853_inbound_853_and_plain_dns_are_not_dot() {
        let mut unanswered = flow(true, "10.0.0.5", "1.1.1.1", 6, 853, T0);
        unanswered.remote_answered = false;
        let out = run(
            &mut detector(),
            [
                flow_event(unanswered),
                flow_event(flow(false, "2001:db8::5", "2001:db8:1::7", 6, 853, T0)),
                flow_event(flow(true, "10.0.0.5", "1.1.1.1", 17, 53, T0)),
                flow_event(flow(true, "10.0.0.5", "1.1.1.1", 6, 443, T0)),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn allowed_remotes_from_config_are_honoured() {
        let mut d = UnusualDotDetector::new(UnusualDotConfig {
            allowed_remotes: vec!["10.0.0.53".parse().expect("addr")],
        });
        assert!(
            run(
                &mut d,
                [flow_event(flow(true, "10.0.0.5", "10.0.0.53", 6, 853, T0))]
            )
            .is_empty()
        );
        assert_eq!(
            run(
                &mut d,
                [flow_event(flow(true, "10.0.0.5", "10.0.0.54", 6, 853, T0))]
            )
            .len(),
            1
        );
    }
}
