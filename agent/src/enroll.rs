//! `picket-agent enroll`: obtains the agent's first certificate.
//!
//! The agent makes its key pair here and sends only a CSR, so the private key never leaves the
//! host. It has no CA certificate yet, only the CA's SHA-256 fingerprint from the operator; the
//! TLS handshake with the enrollment listener is accepted only when the server's chain carries
//! a certificate with that fingerprint and the server certificate chains to it
//! ([`PinnedCaVerifier`]). The files are written atomically (temporary file, then rename),
//! the key with mode 0600 from its creation.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use picket_proto::AgentId;
use picket_proto::v1::enroll_client::EnrollClient;
use picket_proto::v1::{EnrollIdentity, EnrollRequest, IssuedCertificate};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::config::TlsFiles;
use crate::imds::InstanceMetadata;

/// How long the whole enrollment call may take.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// Occurs when `--ca-fingerprint` is not 64 hex digits.
    #[error(
        "--ca-fingerprint must be the CA certificate's SHA-256 as 64 hex digits (colons allowed), got {0:?}"
    )]
    BadFingerprint(String),
    /// Occurs when `--aggregator` is not `https://HOST:PORT`.
    #[error("--aggregator must be https://HOST:PORT (the aggregator's enroll.listen), got {0:?}")]
    BadUrl(String),
    /// Occurs when the server's chain has no certificate with the pinned fingerprint.
    #[error(
        "the aggregator's CA does not match --ca-fingerprint {expected} (its chain: {seen}); refusing to enroll"
    )]
    CaMismatch {
        /// The pinned fingerprint.
        expected: String,
        /// Fingerprints of the certificates the server sent.
        seen: String,
    },
    /// Occurs when the connection or TLS handshake fails.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// What failed, with causes.
        reason: String,
    },
    /// Occurs when the aggregator refuses enrollment.
    #[error("aggregator refused enrollment ({code:?}): {message}")]
    Refused {
        /// The gRPC code.
        code: tonic::Code,
        /// The aggregator's message.
        message: String,
    },
    /// Occurs when the key or CSR cannot be generated.
    #[error("key generation: {0}")]
    Key(#[from] rcgen::Error),
    /// Occurs when the aggregator's answer is incomplete or inconsistent.
    #[error("bad answer from the aggregator: {0}")]
    BadResponse(String),
    /// Occurs when a file cannot be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Parses a SHA-256 fingerprint: 64 hex digits, optionally `sha256:`-prefixed, colons allowed.
///
/// # Errors
/// [`EnrollError::BadFingerprint`].
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], EnrollError> {
    let bad = || EnrollError::BadFingerprint(text.to_owned());
    let t = text.trim();
    let t = t
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("sha256:"))
        .map_or(t, |_| &t[7..]);
    let hex: Vec<u8> = t.bytes().filter(|b| *b != b':').collect();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts a server whose chain includes the pinned CA and whose certificate chains to it.
#[derive(Debug)]
pub struct PinnedCaVerifier {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
    /// Fingerprints the server offered, kept for the error message when none matched.
    seen: Mutex<Option<Vec<String>>>,
}

impl PinnedCaVerifier {
    /// A verifier pinning `fingerprint`.
    pub fn new(fingerprint: [u8; 32]) -> Arc<Self> {
        Arc::new(Self {
            fingerprint,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            seen: Mutex::new(None),
        })
    }

    fn mismatch(&self) -> Option<Vec<String>> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| Sha256::digest(c.as_ref()).as_slice() == self.fingerprint)
        else {
            let seen = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| hex(&Sha256::digest(c.as_ref())))
                .collect();
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(seen);
            return Err(rustls::Error::General(
                "no certificate in the server's chain matches the pinned CA fingerprint".into(),
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let others: Vec<CertificateDer<'_>> =
            intermediates.iter().filter(|c| *c != ca).cloned().collect();
        verifier.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The enrollment listener, `https://HOST:PORT`.
    pub url: String,
    /// The token.
    pub token: String,
    /// The pinned CA fingerprint.
    pub ca_fingerprint: [u8; 32],
    /// Who the agent is.
    pub identity: AgentId,
    /// Its region (may be empty).
    pub region: String,
    /// Instance metadata, when read: its identity document goes with the request.
    pub metadata: Option<InstanceMetadata>,
    /// Where to write the key, certificate and CA.
    pub files: TlsFiles,
}

/// What enrollment produced.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The certificate's SPIFFE ID.
    pub spiffe_id: String,
    /// End of validity, ms since the epoch.
    pub not_after_ms: i64,
}

/// Splits `https://HOST:PORT` into host and `HOST:PORT`.
fn host_port(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("https://")?.trim_end_matches('/');
    if rest.contains('/') {
        return None;
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once("]:")?,
        None => rest.rsplit_once(':')?,
    };
    port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let addr = if rest.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    (!host.is_empty()).then(|| (host.to_owned(), addr))
}

