//! `AttackSequence:IAM/CompromisedCredentials` and `AttackSequence:S3/CompromisedData`: one
//! principal's signals forming discovery → persistence or defence evasion → exfiltration or
//! impact within `window_secs`.
//!
//! Signals are observations from any detector, taken before suppression: a finding a rule
//! archived still counts here, and the sequence's evidence marks it `suppressed`. Each
//! signal's stage comes from its type's tactic prefix (`Discovery:`/`Recon:` →
//! discovery, `Persistence:`/`PrivilegeEscalation:`/`DefenseEvasion:`/`Stealth:` →
//! persistence or evasion, `Exfiltration:`/`Impact:` → exfiltration or impact); other
//! signals are kept as context. A principal raises at most one sequence per window.
//!
//! Bounded: at most `max_principals` principals with at most `max_signals_per_principal`
//! signals each (oldest dropped); the least recently signalled principal is evicted first.

use std::collections::{HashMap, VecDeque};

use crate::detectors::api_evidence::{ApiBehaviourEvidence, SequenceEvidence, SequenceSignal};
use crate::detectors::{
    Activity, ApiCallActivity, EvidenceDetail, Observation, ResourceRef, ResourceRole,
};
use crate::findings::engine::FindingId;
use crate::findings::types::{FindingType, ResourceKind};

use super::config::AttackSequenceConfig;

/// Where a signal sits in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Learning what is there.
    Discovery,
    /// Keeping access or hiding.
    PersistenceOrEvasion,
    /// Taking or destroying data.
    ExfiltrationOrImpact,
    /// Anything else (credential access, unusual callers, policy).
    Context,
}

impl Stage {
    /// The stage of a finding type, from its tactic prefix.
    pub fn of(t: FindingType) -> Self {
        let tactic = t.name().split(':').next().unwrap_or("");
        match tactic {
            "Discovery" | "Recon" => Self::Discovery,
            "Persistence" | "PrivilegeEscalation" | "DefenseEvasion" | "Stealth" => {
                Self::PersistenceOrEvasion
            }
            "Exfiltration" | "Impact" => Self::ExfiltrationOrImpact,
            _ => Self::Context,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::PersistenceOrEvasion => "persistence_or_evasion",
            Self::ExfiltrationOrImpact => "exfiltration_or_impact",
            Self::Context => "context",
        }
    }
}

#[derive(Debug, Clone)]
struct Signal {
    stage: Stage,
    finding_type: FindingType,
    api: String,
    account_id: String,
    region: String,
    at_ms: i64,
    suppressed: bool,
    resource: ResourceRef,
    /// The signal's finding id, so the sequence can point at it.
    finding_id: String,
    caller: String,
}

#[derive(Debug, Default)]
struct Trail {
    signals: VecDeque<Signal>,
    last_ms: i64,
    raised_at: Option<i64>,
}

/// The attack-sequence correlation.
#[derive(Debug)]
pub struct AttackSequences {
    config: AttackSequenceConfig,
    trails: HashMap<String, Trail>,
    /// Principals evicted to stay within the cap.
    pub evicted: u64,
    /// Sequences raised.
    pub findings: u64,
    /// Signals counted (suppressed ones included).
    pub signals: u64,
    /// Of those, suppressed.
    pub suppressed_signals: u64,
}

impl AttackSequences {
    /// Nothing tracked yet.
    pub fn new(config: AttackSequenceConfig) -> Self {
        Self {
            config,
            trails: HashMap::new(),
            evicted: 0,
            findings: 0,
            signals: 0,
            suppressed_signals: 0,
        }
    }

