//! Detectors: small state machines fed normalised [`Event`]s that emit [`Observation`]s.
//!
//! Every detector implements [`Detector`]; [`all`] builds the set that both `serve` and
//! `analyze` run, so offline analysis can never drift from the service. A detector keeps only
//! bounded state and never touches findings or the store: turning observations into findings
//! (ids, aggregation, suppression) is the finding engine's job.
//!
//! Intel hits arrive already filtered: trusted lists are applied by the agent's matcher, so a
//! trusted address never becomes an `IntelHit` and nothing here needs to know about them.

pub mod accounts;
pub mod addr_text;
pub mod agent_health;
pub mod api_baseline;
pub mod api_call;
pub mod api_evidence;
#[cfg(test)]
pub mod api_testing;
pub mod baseline;
pub mod beacon_score;
pub mod beaconing;
pub mod brute_force;
pub mod cloudtrail_rules;
pub mod crypto_mining;
pub mod denial_of_service;
pub mod dga;
pub mod dns_exfiltration;
pub mod iam_persistence;
pub mod inbound_scan;
pub mod intel_hit;
pub mod metadata_dns_rebind;
pub mod network_port_unusual;
pub mod observation;
pub mod port_scan;
pub mod port_sweep;
pub mod spambot;
pub mod summary;
#[cfg(test)]
pub mod testing;
pub mod tor;
pub mod traffic_volume_unusual;
pub mod unusual_dns_resolver;
pub mod unusual_doh;
pub mod unusual_dot;
pub mod window;

use picket_proto::v1::Record;
use serde::Deserialize;

pub use observation::{
    Activity, ApiCallActivity, ApiCallEvidence, BehaviourEvidence, ConnectionDirection,
    DnsActivity, DnsContext, EvidenceDetail, FlowContext, IntelHitEvidence, NetworkActivity,
    Observation, PortProbeActivity, ResourceRef, ResourceRole, ThreatIntel, ThresholdCrossed,
};

/// The agent a record came from, as authenticated by ingest (or given to `analyze`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentSource {
    /// 12-digit AWS account id.
    pub account_id: String,
    /// EC2 instance id.
    pub instance_id: String,
    /// AWS region.
    pub region: String,
}

/// A normalised input to the detectors.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// Agent records are the hot path; boxing them would allocate per record.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// One record an agent shipped, with the agent's identity.
    Agent {
        /// Who sent it.
        source: AgentSource,
        /// What it sent.
        record: Record,
    },
    /// One CloudTrail API event, normalised.
    Api(Box<crate::cloudtrail::ApiEvent>),
}

/// The kinds of event a detector can ask for, so the pipeline can skip the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `FlowSummary` records.
    Flow,
    /// `DnsSummary` records.
    Dns,
    /// `IntelHit` records.
    IntelHit,
    /// `HostStats` records.
    HostStats,
    /// CloudTrail API events.
    Api,
}

impl Event {
    /// The kind of this event, or `None` for an agent record with no body.
    pub fn kind(&self) -> Option<EventKind> {
        use picket_proto::v1::record::Record as R;
        match self {
            Self::Agent { record, .. } => match record.record.as_ref()? {
                R::Flow(_) => Some(EventKind::Flow),
                R::Dns(_) => Some(EventKind::Dns),
                R::IntelHit(_) => Some(EventKind::IntelHit),
                R::HostStats(_) => Some(EventKind::HostStats),
            },
            Self::Api(_) => Some(EventKind::Api),
        }
    }
}

/// An address a record names, parsed, with whether it can be a public destination
/// ([`summary::is_public`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedAddr {
    /// The address.
    pub ip: std::net::IpAddr,
    /// Whether it can be a public destination.
    pub public: bool,
}

impl ParsedAddr {
    /// `text` parsed, or `None` when it is not an IPv4 or IPv6 address.
    pub fn parse(text: &str) -> Option<Self> {
        let ip = addr_text::parse(text)?;
        Some(Self {
            ip,
            public: summary::is_public(ip),
        })
    }
}