/// Generates a key, asks the aggregator to certify it, and writes key, certificate and CA.
///
/// # Errors
/// [`EnrollError`] saying which step failed; nothing is written unless the aggregator issued a
/// certificate under the pinned CA.
pub async fn enroll(opts: &EnrollOptions) -> Result<Enrolled, EnrollError> {
    let (host, addr) = host_port(&opts.url).ok_or_else(|| EnrollError::BadUrl(opts.url.clone()))?;
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| EnrollError::BadUrl(opts.url.clone()))?
        .to_owned();
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, opts.identity.spiffe_uri());
    let csr_pem = params.serialize_request(&key)?.pem()?;

    let verifier = PinnedCaVerifier::new(opts.ca_fingerprint);
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| EnrollError::Connect {
        url: opts.url.clone(),
        reason: e.to_string(),
    })?
    .dangerous()
    .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let connect_addr = addr.clone();
    let connect = tower::service_fn(move |_: hyper::Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        let addr = connect_addr.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let connect_err = |e: &dyn std::error::Error| {
        if let Some(seen) = verifier.mismatch() {
            return EnrollError::CaMismatch {
                expected: hex(&opts.ca_fingerprint),
                seen: seen.join(", "),
            };
        }
        EnrollError::Connect {
            url: opts.url.clone(),
            reason: chain(e),
        }
    };
    // TLS is done by the connector above, so tonic sees plain http.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| connect_err(&e))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(ENROLL_TIMEOUT)
        .connect_with_connector(connect)
        .await
        .map_err(|e| connect_err(&e))?;
    let (document, signature) = opts
        .metadata
        .as_ref()
        .map(|m| (m.document.clone(), m.signature.clone()))
        .unwrap_or_default();
    let response = EnrollClient::new(channel)
        .enroll(EnrollRequest {
            token: opts.token.clone(),
            identity: Some(EnrollIdentity {
                account_id: opts.identity.account_id().to_owned(),
                instance_id: opts.identity.instance_id().to_owned(),
                region: opts.region.clone(),
            }),
            csr_pem,
            identity_document: document,
            identity_signature: signature,
        })
        .await
        .map_err(|s| {
            if verifier.mismatch().is_some() {
                return connect_err(&s);
            }
            EnrollError::Refused {
                code: s.code(),
                message: s.message().to_owned(),
            }
        })?;
    let issued = response
        .into_inner()
        .issued
        .ok_or_else(|| EnrollError::BadResponse("no certificate".into()))?;
    check_issued(&issued, &opts.ca_fingerprint, &opts.identity)?;
    write_private(&opts.files.key, key.serialize_pem().as_bytes())?;
    write_atomic(&opts.files.cert, issued.certificate_pem.as_bytes())?;
    write_atomic(&opts.files.ca, issued.ca_pem.as_bytes())?;
    Ok(Enrolled {
        spiffe_id: issued.spiffe_id,
        not_after_ms: issued.not_after_ms,
    })
}

/// Checks that the CA sent is the pinned one and the certificate names this agent.
fn check_issued(
    issued: &IssuedCertificate,
    fingerprint: &[u8; 32],
    id: &AgentId,
) -> Result<(), EnrollError> {
    let ca = CertificateDer::from_pem_slice(issued.ca_pem.as_bytes())
        .map_err(|e| EnrollError::BadResponse(format!("CA certificate: {e}")))?;
    if Sha256::digest(ca.as_ref()).as_slice() != fingerprint {
        return Err(EnrollError::CaMismatch {
            expected: hex(fingerprint),
            seen: hex(&Sha256::digest(ca.as_ref())),
        });
    }
    CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes())
        .map_err(|e| EnrollError::BadResponse(format!("certificate: {e}")))?;
    if issued.spiffe_id != id.spiffe_uri() {
        return Err(EnrollError::BadResponse(format!(
            "certificate is for {}, not {}",
            issued.spiffe_id,
            id.spiffe_uri()
        )));
    }
    Ok(())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), EnrollError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| EnrollError::Write { path: p, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = tmp_path(path);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    // A reader sees the old file or the new one, never half of either.
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Writes a public file (certificate) atomically.
///
/// # Errors
/// [`EnrollError::Write`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EnrollError> {
    write_with_mode(path, bytes, 0o644)
}

/// Writes a private key atomically, mode 0600 from creation.
///
/// # Errors
/// [`EnrollError::Write`] naming the file.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EnrollError> {
    write_with_mode(path, bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_common_spellings() {
        let hex64 = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex64).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{hex64}")).unwrap(),
            [0xab; 32]
        );
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_give_host_and_address() {
        assert_eq!(
            host_port("https://127.0.0.1:7444"),
            Some(("127.0.0.1".into(), "127.0.0.1:7444".into()))
        );
        assert_eq!(
            host_port("https://[::1]:7444/"),
            Some(("::1".into(), "[::1]:7444".into()))
        );
        assert_eq!(host_port("http://a:1"), None);
        assert_eq!(host_port("https://a"), None);
    }

    #[test]
    fn keys_are_written_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tls/agent.key");
        write_private(&key, b"one").unwrap();
        write_private(&key, b"two").unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!tmp_path(&key).exists());
    }
}
