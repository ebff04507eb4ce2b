//! Tor: `UnauthorizedAccess:EC2/TorClient` (the instance connects to a Tor node),
//! `UnauthorizedAccess:EC2/TorIPCaller` (a Tor node connects to it) and
//! `UnauthorizedAccess:EC2/TorRelay` (it acts as a relay).
//!
//! Tor nodes come from intel: any list entry with category `tor` (the Tor Project's bulk node
//! lists load as plain lists). Two inputs feed the same counts:
//! - `IntelHit`s with category `tor`, matched by the agent. [`super::intel_hit`] already turns
//!   each into a TorClient or TorIPCaller observation, so here they only count towards relaying.
//! - Flow summaries whose remote address is a Tor node in the aggregator's own intel snapshot
//!   (the detector context), for traffic the agent did not match (an older agent, a list loaded
//!   after the traffic). These raise TorClient / TorIPCaller once per instance, remote and window.
//!
//! Relaying is judged per instance in a tumbling window: `min_inbound_nodes` distinct Tor nodes
//! connecting to one local port that is not a web port (relays dial each other's ORPort; Tor
//! users reaching a web site come in on 80/443 and are callers, not evidence of a relay), or
//! `min_both_ways_nodes` distinct nodes both connecting in and being connected to.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};

use picket_intel::Category;
use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, FlowSummary, IntelHit};
use serde::Deserialize;

use super::IntelView;
use super::summary::{self, MAX_EXAMPLES};
use super::window::{DistinctSet, WindowTable, keep_example};
use super::{
    Activity, AgentSource, BehaviourEvidence, ConnectionDirection, Detector, DetectorContext,
    DetectorCounter, Event, EventFacts, EventKind, NetworkActivity, Observation, ResourceRole,
    ThreatIntel, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Distinct nodes kept per count; far above any sensible threshold.
const NODE_CAP: usize = 1024;
/// Local ports tracked per instance window.
const PORT_CAP: usize = 16;

/// `[detectors.tor]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorConfig {
    /// Distinct Tor nodes connecting to one local (non-web) port within a window that make a
    /// relay.
    #[serde(default = "default_min_inbound_nodes")]
    pub min_inbound_nodes: NonZeroU32,
    /// Distinct Tor nodes both connecting in and connected to within a window that make a relay.
    #[serde(default = "default_min_both_ways_nodes")]
    pub min_both_ways_nodes: NonZeroU32,
    /// Local ports whose inbound Tor connections are visitors, not relays dialling an ORPort.
    #[serde(default = "default_web_ports")]
    pub web_ports: Vec<u32>,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// Keys (instances, and instance/remote pairs) tracked at once; least recent evicted.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for TorConfig {
    fn default() -> Self {
        Self {
            min_inbound_nodes: default_min_inbound_nodes(),
            min_both_ways_nodes: default_min_both_ways_nodes(),
            web_ports: default_web_ports(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

fn default_min_inbound_nodes() -> NonZeroU32 {
    NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN)
}
fn default_min_both_ways_nodes() -> NonZeroU32 {
    NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN)
}
fn default_web_ports() -> Vec<u32> {
    vec![80, 443, 8080, 8443]
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(3_600).unwrap_or(NonZeroU32::MIN)
}

/// One instance's Tor contacts in a window.
#[derive(Debug, Default)]
struct Contacts {
    inbound_by_port: HashMap<u32, DistinctSet<String>>,
    inbound: DistinctSet<String>,
    outbound: DistinctSet<String>,
    flows: Vec<FlowSummary>,
}

/// One Tor contact, from a flow or an intel hit.
struct Contact<'a> {
    inbound: bool,
    protocol: u32,
    local_addr: &'a str,
    local_port: u32,
    remote_addr: &'a str,
    remote_port: u32,
    at: i64,
    list_name: &'a str,
}

/// Counts Tor contacts per instance.
pub struct TorDetector {
    config: TorConfig,
    intel: IntelView,
    contacts: WindowTable<String, Contacts>,
    reported_pairs: WindowTable<(String, String, bool), ()>,
    flows_matched: u64,
    hits_counted: u64,
    bad_addresses: u64,
}

impl std::fmt::Debug for TorDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorDetector")
            .field("config", &self.config)
            .field("has_intel", &self.intel.snapshot().is_some())
            .field("instances", &self.contacts.len())
            .finish()
    }
}

