//! `service.detection`: GuardDuty's Extended Threat Detection block (botocore shapes
//! `Detection`, `Sequence`, `Signal`, `Indicator`, `Actor`, `ResourceV2`, `NetworkEndpoint`),
//! filled for attack sequences from the correlation stage's [`SequenceEvidence`].
//!
//! Every signal stays listed whether a suppression rule archived its finding or not: an
//! archived one says so in its `description` (GuardDuty's indicator keys have no word for it)
//! and, as before, in `additionalInfo.picketEvidence.signals[].suppressed`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Timestamp;
use super::types::FindingType;
use crate::detectors::api_evidence::{ApiBehaviourEvidence, SequenceEvidence, SequenceSignal};
use crate::detectors::{EvidenceDetail, Observation};

/// GuardDuty's `Signals` list holds at most this many.
const MAX_SIGNALS: usize = 100;
/// GuardDuty's `Resources`, `NetworkEndpoints` and `Actors` lists hold at most this many.
const MAX_ENTITIES: usize = 400;

/// `service.detection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    /// The attack sequence, for `AttackSequence:*` findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Sequence>,
}

/// `service.detection.sequence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sequence {
    /// The sequence's id: the finding's id.
    pub uid: String,
    /// What the sequence means.
    pub description: String,
    /// Who acted: the principal.
    #[serde(default)]
    pub actors: Vec<Actor>,
    /// What the signals touched.
    #[serde(default)]
    pub resources: Vec<ResourceV2>,
    /// Where the calls came from.
    #[serde(default)]
    pub endpoints: Vec<NetworkEndpoint>,
    /// The signals, oldest first (one per signal finding).
    pub signals: Vec<Signal>,
    /// Tactics and APIs of the whole sequence.
    #[serde(default)]
    pub sequence_indicators: Vec<Indicator>,
}

/// One entry of `actors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// Referenced by signals' `actorIds`.
    pub id: String,
    /// The principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

/// `actor.user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User or role session name (the principal when unknown).
    pub name: String,
    /// The principal's ARN, id or key.
    pub uid: String,
    /// `IAMUser`, `AssumedRole`, `Root`… (`Unknown` when no signal said).
    #[serde(rename = "type")]
    pub kind: String,
    /// The access key the signals were made with, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_uid: Option<String>,
    /// The principal's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
}

/// `user.account`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Account id.
    pub uid: String,
}

/// One entry of `resources` (botocore `ResourceV2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceV2 {
    /// Referenced by signals' `resourceUids`.
    pub uid: String,
    /// `ACCESS_KEY`, `S3_BUCKET` or `EC2_INSTANCE`.
    pub resource_type: String,
    /// Its account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Its region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Its name (bucket name, key id, instance id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One entry of `endpoints`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkEndpoint {
    /// Referenced by signals' `endpointIds`.
    pub id: String,
    /// The address, when the caller was an address (not an AWS service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The service name, when an AWS service called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// One entry of `signals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    /// The signal finding's id.
    pub uid: String,
    /// Always `FINDING`: each signal is a Picket finding.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it was, and whether a suppression rule archived it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The signal's finding type.
    pub name: String,
    /// When the signal was first seen (Picket has no separate creation time for it).
    pub created_at: Timestamp,
    /// When it was last seen.
    pub updated_at: Timestamp,
    /// First sighting within the sequence.
    pub first_seen_at: Timestamp,
    /// Last sighting within the sequence.
    pub last_seen_at: Timestamp,
    /// The signal type's default severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<f64>,
    /// Sightings within the sequence.
    pub count: u64,
    /// Entries of `resources`.
    #[serde(default)]
    pub resource_uids: Vec<String>,
    /// Entries of `actors`.
    #[serde(default)]
    pub actor_ids: Vec<String>,
    /// Entries of `endpoints`.
    #[serde(default)]
    pub endpoint_ids: Vec<String>,
    /// Tactic and API of the signal.
    #[serde(default)]
    pub signal_indicators: Vec<Indicator>,
}

/// One indicator (`signalIndicators`, `sequenceIndicators`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indicator {
    /// GuardDuty's `IndicatorType`: `ATTACK_TACTIC`, `HIGH_RISK_API`, `MALICIOUS_IP`, `TOR_IP`.
    pub key: String,
    /// The values (at least one).
    pub values: Vec<String>,
    /// A short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The `detection` block of a finding built from `obs`, when `obs` is an attack sequence.
