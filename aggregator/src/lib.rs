//! Picket's central aggregator.
//!
//! Data flows one way: ingest → detectors → correlation → findings. Today the aggregator
//! terminates mTLS ([`tls`], [`peer`]), runs the `Ingest` service ([`ingest`]) and issues the
//! certificates that identify agents, servers and administrators ([`certs`]). [`intel`] loads
//! threat and trusted lists into the snapshot every connected agent receives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod certs;
pub mod client;
pub mod config;
pub mod ingest;
pub mod intel;
pub mod peer;
pub mod server;
pub mod tls;
