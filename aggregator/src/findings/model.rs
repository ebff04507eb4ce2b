//! The finding, shaped exactly like GuardDuty's finding JSON (botocore's `Finding` shape), so
//! tools that read GuardDuty findings read Picket's.
//!
//! Field names are GuardDuty's camelCase JSON names; absent optional members are omitted, never
//! `null`. Times are kept as milliseconds so the engine updates them without formatting, and are
//! written as ISO 8601 with milliseconds (`2026-11-23T00:47:00.123Z`), as GuardDuty writes them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::types::{ActionKind, FindingType, ResourceKind};
use crate::detectors::{ConnectionDirection, EvidenceDetail, ResourceRole};

/// The finding schema version GuardDuty writes.
pub const SCHEMA_VERSION: &str = "2.0";

/// A point in time in ms since the Unix epoch, serialised as ISO 8601 UTC with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-formatted rather than with `time`'s Rfc3339, which trims the fraction; GuardDuty
        // always writes three digits.
        let nanos = i128::from(self.0) * 1_000_000;
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl Timestamp {
    /// Parses an RFC 3339 time (any fraction, any offset).
    ///
    /// # Errors
    /// The `time` crate's parse error when `s` is not RFC 3339.
    pub fn parse(s: &str) -> Result<Self, time::error::Parse> {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        Ok(Self(i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format!("time {s:?}: {e}")))
    }
}

macro_rules! str_enum_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::ALL_KINDS
                    .iter()
                    .copied()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown value {s:?}")))
            }
        }
    };
}

impl ResourceKind {
    const ALL_KINDS: [ResourceKind; 3] = [Self::Instance, Self::AccessKey, Self::S3Bucket];
}
impl ActionKind {
    const ALL_KINDS: [ActionKind; 4] = [
        Self::NetworkConnection,
        Self::DnsRequest,
        Self::PortProbe,
        Self::AwsApiCall,
    ];
}
str_enum_serde!(ResourceKind);
str_enum_serde!(ActionKind);

/// One GuardDuty-shaped finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// Account of the resource.
    pub account_id: String,
    /// Region of the resource.
    pub region: String,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// 32 hex digits derived from the finding's key (see the engine).
    pub id: String,
    /// `arn:<partition>:guardduty:<region>:<account>:detector/<detectorId>/finding/<id>`.
    pub arn: String,
    /// The finding type.
    #[serde(rename = "type")]
    pub finding_type: FindingType,
    /// One-line summary.
    pub title: String,
    /// What happened, in a sentence or two.
    pub description: String,
    /// 1.0–10.0, GuardDuty's bands.
    pub severity: f64,
    /// When Picket first produced the finding.
    pub created_at: Timestamp,
    /// When Picket last updated it.
    pub updated_at: Timestamp,
    /// The resource involved.
    pub resource: Resource,
    /// What was seen and its evidence.
    pub service: Service,
}

/// `resource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// `Instance`, `AccessKey` or `S3Bucket`.
    pub resource_type: ResourceKind,
    /// Set when the resource is an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_details: Option<InstanceDetails>,
    /// Set when the resource is an access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_details: Option<AccessKeyDetails>,
    /// Set when the resource is a bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_bucket_details: Option<Vec<S3BucketDetail>>,
}

/// `resource.instanceDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDetails {
    /// `i-…`.
    pub instance_id: String,
    /// Interfaces with the addresses the agent saw.
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Availability zone, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

/// One entry of `networkInterfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// The private address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<String>,
    /// The public address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
}

/// `resource.accessKeyDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyDetails {
    /// Access key id.
    pub access_key_id: String,
    /// Principal id.
    pub principal_id: String,
    /// User or role name.
    pub user_name: String,
    /// `IAMUser`, `AssumedRole`, `Root`…
    pub user_type: String,
}

/// One entry of `resource.s3BucketDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3BucketDetail {
    /// Bucket ARN.
    pub arn: String,
    /// Bucket name.
    pub name: String,
    /// `Destination` or `Source`, as GuardDuty.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Always `guardduty`, so consumers accept it.
    pub service_name: String,
    /// Picket's detector id for the account and region (32 hex digits).
    pub detector_id: String,
    /// The activity.
    pub action: Action,
    /// Actor or target.
    pub resource_role: ResourceRole,
    /// Times the activity was seen.
    pub count: u64,
    /// First sighting.
    pub event_first_seen: Timestamp,
    /// Latest sighting.
    pub event_last_seen: Timestamp,
    /// Archived by a user or a suppression rule.
    pub archived: bool,
    /// Threat list entries involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// GuardDuty's free-form slot, plus Picket's typed evidence.
    pub additional_info: AdditionalInfo,
    /// Extended Threat Detection: the attack sequence and its signals, for
    /// `AttackSequence:*` findings only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<super::model_detection::Detection>,
}