/// What the pipeline works out once per event and hands every detector with it, so that no
/// detector repeats it: the agent's instance id as a shared key (detectors key their tables
/// by it without hashing the id) and a flow summary's addresses, parsed and classed on the
/// first ask (parsing them in every detector that wanted them was a third of the detectors'
/// instructions; few detectors want the local one). Made only by [`EventFacts::of`], so the
/// facts always describe their event.
#[derive(Debug)]
pub struct EventFacts<'a> {
    instance: Option<&'a window::NameKey>,
    flow: Option<&'a picket_proto::v1::FlowSummary>,
    remote: std::cell::OnceCell<Option<ParsedAddr>>,
    local: std::cell::OnceCell<Option<ParsedAddr>>,
}

impl<'a> EventFacts<'a> {
    /// The facts of `event`, its instance id shared through `names`.
    pub fn of(event: &'a Event, names: &'a mut window::SharedNames) -> Self {
        let (instance, flow) = match event {
            Event::Agent { source, record } => (
                Some(names.key(&source.instance_id)),
                match &record.record {
                    Some(picket_proto::v1::record::Record::Flow(f)) => Some(f),
                    _ => None,
                },
            ),
            Event::Api(_) => (None, None),
        };
        Self {
            instance,
            flow,
            remote: std::cell::OnceCell::new(),
            local: std::cell::OnceCell::new(),
        }
    }

    /// The agent's instance id as its shared key; `None` for CloudTrail events.
    pub fn instance(&self) -> Option<&'a window::NameKey> {
        self.instance
    }

    /// A flow summary's `remote_addr`, parsed; `None` for other records or when the text is
    /// not an address.
    pub fn remote(&self) -> Option<ParsedAddr> {
        *self
            .remote
            .get_or_init(|| self.flow.and_then(|f| ParsedAddr::parse(&f.remote_addr)))
    }

    /// A flow summary's `local_addr`, parsed; as [`Self::remote`].
    pub fn local(&self) -> Option<ParsedAddr> {
        *self
            .local
            .get_or_init(|| self.flow.and_then(|f| ParsedAddr::parse(&f.local_addr)))
    }
}

/// A named count a detector keeps about its own work (e.g. unknown categories seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorCounter {
    /// Fixed label, e.g. `unknown_category`.
    pub name: &'static str,
    /// The count since the detector was built.
    pub count: u64,
}

