//! Verification of the EC2 instance identity document an agent sends when it enrolls.
//!
//! AWS signs the document at `/latest/dynamic/instance-identity/document` with a per-partition
//! RSA key and serves the base64 RSA-SHA256 (PKCS#1 v1.5) signature at
//! `/latest/dynamic/instance-identity/signature`; the matching public certificate is published
//! in the EC2 user guide. The operator saves it and names it in `[enroll]
//! aws_identity_certificate`; a document that verifies proves the agent runs on that instance
//! in that account, so a token leaked from one account cannot enroll hosts of another.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Longest document accepted; real ones are under 1 KiB.
const MAX_DOCUMENT_LEN: usize = 16 * 1024;

/// Why a certificate could not be loaded or a document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsIdentityError {
    /// Occurs when the configured certificate cannot be read or parsed.
    #[error("enroll.aws_identity_certificate = {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Occurs when the agent sent no document or no signature although one is required.
    #[error("an EC2 instance identity document and its signature are required")]
    Missing,
    /// Occurs when the signature is not base64 or does not verify.
    #[error("instance identity document signature does not verify")]
    BadSignature,
    /// Occurs when the (verified) document is not the JSON AWS serves.
    #[error("instance identity document is not valid: {0}")]
    BadDocument(String),
}

/// The fields of the identity document Picket checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceIdentity {
    /// AWS account id.
    pub account_id: String,
    /// EC2 instance id.
    pub instance_id: String,
    /// Region.
    pub region: String,
}

/// The AWS public key, loaded from its certificate.
#[derive(Debug, Clone)]
pub struct AwsIdentityVerifier {
    /// The RSAPublicKey DER from the certificate's SubjectPublicKeyInfo.
    public_key: Vec<u8>,
}

impl AwsIdentityVerifier {
    /// Loads the PEM certificate at `path`.
    ///
    /// # Errors
    /// [`AwsIdentityError::Certificate`] naming the file.
    pub fn load(path: &Path) -> Result<Self, AwsIdentityError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let err = |reason: String| AwsIdentityError::Certificate {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let der = CertificateDer::from_pem_slice(&bytes).map_err(|e| err(e.to_string()))?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| err(e.to_string()))?;
        let spki = cert.public_key();
        // rsaEncryption; AWS publishes RSA certificates for the `signature` endpoint.
        if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
            return Err(err(format!(
                "not an RSA certificate (key algorithm {})",
                spki.algorithm.algorithm.to_id_string()
            )));
        }
        Ok(Self {
            public_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Verifies `signature_b64` over `document` and returns the document's identity.
    ///
    /// # Errors
    /// [`AwsIdentityError`] saying what failed.
    pub fn verify(
        &self,
        document: &str,
        signature_b64: &str,
    ) -> Result<InstanceIdentity, AwsIdentityError> {
        if document.is_empty() || signature_b64.is_empty() {
            return Err(AwsIdentityError::Missing);
        }
        if document.len() > MAX_DOCUMENT_LEN {
            return Err(AwsIdentityError::BadDocument(format!(
                "{} bytes, more than {MAX_DOCUMENT_LEN}",
                document.len()
            )));
        }
        // IMDS wraps the base64 over several lines.
        let compact: String = signature_b64
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let signature = STANDARD
            .decode(compact)
            .map_err(|_| AwsIdentityError::BadSignature)?;
        // 1024-bit keys are accepted because the key is the operator's configured AWS
        // certificate, not something a peer chooses.
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            &self.public_key,
        )
        .verify(document.as_bytes(), &signature)
        .map_err(|_| AwsIdentityError::BadSignature)?;
        serde_json::from_str(document).map_err(|e| AwsIdentityError::BadDocument(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stand-in "AWS" key shared with the end-to-end tests (see its README).
    const KEY: &str = include_str!("../../../tests/fixtures/aws-identity/stand-in-aws.key");
    const DOC: &str = r#"{"accountId":"123456789012","instanceId":"i-0abc","region":"eu-west-1","architecture":"x86_64"}"#;

    fn setup() -> (
        tempfile::TempDir,
        AwsIdentityVerifier,
        ring::signature::RsaKeyPair,
    ) {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let dir = tempfile::tempdir().unwrap();
        let rc = rcgen::KeyPair::from_pem_and_sign_algo(KEY, &rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&rc)
            .unwrap();
        let path = dir.path().join("aws.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        let der = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
        (dir, AwsIdentityVerifier::load(&path).unwrap(), key)
    }

    fn sign(key: &ring::signature::RsaKeyPair, doc: &str) -> String {
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            doc.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let b64 = STANDARD.encode(sig);
        // As IMDS serves it: wrapped lines.
        format!("{}\n{}", &b64[..64], &b64[64..])
    }

    #[test]
    fn a_signed_document_verifies_and_yields_its_identity() {
        let (_d, v, key) = setup();
        let id = v.verify(DOC, &sign(&key, DOC)).unwrap();
        assert_eq!(id.account_id, "123456789012");
        assert_eq!(id.instance_id, "i-0abc");
        assert_eq!(id.region, "eu-west-1");
    }

    #[test]
    fn an_altered_document_or_garbage_signature_does_not_verify() {
        let (_d, v, key) = setup();
        let sig = sign(&key, DOC);
        let altered = DOC.replace("i-0abc", "i-0xyz");
        assert!(matches!(
            v.verify(&altered, &sig),
            Err(AwsIdentityError::BadSignature)
        ));
        assert!(matches!(
            v.verify(DOC, "!!!"),
            Err(AwsIdentityError::BadSignature)
        ));
        assert!(matches!(v.verify(DOC, ""), Err(AwsIdentityError::Missing)));
        assert!(matches!(v.verify("", &sig), Err(AwsIdentityError::Missing)));
    }

    #[test]
    fn a_non_rsa_certificate_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let ec = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&ec)
            .unwrap();
        let path = dir.path().join("ec.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        let err = AwsIdentityVerifier::load(&path).unwrap_err().to_string();
        assert!(err.starts_with("enroll.aws_identity_certificate"), "{err}");
    }
}
