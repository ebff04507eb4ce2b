//! `DefenseEvasion:EC2/UnusualDoHActivity`: the instance talks HTTPS to a well-known public
//! DNS over HTTPS endpoint, resolving names past the VPC resolver.
//!
//! Input: egress flow summaries to port 443 (TCP, or UDP for HTTP/3) that the remote answered,
//! whose remote address or TLS server name is a known DoH endpoint. The built-in list holds the
//! big public resolvers' DoH addresses and names; `extra_servers` adds more. Stateless: the
//! finding engine aggregates per remote.

use std::net::IpAddr;

use serde::Deserialize;

use super::summary;
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole,
};
use crate::findings::types::FindingType;

/// Well-known DoH host names (the resolvers' own documentation).
pub const DOH_NAMES: &[&str] = &[
    "dns.google",
    "dns.google.com",
    "cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
    "one.one.one.one",
    "1dot1dot1dot1.cloudflare-dns.com",
    "security.cloudflare-dns.com",
    "family.cloudflare-dns.com",
    "dns.quad9.net",
    "dns9.quad9.net",
    "dns10.quad9.net",
    "dns11.quad9.net",
    "doh.opendns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "doh.mullvad.net",
    "dns.alidns.com",
    "doh.pub",
];

/// Addresses that serve DoH on 443 (Cloudflare, Google, Quad9, OpenDNS, AdGuard).
pub const DOH_ADDRESSES: &[&str] = &[
    "1.1.1.1",
    "1.0.0.1",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "9.9.9.9",
    "149.112.112.112",
    "2620:fe::fe",
    "2620:fe::9",
    "208.67.222.222",
    "208.67.220.220",
    "94.140.14.14",
    "94.140.15.15",
];

/// `[detectors.unusual_doh]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnusualDohConfig {
    /// More DoH server names or addresses to watch for, beside the built-in list.
    #[serde(default)]
    pub extra_servers: Vec<String>,
}

/// Reports HTTPS sessions to known DoH endpoints.
#[derive(Debug)]
pub struct UnusualDohDetector {
    // Sets: every HTTPS summary is checked against them, so a fast hash rather than SipHash
    // (their contents are fixed at start; lookups cannot grow them).
    names: std::collections::HashSet<String, foldhash::fast::RandomState>,
    addresses: std::collections::HashSet<IpAddr, foldhash::fast::RandomState>,
    // Marks of the names and addresses held: nearly every HTTPS summary names neither, and
    // a missing mark rules it out in a few instructions where the set lookups hash the name
    // and the address (a third of this detector's time).
    name_marks: Marks,
    address_marks: Marks,
}

/// A 256-bit set of one-byte marks: a value whose mark is absent is not among those marked.
#[derive(Debug, Default)]
struct Marks([u64; 4]);

impl Marks {
    fn add(&mut self, mark: u8) {
        self.0[usize::from(mark >> 6)] |= 1 << (mark & 63);
    }

    fn has(&self, mark: u8) -> bool {
        self.0[usize::from(mark >> 6)] & (1 << (mark & 63)) != 0
    }

    /// A name's mark from its length and first letter, which lower-casing keeps.
    fn of_name(name: &str) -> u8 {
        let first = name.as_bytes().first().map_or(0, u8::to_ascii_lowercase);
        // Only the low byte of the length counts; a mark need only be the same for equal names.
        (name.len() as u8).wrapping_mul(31) ^ first
    }

    /// An address's mark: its bytes folded together, and the family.
    fn of_addr(addr: &IpAddr) -> u8 {
        match addr {
            IpAddr::V4(a) => a.octets().iter().fold(0, |m, b| m ^ b),
            IpAddr::V6(a) => a.octets().iter().fold(0x80, |m, b| m ^ b.rotate_left(1)),
        }
    }
}

impl UnusualDohDetector {
    /// A detector with the built-in list plus `config.extra_servers`.
    pub fn new(config: UnusualDohConfig) -> Self {
        let mut names: Vec<String> = DOH_NAMES.iter().map(|s| (*s).to_owned()).collect();
        let mut addresses: Vec<IpAddr> = DOH_ADDRESSES
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        for s in config.extra_servers {
            match s.trim().parse::<IpAddr>() {
                Ok(a) => addresses.push(a),
                Err(_) => names.push(s.trim().trim_end_matches('.').to_ascii_lowercase()),
            }
        }
        let mut name_marks = Marks::default();
        let mut address_marks = Marks::default();
        names.iter().for_each(|n| name_marks.add(Marks::of_name(n)));
        addresses
            .iter()
            .for_each(|a| address_marks.add(Marks::of_addr(a)));
        Self {
            names: names.into_iter().collect(),
            addresses: addresses.into_iter().collect(),
            name_marks,
            address_marks,
        }
    }

