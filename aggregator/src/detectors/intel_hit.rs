//! The intel-hit detector: every `IntelHit` an agent ships becomes an observation of the finding
//! type of its category, the `!DNS` variant when the match was on DNS.
//!
//! Stateless: the agent already matched, so this only maps category and site to a type and
//! carries the list entry and traffic context as evidence. Categories it does not know are
//! counted and mapped to the `.Custom` types with a note in the evidence, never dropped.

use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, IntelHit, MatchSite};

use super::{
    Activity, AgentSource, ConnectionDirection, Detector, DetectorCounter, DnsActivity, DnsContext,
    Event, EventFacts, EventKind, EvidenceDetail, FlowContext, IntelHitEvidence, NetworkActivity,
    Observation, PortProbeActivity, ResourceRef, ResourceRole, ThreatIntel,
};
use crate::findings::types::FindingType;

/// A threat category as agents send it (`IntelHit.category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Command and control.
    C2,
    /// Cryptocurrency mining and wallets.
    Crypto,
    /// Tor entry nodes.
    Tor,
    /// Black-holed destinations.
    Blackhole,
    /// Stolen data collection points.
    DropPoint,
    /// Phishing.
    Phishing,
    /// Drive-by download sources.
    DriveBy,
    /// Algorithmically generated domains.
    Dga,
    /// Known scanners.
    Scanner,
    /// The operator's own lists.
    Custom,
}

impl Category {
    /// Parses the wire name (`c2`, `drop_point`, …), ignoring ASCII case and surrounding space.
    pub fn parse(s: &str) -> Option<Self> {
        const NAMES: [(&str, Category); 10] = [
            ("c2", Category::C2),
            ("crypto", Category::Crypto),
            ("tor", Category::Tor),
            ("blackhole", Category::Blackhole),
            ("drop_point", Category::DropPoint),
            ("phishing", Category::Phishing),
            ("drive_by", Category::DriveBy),
            ("dga", Category::Dga),
            ("scanner", Category::Scanner),
            ("custom", Category::Custom),
        ];
        let s = s.trim();
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|&(_, c)| c)
    }

    /// The type for a match on a remote address, if the category has one.
    fn address_type(self) -> Option<FindingType> {
        use FindingType as T;
        match self {
            Self::C2 => Some(T::BackdoorCcActivity),
            Self::Crypto => Some(T::CryptoCurrencyBitcoinTool),
            Self::Tor => Some(T::UnauthorizedAccessTorClient),
            Self::Blackhole => Some(T::TrojanBlackholeTraffic),
            Self::DropPoint => Some(T::TrojanDropPoint),
            Self::Scanner => Some(T::ReconPortProbeUnprotectedPort),
            Self::Custom => Some(T::UnauthorizedAccessMaliciousIpCallerCustom),
            Self::Phishing | Self::DriveBy | Self::Dga => None,
        }
    }

    /// The type for a match on a DNS name, if the category has one.
    fn domain_type(self) -> Option<FindingType> {
        use FindingType as T;
        match self {
            Self::C2 => Some(T::BackdoorCcActivityDns),
            Self::Crypto => Some(T::CryptoCurrencyBitcoinToolDns),
            Self::Blackhole => Some(T::TrojanBlackholeTrafficDns),
            Self::DropPoint => Some(T::TrojanDropPointDns),
            Self::Phishing => Some(T::TrojanPhishingDomainRequestDns),
            Self::DriveBy => Some(T::TrojanDriveBySourceTrafficDns),
            Self::Dga => Some(T::TrojanDgaDomainRequestCDns),
            Self::Custom => Some(T::ImpactMaliciousDomainRequestCustom),
            Self::Tor | Self::Scanner => None,
        }
    }
}

/// Whether a hit was on an address or on a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Address,
    Domain,
}

/// Maps each `IntelHit` to one observation.
#[derive(Debug, Default)]
pub struct IntelHitDetector {
    hits: u64,
    unknown_category: u64,
    fallback_type: u64,
}

