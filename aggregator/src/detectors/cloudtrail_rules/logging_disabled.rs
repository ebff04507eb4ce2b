//! `Stealth:IAMUser/CloudTrailLoggingDisabled`: a successful call that stops or reduces a
//! trail's logging — `StopLogging`, `DeleteTrail`, event selectors that keep no write
//! management events, and deleting or adding a lifecycle rule to a bucket a trail writes to.
//!
//! Trail buckets are learned from `CreateTrail`/`UpdateTrail` (`s3BucketName`), so the bucket
//! rule only knows trails created or changed in what it has read; the set is capped.

use std::collections::HashSet;

use serde_json::Value;

use super::api_observation::{Extra, access_key, bucket_name, observation, pick};
use crate::cloudtrail::ApiEvent;
use crate::detectors::{Detector, DetectorCounter, Event, EventFacts, EventKind, Observation};
use crate::findings::types::FindingType;

/// Trail buckets remembered; beyond this new ones are not learned (counted).
pub const MAX_TRAIL_BUCKETS: usize = 10_000;

/// The CloudTrail-logging rule, with the trail buckets it has learned.
#[derive(Debug, Default)]
pub struct LoggingDisabledDetector {
    trail_buckets: HashSet<String>,
    buckets_not_learned: u64,
}

/// Whether an event selector keeps write management events (`IncludeManagementEvents` and
/// `ReadWriteType` default to true and `All`).
fn basic_keeps_management(sel: &Value) -> bool {
    let include = sel
        .get("includeManagementEvents")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let rw = sel
        .get("readWriteType")
        .and_then(Value::as_str)
        .unwrap_or("All");
    include && rw != "ReadOnly"
}

/// Whether an advanced selector selects management events.
fn advanced_keeps_management(sel: &Value) -> bool {
    let fields = sel
        .get("fieldSelectors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut management = false;
    let mut read_only = false;
    for f in fields {
        let field = f.get("field").and_then(Value::as_str).unwrap_or_default();
        let equals = f.get("equals").and_then(Value::as_array);
        let has = |v: &str| equals.is_some_and(|e| e.iter().any(|x| x.as_str() == Some(v)));
        if field == "eventCategory" && has("Management") {
            management = true;
        }
        if field == "readOnly" && has("true") && !has("false") {
            read_only = true;
        }
    }
    management && !read_only
}

/// Why a `PutEventSelectors` call drops management events, if it does.
fn selectors_drop_management(e: &ApiEvent) -> Option<&'static str> {
    let p = &e.request_parameters;
    if let Some(adv) = p.get("advancedEventSelectors").and_then(Value::as_array) {
        return (!adv.iter().any(advanced_keeps_management))
            .then_some("no advanced event selector keeps write management events");
    }
    let basic = p.get("eventSelectors").and_then(Value::as_array)?;
    (!basic.iter().any(basic_keeps_management))
        .then_some("no event selector keeps write management events")
}

impl LoggingDisabledDetector {
    fn learn(&mut self, e: &ApiEvent) {
        let Some(b) = e
            .request_parameters
            .get("s3BucketName")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty())
        else {
            return;
        };
        if self.trail_buckets.contains(b) {
            return;
        }
        if self.trail_buckets.len() >= MAX_TRAIL_BUCKETS {
            self.buckets_not_learned += 1;
            return;
        }
        self.trail_buckets.insert(b.to_owned());
    }

    fn verdict(&self, e: &ApiEvent) -> Option<(Value, String)> {
        match (e.event_source.as_str(), e.event_name.as_str()) {
            ("cloudtrail.amazonaws.com", "StopLogging" | "DeleteTrail") => {
                Some((pick(e, &["name"]), format!("{} on a trail", e.event_name)))
            }
            ("cloudtrail.amazonaws.com", "PutEventSelectors") => {
                let why = selectors_drop_management(e)?;
                Some((
                    pick(
                        e,
                        &["trailName", "eventSelectors", "advancedEventSelectors"],
                    ),
                    why.to_owned(),
                ))
            }
            (
                "s3.amazonaws.com",
                "DeleteBucket" | "PutBucketLifecycle" | "PutBucketLifecycleConfiguration",
            ) => {
                let b = bucket_name(e)?;
                self.trail_buckets.contains(b).then(|| {
                    (
                        pick(e, &["bucketName"]),
                        format!("{} on bucket {b}, which a trail writes to", e.event_name),
                    )
                })
            }
            _ => None,
        }
    }
}

