//! `[detectors.iam_persistence]`.

use std::num::NonZeroUsize;

use serde::Deserialize;

/// Settings of the IAM persistence and privilege escalation checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamPersistenceConfig {
    /// A user given full access within this many seconds of its creation is a "new user with
    /// full access".
    #[serde(default = "default_new_user_window_secs")]
    pub new_user_window_secs: u64,
    /// Recently created users and administrative groups remembered (each table).
    #[serde(default = "default_max_tracked")]
    pub max_tracked: NonZeroUsize,
    /// Managed policies that count as full access, by name (the ARN's last segment).
    #[serde(default = "default_admin_policies")]
    pub admin_policies: Vec<String>,
}

fn default_new_user_window_secs() -> u64 {
    24 * 3600
}
fn default_max_tracked() -> NonZeroUsize {
    NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN)
}
fn default_admin_policies() -> Vec<String> {
    vec!["AdministratorAccess".to_owned()]
}

impl Default for IamPersistenceConfig {
    fn default() -> Self {
        Self {
            new_user_window_secs: default_new_user_window_secs(),
            max_tracked: default_max_tracked(),
            admin_policies: default_admin_policies(),
        }
    }
}

impl IamPersistenceConfig {
    /// Pushes every out-of-range value onto `problems`, naming its key.
    pub fn check(&self, problems: &mut Vec<String>) {
        if self.new_user_window_secs == 0 {
            problems.push(
                "detectors.iam_persistence.new_user_window_secs must be at least 1, got 0"
                    .to_owned(),
            );
        }
    }
}
