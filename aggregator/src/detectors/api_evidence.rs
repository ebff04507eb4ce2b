//! Evidence of the CloudTrail baselines, IAM persistence checks and the correlation stage, kept
//! under `service.additionalInfo.picketEvidence` so each finding says what was compared with
//! what.

use serde::{Deserialize, Serialize};

/// What an API-behaviour finding rests on; one variant per detector or correlation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ApiBehaviourEvidence {
    /// A call new on several dimensions of the principal's baseline.
    Anomaly(AnomalyEvidence),
    /// An IAM change that grants persistence or privilege.
    IamChange(IamChangeEvidence),
    /// Instance role credentials used from an address not the instance's.
    InstanceCredentials(InstanceCredentialEvidence),
    /// One actor active against several served accounts.
    MultiAccount(MultiAccountEvidence),
    /// A chain of signals by one principal.
    Sequence(SequenceEvidence),
}

/// The call that triggered a finding, as CloudTrail gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCallRef {
    /// `eventName`.
    pub event_name: String,
    /// `eventSource`.
    pub event_source: String,
    /// `eventID`.
    pub event_id: String,
    /// `awsRegion`.
    pub region: String,
    /// The caller's ARN (or principal id / access key when there is no ARN).
    pub principal: String,
    /// The caller's address or service name.
    pub source: String,
    /// `userAgent`.
    pub user_agent: String,
    /// `errorCode`, empty for a successful call.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_code: String,
    /// The call's time, ms since the epoch.
    pub at_ms: i64,
}

/// One dimension of a baseline and whether the call was new on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineDimension {
    /// `api`, `region`, `network` or `user_agent`.
    pub dimension: String,
    /// The call's value (a /24 or /48 for `network`).
    pub value: String,
    /// Whether the baseline had never seen it.
    pub new: bool,
    /// Distinct values the baseline holds for this dimension (saturates at 255).
    pub baseline_distinct: u32,
}

/// Why a call was anomalous for its principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyEvidence {
    /// The tactic the API belongs to (`Discovery`, `Persistence`, …).
    pub tactic: String,
    /// The call.
    pub call: ApiCallRef,
    /// Every dimension, new or not.
    pub dimensions: Vec<BaselineDimension>,
    /// How many were new, and the configured minimum.
    pub new_dimensions: u32,
    /// `detectors.api_baseline.min_new_dimensions`.
    pub min_new_dimensions: u32,
    /// Events the principal's baseline had learned from before this call.
    pub baseline_events: u64,
    /// When the principal's baseline started, ms since the epoch.
    pub baseline_since_ms: i64,
}

/// An IAM change that grants persistence or privilege.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IamChangeEvidence {
    /// The call.
    pub call: ApiCallRef,
    /// The user, role or group changed.
    pub target: String,
    /// What made it matter, e.g. `AdministratorAccess attached` or `trusts account 193672423079`.
    pub reason: String,
    /// The policy ARN or document involved, when there is one (documents cut at 2 KiB).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy: String,
}

/// Instance role credentials used from an address that is not the instance's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceCredentialEvidence {
    /// The call.
    pub call: ApiCallRef,
    /// The instance whose role session it was.
    pub instance_id: String,
    /// The addresses its agent reported.
    pub instance_addresses: Vec<String>,
    /// The caller's address.
    pub caller_address: String,
    /// The caller's address is in AWS's published ranges.
    pub caller_in_aws: bool,
    /// The instance (and account) the caller's address belongs to, when it is one Picket
    /// serves (affiliated: severity Medium).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_instance: Option<String>,
    /// `ec2RoleDelivery`, when CloudTrail gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_role_delivery: Option<String>,
}

/// One actor seen in several member accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiAccountEvidence {
    /// `address`, `access_key` or `principal`.
    pub actor_kind: String,
    /// The address, key or principal.
    pub actor: String,
    /// Every member account it was active against, sorted.
    pub accounts: Vec<String>,
    /// `detectors.cross_account.min_accounts`.
    pub min_accounts: u32,
    /// `detectors.cross_account.window_secs`, in ms.
    pub window_ms: i64,
    /// A few of the calls, one per account.
    pub calls: Vec<ApiCallRef>,
}

/// One observation that took part in an attack sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequenceSignal {
    /// The observation's finding type.
    pub finding_type: String,
    /// `discovery`, `persistence_or_evasion`, `exfiltration_or_impact` or `context`.
    pub stage: String,
    /// The API, when the signal came from a call.
    pub api: String,
    /// Account and region of the signal.
    pub account_id: String,
    /// Region of the signal.
    pub region: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// A suppression rule archived the signal's finding; it still counts here.
    pub suppressed: bool,
    /// The signal's own finding id (32 hex digits), so the sequence links to it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub finding_id: String,
    /// The signal's resource: access key, bucket name or instance id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// `ACCESS_KEY`, `S3_BUCKET` or `EC2_INSTANCE` (GuardDuty's `FindingResourceType`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_type: String,
    /// The caller's address or service name, when the signal came from a call.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caller: String,
}

/// A chain of signals by one principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequenceEvidence {
    /// The principal.
    pub principal: String,
    /// `detectors.attack_sequence.window_secs`, in ms.
    pub window_ms: i64,
    /// Every signal kept for the principal in the window, oldest first.
    pub signals: Vec<SequenceSignal>,
    /// How many of them were suppressed.
    pub suppressed_signals: u32,
    /// The principal's user name (or role session), when a signal named it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_name: String,
    /// The principal's type (`IAMUser`, `AssumedRole`, `Root`…), when a signal named it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_type: String,
}
