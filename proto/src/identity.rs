//! Agent identity: which account and instance an agent speaks for.
//!
//! The same identity appears twice on every session: in the agent certificate's URI SAN
//! (`spiffe://picket/account/<12-digit account>/instance/<instance id>`) and in the `Hello` frame.
//! The aggregator refuses a session where the two differ, so both sides parse it here, once.

use std::fmt;

/// Prefix of every Picket SPIFFE ID.
const SPIFFE_PREFIX: &str = "spiffe://picket/";

/// Longest instance id accepted. EC2 ids are 19 characters (`i-` + 17 hex); SSM managed
/// instances (`mi-…`) are 20; the slack allows on-premises names without allowing abuse.
const MAX_INSTANCE_ID_LEN: usize = 64;

/// Why an account id, instance id or SPIFFE URI was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Occurs when an account id is not exactly 12 ASCII digits.
    #[error("account id must be 12 digits, got {0:?}")]
    BadAccountId(String),
    /// Occurs when an instance id is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("instance id must be 1-{MAX_INSTANCE_ID_LEN} characters of [A-Za-z0-9._-], got {0:?}")]
    BadInstanceId(String),
    /// Occurs when a URI is not of the form `spiffe://picket/account/<a>/instance/<i>`.
    #[error("not a Picket agent SPIFFE ID: {0:?}")]
    NotAgentSpiffeId(String),
}

/// The identity an agent speaks for: one instance in one AWS account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId {
    account_id: String,
    instance_id: String,
}

impl AgentId {
    /// Builds an identity after checking both parts.
    ///
    /// # Errors
    /// [`IdentityError::BadAccountId`] or [`IdentityError::BadInstanceId`].
    pub fn new(account_id: &str, instance_id: &str) -> Result<Self, IdentityError> {
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::BadAccountId(account_id.to_owned()));
        }
        let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if instance_id.is_empty()
            || instance_id.len() > MAX_INSTANCE_ID_LEN
            || !instance_id.bytes().all(ok_char)
        {
            return Err(IdentityError::BadInstanceId(instance_id.to_owned()));
        }
        Ok(Self {
            account_id: account_id.to_owned(),
            instance_id: instance_id.to_owned(),
        })
    }

    /// Parses `spiffe://picket/account/<account>/instance/<instance>`.
    ///
    /// # Errors
    /// [`IdentityError::NotAgentSpiffeId`] when the shape is wrong, else the errors of [`AgentId::new`].
    pub fn from_spiffe_uri(uri: &str) -> Result<Self, IdentityError> {
        let not_ours = || IdentityError::NotAgentSpiffeId(uri.to_owned());
        let rest = uri.strip_prefix(SPIFFE_PREFIX).ok_or_else(not_ours)?;
        let mut parts = rest.split('/');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("account"), Some(account), Some("instance"), Some(instance), None) => {
                Self::new(account, instance)
            }
            _ => Err(not_ours()),
        }
    }

    /// The SPIFFE ID that goes into the agent certificate's URI SAN.
    pub fn spiffe_uri(&self) -> String {
        format!(
            "{SPIFFE_PREFIX}account/{}/instance/{}",
            self.account_id, self.instance_id
        )
    }

    /// The 12-digit AWS account id.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The instance id (EC2 `i-…`, SSM `mi-…`, or a configured name).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// A stable byte key for stores: `account/instance`, which sorts by account first.
    pub fn store_key(&self) -> Vec<u8> {
        format!("{}/{}", self.account_id, self.instance_id).into_bytes()
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account_id, self.instance_id)
    }
}

/// Longest member user name accepted (the administrator names' limit).
const MAX_USER_NAME_LEN: usize = 64;

/// Why a member user identity was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemberUserError {
    /// Occurs when the account id is not exactly 12 ASCII digits.
    #[error("account id must be 12 digits, got {0:?}")]
    BadAccountId(String),
    /// Occurs when a user name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("user name must be 1-{MAX_USER_NAME_LEN} characters of [A-Za-z0-9._-], got {0:?}")]
    BadName(String),
    /// Occurs when a URI is not of the form `spiffe://picket/account/<a>/user/<name>`.
    #[error("not a Picket member user SPIFFE ID: {0:?}")]
    NotMemberUserSpiffeId(String),
}

