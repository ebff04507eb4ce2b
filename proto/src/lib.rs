//! Picket's wire protocol: the `Ingest` gRPC service, its frames and records (generated from
//! `proto/picket/v1/*.proto` by tonic-prost-build through protox), and the agent identity that
//! both the frames and the agents' certificates carry.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod identity;
pub mod raw_frame;

/// Generated protobuf and gRPC code for package `picket.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("picket.v1");
}

pub use identity::{AgentId, IdentityError, MemberUserError, MemberUserId};
pub use raw_frame::{BatchSealTime, RawAgentFrame, RawFrameKind};

/// Records an agent puts in one batch at most; an aggregator's per-batch cap may not go below it.
pub const AGENT_BATCH_RECORDS: usize = 1000;

/// The kind of a record, as used in per-kind counters (`flow`, `dns`, `intel_hit`, `host_stats`).
pub fn record_kind(record: &v1::Record) -> &'static str {
    use v1::record::Record as R;
    match &record.record {
        Some(R::Flow(_)) => "flow",
        Some(R::Dns(_)) => "dns",
        Some(R::IntelHit(_)) => "intel_hit",
        Some(R::HostStats(_)) => "host_stats",
        None => "empty",
    }
}