impl TorDetector {
    /// A detector with `config`, matching flows against the intel in `context` when it has any.
    pub fn new(config: TorConfig, context: &DetectorContext) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            contacts: WindowTable::new(config.max_keys, window_ms),
            reported_pairs: WindowTable::new(config.max_keys, window_ms),
            config,
            intel: IntelView::new(context),
            flows_matched: 0,
            hits_counted: 0,
            bad_addresses: 0,
        }
    }

    /// The Tor list that names `addr` (`None`: the record's text was not an address), if the
    /// snapshot has one.
    fn tor_list(&mut self, addr: Option<IpAddr>) -> Option<String> {
        let snapshot = self.intel.snapshot()?;
        let Some(ip) = addr else {
            self.bad_addresses += 1;
            return None;
        };
        let hit = snapshot.match_ip(ip)?;
        (hit.category == Category::Tor).then(|| hit.list.to_owned())
    }

    fn observe_flow(
        &mut self,
        source: &AgentSource,
        f: &FlowSummary,
        remote: Option<IpAddr>,
        out: &mut Vec<Observation>,
    ) {
        if self.intel.snapshot().is_none() {
            return;
        }
        let inbound = match summary::direction(f) {
            ConnectionDirection::Inbound => true,
            ConnectionDirection::Outbound => false,
            ConnectionDirection::Unknown => return,
        };
        let Some(list) = self.tor_list(remote) else {
            return;
        };
        self.flows_matched += 1;
        let (local_port, remote_port) = if inbound {
            (f.service_port, 0)
        } else {
            (0, f.service_port)
        };
        let contact = Contact {
            inbound,
            protocol: f.protocol,
            local_addr: &f.local_addr,
            local_port,
            remote_addr: &f.remote_addr,
            remote_port,
            at: summary::flow_time(f),
            list_name: &list,
        };
        self.client_or_caller(source, &contact, f, out);
        self.count(source, &contact, Some(f), out);
    }

    fn observe_hit(&mut self, source: &AgentSource, hit: &IntelHit, out: &mut Vec<Observation>) {
        if Category::from_wire_name(hit.category.trim()) != Some(Category::Tor)
            || hit.remote_addr.is_empty()
        {
            return;
        }
        let inbound = match Direction::try_from(hit.direction) {
            Ok(Direction::Ingress) => true,
            Ok(Direction::Egress) => false,
            _ => return,
        };
        self.hits_counted += 1;
        let contact = Contact {
            inbound,
            protocol: hit.protocol,
            local_addr: &hit.local_addr,
            local_port: hit.local_port,
            remote_addr: &hit.remote_addr,
            remote_port: hit.remote_port,
            at: hit.observed_at_ms,
            list_name: &hit.list_name,
        };
        self.count(source, &contact, None, out);
    }

    /// TorClient or TorIPCaller for a matched flow, once per instance, remote and window.
    fn client_or_caller(
        &mut self,
        source: &AgentSource,
        c: &Contact<'_>,
        f: &FlowSummary,
        out: &mut Vec<Observation>,
    ) {
        let key = (
            source.instance_id.clone(),
            c.remote_addr.to_owned(),
            c.inbound,
        );
        let w = self.reported_pairs.window(key, c.at);
        if w.fired {
            return;
        }
        w.fired = true;
        let (finding_type, role) = if c.inbound {
            (
                FindingType::UnauthorizedAccessTorIpCaller,
                ResourceRole::Target,
            )
        } else {
            (
                FindingType::UnauthorizedAccessTorClient,
                ResourceRole::Actor,
            )
        };
        let evidence = BehaviourEvidence {
            detector: "tor".to_owned(),
            window_ms: 0,
            thresholds: Vec::new(),
            example_names: Vec::new(),
            flows: vec![f.clone()],
            dns: Vec::new(),
            note: Some(format!(
                "{} is a Tor node on intel list {:?}",
                c.remote_addr, c.list_name
            )),
        };
        out.push(self.observation(source, c, finding_type, role, evidence));
    }

    fn observation(
        &self,
        source: &AgentSource,
        c: &Contact<'_>,
        finding_type: FindingType,
        role: ResourceRole,
        evidence: BehaviourEvidence,
    ) -> Observation {
        let mut o = summary::ObservationParts {
            finding_type,
            source,
            local_addr: c.local_addr,
            role,
            activity: Activity::Network(NetworkActivity {
                direction: if c.inbound {
                    ConnectionDirection::Inbound
                } else {
                    ConnectionDirection::Outbound
                },
                protocol: c.protocol,
                local_ip: c.local_addr.to_owned(),
                local_port: c.local_port,
                remote_ip: c.remote_addr.to_owned(),
                remote_port: c.remote_port,
            }),
            at_ms: c.at,
            severity: None,
        }
        .observation(evidence);
        o.threat_intel = Some(ThreatIntel {
            list_name: c.list_name.to_owned(),
            threat_names: vec!["tor".to_owned()],
        });
        o
    }

    /// Counts a contact towards relaying and reports the window once when it crosses.
    fn count(
        &mut self,
        source: &AgentSource,
        c: &Contact<'_>,
        f: Option<&FlowSummary>,
        out: &mut Vec<Observation>,
    ) {
        let min_in = self.config.min_inbound_nodes.get() as usize;
        let min_both = self.config.min_both_ways_nodes.get() as usize;
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let web = self.config.web_ports.contains(&c.local_port);
        let w = self.contacts.window(source.instance_id.clone(), c.at);
        let s = &mut w.state;
        let remote = c.remote_addr.to_owned();
        let mut on_port = 0;
        if c.inbound {
            s.inbound.insert(remote.clone(), NODE_CAP);
            if !web
                && (s.inbound_by_port.contains_key(&c.local_port)
                    || s.inbound_by_port.len() < PORT_CAP)
            {
                let port = s.inbound_by_port.entry(c.local_port).or_default();
                port.insert(remote, NODE_CAP);
                on_port = port.len();
            }
        } else {
            s.outbound.insert(remote, NODE_CAP);
        }
        if let Some(f) = f {
            keep_example(&mut s.flows, MAX_EXAMPLES, || f.clone());
        }
        let (n_in, n_out) = (s.inbound.len(), s.outbound.len());
        let both = n_in.min(n_out);
        if w.fired || (on_port < min_in && both < min_both) {
            return;
        }
        w.fired = true;
        let mut thresholds = Vec::new();
        if on_port >= min_in {
            thresholds.push(ThresholdCrossed {
                key: "detectors.tor.min_inbound_nodes".into(),
                limit: min_in as f64,
                observed: on_port as f64,
            });
        }
        if both >= min_both {
            thresholds.push(ThresholdCrossed {
                key: "detectors.tor.min_both_ways_nodes".into(),
                limit: min_both as f64,
                observed: both as f64,
            });
        }
        let note = format!(
            "{n_in} distinct Tor nodes connected in and {n_out} were connected to in the window{}",
            if on_port >= min_in {
                format!(
                    "; {on_port} of them dialled local port {}, as relays dial an ORPort",
                    c.local_port
                )
            } else {
                String::new()
            }
        );
        let evidence = BehaviourEvidence {
            detector: "tor".to_owned(),
            window_ms,
            thresholds,
            example_names: Vec::new(),
            flows: std::mem::take(&mut s.flows),
            dns: Vec::new(),
            note: Some(note),
        };
        let o = self.observation(
            source,
            c,
            FindingType::UnauthorizedAccessTorRelay,
            ResourceRole::Actor,
            evidence,
        );
        out.push(o);
    }
}

