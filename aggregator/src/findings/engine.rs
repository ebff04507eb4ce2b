//! The finding engine: turns observations into findings and aggregates repeats.
//!
//! A finding's id is derived from its key — type, account, region, resource, role and the other
//! party (remote address, domain or caller) — as the first 16 bytes of a SHA-256, written as 32
//! hex digits like GuardDuty's ids. The same activity seen again therefore lands on the same id
//! and only bumps `count`, `eventLastSeen` and `updatedAt`, whichever process or drain saw it.
//!
//! The engine keeps the findings it has touched since the last [`FindingEngine::drain`] in
//! memory. It is bounded by the caller: when [`FindingEngine::is_full`] says so, the caller drains
//! (into the store, or into `analyze`'s result, which folds drains together with
//! [`Finding::absorb`]).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use sha2::{Digest, Sha256};

use super::model::{
    AccessKeyDetails, Action, AdditionalInfo, AwsApiCallAction, DnsRequestAction, DomainDetails,
    Evidence, Finding, InstanceDetails, IpDetails, NetworkConnectionAction, NetworkInterface,
    PortDetails, PortProbeAction, PortProbeDetail, RemoteAccountDetails, RemoteIpDetails, Resource,
    S3BucketDetail, SCHEMA_VERSION, Service, ThreatIntelligenceDetail, Timestamp,
};
use super::suppression::SuppressionRules;
use super::types::ActionKind;
use crate::detectors::{Activity, EvidenceDetail, Observation, ResourceRef, ResourceRole};

/// A finding id: 16 bytes of SHA-256 over the finding's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindingId(pub [u8; 16]);

impl FindingId {
    /// The id of an observation's finding.
    pub fn of(obs: &Observation) -> Self {
        let mut h = Sha256::new();
        key_into(&mut h, obs);
        Self::from_digest(h)
    }

    fn from_digest(h: Sha256) -> Self {
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }
}

impl FindingId {
    /// The id as 32 lowercase hex digits, GuardDuty's id form.
    pub fn to_hex(&self) -> String {
        // Table lookup rather than 16 `write!`s: ids are formatted once per new finding, on the
        // engine's hot path.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }
}

impl fmt::Display for FindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Feeds the finding key into a hasher; fields are NUL-separated so `("ab","c")` and
/// `("a","bc")` differ.
fn key_into(h: &mut Sha256, obs: &Observation) {
    let role = match obs.role {
        ResourceRole::Actor => "A",
        ResourceRole::Target => "T",
    };
    for part in [
        obs.finding_type.name(),
        &obs.account_id,
        &obs.region,
        obs.resource.id(),
        role,
        obs.activity.remote(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
}

/// Picket's stand-in for a GuardDuty detector id: stable per account and region.
pub fn detector_id(account_id: &str, region: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"picket-detector\0");
    h.update(account_id.as_bytes());
    h.update([0]);
    h.update(region.as_bytes());
    FindingId::from_digest(h).to_hex()
}

/// The AWS partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// What [`FindingEngine::observe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new finding; `archived` when a suppression rule matched it.
    Created {
        /// Its id.
        id: FindingId,
        /// Whether a suppression rule archived it.
        archived: bool,
    },
    /// A repeat of an open finding.
    Updated {
        /// Its id.
        id: FindingId,
    },
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Open findings held before [`FindingEngine::is_full`] asks for a drain.
    pub max_open: NonZeroUsize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_open: NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// Counts of the engine's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Observations applied.
    pub observations: u64,
    /// Findings created.
    pub created: u64,
    /// Findings archived on arrival by a suppression rule.
    pub suppressed: u64,
}

/// Observations in, aggregated findings out.
#[derive(Debug)]
pub struct FindingEngine {
    config: EngineConfig,
    // Boxed so growing the map moves pointers, not ~1 KiB findings (the bench showed memmove
    // dominating the new-finding path).
    open: HashMap<FindingId, Box<Finding>>,
    // Detector ids per (account, region): a SHA-256 each, and there are few pairs. Cleared on
    // drain so it stays as bounded as the open set.
    detector_ids: HashMap<(String, String), String>,
    rules: SuppressionRules,
    stats: EngineStats,
}

impl FindingEngine {
    /// An engine with no open findings that archives what `rules` match.
    pub fn new(config: EngineConfig, rules: SuppressionRules) -> Self {
        Self {
            config,
            open: HashMap::new(),
            detector_ids: HashMap::new(),
            rules,
            stats: EngineStats::default(),
        }
    }

