//! CloudTrail: reading log files as AWS delivers them and normalising each record into an
//! [`ApiEvent`] for the detectors.

pub mod event;

pub use event::{ApiEvent, ApiResource, CallerAddress, EventOrigin, Principal, SessionIssuer};