impl IntelHitDetector {
    /// The finding type for a category (as sent) matched at an address or a name, and a note
    /// when the mapping had to fall back to a `.Custom` type.
    pub fn finding_type(
        category: &str,
        on_domain: bool,
        inbound: bool,
    ) -> (FindingType, Option<String>) {
        let target = if on_domain {
            Target::Domain
        } else {
            Target::Address
        };
        let custom = match target {
            Target::Address => FindingType::UnauthorizedAccessMaliciousIpCallerCustom,
            Target::Domain => FindingType::ImpactMaliciousDomainRequestCustom,
        };
        let Some(cat) = Category::parse(category) else {
            return (
                custom,
                Some(format!(
                    "unknown intel category {category:?}; reported as a custom threat list match"
                )),
            );
        };
        let mapped = match target {
            // A scanner that opened a connection to us probed our port; one we connected to is
            // just a listed address.
            Target::Address if cat == Category::Scanner && !inbound => None,
            // A Tor node connecting to us is a caller (usually an exit); the tor detector
            // decides whether many such callers make the instance a relay.
            Target::Address if cat == Category::Tor && inbound => {
                Some(FindingType::UnauthorizedAccessTorIpCaller)
            }
            Target::Address => cat.address_type(),
            Target::Domain => cat.domain_type(),
        };
        match mapped {
            Some(t) => (t, None),
            None => (
                custom,
                Some(format!(
                    "category {category:?} has no {} finding type; reported as a custom threat list match",
                    if on_domain { "domain" } else { "address" }
                )),
            ),
        }
    }

    fn observation(&mut self, source: &AgentSource, hit: &IntelHit) -> Observation {
        self.hits += 1;
        let site = MatchSite::try_from(hit.site).unwrap_or(MatchSite::Unspecified);
        let on_domain = match site {
            MatchSite::DnsQuery | MatchSite::DnsAnswer | MatchSite::TlsServerName => true,
            MatchSite::RemoteAddr => false,
            // An old or confused agent: decide by the value itself.
            MatchSite::Unspecified => hit.matched_value.parse::<std::net::IpAddr>().is_err(),
        };
        let direction = match Direction::try_from(hit.direction) {
            Ok(Direction::Ingress) => ConnectionDirection::Inbound,
            Ok(Direction::Egress) => ConnectionDirection::Outbound,
            _ => ConnectionDirection::Unknown,
        };
        let inbound = direction == ConnectionDirection::Inbound;
        let (finding_type, note) = Self::finding_type(&hit.category, on_domain, inbound);
        let category_known = Category::parse(&hit.category).is_some();
        if !category_known {
            self.unknown_category += 1;
        } else if note.is_some() {
            self.fallback_type += 1;
        }

        let remote_ip = if hit.remote_addr.is_empty() && !on_domain {
            hit.matched_value.clone()
        } else {
            hit.remote_addr.clone()
        };
        let domain = if hit.dns_query_name.is_empty() {
            hit.matched_value.clone()
        } else {
            hit.dns_query_name.clone()
        };
        let activity = if on_domain {
            Activity::Dns(DnsActivity {
                domain,
                protocol: if hit.protocol == 6 { "TCP" } else { "UDP" },
            })
        } else if finding_type == FindingType::ReconPortProbeUnprotectedPort {
            Activity::PortProbe(PortProbeActivity {
                local_ip: hit.local_addr.clone(),
                local_port: hit.local_port,
                remote_ip,
            })
        } else {
            Activity::Network(NetworkActivity {
                direction,
                protocol: hit.protocol,
                local_ip: hit.local_addr.clone(),
                local_port: hit.local_port,
                remote_ip,
                remote_port: hit.remote_port,
            })
        };
        let role = if inbound && !on_domain {
            ResourceRole::Target
        } else {
            ResourceRole::Actor
        };
        let has_flow = !hit.remote_addr.is_empty() || !hit.local_addr.is_empty();
        let flow = has_flow.then(|| FlowContext {
            direction,
            local_addr: hit.local_addr.clone(),
            local_port: hit.local_port,
            remote_addr: hit.remote_addr.clone(),
            remote_port: hit.remote_port,
            protocol: hit.protocol,
        });
        let dns = (!hit.dns_query_name.is_empty()).then(|| DnsContext {
            query_name: hit.dns_query_name.clone(),
            qtype: hit.dns_qtype.clone(),
            resolver: hit.dns_resolver.clone(),
        });
        let threat_name = if hit.description.is_empty() {
            hit.category.clone()
        } else {
            hit.description.clone()
        };
        Observation {
            finding_type,
            account_id: source.account_id.clone(),
            region: source.region.clone(),
            resource: ResourceRef::Instance {
                instance_id: source.instance_id.clone(),
                private_ip: (!hit.local_addr.is_empty()).then(|| hit.local_addr.clone()),
            },
            role,
            activity,
            at_ms: hit.observed_at_ms,
            threat_intel: Some(ThreatIntel {
                list_name: hit.list_name.clone(),
                threat_names: vec![threat_name],
            }),
            // GuardDuty raises a probe of Elasticsearch's ports (9200 REST, 9300 transport)
            // from Low to High: an open search cluster is usually an exposed data store.
            severity: (finding_type == FindingType::ReconPortProbeUnprotectedPort
                && matches!(hit.local_port, 9200 | 9300))
            .then_some(8.0),
            evidence: EvidenceDetail::IntelHit(Box::new(IntelHitEvidence {
                list_name: hit.list_name.clone(),
                indicator: hit.indicator.clone(),
                matched_value: hit.matched_value.clone(),
                category: hit.category.clone(),
                category_known,
                source: hit.source.clone(),
                description: hit.description.clone(),
                site: site_name(site).to_owned(),
                intel_version: hit.intel_version,
                observed_at_ms: hit.observed_at_ms,
                flow,
                dns,
                note,
            })),
        }
    }
}

