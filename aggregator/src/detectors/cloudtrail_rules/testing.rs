//! Test helpers for the CloudTrail rules: events from JSON, and running a detector over them.

use crate::cloudtrail::normalize::parse_event;
use crate::cloudtrail::{ApiEvent, EventOrigin};
use crate::detectors::{Detector, Event, Observation};

/// An event from CloudTrail JSON (panics on bad JSON: tests only).
pub fn event(json: &str) -> ApiEvent {
    parse_event(
        json,
        EventOrigin {
            file: "test.json".into(),
            position: 0,
        },
    )
    .expect("test event parses")
}

/// An event from a `serde_json::Value` record.
pub fn event_from(value: &serde_json::Value) -> ApiEvent {
    event(&value.to_string())
}

/// A minimal record: `name` from `source` by an IAM user, at a fixed time, from 203.0.113.9
/// (override members by merging `extra` into it).
pub fn record(source: &str, name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE", "userName": "alice"},
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "81.2.69.142",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0 exe/x86_64.ubuntu.22",
        "eventID": "00000000-0000-0000-0000-000000000001",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Every observation `detector` makes over `events`.
pub fn run(detector: &mut dyn Detector, events: Vec<ApiEvent>) -> Vec<Observation> {
    let mut out = Vec::new();
    for e in events {
        crate::detectors::testing::observe(detector, &Event::Api(Box::new(e)), &mut out);
    }
    out
}
