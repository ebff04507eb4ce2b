//! Picket's host agent.
//!
//! Data flows one way: capture → decode → flow table / DNS → summaries → outbox → transport.
//! Today the agent holds its own accounting ([`host_stats`], [`health`]), the durable
//! [`outbox`], and the mTLS [`transport`] to the aggregator.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod config;
pub mod health;
pub mod host_stats;
pub mod outbox;
pub mod records_sink;
pub mod run;
pub mod status;
pub mod tls;
pub mod transport;
pub mod upload;
