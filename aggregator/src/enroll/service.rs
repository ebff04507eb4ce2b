//! The `Enroll`, `Renewal` and `Revocation` gRPC services.
//!
//! `Enroll` runs on its own listener without client certificates (the agent has none yet), so
//! everything it accepts is checked before the token is spent: the token's MAC and expiry, the
//! identity's form and account, the identity document when one is required, revocation, and the
//! CSR's self-signature. Refusals are logged with the claimed identity and the token id, never
//! the token itself.

use std::sync::Arc;

use picket_proto::AgentId;
use picket_proto::v1::enroll_server::Enroll;
use picket_proto::v1::renewal_server::Renewal;
use picket_proto::v1::revocation_server::Revocation;
use picket_proto::v1::{
    EnrollRequest, EnrollResponse, IssuedCertificate, ListRevokedRequest, ListRevokedResponse,
    RenewRequest, RenewResponse, RevokeAgentRequest, RevokeAgentResponse,
};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::aws_identity::AwsIdentityVerifier;
use super::revocation::Revocations;
use super::token::{TokenError, TokenKey, TokenLedger};
use crate::certs::{AgentSigner, SignedAgentCert};
use crate::ingest::SessionLimiter;
use crate::peer::{Peer, peer_of};

/// Longest CSR accepted (a P-256 CSR is under 1 KiB; RSA-4096 under 4 KiB).
const MAX_CSR_LEN: usize = 16 * 1024;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn issued(signer: &AgentSigner, id: &AgentId, cert: SignedAgentCert) -> IssuedCertificate {
    IssuedCertificate {
        certificate_pem: cert.pem,
        ca_pem: signer.ca_pem().to_owned(),
        not_before_ms: ms(cert.not_before),
        not_after_ms: ms(cert.not_after),
        spiffe_id: id.spiffe_uri(),
    }
}

fn sign(signer: &AgentSigner, csr_pem: &str, id: &AgentId) -> Result<SignedAgentCert, Status> {
    if csr_pem.len() > MAX_CSR_LEN {
        return Err(Status::invalid_argument(format!(
            "CSR is {} bytes, more than {MAX_CSR_LEN}",
            csr_pem.len()
        )));
    }
    signer.sign(csr_pem, id).map_err(|e| match e {
        crate::certs::CsrError::Invalid(_) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    })
}

fn check_not_revoked(revocations: &Revocations, id: &AgentId, what: &str) -> Result<(), Status> {
    match revocations.is_revoked(id) {
        Ok(false) => Ok(()),
        Ok(true) => {
            warn!(agent = %id, spiffe_id = %id.spiffe_uri(), "refusing {what}: agent is revoked");
            Err(Status::permission_denied(format!(
                "{} is revoked",
                id.spiffe_uri()
            )))
        }
        Err(e) => {
            warn!(agent = %id, error = %e, "refusing {what}: revocation store unreadable");
            Err(Status::unavailable(e.to_string()))
        }
    }
}

/// The service behind `picket.v1.Enroll`.
pub struct EnrollService {
    key: TokenKey,
    ledger: TokenLedger,
    signer: Arc<AgentSigner>,
    revocations: Arc<Revocations>,
    aws: Option<AwsIdentityVerifier>,
}

impl EnrollService {
    /// A service checking tokens with `key`, counting uses in `ledger`, signing with `signer`,
    /// and requiring a verified identity document when `aws` is given.
    pub fn new(
        key: TokenKey,
        ledger: TokenLedger,
        signer: Arc<AgentSigner>,
        revocations: Arc<Revocations>,
        aws: Option<AwsIdentityVerifier>,
    ) -> Self {
        Self {
            key,
            ledger,
            signer,
            revocations,
            aws,
        }
    }
}

