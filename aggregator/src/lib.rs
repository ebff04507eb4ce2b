//! Picket's central aggregator.
//!
//! Data flows one way: ingest → detectors → correlation → findings. Today the aggregator
//! terminates mTLS ([`tls`], [`peer`]), runs the `Ingest` service ([`ingest`]) and issues the
//! certificates that identify agents, servers and administrators ([`certs`]). Detection is
//! [`detectors`] → [`findings`] (engine, suppression, store), run together by [`pipeline`];
//! [`analyze`] runs the same pipeline offline over agent-record files.
//! [`exports`] delivers stored findings to files, GuardDuty's S3 layout and webhooks.
//! [`intel`] loads threat and trusted lists into the snapshot every connected agent receives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod analyze;
pub mod api;
pub mod certs;
pub mod client;
pub mod cloudtrail;
pub mod config;
pub mod correlation;
pub mod detection;
pub mod detection_cursor;
pub mod detectors;
pub mod enroll;
pub mod exports;
pub mod findings;
pub mod ingest;
pub mod intel;
pub mod metrics;
pub mod peer;
pub mod pipeline;
pub mod progress;
pub mod server;
pub mod tls;
