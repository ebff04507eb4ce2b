//! Picket's certificate authority: makes the CA and issues agent, server and administrator
//! certificates (rcgen), so an estate needs no other PKI tooling to start.
//!
//! Identities live in URI SANs: agents `spiffe://picket/account/<account>/instance/<id>`
//! (see [`picket_proto::AgentId`]), administrators `spiffe://picket/admin/<name>`, member users
//! `spiffe://picket/account/<account>/user/<name>` (see [`picket_proto::MemberUserId`]). Servers carry
//! a DNS or IP SAN for the address agents dial. Private keys are written mode 0600.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use picket_proto::AgentId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate inside a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a certificate directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Prefix of administrator SPIFFE IDs.
pub const ADMIN_SPIFFE_PREFIX: &str = "spiffe://picket/admin/";

/// How long the CA is valid. Ten years: re-keying a CA means re-enrolling every agent.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long leaf certificates are valid until agent renewal (enrollment issue) shortens it.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Clock skew tolerated between the CA host and peers.
const BACKDATE: Duration = Duration::minutes(5);

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Occurs when reading or writing a certificate or key file fails.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Occurs when `certs init` would overwrite an existing CA.
    #[error("{0} already exists; refusing to overwrite a CA (agents trust it)")]
    CaExists(PathBuf),
    /// Occurs when the CA certificate or key cannot be parsed.
    #[error("{path}: not a usable CA certificate or key: {reason}")]
    BadCa {
        /// The file that failed to parse.
        path: PathBuf,
        /// What rcgen said.
        reason: String,
    },
    /// Occurs when an admin name is not usable in a SPIFFE ID.
    #[error("admin name must be 1-64 characters of [A-Za-z0-9._-], got {0:?}")]
    BadAdminName(String),
    /// Occurs when a server name is neither an IP address nor a DNS name.
    #[error("server name must be a DNS name or IP address, got {0:?}")]
    BadServerName(String),
    /// Occurs when rcgen refuses to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafKind {
    /// An agent speaking for one instance; client authentication.
    Agent(AgentId),
    /// The aggregator's server certificate for a DNS name or IP address.
    Server(String),
    /// An administrator (CLI user); client authentication.
    Admin(String),
    /// A user of one member account, who may query that account's findings only; client
    /// authentication.
    MemberUser(picket_proto::MemberUserId),
}

/// Paths of a written certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPair {
    /// The PEM certificate.
    pub cert: PathBuf,
    /// The PEM private key (mode 0600).
    pub key: PathBuf,
}