#[tonic::async_trait]
impl Enroll for EnrollService {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let remote = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let req = request.into_inner();
        let claimed = req.identity.unwrap_or_default();
        let id = AgentId::new(&claimed.account_id, &claimed.instance_id).map_err(|e| {
            warn!(%remote, error = %e, "refusing enrollment: bad identity");
            Status::invalid_argument(e.to_string())
        })?;
        let claims = self.key.verify(&req.token, unix_now()).map_err(|e| {
            warn!(%remote, agent = %id, error = %e, "refusing enrollment: token");
            Status::unauthenticated(e.to_string())
        })?;
        if claims.account != id.account_id() {
            warn!(%remote, agent = %id, token = %claims.id, token_account = %claims.account, "refusing enrollment: identity is outside the token's account");
            return Err(Status::permission_denied(format!(
                "the token is for account {}, not {}",
                claims.account,
                id.account_id()
            )));
        }
        if let Some(aws) = &self.aws {
            let doc = aws
                .verify(&req.identity_document, &req.identity_signature)
                .map_err(|e| {
                    warn!(%remote, agent = %id, error = %e, "refusing enrollment: instance identity document");
                    Status::permission_denied(e.to_string())
                })?;
            if doc.account_id != id.account_id() || doc.instance_id != id.instance_id() {
                warn!(%remote, agent = %id, document_account = %doc.account_id, document_instance = %doc.instance_id, "refusing enrollment: identity document names another instance");
                return Err(Status::permission_denied(format!(
                    "the instance identity document is for {}/{}, not {id}",
                    doc.account_id, doc.instance_id
                )));
            }
        }
        check_not_revoked(&self.revocations, &id, "enrollment")?;
        // Checked before the use is spent, so a broken CSR does not burn a token.
        rcgen::CertificateSigningRequestParams::from_pem(&req.csr_pem).map_err(|e| {
            Status::invalid_argument(format!("certificate signing request rejected: {e}"))
        })?;
        let left = self.ledger.spend(&claims).map_err(|e| match e {
            TokenError::Exhausted { .. } => {
                warn!(%remote, agent = %id, token = %claims.id, "refusing enrollment: token has no uses left");
                Status::unauthenticated(e.to_string())
            }
            e => Status::unavailable(e.to_string()),
        })?;
        let cert = sign(&self.signer, &req.csr_pem, &id)?;
        info!(%remote, agent = %id, token = %claims.id, uses_left = left, not_after_ms = ms(cert.not_after), "agent enrolled");
        Ok(Response::new(EnrollResponse {
            issued: Some(issued(&self.signer, &id, cert)),
        }))
    }
}

/// The service behind `picket.v1.Renewal`.
pub struct RenewalService {
    signer: Arc<AgentSigner>,
    revocations: Arc<Revocations>,
}

impl RenewalService {
    /// A service signing renewals with `signer` for agents not in `revocations`.
    pub fn new(signer: Arc<AgentSigner>, revocations: Arc<Revocations>) -> Self {
        Self {
            signer,
            revocations,
        }
    }
}

#[tonic::async_trait]
impl Renewal for RenewalService {
    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let id = match peer_of(&request)? {
            Peer::Agent(id) => id,
            Peer::Admin(name) => {
                warn!(admin = %name, "refusing renewal for an administrator certificate");
                return Err(Status::permission_denied(
                    "only agent certificates are renewed here",
                ));
            }
        };
        check_not_revoked(&self.revocations, &id, "renewal")?;
        let cert = sign(&self.signer, &request.get_ref().csr_pem, &id)?;
        info!(agent = %id, not_after_ms = ms(cert.not_after), "agent certificate renewed");
        Ok(Response::new(RenewResponse {
            issued: Some(issued(&self.signer, &id, cert)),
        }))
    }
}

/// The service behind `picket.v1.Revocation`, for administrators.
pub struct RevocationService {
    revocations: Arc<Revocations>,
    limiter: Arc<SessionLimiter>,
}

impl RevocationService {
    /// A service revoking into `revocations`, reporting open sessions from `limiter`.
    pub fn new(revocations: Arc<Revocations>, limiter: Arc<SessionLimiter>) -> Self {
        Self {
            revocations,
            limiter,
        }
    }
}

fn require_admin<T>(request: &Request<T>) -> Result<String, Status> {
    match peer_of(request)? {
        Peer::Admin(name) => Ok(name),
        Peer::Agent(id) => {
            warn!(agent = %id, "refusing revocation call from an agent certificate");
            Err(Status::permission_denied(
                "the Revocation service needs an administrator certificate",
            ))
        }
    }
}

#[tonic::async_trait]
impl Revocation for RevocationService {
    async fn revoke_agent(
        &self,
        request: Request<RevokeAgentRequest>,
    ) -> Result<Response<RevokeAgentResponse>, Status> {
        let admin = require_admin(&request)?;
        let req = request.into_inner();
        let id = if req.spiffe_id.is_empty() {
            AgentId::new(&req.account_id, &req.instance_id)
        } else {
            AgentId::from_spiffe_uri(&req.spiffe_id)
        }
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let sessions = self.limiter.open_sessions(&id);
        let newly = self
            .revocations
            .revoke(&id, &admin, &req.reason, crate::ingest::store::now_ms())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        warn!(agent = %id, spiffe_id = %id.spiffe_uri(), %admin, reason = %req.reason, newly_revoked = newly, open_sessions = sessions, "agent revoked");
        Ok(Response::new(RevokeAgentResponse {
            spiffe_id: id.spiffe_uri(),
            sessions_closed: u64::try_from(sessions).unwrap_or(u64::MAX),
            newly_revoked: newly,
        }))
    }

    async fn list_revoked(
        &self,
        request: Request<ListRevokedRequest>,
    ) -> Result<Response<ListRevokedResponse>, Status> {
        require_admin(&request)?;
        let agents = self
            .revocations
            .list()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ListRevokedResponse { agents }))
    }
}
