//! Sample findings: one archived `[SAMPLE]` finding per registered type, as GuardDuty's
//! `CreateSampleFindings` makes, so consumers can be tested without real activity.
//!
//! Samples go through the same [`build_finding`] as real findings, so a sample that validates
//! against GuardDuty's shape means the real ones of that type do too.

use super::engine::{FindingId, build_finding};
use super::model::{Finding, Timestamp};
use super::types::{ActionKind, FindingType, ResourceKind};
use crate::detectors::{
    Activity, ApiCallActivity, ConnectionDirection, DnsActivity, EvidenceDetail, NetworkActivity,
    Observation, PortProbeActivity, ResourceRef, ResourceRole, ThreatIntel,
};

/// The instance id GuardDuty's own samples use.
pub const SAMPLE_INSTANCE_ID: &str = "i-99999999";
/// A documentation address (RFC 5737) for the remote side.
pub const SAMPLE_REMOTE_IP: &str = "198.51.100.1";
/// The domain GuardDuty's own samples use.
pub const SAMPLE_DOMAIN: &str = "guarddutyc2activityb.com";

fn sample_observation(
    t: FindingType,
    account_id: &str,
    region: &str,
    now: Timestamp,
) -> Observation {
    let resource = match t.resource_kind() {
        ResourceKind::Instance => ResourceRef::Instance {
            instance_id: SAMPLE_INSTANCE_ID.to_owned(),
            private_ip: Some("10.0.0.23".to_owned()),
        },
        ResourceKind::AccessKey => ResourceRef::AccessKey {
            access_key_id: "ASIASAMPLEACCESSKEY0".to_owned(),
            principal_id: "AROASAMPLEPRINCIPAL0:i-99999999".to_owned(),
            user_name: "GeneratedFindingUserName".to_owned(),
            user_type: "AssumedRole".to_owned(),
        },
        ResourceKind::S3Bucket => ResourceRef::S3Bucket {
            name: "example-bucket".to_owned(),
        },
    };
    let (activity, role) = match t.action_kind() {
        ActionKind::NetworkConnection => (
            Activity::Network(NetworkActivity {
                direction: ConnectionDirection::Outbound,
                protocol: 6,
                local_ip: "10.0.0.23".to_owned(),
                local_port: 39677,
                remote_ip: SAMPLE_REMOTE_IP.to_owned(),
                remote_port: 443,
            }),
            ResourceRole::Actor,
        ),
        ActionKind::DnsRequest => (
            Activity::Dns(DnsActivity {
                domain: SAMPLE_DOMAIN.to_owned(),
                protocol: "UDP",
            }),
            ResourceRole::Actor,
        ),
        ActionKind::PortProbe => (
            Activity::PortProbe(PortProbeActivity {
                local_ip: "10.0.0.23".to_owned(),
                local_port: 22,
                remote_ip: SAMPLE_REMOTE_IP.to_owned(),
            }),
            ResourceRole::Target,
        ),
        ActionKind::AwsApiCall => (
            Activity::ApiCall(ApiCallActivity {
                api: "GeneratedFindingAPIName".to_owned(),
                service_name: "GeneratedFindingAPIServiceName".to_owned(),
                caller_ip: Some(SAMPLE_REMOTE_IP.to_owned()),
            }),
            ResourceRole::Target,
        ),
    };
    Observation {
        finding_type: t,
        account_id: account_id.to_owned(),
        region: region.to_owned(),
        resource,
        role,
        activity,
        at_ms: now.0,
        threat_intel: Some(ThreatIntel {
            list_name: "GeneratedFindingThreatListName".to_owned(),
            threat_names: vec!["GeneratedFindingThreatName".to_owned()],
        }),
        severity: None,
        evidence: EvidenceDetail::Sample,
    }
}

/// The archived `[SAMPLE]` finding of type `t`, created now.
pub fn sample_finding(t: FindingType, account_id: &str, region: &str) -> Finding {
    sample_finding_at(t, account_id, region, Timestamp::now())
}

/// The archived `[SAMPLE]` finding of type `t`, created at `now`.
pub fn sample_finding_at(
    t: FindingType,
    account_id: &str,
    region: &str,
    now: Timestamp,
) -> Finding {
    let obs = sample_observation(t, account_id, region, now);
    let mut f = build_finding(&obs, FindingId::of(&obs), now);
    f.title = format!("[SAMPLE] {}", f.title);
    f.description = format!("[SAMPLE] {}", f.description);
    f.service.archived = true;
    f
}

/// One sample per registered type, in registry order.
pub fn samples(account_id: &str, region: &str, now: Timestamp) -> Vec<Finding> {
    FindingType::ALL
        .iter()
        .map(|&t| sample_finding_at(t, account_id, region, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_one_archived_sample_per_registered_type() {
        let all = samples("123456789012", "us-east-1", Timestamp(0));
        assert_eq!(all.len(), FindingType::ALL.len());
        for (f, &t) in all.iter().zip(FindingType::ALL) {
            assert_eq!(f.finding_type, t);
            assert!(f.service.archived, "{t}");
            assert!(f.title.starts_with("[SAMPLE] "), "{t}");
            assert_eq!(f.resource.resource_type, t.resource_kind(), "{t}");
            assert_eq!(f.service.action.action_type, t.action_kind(), "{t}");
        }
    }
}
