//! Who is asking the findings API, read from the verified client certificate, and which
//! accounts' findings that caller may see and change.

use picket_proto::{AgentId, MemberUserId};

use crate::peer::{Peer, PeerError};

/// A findings API caller, proven by a client certificate chained to the Picket CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An administrator (`spiffe://picket/admin/<name>`): every account.
    Admin(String),
    /// A member account's user (`spiffe://picket/account/<account>/user/<name>`): that
    /// account only.
    Member(MemberUserId),
    /// An agent: may not use the findings API at all.
    Agent(AgentId),
}

/// Which findings a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility<'a> {
    /// Every account's.
    All,
    /// One account's.
    Account(&'a str),
}

impl Caller {
    /// Reads the caller from a DER certificate (the verified end-entity certificate).
    ///
    /// # Errors
    /// [`PeerError`] when the certificate does not parse or names no Picket identity.
    pub fn from_der(der: &[u8]) -> Result<Self, PeerError> {
        match Peer::from_der(der) {
            Ok(Peer::Admin(name)) => Ok(Self::Admin(name)),
            Ok(Peer::Agent(id)) => Ok(Self::Agent(id)),
            Err(PeerError::NoPicketIdentity(uris)) => uris
                .iter()
                .find_map(|u| MemberUserId::from_spiffe_uri(u).ok())
                .map(Self::Member)
                .ok_or(PeerError::NoPicketIdentity(uris)),
            Err(e) => Err(e),
        }
    }

    /// What the caller may see; `None` for agents, which may see nothing.
    pub fn visibility(&self) -> Option<Visibility<'_>> {
        match self {
            Self::Admin(_) => Some(Visibility::All),
            Self::Member(user) => Some(Visibility::Account(user.account_id())),
            Self::Agent(_) => None,
        }
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin(name) => write!(f, "admin {name}"),
            Self::Member(user) => write!(f, "member user {user}"),
            Self::Agent(id) => write!(f, "agent {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::*;
    use crate::certs::{LeafKind, init_ca, issue};

    fn der_of(kind: LeafKind) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        init_ca(dir.path()).expect("ca");
        let pair = issue(dir.path(), &kind, &dir.path().join("leaf")).expect("issue");
        CertificateDer::from_pem_file(&pair.cert)
            .expect("pem")
            .to_vec()
    }

    #[test]
    fn a_member_user_certificate_sees_only_its_account() {
        let user = MemberUserId::new("123456789012", "bob").expect("id");
        let caller = Caller::from_der(&der_of(LeafKind::MemberUser(user.clone()))).expect("caller");
        assert_eq!(caller, Caller::Member(user));
        assert_eq!(
            caller.visibility(),
            Some(Visibility::Account("123456789012"))
        );
    }

    #[test]
    fn an_admin_sees_everything_and_an_agent_nothing() {
        let admin = Caller::from_der(&der_of(LeafKind::Admin("ops".into()))).expect("caller");
        assert_eq!(admin.visibility(), Some(Visibility::All));
        let id = AgentId::new("123456789012", "i-1").expect("id");
        let agent = Caller::from_der(&der_of(LeafKind::Agent(id))).expect("caller");
        assert_eq!(agent.visibility(), None);
    }

    #[test]
    fn a_member_user_certificate_is_no_peer_of_ingest_or_admin() {
        let user = MemberUserId::new("123456789012", "bob").expect("id");
        assert!(matches!(
            Peer::from_der(&der_of(LeafKind::MemberUser(user))),
            Err(PeerError::NoPicketIdentity(_))
        ));
    }

    #[test]
    fn a_server_certificate_is_no_caller() {
        assert!(matches!(
            Caller::from_der(&der_of(LeafKind::Server("localhost".into()))),
            Err(PeerError::NoPicketIdentity(_))
        ));
    }
}