    /// Principals tracked.
    pub fn len(&self) -> usize {
        self.trails.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.trails.is_empty()
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.config.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Counts `obs` (whose finding a suppression rule archived when `suppressed`) as a signal
    /// of `principal`, and pushes a sequence when it completes a chain.
    pub fn signal(
        &mut self,
        principal: &str,
        obs: &Observation,
        suppressed: bool,
        out: &mut Vec<Observation>,
    ) {
        if principal.is_empty()
            || matches!(
                obs.finding_type,
                FindingType::AttackSequenceIamCompromisedCredentials
                    | FindingType::AttackSequenceS3CompromisedData
            )
        {
            return;
        }
        self.signals += 1;
        self.suppressed_signals += u64::from(suppressed);
        let window = self.window_ms();
        if !self.trails.contains_key(principal)
            && self.trails.len() >= self.config.max_principals.get()
            && let Some(oldest) = self
                .trails
                .iter()
                .min_by_key(|(_, t)| t.last_ms)
                .map(|(k, _)| k.clone())
        {
            self.trails.remove(&oldest);
            self.evicted += 1;
        }
        let trail = self.trails.entry(principal.to_owned()).or_default();
        let (api, caller) = match &obs.activity {
            Activity::ApiCall(a) => (a.api.clone(), a.caller_ip.clone().unwrap_or_default()),
            _ => (String::new(), String::new()),
        };
        let signal = Signal {
            stage: Stage::of(obs.finding_type),
            finding_type: obs.finding_type,
            api,
            account_id: obs.account_id.clone(),
            region: obs.region.clone(),
            at_ms: obs.at_ms,
            suppressed,
            resource: obs.resource.clone(),
            finding_id: FindingId::of(obs).to_hex(),
            caller,
        };
        // Keep the trail in time order even when input arrives slightly out of order.
        let pos = trail.signals.partition_point(|s| s.at_ms <= signal.at_ms);
        trail.signals.insert(pos, signal);
        trail.last_ms = trail.last_ms.max(obs.at_ms);
        let newest = trail.last_ms;
        trail
            .signals
            .retain(|s| newest.saturating_sub(s.at_ms) <= window);
        while trail.signals.len() > self.config.max_signals_per_principal.get() {
            trail.signals.pop_front();
        }
        if trail
            .raised_at
            .is_some_and(|at| newest.saturating_sub(at) <= window)
        {
            return;
        }
        let Some(last) = chain_end(&trail.signals) else {
            return;
        };
        trail.raised_at = Some(newest);
        self.findings += 1;
        out.push(sequence(principal, trail, last, window));
    }

    /// Forgets principals whose signals are all older than the window.
    pub fn expire(&mut self, now_ms: i64) {
        let window = self.window_ms();
        self.trails
            .retain(|_, t| now_ms.saturating_sub(t.last_ms) <= window);
    }
}

/// The index of the exfiltration-or-impact signal that completes a chain, if one does.
fn chain_end(signals: &VecDeque<Signal>) -> Option<usize> {
    let discovery = signals.iter().position(|s| s.stage == Stage::Discovery)?;
    let persistence = signals
        .iter()
        .enumerate()
        .skip(discovery + 1)
        .find(|(_, s)| s.stage == Stage::PersistenceOrEvasion)
        .map(|(i, _)| i)?;
    signals
        .iter()
        .enumerate()
        .skip(persistence + 1)
        .find(|(_, s)| s.stage == Stage::ExfiltrationOrImpact)
        .map(|(i, _)| i)
}

/// GuardDuty's `FindingResourceType` name of a resource.
fn resource_type(r: &ResourceRef) -> &'static str {
    match r {
        ResourceRef::Instance { .. } => "EC2_INSTANCE",
        ResourceRef::AccessKey { .. } => "ACCESS_KEY",
        ResourceRef::S3Bucket { .. } => "S3_BUCKET",
    }
}

fn sequence(principal: &str, trail: &Trail, last: usize, window: i64) -> Observation {
    let end = trail.signals.get(last);
    let on_s3 = end.is_some_and(|s| s.finding_type.resource_kind() == ResourceKind::S3Bucket);
    let bucket = trail.signals.iter().rev().find_map(|s| match &s.resource {
        ResourceRef::S3Bucket { name } => Some(s.resource.clone()).filter(|_| !name.is_empty()),
        _ => None,
    });
    let key = trail
        .signals
        .iter()
        .rev()
        .find(|s| matches!(s.resource, ResourceRef::AccessKey { .. }))
        .map(|s| s.resource.clone());
    let (finding_type, resource) = match (on_s3, bucket) {
        (true, Some(b)) => (FindingType::AttackSequenceS3CompromisedData, b),
        _ => (
            FindingType::AttackSequenceIamCompromisedCredentials,
            key.unwrap_or_else(|| ResourceRef::AccessKey {
                access_key_id: principal.to_owned(),
                principal_id: String::new(),
                user_name: String::new(),
                user_type: String::new(),
            }),
        ),
    };
    let signals: Vec<SequenceSignal> = trail
        .signals
        .iter()
        .map(|s| SequenceSignal {
            finding_type: s.finding_type.name().to_owned(),
            stage: s.stage.as_str().to_owned(),
            api: s.api.clone(),
            account_id: s.account_id.clone(),
            region: s.region.clone(),
            at_ms: s.at_ms,
            suppressed: s.suppressed,
            finding_id: s.finding_id.clone(),
            resource: s.resource.id().to_owned(),
            resource_type: resource_type(&s.resource).to_owned(),
            caller: s.caller.clone(),
        })
        .collect();
    let (user_name, user_type) = trail
        .signals
        .iter()
        .rev()
        .find_map(|s| match &s.resource {
            ResourceRef::AccessKey {
                user_name,
                user_type,
                ..
            } if !(user_name.is_empty() && user_type.is_empty()) => {
                Some((user_name.clone(), user_type.clone()))
            }
            _ => None,
        })
        .unwrap_or_default();
    let suppressed_signals = signals.iter().filter(|s| s.suppressed).count() as u32;
    let (account_id, region, at_ms) = end.map_or((String::new(), String::new(), 0), |s| {
        (s.account_id.clone(), s.region.clone(), s.at_ms)
    });
    Observation {
        finding_type,
        account_id,
        region,
        resource,
        role: ResourceRole::Actor,
        // The principal stands in for the caller so repeats of the same principal's sequence
        // aggregate into one finding.
        activity: Activity::ApiCall(ApiCallActivity {
            api: end.map(|s| s.api.clone()).unwrap_or_default(),
            service_name: String::new(),
            caller_ip: Some(principal.to_owned()),
        }),
        at_ms,
        threat_intel: None,
        severity: None,
        evidence: EvidenceDetail::ApiBehaviour(Box::new(ApiBehaviourEvidence::Sequence(
            SequenceEvidence {
                principal: principal.to_owned(),
                window_ms: window,
                signals,
                suppressed_signals,
                user_name,
                user_type,
            },
        ))),
    }
}