/// A person (or tool) of one member account, allowed to query that account's findings only.
/// Its certificate's URI SAN is `spiffe://picket/account/<12-digit account>/user/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberUserId {
    account_id: String,
    name: String,
}

impl MemberUserId {
    /// Builds a member user identity after checking both parts.
    ///
    /// # Errors
    /// [`MemberUserError::BadAccountId`] or [`MemberUserError::BadName`].
    pub fn new(account_id: &str, name: &str) -> Result<Self, MemberUserError> {
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MemberUserError::BadAccountId(account_id.to_owned()));
        }
        let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if name.is_empty() || name.len() > MAX_USER_NAME_LEN || !name.bytes().all(ok_char) {
            return Err(MemberUserError::BadName(name.to_owned()));
        }
        Ok(Self {
            account_id: account_id.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Parses `spiffe://picket/account/<account>/user/<name>`.
    ///
    /// # Errors
    /// [`MemberUserError::NotMemberUserSpiffeId`] when the shape is wrong, else the errors of
    /// [`MemberUserId::new`].
    pub fn from_spiffe_uri(uri: &str) -> Result<Self, MemberUserError> {
        let not_ours = || MemberUserError::NotMemberUserSpiffeId(uri.to_owned());
        let rest = uri.strip_prefix(SPIFFE_PREFIX).ok_or_else(not_ours)?;
        let mut parts = rest.split('/');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("account"), Some(account), Some("user"), Some(name), None) => {
                Self::new(account, name)
            }
            _ => Err(not_ours()),
        }
    }

    /// The SPIFFE ID that goes into the user certificate's URI SAN.
    pub fn spiffe_uri(&self) -> String {
        format!(
            "{SPIFFE_PREFIX}account/{}/user/{}",
            self.account_id, self.name
        )
    }

    /// The 12-digit account whose findings this user may see.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for MemberUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/user/{}", self.account_id, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_uri_round_trips() {
        let id = AgentId::new("123456789012", "i-0abc123def4567890").unwrap();
        let uri = id.spiffe_uri();
        assert_eq!(
            uri,
            "spiffe://picket/account/123456789012/instance/i-0abc123def4567890"
        );
        assert_eq!(AgentId::from_spiffe_uri(&uri).unwrap(), id);
    }

    #[test]
    fn account_ids_that_are_not_twelve_digits_are_rejected() {
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "١٢٣٤٥٦٧٨٩٠١٢",
        ] {
            assert!(
                matches!(
                    AgentId::new(bad, "i-1"),
                    Err(IdentityError::BadAccountId(_))
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn instance_ids_with_path_characters_are_rejected() {
        for bad in ["", "i-1/x", "i 1", &"i".repeat(65), "i-1\n"] {
            assert!(
                matches!(
                    AgentId::new("123456789012", bad),
                    Err(IdentityError::BadInstanceId(_))
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn other_spiffe_ids_are_not_agent_ids() {
        for bad in [
            "spiffe://other/account/123456789012/instance/i-1",
            "spiffe://picket/admin/alice",
            "spiffe://picket/account/123456789012/instance/i-1/extra",
            "spiffe://picket/account/123456789012",
            "https://picket/account/123456789012/instance/i-1",
        ] {
            assert!(
                matches!(
                    AgentId::from_spiffe_uri(bad),
                    Err(IdentityError::NotAgentSpiffeId(_))
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn member_user_spiffe_uri_round_trips_and_is_not_an_agent() {
        let id = MemberUserId::new("123456789012", "alice").unwrap();
        let uri = id.spiffe_uri();
        assert_eq!(uri, "spiffe://picket/account/123456789012/user/alice");
        assert_eq!(MemberUserId::from_spiffe_uri(&uri).unwrap(), id);
        assert!(AgentId::from_spiffe_uri(&uri).is_err());
        assert!(
            MemberUserId::from_spiffe_uri("spiffe://picket/account/123456789012/instance/i-1")
                .is_err()
        );
        for bad in [
            "spiffe://picket/account/12345678901/user/alice",
            "spiffe://picket/account/123456789012/user/",
            "spiffe://picket/account/123456789012/user/a/b",
            "spiffe://picket/admin/alice",
        ] {
            assert!(
                MemberUserId::from_spiffe_uri(bad).is_err(),
                "{bad} accepted"
            );
        }
    }
}
