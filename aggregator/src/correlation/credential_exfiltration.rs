//! `UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS` and `.InsideAWS`:
//! an instance role session (`…/assumed-role/<role>/i-…`) calling from an address its agent
//! never reported.
//!
//! GuardDuty infers this from CloudTrail alone; here the instance's own addresses come from
//! its agent, so a call is judged against what the instance really has. An instance without
//! an agent is not judged (counted): there is nothing to compare with. Calls made through AWS
//! services (`sourceIPAddress` a service name) are not judged either.

use crate::cloudtrail::ApiEvent;
use crate::detectors::accounts::AccountsConfig;
use crate::detectors::api_call::{access_key_resource, api_activity};
use crate::detectors::api_evidence::{
    ApiBehaviourEvidence, ApiCallRef, InstanceCredentialEvidence,
};
use crate::detectors::{EvidenceDetail, Observation, ResourceRole};
use crate::findings::types::FindingType;

use super::aws_ranges::AwsRanges;
use super::instances::InstanceAddresses;

/// Severity when the caller is an instance of another account Picket serves.
const AFFILIATED_SEVERITY: f64 = 5.0;

/// Counts of the join's work.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CredentialStats {
    /// Instance role calls judged.
    pub judged: u64,
    /// Instance role calls whose instance has no agent report.
    pub unknown_instance: u64,
    /// Findings raised.
    pub findings: u64,
}

/// Judges one API event; pushes an observation when an instance's credentials were used
/// from an address that is not the instance's.
pub fn check(
    e: &ApiEvent,
    instances: &InstanceAddresses,
    ranges: Option<&AwsRanges>,
    accounts: &AccountsConfig,
    stats: &mut CredentialStats,
    out: &mut Vec<Observation>,
) {
    let Some(instance_id) = e.principal.instance_session() else {
        return;
    };
    let Some(caller) = e.source.ip() else {
        return;
    };
    let Some(entry) = instances.instance(instance_id) else {
        stats.unknown_instance += 1;
        return;
    };
    stats.judged += 1;
    if entry.addresses.contains(&caller) {
        return;
    }
    let owner = instances.owner_of(caller);
    let in_aws = ranges.is_some_and(|r| r.contains(caller)) || owner.is_some();
    let affiliated =
        owner.filter(|(_, o)| o.account_id != entry.account_id && accounts.serves(&o.account_id));
    stats.findings += 1;
    out.push(Observation {
        finding_type: if in_aws {
            FindingType::UnauthorizedAccessInstanceCredentialExfiltrationInsideAws
        } else {
            FindingType::UnauthorizedAccessInstanceCredentialExfiltrationOutsideAws
        },
        account_id: e.account_id().to_owned(),
        region: e.region.clone(),
        resource: access_key_resource(e),
        role: ResourceRole::Actor,
        activity: api_activity(e),
        at_ms: e.time_ms,
        threat_intel: None,
        severity: affiliated.is_some().then_some(AFFILIATED_SEVERITY),
        evidence: EvidenceDetail::ApiBehaviour(Box::new(
            ApiBehaviourEvidence::InstanceCredentials(InstanceCredentialEvidence {
                call: ApiCallRef::of(e),
                instance_id: instance_id.to_owned(),
                instance_addresses: entry.addresses.iter().map(ToString::to_string).collect(),
                caller_address: caller.to_string(),
                caller_in_aws: in_aws,
                caller_instance: owner.map(|(id, o)| format!("{} ({})", id, o.account_id)),
                ec2_role_delivery: e.principal.ec2_role_delivery.clone(),
            }),
        )),
    });
}
