//! Threat intelligence on the aggregator: [`sources`] reads the configured lists, [`manager`]
//! holds the published snapshot and rebuilds it, [`watcher`] rebuilds it when a list changes,
//! and [`report`] renders `intel check` and `intel stats` for people.

pub mod manager;
pub mod report;
pub mod sources;
pub mod watcher;

pub use manager::{IntelManager, Published, ReloadError, ReloadOutcome};
pub use sources::{IntelSettings, SourceError, SourceSpec};
