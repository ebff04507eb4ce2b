//! The parts of an observation every CloudTrail-based detector builds the same way from an
//! [`ApiEvent`]: the credentials as the resource, the call as the activity, and a reference to
//! the call for evidence.

use super::api_evidence::ApiCallRef;
use super::{Activity, ApiCallActivity, ResourceRef};
use crate::cloudtrail::{ApiEvent, CallerAddress};

/// The credentials that made the call (`resource.accessKeyDetails`).
pub fn access_key_resource(event: &ApiEvent) -> ResourceRef {
    let p = &event.principal;
    ResourceRef::AccessKey {
        access_key_id: if p.access_key_id.is_empty() {
            p.key().to_owned()
        } else {
            p.access_key_id.clone()
        },
        principal_id: p.principal_id.clone(),
        user_name: if p.user_name.is_empty() {
            session_name(&p.arn).to_owned()
        } else {
            p.user_name.clone()
        },
        user_type: p.kind.clone(),
    }
}

/// The call as `service.action.awsApiCallAction`.
pub fn api_activity(event: &ApiEvent) -> Activity {
    Activity::ApiCall(ApiCallActivity {
        api: event.event_name.clone(),
        service_name: event.event_source.clone(),
        caller_ip: event.source.ip().map(|ip| ip.to_string()),
    })
}

/// The caller's address or service name as text.
pub fn source_text(source: &CallerAddress) -> String {
    match source {
        CallerAddress::Ip(ip) => ip.to_string(),
        CallerAddress::AwsService(s) => s.clone(),
        CallerAddress::Other { raw, .. } => raw.clone(),
        CallerAddress::Missing => String::new(),
    }
}

/// The last path segment of an ARN: the user name of a user ARN, the session name of an
/// assumed-role ARN.
pub fn session_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or("")
}

impl ApiCallRef {
    /// The reference to `event` kept in evidence.
    pub fn of(event: &ApiEvent) -> Self {
        Self {
            event_name: event.event_name.clone(),
            event_source: event.event_source.clone(),
            event_id: event.event_id.clone(),
            region: event.region.clone(),
            principal: event.principal.key().to_owned(),
            source: source_text(&event.source),
            user_agent: event.user_agent.clone(),
            error_code: event.error_code.clone(),
            at_ms: event.time_ms,
        }
    }
}
