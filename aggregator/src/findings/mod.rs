//! Findings: the GuardDuty-shaped output of detection.
//!
//! - [`types`]: the one registry of finding types.
//! - [`model`]: the finding JSON.
//! - [`model_detection`]: its `service.detection` block (attack sequences).
//! - [`engine`]: observations → findings, aggregated by key.
//! - [`suppression`]: GuardDuty filter criteria that archive findings on arrival.
//! - [`store`]: findings in sled with indexes by account, type, severity and update time.
//! - [`samples`]: one `[SAMPLE]` finding per type.

pub mod engine;
pub mod model;
pub mod model_detection;
pub mod samples;
pub mod store;
pub mod suppression;
pub mod types;

pub use engine::{FindingEngine, FindingId};
pub use model::{Finding, Timestamp};
pub use types::FindingType;
