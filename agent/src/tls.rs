//! The agent's TLS: checks its certificate files at start (so a bad path is a one-line error,
//! not a reconnect loop) and builds tonic's rustls client configuration from them.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// Why the TLS files are unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Occurs when a file cannot be read or holds nothing of the needed kind.
    #[error("{key} = {path}: {reason}")]
    Pem {
        /// The config key that named the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Pem {
        key,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads and checks the CA, certificate and key, returning tonic's client TLS config that
/// presents the agent certificate and trusts only the Picket CA.
///
/// # Errors
/// [`TlsError::Pem`] naming the key and file that is missing or holds no PEM item of its kind.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
    server_name: &str,
) -> Result<ClientTlsConfig, TlsError> {
    let ca_pem = read_pem("tls.ca", ca)?;
    let cert_pem = read_pem("tls.cert", cert)?;
    let key_pem = read_pem("tls.key", key)?;
    let check_cert = |k, p: &Path, pem: &[u8]| {
        CertificateDer::from_pem_slice(pem)
            .map(drop)
            .map_err(|e| TlsError::Pem {
                key: k,
                path: p.to_owned(),
                reason: format!("no certificate: {e}"),
            })
    };
    check_cert("tls.ca", ca, &ca_pem)?;
    check_cert("tls.cert", cert, &cert_pem)?;
    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        key: "tls.key",
        path: key.to_owned(),
        reason: format!("no private key: {e}"),
    })?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(cert_pem, key_pem))
        .domain_name(server_name))
}
