//! Picket's central aggregator.
//!
//! Data flows one way: ingest → detectors → correlation → findings. Today the aggregator
//! terminates mTLS ([`tls`], [`peer`]), runs the `Ingest` service ([`ingest`]) and issues the
//! certificates that identify agents, servers and administrators ([`certs`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certs;
pub mod config;
pub mod detectors;
pub mod findings;
pub mod ingest;
pub mod peer;
pub mod server;
pub mod tls;