    /// Applies one observation at processing time `now` (the event time, offline).
    pub fn observe(&mut self, obs: &Observation, now: Timestamp) -> Applied {
        self.stats.observations += 1;
        let id = FindingId::of(obs);
        if let Some(f) = self.open.get_mut(&id) {
            let at = Timestamp(obs.at_ms);
            // Running summaries (cross-account actors, sequences) are raised again only when
            // they grew: the repeat's evidence is the current one.
            if at >= f.service.event_last_seen
                && super::model::evidence_is_a_running_summary(Some(&obs.evidence))
            {
                let fresh = build_finding_for(obs, id, now, f.service.detector_id.clone());
                f.take_current_evidence(&fresh);
            }
            f.service.count = f.service.count.saturating_add(1);
            f.service.event_last_seen = f.service.event_last_seen.max(at);
            f.service.event_first_seen = f.service.event_first_seen.min(at);
            f.updated_at = f.updated_at.max(now);
            return Applied::Updated { id };
        }
        let detector = self
            .detector_ids
            .entry((obs.account_id.clone(), obs.region.clone()))
            .or_insert_with(|| detector_id(&obs.account_id, &obs.region));
        let mut finding = build_finding_for(obs, id, now, detector.clone());
        let archived = self.rules.first_match(&finding).is_some();
        finding.service.archived = archived;
        self.stats.created += 1;
        self.stats.suppressed += u64::from(archived);
        self.open.insert(id, Box::new(finding));
        Applied::Created { id, archived }
    }

    /// Whether the open finding `id` was archived by a suppression rule (`None` when it is not
    /// open), so correlation can count suppressed repeats as signals.
    pub fn is_archived(&self, id: &FindingId) -> Option<bool> {
        self.open.get(id).map(|f| f.service.archived)
    }

    /// Whether the open set reached its bound and the caller should [`Self::drain`].
    pub fn is_full(&self) -> bool {
        self.open.len() >= self.config.max_open.get()
    }

    /// Open findings held.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no finding is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Hands over every open finding (in id order) and forgets them.
    pub fn drain(&mut self) -> Vec<Finding> {
        self.detector_ids.clear();
        let mut out: Vec<(FindingId, Box<Finding>)> = self.open.drain().collect();
        out.sort_unstable_by_key(|(id, _)| *id);
        out.into_iter().map(|(_, f)| *f).collect()
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }
}

fn protocol_name(protocol: u32) -> &'static str {
    match protocol {
        6 => "TCP",
        17 => "UDP",
        1 | 58 => "ICMP",
        _ => "UNKNOWN",
    }
}

fn port_details(port: u32) -> PortDetails {
    let name = match port {
        22 => "SSH",
        23 => "Telnet",
        25 => "SMTP",
        53 => "DNS",
        80 => "HTTP",
        123 => "NTP",
        443 => "HTTPS",
        445 => "SMB",
        1433 => "MSSQL",
        3306 => "MySQL",
        3389 => "RDP",
        5432 => "PostgreSQL",
        6379 => "Redis",
        8333 => "Bitcoin",
        _ => "Unknown",
    };
    PortDetails {
        port,
        port_name: name.to_owned(),
    }
}

fn remote_ip(addr: &str) -> RemoteIpDetails {
    let ip = ip_details(addr);
    RemoteIpDetails {
        ip_address_v4: ip.ip_address_v4,
        ip_address_v6: ip.ip_address_v6,
    }
}

