//! `Stealth:S3/ServerAccessLoggingDisabled`: a successful `PutBucketLogging` whose
//! `BucketLoggingStatus` has no `LoggingEnabled`, which turns server access logging off.

use serde_json::Value;

use super::api_observation::{Extra, bucket, bucket_name, observation, pick};
use crate::detectors::{Detector, Event, EventFacts, EventKind, Observation};
use crate::findings::types::FindingType;

/// The S3 server-access-logging rule.
#[derive(Debug, Default)]
pub struct S3LoggingDetector;

/// Whether a `PutBucketLogging` request turns logging off.
fn disables_logging(params: &Value) -> bool {
    let Some(status) = params.get("BucketLoggingStatus") else {
        return false;
    };
    match status.get("LoggingEnabled") {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

impl Detector for S3LoggingDetector {
    fn name(&self) -> &'static str {
        "s3_server_access_logging_disabled"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else { return };
        if e.event_source != "s3.amazonaws.com"
            || e.event_name != "PutBucketLogging"
            || !e.succeeded()
            || !disables_logging(e.request_parameters.value())
        {
            return;
        }
        let Some(name) = bucket_name(e) else { return };
        out.push(observation(
            self.name(),
            FindingType::StealthS3ServerAccessLoggingDisabled,
            bucket(name),
            e,
            Extra {
                request_parameters: pick(e, &["bucketName", "BucketLoggingStatus"]),
                ..Extra::default()
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

    #[test]
    fn an_empty_logging_status_disables_logging() {
        let e = event_from(&record(
            "s3.amazonaws.com",
            "PutBucketLogging",
            json!({"requestParameters": {"bucketName": "b1", "BucketLoggingStatus": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"}, "logging": ""}}),
        ));
        let obs = run(&mut S3LoggingDetector, vec![e]);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].resource.id(), "b1");
    }

    #[test]
    fn enabling_logging_or_a_denied_call_does_not() {
        let enable = event_from(&record(
            "s3.amazonaws.com",
            "PutBucketLogging",
            json!({"requestParameters": {"bucketName": "b1", "BucketLoggingStatus": {"LoggingEnabled": {"TargetBucket": "logs", "TargetPrefix": "b1/"}}}}),
        ));
        let denied = event_from(&record(
            "s3.amazonaws.com",
            "PutBucketLogging",
            json!({"errorCode": "AccessDenied", "requestParameters": {"bucketName": "b1", "BucketLoggingStatus": {}}}),
        ));
        assert!(run(&mut S3LoggingDetector, vec![enable, denied]).is_empty());
    }
}
