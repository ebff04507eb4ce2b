//! S3 exposure: `Policy:S3/AccountBlockPublicAccessDisabled` and
//! `Policy:S3/BucketBlockPublicAccessDisabled` (a Block Public Access configuration deleted or
//! with any of its four settings off), `Policy:S3/BucketAnonymousAccessGranted` (an ACL grant to
//! `AllUsers`, a `public-read*` canned ACL, or a policy statement allowing Principal `*` with no
//! condition) and `Policy:S3/BucketPublicAccessGranted` (a grant to `AuthenticatedUsers` or the
//! `authenticated-read` canned ACL). Only successful calls count.

use serde_json::Value;

use super::api_observation::{Extra, access_key, bucket, bucket_name, observation, pick};
use crate::cloudtrail::ApiEvent;
use crate::detectors::{Detector, Event, EventFacts, EventKind, Observation, ResourceRef};
use crate::findings::types::FindingType;

const ALL_USERS: &str = "acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The S3 exposure rules.
#[derive(Debug, Default)]
pub struct S3ExposureDetector;

/// Whether any string inside `v` contains `needle`.
fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| mentions(x, needle)),
        Value::Object(m) => m.values().any(|x| mentions(x, needle)),
        _ => false,
    }
}

/// The canned ACL (`x-amz-acl`), written as a string or a one-element list.
fn canned_acl(params: &Value) -> Option<&str> {
    match params.get("x-amz-acl")? {
        Value::String(s) => Some(s),
        Value::Array(a) => a.first().and_then(Value::as_str),
        _ => None,
    }
}

/// Whether a Block Public Access configuration has any of its settings off.
fn block_config_weakened(params: &Value) -> bool {
    let Some(cfg) = params.get("PublicAccessBlockConfiguration") else {
        return false;
    };
    [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ]
    .iter()
    .any(|k| cfg.get(*k).and_then(Value::as_bool) == Some(false))
}

fn principal_is_everyone(p: &Value) -> bool {
    match p {
        Value::String(s) => s == "*",
        Value::Object(m) => m.get("AWS").is_some_and(|a| match a {
            Value::String(s) => s == "*",
            Value::Array(v) => v.iter().any(|x| x.as_str() == Some("*")),
            _ => false,
        }),
        _ => false,
    }
}

/// Whether a bucket policy allows everyone with no condition narrowing it.
fn policy_allows_anyone(params: &Value) -> bool {
    let Some(policy) = params.get("bucketPolicy") else {
        return false;
    };
    // Some exports carry the policy document as a JSON string.
    let parsed;
    let policy = match policy {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => return false,
        },
        v => v,
    };
    let statements = match policy.get("Statement") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(one @ Value::Object(_)) => std::slice::from_ref(one),
        _ => return false,
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && s.get("Principal").is_some_and(principal_is_everyone)
            && s.get("Condition")
                .is_none_or(|c| c.as_object().is_none_or(|m| m.is_empty()))
    })
}

/// The finding type, resource and note an event raises, if any.
fn verdict(e: &ApiEvent) -> Option<(FindingType, ResourceRef, &'static str)> {
    // Parsed only for the calls that look inside (most S3 calls are object reads and writes).
    let p = || e.request_parameters.value();
    let bucket_ref = || bucket_name(e).map(bucket);
    match e.event_name.as_str() {
        "DeleteAccountPublicAccessBlock" => Some((
            FindingType::PolicyAccountBlockPublicAccessDisabled,
            access_key(e),
            "account Block Public Access configuration deleted",
        )),
        "PutAccountPublicAccessBlock" if block_config_weakened(p()) => Some((
            FindingType::PolicyAccountBlockPublicAccessDisabled,
            access_key(e),
            "account Block Public Access setting turned off",
        )),
        "DeleteBucketPublicAccessBlock" => Some((
            FindingType::PolicyBucketBlockPublicAccessDisabled,
            bucket_ref()?,
            "bucket Block Public Access configuration deleted",
        )),
        "PutBucketPublicAccessBlock" if block_config_weakened(p()) => Some((
            FindingType::PolicyBucketBlockPublicAccessDisabled,
            bucket_ref()?,
            "bucket Block Public Access setting turned off",
        )),
        "PutBucketAcl" | "CreateBucket" | "PutObjectAcl" => {
            let canned = canned_acl(p()).unwrap_or_default();
            if mentions(p(), ALL_USERS) || canned.starts_with("public-read") {
                Some((
                    FindingType::PolicyBucketAnonymousAccessGranted,
                    bucket_ref()?,
                    "ACL grants access to AllUsers (anyone)",
                ))
            } else if mentions(p(), AUTHENTICATED_USERS) || canned == "authenticated-read" {
                Some((
                    FindingType::PolicyBucketPublicAccessGranted,
                    bucket_ref()?,
                    "ACL grants access to AuthenticatedUsers (any AWS account)",
                ))
            } else {
                None
            }
        }
        "PutBucketPolicy" if policy_allows_anyone(p()) => Some((
            FindingType::PolicyBucketAnonymousAccessGranted,
            bucket_ref()?,
            "bucket policy allows Principal \"*\" with no condition",
        )),
        _ => None,
    }
}

