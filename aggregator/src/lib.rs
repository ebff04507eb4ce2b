//! Picket's central aggregator.
//!
//! Data flows one way: ingest → detectors → correlation → findings.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
