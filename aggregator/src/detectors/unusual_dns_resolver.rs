//! `DefenseEvasion:EC2/UnusualDNSResolver`: the instance sends DNS to a public resolver it has
//! not used before.
//!
//! Input: DNS summaries (their resolvers) and egress flow summaries to port 53 (DNS the agent
//! could not parse still shows up as a flow). Each instance learns the public resolvers it uses
//! ([`super::baseline`]); after its learning period a public resolver it never used is reported
//! once, then joins the baseline. Resolvers that are not public never count: the VPC resolver
//! (the VPC's `.2`, 169.254.169.253, fd00:ec2::253) and private resolvers are how a host is meant
//! to resolve.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use picket_proto::v1::{DnsSummary, FlowSummary};
use serde::Deserialize;

use super::baseline::{self, Baselines, Learning, RecentSet};
use super::summary;
use super::window::NameKey;
use super::{
    Activity, AgentSource, BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter,
    Event, EventFacts, EventKind, NetworkActivity, Observation, ParsedAddr, ResourceRole,
    ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// `[detectors.unusual_dns_resolver]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnusualDnsResolverConfig {
    /// Event time an instance learns its resolvers before new ones are reported, in seconds.
    #[serde(default = "baseline::default_learning_secs")]
    pub learning_secs: u64,
    /// DNS summaries and DNS flows an instance must have shown before new resolvers count.
    #[serde(default = "baseline::default_min_observations")]
    pub min_observations: u64,
    /// Instances kept; the least recently seen is evicted (and relearns) beyond this.
    #[serde(default = "baseline::default_max_instances")]
    pub max_instances: NonZeroUsize,
    /// Resolvers kept per instance; the least recently used is forgotten beyond this.
    #[serde(default = "default_max_resolvers")]
    pub max_resolvers: NonZeroUsize,
}

impl Default for UnusualDnsResolverConfig {
    fn default() -> Self {
        Self {
            learning_secs: baseline::default_learning_secs(),
            min_observations: baseline::default_min_observations(),
            max_instances: baseline::default_max_instances(),
            max_resolvers: default_max_resolvers(),
        }
    }
}

fn default_max_resolvers() -> NonZeroUsize {
    NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN)
}

/// The record a resolver was seen in, for evidence.
enum Seen<'a> {
    Dns(&'a DnsSummary),
    Flow(&'a FlowSummary),
}

/// One use of a resolver by an instance.
struct Sighting<'a> {
    local: &'a str,
    resolver: &'a str,
    /// `resolver` parsed, when it is an address.
    addr: Option<ParsedAddr>,
    protocol: u32,
    at: i64,
    seen: Seen<'a>,
}

/// Learns each instance's resolvers and reports new public ones.
#[derive(Debug)]
pub struct UnusualDnsResolverDetector {
    config: UnusualDnsResolverConfig,
    learning: Learning,
    baselines: Baselines<RecentSet<IpAddr>>,
    resolvers_forgotten: u64,
    bad_addresses: u64,
}

impl UnusualDnsResolverDetector {
    /// A detector with `config`.
    pub fn new(config: UnusualDnsResolverConfig) -> Self {
        Self {
            learning: Learning::new(config.learning_secs, config.min_observations),
            baselines: Baselines::new(config.max_instances),
            config,
            resolvers_forgotten: 0,
            bad_addresses: 0,
        }
    }

    fn check(
        &mut self,
        source: &AgentSource,
        name: &NameKey,
        s: Sighting<'_>,
        out: &mut Vec<Observation>,
    ) {
        let Sighting {
            local,
            resolver,
            addr,
            protocol,
            at,
            seen,
        } = s;
        let Some(addr) = addr else {
            self.bad_addresses += 1;
            return;
        };
        if !addr.public {
            return;
        }
        let ip = addr.ip;
        let learning = self.learning;
        let cap = self.config.max_resolvers.get();
        let Some(profile) = self.baselines.get_mut(name) else {
            return;
        };
        let learned = profile.learned(learning);
        let (known, age, obs) = (profile.data.len(), profile.age_secs(), profile.observations);
        let used = profile.data.use_key(&ip, at, cap);
        if used.forgot {
            self.resolvers_forgotten += 1;
        }
        if !used.new || !learned {
            return;
        }
        let (flows, dns) = match seen {
            Seen::Dns(d) => (Vec::new(), vec![d.clone()]),
            Seen::Flow(f) => (vec![f.clone()], Vec::new()),
        };
        let example_names = match &dns.first() {
            Some(d) => d
                .example_names
                .iter()
                .take(summary::MAX_EXAMPLES)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let evidence = BehaviourEvidence {
            detector: "unusual_dns_resolver".to_owned(),
            window_ms: 0,
            thresholds: vec![
                ThresholdCrossed {
                    key: "detectors.unusual_dns_resolver.learning_secs".into(),
                    limit: self.config.learning_secs as f64,
                    observed: age,
                },
                ThresholdCrossed {
                    key: "detectors.unusual_dns_resolver.min_observations".into(),
                    limit: self.config.min_observations as f64,
                    observed: obs as f64,
                },
            ],
            example_names,
            flows,
            dns,
            note: Some(format!(
                "public resolver {resolver} is not among the {known} public resolvers this \
                 instance used while learning"
            )),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::DefenseEvasionUnusualDnsResolver,
                source,
                local_addr: local,
                role: ResourceRole::Actor,
                activity: Activity::Network(NetworkActivity {
                    direction: ConnectionDirection::Outbound,
                    protocol,
                    local_ip: local.to_owned(),
                    local_port: 0,
                    remote_ip: resolver.to_owned(),
                    remote_port: 53,
                }),
                at_ms: at,
                severity: None,
            }
            .observation(evidence),
        );
    }
}