fn site_name(site: MatchSite) -> &'static str {
    match site {
        MatchSite::Unspecified => "unspecified",
        MatchSite::RemoteAddr => "remote_addr",
        MatchSite::DnsQuery => "dns_query",
        MatchSite::DnsAnswer => "dns_answer",
        MatchSite::TlsServerName => "tls_server_name",
    }
}

impl Detector for IntelHitDetector {
    fn name(&self) -> &'static str {
        "intel_hit"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::IntelHit]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Agent { source, record } = event else {
            return;
        };
        if let Some(R::IntelHit(hit)) = &record.record {
            out.push(self.observation(source, hit));
        }
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "intel_hits",
                count: self.hits,
            },
            DetectorCounter {
                name: "unknown_category",
                count: self.unknown_category,
            },
            DetectorCounter {
                name: "category_without_site_type",
                count: self.fallback_type,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::Record;

    use super::*;

    fn source() -> AgentSource {
        AgentSource {
            account_id: "123456789012".into(),
            instance_id: "i-0abc".into(),
            region: "eu-west-1".into(),
        }
    }

    fn hit(category: &str, site: MatchSite) -> IntelHit {
        let dns = site != MatchSite::RemoteAddr;
        IntelHit {
            observed_at_ms: 1_700_000_000_000,
            matched_value: if dns {
                "bad.example".into()
            } else {
                "198.51.100.7".into()
            },
            indicator: if dns {
                "bad.example".into()
            } else {
                "198.51.100.0/24".into()
            },
            list_name: "test-list".into(),
            category: category.into(),
            source: "unit".into(),
            description: "Evil".into(),
            site: site as i32,
            direction: Direction::Egress as i32,
            local_addr: "10.0.0.5".into(),
            remote_addr: if dns {
                "10.0.0.2".into()
            } else {
                "198.51.100.7".into()
            },
            protocol: if dns { 17 } else { 6 },
            local_port: 40000,
            remote_port: if dns { 53 } else { 443 },
            dns_query_name: if dns {
                "bad.example".into()
            } else {
                String::new()
            },
            ..IntelHit::default()
        }
    }

    fn run(detector: &mut IntelHitDetector, hit: IntelHit) -> Vec<Observation> {
        let event = Event::Agent {
            source: source(),
            record: Record {
                record: Some(R::IntelHit(hit)),
            },
        };
        let mut out = Vec::new();
        crate::detectors::testing::observe(detector, &event, &mut out);
        out
    }

    #[test]
    fn each_category_and_site_maps_to_its_guardduty_type() {
        use FindingType as T;
        let cases = [
            ("c2", MatchSite::RemoteAddr, T::BackdoorCcActivity),
            ("c2", MatchSite::DnsQuery, T::BackdoorCcActivityDns),
            ("c2", MatchSite::DnsAnswer, T::BackdoorCcActivityDns),
            (
                "crypto",
                MatchSite::RemoteAddr,
                T::CryptoCurrencyBitcoinTool,
            ),
            (
                "crypto",
                MatchSite::DnsQuery,
                T::CryptoCurrencyBitcoinToolDns,
            ),
            ("tor", MatchSite::RemoteAddr, T::UnauthorizedAccessTorClient),
            (
                "blackhole",
                MatchSite::RemoteAddr,
                T::TrojanBlackholeTraffic,
            ),
            (
                "blackhole",
                MatchSite::DnsQuery,
                T::TrojanBlackholeTrafficDns,
            ),
            ("drop_point", MatchSite::RemoteAddr, T::TrojanDropPoint),
            ("drop_point", MatchSite::DnsQuery, T::TrojanDropPointDns),
            (
                "phishing",
                MatchSite::DnsQuery,
                T::TrojanPhishingDomainRequestDns,
            ),
            (
                "drive_by",
                MatchSite::DnsQuery,
                T::TrojanDriveBySourceTrafficDns,
            ),
            ("dga", MatchSite::DnsQuery, T::TrojanDgaDomainRequestCDns),
            (
                "custom",
                MatchSite::RemoteAddr,
                T::UnauthorizedAccessMaliciousIpCallerCustom,
            ),
            (
                "custom",
                MatchSite::DnsQuery,
                T::ImpactMaliciousDomainRequestCustom,
            ),
            // An outbound connection to a scanner is only a listed address.
            (
                "scanner",
                MatchSite::RemoteAddr,
                T::UnauthorizedAccessMaliciousIpCallerCustom,
            ),
        ];
        let mut detector = IntelHitDetector::default();
        for (category, site, expected) in cases {
            let out = run(&mut detector, hit(category, site));
            assert_eq!(out.len(), 1, "{category}/{site:?}");
            assert_eq!(out[0].finding_type, expected, "{category}/{site:?}");
        }
        let unknown = detector
            .counters()
            .into_iter()
            .find(|c| c.name == "unknown_category")
            .map(|c| c.count);
        assert_eq!(unknown, Some(0));
    }

    #[test]
    fn an_inbound_scanner_is_a_port_probe_on_the_instance_as_target() {
        let mut h = hit("scanner", MatchSite::RemoteAddr);
        h.direction = Direction::Ingress as i32;
        h.local_port = 22;
        let out = run(&mut IntelHitDetector::default(), h);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::ReconPortProbeUnprotectedPort
        );
        assert_eq!(out[0].role, ResourceRole::Target);
        assert!(matches!(
            &out[0].activity,
            Activity::PortProbe(p) if p.local_port == 22 && p.remote_ip == "198.51.100.7"
        ));
    }

    #[test]
    fn a_tor_node_connecting_in_is_a_tor_caller_on_the_instance_as_target() {
        for addr in ["198.51.100.7", "2001:db8::7"] {
            let mut h = hit("tor", MatchSite::RemoteAddr);
            h.direction = Direction::Ingress as i32;
            h.remote_addr = addr.into();
            h.matched_value = addr.into();
            let out = run(&mut IntelHitDetector::default(), h);
            assert_eq!(out.len(), 1);
            assert_eq!(
                out[0].finding_type,
                FindingType::UnauthorizedAccessTorIpCaller
            );
            assert_eq!(out[0].role, ResourceRole::Target);
        }
    }

    #[test]
    fn a_scanner_probing_elasticsearch_ports_is_high_and_other_ports_keep_the_default() {
        let probe = |port: u32, addr: &str| {
            let mut h = hit("scanner", MatchSite::RemoteAddr);
            h.direction = Direction::Ingress as i32;
            h.local_port = port;
            h.remote_addr = addr.into();
            h.matched_value = addr.into();
            run(&mut IntelHitDetector::default(), h)
        };
        let es = probe(9200, "198.51.100.7");
        let es6 = probe(9300, "2001:db8::7");
        let ssh = probe(9201, "2001:db8::7");
        assert_eq!((es.len(), es6.len(), ssh.len()), (1, 1, 1));
        assert_eq!(es[0].severity, Some(8.0));
        assert_eq!(es6[0].severity, Some(8.0));
        assert_eq!(ssh[0].severity, None);
    }

    #[test]
    fn an_unknown_category_is_counted_and_reported_as_custom_not_dropped() {
        let mut detector = IntelHitDetector::default();
        let out = run(&mut detector, hit("ransomware", MatchSite::RemoteAddr));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::UnauthorizedAccessMaliciousIpCallerCustom
        );
        let EvidenceDetail::IntelHit(ev) = &out[0].evidence else {
            panic!("expected intel evidence, got {:?}", out[0].evidence);
        };
        assert!(!ev.category_known);
        assert!(ev.note.as_deref().is_some_and(|n| n.contains("ransomware")));
        let counters = detector.counters();
        assert!(counters.contains(&DetectorCounter {
            name: "unknown_category",
            count: 1
        }));
        let dns = run(&mut detector, hit("ransomware", MatchSite::DnsQuery));
        assert_eq!(
            dns[0].finding_type,
            FindingType::ImpactMaliciousDomainRequestCustom
        );
    }

    #[test]
    fn a_category_without_a_type_for_its_site_falls_back_to_custom_and_says_so() {
        let mut detector = IntelHitDetector::default();
        let phishing_ip = run(&mut detector, hit("phishing", MatchSite::RemoteAddr));
        let tor_dns = run(&mut detector, hit("tor", MatchSite::DnsQuery));
        assert_eq!((phishing_ip.len(), tor_dns.len()), (1, 1));
        assert_eq!(
            phishing_ip[0].finding_type,
            FindingType::UnauthorizedAccessMaliciousIpCallerCustom
        );
        assert_eq!(
            tor_dns[0].finding_type,
            FindingType::ImpactMaliciousDomainRequestCustom
        );
        let EvidenceDetail::IntelHit(ev) = &tor_dns[0].evidence else {
            panic!("expected intel evidence");
        };
        assert!(ev.category_known);
        assert!(ev.note.as_deref().is_some_and(|n| n.contains("\"tor\"")));
        assert!(detector.counters().contains(&DetectorCounter {
            name: "category_without_site_type",
            count: 2
        }));
    }

    #[test]
    fn evidence_carries_the_list_entry_and_traffic_context() {
        let out = run(
            &mut IntelHitDetector::default(),
            hit("c2", MatchSite::RemoteAddr),
        );
        assert_eq!(out.len(), 1);
        let o = &out[0];
        assert_eq!(o.account_id, "123456789012");
        assert_eq!(o.resource.id(), "i-0abc");
        assert_eq!(o.role, ResourceRole::Actor);
        assert_eq!(o.activity.remote(), "198.51.100.7");
        let EvidenceDetail::IntelHit(ev) = &o.evidence else {
            panic!("expected intel evidence");
        };
        assert_eq!(ev.list_name, "test-list");
        assert_eq!(ev.indicator, "198.51.100.0/24");
        assert_eq!(ev.site, "remote_addr");
        assert_eq!(ev.flow.as_ref().map(|f| f.remote_port), Some(443));
        assert!(ev.note.is_none());
    }

    #[test]
    fn records_other_than_intel_hits_produce_nothing() {
        let event = Event::Agent {
            source: source(),
            record: Record {
                record: Some(R::Flow(Default::default())),
            },
        };
        let mut out = Vec::new();
        crate::detectors::testing::observe(&mut IntelHitDetector::default(), &event, &mut out);
        assert!(out.is_empty());
    }
}
