//! The observation a CloudTrail rule emits for one event: the caller's credentials (or a
//! bucket) as the resource, the call as `awsApiCallAction`, and [`ApiCallEvidence`] naming the
//! event, where it was read and the request parameters that mattered.

use std::collections::BTreeMap;

use crate::cloudtrail::{ApiEvent, CallerAddress};
use crate::detectors::{
    Activity, ApiCallActivity, ApiCallEvidence, EvidenceDetail, Observation, ResourceRef,
    ResourceRole, ThreatIntel,
};
use crate::findings::types::FindingType;

/// The caller's credentials as a resource. Console sign-ins and some service calls carry no
/// access key; the principal id (else the ARN) then stands in, so findings still name who.
pub fn access_key(event: &ApiEvent) -> ResourceRef {
    let p = &event.principal;
    let id = [&p.access_key_id, &p.principal_id, &p.arn]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default();
    let user_name = if p.user_name.is_empty() && p.kind == "Root" {
        "Root".to_owned()
    } else {
        p.user_name.clone()
    };
    ResourceRef::AccessKey {
        access_key_id: id,
        principal_id: p.principal_id.clone(),
        user_name,
        user_type: p.kind.clone(),
    }
}

/// A bucket as a resource.
pub fn bucket(name: &str) -> ResourceRef {
    ResourceRef::S3Bucket {
        name: name.to_owned(),
    }
}

/// `requestParameters.bucketName`, when the call names a bucket.
pub fn bucket_name(event: &ApiEvent) -> Option<&str> {
    event
        .request_parameters
        .get("bucketName")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What one rule hit adds beyond the event itself.
#[derive(Debug, Default)]
pub struct Extra {
    /// The request parameters that decided the rule.
    pub request_parameters: serde_json::Value,
    /// A note for the reader.
    pub note: Option<String>,
    /// The threat list entry, for intel rules.
    pub threat_intel: Option<ThreatIntel>,
}

/// The observation of `finding_type` about `resource` for `event`.
pub fn observation(
    detector: &'static str,
    finding_type: FindingType,
    resource: ResourceRef,
    event: &ApiEvent,
    extra: Extra,
) -> Observation {
    let (source_text, caller_domain) = match &event.source {
        CallerAddress::Ip(_) | CallerAddress::Missing => (None, None),
        CallerAddress::AwsService(s) => (None, Some(s.clone())),
        CallerAddress::Other { raw, .. } => (Some(raw.clone()), None),
    };
    let account = event.account_id();
    let caller_account_id = (!event.principal.account_id.is_empty()
        && event.principal.account_id != account)
        .then(|| event.principal.account_id.clone());
    let mut affected_resources = BTreeMap::new();
    for r in &event.resources {
        if !r.kind.is_empty() && !r.arn.is_empty() {
            affected_resources.insert(r.kind.clone(), r.arn.clone());
        }
    }
    if let Some(b) = bucket_name(event) {
        affected_resources
            .entry("AWS::S3::Bucket".to_owned())
            .or_insert_with(|| b.to_owned());
    }
    Observation {
        finding_type,
        account_id: account.to_owned(),
        region: event.region.clone(),
        resource,
        role: ResourceRole::Target,
        activity: Activity::ApiCall(ApiCallActivity {
            api: event.event_name.clone(),
            service_name: event.event_source.clone(),
            caller_ip: event.source.ip().map(|ip| ip.to_string()),
        }),
        at_ms: event.time_ms,
        threat_intel: extra.threat_intel,
        severity: None,
        evidence: EvidenceDetail::ApiCall(Box::new(ApiCallEvidence {
            detector: detector.to_owned(),
            event_id: event.event_id.clone(),
            event_time_ms: event.time_ms,
            origin: format!("{}:{}", event.origin.file, event.origin.position),
            principal_arn: event.principal.arn.clone(),
            principal_type: event.principal.kind.clone(),
            source_text,
            caller_domain,
            user_agent: event.user_agent.clone(),
            error_code: event.error_code.clone(),
            caller_account_id,
            affected_resources,
            request_parameters: extra.request_parameters,
            note: extra.note,
        })),
    }
}

/// The named members of `requestParameters`, for evidence.
pub fn pick(event: &ApiEvent, keys: &[&str]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for k in keys {
        if let Some(v) = event.request_parameters.get(k) {
            m.insert((*k).to_owned(), v.clone());
        }
    }
    serde_json::Value::Object(m)
}
