//! Settings of the correlation stage, read from `[detectors.instance_credentials]`,
//! `[detectors.cross_account]` and `[detectors.attack_sequence]`.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Deserialize;

/// `[detectors.instance_credentials]`: instance role sessions used from elsewhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceCredentialsConfig {
    /// AWS's published `ip-ranges.json`, to tell InsideAWS from OutsideAWS. Without it every
    /// foreign caller is OutsideAWS unless it is another agent's address.
    #[serde(default)]
    pub aws_ip_ranges: Option<PathBuf>,
    /// Instances whose addresses are remembered; the least recently reported are evicted.
    #[serde(default = "default_max_instances")]
    pub max_instances: NonZeroUsize,
    /// Addresses kept per instance (the most recent).
    #[serde(default = "default_max_addresses")]
    pub max_addresses_per_instance: NonZeroUsize,
}

fn default_max_instances() -> NonZeroUsize {
    NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_addresses() -> NonZeroUsize {
    NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN)
}

impl Default for InstanceCredentialsConfig {
    fn default() -> Self {
        Self {
            aws_ip_ranges: None,
            max_instances: default_max_instances(),
            max_addresses_per_instance: default_max_addresses(),
        }
    }
}

impl InstanceCredentialsConfig {
    /// Pushes a problem when the ranges file cannot be read or parsed, naming the key.
    pub fn check(&self, problems: &mut Vec<String>) {
        if let Some(path) = &self.aws_ip_ranges
            && let Err(e) = super::aws_ranges::AwsRanges::load(path)
        {
            problems.push(format!("detectors.instance_credentials.aws_ip_ranges: {e}"));
        }
    }
}

/// `[detectors.cross_account]`: one actor active against several member accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossAccountConfig {
    /// Distinct member accounts within the window that raise the finding.
    #[serde(default = "default_min_accounts")]
    pub min_accounts: u32,
    /// The window, in seconds.
    #[serde(default = "default_cross_window_secs")]
    pub window_secs: u64,
    /// Actors (addresses, keys, principals) tracked; the least recently active are evicted.
    #[serde(default = "default_max_actors")]
    pub max_actors: NonZeroUsize,
}

fn default_min_accounts() -> u32 {
    3
}
fn default_cross_window_secs() -> u64 {
    3600
}
fn default_max_actors() -> NonZeroUsize {
    NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN)
}

impl Default for CrossAccountConfig {
    fn default() -> Self {
        Self {
            min_accounts: default_min_accounts(),
            window_secs: default_cross_window_secs(),
            max_actors: default_max_actors(),
        }
    }
}

impl CrossAccountConfig {
    /// Pushes every out-of-range value onto `problems`, naming its key.
    pub fn check(&self, problems: &mut Vec<String>) {
        if self.min_accounts < 2 {
            problems.push(format!(
                "detectors.cross_account.min_accounts must be at least 2, got {}",
                self.min_accounts
            ));
        }
        if self.window_secs == 0 {
            problems.push("detectors.cross_account.window_secs must be at least 1, got 0".into());
        }
    }
}

/// `[detectors.attack_sequence]`: chains of signals by one principal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSequenceConfig {
    /// The window a whole chain must fit in, in seconds.
    #[serde(default = "default_sequence_window_secs")]
    pub window_secs: u64,
    /// Principals with signals tracked; the least recently signalled are evicted.
    #[serde(default = "default_max_principals")]
    pub max_principals: NonZeroUsize,
    /// Signals kept per principal (the most recent).
    #[serde(default = "default_max_signals")]
    pub max_signals_per_principal: NonZeroUsize,
}

fn default_sequence_window_secs() -> u64 {
    24 * 3600
}
fn default_max_principals() -> NonZeroUsize {
    NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_signals() -> NonZeroUsize {
    NonZeroUsize::new(32).unwrap_or(NonZeroUsize::MIN)
}

impl Default for AttackSequenceConfig {
    fn default() -> Self {
        Self {
            window_secs: default_sequence_window_secs(),
            max_principals: default_max_principals(),
            max_signals_per_principal: default_max_signals(),
        }
    }
}

impl AttackSequenceConfig {
    /// Pushes every out-of-range value onto `problems`, naming its key.
    pub fn check(&self, problems: &mut Vec<String>) {
        if self.window_secs == 0 {
            problems.push("detectors.attack_sequence.window_secs must be at least 1, got 0".into());
        }
        if self.max_signals_per_principal.get() < 3 {
            problems.push(format!(
                "detectors.attack_sequence.max_signals_per_principal must be at least 3, got {}",
                self.max_signals_per_principal
            ));
        }
    }
}