/// `service.action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Which of the members below is set.
    pub action_type: ActionKind,
    /// For `NETWORK_CONNECTION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_connection_action: Option<NetworkConnectionAction>,
    /// For `DNS_REQUEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_request_action: Option<DnsRequestAction>,
    /// For `PORT_PROBE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_probe_action: Option<PortProbeAction>,
    /// For `AWS_API_CALL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_api_call_action: Option<AwsApiCallAction>,
}

/// `networkConnectionAction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConnectionAction {
    /// `INBOUND`, `OUTBOUND` or `UNKNOWN`.
    pub connection_direction: ConnectionDirection,
    /// The other side.
    pub remote_ip_details: RemoteIpDetails,
    /// The other side's port.
    pub remote_port_details: PortDetails,
    /// The resource's port.
    pub local_port_details: PortDetails,
    /// The resource's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ip_details: Option<IpDetails>,
    /// `TCP`, `UDP`, `ICMP` or `UNKNOWN`.
    pub protocol: String,
    /// Picket observes, it does not block: always false.
    pub blocked: bool,
}

/// `remoteIpDetails` (geolocation and organisation are not known to Picket yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteIpDetails {
    /// IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_v4: Option<String>,
    /// IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_v6: Option<String>,
}

/// `localIpDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpDetails {
    /// IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_v4: Option<String>,
    /// IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_v6: Option<String>,
}

/// `remotePortDetails` / `localPortDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDetails {
    /// Port number.
    pub port: u32,
    /// Service name (`HTTPS`, `SSH`…) or `Unknown`.
    pub port_name: String,
}

/// `dnsRequestAction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsRequestAction {
    /// The name queried.
    pub domain: String,
    /// `UDP` or `TCP`.
    pub protocol: String,
    /// Always false.
    pub blocked: bool,
    /// The name with its public suffix, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_with_suffix: Option<String>,
}

/// `portProbeAction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProbeAction {
    /// The probes.
    pub port_probe_details: Vec<PortProbeDetail>,
    /// Always false.
    pub blocked: bool,
}

/// One entry of `portProbeDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProbeDetail {
    /// The port probed.
    pub local_port_details: PortDetails,
    /// The address probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ip_details: Option<IpDetails>,
    /// The prober.
    pub remote_ip_details: RemoteIpDetails,
}

/// `awsApiCallAction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsApiCallAction {
    /// API name.
    pub api: String,
    /// Service endpoint.
    pub service_name: String,
    /// `Remote IP`, `Domain`, as GuardDuty.
    pub caller_type: String,
    /// The caller's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip_details: Option<RemoteIpDetails>,
    /// The AWS service that called, when `callerType` is `Domain` (ct-reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_details: Option<DomainDetails>,
    /// The caller's account when it is not the finding's (ct-reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_account_details: Option<RemoteAccountDetails>,
    /// The caller's user agent (ct-reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The call's error code, when it failed (ct-reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Resources the call touched: type to identifier (ct-reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_resources: Option<std::collections::BTreeMap<String, String>>,
}

/// `domainDetails` of an API call (ct-reader).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainDetails {
    /// The caller's domain, e.g. `ec2.amazonaws.com`.
    pub domain: String,
}

/// `remoteAccountDetails` of an API call (ct-reader).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteAccountDetails {
    /// The caller's account.
    pub account_id: String,
    /// Whether that account is one Picket serves; left out when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliated: Option<bool>,
}

/// `service.evidence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The list entries that matched.
    pub threat_intelligence_details: Vec<ThreatIntelligenceDetail>,
}

/// One entry of `threatIntelligenceDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreatIntelligenceDetail {
    /// The list's name.
    pub threat_list_name: String,
    /// Threat names of the entry.
    pub threat_names: Vec<String>,
}

/// `service.additionalInfo`: GuardDuty's `value` (a JSON string) and `type`, plus Picket's
/// evidence under `picketEvidence` (GuardDuty's own exports also add keys here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdditionalInfo {
    /// A JSON document as a string, as GuardDuty writes it.
    pub value: String,
    /// Always `default`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the detector saw: records, thresholds, the matching list entry.
    #[serde(
        rename = "picketEvidence",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub evidence: Option<EvidenceDetail>,
}

