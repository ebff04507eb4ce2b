//! The baseline detector: learns each principal's APIs, regions, source networks and user
//! agents, and once a principal is past its learning period reports a call that is new on
//! several of them and serves a tactic as that tactic's `*/AnomalousBehavior` finding.
//!
//! State: one [`Profile`] per principal (80 bytes) keyed by a stable 64-bit hash of the
//! principal's key, capped at `max_principals`. When full, the least recently active
//! sixteenth is evicted at once (one selection pass, so the cost is amortised over the
//! inserts that follow), and baselines idle past `max_idle_days` are dropped as time passes;
//! both are counted. Persisted through [`Detector::save_state`] as fixed-size records.

use std::collections::HashMap;

use super::config::ApiBaselineConfig;
use super::profile::{
    CallKeys, DIMENSIONS, Novelty, Profile, network_text, stable_hash, user_agent_family,
};
use super::tactics::tactic_of;
use crate::cloudtrail::ApiEvent;
use crate::detectors::api_call::{access_key_resource, api_activity};
use crate::detectors::api_evidence::{
    AnomalyEvidence, ApiBehaviourEvidence, ApiCallRef, BaselineDimension,
};
use crate::detectors::{
    Detector, DetectorCounter, Event, EventFacts, EventKind, EvidenceDetail, Observation,
    ResourceRef, ResourceRole,
};

/// Magic and version of the persisted state: version 02 keys and filters by XXH3 hashes.
const STATE_MAGIC: &[u8; 8] = b"PKAPIB02";
/// Version 01, whose FNV-1a hashes cannot be turned into XXH3 ones (hashes are one-way), so
/// such a state is refused and the baselines relearned.
const STATE_MAGIC_FNV: &[u8; 8] = b"PKAPIB01";
const ENTRY_LEN: usize = 8 + Profile::ENCODED_LEN;
const MS_PER_MIN: i64 = 60_000;
/// How often idle baselines are swept (event-time minutes).
const SWEEP_EVERY_MIN: u32 = 60;

/// Per-principal API baselines.
#[derive(Debug)]
pub struct ApiBaselineDetector {
    config: ApiBaselineConfig,
    profiles: HashMap<u64, Profile, foldhash::fast::RandomState>,
    next_sweep_min: u32,
    learned_calls: u64,
    anomalies: u64,
    evicted_full: u64,
    evicted_idle: u64,
    skipped_service: u64,
}

impl ApiBaselineDetector {
    /// A detector with no baselines yet.
    pub fn new(config: ApiBaselineConfig) -> Self {
        Self {
            config,
            profiles: HashMap::default(),
            next_sweep_min: 0,
            learned_calls: 0,
            anomalies: 0,
            evicted_full: 0,
            evicted_idle: 0,
            skipped_service: 0,
        }
    }

    /// Approximate bytes the baselines take: the table's slots (key, profile and one control
    /// byte each, as hashbrown lays them out).
    pub fn approx_bytes(&self) -> usize {
        self.profiles.capacity() * (std::mem::size_of::<(u64, Profile)>() + 1)
    }

    /// The baseline of the principal with `key`, if held.
    pub fn profile(&self, key: &str) -> Option<&Profile> {
        self.profiles.get(&stable_hash(&[key.as_bytes()]))
    }

    fn past_learning(&self, p: &Profile, minute: u32) -> bool {
        let days = minute.saturating_sub(p.first_seen_min) / (24 * 60);
        p.events >= self.config.learning_events && days >= self.config.learning_days
    }

