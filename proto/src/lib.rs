//! Picket's wire protocol: the `Ingest` gRPC service, its frames and records (generated from
//! `proto/picket/v1/*.proto` by tonic-prost-build through protox), and the agent identity that
//! both the frames and the agents' certificates carry.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod identity;

/// Generated protobuf and gRPC code for package `picket.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("picket.v1");
}

pub use identity::{AgentId, IdentityError};