impl Detector for UnusualDnsResolverDetector {
    fn name(&self) -> &'static str {
        "unusual_dns_resolver"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Dns, EventKind::Flow]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Some(name) = facts.instance() else {
            return;
        };
        if let Some((source, d)) = summary::dns(event) {
            let at = summary::dns_time(d);
            self.baselines.observe(name, at);
            for r in &d.resolvers {
                let s = Sighting {
                    local: &d.client_addr,
                    resolver: r,
                    addr: ParsedAddr::parse(r),
                    protocol: 17,
                    at,
                    seen: Seen::Dns(d),
                };
                self.check(source, name, s, out);
            }
        } else if let Some((source, f)) = summary::flow(event) {
            if f.service_port != 53
                || !matches!(f.protocol, 6 | 17)
                || summary::direction(f) != ConnectionDirection::Outbound
            {
                return;
            }
            let at = summary::flow_time(f);
            self.baselines.observe(name, at);
            let s = Sighting {
                local: &f.local_addr,
                resolver: &f.remote_addr,
                addr: facts.remote(),
                protocol: f.protocol,
                at,
                seen: Seen::Flow(f),
            };
            self.check(source, name, s, out);
        }
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
                name: "resolvers_forgotten",
                count: self.resolvers_forgotten,
            },
            DetectorCounter {
                name: "bad_resolver_address",
                count: self.bad_addresses,
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
    use crate::detectors::testing::{T0, dns, dns_event, flow, flow_event, run};

    const HOUR: i64 = 3_600_000;

    fn config() -> UnusualDnsResolverConfig {
        UnusualDnsResolverConfig {
            learning_secs: 3_600,
            min_observations: 10,
            ..UnusualDnsResolverConfig::default()
        }
    }

    fn query(client: &str, resolver: &str, at: i64) -> Event {
        let mut d = dns(client, "example.com", 3, at);
        d.resolvers = vec![resolver.into()];
        dns_event(d)
    }

    /// Two hours of queries to the VPC resolver and one public resolver.
    fn learn(client: &str, public: &str) -> Vec<Event> {
        (0..24)
            .flat_map(|i| {
                let at = T0 + i * 5 * 60_000;
                [query(client, "10.0.0.2", at), query(client, public, at)]
            })
            .collect()
    }

    #[test]
    fn a_new_public_resolver_after_learning_is_reported_ipv4_and_ipv6() {
        for (client, known, new) in [
            ("10.0.0.5", "192.0.2.53", "198.51.100.53"),
            ("2001:db8::5", "2001:db8:53::1", "2001:db8:53::2"),
        ] {
            let mut d = UnusualDnsResolverDetector::new(config());
            assert!(run(&mut d, learn(client, known)).is_empty());
            let out = run(&mut d, [query(client, new, T0 + 3 * HOUR)]);
            assert_eq!(out.len(), 1, "{client}");
            assert_eq!(
                out[0].finding_type,
                FindingType::DefenseEvasionUnusualDnsResolver
            );
            assert_eq!(out[0].activity.remote(), new);
            // Once: the resolver is now known.
            assert!(run(&mut d, [query(client, new, T0 + 3 * HOUR + 1)]).is_empty());
        }
    }

    #[test]
    fn private_link_local_and_known_resolvers_never_count() {
        let mut d = UnusualDnsResolverDetector::new(config());
        run(&mut d, learn("10.0.0.5", "192.0.2.53"));
        let at = T0 + 3 * HOUR;
        let out = run(
            &mut d,
            [
                query("10.0.0.5", "169.254.169.253", at),
                query("10.0.0.5", "172.16.0.2", at),
                query("10.0.0.5", "fd00:ec2::253", at),
                query("10.0.0.5", "192.0.2.53", at),
                query("10.0.0.5", "not-an-address", at),
            ],
        );
        assert!(out.is_empty());
        assert_eq!(
            crate::detectors::testing::counter(&d, "bad_resolver_address"),
            Some(1)
        );
    }

    #[test]
    fn a_dns_flow_to_a_new_public_resolver_counts_and_learning_from_config_is_honoured() {
        let mut d = UnusualDnsResolverDetector::new(UnusualDnsResolverConfig {
            learning_secs: 4 * 3_600,
            ..config()
        });
        run(&mut d, learn("10.0.0.5", "192.0.2.53"));
        let f = |port, at| flow_event(flow(true, "10.0.0.5", "203.0.113.53", 17, port, at));
        assert!(
            run(&mut d, [f(53, T0 + 3 * HOUR)]).is_empty(),
            "still learning"
        );
        let mut d = UnusualDnsResolverDetector::new(config());
        run(&mut d, learn("10.0.0.5", "192.0.2.53"));
        assert!(run(&mut d, [f(5353, T0 + 3 * HOUR)]).is_empty(), "not DNS");
        assert_eq!(run(&mut d, [f(53, T0 + 3 * HOUR)]).len(), 1);
    }

    #[test]
    fn the_baseline_survives_save_and_restore() {
        let mut d = UnusualDnsResolverDetector::new(config());
        run(&mut d, learn("10.0.0.5", "192.0.2.53"));
        let mut fresh = UnusualDnsResolverDetector::new(config());
        fresh
            .restore_state(&d.save_state().expect("state"))
            .expect("restores");
        let at = T0 + 3 * HOUR;
        assert!(run(&mut fresh, [query("10.0.0.5", "192.0.2.53", at)]).is_empty());
        assert_eq!(
            run(&mut fresh, [query("10.0.0.5", "198.51.100.53", at)]).len(),
            1
        );
    }
}