/// Sorts an address into the v4 or v6 slot; text that is not an address goes in neither (the
/// evidence still carries it).
fn ip_details(addr: &str) -> IpDetails {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => IpDetails {
            ip_address_v4: Some(addr.to_owned()),
            ip_address_v6: None,
        },
        Ok(IpAddr::V6(_)) => IpDetails {
            ip_address_v4: None,
            ip_address_v6: Some(addr.to_owned()),
        },
        Err(_) => IpDetails {
            ip_address_v4: None,
            ip_address_v6: None,
        },
    }
}

fn optional_ip(addr: &str) -> Option<IpDetails> {
    (!addr.is_empty()).then(|| ip_details(addr))
}

fn action(activity: &Activity) -> Action {
    let mut action = Action {
        action_type: ActionKind::NetworkConnection,
        network_connection_action: None,
        dns_request_action: None,
        port_probe_action: None,
        aws_api_call_action: None,
    };
    match activity {
        Activity::Network(n) => {
            action.network_connection_action = Some(NetworkConnectionAction {
                connection_direction: n.direction,
                remote_ip_details: remote_ip(&n.remote_ip),
                remote_port_details: port_details(n.remote_port),
                local_port_details: port_details(n.local_port),
                local_ip_details: optional_ip(&n.local_ip),
                protocol: protocol_name(n.protocol).to_owned(),
                blocked: false,
            });
        }
        Activity::Dns(d) => {
            action.action_type = ActionKind::DnsRequest;
            action.dns_request_action = Some(DnsRequestAction {
                domain: d.domain.clone(),
                protocol: d.protocol.to_owned(),
                blocked: false,
                domain_with_suffix: None,
            });
        }
        Activity::PortProbe(p) => {
            action.action_type = ActionKind::PortProbe;
            action.port_probe_action = Some(PortProbeAction {
                port_probe_details: vec![PortProbeDetail {
                    local_port_details: port_details(p.local_port),
                    local_ip_details: optional_ip(&p.local_ip),
                    remote_ip_details: remote_ip(&p.remote_ip),
                }],
                blocked: false,
            });
        }
        Activity::ApiCall(a) => {
            action.action_type = ActionKind::AwsApiCall;
            action.aws_api_call_action = Some(AwsApiCallAction {
                api: a.api.clone(),
                service_name: a.service_name.clone(),
                caller_type: "Remote IP".to_owned(),
                remote_ip_details: a.caller_ip.as_deref().map(remote_ip),
                domain_details: None,
                remote_account_details: None,
                user_agent: None,
                error_code: None,
                affected_resources: None,
            });
        }
    }
    action
}

/// Fills `awsApiCallAction`'s caller details from a CloudTrail rule's evidence (ct-reader).
fn with_api_call_evidence(mut action: Action, evidence: &EvidenceDetail) -> Action {
    let (Some(call), EvidenceDetail::ApiCall(ev)) = (action.aws_api_call_action.as_mut(), evidence)
    else {
        return action;
    };
    if call.remote_ip_details.is_none()
        && let Some(domain) = &ev.caller_domain
    {
        call.caller_type = "Domain".to_owned();
        call.domain_details = Some(DomainDetails {
            domain: domain.clone(),
        });
    }
    call.remote_account_details = ev.caller_account_id.as_ref().map(|a| RemoteAccountDetails {
        account_id: a.clone(),
        affiliated: None,
    });
    call.user_agent = (!ev.user_agent.is_empty()).then(|| ev.user_agent.clone());
    call.error_code = (!ev.error_code.is_empty()).then(|| ev.error_code.clone());
    call.affected_resources =
        (!ev.affected_resources.is_empty()).then(|| ev.affected_resources.clone());
    action
}

