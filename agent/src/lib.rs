//! Picket's host agent.
//!
//! Data flows one way: capture → decode → flow table / DNS → summaries → outbox → transport.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capture;
pub mod decode;
pub mod dns;
pub mod flow_table;
