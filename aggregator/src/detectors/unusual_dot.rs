//! `DefenseEvasion:EC2/UnusualDoTActivity`: the instance resolves names over DNS over TLS
//! (TCP port 853), bypassing the VPC resolver and any DNS monitoring on it.
//!
//! Input: egress TCP flow summaries to port 853 (or tagged `app_protocol = "dot"`) that the
//! remote answered. Stateless: each such summary is one observation, aggregated by the finding
//! engine per remote. Remotes in `allowed_remotes` (an internal DoT resolver) are skipped.
//!
//! GuardDuty's finding means "unusual for this instance". Operating systems' private-DNS
//! features (Android's "Private DNS", systemd-resolved's `DNSOverTLS=opportunistic`) talk DoT
//! to the big public resolvers as a matter of course, so DoT to a well-known public resolver
//! (by address or TLS server name: [`PUBLIC_DOT_ADDRESSES`], [`PUBLIC_DOT_NAMES`], plus
//! `public_resolvers`) is still reported, for the record, but at `public_resolver_severity`
//! (Low by default). DoT to any other server (a tunnel endpoint, an attacker's resolver) keeps
//! the type's Medium severity.

use std::net::IpAddr;

use serde::Deserialize;

use super::summary;
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole,
};
use crate::findings::types::FindingType;

/// DNS over TLS's port (RFC 7858 §3.1).
pub const DOT_PORT: u32 = 853;

/// Addresses of well-known public resolvers that serve DNS over TLS (Google, Cloudflare,
/// Quad9, AdGuard, CleanBrowsing), from the providers' own documentation.
pub const PUBLIC_DOT_ADDRESSES: &[&str] = &[
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "1.1.1.1",
    "1.0.0.1",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "1.1.1.2",
    "1.0.0.2",
    "1.1.1.3",
    "1.0.0.3",
    "9.9.9.9",
    "149.112.112.112",
    "2620:fe::fe",
    "2620:fe::9",
    "94.140.14.14",
    "94.140.15.15",
    "2a10:50c0::ad1:ff",
    "2a10:50c0::ad2:ff",
    "185.228.168.9",
    "185.228.169.9",
];

/// TLS server names of well-known public DoT resolvers (the names their documentation tells
/// clients to configure).
pub const PUBLIC_DOT_NAMES: &[&str] = &[
    "dns.google",
    "dns.google.com",
    "one.one.one.one",
    "1dot1dot1dot1.cloudflare-dns.com",
    "cloudflare-dns.com",
    "security.cloudflare-dns.com",
    "family.cloudflare-dns.com",
    "dns.quad9.net",
    "dns9.quad9.net",
    "dns10.quad9.net",
    "dns11.quad9.net",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "family-filter-dns.cleanbrowsing.org",
    "security-filter-dns.cleanbrowsing.org",
];

/// `[detectors.unusual_dot]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnusualDotConfig {
    /// Remote addresses the instance may use for DNS over TLS (e.g. your own resolvers).
    #[serde(default)]
    pub allowed_remotes: Vec<IpAddr>,
    /// More well-known public resolvers (addresses or TLS server names) beside the built-in
    /// list; DoT to them is reported at `public_resolver_severity`.
    #[serde(default)]
    pub public_resolvers: Vec<String>,
    /// Severity (1–10) of DoT to a well-known public resolver; Low by default because an OS's
    /// private-DNS feature does it routinely.
    #[serde(default = "default_public_resolver_severity")]
    pub public_resolver_severity: f64,
}

impl Default for UnusualDotConfig {
    fn default() -> Self {
        Self {
            allowed_remotes: Vec::new(),
            public_resolvers: Vec::new(),
            public_resolver_severity: default_public_resolver_severity(),
        }
    }
}

fn default_public_resolver_severity() -> f64 {
    2.0
}

impl UnusualDotConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(1.0..=10.0).contains(&self.public_resolver_severity) {
            problems.push(format!(
                "detectors.unusual_dot.public_resolver_severity must be in [1, 10], got {}",
                self.public_resolver_severity
            ));
        }
        for (i, r) in self.public_resolvers.iter().enumerate() {
            if r.trim().is_empty() {
                problems.push(format!(
                    "detectors.unusual_dot.public_resolvers[{i}] is empty"
                ));
            }
        }
    }
}

/// Reports DNS over TLS sessions.
#[derive(Debug)]
pub struct UnusualDotDetector {
    config: UnusualDotConfig,
    public_addresses: Vec<IpAddr>,
    public_names: Vec<String>,
    allowed: u64,
    public: u64,
}

impl UnusualDotDetector {
    /// A detector with `config`.
    pub fn new(config: UnusualDotConfig) -> Self {
        let mut public_addresses: Vec<IpAddr> = PUBLIC_DOT_ADDRESSES
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let mut public_names: Vec<String> =
            PUBLIC_DOT_NAMES.iter().map(|s| (*s).to_owned()).collect();
        for r in &config.public_resolvers {
            match r.trim().parse::<IpAddr>() {
                Ok(a) => public_addresses.push(a),
                Err(_) => public_names.push(r.trim().trim_end_matches('.').to_ascii_lowercase()),
            }
        }
        Self {
            config,
            public_addresses,
            public_names,
            allowed: 0,
            public: 0,
        }
    }

