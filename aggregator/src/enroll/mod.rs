//! Enrollment: how an agent with no certificate gets one, keeps it fresh, and loses it.
//!
//! - [`token`]: self-contained, HMAC-signed enrollment tokens (`enroll-token create`), with
//!   their uses counted in sled by token id.
//! - [`aws_identity`]: verification of the EC2 instance identity document's RSA-SHA256
//!   signature against the configured AWS certificate.
//! - [`revocation`]: the durable set of revoked agents and the signal that closes their sessions.
//! - [`service`]: the `Enroll`, `Renewal` and `Revocation` gRPC services.

pub mod aws_identity;
pub mod revocation;
pub mod service;
pub mod token;

pub use revocation::Revocations;
pub use service::{EnrollService, RenewalService, RevocationService};