/// One detection rule or model.
pub trait Detector: Send {
    /// Stable name, used in logs and counters.
    fn name(&self) -> &'static str;
    /// The event kinds this detector wants; it is never given others.
    fn inputs(&self) -> &'static [EventKind];
    /// Looks at one event, with what the pipeline worked out about it (`facts`), and pushes
    /// any observations it causes onto `out`.
    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>);
    /// The event kinds for which this detector wants [`Self::prefetch`] called (none by
    /// default).
    fn prefetch_inputs(&self) -> &'static [EventKind] {
        &[]
    }
    /// A cache hint, changing nothing the detector holds: starts loading the state that
    /// [`Self::observe`] will touch for `event`, which comes next. The pipeline calls it for
    /// every detector that asked before running the event through any of them, so a detector
    /// whose state lives in a table far larger than the cache waits for memory while the
    /// others work instead of after them.
    fn prefetch(&self, _event: &Event, _facts: &EventFacts<'_>) {}
    /// Called as time passes (`now_ms`, ms since the epoch) so windowed detectors can close
    /// windows and evict state; pushes any observations that causes.
    fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Observation>);
    /// Keys held in the detector's per-key state now (0 for a stateless detector), so a
    /// harness can check the state stays within its cap.
    fn tracked_keys(&self) -> usize {
        0
    }
    /// The detector's own counters, for reports and metrics.
    fn counters(&self) -> Vec<DetectorCounter> {
        Vec::new()
    }
    /// Learned state worth keeping across restarts (baselines), in the detector's own
    /// encoding; `None` for detectors whose state is only a short window.
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }
    /// Restores what [`Self::save_state`] returned in an earlier run. On an error the
    /// detector stays as built (it relearns), and the caller reports why.
    fn restore_state(&mut self, _bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// What detectors may consult besides their config: shared, read-only lookups.
#[derive(Debug, Clone, Default)]
pub struct DetectorContext {
    /// The aggregator's current intel (threat and trusted lists), for detectors that match
    /// values agents never saw (CloudTrail callers). `None` when no lists are loaded.
    pub intel:
        Option<tokio::sync::watch::Receiver<std::sync::Arc<crate::intel::manager::Published>>>,
}

impl DetectorContext {
    /// A context whose intel never changes (offline analysis).
    pub fn with_fixed_intel(snapshot: picket_intel::Snapshot) -> Self {
        let published = std::sync::Arc::new(crate::intel::manager::Published::new(snapshot));
        let (tx, rx) = tokio::sync::watch::channel(published);
        // The receiver keeps the last value after the sender is gone, which is all a fixed
        // snapshot needs.
        drop(tx);
        Self { intel: Some(rx) }
    }
}

/// A detector's view of the context's intel: the snapshot in force, swapped only when a new
/// one is published, so the per-event [`IntelView::refresh`] is one version compare.
#[derive(Debug, Default)]
pub struct IntelView {
    rx: Option<tokio::sync::watch::Receiver<std::sync::Arc<crate::intel::manager::Published>>>,
    snapshot: Option<std::sync::Arc<picket_intel::Snapshot>>,
}

impl IntelView {
    /// The intel in `context` (none: [`Self::snapshot`] is always `None`).
    pub fn new(context: &DetectorContext) -> Self {
        let mut rx = context.intel.clone();
        let snapshot = rx
            .as_mut()
            .map(|rx| std::sync::Arc::clone(&rx.borrow_and_update().snapshot));
        Self { rx, snapshot }
    }

    /// Picks up a newly published snapshot, if there is one.
    pub fn refresh(&mut self) {
        if let Some(rx) = &mut self.rx
            && rx.has_changed().unwrap_or(false)
        {
            self.snapshot = Some(std::sync::Arc::clone(&rx.borrow_and_update().snapshot));
        }
    }

    /// The snapshot in force as of the last refresh, if any intel is loaded.
    pub fn snapshot(&self) -> Option<&picket_intel::Snapshot> {
        self.snapshot.as_deref()
    }
}

/// `[detectors]`: one section per behavioural detector, named after it
/// (`[detectors.port_scan]`), each with its thresholds, window and state cap.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorsConfig {
    /// `[detectors.port_scan]`.
    #[serde(default)]
    pub port_scan: port_scan::PortScanConfig,
    /// `[detectors.port_sweep]`.
    #[serde(default)]
    pub port_sweep: port_sweep::PortSweepConfig,
    /// `[detectors.brute_force]`.
    #[serde(default)]
    pub brute_force: brute_force::BruteForceConfig,
    /// `[detectors.dns_exfiltration]`.
    #[serde(default)]
    pub dns_exfiltration: dns_exfiltration::DnsExfiltrationConfig,
    /// `[detectors.dga]`.
    #[serde(default)]
    pub dga: dga::DgaConfig,
    /// `[detectors.metadata_dns_rebind]`.
    #[serde(default)]
    pub metadata_dns_rebind: metadata_dns_rebind::MetadataDnsRebindConfig,
    /// `[detectors.unusual_dot]`.
    #[serde(default)]
    pub unusual_dot: unusual_dot::UnusualDotConfig,
    /// `[detectors.unusual_doh]`.
    #[serde(default)]
    pub unusual_doh: unusual_doh::UnusualDohConfig,
    /// `[detectors.crypto_mining]`.
    #[serde(default)]
    pub crypto_mining: crypto_mining::CryptoMiningConfig,
    /// `[detectors.denial_of_service]`.
    #[serde(default)]
    pub denial_of_service: denial_of_service::DenialOfServiceConfig,
    /// `[detectors.console_login]` (CloudTrail console sign-in rules, ct-reader).
    #[serde(default)]
    pub console_login: cloudtrail_rules::console_login::ConsoleLoginConfig,
    /// `[detectors.agent_health]`.
    #[serde(default)]
    pub agent_health: agent_health::AgentHealthConfig,
    /// `[detectors.api_baseline]`.
    #[serde(default)]
    pub api_baseline: api_baseline::ApiBaselineConfig,
    /// `[detectors.iam_persistence]`.
    #[serde(default)]
    pub iam_persistence: iam_persistence::IamPersistenceConfig,
    /// `[detectors.instance_credentials]` (correlation stage).
    #[serde(default)]
    pub instance_credentials: crate::correlation::InstanceCredentialsConfig,
    /// `[detectors.cross_account]` (correlation stage).
    #[serde(default)]
    pub cross_account: crate::correlation::CrossAccountConfig,
    /// `[detectors.attack_sequence]` (correlation stage).
    #[serde(default)]
    pub attack_sequence: crate::correlation::AttackSequenceConfig,
    /// The top-level `[accounts]` section, copied here when the config file is loaded so
    /// every pipeline (serve and analyze) sees it; not a `[detectors]` key.
    #[serde(skip)]
    pub accounts: accounts::AccountsConfig,
    /// `[detectors.network_port_unusual]`.
    #[serde(default)]
    pub network_port_unusual: network_port_unusual::NetworkPortUnusualConfig,
    /// `[detectors.traffic_volume_unusual]`.
    #[serde(default)]
    pub traffic_volume_unusual: traffic_volume_unusual::TrafficVolumeUnusualConfig,
    /// `[detectors.spambot]`.
    #[serde(default)]
    pub spambot: spambot::SpambotConfig,
    /// `[detectors.unusual_dns_resolver]`.
    #[serde(default)]
    pub unusual_dns_resolver: unusual_dns_resolver::UnusualDnsResolverConfig,
    /// `[detectors.tor]`.
    #[serde(default)]
    pub tor: tor::TorConfig,
    /// `[detectors.beaconing]`.
    #[serde(default)]
    pub beaconing: beaconing::BeaconingConfig,
    /// `[detectors.inbound_scan]`.
    #[serde(default)]
    pub inbound_scan: inbound_scan::InboundScanConfig,
}

