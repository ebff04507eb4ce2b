//! `Policy:IAMUser/RootCredentialUsage`: any API call made with the account's root
//! credentials, except calls an AWS service made on root's behalf (`invokedBy`) and failed
//! console sign-ins (a wrong password is not the credentials being used).

use super::api_observation::{Extra, access_key, observation};
use crate::detectors::{Detector, Event, EventFacts, EventKind, Observation};
use crate::findings::types::FindingType;

/// The root-usage rule.
#[derive(Debug, Default)]
pub struct RootUsageDetector;

impl Detector for RootUsageDetector {
    fn name(&self) -> &'static str {
        "root_credential_usage"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else { return };
        if e.principal.kind != "Root" || e.principal.invoked_by.is_some() {
            return;
        }
        if e.event_type == "AwsServiceEvent" {
            return;
        }
        if e.event_name == "ConsoleLogin" && !console_success(e) {
            return;
        }
        out.push(observation(
            self.name(),
            FindingType::PolicyRootCredentialUsage,
            access_key(e),
            e,
            Extra::default(),
        ));
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}
}

/// Whether a `ConsoleLogin` event records a successful sign-in.
pub fn console_success(e: &crate::cloudtrail::ApiEvent) -> bool {
    e.succeeded()
        && e.response_elements
            .get("ConsoleLogin")
            .and_then(serde_json::Value::as_str)
            == Some("Success")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{event_from, record, run};
    use super::*;

    fn root() -> serde_json::Value {
        json!({"type": "Root", "principalId": "111122223333", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333", "accessKeyId": "ASIAROOT"})
    }

    #[test]
    fn a_root_api_call_is_root_credential_usage() {
        let e = event_from(&record(
            "iam.amazonaws.com",
            "CreateUser",
            json!({"userIdentity": root()}),
        ));
        let obs = run(&mut RootUsageDetector, vec![e]);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].finding_type, FindingType::PolicyRootCredentialUsage);
        assert_eq!(obs[0].account_id, "111122223333");
    }

    #[test]
    fn an_iam_user_call_a_service_acting_for_root_and_a_failed_root_login_are_not() {
        let mut invoked = root();
        invoked["invokedBy"] = json!("support.amazonaws.com");
        let events = vec![
            event_from(&record("iam.amazonaws.com", "CreateUser", json!({}))),
            event_from(&record(
                "iam.amazonaws.com",
                "CreateUser",
                json!({"userIdentity": invoked}),
            )),
            event_from(&record(
                "signin.amazonaws.com",
                "ConsoleLogin",
                json!({"userIdentity": root(), "errorMessage": "Failed authentication", "responseElements": {"ConsoleLogin": "Failure"}}),
            )),
        ];
        assert!(run(&mut RootUsageDetector, events).is_empty());
    }
}
