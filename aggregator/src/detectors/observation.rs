//! What a detector emits: one [`Observation`] per suspicious activity, typed, with the evidence
//! that explains it. The finding engine turns observations into findings; detectors never see
//! findings or the store.

use serde::{Deserialize, Serialize};

use crate::findings::types::FindingType;

/// Whether the resource did the activity or had it done to it (`service.resourceRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceRole {
    /// The resource started the activity (outbound traffic, DNS queries, API calls).
    Actor,
    /// The resource was acted upon (inbound probes, brute force against it).
    Target,
}

/// Direction of a connection relative to the resource (`connectionDirection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionDirection {
    /// The remote side opened it.
    Inbound,
    /// The resource opened it.
    Outbound,
    /// Not known.
    Unknown,
}

/// The resource an observation is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceRef {
    /// An EC2 instance running an agent.
    Instance {
        /// `i-…`.
        instance_id: String,
        /// The instance's address seen in the traffic, when known.
        private_ip: Option<String>,
    },
    /// IAM credentials.
    AccessKey {
        /// `AKIA…`/`ASIA…`.
        access_key_id: String,
        /// The principal id.
        principal_id: String,
        /// User or role name.
        user_name: String,
        /// `IAMUser`, `AssumedRole`, `Root`…
        user_type: String,
    },
    /// An S3 bucket.
    S3Bucket {
        /// Bucket name.
        name: String,
    },
}

impl ResourceRef {
    /// The identifier used in keys and titles (instance id, access key id, bucket name).
    pub fn id(&self) -> &str {
        match self {
            Self::Instance { instance_id, .. } => instance_id,
            Self::AccessKey { access_key_id, .. } => access_key_id,
            Self::S3Bucket { name } => name,
        }
    }
}

/// A network connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkActivity {
    /// Who opened it.
    pub direction: ConnectionDirection,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub protocol: u32,
    /// The resource's address.
    pub local_ip: String,
    /// The resource's port.
    pub local_port: u32,
    /// The other side's address.
    pub remote_ip: String,
    /// The other side's port.
    pub remote_port: u32,
}

/// A DNS query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsActivity {
    /// The name queried.
    pub domain: String,
    /// Transport of the query (`UDP` or `TCP`).
    pub protocol: &'static str,
}

/// A probe of a local port by a remote address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortProbeActivity {
    /// The resource's address.
    pub local_ip: String,
    /// The port probed.
    pub local_port: u32,
    /// The prober.
    pub remote_ip: String,
}

/// An AWS API call (CloudTrail; no detector produces these yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiCallActivity {
    /// API name, e.g. `ListBuckets`.
    pub api: String,
    /// Service endpoint, e.g. `s3.amazonaws.com`.
    pub service_name: String,
    /// Caller address, when CloudTrail gives one.
    pub caller_ip: Option<String>,
}

/// The activity an observation saw; its fields become `service.action`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Activity {
    /// `NETWORK_CONNECTION`.
    Network(NetworkActivity),
    /// `DNS_REQUEST`.
    Dns(DnsActivity),
    /// `PORT_PROBE`.
    PortProbe(PortProbeActivity),
    /// `AWS_API_CALL`.
    ApiCall(ApiCallActivity),
}

impl Activity {
    /// The other party, used in the finding key and text: remote address, domain or caller.
    pub fn remote(&self) -> &str {
        match self {
            Self::Network(n) => &n.remote_ip,
            Self::Dns(d) => &d.domain,
            Self::PortProbe(p) => &p.remote_ip,
            Self::ApiCall(a) => a.caller_ip.as_deref().unwrap_or(&a.api),
        }
    }
}

/// A threat list entry that matched (`evidence.threatIntelligenceDetails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatIntel {
    /// The list's name.
    pub list_name: String,
    /// Threat names the list gives for the entry.
    pub threat_names: Vec<String>,
}

/// Flow context of an intel hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowContext {
    /// `INBOUND`/`OUTBOUND`/`UNKNOWN`.
    pub direction: ConnectionDirection,
    /// The host's address.
    pub local_addr: String,
    /// The host's port.
    pub local_port: u32,
    /// The other side's address.
    pub remote_addr: String,
    /// The other side's port.
    pub remote_port: u32,
    /// IP protocol number.
    pub protocol: u32,
}

/// DNS context of an intel hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsContext {
    /// The name the host queried.
    pub query_name: String,
    /// Its record type.
    pub qtype: String,
    /// The resolver asked.
    pub resolver: String,
}