impl DetectorsConfig {
    /// Every out-of-range value, each naming its full key and the value given.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        self.dns_exfiltration.check(&mut p);
        self.dga.check(&mut p);
        self.denial_of_service.check(&mut p);
        self.console_login.check(&mut p);
        self.agent_health.check(&mut p);
        self.api_baseline.check(&mut p);
        self.iam_persistence.check(&mut p);
        self.instance_credentials.check(&mut p);
        self.cross_account.check(&mut p);
        self.attack_sequence.check(&mut p);
        self.accounts.check(&mut p);
        self.network_port_unusual.check(&mut p);
        self.traffic_volume_unusual.check(&mut p);
        self.beaconing.check(&mut p);
        self.unusual_dot.check(&mut p);
        self.spambot.check(&mut p);
        p
    }
}

/// Default key cap of a detector's window table: enough for every remote a busy host talks to
/// in a window, small enough (a few MB) to keep per detector.
pub fn default_max_keys() -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(10_000).unwrap_or(std::num::NonZeroUsize::MIN)
}

/// Every detector, configured by `config`: the one set `serve` and `analyze` both run.
pub fn all(config: &DetectorsConfig, context: &DetectorContext) -> Vec<Box<dyn Detector>> {
    let mut detectors: Vec<Box<dyn Detector>> = vec![
        Box::new(intel_hit::IntelHitDetector::default()),
        Box::new(port_scan::PortScanDetector::new(config.port_scan.clone())),
        Box::new(inbound_scan::InboundScanDetector::new(
            config.inbound_scan.clone(),
        )),
        Box::new(port_sweep::PortSweepDetector::new(
            config.port_sweep.clone(),
        )),
        Box::new(brute_force::BruteForceDetector::new(
            config.brute_force.clone(),
        )),
        Box::new(dns_exfiltration::DnsExfiltrationDetector::new(
            config.dns_exfiltration.clone(),
        )),
        Box::new(dga::DgaDetector::new(config.dga.clone())),
        Box::new(metadata_dns_rebind::MetadataDnsRebindDetector::new(
            config.metadata_dns_rebind.clone(),
        )),
        Box::new(unusual_dot::UnusualDotDetector::new(
            config.unusual_dot.clone(),
        )),
        Box::new(unusual_doh::UnusualDohDetector::new(
            config.unusual_doh.clone(),
        )),
        Box::new(crypto_mining::CryptoMiningDetector::new(
            config.crypto_mining.clone(),
        )),
        Box::new(denial_of_service::DenialOfServiceDetector::new(
            config.denial_of_service.clone(),
        )),
        Box::new(network_port_unusual::NetworkPortUnusualDetector::new(
            config.network_port_unusual.clone(),
        )),
        Box::new(traffic_volume_unusual::TrafficVolumeUnusualDetector::new(
            config.traffic_volume_unusual.clone(),
        )),
        Box::new(spambot::SpambotDetector::new(config.spambot.clone())),
        Box::new(unusual_dns_resolver::UnusualDnsResolverDetector::new(
            config.unusual_dns_resolver.clone(),
        )),
        Box::new(tor::TorDetector::new(config.tor.clone(), context)),
        Box::new(beaconing::BeaconingDetector::new(config.beaconing.clone())),
        Box::new(api_baseline::ApiBaselineDetector::new(
            config.api_baseline.clone(),
        )),
        Box::new(iam_persistence::IamPersistenceDetector::new(
            config.iam_persistence.clone(),
            config.accounts.clone(),
        )),
        Box::new(agent_health::AgentHealthDetector::new(
            config.agent_health.clone(),
        )),
    ];
    detectors.extend(cloudtrail_rules::all(config, context));
    detectors
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_detector_has_a_unique_name_and_asks_for_some_input() {
        let detectors = all(&DetectorsConfig::default(), &DetectorContext::default());
        assert!(!detectors.is_empty());
        let names: HashSet<_> = detectors.iter().map(|d| d.name()).collect();
        assert_eq!(names.len(), detectors.len());
        for d in &detectors {
            assert!(!d.inputs().is_empty(), "{} wants nothing", d.name());
        }
    }

    #[test]
    fn every_windowed_detector_stays_within_its_key_cap_and_counts_evictions() {
        use std::num::NonZeroUsize;

        use picket_proto::v1::DnsSummary;

        use super::testing::{T0, dns, dns_event, flow, flow_event};

        let cap = NonZeroUsize::new(4).expect("4");
        let mut config = DetectorsConfig::default();
        config.port_scan.max_keys = cap;
        config.inbound_scan.max_keys = cap;
        config.port_sweep.max_keys = cap;
        config.brute_force.max_keys = cap;
        config.dns_exfiltration.max_keys = cap;
        config.dga.max_keys = cap;
        config.denial_of_service.max_keys = cap;
        config.agent_health.max_agents = cap;
        let mut detectors = all(&config, &DetectorContext::default());
        let mut out = Vec::new();
        let mut names = window::SharedNames::default();
        for i in 0..64u32 {
            let v6 = i % 2 == 1;
            let local = if v6 { "2001:db8::5" } else { "10.0.0.5" };
            let remote = if v6 {
                format!("2001:db8:9::{i:x}")
            } else {
                format!("198.51.100.{i}")
            };
            let mut f = flow(
                true,
                local,
                &remote,
                6,
                if i % 4 < 2 { 22 } else { 1000 + i },
                T0 + i64::from(i),
            );
            f.remote_answered = false;
            f.unanswered_syns = 1;
            f.short_connections = 1;
            let d = DnsSummary {
                nxdomain: 1,
                // A tunnel sign, so dns_exfiltration (which skips sign-less DNS) keeps keys too.
                queries_by_type: vec![picket_proto::v1::TypeCount {
                    qtype: "TXT".into(),
                    count: 1,
                }],
                ..dns(&remote, &format!("qzx{i}kvbnmt.com"), 1, T0 + i64::from(i))
            };
            // Host stats from as many agents, for the per-agent detector (ops).
            let stats = Event::Agent {
                source: AgentSource {
                    instance_id: format!("i-{i}"),
                    ..super::testing::source()
                },
                record: Record {
                    record: Some(picket_proto::v1::record::Record::HostStats(
                        picket_proto::v1::HostStats {
                            interval_end_ms: T0 + i64::from(i),
                            ..Default::default()
                        },
                    )),
                },
            };
            // The same remote probing the instance, for inbound_scan.
            let mut inbound = f.clone();
            inbound.direction = picket_proto::v1::Direction::Ingress as i32;
            inbound.service_port = 0;
            for event in [flow_event(f), flow_event(inbound), dns_event(d), stats] {
                let facts = EventFacts::of(&event, &mut names);
                for det in &mut detectors {
                    if event.kind().is_some_and(|k| det.inputs().contains(&k)) {
                        det.observe(&event, &facts, &mut out);
                    }
                }
            }
        }
        let mut evicting = 0;
        for d in &detectors {
            assert!(
                d.tracked_keys() <= cap.get(),
                "{} holds {}",
                d.name(),
                d.tracked_keys()
            );
            let evicted = d
                .counters()
                .iter()
                .find(|c| c.name == "evicted_full")
                .map(|c| c.count);
            if let Some(n) = evicted {
                assert!(n > 0, "{} never evicted", d.name());
                evicting += 1;
            }
        }
        assert_eq!(evicting, 8, "every windowed detector reports evictions");
    }

    #[test]
    fn event_facts_carry_the_shared_instance_key_and_a_flows_parsed_addresses() {
        use super::testing::{T0, dns, dns_event, flow, flow_event, source};

        let mut names = window::SharedNames::default();
        let event = flow_event(flow(true, "10.0.0.5", "198.51.100.7", 6, 443, T0));
        let facts = EventFacts::of(&event, &mut names);
        assert_eq!(facts.instance().map(|k| k.as_str()), Some("i-0abc"));
        let remote = facts.remote().expect("remote parsed");
        assert_eq!(remote.ip.to_string(), "198.51.100.7");
        assert!(remote.public);
        let local = facts.local().expect("local parsed");
        assert!(!local.public);
        // A remote that is not an address is left for the detectors to count.
        let bad = flow_event(flow(true, "10.0.0.5", "not-an-ip", 6, 443, T0));
        let facts = EventFacts::of(&bad, &mut names);
        assert!(facts.remote().is_none());
        assert!(facts.local().is_some());
        // DNS summaries carry the instance only.
        let d = dns_event(dns("10.0.0.5", "example.com", 1, T0));
        let facts = EventFacts::of(&d, &mut names);
        assert_eq!(
            facts.instance(),
            Some(&window::NameKey::new(&source().instance_id))
        );
        assert!(facts.remote().is_none() && facts.local().is_none());
        let api = Event::Api(Box::new(crate::detectors::api_testing::instance_call(
            "i-0abc",
            "ListBuckets",
            "10.0.0.5",
            T0,
        )));
        let facts = EventFacts::of(&api, &mut names);
        assert!(facts.instance().is_none() && facts.remote().is_none());
    }

    #[test]
    fn an_agent_record_without_a_body_has_no_kind() {
        let event = Event::Agent {
            source: AgentSource {
                account_id: "123456789012".into(),
                instance_id: "i-1".into(),
                region: "eu-west-1".into(),
            },
            record: Record { record: None },
        };
        assert_eq!(event.kind(), None);
    }
}