    /// Drops the least recently active sixteenth of the table (at least one).
    fn evict_oldest(&mut self) {
        let mut ages: Vec<u32> = self.profiles.values().map(|p| p.last_seen_min).collect();
        let n = (ages.len() / 16).max(1);
        let Some(idx) = n.checked_sub(1) else {
            return;
        };
        if idx >= ages.len() {
            return;
        }
        let (_, cutoff, _) = ages.select_nth_unstable(idx);
        let cutoff = *cutoff;
        let before = self.profiles.len();
        let mut left = n;
        self.profiles.retain(|_, p| {
            if left > 0 && p.last_seen_min <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
        self.evicted_full += (before - self.profiles.len()) as u64;
    }

    fn sweep_idle(&mut self, minute: u32) {
        if self.config.max_idle_days == 0 || minute < self.next_sweep_min {
            return;
        }
        self.next_sweep_min = minute.saturating_add(SWEEP_EVERY_MIN);
        let max_idle = self.config.max_idle_days.saturating_mul(24 * 60);
        let before = self.profiles.len();
        self.profiles
            .retain(|_, p| minute.saturating_sub(p.last_seen_min) <= max_idle);
        self.evicted_idle += (before - self.profiles.len()) as u64;
    }

    fn observe_call(&mut self, e: &ApiEvent, out: &mut Vec<Observation>) {
        // Calls AWS services make on a principal's behalf say nothing about the principal.
        if e.principal.invoked_by.is_some() || e.principal.kind == "AWSService" {
            self.skipped_service += 1;
            return;
        }
        let key = e.principal.key();
        if key.is_empty() {
            return;
        }
        let minute = minute_of(e.time_ms);
        let id = stable_hash(&[key.as_bytes()]);
        let keys = CallKeys::of(e);
        self.learned_calls += 1;
        if !self.profiles.contains_key(&id)
            && self.profiles.len() >= self.config.max_principals.get()
        {
            self.evict_oldest();
        }
        let profile = self
            .profiles
            .entry(id)
            .or_insert_with(|| Profile::starting(minute));
        let before = *profile;
        let novelty = profile.learn(&keys, minute);
        // A brand-new baseline is all "new" and still learning, so `before` decides.
        if before.events == 0 || !self.past_learning(&before, minute) {
            return;
        }
        let new_count = novelty.iter().filter(|n| **n).count() as u32;
        if new_count < self.config.min_new_dimensions {
            return;
        }
        let Some(tactic) = tactic_of(&e.event_source, &e.event_name) else {
            return;
        };
        let bucket = (e.event_source == "s3.amazonaws.com")
            .then(|| bucket_of(e))
            .flatten();
        let finding_type = tactic.anomaly_type(bucket.is_some());
        let resource = match (&bucket, finding_type.resource_kind()) {
            (Some(name), crate::findings::types::ResourceKind::S3Bucket) => {
                ResourceRef::S3Bucket { name: name.clone() }
            }
            _ => access_key_resource(e),
        };
        self.anomalies += 1;
        out.push(Observation {
            finding_type,
            account_id: e.account_id().to_owned(),
            region: e.region.clone(),
            resource,
            role: ResourceRole::Actor,
            activity: api_activity(e),
            at_ms: e.time_ms,
            threat_intel: None,
            severity: None,
            evidence: EvidenceDetail::ApiBehaviour(Box::new(ApiBehaviourEvidence::Anomaly(
                AnomalyEvidence {
                    tactic: tactic.as_str().to_owned(),
                    call: ApiCallRef::of(e),
                    dimensions: dimensions(e, &novelty, &before),
                    new_dimensions: new_count,
                    min_new_dimensions: self.config.min_new_dimensions,
                    baseline_events: u64::from(before.events),
                    baseline_since_ms: i64::from(before.first_seen_min) * MS_PER_MIN,
                },
            ))),
        });
    }
}

fn minute_of(ms: i64) -> u32 {
    u32::try_from(ms.max(0) / MS_PER_MIN).unwrap_or(u32::MAX)
}

/// The bucket an S3 call was about: `requestParameters.bucketName`, else an S3 resource ARN.
pub fn bucket_of(e: &ApiEvent) -> Option<String> {
    if let Some(b) = e
        .request_parameters
        .get("bucketName")
        .and_then(|v| v.as_str())
        .filter(|b| !b.is_empty())
    {
        return Some(b.to_owned());
    }
    e.resources
        .iter()
        .filter(|r| r.kind == "AWS::S3::Bucket")
        .find_map(|r| r.arn.strip_prefix("arn:aws:s3:::").map(str::to_owned))
}

fn dimensions(e: &ApiEvent, novelty: &Novelty, before: &Profile) -> Vec<BaselineDimension> {
    let values = [
        format!("{}:{}", e.event_source, e.event_name),
        e.region.clone(),
        network_text(&e.source),
        user_agent_family(&e.user_agent).to_owned(),
    ];
    DIMENSIONS
        .iter()
        .zip(values)
        .zip(novelty.iter().zip(before.distinct))
        .map(|((d, value), (new, distinct))| BaselineDimension {
            dimension: (*d).to_owned(),
            value,
            new: *new,
            baseline_distinct: u32::from(distinct),
        })
        .collect()
}

impl Detector for ApiBaselineDetector {
    fn name(&self) -> &'static str {
        "api_baseline"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        if let Event::Api(e) = event {
            self.observe_call(e, out);
        }
    }

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        self.sweep_idle(minute_of(now_ms));
    }

