//! Per-principal API baselines and the `*/AnomalousBehavior` findings they raise.
//!
//! - [`config`] — `[detectors.api_baseline]`.
//! - [`tactics`] — which tactic an API serves (the table GuardDuty's anomaly types follow).
//! - [`profile`] — one principal's compact baseline (fixed 80 bytes).
//! - [`detector`] — learning, anomaly decisions, eviction and persisted state.

pub mod config;
pub mod detector;
pub mod profile;
pub mod tactics;

pub use config::ApiBaselineConfig;
pub use detector::ApiBaselineDetector;
