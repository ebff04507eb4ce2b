//! API calls from addresses on the aggregator's threat lists: the IAM and S3
//! `MaliciousIPCaller`, `MaliciousIPCaller.Custom` and `TorIPCaller` types.
//!
//! The list entry's category decides the family (Tor, custom, or any other known threat
//! category = malicious); the API decides the purpose: read-only discovery (`List*`,
//! `Describe*`, `Get*`, `Head*`) is `Recon`/`Discovery`, object reads from a malicious address
//! are `Exfiltration:S3`, other S3 writes `Impact:S3`, everything else `UnauthorizedAccess`.
//! The S3 types go with the service (`eventSource` `s3.amazonaws.com`), bucket or not: a
//! bucket-less `ListBuckets` is `Discovery:S3/…` on the caller's key, as in GuardDuty.
//! Trusted lists win (the snapshot never reports a trusted address as a threat), and private,
//! loopback and documentation addresses are never looked up.
//!
//! The snapshot is cached and replaced only when the intel watch says it changed, so the hot
//! path takes no lock.

use picket_intel::Category;

use super::api_observation::{Extra, access_key, bucket, bucket_name, observation};
use crate::cloudtrail::ApiEvent;
use crate::cloudtrail::address::is_public;
use crate::detectors::IntelView;
use crate::detectors::{
    Detector, DetectorContext, DetectorCounter, Event, EventFacts, EventKind, Observation,
    ThreatIntel,
};
use crate::findings::types::FindingType;

/// Which list family a hit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Tor,
    Custom,
    Malicious,
}

/// What the API does, for the finding's purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Discovery,
    ObjectRead,
    Other,
}

fn purpose(name: &str) -> Purpose {
    if name.starts_with("GetObject") {
        Purpose::ObjectRead
    } else if ["List", "Describe", "Get", "Head"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        Purpose::Discovery
    } else {
        Purpose::Other
    }
}

/// The finding type for a hit of `family` on a call with `purpose`; S3 when `s3`.
fn finding_type(family: Family, purpose: Purpose, s3: bool) -> FindingType {
    use FindingType as T;
    match (s3, family, purpose) {
        (true, Family::Tor, Purpose::Discovery) => T::DiscoveryS3TorIpCaller,
        (true, Family::Tor, _) => T::UnauthorizedAccessS3TorIpCaller,
        (true, Family::Custom, Purpose::Discovery) => T::DiscoveryS3MaliciousIpCallerCustom,
        (true, Family::Custom, _) => T::UnauthorizedAccessS3MaliciousIpCallerCustom,
        (true, Family::Malicious, Purpose::Discovery) => T::DiscoveryS3MaliciousIpCaller,
        (true, Family::Malicious, Purpose::ObjectRead) => T::ExfiltrationS3MaliciousIpCaller,
        (true, Family::Malicious, Purpose::Other) => T::ImpactS3MaliciousIpCaller,
        (false, Family::Tor, Purpose::Other) => T::UnauthorizedAccessIamTorIpCaller,
        (false, Family::Tor, _) => T::ReconIamTorIpCaller,
        (false, Family::Custom, Purpose::Other) => T::UnauthorizedAccessIamMaliciousIpCallerCustom,
        (false, Family::Custom, _) => T::ReconMaliciousIpCallerCustom,
        (false, Family::Malicious, Purpose::Other) => T::UnauthorizedAccessIamMaliciousIpCaller,
        (false, Family::Malicious, _) => T::ReconIamMaliciousIpCaller,
    }
}

/// The intel-caller rule.
#[derive(Debug)]
pub struct IntelCallerDetector {
    intel: IntelView,
    hits: u64,
    not_public: u64,
}

impl IntelCallerDetector {
    /// A rule reading `context`'s intel (none: the rule never fires).
    pub fn new(context: &DetectorContext) -> Self {
        Self {
            intel: IntelView::new(context),
            hits: 0,
            not_public: 0,
        }
    }

