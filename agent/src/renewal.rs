//! Certificate renewal: before the agent's certificate runs out (at two thirds of its
//! validity), ask the aggregator's `Renewal` service — authenticated by the current
//! certificate — to sign the same key again, and replace the certificate file atomically.
//! The transport reads the files at every connection, so the next connection uses the new
//! certificate without a restart; a session already open keeps going (TLS checks certificates
//! only at the handshake).
//!
//! The key stays the same across renewals: it never leaves the host, and keeping it means the
//! key and certificate files can never be seen out of step. Re-enrolling makes a new key.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use picket_proto::v1::RenewRequest;
use picket_proto::v1::renewal_client::RenewalClient;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::watch;
use tonic::transport::Endpoint;
use tracing::{info, warn};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::Settings;

/// Shortest wait between failed attempts.
const MIN_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between failed attempts.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// Why one renewal attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalError {
    /// Occurs when the certificate or key file cannot be read or parsed.
    #[error("{key} = {path}: {reason}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Occurs when the aggregator cannot be reached or refuses.
    #[error("renewal at {url}: {reason}")]
    Remote {
        /// The aggregator URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Occurs when the new certificate cannot be written.
    #[error(transparent)]
    Write(#[from] crate::enroll::EnrollError),
}

/// A certificate's validity as Unix times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start, seconds since the epoch.
    pub not_before: i64,
    /// End, seconds since the epoch.
    pub not_after: i64,
}

impl Validity {
    /// When to renew: two thirds of the way through, leaving a third of the lifetime for
    /// retries when the aggregator is unreachable.
    pub fn renew_at(&self) -> i64 {
        let life = self.not_after.saturating_sub(self.not_before).max(0);
        self.not_before.saturating_add(life / 3 * 2)
    }
}

/// Reads the validity of the certificate in `path`.
///
/// # Errors
/// [`RenewalError::File`] naming `tls.cert`.
pub fn validity(path: &Path) -> Result<Validity, RenewalError> {
    let err = |reason: String| RenewalError::File {
        key: "tls.cert",
        path: path.to_owned(),
        reason,
    };
    let der = CertificateDer::from_pem_file(path).map_err(|e| err(e.to_string()))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| err(e.to_string()))?;
    Ok(Validity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Renews once: a CSR for the current key, signed by the aggregator, written over `tls.cert`.
///
/// # Errors
/// [`RenewalError`] saying which step failed; the old certificate stays in place.
pub async fn renew_once(settings: &Settings) -> Result<Validity, RenewalError> {
    let remote = |reason: String| RenewalError::Remote {
        url: settings.aggregator_url.clone(),
        reason,
    };
    let key_pem = std::fs::read_to_string(&settings.key).map_err(|e| RenewalError::File {
        key: "tls.key",
        path: settings.key.clone(),
        reason: e.to_string(),
    })?;
    let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| RenewalError::File {
        key: "tls.key",
        path: settings.key.clone(),
        reason: e.to_string(),
    })?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(|e| remote(format!("CSR: {e}")))?;
    let tls = crate::tls::client_config(
        &settings.ca,
        &settings.cert,
        &settings.key,
        &settings.server_name,
    )
    .map_err(|e| remote(e.to_string()))?;
    let channel = Endpoint::from_shared(settings.aggregator_url.clone())
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| remote(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| remote(format!("connect: {e}")))?;
    let issued = RenewalClient::new(channel)
        .renew(RenewRequest { csr_pem: csr })
        .await
        .map_err(|s| remote(format!("aggregator said {:?}: {}", s.code(), s.message())))?
        .into_inner()
        .issued
        .ok_or_else(|| remote("no certificate in the answer".into()))?;
    let der = CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes())
        .map_err(|e| remote(format!("certificate: {e}")))?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| remote(format!("certificate: {e}")))?;
    let new = Validity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    };
    crate::enroll::write_atomic(&settings.cert, issued.certificate_pem.as_bytes())?;
    Ok(new)
}

/// Renews the certificate whenever it is due, until `stop` turns true.
pub async fn run(settings: Settings, mut stop: watch::Receiver<bool>) {
    let mut retry = MIN_RETRY;
    loop {
        let wait = match validity(&settings.cert) {
            Ok(v) => Duration::from_secs(u64::try_from(v.renew_at() - unix_now()).unwrap_or(0)),
            Err(e) => {
                warn!(error = %e, "cannot read the certificate to schedule its renewal");
                MAX_RETRY
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if wait == MAX_RETRY && validity(&settings.cert).is_err() {
            continue;
        }
        match renew_once(&settings).await {
            Ok(v) => {
                info!(
                    not_after = v.not_after,
                    renew_at = v.renew_at(),
                    "certificate renewed"
                );
                retry = MIN_RETRY;
            }
            Err(e) => {
                warn!(error = %e, retry_secs = retry.as_secs(), "certificate renewal failed; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = stop.changed() => return,
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_two_thirds_through() {
        let v = Validity {
            not_before: 1000,
            not_after: 1000 + 86_400,
        };
        assert_eq!(v.renew_at(), 1000 + 57_600);
        let backwards = Validity {
            not_before: 10,
            not_after: 5,
        };
        assert_eq!(backwards.renew_at(), 10);
    }
}
