//! `Discovery:IAMUser/MultiAccountActivity` (Picket's own type): the same actor — source
//! address, access key or principal — making calls against at least `min_accounts` member
//! accounts within `window_secs`. One finding names every account; it belongs to the
//! administrator account when one is configured.
//!
//! Bounded: at most `max_actors` actors, each with at most [`MAX_ACCOUNTS_PER_ACTOR`]
//! accounts; the least recently active actor is evicted first (counted).
//!
//! When more accounts join after the finding was raised, it is raised again on the same
//! finding (same home account and activity as the first raise in the window), and the engine
//! and store take the newer evidence, so the stored finding names every account.

use std::collections::HashMap;

use crate::cloudtrail::{ApiEvent, CallerAddress};
use crate::detectors::accounts::AccountsConfig;
use crate::detectors::api_call::api_activity;
use crate::detectors::api_evidence::{ApiBehaviourEvidence, ApiCallRef, MultiAccountEvidence};
use crate::detectors::{Activity, EvidenceDetail, Observation, ResourceRef, ResourceRole};
use crate::findings::types::FindingType;

use super::config::CrossAccountConfig;

/// Accounts remembered per actor (more than any sane `min_accounts`).
pub const MAX_ACCOUNTS_PER_ACTOR: usize = 64;

#[derive(Debug)]
struct Actor {
    /// (account, last call) per account, most recent last.
    accounts: Vec<(String, ApiCallRef)>,
    last_ms: i64,
    /// Accounts named when last raised (0: not raised in this window).
    raised_with: usize,
    /// Home account and activity of the first raise in this window: later raises reuse them
    /// so they land on the same finding (its key holds both) and update its evidence.
    anchor: Option<(String, Activity)>,
}

/// The cross-account correlation.
#[derive(Debug)]
pub struct CrossAccount {
    config: CrossAccountConfig,
    actors: HashMap<(&'static str, String), Actor>,
    /// Actors evicted to stay within the cap.
    pub evicted: u64,
    /// Findings raised.
    pub findings: u64,
}

impl CrossAccount {
    /// Nothing tracked yet.
    pub fn new(config: CrossAccountConfig) -> Self {
        Self {
            config,
            actors: HashMap::new(),
            evicted: 0,
            findings: 0,
        }
    }

    /// Actors tracked.
    pub fn len(&self) -> usize {
        self.actors.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.actors.is_empty()
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.config.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Counts `e` for each of its actors when its account is a member.
    pub fn observe(&mut self, e: &ApiEvent, accounts: &AccountsConfig, out: &mut Vec<Observation>) {
        let account = e.account_id();
        if !accounts.is_member(account) {
            return;
        }
        let mut actors: Vec<(&'static str, String)> = Vec::with_capacity(3);
        if let CallerAddress::Ip(ip) = &e.source {
            actors.push(("address", ip.to_string()));
        }
        if !e.principal.access_key_id.is_empty() {
            actors.push(("access_key", e.principal.access_key_id.clone()));
        }
        if !e.principal.arn.is_empty() {
            actors.push(("principal", e.principal.arn.clone()));
        }
        for key in actors {
            self.count(key, e, accounts, out);
        }
    }

    fn count(
        &mut self,
        key: (&'static str, String),
        e: &ApiEvent,
        accounts: &AccountsConfig,
        out: &mut Vec<Observation>,
    ) {
        let window = self.window_ms();
        if !self.actors.contains_key(&key) && self.actors.len() >= self.config.max_actors.get() {
            if let Some(oldest) = self
                .actors
                .iter()
                .min_by_key(|(_, a)| a.last_ms)
                .map(|(k, _)| k.clone())
            {
                self.actors.remove(&oldest);
                self.evicted += 1;
            }
        }
        let actor = self.actors.entry(key.clone()).or_insert_with(|| Actor {
            accounts: Vec::new(),
            last_ms: e.time_ms,
            raised_with: 0,
            anchor: None,
        });
        actor.last_ms = actor.last_ms.max(e.time_ms);
        let now = actor.last_ms;
        actor
            .accounts
            .retain(|(_, c)| now.saturating_sub(c.at_ms) <= window);
        if actor.accounts.is_empty() {
            actor.raised_with = 0;
            actor.anchor = None;
        }
        let account = e.account_id();
        actor.accounts.retain(|(a, _)| a != account);
        actor.accounts.push((account.to_owned(), ApiCallRef::of(e)));
        if actor.accounts.len() > MAX_ACCOUNTS_PER_ACTOR {
            actor.accounts.remove(0);
        }
        let n = actor.accounts.len();
        if n < self.config.min_accounts as usize || n <= actor.raised_with {
            return;
        }
        actor.raised_with = n;
        let mut names: Vec<String> = actor.accounts.iter().map(|(a, _)| a.clone()).collect();
        names.sort();
        let calls = actor.accounts.iter().map(|(_, c)| c.clone()).collect();
        self.findings += 1;
        let (home, activity) = actor
            .anchor
            .get_or_insert_with(|| {
                let home = accounts
                    .administrator
                    .clone()
                    .unwrap_or_else(|| names.first().cloned().unwrap_or_default());
                (home, api_activity(e))
            })
            .clone();
        out.push(Observation {
            finding_type: FindingType::DiscoveryMultiAccountActivity,
            account_id: home,
            region: e.region.clone(),
            resource: ResourceRef::AccessKey {
                access_key_id: key.1.clone(),
                principal_id: e.principal.principal_id.clone(),
                user_name: e.principal.user_name.clone(),
                user_type: e.principal.kind.clone(),
            },
            role: ResourceRole::Actor,
            activity,
            at_ms: e.time_ms,
            threat_intel: None,
            severity: None,
            evidence: EvidenceDetail::ApiBehaviour(Box::new(ApiBehaviourEvidence::MultiAccount(
                MultiAccountEvidence {
                    actor_kind: key.0.to_owned(),
                    actor: key.1,
                    accounts: names,
                    min_accounts: self.config.min_accounts,
                    window_ms: window,
                    calls,
                },
            ))),
        });
    }

    /// Forgets actors idle longer than the window.
    pub fn expire(&mut self, now_ms: i64) {
        let window = self.window_ms();
        self.actors
            .retain(|_, a| now_ms.saturating_sub(a.last_ms) <= window);
    }
}