    fn judge(&mut self, e: &ApiEvent) -> Option<Observation> {
        let ip = e.source.ip()?;
        if !is_public(ip) {
            self.not_public += 1;
            return None;
        }
        let snapshot = self.intel.snapshot()?;
        let hit = snapshot.match_ip(ip)?;
        let family = match hit.category {
            Category::Tor => Family::Tor,
            Category::Custom => Family::Custom,
            _ => Family::Malicious,
        };
        let purpose = purpose(&e.event_name);
        // The service decides the family, as GuardDuty does: a bucket-less S3 call
        // (ListBuckets) is still an S3 finding, on the caller's key for want of a bucket.
        let s3 = e.event_source == "s3.amazonaws.com";
        let s3_bucket = s3.then(|| bucket_name(e)).flatten();
        let t = finding_type(family, purpose, s3);
        let resource = s3_bucket.map_or_else(|| access_key(e), bucket);
        let mut threat_names = vec![hit.category.wire_name().to_owned()];
        if !hit.description.is_empty() {
            threat_names.push(hit.description.to_owned());
        }
        let note = format!(
            "caller {ip} matched {:?} on list {} (category {}, source {:?})",
            hit.indicator, hit.list, hit.category, hit.source
        );
        let list_name = hit.list.to_owned();
        self.hits += 1;
        Some(observation(
            "malicious_ip_caller",
            t,
            resource,
            e,
            Extra {
                request_parameters: serde_json::Value::Null,
                note: Some(note),
                threat_intel: Some(ThreatIntel {
                    list_name,
                    threat_names,
                }),
            },
        ))
    }
}

