//! IAM persistence and privilege escalation: access keys and console passwords created for
//! other users, administrative policies attached, role trust policies opened to outside
//! accounts, and new users given full access. Only successful calls count.
//!
//! - [`config`] — `[detectors.iam_persistence]`.
//! - [`policy`] — reading policy documents.
//! - [`detector`] — the rules.

pub mod config;
pub mod detector;
pub mod policy;

pub use config::IamPersistenceConfig;
pub use detector::IamPersistenceDetector;