pub fn detection_of(obs: &Observation, finding_id: &str, description: &str) -> Option<Detection> {
    let EvidenceDetail::ApiBehaviour(b) = &obs.evidence else {
        return None;
    };
    let ApiBehaviourEvidence::Sequence(seq) = &**b else {
        return None;
    };
    Some(Detection {
        sequence: Some(sequence(seq, finding_id, description)),
    })
}

/// The tactic a finding type names (`Discovery:IAMUser/…` → `Discovery`).
fn tactic(finding_type: &str) -> &str {
    finding_type.split(':').next().unwrap_or(finding_type)
}

/// Signals grouped by their finding (the same finding seen again is one signal, counted).
struct Grouped<'a> {
    first: &'a SequenceSignal,
    first_ms: i64,
    last_ms: i64,
    count: u64,
    suppressed: bool,
    apis: Vec<&'a str>,
    callers: Vec<&'a str>,
}

fn sequence(seq: &SequenceEvidence, finding_id: &str, description: &str) -> Sequence {
    let actor_id = seq.principal.clone();
    let mut groups: Vec<Grouped<'_>> = Vec::new();
    let mut by_uid: BTreeMap<String, usize> = BTreeMap::new();
    for s in &seq.signals {
        // Older evidence has no finding id; the type and resource stand in for it.
        let uid = if s.finding_id.is_empty() {
            format!("{}/{}", s.finding_type, s.resource)
        } else {
            s.finding_id.clone()
        };
        let i = *by_uid.entry(uid).or_insert_with(|| {
            groups.push(Grouped {
                first: s,
                first_ms: s.at_ms,
                last_ms: s.at_ms,
                count: 0,
                suppressed: false,
                apis: Vec::new(),
                callers: Vec::new(),
            });
            groups.len() - 1
        });
        let Some(g) = groups.get_mut(i) else { continue };
        g.count += 1;
        g.first_ms = g.first_ms.min(s.at_ms);
        g.last_ms = g.last_ms.max(s.at_ms);
        g.suppressed |= s.suppressed;
        if !s.api.is_empty() && !g.apis.contains(&s.api.as_str()) {
            g.apis.push(&s.api);
        }
        if !s.caller.is_empty() && !g.callers.contains(&s.caller.as_str()) {
            g.callers.push(&s.caller);
        }
    }

    let mut resources: Vec<ResourceV2> = Vec::new();
    let mut endpoints: Vec<NetworkEndpoint> = Vec::new();
    let mut signals = Vec::with_capacity(groups.len());
    let mut tactics: Vec<&str> = Vec::new();
    let mut apis: Vec<&str> = Vec::new();
    for (uid, g) in by_uid
        .iter()
        .map(|(u, i)| (u, *i))
        .filter_map(|(u, i)| groups.get(i).map(|g| (u, g)))
    {
        let s = g.first;
        let mut resource_uids = Vec::new();
        if !s.resource.is_empty() {
            if !resources.iter().any(|r| r.uid == s.resource) {
                resources.push(ResourceV2 {
                    uid: s.resource.clone(),
                    resource_type: if s.resource_type.is_empty() {
                        "ACCESS_KEY".to_owned()
                    } else {
                        s.resource_type.clone()
                    },
                    account_id: Some(s.account_id.clone()).filter(|a| !a.is_empty()),
                    region: Some(s.region.clone()).filter(|r| !r.is_empty()),
                    name: Some(s.resource.clone()),
                });
            }
            resource_uids.push(s.resource.clone());
        }
        let mut endpoint_ids = Vec::new();
        for caller in &g.callers {
            if !endpoints.iter().any(|e| e.id == *caller) {
                let is_ip = caller.parse::<std::net::IpAddr>().is_ok();
                endpoints.push(NetworkEndpoint {
                    id: (*caller).to_owned(),
                    ip: is_ip.then(|| (*caller).to_owned()),
                    domain: (!is_ip).then(|| (*caller).to_owned()),
                });
            }
            endpoint_ids.push((*caller).to_owned());
        }
        let t = tactic(&s.finding_type);
        if !tactics.contains(&t) {
            tactics.push(t);
        }
        for a in &g.apis {
            if !apis.contains(a) {
                apis.push(*a);
            }
        }
        let mut indicators = vec![Indicator {
            key: "ATTACK_TACTIC".to_owned(),
            values: vec![t.to_owned()],
            title: Some(s.stage.clone()),
        }];
        if !g.apis.is_empty() {
            indicators.push(Indicator {
                key: "HIGH_RISK_API".to_owned(),
                values: g.apis.iter().map(|a| (*a).to_owned()).collect(),
                title: None,
            });
        }
        let caller_kind = if s.finding_type.contains("TorIPCaller") {
            Some("TOR_IP")
        } else if s.finding_type.contains("MaliciousIPCaller") {
            Some("MALICIOUS_IP")
        } else {
            None
        };
        if let Some(key) = caller_kind.filter(|_| !g.callers.is_empty()) {
            indicators.push(Indicator {
                key: key.to_owned(),
                values: g.callers.iter().map(|c| (*c).to_owned()).collect(),
                title: None,
            });
        }
        let mut text = format!("{} ({} stage)", s.finding_type, s.stage);
        if g.suppressed {
            text.push_str(
                "; its finding was archived by a suppression rule and still counts as a signal",
            );
        }
        signals.push((
            g.first_ms,
            Signal {
                uid: uid.clone(),
                kind: "FINDING".to_owned(),
                description: Some(text),
                name: s.finding_type.clone(),
                created_at: Timestamp(g.first_ms),
                updated_at: Timestamp(g.last_ms),
                first_seen_at: Timestamp(g.first_ms),
                last_seen_at: Timestamp(g.last_ms),
                severity: FindingType::from_name(&s.finding_type)
                    .ok()
                    .map(|t| t.default_severity()),
                count: g.count,
                resource_uids,
                actor_ids: vec![actor_id.clone()],
                endpoint_ids,
                signal_indicators: indicators,
            },
        ));
    }
    signals.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.uid.cmp(&b.1.uid)));
    // botocore bounds: at most 100 signals and 400 resources or endpoints; the newest
    // signals are the ones that completed the chain.
    if signals.len() > MAX_SIGNALS {
        signals.drain(..signals.len() - MAX_SIGNALS);
    }
    resources.truncate(MAX_ENTITIES);
    endpoints.truncate(MAX_ENTITIES);

    let credential = seq
        .signals
        .iter()
        .rev()
        .find(|s| s.resource_type == "ACCESS_KEY" && !s.resource.is_empty())
        .map(|s| s.resource.clone());
    let account = account_of(&seq.principal)
        .or_else(|| seq.signals.first().map(|s| s.account_id.clone()))
        .filter(|a| !a.is_empty())
        .map(|uid| Account { uid });
    let actor = Actor {
        id: actor_id.clone(),
        user: Some(User {
            name: if seq.user_name.is_empty() {
                seq.principal.clone()
            } else {
                seq.user_name.clone()
            },
            uid: seq.principal.clone(),
            kind: if seq.user_type.is_empty() {
                "Unknown".to_owned()
            } else {
                seq.user_type.clone()
            },
            credential_uid: credential,
            account,
        }),
    };
    let mut sequence_indicators = vec![Indicator {
        key: "ATTACK_TACTIC".to_owned(),
        values: tactics.iter().map(|t| (*t).to_owned()).collect(),
        title: None,
    }];
    if !apis.is_empty() {
        sequence_indicators.push(Indicator {
            key: "HIGH_RISK_API".to_owned(),
            values: apis.iter().map(|a| (*a).to_owned()).collect(),
            title: None,
        });
    }
    Sequence {
        uid: finding_id.to_owned(),
        description: description.to_owned(),
        actors: vec![actor],
        resources,
        endpoints,
        signals: signals.into_iter().map(|(_, s)| s).collect(),
        sequence_indicators,
    }
}

