//! `UnauthorizedAccess:EC2/MetadataDNSRebind`: a name the instance resolved answered with the
//! instance metadata address (169.254.169.254 or fd00:ec2::254), the first step of a DNS
//! rebinding attack on the metadata service.
//!
//! Input: DNS summaries' answers. Stateless: every such summary is one observation (the
//! finding engine aggregates repeats). Names under `allowed_suffixes` (AWS's own
//! `instance-data.ec2.internal` and similar) are expected to resolve there and are skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use super::summary;
use super::{
    BehaviourEvidence, Detector, DetectorCounter, Event, EventFacts, EventKind, Observation,
    ResourceRole,
};
use crate::findings::types::FindingType;

/// The IPv4 instance metadata address.
pub const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The IPv6 instance metadata address (Nitro instances).
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// `[detectors.metadata_dns_rebind]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataDnsRebindConfig {
    /// Name suffixes that may legitimately resolve to the metadata address.
    #[serde(default = "default_allowed_suffixes")]
    pub allowed_suffixes: Vec<String>,
}

impl Default for MetadataDnsRebindConfig {
    fn default() -> Self {
        Self {
            allowed_suffixes: default_allowed_suffixes(),
        }
    }
}

fn default_allowed_suffixes() -> Vec<String> {
    // `instance-data.ec2.internal` (and the regional `*.compute.internal`) are AWS's own names
    // for the metadata service.
    vec![".internal".to_owned()]
}

/// Whether `data` (an A/AAAA answer's text) is a metadata address.
pub fn is_metadata_address(data: &str) -> bool {
    match data.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4 == METADATA_V4,
        Ok(IpAddr::V6(v6)) => {
            v6 == METADATA_V6 || v6.to_ipv4_mapped().is_some_and(|v4| v4 == METADATA_V4)
        }
        Err(_) => false,
    }
}

/// Reports names answered with the metadata address.
#[derive(Debug)]
pub struct MetadataDnsRebindDetector {
    config: MetadataDnsRebindConfig,
    allowed: u64,
}

impl MetadataDnsRebindDetector {
    /// A detector with `config`.
    pub fn new(config: MetadataDnsRebindConfig) -> Self {
        Self { config, allowed: 0 }
    }

    fn allowed(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.config.allowed_suffixes.iter().any(|s| {
            // A suffix matches whole labels only: `.internal` allows `ec2.internal`, not
            // `evilinternal`.
            let s = s.trim_matches('.').to_ascii_lowercase();
            name == s
                || name
                    .strip_suffix(s.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

impl Detector for MetadataDnsRebindDetector {
    fn name(&self) -> &'static str {
        "metadata_dns_rebind"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Dns]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Some((source, d)) = summary::dns(event) else {
            return;
        };
        let Some(answer) = d.answers.iter().find(|a| is_metadata_address(&a.data)) else {
            return;
        };
        let name = if answer.name.is_empty() {
            d.registered_domain.as_str()
        } else {
            answer.name.as_str()
        };
        if self.allowed(name) {
            self.allowed += 1;
            return;
        }
        let evidence = BehaviourEvidence {
            detector: "metadata_dns_rebind".to_owned(),
            window_ms: 0,
            thresholds: Vec::new(),
            example_names: vec![name.trim_end_matches('.').to_owned()],
            flows: Vec::new(),
            dns: vec![d.clone()],
            note: Some(format!(
                "{} answer {} for {name}",
                answer.rtype, answer.data
            )),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::UnauthorizedAccessMetadataDnsRebind,
                source,
                local_addr: &d.client_addr,
                role: ResourceRole::Actor,
                activity: summary::dns_activity(name.trim_end_matches('.')),
                at_ms: summary::dns_time(d),
                severity: None,
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![DetectorCounter {
            name: "allowed_name",
            count: self.allowed,
        }]
    }
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::DnsAnswer;

    use super::*;
    use crate::detectors::testing::{T0, counter, dns, dns_event, run};

    fn answered(client: &str, name: &str, rtype: &str, data: &str) -> Event {
        let mut d = dns(client, "rebind.example", 1, T0);
        d.answers = vec![DnsAnswer {
            name: name.into(),
            rtype: rtype.into(),
            data: data.into(),
            ttl: 0,
        }];
        dns_event(d)
    }

    fn detector() -> MetadataDnsRebindDetector {
        MetadataDnsRebindDetector::new(MetadataDnsRebindConfig::default())
    }

    #[test]
    fn an_a_answer_of_the_ipv4_metadata_address_is_a_rebind() {
        let out = run(
            &mut detector(),
            [answered(
                "10.0.0.5",
                "x.rebind.example.",
                "A",
                "169.254.169.254",
            )],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::UnauthorizedAccessMetadataDnsRebind
        );
        assert_eq!(out[0].activity.remote(), "x.rebind.example");
    }

    #[test]
    fn an_aaaa_answer_of_the_ipv6_metadata_address_is_a_rebind() {
        let out = run(
            &mut detector(),
            [answered(
                "2001:db8::5",
                "y.rebind.example",
                "AAAA",
                "fd00:ec2:0::254",
            )],
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn neighbouring_addresses_and_aws_internal_names_are_not_rebinds() {
        let mut d = detector();
        let out = run(
            &mut d,
            [
                answered("10.0.0.5", "x.rebind.example", "A", "169.254.169.253"),
                answered("2001:db8::5", "y.rebind.example", "AAAA", "fd00:ec2::253"),
                answered(
                    "10.0.0.5",
                    "instance-data.ec2.internal",
                    "A",
                    "169.254.169.254",
                ),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(counter(&d, "allowed_name"), Some(1));
    }

    #[test]
    fn allowed_suffixes_from_config_are_honoured() {
        let mut d = MetadataDnsRebindDetector::new(MetadataDnsRebindConfig {
            allowed_suffixes: vec!["rebind.example".into()],
        });
        assert!(
            run(
                &mut d,
                [answered(
                    "10.0.0.5",
                    "x.rebind.example",
                    "A",
                    "169.254.169.254"
                )]
            )
            .is_empty()
        );
        assert_eq!(
            run(
                &mut d,
                [answered(
                    "10.0.0.5",
                    "instance-data.ec2.internal",
                    "A",
                    "169.254.169.254"
                )]
            )
            .len(),
            1
        );
    }
}