impl Detector for TorDetector {
    fn name(&self) -> &'static str {
        "tor"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow, EventKind::IntelHit]
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Agent { source, record } = event else {
            return;
        };
        match &record.record {
            Some(R::Flow(f)) => {
                self.intel.refresh();
                self.observe_flow(source, f, facts.remote().map(|a| a.ip), out);
            }
            Some(R::IntelHit(hit)) => self.observe_hit(source, hit, out),
            _ => {}
        }
    }

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        self.intel.refresh();
        self.contacts.expire(now_ms);
        self.reported_pairs.expire(now_ms);
    }

    fn tracked_keys(&self) -> usize {
        self.contacts.len().max(self.reported_pairs.len())
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "evicted_keys",
                count: self.contacts.evicted_full() + self.reported_pairs.evicted_full(),
            },
            DetectorCounter {
                name: "expired",
                count: self.contacts.expired() + self.reported_pairs.expired(),
            },
            DetectorCounter {
                name: "flows_matched",
                count: self.flows_matched,
            },
            DetectorCounter {
                name: "intel_hits_counted",
                count: self.hits_counted,
            },
            DetectorCounter {
                name: "bad_remote_address",
                count: self.bad_addresses,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use picket_intel::{ListKind, ListOptions, SnapshotBuilder, parse_list};
    use picket_proto::v1::{IntelHit, MatchSite, Record};

    use super::*;
    use crate::detectors::testing::{T0, flow, flow_event, run, source};

    const TOR_LIST: &str = include_str!("../../tests/fixtures/tor/tor-nodes.txt");
    const NODES_V4: [&str; 6] = [
        "128.31.0.39",
        "217.196.147.77",
        "45.66.33.45",
        "131.188.40.189",
        "193.23.244.244",
        "171.25.193.9",
    ];
    const NODES_V6: [&str; 5] = [
        "2001:638:a000:4140::ffff:189",
        "2001:678:558:1000::244",
        "2001:67c:289c::9",
        "2620:13:4000:6000::1000:118",
        "2a02:16a8:662:2203::1",
    ];

    fn context() -> DetectorContext {
        let opts = ListOptions::new("tor-nodes", ListKind::Threat).category(Category::Tor);
        let list = parse_list("tor-nodes.txt", TOR_LIST.as_bytes(), &opts).expect("parses");
        assert!(list.rejected.is_empty(), "{:?}", list.rejected);
        assert_eq!(list.indicators.len(), 15);
        let mut b = SnapshotBuilder::new();
        b.add_list(list);
        DetectorContext::with_fixed_intel(b.build(1).expect("builds"))
    }

    fn detector() -> TorDetector {
        TorDetector::new(TorConfig::default(), &context())
    }

    #[test]
    fn an_outbound_connection_to_a_tor_node_is_a_tor_client_ipv4_and_ipv6() {
        for (local, node) in [("10.0.0.5", NODES_V4[0]), ("2001:db8::5", NODES_V6[0])] {
            let mut d = detector();
            let out = run(&mut d, [flow_event(flow(true, local, node, 6, 9001, T0))]);
            assert_eq!(out.len(), 1, "{node}");
            assert_eq!(
                out[0].finding_type,
                FindingType::UnauthorizedAccessTorClient
            );
            assert_eq!(out[0].activity.remote(), node);
            assert!(out[0].threat_intel.is_some());
            // Once per window.
            let again = run(
                &mut d,
                [flow_event(flow(true, local, node, 6, 9001, T0 + 60_000))],
            );
            assert!(again.is_empty());
        }
    }

    #[test]
    fn traffic_with_addresses_not_on_the_list_or_without_intel_is_not_tor() {
        let mut d = detector();
        let out = run(
            &mut d,
            [
                flow_event(flow(true, "10.0.0.5", "128.31.0.40", 6, 9001, T0)),
                flow_event(flow(true, "2001:db8::5", "2001:67c:289c::10", 6, 443, T0)),
            ],
        );
        assert!(out.is_empty());
        let mut blind = TorDetector::new(TorConfig::default(), &DetectorContext::default());
        let out = run(
            &mut blind,
            [flow_event(flow(true, "10.0.0.5", NODES_V4[0], 6, 9001, T0))],
        );
        assert!(out.is_empty());
    }

    #[test]
    fn tor_nodes_dialling_one_local_port_make_a_relay_ipv4_and_ipv6() {
        for (local, nodes) in [
            ("10.0.0.5", &NODES_V4[..3]),
            ("2001:db8::5", &NODES_V6[..3]),
        ] {
            let mut d = detector();
            let events = nodes
                .iter()
                .map(|n| flow_event(flow(false, local, n, 6, 9001, T0)));
            let out = run(&mut d, events);
            let relay: Vec<_> = out
                .iter()
                .filter(|o| o.finding_type == FindingType::UnauthorizedAccessTorRelay)
                .collect();
            assert_eq!(relay.len(), 1, "{local}");
            let callers = out
                .iter()
                .filter(|o| o.finding_type == FindingType::UnauthorizedAccessTorIpCaller)
                .count();
            assert_eq!(callers, 3);
        }
    }

    #[test]
    fn tor_visitors_of_a_web_port_or_too_few_nodes_are_not_a_relay() {
        let mut d = detector();
        let web = NODES_V4
            .iter()
            .map(|n| flow_event(flow(false, "10.0.0.5", n, 6, 443, T0)));
        let two = NODES_V6[..2]
            .iter()
            .map(|n| flow_event(flow(false, "2001:db8::5", n, 6, 9001, T0)));
        let out = run(&mut d, web.chain(two));
        assert!(
            out.iter()
                .all(|o| o.finding_type != FindingType::UnauthorizedAccessTorRelay),
            "{out:?}"
        );
    }

    #[test]
    fn many_tor_nodes_both_ways_make_a_relay_even_on_a_web_port_with_config_thresholds() {
        let mut d = TorDetector::new(
            TorConfig {
                min_both_ways_nodes: NonZeroU32::new(2).expect("2"),
                ..TorConfig::default()
            },
            &context(),
        );
        let events = NODES_V4[..2].iter().flat_map(|n| {
            [
                flow_event(flow(false, "10.0.0.5", n, 6, 443, T0)),
                flow_event(flow(true, "10.0.0.5", n, 6, 443, T0)),
            ]
        });
        let out = run(&mut d, events);
        let relay = out
            .iter()
            .filter(|o| o.finding_type == FindingType::UnauthorizedAccessTorRelay)
            .count();
        assert_eq!(relay, 1);
    }

    #[test]
    fn agent_intel_hits_with_category_tor_count_towards_relaying() {
        let mut d = TorDetector::new(TorConfig::default(), &DetectorContext::default());
        let events = NODES_V6[..3].iter().map(|n| Event::Agent {
            source: source(),
            record: Record {
                record: Some(R::IntelHit(IntelHit {
                    observed_at_ms: T0,
                    matched_value: (*n).into(),
                    indicator: (*n).into(),
                    list_name: "tor-nodes".into(),
                    category: "tor".into(),
                    site: MatchSite::RemoteAddr as i32,
                    direction: Direction::Ingress as i32,
                    local_addr: "2001:db8::5".into(),
                    remote_addr: (*n).into(),
                    protocol: 6,
                    local_port: 9001,
                    remote_port: 50_000,
                    ..IntelHit::default()
                })),
            },
        });
        let out = run(&mut d, events);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, FindingType::UnauthorizedAccessTorRelay);
        assert_eq!(
            crate::detectors::testing::counter(&d, "intel_hits_counted"),
            Some(3)
        );
    }
}