/// Why an intel hit became a finding: the list entry and the traffic that matched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntelHitEvidence {
    /// The list that matched.
    pub list_name: String,
    /// The list entry (address, CIDR or domain).
    pub indicator: String,
    /// The value from the traffic that matched it.
    pub matched_value: String,
    /// The category as the list gave it.
    pub category: String,
    /// False when the category was not one Picket knows; the finding then uses a `.Custom` type.
    pub category_known: bool,
    /// Where the list came from.
    pub source: String,
    /// The list's description of the entry.
    pub description: String,
    /// Where the match happened: `remote_addr`, `dns_query`, `dns_answer`, `tls_server_name`.
    pub site: String,
    /// Version of the intel set the agent matched with.
    pub intel_version: u64,
    /// Agent's observation time (ms since the epoch).
    pub observed_at_ms: i64,
    /// The connection, when the hit was on traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowContext>,
    /// The query, when the hit was on DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsContext>,
    /// Anything the detector had to decide that a reader should know (e.g. an unknown category).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One configured threshold a behavioural detector saw crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdCrossed {
    /// The config key, e.g. `detectors.port_scan.min_ports`.
    pub key: String,
    /// The configured limit.
    pub limit: f64,
    /// What the detector measured.
    pub observed: f64,
}

/// Why a behavioural detector fired: the thresholds crossed and the summaries that crossed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BehaviourEvidence {
    /// The detector's name.
    pub detector: String,
    /// The window the counts cover, in ms (0 for a single record).
    pub window_ms: i64,
    /// Every threshold that was crossed.
    pub thresholds: Vec<ThresholdCrossed>,
    /// Example DNS names (DNS detectors), a few at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub example_names: Vec<String>,
    /// The flow summaries that counted, a few at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<picket_proto::v1::FlowSummary>,
    /// The DNS summaries that counted, a few at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<picket_proto::v1::DnsSummary>,
    /// What a reader should know about the decision (e.g. which rule matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a CloudTrail rule fired: the event that did it and where it was read (ct-reader).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCallEvidence {
    /// The rule's name (the detector's).
    pub detector: String,
    /// `eventID` (not unique in real data; read it with the time and origin).
    pub event_id: String,
    /// `eventTime`, ms since the epoch.
    pub event_time_ms: i64,
    /// Where the event was read: `file:position` (a `Records` index or a line).
    pub origin: String,
    /// The caller's ARN.
    pub principal_arn: String,
    /// `userIdentity.type`.
    pub principal_type: String,
    /// `sourceIPAddress` as written, when it is not a plain address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_text: Option<String>,
    /// The AWS service that called, when the caller was AWS itself (`callerType` `Domain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_domain: Option<String>,
    /// `userAgent`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// `errorCode`, empty when the call succeeded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_code: String,
    /// The caller's account when it differs from the finding's (`remoteAccountDetails`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_account_id: Option<String>,
    /// `affectedResources`: resource type to identifier, as GuardDuty writes them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub affected_resources: std::collections::BTreeMap<String, String>,
    /// The request parameters that decided the rule (a subset, not the whole request).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub request_parameters: serde_json::Value,
    /// What a reader should know about the decision (thresholds crossed, state used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Picket's own evidence, kept under `service.additionalInfo` so a finding explains itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvidenceDetail {
    /// A threat list match reported by an agent.
    IntelHit(Box<IntelHitEvidence>),
    /// A behavioural detector's thresholds and records.
    Behaviour(Box<BehaviourEvidence>),
    /// A CloudTrail event that a rule matched (ct-reader).
    ApiCall(Box<ApiCallEvidence>),
    /// A sample finding (`findings samples`), not real activity.
    Sample,
    /// CloudTrail baselines, IAM persistence and correlation (ct-correlate).
    ApiBehaviour(Box<super::api_evidence::ApiBehaviourEvidence>),
}

/// One suspicious activity seen by a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The finding type, from the registry.
    pub finding_type: FindingType,
    /// 12-digit AWS account of the resource.
    pub account_id: String,
    /// AWS region of the resource.
    pub region: String,
    /// The resource.
    pub resource: ResourceRef,
    /// Actor or target.
    pub role: ResourceRole,
    /// The activity.
    pub activity: Activity,
    /// When it happened (ms since the epoch).
    pub at_ms: i64,
    /// Threat list entries involved, if any.
    pub threat_intel: Option<ThreatIntel>,
    /// Severity when the detector knows better than the type's default (brute force is Low
    /// with the instance as target, High as actor); `None` keeps the registry's default.
    pub severity: Option<f64>,
    /// The detector's evidence.
    pub evidence: EvidenceDetail,
}