    /// What matched: the server name or the address, if either is a DoH endpoint.
    fn matched(&self, remote: Option<IpAddr>, server_names: &[String]) -> Option<String> {
        let by_name = server_names.iter().find(|n| {
            let n = n.trim_end_matches('.');
            if !self.name_marks.has(Marks::of_name(n)) {
                return false;
            }
            // Names are nearly always lower case already; copy only when one is not.
            if n.bytes().any(|b| b.is_ascii_uppercase()) {
                self.names.contains(&n.to_ascii_lowercase())
            } else {
                self.names.contains(n)
            }
        });
        if let Some(n) = by_name {
            return Some(format!("TLS server name {n}"));
        }
        let addr = remote.filter(|a| self.address_marks.has(Marks::of_addr(a)))?;
        self.addresses
            .contains(&addr)
            .then(|| format!("address {addr}"))
    }
}

impl Detector for UnusualDohDetector {
    fn name(&self) -> &'static str {
        "unusual_doh"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Some((source, f)) = summary::flow(event) else {
            return;
        };
        if summary::direction(f) != ConnectionDirection::Outbound
            || !matches!(f.protocol, 6 | 17)
            || f.service_port != 443
            || !f.remote_answered
        {
            return;
        }
        let remote = facts.remote().map(|a| a.ip);
        let Some(why) = self.matched(remote, &f.tls_server_names) else {
            return;
        };
        let evidence = BehaviourEvidence {
            detector: "unusual_doh".to_owned(),
            window_ms: 0,
            thresholds: Vec::new(),
            example_names: f.tls_server_names.clone(),
            flows: vec![f.clone()],
            dns: Vec::new(),
            note: Some(format!("known DNS over HTTPS endpoint by {why}")),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::DefenseEvasionUnusualDoHActivity,
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

    fn detector() -> UnusualDohDetector {
        UnusualDohDetector::new(UnusualDohConfig::default())
    }

    #[test]
    fn https_to_a_doh_address_over_ipv4_and_ipv6_is_doh_activity() {
        let out = run(
            &mut detector(),
            [
                flow_event(flow(true, "10.0.0.5", "8.8.8.8", 6, 443, T0)),
                flow_event(flow(
                    true,
                    "2001:db8::5",
                    "2606:4700:4700::1111",
                    6,
                    443,
                    T0,
                )),
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|o| o.finding_type == FindingType::DefenseEvasionUnusualDoHActivity)
        );
    }

    #[test]
    fn https_with_a_doh_server_name_on_any_address_is_doh_activity() {
        let mut f = flow(true, "10.0.0.5", "198.51.100.7", 6, 443, T0);
        f.tls_server_names = vec!["Dns.Quad9.net.".into()];
        assert_eq!(run(&mut detector(), [flow_event(f)]).len(), 1);
    }

    #[test]
    fn plain_dns_to_a_public_resolver_and_lookalike_names_are_not_doh() {
        let mut lookalike = flow(true, "2001:db8::5", "2001:db8:1::7", 6, 443, T0);
        lookalike.tls_server_names = vec!["dns.google.example.com".into()];
        let out = run(
            &mut detector(),
            [
                flow_event(flow(true, "10.0.0.5", "8.8.8.8", 17, 53, T0)),
                flow_event(flow(true, "10.0.0.5", "8.8.8.7", 6, 443, T0)),
                flow_event(lookalike),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn every_listed_name_in_any_case_and_every_listed_address_is_doh_activity() {
        // The marks that rule most summaries out must never rule out a listed one.
        let mut d = detector();
        for name in DOH_NAMES {
            for written in [
                name.to_string(),
                name.to_ascii_uppercase(),
                format!("{name}."),
            ] {
                let mut f = flow(true, "10.0.0.5", "198.51.100.7", 6, 443, T0);
                f.tls_server_names = vec!["www.example.com".into(), written.clone()];
                assert_eq!(run(&mut d, [flow_event(f)]).len(), 1, "{written}");
            }
        }
        for addr in DOH_ADDRESSES {
            let local = if addr.contains(':') {
                "2001:db8::5"
            } else {
                "10.0.0.5"
            };
            let f = flow(true, local, addr, 6, 443, T0);
            assert_eq!(run(&mut d, [flow_event(f)]).len(), 1, "{addr}");
        }
    }

    #[test]
    fn extra_servers_from_config_are_honoured() {
        let mut d = UnusualDohDetector::new(UnusualDohConfig {
            extra_servers: vec!["doh.example.net".into(), "2001:db8:53::1".into()],
        });
        let mut by_name = flow(true, "10.0.0.5", "198.51.100.9", 6, 443, T0);
        by_name.tls_server_names = vec!["doh.example.net".into()];
        let by_addr = flow(true, "2001:db8::5", "2001:db8:53::1", 6, 443, T0);
        assert_eq!(
            run(&mut d, [flow_event(by_name), flow_event(by_addr)]).len(),
            2
        );
    }
}
