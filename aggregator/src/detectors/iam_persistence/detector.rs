//! The IAM persistence rules, one per call that can leave an attacker a way back in.
//!
//! State: users created recently (for "new user with full access") and groups known to grant
//! full access (for `AddUserToGroup`), each capped at `max_tracked` with the oldest entry
//! evicted first and counted.

use std::collections::HashMap;

use serde_json::Value;

use super::config::IamPersistenceConfig;
use super::policy::{grants_full_access, outside_trusted, parse_document};
use crate::cloudtrail::ApiEvent;
use crate::detectors::accounts::AccountsConfig;
use crate::detectors::api_call::{access_key_resource, api_activity, session_name};
use crate::detectors::api_evidence::{ApiBehaviourEvidence, ApiCallRef, IamChangeEvidence};
use crate::detectors::{
    Detector, DetectorCounter, Event, EventFacts, EventKind, EvidenceDetail, Observation,
    ResourceRole,
};
use crate::findings::types::FindingType;

/// Longest policy text kept in evidence.
const MAX_POLICY_EVIDENCE: usize = 2048;

/// The IAM persistence and privilege escalation detector.
#[derive(Debug)]
pub struct IamPersistenceDetector {
    config: IamPersistenceConfig,
    accounts: AccountsConfig,
    /// (account, user) → creation time.
    new_users: HashMap<(String, String), i64>,
    /// (account, group) → when it was seen granting full access.
    admin_groups: HashMap<(String, String), i64>,
    /// (account, user) → when full access was granted to it. CloudTrail times have
    /// one-second resolution and files are not in call order, so a grant can be read before
    /// the `CreateUser` it followed.
    admin_users: HashMap<(String, String), i64>,
    findings: u64,
    unreadable_policies: u64,
    evicted_full: u64,
}

/// One decision before it becomes an observation.
struct Hit {
    finding_type: FindingType,
    target: String,
    reason: String,
    policy: String,
}

impl IamPersistenceDetector {
    /// A detector that treats `accounts` as its own when reading trust policies.
    pub fn new(config: IamPersistenceConfig, accounts: AccountsConfig) -> Self {
        Self {
            config,
            accounts,
            new_users: HashMap::new(),
            admin_groups: HashMap::new(),
            admin_users: HashMap::new(),
            findings: 0,
            unreadable_policies: 0,
            evicted_full: 0,
        }
    }

