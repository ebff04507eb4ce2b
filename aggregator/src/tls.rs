//! The aggregator's TLS: a rustls server configuration that speaks TLS 1.3 only, requires a
//! client certificate chained to the Picket CA, and offers HTTP/2 for gRPC.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Occurs when a PEM file cannot be read or holds nothing of the needed kind.
    #[error("{key} = {path}: {reason}")]
    Pem {
        /// The configuration key that named the file (`tls.ca`, `tls.cert`, `tls.key`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Occurs when rustls rejects the certificates or key (mismatch, unsupported algorithm).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// Occurs when the client verifier cannot be built from the CA.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Certificate and key files for one TLS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// CA certificate(s) that peers must chain to.
    pub ca: PathBuf,
    /// This endpoint's certificate chain.
    pub cert: PathBuf,
    /// This endpoint's private key.
    pub key: PathBuf,
}

/// Loads every certificate in a PEM file, naming the config key on failure.
///
/// # Errors
/// [`TlsError::Pem`] when the file is unreadable or holds no certificate.
pub fn load_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |reason: String| TlsError::Pem {
        key,
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| pem_err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no CERTIFICATE in file".into()));
    }
    Ok(certs)
}

/// Loads the first private key in a PEM file.
///
/// # Errors
/// [`TlsError::Pem`] when the file is unreadable or holds no private key.
pub fn load_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::Pem {
        key,
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        key,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Builds the server configuration: TLS 1.3, client certificate required and verified
/// against `paths.ca`, ALPN `h2`.
///
/// # Errors
/// Any [`TlsError`]; every file is read and checked here, once, at start.
pub fn server_config(paths: &TlsPaths) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in load_certs("tls.ca", &paths.ca)? {
        roots.add(ca)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let chain = load_certs("tls.cert", &paths.cert)?;
    let key = load_key("tls.key", &paths.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Builds the enrollment listener's configuration: TLS 1.3, ALPN `h2`, **no** client
/// certificate (agents have none yet), and a chain that ends with the CA certificate so an
/// agent can check it against the fingerprint it was given before trusting anything else.
///
/// # Errors
/// Any [`TlsError`].
pub fn enroll_server_config(paths: &TlsPaths) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut chain = load_certs("tls.cert", &paths.cert)?;
    for ca in load_certs("tls.ca", &paths.ca)? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let key = load_key("tls.key", &paths.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