    /// What makes the server a well-known public resolver, if it is one.
    fn public_resolver(&self, remote: Option<IpAddr>, server_names: &[String]) -> Option<String> {
        if let Some(a) = remote.filter(|a| self.public_addresses.contains(a)) {
            return Some(format!("address {a}"));
        }
        server_names
            .iter()
            .find(|n| {
                let n = n.trim_end_matches('.');
                self.public_names.iter().any(|p| p.eq_ignore_ascii_case(n))
            })
            .map(|n| format!("TLS server name {n}"))
    }
}

impl Detector for UnusualDotDetector {
    fn name(&self) -> &'static str {
        "unusual_dot"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
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
        let remote = facts.remote().map(|a| a.ip);
        if remote.is_some_and(|r| self.config.allowed_remotes.contains(&r)) {
            self.allowed += 1;
            return;
        }
        let how = if tagged {
            "payload identified as DNS over TLS".to_owned()
        } else {
            format!("answered TCP connection to port {DOT_PORT}")
        };
        let public = self.public_resolver(remote, &f.tls_server_names);
        let (severity, note) = match public {
            Some(why) => {
                self.public += 1;
                (
                    Some(self.config.public_resolver_severity),
                    format!(
                        "{how}; a well-known public resolver ({why}), as an OS's private-DNS setting uses"
                    ),
                )
            }
            None => (None, format!("{how}; not a well-known public resolver")),
        };
        let evidence = BehaviourEvidence {
            detector: "unusual_dot".to_owned(),
            window_ms: 0,
            thresholds: Vec::new(),
            example_names: f.tls_server_names.clone(),
            flows: vec![f.clone()],
            dns: Vec::new(),
            note: Some(note),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::DefenseEvasionUnusualDoTActivity,
                source,
                local_addr: &f.local_addr,
                role: ResourceRole::Actor,
                activity: summary::network_activity(f),
                at_ms: summary::flow_time(f),
                severity,
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "allowed_remote",
                count: self.allowed,
            },
            DetectorCounter {
                name: "public_resolver",
                count: self.public,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, counter, flow, flow_event, run};

    fn detector() -> UnusualDotDetector {
        UnusualDotDetector::new(UnusualDotConfig::default())
    }

    use crate::findings::types::SeverityBand;

    fn band(o: &Observation) -> SeverityBand {
        SeverityBand::of(o.severity.unwrap_or(o.finding_type.default_severity()))
    }

    #[test]
    fn dot_to_an_unknown_server_over_ipv4_and_ipv6_is_medium() {
        let out = run(
            &mut detector(),
            [
                flow_event(flow(true, "10.0.0.5", "203.0.113.53", 6, 853, T0)),
                flow_event(flow(true, "2001:db8::5", "2001:db8:53::1", 6, 853, T0)),
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|o| o.finding_type == FindingType::DefenseEvasionUnusualDoTActivity)
        );
        assert!(
            out.iter().all(|o| band(o) == SeverityBand::Medium),
            "{out:?}"
        );
        assert_eq!(out[1].activity.remote(), "2001:db8:53::1");
    }

    #[test]
    fn dot_to_a_well_known_public_resolver_is_low_by_address_or_server_name() {
        // Android's Private DNS: dns.google on 8.8.8.8 / 2001:4860:4860::8888.
        let mut by_name = flow(true, "10.0.0.5", "198.51.100.53", 6, 853, T0);
        by_name.tls_server_names = vec!["DNS.Google.".into()];
        let mut d = detector();
        let out = run(
            &mut d,
            [
                flow_event(flow(true, "10.0.0.5", "8.8.8.8", 6, 853, T0)),
                flow_event(flow(
                    true,
                    "2001:db8::5",
                    "2001:4860:4860::8888",
                    6,
                    853,
                    T0,
                )),
                flow_event(by_name),
            ],
        );
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| band(o) == SeverityBand::Low), "{out:?}");
        assert_eq!(counter(&d, "public_resolver"), Some(3));
        // A look-alike name is not the resolver.
        let mut lookalike = flow(true, "10.0.0.5", "198.51.100.53", 6, 853, T0);
        lookalike.tls_server_names = vec!["dns.google.example.com".into()];
        let out = run(&mut d, [flow_event(lookalike)]);
        assert_eq!(band(&out[0]), SeverityBand::Medium);
    }

    #[test]
    fn public_resolvers_and_their_severity_come_from_config_and_nonsense_is_named() {
        let mut d = UnusualDotDetector::new(UnusualDotConfig {
            public_resolvers: vec!["203.0.113.53".into(), "dot.example.net.".into()],
            public_resolver_severity: 1.0,
            ..UnusualDotConfig::default()
        });
        let mut by_name = flow(true, "2001:db8::5", "2001:db8:53::1", 6, 853, T0);
        by_name.tls_server_names = vec!["dot.example.net".into()];
        let out = run(
            &mut d,
            [
                flow_event(flow(true, "10.0.0.5", "203.0.113.53", 6, 853, T0)),
                flow_event(by_name),
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| o.severity == Some(1.0)), "{out:?}");
        let mut problems = Vec::new();
        UnusualDotConfig {
            public_resolver_severity: 0.0,
            public_resolvers: vec![" ".into()],
            ..UnusualDotConfig::default()
        }
        .check(&mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("public_resolver_severity"));
        assert!(problems[1].contains("public_resolvers[0]"));
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
            ..UnusualDotConfig::default()
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