    fn remember(
        table: &mut HashMap<(String, String), i64>,
        cap: usize,
        key: (String, String),
        at: i64,
        evicted: &mut u64,
    ) {
        if !table.contains_key(&key)
            && table.len() >= cap
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
            *evicted += 1;
        }
        table.insert(key, at);
    }

    fn is_new_user(&self, account: &str, user: &str, at: i64) -> bool {
        let window = self.window_ms();
        self.new_users
            .get(&(account.to_owned(), user.to_owned()))
            .is_some_and(|created| at >= *created && at - created <= window)
    }

    fn is_admin_arn(&self, arn: &str) -> bool {
        // Only AWS-managed (`arn:aws:iam::aws:policy/…`) names are trusted to mean what they
        // say; a customer policy called AdministratorAccess could hold anything.
        arn.contains(":iam::aws:policy/")
            && self
                .config
                .admin_policies
                .iter()
                .any(|p| session_name(arn) == p)
    }

    fn document(&mut self, raw: Option<&Value>) -> Option<Value> {
        let raw = raw?;
        let doc = parse_document(raw);
        if doc.is_none() {
            self.unreadable_policies += 1;
        }
        doc
    }

    /// Whether `target` (a user name) is the caller itself.
    fn is_self(e: &ApiEvent, target: &str) -> bool {
        let p = &e.principal;
        session_name(&p.arn) == target || (p.kind == "IAMUser" && p.user_name == target)
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.config.new_user_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn admin_granted(
        &mut self,
        e: &ApiEvent,
        kind: &str,
        target: &str,
        reason: String,
        policy: String,
    ) -> Hit {
        let account = e.account_id();
        let new_user = kind == "user" && self.is_new_user(account, target, e.time_ms);
        if kind == "user" {
            Self::remember(
                &mut self.admin_users,
                self.config.max_tracked.get(),
                (account.to_owned(), target.to_owned()),
                e.time_ms,
                &mut self.evicted_full,
            );
        }
        Hit {
            finding_type: if new_user {
                FindingType::PrivilegeEscalationNewUserFullAccess
            } else {
                FindingType::PrivilegeEscalationAdministrativePolicyAttached
            },
            target: format!("{kind}/{target}"),
            reason: if new_user {
                format!("{reason} to a user created within the window")
            } else {
                reason
            },
            policy,
        }
    }

    fn decide(&mut self, e: &ApiEvent) -> Option<Hit> {
        let rp = &e.request_parameters;
        let param = |k: &str| rp.get(k).and_then(Value::as_str).unwrap_or("");
        let account = e.account_id().to_owned();
        let cap = self.config.max_tracked.get();
        match e.event_name.as_str() {
            "CreateUser" => {
                let user = param("userName");
                if user.is_empty() {
                    return None;
                }
                let key = (account, user.to_owned());
                let window = self.window_ms();
                let granted_before = self
                    .admin_users
                    .get(&key)
                    .is_some_and(|t| e.time_ms.abs_diff(*t) <= window.unsigned_abs());
                Self::remember(
                    &mut self.new_users,
                    cap,
                    key,
                    e.time_ms,
                    &mut self.evicted_full,
                );
                granted_before.then(|| Hit {
                    finding_type: FindingType::PrivilegeEscalationNewUserFullAccess,
                    target: format!("user/{user}"),
                    reason: "user created with full access granted within the window".to_owned(),
                    policy: String::new(),
                })
            }
            "CreateAccessKey" => {
                let user = param("userName");
                (!user.is_empty() && !Self::is_self(e, user)).then(|| Hit {
                    finding_type: FindingType::PersistenceAccessKeyCreatedForOtherUser,
                    target: format!("user/{user}"),
                    reason: "access key created for another user".to_owned(),
                    policy: String::new(),
                })
            }
            "CreateLoginProfile" | "UpdateLoginProfile" => {
                let user = param("userName");
                // A password that must be changed at first sign-in is how administrators
                // reset passwords; Panther's labelled cases treat it as benign too.
                let reset = rp.get("passwordResetRequired").and_then(Value::as_bool) == Some(true);
                (!user.is_empty() && !Self::is_self(e, user) && !reset).then(|| Hit {
                    finding_type: FindingType::PersistenceLoginProfileCreatedForOtherUser,
                    target: format!("user/{user}"),
                    reason: format!("{} for another user", e.event_name),
                    policy: String::new(),
                })
            }
            "AttachUserPolicy" | "AttachRolePolicy" | "AttachGroupPolicy" => {
                let arn = param("policyArn");
                if !self.is_admin_arn(arn) {
                    return None;
                }
                let (kind, target) = target_of(e);
                if kind == "group" {
                    Self::remember(
                        &mut self.admin_groups,
                        cap,
                        (account, target.to_owned()),
                        e.time_ms,
                        &mut self.evicted_full,
                    );
                }
                let reason = format!("{} attached", session_name(arn));
                Some(self.admin_granted(e, kind, target, reason, arn.to_owned()))
            }
            "PutUserPolicy" | "PutRolePolicy" | "PutGroupPolicy" | "CreatePolicyVersion" => {
                if e.event_name == "CreatePolicyVersion"
                    && rp.get("setAsDefault").and_then(Value::as_bool) != Some(true)
                {
                    return None;
                }
                let doc = self.document(rp.get("policyDocument"))?;
                if !grants_full_access(&doc) {
                    return None;
                }
                let (kind, target) = target_of(e);
                if kind == "group" {
                    Self::remember(
                        &mut self.admin_groups,
                        cap,
                        (account, target.to_owned()),
                        e.time_ms,
                        &mut self.evicted_full,
                    );
                }
                let reason = "policy allowing \"*\" on \"*\" written".to_owned();
                Some(self.admin_granted(e, kind, target, reason, cut(&doc.to_string())))
            }
            "AddUserToGroup" => {
                let group = param("groupName");
                let user = param("userName");
                if !self.admin_groups.contains_key(&(account, group.to_owned())) {
                    return None;
                }
                let reason = format!("added to group {group}, which grants full access");
                Some(self.admin_granted(e, "user", user, reason, String::new()))
            }
            "UpdateAssumeRolePolicy" | "CreateRole" => {
                let field = if e.event_name == "CreateRole" {
                    "assumeRolePolicyDocument"
                } else {
                    "policyDocument"
                };
                let doc = self.document(rp.get(field))?;
                let own = [e.account_id(), e.principal.account_id.as_str()];
                let outside =
                    outside_trusted(&doc, |a| own.contains(&a) || self.accounts.serves(a));
                if outside.is_empty() {
                    return None;
                }
                Some(Hit {
                    finding_type: FindingType::PersistenceBackdoorRoleTrustPolicy,
                    target: format!("role/{}", param("roleName")),
                    reason: format!("role can be assumed by {}", outside.join(", ")),
                    policy: cut(&doc.to_string()),
                })
            }
            _ => None,
        }
    }
}

