//! Picket's host agent.
//!
//! Data flows one way: capture → decode → flow table / DNS → summaries → outbox → transport.
//! The sensor stages are [`capture`], [`decode`], [`flow_table`] and [`dns`], with
//! [`host_addresses`] keeping the host's addresses current for live capture; delivery is
//! [`records_sink`] → [`outbox`] → [`transport`]; the agent's own accounting is
//! [`host_stats`], [`health`] and [`status`]. Threat intel is [`intel_cache`] (the snapshot the
//! aggregator sent, persisted) and [`intel_check`] (the pre-filter that turns matches into
//! `IntelHit` records), plugged into the pipeline by [`intel_observer`].
// `unsafe` is denied everywhere but `capture::packet_socket` and `capture::rx_ring`: the socket
// and ring FFI.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod capture;
pub mod config;
pub mod conntrack;
pub mod decode;
pub mod dns;
pub mod enroll;
pub mod flow_table;
pub mod health;
pub mod host_addresses;
pub mod host_stats;
pub mod identity;
pub mod imds;
pub mod intel_cache;
pub mod intel_check;
pub mod intel_observer;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod record_json;
pub mod records_sink;
pub mod renewal;
pub mod replay;
pub mod replay_upload;
pub mod run;
pub mod sensor;
pub mod status;
pub mod summaries;
pub mod tls;
pub mod transport;
pub mod upload;
