//! `CryptoCurrency:EC2/BitcoinTool.B` by behaviour: the instance speaks a mining or
//! crypto-currency peer-to-peer protocol, whatever the address (intel-list matches are the
//! intel-hit detector's job).
//!
//! Input: egress flow summaries. The agent tags payloads it recognises: `stratum` (Stratum /
//! JSON-RPC mining: `mining.subscribe`, `mining.authorize`, `login` with a wallet,
//! `eth_submitLogin`) on any port, and `bitcoin`/`monero` peer-to-peer handshakes. Without a
//! tag, an answered TCP session to a coin's default peer port (`p2p_ports`, Bitcoin's 8333 by
//! default) counts. Stateless: the finding engine aggregates per remote.

use serde::Deserialize;

use super::summary;
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole,
};
use crate::findings::types::FindingType;

/// Payload tags that mean crypto-currency activity.
pub const MINING_PROTOCOLS: [&str; 3] = ["stratum", "bitcoin", "monero"];

/// `[detectors.crypto_mining]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoMiningConfig {
    /// TCP ports whose answered sessions count without a payload tag (coin peer-to-peer ports).
    #[serde(default = "default_p2p_ports")]
    pub p2p_ports: Vec<u16>,
}

impl Default for CryptoMiningConfig {
    fn default() -> Self {
        Self {
            p2p_ports: default_p2p_ports(),
        }
    }
}

fn default_p2p_ports() -> Vec<u16> {
    // Bitcoin's default peer port. Monero's 18080 is left to the payload tag: too many other
    // services use ports near it.
    vec![8333]
}

/// Reports mining and coin peer-to-peer sessions.
#[derive(Debug)]
pub struct CryptoMiningDetector {
    config: CryptoMiningConfig,
}

impl CryptoMiningDetector {
    /// A detector with `config`.
    pub fn new(config: CryptoMiningConfig) -> Self {
        Self { config }
    }
}

impl Detector for CryptoMiningDetector {
    fn name(&self) -> &'static str {
        "crypto_mining"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Some((source, f)) = summary::flow(event) else {
            return;
        };
        if summary::direction(f) != ConnectionDirection::Outbound {
            return;
        }
        let app = f.app_protocol.trim();
        let tagged = MINING_PROTOCOLS
            .iter()
            .find(|p| p.eq_ignore_ascii_case(app));
        let note = match tagged {
            Some(p) => format!("payload identified as {p}"),
            None => {
                let port_hit = f.protocol == 6
                    && f.remote_answered
                    && app.is_empty()
                    && u16::try_from(f.service_port)
                        .is_ok_and(|p| self.config.p2p_ports.contains(&p));
                if !port_hit {
                    return;
                }
                format!(
                    "answered TCP session to crypto-currency peer port {}",
                    f.service_port
                )
            }
        };
        let evidence = BehaviourEvidence {
            detector: "crypto_mining".to_owned(),
            window_ms: 0,
            thresholds: Vec::new(),
            example_names: f.tls_server_names.clone(),
            flows: vec![f.clone()],
            dns: Vec::new(),
            note: Some(note),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::CryptoCurrencyBitcoinTool,
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
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, flow, flow_event, run};

    fn tagged(local: &str, remote: &str, port: u32, app: &str) -> Event {
        let mut f = flow(true, local, remote, 6, port, T0);
        f.app_protocol = app.into();
        flow_event(f)
    }

    fn detector() -> CryptoMiningDetector {
        CryptoMiningDetector::new(CryptoMiningConfig::default())
    }

    #[test]
    fn stratum_on_any_port_over_ipv4_and_ipv6_is_bitcoin_tool() {
        let out = run(
            &mut detector(),
            [
                tagged("10.0.0.5", "198.51.100.7", 443, "stratum"),
                tagged("2001:db8::5", "2001:db8:1::7", 14444, "Stratum"),
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|o| o.finding_type == FindingType::CryptoCurrencyBitcoinTool)
        );
    }

    #[test]
    fn an_answered_session_to_the_bitcoin_peer_port_is_bitcoin_tool() {
        let out = run(
            &mut detector(),
            [flow_event(flow(
                true,
                "2001:db8::5",
                "2001:db8:1::7",
                6,
                8333,
                T0,
            ))],
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn http_on_a_pool_port_and_unanswered_or_other_protocol_8333_are_not_mining() {
        let mut unanswered = flow(true, "10.0.0.5", "198.51.100.7", 6, 8333, T0);
        unanswered.remote_answered = false;
        let out = run(
            &mut detector(),
            [
                tagged("10.0.0.5", "198.51.100.7", 3333, "http"),
                flow_event(unanswered),
                tagged("2001:db8::5", "2001:db8:1::7", 8333, "tls"),
                flow_event(flow(false, "10.0.0.5", "198.51.100.7", 6, 8333, T0)),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn p2p_ports_from_config_are_honoured() {
        let mut d = CryptoMiningDetector::new(CryptoMiningConfig {
            p2p_ports: vec![18080],
        });
        assert!(
            run(
                &mut d,
                [flow_event(flow(
                    true,
                    "10.0.0.5",
                    "198.51.100.7",
                    6,
                    8333,
                    T0
                ))]
            )
            .is_empty()
        );
        assert_eq!(
            run(
                &mut d,
                [flow_event(flow(
                    true,
                    "10.0.0.5",
                    "198.51.100.7",
                    6,
                    18080,
                    T0
                ))]
            )
            .len(),
            1
        );
    }
}
