//! Who is on the other end of a verified TLS session, read from its certificate's URI SAN.

use picket_proto::AgentId;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::certs::ADMIN_SPIFFE_PREFIX;

/// A peer identity proven by a client certificate that chains to the Picket CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An agent speaking for one instance.
    Agent(AgentId),
    /// An administrator (CLI user) by name.
    Admin(String),
}

/// Why a certificate names no Picket identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Occurs when the session carried no client certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// Occurs when the certificate cannot be parsed.
    #[error("client certificate does not parse: {0}")]
    Unparsable(String),
    /// Occurs when no URI SAN is a Picket agent or admin SPIFFE ID.
    #[error("client certificate has no Picket SPIFFE ID (URI SANs: {0:?})")]
    NoPicketIdentity(Vec<String>),
}

impl Peer {
    /// Reads the identity from a DER certificate (the verified end-entity certificate).
    ///
    /// # Errors
    /// [`PeerError`] when the certificate does not parse or names no Picket identity.
    pub fn from_der(der: &[u8]) -> Result<Self, PeerError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| PeerError::Unparsable(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| PeerError::Unparsable(e.to_string()))?;
        let uris: Vec<&str> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .collect();
        for uri in &uris {
            if let Ok(id) = AgentId::from_spiffe_uri(uri) {
                return Ok(Peer::Agent(id));
            }
            if let Some(name) = uri.strip_prefix(ADMIN_SPIFFE_PREFIX) {
                if !name.is_empty() && !name.contains('/') {
                    return Ok(Peer::Admin(name.to_owned()));
                }
            }
        }
        Err(PeerError::NoPicketIdentity(
            uris.into_iter().map(str::to_owned).collect(),
        ))
    }
}

/// The verified peer of a gRPC request, or the status to refuse it with.
///
/// # Errors
/// `Unauthenticated` without a client certificate, `PermissionDenied` when it names no Picket
/// identity.
pub fn peer_of<T>(request: &tonic::Request<T>) -> Result<Peer, tonic::Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| tonic::Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| tonic::Status::unauthenticated("no client certificate"))?;
    Peer::from_der(leaf).map_err(|e| tonic::Status::permission_denied(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{LeafKind, init_ca, issue};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn der_of(kind: LeafKind) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let pair = issue(dir.path(), &kind, &dir.path().join("leaf")).unwrap();
        CertificateDer::from_pem_file(&pair.cert).unwrap().to_vec()
    }

    #[test]
    fn cert_with_agent_spiffe_san_is_that_agent() {
        let id = AgentId::new("123456789012", "i-0abc").unwrap();
        assert_eq!(
            Peer::from_der(&der_of(LeafKind::Agent(id.clone()))).unwrap(),
            Peer::Agent(id)
        );
    }

    #[test]
    fn cert_with_admin_spiffe_san_is_that_admin() {
        assert_eq!(
            Peer::from_der(&der_of(LeafKind::Admin("alice".into()))).unwrap(),
            Peer::Admin("alice".into())
        );
    }

    #[test]
    fn cert_with_dns_san_only_is_no_picket_identity() {
        assert!(matches!(
            Peer::from_der(&der_of(LeafKind::Server("localhost".into()))),
            Err(PeerError::NoPicketIdentity(_))
        ));
    }

    #[test]
    fn garbage_is_unparsable() {
        assert!(matches!(
            Peer::from_der(b"not a certificate"),
            Err(PeerError::Unparsable(_))
        ));
    }
}
