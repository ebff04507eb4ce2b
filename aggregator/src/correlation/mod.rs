//! Correlation: the stage between the detectors and the finding engine that joins what no
//! single detector sees — CloudTrail with agent reports, one account with another, and one
//! detector's observations with another's.
//!
//! - [`config`] — `[detectors.instance_credentials]`, `[detectors.cross_account]`,
//!   `[detectors.attack_sequence]`.
//! - [`aws_ranges`] — AWS's published address ranges.
//! - [`instances`] — instance ↔ address from agents' `HostStats`.
//! - [`credential_exfiltration`] — instance role sessions used from elsewhere.
//! - [`cross_account`] — one actor across member accounts.
//! - [`attack_sequence`] — chains of signals by one principal.
//!
//! [`Correlator`] holds them all; the pipeline gives it every event and every observation
//! (with whether suppression archived it) and sends what it returns to the engine.

pub mod attack_sequence;
pub mod aws_ranges;
pub mod config;
pub mod credential_exfiltration;
pub mod cross_account;
pub mod instances;

use std::sync::Arc;

pub use config::{AttackSequenceConfig, CrossAccountConfig, InstanceCredentialsConfig};

use crate::cloudtrail::ApiEvent;
use crate::detectors::accounts::AccountsConfig;
use crate::detectors::{DetectorCounter, DetectorsConfig, Event, Observation, ResourceRef};

use attack_sequence::AttackSequences;
use aws_ranges::AwsRanges;
use credential_exfiltration::CredentialStats;
use cross_account::CrossAccount;
use instances::InstanceAddresses;

/// The correlation stage's state.
#[derive(Debug)]
pub struct Correlator {
    accounts: AccountsConfig,
    ranges: Option<Arc<AwsRanges>>,
    instances: InstanceAddresses,
    credentials: CredentialStats,
    cross_account: CrossAccount,
    sequences: AttackSequences,
}

impl Correlator {
    /// A correlator configured by `config`, with AWS's ranges when given (loaded by the
    /// caller; see [`Self::load_ranges`]).
    pub fn new(config: &DetectorsConfig, ranges: Option<Arc<AwsRanges>>) -> Self {
        let ic = &config.instance_credentials;
        Self {
            accounts: config.accounts.clone(),
            ranges,
            instances: InstanceAddresses::new(
                ic.max_instances.get(),
                ic.max_addresses_per_instance.get(),
            ),
            credentials: CredentialStats::default(),
            cross_account: CrossAccount::new(config.cross_account.clone()),
            sequences: AttackSequences::new(config.attack_sequence.clone()),
        }
    }

    /// Loads the ranges file `config` names, logging (not failing) when it cannot: config
    /// validation already refused a bad file at startup, so this only happens if it changed
    /// since.
    pub fn load_ranges(config: &DetectorsConfig) -> Option<Arc<AwsRanges>> {
        let path = config.instance_credentials.aws_ip_ranges.as_ref()?;
        match AwsRanges::load(path) {
            Ok(r) => {
                if !r.skipped().is_empty() {
                    tracing::warn!(
                        file = %path.display(),
                        skipped = r.skipped().len(),
                        first = %r.skipped().first().map_or("", String::as_str),
                        "AWS ip-ranges entries skipped"
                    );
                }
                Some(Arc::new(r))
            }
            Err(e) => {
                tracing::error!(error = %e, "AWS ip-ranges not loaded; every foreign caller counts as outside AWS");
                None
            }
        }
    }

    /// Joins one event: remembers agents' addresses, judges instance role sessions and
    /// counts actors across accounts.
    pub fn observe_event(&mut self, event: &Event, out: &mut Vec<Observation>) {
        match event {
            Event::Agent { source, record } => {
                if let Some(picket_proto::v1::record::Record::HostStats(h)) = &record.record {
                    self.instances.report(
                        &source.account_id,
                        &source.instance_id,
                        h,
                        h.interval_end_ms,
                    );
                }
            }
            Event::Api(e) => {
                credential_exfiltration::check(
                    e,
                    &self.instances,
                    self.ranges.as_deref(),
                    &self.accounts,
                    &mut self.credentials,
                    out,
                );
                self.cross_account.observe(e, &self.accounts, out);
            }
        }
    }

    /// Counts a detector's observation as a signal. `cause` is the API event it was observed
    /// on, when there was one (it names the principal even for S3 findings, whose resource
    /// is a bucket).
    pub fn observe_signal(
        &mut self,
        obs: &Observation,
        suppressed: bool,
        cause: Option<&ApiEvent>,
        out: &mut Vec<Observation>,
    ) {
        let principal = match (cause, &obs.resource) {
            (Some(e), _) => e.principal.key(),
            (
                None,
                ResourceRef::AccessKey {
                    principal_id,
                    access_key_id,
                    ..
                },
            ) => {
                if principal_id.is_empty() {
                    access_key_id.as_str()
                } else {
                    principal_id.as_str()
                }
            }
            _ => return,
        };
        self.sequences.signal(principal, obs, suppressed, out);
    }

    /// Forgets state older than its windows.
    pub fn on_tick(&mut self, now_ms: i64) {
        self.cross_account.expire(now_ms);
        self.sequences.expire(now_ms);
    }

    /// The stage's counters.
    pub fn counters(&self) -> Vec<DetectorCounter> {
        let c = |name, count| DetectorCounter { name, count };
        vec![
            c("instance_calls_judged", self.credentials.judged),
            c(
                "instance_calls_unknown_instance",
                self.credentials.unknown_instance,
            ),
            c("instance_credential_findings", self.credentials.findings),
            c("instances_evicted", self.instances.evicted),
            c("instance_addresses_malformed", self.instances.bad_addresses),
            c("cross_account_findings", self.cross_account.findings),
            c("cross_account_actors_evicted", self.cross_account.evicted),
            c("sequence_signals", self.sequences.signals),
            c(
                "sequence_signals_suppressed",
                self.sequences.suppressed_signals,
            ),
            c("sequence_findings", self.sequences.findings),
            c("sequence_principals_evicted", self.sequences.evicted),
        ]
    }
}

#[cfg(test)]
mod tests;
