//! `[detectors.api_baseline]`: learning period, how unusual a call must be, and the memory cap.

use std::num::NonZeroUsize;

use serde::Deserialize;

/// Settings of the per-principal API baselines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiBaselineConfig {
    /// Events a principal's baseline learns from before its calls can be anomalous
    /// (0: no minimum).
    #[serde(default = "default_learning_events")]
    pub learning_events: u32,
    /// Days a principal's baseline learns before its calls can be anomalous (0: no minimum).
    /// Both minimums must be met.
    #[serde(default = "default_learning_days")]
    pub learning_days: u32,
    /// Of api, region, source network and user agent, how many must be new for an anomaly.
    #[serde(default = "default_min_new_dimensions")]
    pub min_new_dimensions: u32,
    /// Principals whose baselines are kept; the least recently active are evicted beyond it.
    #[serde(default = "default_max_principals")]
    pub max_principals: NonZeroUsize,
    /// A baseline idle this many days is dropped (0: never).
    #[serde(default = "default_max_idle_days")]
    pub max_idle_days: u32,
}

fn default_learning_events() -> u32 {
    100
}
fn default_learning_days() -> u32 {
    7
}
fn default_min_new_dimensions() -> u32 {
    2
}
fn default_max_principals() -> NonZeroUsize {
    NonZeroUsize::new(1_000_000).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_idle_days() -> u32 {
    90
}

impl Default for ApiBaselineConfig {
    fn default() -> Self {
        Self {
            learning_events: default_learning_events(),
            learning_days: default_learning_days(),
            min_new_dimensions: default_min_new_dimensions(),
            max_principals: default_max_principals(),
            max_idle_days: default_max_idle_days(),
        }
    }
}

impl ApiBaselineConfig {
    /// Pushes every out-of-range value onto `problems`, naming its key.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(1..=4).contains(&self.min_new_dimensions) {
            problems.push(format!(
                "detectors.api_baseline.min_new_dimensions must be between 1 and 4, got {}",
                self.min_new_dimensions
            ));
        }
        if self.learning_days > 3650 {
            problems.push(format!(
                "detectors.api_baseline.learning_days must be at most 3650, got {}",
                self.learning_days
            ));
        }
    }
}
