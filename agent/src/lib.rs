//! Picket's host agent.
//!
//! Data flows one way: capture → decode → flow table / DNS → summaries → outbox → transport.
//! The sensor stages are [`capture`], [`decode`], [`flow_table`] and [`dns`]; delivery is
//! [`records_sink`] → [`outbox`] → [`transport`]; the agent's own accounting is
//! [`host_stats`], [`health`] and [`status`].
// `unsafe` is denied everywhere but `capture::packet_socket`, the FFI the socket stats need.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod capture;
pub mod config;
pub mod decode;
pub mod dns;
pub mod flow_table;
pub mod health;
pub mod host_stats;
pub mod outbox;
pub mod pipeline;
pub mod records_sink;
pub mod replay;
pub mod run;
pub mod sensor;
pub mod status;
pub mod summaries;
pub mod tls;
pub mod transport;
pub mod upload;