impl Detector for S3ExposureDetector {
    fn name(&self) -> &'static str {
        "s3_exposure"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else { return };
        if !matches!(
            e.event_source.as_str(),
            "s3.amazonaws.com" | "s3-control.amazonaws.com"
        ) || !e.succeeded()
        {
            return;
        }
        let Some((t, resource, note)) = verdict(e) else {
            return;
        };
        out.push(observation(
            self.name(),
            t,
            resource,
            e,
            Extra {
                request_parameters: pick(
                    e,
                    &[
                        "bucketName",
                        "PublicAccessBlockConfiguration",
                        "AccessControlPolicy",
                        "x-amz-acl",
                        "bucketPolicy",
                    ],
                ),
                note: Some(note.to_owned()),
                threat_intel: None,
            },
        ));
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{event_from, record, run};
    use super::*;

    fn s3(name: &str, extra: Value) -> ApiEvent {
        event_from(&record("s3.amazonaws.com", name, extra))
    }

    fn types(events: Vec<ApiEvent>) -> Vec<FindingType> {
        run(&mut S3ExposureDetector, events)
            .into_iter()
            .map(|o| o.finding_type)
            .collect()
    }

    #[test]
    fn block_public_access_turned_off_fires_for_account_and_bucket() {
        let got = types(vec![
            s3(
                "DeleteBucketPublicAccessBlock",
                json!({"requestParameters": {"bucketName": "docs", "publicAccessBlock": ""}}),
            ),
            s3(
                "PutAccountPublicAccessBlock",
                json!({"requestParameters": {"PublicAccessBlockConfiguration": {"BlockPublicAcls": false, "IgnorePublicAcls": true, "BlockPublicPolicy": true, "RestrictPublicBuckets": true}}}),
            ),
        ]);
        assert_eq!(
            got,
            vec![
                FindingType::PolicyBucketBlockPublicAccessDisabled,
                FindingType::PolicyAccountBlockPublicAccessDisabled
            ]
        );
    }

    #[test]
    fn a_denied_delete_or_a_fully_on_configuration_does_not() {
        let got = types(vec![
            s3(
                "DeleteBucketPublicAccessBlock",
                json!({"errorCode": "AccessDenied", "requestParameters": {"bucketName": "docs"}}),
            ),
            s3(
                "PutBucketPublicAccessBlock",
                json!({"requestParameters": {"bucketName": "docs", "PublicAccessBlockConfiguration": {"BlockPublicAcls": true, "IgnorePublicAcls": true, "BlockPublicPolicy": true, "RestrictPublicBuckets": true}}}),
            ),
        ]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn all_users_grants_are_anonymous_and_authenticated_users_grants_are_public() {
        let all_users = json!({"requestParameters": {"bucketName": "b", "AccessControlPolicy": {"AccessControlList": {"Grant": [{"Grantee": {"xsi:type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"}]}}}});
        let auth =
            json!({"requestParameters": {"bucketName": "b", "x-amz-acl": ["authenticated-read"]}});
        let canned = json!({"requestParameters": {"bucketName": "b", "x-amz-acl": "public-read"}});
        assert_eq!(
            types(vec![
                s3("PutBucketAcl", all_users),
                s3("PutBucketAcl", auth),
                s3("PutBucketAcl", canned)
            ]),
            vec![
                FindingType::PolicyBucketAnonymousAccessGranted,
                FindingType::PolicyBucketPublicAccessGranted,
                FindingType::PolicyBucketAnonymousAccessGranted
            ]
        );
    }

    #[test]
    fn a_private_acl_and_a_conditioned_star_policy_are_not_exposure() {
        let private = json!({"requestParameters": {"bucketName": "b", "acl": [""], "x-amz-acl": ["private"]}});
        let conditioned = json!({"requestParameters": {"bucketName": "b", "bucketPolicy": {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}]}}});
        let open = json!({"requestParameters": {"bucketName": "b", "bucketPolicy": {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}}});
        assert_eq!(
            types(vec![
                s3("PutBucketAcl", private),
                s3("PutBucketPolicy", conditioned),
                s3("PutBucketPolicy", open)
            ]),
            vec![FindingType::PolicyBucketAnonymousAccessGranted]
        );
    }
}