impl Finding {
    /// Folds `later` (the same finding seen again, e.g. from another engine drain) into `self`:
    /// counts add, first/last seen widen, the later update time wins, and archived sticks.
    pub fn absorb(&mut self, later: &Finding) {
        if later.service.event_last_seen >= self.service.event_last_seen
            && evidence_is_a_running_summary(later.service.additional_info.evidence.as_ref())
        {
            self.take_current_evidence(later);
        }
        self.service.count = self.service.count.saturating_add(later.service.count);
        self.service.event_first_seen = self
            .service
            .event_first_seen
            .min(later.service.event_first_seen);
        self.service.event_last_seen = self
            .service
            .event_last_seen
            .max(later.service.event_last_seen);
        self.updated_at = self.updated_at.max(later.updated_at);
        self.created_at = self.created_at.min(later.created_at);
        self.service.archived |= later.service.archived;
    }

    /// Takes `later`'s text, resource, action, evidence and detection: for findings whose
    /// evidence is a running summary (see [`evidence_is_a_running_summary`]), the newest
    /// sighting describes the whole activity and the first one only its start.
    pub fn take_current_evidence(&mut self, later: &Finding) {
        self.title.clone_from(&later.title);
        self.description.clone_from(&later.description);
        self.resource = later.resource.clone();
        self.service.action = later.service.action.clone();
        self.service.evidence.clone_from(&later.service.evidence);
        self.service.additional_info = later.service.additional_info.clone();
        self.service.detection.clone_from(&later.service.detection);
    }

    /// The instance id, when the resource is an instance.
    pub fn instance_id(&self) -> Option<&str> {
        self.resource
            .instance_details
            .as_ref()
            .map(|d| d.instance_id.as_str())
    }

    /// The remote IPv4 address of a network connection, when there is one.
    pub fn remote_ipv4(&self) -> Option<&str> {
        self.service
            .action
            .network_connection_action
            .as_ref()
            .and_then(|n| n.remote_ip_details.ip_address_v4.as_deref())
    }

    /// The domain of a DNS request, when there is one.
    pub fn dns_domain(&self) -> Option<&str> {
        self.service
            .action
            .dns_request_action
            .as_ref()
            .map(|d| d.domain.as_str())
    }
}

/// Whether evidence summarises everything seen so far (the accounts of a cross-account actor,
/// the signals of an attack sequence) rather than one sighting, so a later sighting's evidence
/// replaces an earlier one's instead of being dropped.
pub fn evidence_is_a_running_summary(evidence: Option<&EvidenceDetail>) -> bool {
    use crate::detectors::api_evidence::ApiBehaviourEvidence as B;
    matches!(
        evidence,
        Some(EvidenceDetail::ApiBehaviour(b))
            if matches!(**b, B::MultiAccount(_) | B::Sequence(_))
    )
}

/// A sentence naming what a running summary covers, appended to the finding's description
/// (the type's template cannot list accounts).
pub fn description_detail(evidence: &EvidenceDetail) -> Option<String> {
    use crate::detectors::api_evidence::ApiBehaviourEvidence as B;
    let EvidenceDetail::ApiBehaviour(b) = evidence else {
        return None;
    };
    match &**b {
        B::MultiAccount(m) => Some(format!(
            " Accounts ({}): {}.",
            m.accounts.len(),
            m.accounts.join(", ")
        )),
        B::Sequence(s) => Some(format!(
            " Signals: {}{}.",
            s.signals.len(),
            if s.suppressed_signals > 0 {
                format!(", {} of them suppressed", s.suppressed_signals)
            } else {
                String::new()
            }
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_with_milliseconds_and_read_back() {
        let t = Timestamp(1_700_000_000_007);
        assert_eq!(t.to_string(), "2023-11-14T22:13:20.007Z");
        assert_eq!(Timestamp::parse(&t.to_string()).ok(), Some(t));
        assert_eq!(
            Timestamp::parse("2023-11-14T22:13:20Z").ok(),
            Some(Timestamp(1_700_000_000_000))
        );
    }

    #[test]
    fn a_malformed_timestamp_is_an_error_not_zero() {
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"2023-13-01T00:00:00Z\"").is_err());
    }
}