impl Detector for LoggingDisabledDetector {
    fn name(&self) -> &'static str {
        "cloudtrail_logging_disabled"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else { return };
        if !e.succeeded() {
            return;
        }
        if e.event_source == "cloudtrail.amazonaws.com"
            && matches!(e.event_name.as_str(), "CreateTrail" | "UpdateTrail")
        {
            self.learn(e);
            return;
        }
        let Some((params, note)) = self.verdict(e) else {
            return;
        };
        out.push(observation(
            self.name(),
            FindingType::StealthCloudTrailLoggingDisabled,
            access_key(e),
            e,
            Extra {
                request_parameters: params,
                note: Some(note),
                threat_intel: None,
            },
        ));
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn tracked_keys(&self) -> usize {
        self.trail_buckets.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![DetectorCounter {
            name: "trail_buckets_not_learned",
            count: self.buckets_not_learned,
        }]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{event_from, record, run};
    use super::*;

    fn ct(name: &str, extra: Value) -> ApiEvent {
        event_from(&record("cloudtrail.amazonaws.com", name, extra))
    }

    #[test]
    fn stop_logging_and_delete_trail_that_succeeded_are_logging_disabled() {
        let events = vec![
            ct(
                "StopLogging",
                json!({"requestParameters": {"name": "main"}}),
            ),
            ct(
                "DeleteTrail",
                json!({"requestParameters": {"name": "main"}}),
            ),
        ];
        let obs = run(&mut LoggingDisabledDetector::default(), events);
        assert_eq!(obs.len(), 2);
        assert!(
            obs.iter()
                .all(|o| o.finding_type == FindingType::StealthCloudTrailLoggingDisabled)
        );
    }

    #[test]
    fn a_failed_stop_logging_is_not() {
        let e = ct(
            "StopLogging",
            json!({"errorCode": "AccessDenied", "requestParameters": {"name": "main"}}),
        );
        assert!(run(&mut LoggingDisabledDetector::default(), vec![e]).is_empty());
    }

    #[test]
    fn selectors_without_management_events_fire_and_selectors_with_them_do_not() {
        let drop = ct(
            "PutEventSelectors",
            json!({"requestParameters": {"trailName": "t", "eventSelectors": [{"includeManagementEvents": false, "readWriteType": "All"}]}}),
        );
        let read_only = ct(
            "PutEventSelectors",
            json!({"requestParameters": {"trailName": "t", "eventSelectors": [{"includeManagementEvents": true, "readWriteType": "ReadOnly"}]}}),
        );
        let keep = ct(
            "PutEventSelectors",
            json!({"requestParameters": {"trailName": "t", "eventSelectors": [{"includeManagementEvents": true, "readWriteType": "All"}]}}),
        );
        let adv_data_only = ct(
            "PutEventSelectors",
            json!({"requestParameters": {"trailName": "t", "advancedEventSelectors": [{"fieldSelectors": [{"field": "eventCategory", "equals": ["Data"]}]}]}}),
        );
        let adv_keep = ct(
            "PutEventSelectors",
            json!({"requestParameters": {"trailName": "t", "advancedEventSelectors": [{"fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]}]}}),
        );
        let mut d = LoggingDisabledDetector::default();
        assert_eq!(run(&mut d, vec![drop, read_only, adv_data_only]).len(), 3);
        assert!(run(&mut d, vec![keep, adv_keep]).is_empty());
    }

    #[test]
    fn deleting_a_learned_trail_bucket_fires_and_another_bucket_does_not() {
        let mut d = LoggingDisabledDetector::default();
        let create = ct(
            "CreateTrail",
            json!({"requestParameters": {"name": "t", "s3BucketName": "trail-logs"}}),
        );
        let other = event_from(&record(
            "s3.amazonaws.com",
            "DeleteBucket",
            json!({"requestParameters": {"bucketName": "scratch"}}),
        ));
        let trail = event_from(&record(
            "s3.amazonaws.com",
            "PutBucketLifecycle",
            json!({"requestParameters": {"bucketName": "trail-logs"}}),
        ));
        let obs = run(&mut d, vec![create, other, trail]);
        assert_eq!(obs.len(), 1);
        assert_eq!(d.tracked_keys(), 1);
    }
}