fn resource(obs: &Observation) -> Resource {
    // An S3 type on a bucket-less call (ListBuckets) names the caller's key, not a bucket:
    // the resource type says what is really there, so exports do not invent a bucket.
    let resource_type = match (&obs.resource, obs.finding_type.resource_kind()) {
        (ResourceRef::AccessKey { .. }, super::types::ResourceKind::S3Bucket) => {
            super::types::ResourceKind::AccessKey
        }
        (_, kind) => kind,
    };
    let mut r = Resource {
        resource_type,
        instance_details: None,
        access_key_details: None,
        s3_bucket_details: None,
    };
    match &obs.resource {
        ResourceRef::Instance {
            instance_id,
            private_ip,
        } => {
            r.instance_details = Some(InstanceDetails {
                instance_id: instance_id.clone(),
                network_interfaces: private_ip
                    .iter()
                    .map(|ip| NetworkInterface {
                        private_ip_address: Some(ip.clone()),
                        public_ip: None,
                    })
                    .collect(),
                availability_zone: None,
            });
        }
        ResourceRef::AccessKey {
            access_key_id,
            principal_id,
            user_name,
            user_type,
        } => {
            r.access_key_details = Some(AccessKeyDetails {
                access_key_id: access_key_id.clone(),
                principal_id: principal_id.clone(),
                user_name: user_name.clone(),
                user_type: user_type.clone(),
            });
        }
        ResourceRef::S3Bucket { name } => {
            r.s3_bucket_details = Some(vec![S3BucketDetail {
                arn: format!("arn:{}:s3:::{name}", partition(&obs.region)),
                name: name.clone(),
                kind: "Destination".to_owned(),
            }]);
        }
    }
    r
}

/// Builds the finding for a first sighting of `obs`, with id `id`, created at `now`.
pub fn build_finding(obs: &Observation, id: FindingId, now: Timestamp) -> Finding {
    build_finding_for(obs, id, now, detector_id(&obs.account_id, &obs.region))
}

