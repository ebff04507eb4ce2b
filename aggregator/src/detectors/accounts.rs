//! `[accounts]`: the administrator account and the member accounts Picket serves, so
//! detectors can tell an outside account from an affiliated one and correlation can look
//! across members.

use serde::Deserialize;

/// The accounts Picket serves.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// The administrator (delegated admin) account id, if any.
    #[serde(default)]
    pub administrator: Option<String>,
    /// Member account ids.
    #[serde(default)]
    pub members: Vec<String>,
}

impl AccountsConfig {
    /// Whether `account` is the administrator or a member.
    pub fn serves(&self, account: &str) -> bool {
        self.administrator.as_deref() == Some(account) || self.members.iter().any(|m| m == account)
    }

    /// Whether `account` is a member (the administrator is not).
    pub fn is_member(&self, account: &str) -> bool {
        self.members.iter().any(|m| m == account)
    }

    /// Pushes every malformed id onto `problems`, naming its key.
    pub fn check(&self, problems: &mut Vec<String>) {
        let ok = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
        if let Some(a) = &self.administrator
            && !ok(a)
        {
            problems.push(format!(
                "accounts.administrator must be a 12-digit account id, got {a:?}"
            ));
        }
        for (i, m) in self.members.iter().enumerate() {
            if !ok(m) {
                problems.push(format!(
                    "accounts.members[{i}] must be a 12-digit account id, got {m:?}"
                ));
            }
        }
    }
}