    fn tracked_keys(&self) -> usize {
        self.profiles.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "calls_learned",
                count: self.learned_calls,
            },
            DetectorCounter {
                name: "anomalies",
                count: self.anomalies,
            },
            DetectorCounter {
                name: "evicted_lru",
                count: self.evicted_full,
            },
            DetectorCounter {
                name: "evicted_idle",
                count: self.evicted_idle,
            },
            DetectorCounter {
                name: "skipped_service_calls",
                count: self.skipped_service,
            },
        ]
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        let mut b = Vec::with_capacity(16 + self.profiles.len() * ENTRY_LEN);
        b.extend_from_slice(STATE_MAGIC);
        b.extend_from_slice(&(self.profiles.len() as u64).to_le_bytes());
        for (id, p) in &self.profiles {
            b.extend_from_slice(&id.to_le_bytes());
            p.encode(&mut b);
        }
        Some(b)
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Some((magic, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(format!("state too short ({} bytes)", bytes.len()));
        };
        if magic == STATE_MAGIC_FNV {
            return Err(
                "api_baseline state version 01 (FNV-1a hashes) was saved by an older Picket; this one hashes with XXH3 (version 02) and cannot convert it, so baselines are relearned"
                    .to_owned(),
            );
        }
        if magic != STATE_MAGIC {
            return Err("not an api_baseline state (bad magic)".to_owned());
        }
        let Some((count, body)) = rest.split_first_chunk::<8>() else {
            return Err("state truncated before its count".to_owned());
        };
        let count = u64::from_le_bytes(*count);
        let expected = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(ENTRY_LEN));
        if expected != Some(body.len()) {
            return Err(format!(
                "state holds {} bytes for {count} baselines of {ENTRY_LEN} bytes",
                body.len()
            ));
        }
        let mut profiles = HashMap::with_capacity_and_hasher(
            body.len() / ENTRY_LEN,
            foldhash::fast::RandomState::default(),
        );
        for (i, entry) in body.chunks_exact(ENTRY_LEN).enumerate() {
            let Some((id, p)) = entry.split_first_chunk::<8>() else {
                return Err(format!("baseline {i} truncated"));
            };
            let Some(p) = Profile::decode(p) else {
                return Err(format!("baseline {i} malformed"));
            };
            profiles.insert(u64::from_le_bytes(*id), p);
        }
        // Over the cap (the cap was lowered since): keep the most recently active.
        self.profiles = profiles;
        while self.profiles.len() > self.config.max_principals.get() {
            self.evict_oldest();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::detectors::api_testing::{DAY, MIN, T0, api, ip, user_call};
    use crate::findings::types::FindingType;

    fn config() -> ApiBaselineConfig {
        ApiBaselineConfig {
            learning_events: 5,
            learning_days: 1,
            ..ApiBaselineConfig::default()
        }
    }

    /// Alice's routine: a week of reads from one place with the CLI.
    fn learned(d: &mut ApiBaselineDetector) {
        let mut out = Vec::new();
        for i in 0..20 {
            let name = ["DescribeInstances", "GetObject", "ListBuckets"][i % 3];
            let source = if name == "DescribeInstances" {
                "ec2.amazonaws.com"
            } else {
                "s3.amazonaws.com"
            };
            let mut e = user_call("alice", source, name, T0 + i as i64 * 8 * 3600 * 1000);
            *e.request_parameters.value_mut() = serde_json::json!({"bucketName": "reports"});
            crate::detectors::testing::observe(d, &api(e), &mut out);
        }
        assert!(out.is_empty(), "learning raised {out:?}");
    }

    fn evidence(o: &Observation) -> &AnomalyEvidence {
        match &o.evidence {
            EvidenceDetail::ApiBehaviour(b) => match &**b {
                ApiBehaviourEvidence::Anomaly(a) => a,
                other => panic!("not an anomaly: {other:?}"),
            },
            other => panic!("not api evidence: {other:?}"),
        }
    }

    #[test]
    fn a_learned_principal_listing_users_from_a_new_network_and_tool_is_anomalous_discovery() {
        let mut d = ApiBaselineDetector::new(config());
        learned(&mut d);
        let mut e = user_call("alice", "iam.amazonaws.com", "ListUsers", T0 + 8 * DAY);
        e.source = ip("203.0.113.77");
        e.user_agent = "python-requests/2.31".into();
        let mut out = Vec::new();
        crate::detectors::testing::observe(&mut d, &api(e), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let o = &out[0];
        assert_eq!(o.finding_type, FindingType::DiscoveryIamAnomalousBehavior);
        assert!(
            matches!(&o.resource, ResourceRef::AccessKey { access_key_id, .. } if access_key_id == "AKIAALICE")
        );
        let ev = evidence(o);
        assert_eq!(ev.tactic, "Discovery");
        assert_eq!(ev.new_dimensions, 3);
        let new: Vec<_> = ev
            .dimensions
            .iter()
            .filter(|x| x.new)
            .map(|x| (x.dimension.as_str(), x.value.as_str()))
            .collect();
        assert_eq!(
            new,
            [
                ("api", "iam.amazonaws.com:ListUsers"),
                ("network", "203.0.113.0/24"),
                ("user_agent", "python-requests")
            ]
        );
        assert_eq!(ev.baseline_events, 20);
    }

    #[test]
    fn a_call_new_on_one_dimension_only_is_not_anomalous() {
        let mut d = ApiBaselineDetector::new(config());
        learned(&mut d);
        // A new API, but from the usual place with the usual tool.
        let e = user_call("alice", "iam.amazonaws.com", "ListUsers", T0 + 8 * DAY);
        let mut out = Vec::new();
        crate::detectors::testing::observe(&mut d, &api(e), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_call_new_everywhere_but_serving_no_tactic_is_not_anomalous() {
        let mut d = ApiBaselineDetector::new(config());
        learned(&mut d);
        let mut e = user_call("alice", "ec2.amazonaws.com", "CreateTags", T0 + 8 * DAY);
        e.source = ip("203.0.113.77");
        e.region = "ap-south-1".into();
        e.user_agent = "curl/8".into();
        let mut out = Vec::new();
        crate::detectors::testing::observe(&mut d, &api(e), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn nothing_is_anomalous_while_the_principal_is_still_learning() {
        let mut d = ApiBaselineDetector::new(ApiBaselineConfig {
            learning_events: 5,
            learning_days: 7,
            ..ApiBaselineConfig::default()
        });
        learned(&mut d); // 20 events over ~6.7 days: enough events, not enough days.
        let mut e = user_call("alice", "iam.amazonaws.com", "ListUsers", T0 + 6 * DAY);
        e.source = ip("203.0.113.77");
        e.user_agent = "curl/8".into();
        let mut out = Vec::new();
        crate::detectors::testing::observe(&mut d, &api(e), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn an_s3_read_from_a_new_network_and_region_is_s3_exfiltration_on_the_bucket() {
        let mut d = ApiBaselineDetector::new(config());
        learned(&mut d);
        let mut e = user_call("alice", "s3.amazonaws.com", "GetObject", T0 + 8 * DAY);
        *e.request_parameters.value_mut() =
            serde_json::json!({"bucketName": "payroll", "key": "2024.csv"});
        e.source = ip("2001:db8:77::9");
        e.region = "us-east-2".into();
        let mut out = Vec::new();
        crate::detectors::testing::observe(&mut d, &api(e), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].finding_type,
            FindingType::ExfiltrationS3AnomalousBehavior
        );
        assert_eq!(
            out[0].resource,
            ResourceRef::S3Bucket {
                name: "payroll".into()
            }
        );
        let net = &evidence(&out[0]).dimensions[2];
        assert_eq!((net.value.as_str(), net.new), ("2001:db8:77::/48", true));
    }

    #[test]
    fn calls_aws_services_make_for_a_principal_train_nothing() {
        let mut d = ApiBaselineDetector::new(config());
        let mut e = user_call("alice", "iam.amazonaws.com", "ListUsers", T0);
        e.principal.invoked_by = Some("cloudformation.amazonaws.com".into());
        crate::detectors::testing::observe(&mut d, &api(e), &mut Vec::new());
        assert_eq!(d.tracked_keys(), 0);
    }

    #[test]
    fn baselines_survive_save_and_restore() {
        let mut d = ApiBaselineDetector::new(config());
        learned(&mut d);
        let state = d.save_state().expect("state");
        let mut restored = ApiBaselineDetector::new(config());
        restored.restore_state(&state).expect("restore");
        assert_eq!(restored.tracked_keys(), 1);
        assert_eq!(
            restored.profile("arn:aws:iam::111111111111:user/alice"),
            d.profile("arn:aws:iam::111111111111:user/alice")
        );
        // The restored detector is past learning at once: the same anomaly fires.
        let mut e = user_call("alice", "iam.amazonaws.com", "ListUsers", T0 + 8 * DAY);
        e.source = ip("203.0.113.77");
        e.user_agent = "curl/8".into();
        let mut out = Vec::new();
        crate::detectors::testing::observe(&mut restored, &api(e.clone()), &mut out);
        assert_eq!(out.len(), 1);
        // A fresh detector fed the same call learns instead.
        let mut fresh = ApiBaselineDetector::new(config());
        let mut none = Vec::new();
        crate::detectors::testing::observe(&mut fresh, &api(e), &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn damaged_state_is_refused_with_a_reason_and_the_detector_stays_empty() {
        let mut d = ApiBaselineDetector::new(config());
        learned(&mut d);
        let state = d.save_state().expect("state");
        let mut other = ApiBaselineDetector::new(config());
        let err = other
            .restore_state(&state[..state.len() - 3])
            .expect_err("truncated");
        assert!(err.contains("bytes for 1 baselines"), "{err}");
        assert!(other.restore_state(b"nonsense-state").is_err());
        assert!(other.restore_state(b"").is_err());
        assert_eq!(other.tracked_keys(), 0);
    }

    #[test]
    fn a_state_saved_with_the_old_fnv_hashes_is_refused_and_the_detector_relearns() {
        let mut d = ApiBaselineDetector::new(config());
        learned(&mut d);
        let mut old = d.save_state().expect("state");
        old[..8].copy_from_slice(b"PKAPIB01");
        let mut restored = ApiBaselineDetector::new(config());
        let err = restored.restore_state(&old).expect_err("old version");
        assert!(
            err.contains("version 01") && err.contains("relearned"),
            "{err}"
        );
        assert_eq!(restored.tracked_keys(), 0);
        // It learns afresh: the first call of a principal starts a baseline.
        crate::detectors::testing::observe(
            &mut restored,
            &api(user_call("alice", "iam.amazonaws.com", "ListUsers", T0)),
            &mut Vec::new(),
        );
        assert_eq!(restored.tracked_keys(), 1);
    }

    #[test]
    fn the_table_stays_within_its_cap_and_counts_evictions_of_the_least_recent() {
        let mut d = ApiBaselineDetector::new(ApiBaselineConfig {
            max_principals: NonZeroUsize::new(32).expect("32"),
            ..config()
        });
        let mut out = Vec::new();
        for i in 0..100 {
            let e = user_call(
                &format!("u{i}"),
                "iam.amazonaws.com",
                "ListUsers",
                T0 + i * MIN,
            );
            crate::detectors::testing::observe(&mut d, &api(e), &mut out);
        }
        assert!(d.tracked_keys() <= 32, "{}", d.tracked_keys());
        let evicted = d
            .counters()
            .iter()
            .find(|c| c.name == "evicted_lru")
            .map(|c| c.count);
        assert_eq!(evicted, Some(100 - d.tracked_keys() as u64));
        assert!(d.profile("arn:aws:iam::111111111111:user/u99").is_some());
        assert!(d.profile("arn:aws:iam::111111111111:user/u0").is_none());
    }

    #[test]
    fn idle_baselines_are_dropped_as_time_passes() {
        let mut d = ApiBaselineDetector::new(ApiBaselineConfig {
            max_idle_days: 30,
            ..config()
        });
        learned(&mut d);
        d.on_tick(T0 + 20 * DAY, &mut Vec::new());
        assert_eq!(d.tracked_keys(), 1);
        d.on_tick(T0 + 40 * DAY, &mut Vec::new());
        assert_eq!(d.tracked_keys(), 0);
    }
}