fn build_finding_for(
    obs: &Observation,
    id: FindingId,
    now: Timestamp,
    detector: String,
) -> Finding {
    let id = id.to_hex();
    let partition = partition(&obs.region);
    let t = obs.finding_type;
    let resource_id = obs.resource.id();
    let remote = obs.activity.remote();
    let at = Timestamp(obs.at_ms);
    // GuardDuty's `value` is a short JSON summary; the full evidence sits beside it.
    let mut summary = serde_json::Map::new();
    if let Some(ti) = &obs.threat_intel {
        summary.insert("threatListName".into(), ti.list_name.clone().into());
    }
    if obs.evidence == EvidenceDetail::Sample {
        summary.insert("sample".into(), true.into());
    }
    let evidence_json = serde_json::Value::Object(summary).to_string();
    let mut description = t.description(resource_id, remote);
    if let Some(more) = super::model::description_detail(&obs.evidence) {
        description.push_str(&more);
    }
    let detection = super::model_detection::detection_of(obs, &id, &description);
    Finding {
        schema_version: SCHEMA_VERSION.to_owned(),
        account_id: obs.account_id.clone(),
        region: obs.region.clone(),
        partition: partition.to_owned(),
        arn: format!(
            "arn:{partition}:guardduty:{}:{}:detector/{detector}/finding/{id}",
            obs.region, obs.account_id
        ),
        id,
        finding_type: t,
        title: t.title(resource_id, remote),
        description,
        severity: obs.severity.unwrap_or_else(|| t.default_severity()),
        created_at: now,
        updated_at: now,
        resource: resource(obs),
        service: Service {
            service_name: "guardduty".to_owned(),
            detector_id: detector,
            action: with_api_call_evidence(action(&obs.activity), &obs.evidence),
            resource_role: obs.role,
            count: 1,
            event_first_seen: at,
            event_last_seen: at,
            archived: false,
            evidence: obs.threat_intel.as_ref().map(|ti| Evidence {
                threat_intelligence_details: vec![ThreatIntelligenceDetail {
                    threat_list_name: ti.list_name.clone(),
                    threat_names: ti.threat_names.clone(),
                }],
            }),
            additional_info: AdditionalInfo {
                value: evidence_json,
                kind: "default".to_owned(),
                evidence: Some(obs.evidence.clone()),
            },
            detection,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::{ConnectionDirection, NetworkActivity};
    use crate::findings::types::FindingType;

    pub(crate) fn obs(remote: &str, at_ms: i64) -> Observation {
        Observation {
            finding_type: FindingType::BackdoorCcActivity,
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            resource: ResourceRef::Instance {
                instance_id: "i-0abc".into(),
                private_ip: Some("10.0.0.5".into()),
            },
            role: ResourceRole::Actor,
            activity: Activity::Network(NetworkActivity {
                direction: ConnectionDirection::Outbound,
                protocol: 6,
                local_ip: "10.0.0.5".into(),
                local_port: 40000,
                remote_ip: remote.into(),
                remote_port: 443,
            }),
            at_ms,
            threat_intel: None,
            severity: None,
            evidence: EvidenceDetail::Sample,
        }
    }

    fn engine() -> FindingEngine {
        FindingEngine::new(EngineConfig::default(), SuppressionRules::default())
    }

    #[test]
    fn the_same_activity_twice_is_one_finding_with_count_two_and_a_later_last_seen() {
        let mut e = engine();
        let first = e.observe(&obs("198.51.100.7", 1_000), Timestamp(1_000));
        let second = e.observe(&obs("198.51.100.7", 5_000), Timestamp(5_000));
        assert!(matches!(
            first,
            Applied::Created {
                archived: false,
                ..
            }
        ));
        assert!(matches!(second, Applied::Updated { .. }));
        let findings = e.drain();
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.service.count, 2);
        assert_eq!(f.service.event_first_seen, Timestamp(1_000));
        assert_eq!(f.service.event_last_seen, Timestamp(5_000));
        assert_eq!(f.updated_at, Timestamp(5_000));
        assert_eq!(f.created_at, Timestamp(1_000));
    }

    #[test]
    fn a_different_remote_address_is_a_second_finding() {
        let mut e = engine();
        e.observe(&obs("198.51.100.7", 1_000), Timestamp(1_000));
        e.observe(&obs("198.51.100.8", 1_000), Timestamp(1_000));
        let findings = e.drain();
        assert_eq!(findings.len(), 2);
        assert_ne!(findings[0].id, findings[1].id);
        assert!(findings.iter().all(|f| f.service.count == 1));
    }

    #[test]
    fn ids_are_32_hex_digits_and_stable_across_engines() {
        let a = FindingId::of(&obs("198.51.100.7", 1)).to_string();
        let b = FindingId::of(&obs("198.51.100.7", 99)).to_string();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let mut other = obs("198.51.100.7", 1);
        other.account_id = "210987654321".into();
        assert_ne!(FindingId::of(&other).to_string(), a);
    }

    #[test]
    fn the_arn_names_region_account_detector_and_id() {
        let o = obs("198.51.100.7", 1);
        let f = build_finding(&o, FindingId::of(&o), Timestamp(1));
        let expected = format!(
            "arn:aws:guardduty:eu-west-1:123456789012:detector/{}/finding/{}",
            f.service.detector_id, f.id
        );
        assert_eq!(f.arn, expected);
        assert_eq!(f.service.detector_id.len(), 32);
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn absorbing_a_later_drain_adds_counts_and_widens_the_window() {
        let mut e = engine();
        e.observe(&obs("198.51.100.7", 1_000), Timestamp(1_000));
        let mut first = e.drain();
        e.observe(&obs("198.51.100.7", 9_000), Timestamp(9_000));
        e.observe(&obs("198.51.100.7", 8_000), Timestamp(9_500));
        let second = e.drain();
        assert_eq!((first.len(), second.len()), (1, 1));
        assert_eq!(first[0].id, second[0].id);
        first[0].absorb(&second[0]);
        assert_eq!(first[0].service.count, 3);
        assert_eq!(first[0].service.event_last_seen, Timestamp(9_000));
        assert_eq!(first[0].updated_at, Timestamp(9_500));
        assert_eq!(first[0].created_at, Timestamp(1_000));
    }

    #[test]
    fn is_full_asks_for_a_drain_at_the_bound() {
        let mut e = FindingEngine::new(
            EngineConfig {
                max_open: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            },
            SuppressionRules::default(),
        );
        e.observe(&obs("198.51.100.1", 1), Timestamp(1));
        assert!(!e.is_full());
        e.observe(&obs("198.51.100.2", 1), Timestamp(1));
        assert!(e.is_full());
        assert_eq!(e.drain().len(), 2);
        assert!(e.is_empty());
    }
}
