//! Crafted CloudTrail events for the API detectors' and correlation's tests: a builder, and a
//! small translator from CloudTrail JSON records (the fixtures) to [`ApiEvent`]s.
//!
//! The translator is a test stand-in that reads only the fields these tests need; the real
//! reader lives in `cloudtrail/` and is tested there.

use std::net::IpAddr;

use serde_json::Value;

use super::Event;
use crate::cloudtrail::{
    ApiEvent, ApiResource, CallerAddress, EventOrigin, LazyJson, Principal, SessionIssuer,
};

/// Start of the crafted activity (ms since the epoch).
pub const T0: i64 = 1_700_000_000_000;
/// One minute, in ms.
pub const MIN: i64 = 60_000;
/// One day, in ms.
pub const DAY: i64 = 24 * 3600 * 1000;
/// The account crafted calls are made in.
pub const ACCOUNT: &str = "111111111111";

/// A successful call of `event_source`/`event_name` by IAM user `user` from 198.51.100.10
/// with the AWS CLI in eu-west-1 at `at_ms`.
pub fn user_call(user: &str, event_source: &str, event_name: &str, at_ms: i64) -> ApiEvent {
    ApiEvent {
        event_id: format!("{user}-{event_name}-{at_ms}"),
        time_ms: at_ms,
        event_source: event_source.to_owned(),
        event_name: event_name.to_owned(),
        event_type: "AwsApiCall".to_owned(),
        region: "eu-west-1".to_owned(),
        recipient_account_id: ACCOUNT.to_owned(),
        principal: Principal {
            kind: "IAMUser".to_owned(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            principal_id: format!("AIDA{}", user.to_uppercase()),
            account_id: ACCOUNT.to_owned(),
            access_key_id: format!("AKIA{}", user.to_uppercase()),
            user_name: user.to_owned(),
            ..Principal::default()
        },
        source: ip("198.51.100.10"),
        user_agent: "aws-cli/2.13.5 Python/3.11.4 Linux/6.1".to_owned(),
        error_code: String::new(),
        error_message: String::new(),
        read_only: None,
        request_parameters: LazyJson::null(),
        response_elements: LazyJson::null(),
        additional_event_data: LazyJson::null(),
        resources: Vec::new(),
        vpc_endpoint_id: None,
        origin: EventOrigin::default(),
    }
}

/// A call by the role session of instance `instance_id` (role `web`), as the metadata
/// service's credentials make it.
pub fn instance_call(instance_id: &str, event_name: &str, from: &str, at_ms: i64) -> ApiEvent {
    let mut e = user_call("x", "ec2.amazonaws.com", event_name, at_ms);
    e.principal = Principal {
        kind: "AssumedRole".to_owned(),
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/web/{instance_id}"),
        principal_id: format!("AROAWEB:{instance_id}"),
        account_id: ACCOUNT.to_owned(),
        access_key_id: "ASIAWEBSESSION".to_owned(),
        user_name: "web".to_owned(),
        session_issuer: Some(SessionIssuer {
            kind: "Role".to_owned(),
            arn: format!("arn:aws:iam::{ACCOUNT}:role/web"),
            user_name: "web".to_owned(),
            account_id: ACCOUNT.to_owned(),
        }),
        ec2_role_delivery: Some("2.0".to_owned()),
        ..Principal::default()
    };
    e.source = ip(from);
    e
}

/// A caller address.
pub fn ip(s: &str) -> CallerAddress {
    CallerAddress::Ip(s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}")))
}

/// The event as the pipeline takes it.
pub fn api(e: ApiEvent) -> Event {
    Event::Api(Box::new(e))
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// Translates one CloudTrail record (as in the fixtures) to an [`ApiEvent`].
pub fn from_cloudtrail(r: &Value) -> ApiEvent {
    let ui = r.get("userIdentity").cloned().unwrap_or(Value::Null);
    let issuer = ui
        .pointer("/sessionContext/sessionIssuer")
        .filter(|i| i.get("arn").is_some());
    let time = text(r, "eventTime");
    let time_ms =
        time::OffsetDateTime::parse(&time, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or(T0);
    let source = text(r, "sourceIPAddress");
    ApiEvent {
        event_id: text(r, "eventID"),
        time_ms,
        event_source: text(r, "eventSource"),
        event_name: text(r, "eventName"),
        event_type: text(r, "eventType"),
        region: text(r, "awsRegion"),
        recipient_account_id: text(r, "recipientAccountId"),
        principal: Principal {
            kind: text(&ui, "type"),
            arn: text(&ui, "arn"),
            principal_id: text(&ui, "principalId"),
            account_id: text(&ui, "accountId"),
            access_key_id: text(&ui, "accessKeyId"),
            user_name: match issuer {
                Some(i) if text(&ui, "userName").is_empty() => text(i, "userName"),
                _ => text(&ui, "userName"),
            },
            session_issuer: issuer.map(|i| SessionIssuer {
                kind: text(i, "type"),
                arn: text(i, "arn"),
                user_name: text(i, "userName"),
                account_id: text(i, "accountId"),
            }),
            mfa_authenticated: ui.pointer("/sessionContext/attributes/mfaAuthenticated")
                == Some(&Value::String("true".into())),
            ec2_role_delivery: ui
                .pointer("/sessionContext/ec2RoleDelivery")
                .and_then(Value::as_str)
                .map(str::to_owned),
            invoked_by: ui
                .get("invokedBy")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        source: match source.parse::<IpAddr>() {
            Ok(a) => CallerAddress::Ip(a),
            Err(_) if source.is_empty() => CallerAddress::Missing,
            Err(_) if source.ends_with(".amazonaws.com") || source == "AWS Internal" => {
                CallerAddress::AwsService(source)
            }
            Err(_) => CallerAddress::Other {
                raw: source,
                first_ip: None,
            },
        },
        user_agent: text(r, "userAgent"),
        error_code: text(r, "errorCode"),
        error_message: text(r, "errorMessage"),
        read_only: r.get("readOnly").and_then(Value::as_bool),
        request_parameters: r
            .get("requestParameters")
            .cloned()
            .unwrap_or(Value::Null)
            .into(),
        response_elements: r
            .get("responseElements")
            .cloned()
            .unwrap_or(Value::Null)
            .into(),
        additional_event_data: LazyJson::null(),
        resources: r
            .get("resources")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .map(|x| ApiResource {
                        arn: text(x, "ARN"),
                        account_id: text(x, "accountId"),
                        kind: text(x, "type"),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        vpc_endpoint_id: None,
        origin: EventOrigin::default(),
    }
}

/// The path of a fixture under `tests/fixtures/cloudtrail-correlation/`.
pub fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloudtrail-correlation")
        .join(name)
}

/// The JSON of a fixture.
pub fn fixture(name: &str) -> Value {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Stratus Red Team detonation fixture (a JSON array of records), as events.
pub fn stratus(name: &str) -> Vec<ApiEvent> {
    let v = fixture(name);
    v.as_array()
        .unwrap_or_else(|| panic!("{name}: not an array"))
        .iter()
        .map(from_cloudtrail)
        .collect()
}

/// A Panther rule-test fixture's labelled cases: (name, expected, event).
pub fn panther_cases(name: &str) -> Vec<(String, bool, ApiEvent)> {
    let v = fixture(name);
    v.get("cases")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{name}: no cases"))
        .iter()
        .map(|c| {
            (
                text(c, "name"),
                c.get("expected_result")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                from_cloudtrail(c.get("log").unwrap_or(&Value::Null)),
            )
        })
        .collect()
}
