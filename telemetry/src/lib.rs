//! What both daemons share at their edges: [`logging`] (log lines on standard error),
//! [`config_file`] (TOML config files with errors that say where), and the operational
//! endpoints.
//!
//! [`samples`] turns numbers that already live elsewhere (atomics, store ledgers, queue
//! lengths) into Prometheus series when a scrape asks, so nothing on a hot path takes a lock
//! or allocates for metrics. [`endpoint`] serves `GET /metrics` (text exposition) and
//! `GET /healthz` (200 or 503 with a small JSON body) over plain HTTP on its own listener.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config_file;
pub mod endpoint;
pub mod health;
pub mod logging;
pub mod samples;

pub use endpoint::{EndpointError, MetricsEndpoint, bind};
pub use health::{HealthCheck, HealthReport};
pub use logging::LogFormat;
pub use prometheus_client;
pub use samples::{SampledCollector, Samples};