/// Which kind of identity a policy call changed, and its name.
fn target_of(e: &ApiEvent) -> (&'static str, &str) {
    let rp = &e.request_parameters;
    for (kind, key) in [
        ("user", "userName"),
        ("role", "roleName"),
        ("group", "groupName"),
    ] {
        if let Some(name) = rp.get(key).and_then(Value::as_str) {
            return (kind, name);
        }
    }
    (
        "policy",
        rp.get("policyArn").and_then(Value::as_str).unwrap_or(""),
    )
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_POLICY_EVIDENCE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_owned()
}

impl Detector for IamPersistenceDetector {
    fn name(&self) -> &'static str {
        "iam_persistence"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else {
            return;
        };
        if e.event_source != "iam.amazonaws.com" || !e.succeeded() {
            return;
        }
        let Some(hit) = self.decide(e) else {
            return;
        };
        self.findings += 1;
        out.push(Observation {
            finding_type: hit.finding_type,
            account_id: e.account_id().to_owned(),
            region: e.region.clone(),
            resource: access_key_resource(e),
            role: ResourceRole::Actor,
            activity: api_activity(e),
            at_ms: e.time_ms,
            threat_intel: None,
            severity: None,
            evidence: EvidenceDetail::ApiBehaviour(Box::new(ApiBehaviourEvidence::IamChange(
                IamChangeEvidence {
                    call: ApiCallRef::of(e),
                    target: hit.target,
                    reason: hit.reason,
                    policy: hit.policy,
                },
            ))),
        });
    }

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        let window = self.window_ms();
        self.new_users
            .retain(|_, t| now_ms.saturating_sub(*t) <= window);
        self.admin_users
            .retain(|_, t| now_ms.saturating_sub(*t) <= window);
    }

    fn tracked_keys(&self) -> usize {
        self.new_users
            .len()
            .max(self.admin_groups.len())
            .max(self.admin_users.len())
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "findings",
                count: self.findings,
            },
            DetectorCounter {
                name: "unreadable_policies",
                count: self.unreadable_policies,
            },
            DetectorCounter {
                name: "evicted_oldest",
                count: self.evicted_full,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::api_testing::{T0, api, panther_cases, stratus, user_call};

    fn detector() -> IamPersistenceDetector {
        IamPersistenceDetector::new(IamPersistenceConfig::default(), AccountsConfig::default())
    }

    fn run(d: &mut IamPersistenceDetector, events: Vec<ApiEvent>) -> Vec<Observation> {
        let mut events = events;
        events.sort_by_key(|e| e.time_ms);
        let mut out = Vec::new();
        for e in events {
            crate::detectors::testing::observe(d, &api(e), &mut out);
        }
        out
    }

    fn change(o: &Observation) -> &IamChangeEvidence {
        match &o.evidence {
            EvidenceDetail::ApiBehaviour(b) => match &**b {
                ApiBehaviourEvidence::IamChange(c) => c,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    /// Panther's labelled cases: each must be flagged exactly when it is labelled true.
    #[test]
    fn panther_labelled_cases_are_flagged_exactly_when_expected() {
        for file in [
            "aws_iam_user_key_created.json",
            "aws_iam_attach_admin_user_policy.json",
            "aws_user_login_profile_modified.json",
        ] {
            for (name, expected, event) in panther_cases(file) {
                let out = run(&mut detector(), vec![event]);
                assert_eq!(!out.is_empty(), expected, "{file}: {name}: {out:?}");
            }
        }
    }

    #[test]
    fn stratus_backdoor_role_trusting_an_outside_account_is_found() {
        let out = run(
            &mut detector(),
            stratus("aws.persistence.iam-backdoor-role.json"),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::PersistenceBackdoorRoleTrustPolicy
        );
        let ev = change(&out[0]);
        assert_eq!(ev.target, "role/stratus-red-team-backdoor-r-role");
        assert!(ev.reason.contains("193672423079"), "{}", ev.reason);
    }

    #[test]
    fn a_trust_policy_naming_an_account_picket_serves_is_not_a_backdoor() {
        let served = AccountsConfig {
            administrator: None,
            members: vec!["193672423079".into()],
        };
        let mut d = IamPersistenceDetector::new(IamPersistenceConfig::default(), served);
        let out = run(&mut d, stratus("aws.persistence.iam-backdoor-role.json"));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn stratus_admin_user_is_a_new_user_with_full_access_and_a_key_for_another_user() {
        let out = run(
            &mut detector(),
            stratus("aws.persistence.iam-create-admin-user.json"),
        );
        let types: Vec<_> = out.iter().map(|o| o.finding_type).collect();
        assert!(
            types.contains(&FindingType::PrivilegeEscalationNewUserFullAccess),
            "{types:?}"
        );
        assert!(
            types.contains(&FindingType::PersistenceAccessKeyCreatedForOtherUser),
            "{types:?}"
        );
    }

    #[test]
    fn stratus_login_profiles_for_other_users_are_found() {
        for file in [
            "aws.persistence.iam-create-user-login-profile.json",
            "aws.privilege-escalation.iam-update-user-login-profile.json",
        ] {
            let out = run(&mut detector(), stratus(file));
            assert_eq!(out.len(), 1, "{file}: {out:?}");
            assert_eq!(
                out[0].finding_type,
                FindingType::PersistenceLoginProfileCreatedForOtherUser
            );
        }
    }

    #[test]
    fn admin_attached_to_an_old_user_is_administrative_policy_attached_not_new_user() {
        let mut e = user_call("admin", "iam.amazonaws.com", "AttachUserPolicy", T0);
        *e.request_parameters.value_mut() = serde_json::json!({
            "userName": "bob", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"});
        let out = run(&mut detector(), vec![e]);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::PrivilegeEscalationAdministrativePolicyAttached
        );
    }

    #[test]
    fn a_customer_policy_named_administrator_access_is_not_trusted_by_name() {
        let mut e = user_call("admin", "iam.amazonaws.com", "AttachUserPolicy", T0);
        *e.request_parameters.value_mut() = serde_json::json!({
            "userName": "bob", "policyArn": "arn:aws:iam::111111111111:policy/AdministratorAccess"});
        assert!(run(&mut detector(), vec![e]).is_empty());
    }

    #[test]
    fn an_inline_star_policy_is_found_and_a_scoped_one_is_not() {
        let mut full = user_call("admin", "iam.amazonaws.com", "PutRolePolicy", T0);
        *full.request_parameters.value_mut() = serde_json::json!({
            "roleName": "ops", "policyName": "p",
            "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"});
        let mut scoped = full.clone();
        scoped.request_parameters.value_mut()["policyDocument"] = serde_json::Value::String(
            "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\"}]}"
                .into(),
        );
        let out = run(&mut detector(), vec![full]);
        assert_eq!(out.len(), 1);
        assert_eq!(change(&out[0]).target, "role/ops");
        assert!(run(&mut detector(), vec![scoped]).is_empty());
    }

    #[test]
    fn adding_a_new_user_to_a_full_access_group_is_a_new_user_with_full_access() {
        let mut group = user_call("admin", "iam.amazonaws.com", "AttachGroupPolicy", T0);
        *group.request_parameters.value_mut() = serde_json::json!({
            "groupName": "admins", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"});
        let mut create = user_call("admin", "iam.amazonaws.com", "CreateUser", T0 + 1000);
        *create.request_parameters.value_mut() = serde_json::json!({"userName": "eve"});
        let mut add = user_call("admin", "iam.amazonaws.com", "AddUserToGroup", T0 + 2000);
        *add.request_parameters.value_mut() =
            serde_json::json!({"groupName": "admins", "userName": "eve"});
        let mut other = add.clone();
        *other.request_parameters.value_mut() =
            serde_json::json!({"groupName": "readers", "userName": "eve"});
        let out = run(&mut detector(), vec![group, create, add, other]);
        let types: Vec<_> = out.iter().map(|o| o.finding_type).collect();
        assert_eq!(
            types,
            [
                FindingType::PrivilegeEscalationAdministrativePolicyAttached,
                FindingType::PrivilegeEscalationNewUserFullAccess
            ]
        );
    }

    #[test]
    fn a_failed_call_is_never_a_finding() {
        let mut e = user_call("admin", "iam.amazonaws.com", "CreateAccessKey", T0);
        *e.request_parameters.value_mut() = serde_json::json!({"userName": "bob"});
        e.error_code = "AccessDenied".into();
        assert!(run(&mut detector(), vec![e.clone()]).is_empty());
        e.error_code.clear();
        assert_eq!(run(&mut detector(), vec![e]).len(), 1);
    }

    #[test]
    fn an_unreadable_policy_document_is_counted_not_a_panic() {
        let mut e = user_call("admin", "iam.amazonaws.com", "PutUserPolicy", T0);
        *e.request_parameters.value_mut() =
            serde_json::json!({"userName": "bob", "policyDocument": "{not json"});
        let mut d = detector();
        assert!(run(&mut d, vec![e]).is_empty());
        let c = d.counters();
        assert_eq!(
            c.iter()
                .find(|c| c.name == "unreadable_policies")
                .map(|c| c.count),
            Some(1)
        );
    }
}
