//! A gRPC client of a running aggregator for the CLI (`agents list`, later `findings …`),
//! authenticated with an administrator certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Why the CLI could not reach the aggregator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Occurs when a certificate or key file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Occurs when the URL is not `https://HOST:PORT` with a host.
    #[error("--aggregator must be https://HOST:PORT, got {0:?}")]
    BadUrl(String),
    /// Occurs when the connection or TLS handshake fails.
    #[error("cannot reach {url}: {source}")]
    Connect {
        /// The aggregator URL.
        url: String,
        /// tonic's error.
        source: tonic::transport::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Connects to `url` over mTLS with the given CA, certificate and key.
///
/// # Errors
/// [`ClientError`] naming the file or URL that failed.
pub async fn connect(
    url: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Channel, ClientError> {
    let host = url
        .strip_prefix("https://")
        .and_then(|rest| {
            let rest = rest.trim_end_matches('/');
            match rest.strip_prefix('[') {
                Some(v6) => v6.split_once(']').map(|(h, _)| h),
                None => rest.rsplit_once(':').map(|(h, _)| h),
            }
        })
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ClientError::BadUrl(url.to_owned()))?
        .to_owned();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)?))
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .domain_name(host);
    let connect_err = |source| ClientError::Connect {
        url: url.to_owned(),
        source,
    };
    Endpoint::from_shared(url.to_owned())
        .map_err(connect_err)?
        .tls_config(tls)
        .map_err(connect_err)?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(connect_err)
}
