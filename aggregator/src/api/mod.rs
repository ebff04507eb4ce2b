//! The findings query API (issue 7): list with filters and pages, get, archive/unarchive and
//! statistics, limited to what the caller's certificate may see.
//!
//! - [`caller`]: who is asking (administrator, member user, agent) and what they may see.
//! - [`criteria`]: filters from GuardDuty criterion JSON and short conditions.
//! - [`service`]: the operations over the findings store, transport-independent.
//! - [`grpc`]: the `picket.v1.Findings` service on the main listener.
//! - [`http`]: the same as HTTP/JSON on `[api] http_listen`.
//! - [`error`]: the one error type and its gRPC mapping.
//! - [`table`]: text tables for the CLI.

pub mod caller;
pub mod criteria;
pub mod error;
pub mod grpc;
pub mod http;
pub mod service;
pub mod table;

pub use caller::{Caller, Visibility};
pub use error::ApiError;
pub use service::{FindingsApi, ListPage, ListRequest, Statistics};