/// The account of an ARN (`arn:aws:iam::123456789012:user/u` → `123456789012`).
fn account_of(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts
        .nth(3)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::{Activity, ApiCallActivity, EvidenceDetail, ResourceRef, ResourceRole};

    fn signal(
        t: &str,
        stage: &str,
        api: &str,
        at_ms: i64,
        id: &str,
        suppressed: bool,
    ) -> SequenceSignal {
        SequenceSignal {
            finding_type: t.into(),
            stage: stage.into(),
            api: api.into(),
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            at_ms,
            suppressed,
            finding_id: id.into(),
            resource: "AKIAEXAMPLE".into(),
            resource_type: "ACCESS_KEY".into(),
            caller: "198.51.100.9".into(),
        }
    }

    fn obs(evidence: EvidenceDetail) -> Observation {
        Observation {
            finding_type: FindingType::AttackSequenceIamCompromisedCredentials,
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            resource: ResourceRef::AccessKey {
                access_key_id: "AKIAEXAMPLE".into(),
                principal_id: "AIDA".into(),
                user_name: "u".into(),
                user_type: "IAMUser".into(),
            },
            role: ResourceRole::Actor,
            activity: Activity::ApiCall(ApiCallActivity {
                api: "DeleteBucket".into(),
                service_name: String::new(),
                caller_ip: None,
            }),
            at_ms: 3,
            threat_intel: None,
            severity: None,
            evidence,
        }
    }

    #[test]
    fn a_sequence_lists_each_signal_finding_once_counted_and_marks_suppressed_ones() {
        let evidence = SequenceEvidence {
            principal: "arn:aws:iam::111111111111:user/u".into(),
            window_ms: 1000,
            signals: vec![
                signal(
                    "Discovery:IAMUser/AnomalousBehavior",
                    "discovery",
                    "ListUsers",
                    1,
                    "a",
                    false,
                ),
                signal(
                    "Discovery:IAMUser/AnomalousBehavior",
                    "discovery",
                    "ListRoles",
                    2,
                    "a",
                    false,
                ),
                signal(
                    "Stealth:IAMUser/CloudTrailLoggingDisabled",
                    "persistence_or_evasion",
                    "StopLogging",
                    2,
                    "b",
                    true,
                ),
                signal(
                    "Impact:IAMUser/AnomalousBehavior",
                    "exfiltration_or_impact",
                    "DeleteBucket",
                    3,
                    "c",
                    false,
                ),
            ],
            suppressed_signals: 1,
            user_name: "u".into(),
            user_type: "IAMUser".into(),
        };
        let o = obs(EvidenceDetail::ApiBehaviour(Box::new(
            ApiBehaviourEvidence::Sequence(evidence),
        )));
        let d = detection_of(&o, "f00d", "desc").expect("a sequence has a detection");
        let seq = d.sequence.expect("sequence");
        assert_eq!(seq.uid, "f00d");
        let names: Vec<(&str, u64)> = seq
            .signals
            .iter()
            .map(|s| (s.name.as_str(), s.count))
            .collect();
        assert_eq!(
            names,
            [
                ("Discovery:IAMUser/AnomalousBehavior", 2),
                ("Stealth:IAMUser/CloudTrailLoggingDisabled", 1),
                ("Impact:IAMUser/AnomalousBehavior", 1)
            ]
        );
        let first = &seq.signals[0];
        assert_eq!(
            (first.first_seen_at, first.last_seen_at),
            (Timestamp(1), Timestamp(2))
        );
        assert_eq!(
            first.signal_indicators[1].values,
            ["ListUsers", "ListRoles"]
        );
        let suppressed: Vec<bool> = seq
            .signals
            .iter()
            .map(|s| {
                s.description
                    .as_deref()
                    .is_some_and(|d| d.contains("suppression rule"))
            })
            .collect();
        assert_eq!(suppressed, [false, true, false]);
        assert_eq!(seq.resources.len(), 1);
        assert_eq!(seq.endpoints[0].ip.as_deref(), Some("198.51.100.9"));
        let user = seq.actors[0].user.as_ref().expect("user");
        assert_eq!(
            user.account.as_ref().map(|a| a.uid.as_str()),
            Some("111111111111")
        );
        assert_eq!(
            seq.sequence_indicators[0].values,
            ["Discovery", "Stealth", "Impact"]
        );
    }

    #[test]
    fn findings_that_are_not_sequences_have_no_detection() {
        assert!(detection_of(&obs(EvidenceDetail::Sample), "x", "d").is_none());
    }
}