impl Detector for IntelCallerDetector {
    fn name(&self) -> &'static str {
        "malicious_ip_caller"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else { return };
        // Calls AWS made on a principal's behalf carry AWS's address, not the caller's.
        if e.principal.invoked_by.is_some() {
            return;
        }
        self.intel.refresh();
        if let Some(o) = self.judge(e) {
            out.push(o);
        }
    }

    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Observation>) {}

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "intel_caller_hits",
                count: self.hits,
            },
            DetectorCounter {
                name: "non_public_callers",
                count: self.not_public,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use picket_intel::{ListKind, ListOptions, SnapshotBuilder, parse_list};
    use serde_json::json;

    use super::super::testing::{event_from, record, run};
    use super::*;
    use crate::detectors::ResourceRef;

    fn context() -> DetectorContext {
        let list = |name: &str, kind, category, text: &str| {
            parse_list(
                name,
                text.as_bytes(),
                &ListOptions {
                    category,
                    ..ListOptions::new(name, kind)
                },
            )
            .expect("list parses")
        };
        let mut b = SnapshotBuilder::new();
        b.add_list(list(
            "tor-exits",
            ListKind::Threat,
            Category::Tor,
            "185.220.101.5\n",
        ));
        b.add_list(list(
            "my-list",
            ListKind::Threat,
            Category::Custom,
            "45.9.148.0/24\n",
        ));
        b.add_list(list(
            "c2",
            ListKind::Threat,
            Category::C2,
            "91.240.118.0/24\n10.0.0.0/8\n",
        ));
        b.add_list(list(
            "ours",
            ListKind::Trusted,
            Category::Custom,
            "91.240.118.7\n",
        ));
        DetectorContext::with_fixed_intel(b.build(1).expect("snapshot"))
    }

    fn call(
        source: &str,
        name: &str,
        ip: &str,
        params: serde_json::Value,
    ) -> crate::cloudtrail::ApiEvent {
        event_from(&record(
            source,
            name,
            json!({"sourceIPAddress": ip, "requestParameters": params}),
        ))
    }

    #[test]
    fn the_category_and_the_api_decide_the_type() {
        let mut d = IntelCallerDetector::new(&context());
        let got: Vec<_> = run(
            &mut d,
            vec![
                call(
                    "iam.amazonaws.com",
                    "ListUsers",
                    "185.220.101.5",
                    json!(null),
                ),
                call(
                    "iam.amazonaws.com",
                    "CreateUser",
                    "185.220.101.5",
                    json!(null),
                ),
                call(
                    "ec2.amazonaws.com",
                    "DescribeInstances",
                    "45.9.148.20",
                    json!(null),
                ),
                call(
                    "iam.amazonaws.com",
                    "CreateAccessKey",
                    "45.9.148.20",
                    json!(null),
                ),
                call(
                    "sts.amazonaws.com",
                    "GetCallerIdentity",
                    "91.240.118.9",
                    json!(null),
                ),
                call(
                    "iam.amazonaws.com",
                    "AttachUserPolicy",
                    "91.240.118.9",
                    json!(null),
                ),
                call(
                    "s3.amazonaws.com",
                    "GetObject",
                    "91.240.118.9",
                    json!({"bucketName": "b"}),
                ),
                call(
                    "s3.amazonaws.com",
                    "ListObjects",
                    "185.220.101.5",
                    json!({"bucketName": "b"}),
                ),
                call(
                    "s3.amazonaws.com",
                    "PutObject",
                    "45.9.148.20",
                    json!({"bucketName": "b"}),
                ),
            ],
        )
        .into_iter()
        .map(|o| o.finding_type)
        .collect();
        use FindingType as T;
        assert_eq!(
            got,
            vec![
                T::ReconIamTorIpCaller,
                T::UnauthorizedAccessIamTorIpCaller,
                T::ReconMaliciousIpCallerCustom,
                T::UnauthorizedAccessIamMaliciousIpCallerCustom,
                T::ReconIamMaliciousIpCaller,
                T::UnauthorizedAccessIamMaliciousIpCaller,
                T::ExfiltrationS3MaliciousIpCaller,
                T::DiscoveryS3TorIpCaller,
                T::UnauthorizedAccessS3MaliciousIpCallerCustom,
            ]
        );
    }

    #[test]
    fn a_bucket_less_s3_call_is_an_s3_type_on_the_callers_key() {
        let mut d = IntelCallerDetector::new(&context());
        let got = run(
            &mut d,
            vec![
                call(
                    "s3.amazonaws.com",
                    "ListBuckets",
                    "91.240.118.9",
                    json!(null),
                ),
                call(
                    "s3.amazonaws.com",
                    "ListBuckets",
                    "185.220.101.5",
                    json!({}),
                ),
                call(
                    "s3.amazonaws.com",
                    "GetObject",
                    "91.240.118.9",
                    json!({"bucketName": "loot"}),
                ),
            ],
        );
        use FindingType as T;
        let types: Vec<_> = got.iter().map(|o| o.finding_type).collect();
        assert_eq!(
            types,
            vec![
                T::DiscoveryS3MaliciousIpCaller,
                T::DiscoveryS3TorIpCaller,
                T::ExfiltrationS3MaliciousIpCaller,
            ]
        );
        assert!(matches!(got[0].resource, ResourceRef::AccessKey { .. }));
        assert!(matches!(&got[2].resource, ResourceRef::S3Bucket { name } if name == "loot"));
    }

    #[test]
    fn a_listing_call_of_another_service_from_the_same_address_stays_an_iam_type() {
        // Near miss for the S3 rule: the API name alone (List*) must not make it S3.
        let mut d = IntelCallerDetector::new(&context());
        let got = run(
            &mut d,
            vec![
                call(
                    "ec2.amazonaws.com",
                    "ListBuckets",
                    "91.240.118.9",
                    json!(null),
                ),
                call(
                    "iam.amazonaws.com",
                    "ListUsers",
                    "91.240.118.9",
                    json!({"bucketName": "not-s3"}),
                ),
            ],
        );
        let types: Vec<_> = got.iter().map(|o| o.finding_type).collect();
        assert_eq!(
            types,
            vec![
                FindingType::ReconIamMaliciousIpCaller,
                FindingType::ReconIamMaliciousIpCaller
            ]
        );
    }

    #[test]
    fn trusted_private_unlisted_and_service_callers_never_fire() {
        let mut d = IntelCallerDetector::new(&context());
        let events = vec![
            call(
                "iam.amazonaws.com",
                "CreateUser",
                "91.240.118.7",
                json!(null),
            ),
            call("iam.amazonaws.com", "CreateUser", "10.1.2.3", json!(null)),
            call(
                "iam.amazonaws.com",
                "CreateUser",
                "81.2.69.142",
                json!(null),
            ),
            call(
                "iam.amazonaws.com",
                "CreateUser",
                "ec2.amazonaws.com",
                json!(null),
            ),
        ];
        assert!(run(&mut d, events).is_empty());
        assert!(
            run(
                &mut IntelCallerDetector::new(&DetectorContext::default()),
                vec![call(
                    "iam.amazonaws.com",
                    "CreateUser",
                    "185.220.101.5",
                    json!(null)
                )]
            )
            .is_empty()
        );
    }
}
