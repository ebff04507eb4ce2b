//! `Stealth:IAMUser/PasswordPolicyChange`: the account password policy deleted, or updated to
//! something weaker — weaker than the last policy this detector saw for the account, or, with
//! none seen, shorter than AWS's own default minimum (8). Only successful calls count.

use std::collections::HashMap;

use serde_json::Value;

use super::api_observation::{Extra, access_key, observation};
use crate::cloudtrail::ApiEvent;
use crate::detectors::{Detector, DetectorCounter, Event, EventFacts, EventKind, Observation};
use crate::findings::types::FindingType;

/// Accounts whose last policy is remembered.
pub const MAX_ACCOUNTS: usize = 10_000;
/// AWS's default minimum password length when no policy is set.
pub const AWS_DEFAULT_MIN_LENGTH: u64 = 8;

const REQUIREMENTS: [&str; 4] = [
    "requireUppercaseCharacters",
    "requireLowercaseCharacters",
    "requireNumbers",
    "requireSymbols",
];

/// The parts of a password policy that make it stronger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Policy {
    min_length: u64,
    requirements: [bool; 4],
    reuse_prevention: u64,
}

impl Policy {
    fn from_request(p: &Value) -> Self {
        let flag = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
        Self {
            min_length: p
                .get("minimumPasswordLength")
                .and_then(Value::as_u64)
                .unwrap_or(6),
            requirements: REQUIREMENTS.map(flag),
            reuse_prevention: p
                .get("passwordReusePrevention")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        }
    }

    /// What `self` gives up compared with `before`, if anything.
    fn weakened_from(&self, before: &Policy) -> Vec<String> {
        let mut why = Vec::new();
        if self.min_length < before.min_length {
            why.push(format!(
                "minimumPasswordLength {} -> {}",
                before.min_length, self.min_length
            ));
        }
        for (i, name) in REQUIREMENTS.iter().enumerate() {
            if before.requirements[i] && !self.requirements[i] {
                why.push(format!("{name} true -> false"));
            }
        }
        if self.reuse_prevention < before.reuse_prevention {
            why.push(format!(
                "passwordReusePrevention {} -> {}",
                before.reuse_prevention, self.reuse_prevention
            ));
        }
        why
    }
}

/// The password-policy rule, with the last policy seen per account.
#[derive(Debug, Default)]
pub struct PasswordPolicyDetector {
    last: HashMap<String, Policy>,
    not_remembered: u64,
}

impl PasswordPolicyDetector {
    fn judge(&mut self, e: &ApiEvent) -> Option<String> {
        match e.event_name.as_str() {
            "DeleteAccountPasswordPolicy" => {
                self.last.remove(e.account_id());
                Some("password policy deleted".to_owned())
            }
            "UpdateAccountPasswordPolicy" => {
                let new = Policy::from_request(e.request_parameters.value());
                let account = e.account_id();
                let why = match self.last.get(account) {
                    Some(before) => new.weakened_from(before),
                    None if new.min_length < AWS_DEFAULT_MIN_LENGTH => vec![format!(
                        "minimumPasswordLength {} is below AWS's default {AWS_DEFAULT_MIN_LENGTH} (no earlier policy seen)",
                        new.min_length
                    )],
                    None => Vec::new(),
                };
                if self.last.contains_key(account) || self.last.len() < MAX_ACCOUNTS {
                    self.last.insert(account.to_owned(), new);
                } else {
                    self.not_remembered += 1;
                }
                (!why.is_empty()).then(|| why.join("; "))
            }
            _ => None,
        }
    }
}

impl Detector for PasswordPolicyDetector {
    fn name(&self) -> &'static str {
        "password_policy_change"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else { return };
        if e.event_source != "iam.amazonaws.com" || !e.succeeded() {
            return;
        }
        let Some(note) = self.judge(e) else { return };
        out.push(observation(
            self.name(),
            FindingType::StealthPasswordPolicyChange,
            access_key(e),
            e,
            Extra {
                request_parameters: e.request_parameters.value().clone(),
                note: Some(note),
                threat_intel: None,
            },
        ));
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn tracked_keys(&self) -> usize {
        self.last.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![DetectorCounter {
            name: "accounts_not_remembered",
            count: self.not_remembered,
        }]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{event_from, record, run};
    use super::*;

    fn update(params: Value) -> ApiEvent {
        event_from(&record(
            "iam.amazonaws.com",
            "UpdateAccountPasswordPolicy",
            json!({"requestParameters": params}),
        ))
    }

    #[test]
    fn deleting_the_policy_or_weakening_a_known_one_fires() {
        let mut d = PasswordPolicyDetector::default();
        let strong = update(
            json!({"minimumPasswordLength": 14, "requireSymbols": true, "passwordReusePrevention": 24}),
        );
        let weak = update(json!({"minimumPasswordLength": 10, "requireSymbols": false}));
        let delete = event_from(&record(
            "iam.amazonaws.com",
            "DeleteAccountPasswordPolicy",
            json!({}),
        ));
        let obs = run(&mut d, vec![strong, weak, delete]);
        assert_eq!(obs.len(), 2, "{obs:?}");
        let Some(crate::detectors::EvidenceDetail::ApiCall(ev)) = obs.first().map(|o| &o.evidence)
        else {
            panic!("api evidence");
        };
        let note = ev.note.clone().unwrap_or_default();
        assert!(
            note.contains("minimumPasswordLength 14 -> 10") && note.contains("requireSymbols"),
            "{note}"
        );
    }

    #[test]
    fn strengthening_a_policy_or_a_failed_delete_does_not() {
        let mut d = PasswordPolicyDetector::default();
        let first = update(json!({"minimumPasswordLength": 8}));
        let stronger = update(json!({"minimumPasswordLength": 16, "requireNumbers": true}));
        let failed = event_from(&record(
            "iam.amazonaws.com",
            "DeleteAccountPasswordPolicy",
            json!({"errorCode": "AccessDenied"}),
        ));
        assert!(run(&mut d, vec![first, stronger, failed]).is_empty());
    }

    #[test]
    fn a_first_policy_below_the_aws_default_fires() {
        let obs = run(
            &mut PasswordPolicyDetector::default(),
            vec![update(json!({"minimumPasswordLength": 6}))],
        );
        assert_eq!(obs.len(), 1);
    }
}
