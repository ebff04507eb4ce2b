//! One raw CloudTrail record ([`RawRecord`]) into the [`ApiEvent`] detectors read.
//!
//! An event needs a source, a name and a time; everything else may be missing or odd and is
//! kept as given (fake regions, duplicate event ids, non-address callers), so nothing real is
//! dropped and no two events are merged.

use serde_json::value::RawValue;

use super::address::caller_address;
use super::event::{ApiEvent, ApiResource, CallerAddress, EventOrigin, Principal, SessionIssuer};
use super::lazy_json::{LazyJson, MAX_DEPTH, MemberFault, member_fault};
use super::raw::{JStr, RawRecord};
use super::timestamp::parse_time_ms;

/// Why a record is not a usable event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// Occurs when `eventName` or `eventSource` is missing or empty.
    #[error("not a CloudTrail event: {0} is missing")]
    Missing(&'static str),
    /// Occurs when neither `eventTime` nor `@timestamp` is present.
    #[error("no eventTime or @timestamp")]
    NoTime,
    /// Occurs when the time is not RFC 3339.
    #[error("eventTime {0:?} is not an RFC 3339 time")]
    BadTime(String),
    /// Occurs when a member kept as text nests deeper than parsing it could follow.
    #[error("bad event: recursion limit exceeded: {0} nests deeper than {MAX_DEPTH} levels")]
    TooDeep(&'static str),
    /// Occurs when a member kept as text holds a number beyond f64's range.
    #[error("bad event: number out of range in {0}")]
    NumberOutOfRange(&'static str),
}

fn owned(s: Option<JStr<'_>>) -> String {
    s.map(|s| s.0.into_owned()).unwrap_or_default()
}

/// A member kept as text, refused when parsing it later would fail (as the whole record was
/// refused when it was parsed at once), so the refusal is reported with the record's place.
fn lazy(raw: Option<&RawValue>, name: &'static str) -> Result<LazyJson, NormalizeError> {
    let Some(r) = raw else {
        return Ok(LazyJson::null());
    };
    match member_fault(r.get()) {
        None => Ok(LazyJson::from_text(r.get())),
        Some(MemberFault::TooDeep) => Err(NormalizeError::TooDeep(name)),
        Some(MemberFault::NumberOutOfRange) => Err(NormalizeError::NumberOutOfRange(name)),
    }
}

fn required(s: Option<JStr<'_>>, name: &'static str) -> Result<String, NormalizeError> {
    match s {
        Some(s) if !s.as_str().is_empty() => Ok(s.0.into_owned()),
        _ => Err(NormalizeError::Missing(name)),
    }
}

/// Builds the event for `raw`, read from `origin`.
///
/// # Errors
/// [`NormalizeError`] when the record lacks a name, a source or a readable time.
pub fn normalize(raw: RawRecord<'_>, origin: EventOrigin) -> Result<ApiEvent, NormalizeError> {
    // First, as a parse error of the whole record came before any other complaint.
    let request_parameters = lazy(raw.request_parameters, "requestParameters")?;
    let response_elements = lazy(raw.response_elements, "responseElements")?;
    let additional_event_data = lazy(raw.additional_event_data, "additionalEventData")?;
    let event_name = required(raw.event_name, "eventName")?;
    let event_source = required(raw.event_source, "eventSource")?;
    let time_text = raw
        .event_time
        .filter(|t| !t.as_str().is_empty())
        .or(raw.at_timestamp)
        .ok_or(NormalizeError::NoTime)?;
    let time_ms = parse_time_ms(time_text.as_str())
        .ok_or_else(|| NormalizeError::BadTime(time_text.as_str().to_owned()))?;
    let identity = raw.user_identity.unwrap_or_default();
    let context = identity.session_context.unwrap_or_default();
    let session_issuer = context.session_issuer.map(|i| SessionIssuer {
        kind: owned(i.kind),
        arn: owned(i.arn),
        user_name: owned(i.user_name),
        account_id: owned(i.account_id),
    });
    let mut user_name = owned(identity.user_name);
    if user_name.is_empty()
        && let Some(issuer) = &session_issuer
    {
        user_name.clone_from(&issuer.user_name);
    }
    let principal = Principal {
        kind: owned(identity.kind),
        arn: owned(identity.arn),
        principal_id: owned(identity.principal_id),
        account_id: owned(identity.account_id),
        access_key_id: owned(identity.access_key_id),
        user_name,
        session_issuer,
        mfa_authenticated: context
            .attributes
            .and_then(|a| a.mfa_authenticated.0)
            .unwrap_or(false),
        ec2_role_delivery: context
            .ec2_role_delivery
            .map(|s| s.0.into_owned())
            .filter(|s| !s.is_empty()),
        invoked_by: identity
            .invoked_by
            .map(|s| s.0.into_owned())
            .filter(|s| !s.is_empty()),
    };
    let source = raw
        .source_ip_address
        .map_or(CallerAddress::Missing, |s| caller_address(s.as_str()));
    let resources = raw
        .resources
        .unwrap_or_default()
        .into_iter()
        .map(|r| ApiResource {
            arn: owned(r.arn),
            account_id: owned(r.account_id),
            kind: owned(r.kind),
        })
        .collect();
    Ok(ApiEvent {
        event_id: owned(raw.event_id),
        time_ms,
        event_source,
        event_name,
        event_type: owned(raw.event_type),
        region: owned(raw.aws_region),
        recipient_account_id: owned(raw.recipient_account_id),
        principal,
        source,
        user_agent: owned(raw.user_agent),
        error_code: owned(raw.error_code),
        error_message: owned(raw.error_message),
        read_only: raw.read_only.0,
        request_parameters,
        response_elements,
        additional_event_data,
        resources,
        vpc_endpoint_id: raw
            .vpc_endpoint_id
            .map(|s| s.0.into_owned())
            .filter(|s| !s.is_empty()),
        origin,
    })
}

/// Parses one event's JSON text and normalises it.
///
/// # Errors
/// A description of what was wrong (JSON syntax, a member of the wrong type, a missing name
/// or time), ready to follow `file:position: `.
pub fn parse_event(json: &str, origin: EventOrigin) -> Result<ApiEvent, String> {
    let raw: RawRecord<'_> = serde_json::from_str(json).map_err(|e| format!("bad event: {e}"))?;
    event_from_raw(raw, origin)
}

/// Normalises a record already deserialised from an events file.
///
/// # Errors
/// As [`parse_event`], for what is wrong beyond JSON and member types.
pub fn event_from_raw(raw: RawRecord<'_>, origin: EventOrigin) -> Result<ApiEvent, String> {
    if raw.is_digest() {
        return Err("a digest record among events".to_owned());
    }
    // An EventBridge event (archived by a rule, Firehose, or a queue) carries the CloudTrail
    // event as its `detail`.
    if let (None, Some(detail)) = (&raw.event_name, raw.detail) {
        return from_eventbridge(detail, origin);
    }
    normalize(raw, origin).map_err(|e| e.to_string())
}

/// The CloudTrail event in an EventBridge event's `detail`. Kept out of line: inlined, its
/// second `normalize` made every record's move into the first one a copy (about 2% of
/// reading, by callgrind on the CloudTrail bench).
#[cold]
#[inline(never)]
fn from_eventbridge(
    detail: &serde_json::value::RawValue,
    origin: EventOrigin,
) -> Result<ApiEvent, String> {
    let inner: RawRecord<'_> = serde_json::from_str(detail.get())
        .map_err(|e| format!("bad event in the EventBridge detail: {e}"))?;
    if inner.event_name.is_none() {
        return Err(
            "an EventBridge event whose detail is not a CloudTrail event (no eventName)".to_owned(),
        );
    }
    normalize(inner, origin).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> EventOrigin {
        EventOrigin {
            file: "t.json".into(),
            position: 0,
        }
    }

    #[test]
    fn an_assumed_role_event_is_flattened() {
        let json = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAX:i-0abc","arn":"arn:aws:sts::111111111111:assumed-role/web/i-0abc","accountId":"111111111111","accessKeyId":"ASIAX","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111111111111:role/web","accountId":"111111111111","userName":"web"},"attributes":{"mfaAuthenticated":"false"},"ec2RoleDelivery":"2.0"}},"eventTime":"2024-01-01T00:00:01Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"08.1.250.216","userAgent":"aws-cli/2","requestParameters":null,"eventID":"e1","readOnly":true,"recipientAccountId":"111111111111","resources":[{"ARN":"arn:aws:s3:::b","type":"AWS::S3::Bucket"}]}"#;
        let e = parse_event(json, origin()).expect("event");
        assert_eq!(e.principal.user_name, "web");
        assert_eq!(e.principal.instance_session(), Some("i-0abc"));
        assert_eq!(e.principal.ec2_role_delivery.as_deref(), Some("2.0"));
        assert_eq!(e.source.ip(), Some("8.1.250.216".parse().expect("ip")));
        assert_eq!(e.read_only, Some(true));
        assert_eq!(e.time_ms, 1_704_067_201_000);
        assert_eq!(e.resources.len(), 1);
        assert!(e.request_parameters.is_null());
    }

    #[test]
    fn api_shaped_members_read_as_before_and_too_deep_ones_are_refused() {
        let json = r#"{"eventTime":"2024-01-01T00:00:01Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","requestParameters":{"bucketName":"b","key":"k"},"responseElements":null,"additionalEventData":{"bytesTransferredOut":12}}"#;
        let e = parse_event(json, origin()).expect("event");
        assert_eq!(
            e.request_parameters,
            serde_json::json!({"bucketName": "b", "key": "k"})
        );
        assert!(e.response_elements.is_null());
        assert_eq!(
            e.additional_event_data.get("bytesTransferredOut"),
            Some(&serde_json::json!(12))
        );
        let nested = |depth: usize| {
            format!(
                r#"{{"eventTime":"2024-01-01T00:00:01Z","eventSource":"a","eventName":"X","requestParameters":{}1{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        // The deepest a record parsed whole could hold is still read, one more is refused.
        let e = parse_event(&nested(MAX_DEPTH), origin()).expect("deepest allowed");
        assert!(e.request_parameters.value().is_array());
        let deeper = parse_event(&nested(MAX_DEPTH + 1), origin()).unwrap_err();
        assert!(deeper.contains("recursion limit"), "{deeper}");
        assert!(deeper.contains("requestParameters"), "{deeper}");
        let whole = serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH + 1));
        assert!(whole.is_err(), "parsed whole, the same record was refused");
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH)).is_ok());
    }

    #[test]
    fn a_number_out_of_range_is_refused_when_read_and_says_where() {
        let json = r#"{"eventTime":"2024-01-01T00:00:01Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","responseElements":{"n":[1,-2e400]}}"#;
        let err = parse_event(json, origin()).unwrap_err();
        assert_eq!(err, "bad event: number out of range in responseElements");
        assert!(
            serde_json::from_str::<serde_json::Value>(json).is_err(),
            "parsed whole, the same record was refused"
        );
        let fits = json.replace("-2e400", "-2e300");
        let e = parse_event(&fits, origin()).expect("in range");
        assert_eq!(
            e.response_elements.get("n").map(|n| n[1].as_f64()),
            Some(Some(-2e300))
        );
    }

    #[test]
    fn at_timestamp_stands_in_for_a_missing_event_time() {
        let json = r#"{"@timestamp":"2024-01-01T00:00:01.250Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers"}"#;
        let e = parse_event(json, origin()).expect("event");
        assert_eq!(e.time_ms, 1_704_067_201_250);
    }

    #[test]
    fn an_event_without_name_or_time_says_which() {
        let no_name = r#"{"eventTime":"2024-01-01T00:00:01Z","eventSource":"iam.amazonaws.com"}"#;
        assert!(
            parse_event(no_name, origin())
                .unwrap_err()
                .contains("eventName")
        );
        let no_time = r#"{"eventSource":"iam.amazonaws.com","eventName":"ListUsers"}"#;
        assert!(
            parse_event(no_time, origin())
                .unwrap_err()
                .contains("eventTime")
        );
        let bad_time = r#"{"eventTime":"soon","eventSource":"iam.amazonaws.com","eventName":"X"}"#;
        assert!(
            parse_event(bad_time, origin())
                .unwrap_err()
                .contains("soon")
        );
        let wrong_type = r#"{"eventTime":"2024-01-01T00:00:01Z","eventSource":"a","eventName":"X","userIdentity":"me"}"#;
        assert!(
            parse_event(wrong_type, origin())
                .unwrap_err()
                .contains("bad event")
        );
    }

    #[test]
    fn escaped_strings_and_string_flags_are_read() {
        let json = r#"{"eventTime":"2024-01-01T00:00:01Z","eventSource":"iam.amazonaws.com","eventName":"X","userAgent":"a\"b","readOnly":"false","recipientAccountId":123456789012}"#;
        let e = parse_event(json, origin()).expect("event");
        assert_eq!(e.user_agent, "a\"b");
        assert_eq!(e.read_only, Some(false));
        assert_eq!(e.recipient_account_id, "123456789012");
    }
}