/// Creates a new CA in `dir` (`ca.pem`, `ca.key`), refusing to overwrite one.
///
/// # Errors
/// [`CertError::CaExists`] if `ca.pem` or `ca.key` exists, I/O and generation errors otherwise.
pub fn init_ca(dir: &Path) -> Result<WrittenPair, CertError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(CertError::CaExists(p.clone()));
        }
    }
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Picket");
    params
        .distinguished_name
        .push(DnType::CommonName, "Picket CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    let cert = params.self_signed(&key)?;
    write_key(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok(WrittenPair {
        cert: cert_path,
        key: key_path,
    })
}

/// Issues a leaf certificate signed by the CA in `dir`, writing `PREFIX.pem` and `PREFIX.key`.
///
/// # Errors
/// [`CertError::BadCa`] when the CA cannot be loaded, name errors, I/O and generation errors.
pub fn issue(dir: &Path, kind: &LeafKind, out_prefix: &Path) -> Result<WrittenPair, CertError> {
    let issuer = load_issuer(dir)?;
    let key = KeyPair::generate()?;
    let params = leaf_params(kind)?;
    let cert = params.signed_by(&key, &issuer)?;
    let pair = WrittenPair {
        cert: with_suffix(out_prefix, "pem"),
        key: with_suffix(out_prefix, "key"),
    };
    if let Some(parent) = pair.cert.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| CertError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    write_key(&pair.key, &key.serialize_pem())?;
    write_public(&pair.cert, &cert.pem())?;
    Ok(pair)
}

/// The SPIFFE ID of an administrator.
pub fn admin_spiffe_uri(name: &str) -> String {
    format!("{ADMIN_SPIFFE_PREFIX}{name}")
}

fn leaf_params(kind: &LeafKind) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Picket");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    match kind {
        LeafKind::Agent(id) => {
            params
                .distinguished_name
                .push(DnType::CommonName, id.to_string());
            params.subject_alt_names = vec![SanType::URI(id.spiffe_uri().try_into()?)];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        LeafKind::Admin(name) => {
            let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            if name.is_empty() || name.len() > 64 || !name.bytes().all(ok_char) {
                return Err(CertError::BadAdminName(name.clone()));
            }
            params
                .distinguished_name
                .push(DnType::CommonName, format!("admin {name}"));
            params.subject_alt_names = vec![SanType::URI(admin_spiffe_uri(name).try_into()?)];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        LeafKind::MemberUser(user) => {
            params
                .distinguished_name
                .push(DnType::CommonName, format!("user {user}"));
            params.subject_alt_names = vec![SanType::URI(user.spiffe_uri().try_into()?)];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        LeafKind::Server(name) => {
            params
                .distinguished_name
                .push(DnType::CommonName, name.as_str());
            let san = if let Ok(ip) = name.parse::<IpAddr>() {
                SanType::IpAddress(ip)
            } else if is_dns_name(name) {
                SanType::DnsName(name.as_str().try_into()?)
            } else {
                return Err(CertError::BadServerName(name.clone()));
            };
            params.subject_alt_names = vec![san];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
    }
    Ok(params)
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        })
}

fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let read = |p: &Path| {
        fs::read_to_string(p).map_err(|source| CertError::Io {
            path: p.to_owned(),
            source,
        })
    };
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&key_path)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| CertError::BadCa {
        path: key_path.clone(),
        reason: e.to_string(),
    })?;
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| CertError::BadCa {
        path: cert_path,
        reason: e.to_string(),
    })
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Writes a private key with mode 0600 from the start, so it is never readable by others even
/// briefly; an existing file is replaced.
fn write_key(path: &Path, pem: &str) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(pem.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn write_public(path: &Path, pem: &str) -> Result<(), CertError> {
    fs::write(path, pem).map_err(|source| CertError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Hex SHA-256 of the DER of the first certificate in a PEM file: what `picket-agent enroll
/// --ca-fingerprint` pins.
///
/// # Errors
/// [`CertError::Io`] when the file cannot be read, [`CertError::BadCa`] when it holds no
/// certificate.
pub fn ca_fingerprint(ca_pem: &Path) -> Result<String, CertError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};
    let bytes = fs::read(ca_pem).map_err(|source| CertError::Io {
        path: ca_pem.to_owned(),
        source,
    })?;
    let der = CertificateDer::from_pem_slice(&bytes).map_err(|e| CertError::BadCa {
        path: ca_pem.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(hex(&Sha256::digest(der.as_ref())))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The CA loaded for signing agent certificates from CSRs (enrollment and renewal).
pub struct AgentSigner {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    lifetime: Duration,
}

/// A freshly signed agent certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAgentCert {
    /// The certificate, PEM.
    pub pem: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// Why a CSR could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Occurs when the CSR is not PEM PKCS#10, or its self-signature does not verify.
    #[error("certificate signing request rejected: {0}")]
    Invalid(rcgen::Error),
    /// Occurs when rcgen cannot sign.
    #[error("signing failed: {0}")]
    Sign(rcgen::Error),
    /// Occurs when the certificate's parameters cannot be built for the identity.
    #[error("certificate parameters: {0}")]
    Params(String),
}

impl AgentSigner {
    /// Loads the CA certificate and key; certificates it signs live for `lifetime`.
    ///
    /// # Errors
    /// [`CertError::Io`] or [`CertError::BadCa`] naming the file.
    pub fn load(
        ca_cert: &Path,
        ca_key: &Path,
        lifetime: std::time::Duration,
    ) -> Result<Self, CertError> {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|source| CertError::Io {
                path: p.to_owned(),
                source,
            })
        };
        let ca_pem = read(ca_cert)?;
        let key = KeyPair::from_pem(&read(ca_key)?).map_err(|e| CertError::BadCa {
            path: ca_key.to_owned(),
            reason: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| CertError::BadCa {
            path: ca_cert.to_owned(),
            reason: e.to_string(),
        })?;
        let lifetime = Duration::try_from(lifetime).unwrap_or(LEAF_VALIDITY);
        Ok(Self {
            issuer,
            ca_pem,
            lifetime,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Signs the key in `csr_pem` as agent `id`. Only the CSR's public key is used: its
    /// subject and requested extensions are ignored, so a CSR cannot ask for another identity,
    /// a CA bit or server use.
    ///
    /// # Errors
    /// [`CsrError::Invalid`] for a malformed or badly self-signed CSR.
    pub fn sign(&self, csr_pem: &str, id: &AgentId) -> Result<SignedAgentCert, CsrError> {
        let mut csr =
            rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(CsrError::Invalid)?;
        let mut params = leaf_params(&LeafKind::Agent(id.clone()))
            .map_err(|e| CsrError::Params(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        // Backdating covers clock skew; a short-lived certificate must not spend most of its
        // life before it was issued.
        let backdate = BACKDATE.min(self.lifetime / 10);
        params.not_before = now - backdate;
        params.not_after = now + self.lifetime;
        let mut serial = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut serial[..]);
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        csr.params = params;
        let cert = csr.signed_by(&self.issuer).map_err(CsrError::Sign)?;
        Ok(SignedAgentCert {
            pem: cert.pem(),
            not_before: now - backdate,
            not_after: now + self.lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::prelude::*;

    fn uri_sans(pem_path: &Path) -> Vec<String> {
        let pem = fs::read(pem_path).unwrap();
        let (_, pem) = parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let Some(san) = cert.subject_alternative_name().unwrap() else {
            return vec![];
        };
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn agent_certificate_carries_its_spiffe_id_and_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let id = AgentId::new("123456789012", "i-0abc").unwrap();
        let pair = issue(
            dir.path(),
            &LeafKind::Agent(id.clone()),
            &dir.path().join("a"),
        )
        .unwrap();
        assert_eq!(uri_sans(&pair.cert), vec![id.spiffe_uri()]);
        let mode = fs::metadata(&pair.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let ca_mode = fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(ca_mode, 0o600);
    }

    #[test]
    fn a_csr_gets_the_given_identity_whatever_it_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let signer = AgentSigner::load(
            &dir.path().join(CA_CERT_FILE),
            &dir.path().join(CA_KEY_FILE),
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        let key = KeyPair::generate().unwrap();
        // The CSR asks for a server name and another agent's identity.
        let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::URI(
            "spiffe://picket/account/999999999999/instance/i-x"
                .try_into()
                .unwrap(),
        ));
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let id = AgentId::new("123456789012", "i-0abc").unwrap();
        let signed = signer.sign(&csr, &id).unwrap();
        let path = dir.path().join("signed.pem");
        fs::write(&path, &signed.pem).unwrap();
        assert_eq!(uri_sans(&path), vec![id.spiffe_uri()]);
        let life = signed.not_after - signed.not_before;
        assert!(
            life > Duration::minutes(60) && life <= Duration::minutes(67),
            "{life}"
        );
        assert!(matches!(
            signer.sign("not a csr", &id),
            Err(CsrError::Invalid(_))
        ));
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_ca_der() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let pair = init_ca(dir.path()).unwrap();
        let pem = fs::read(&pair.cert).unwrap();
        let (_, parsed) = parse_x509_pem(&pem).unwrap();
        assert_eq!(
            ca_fingerprint(&pair.cert).unwrap(),
            hex(&Sha256::digest(&parsed.contents))
        );
        assert!(ca_fingerprint(&dir.path().join("nope.pem")).is_err());
    }

    #[test]
    fn member_user_certificate_carries_its_account_scoped_spiffe_id() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let user = picket_proto::MemberUserId::new("123456789012", "bob").unwrap();
        let pair = issue(
            dir.path(),
            &LeafKind::MemberUser(user.clone()),
            &dir.path().join("u"),
        )
        .unwrap();
        assert_eq!(uri_sans(&pair.cert), vec![user.spiffe_uri()]);
    }

    #[test]
    fn init_refuses_to_overwrite_an_existing_ca() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        assert!(matches!(init_ca(dir.path()), Err(CertError::CaExists(_))));
    }

    #[test]
    fn issuing_without_a_ca_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = issue(
            dir.path(),
            &LeafKind::Admin("alice".into()),
            &dir.path().join("x"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn bad_admin_and_server_names_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let out = dir.path().join("x");
        assert!(matches!(
            issue(dir.path(), &LeafKind::Admin("a/b".into()), &out),
            Err(CertError::BadAdminName(_))
        ));
        assert!(matches!(
            issue(dir.path(), &LeafKind::Server("bad name".into()), &out),
            Err(CertError::BadServerName(_))
        ));
    }
}
