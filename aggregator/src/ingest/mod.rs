//! Ingest: the `Ingest` gRPC service agents stream into, the sled store it writes batches to,
//! the retention of those batches, and the per-identity session limit.

pub mod retention;
pub mod service;
pub mod sessions;
pub mod store;
pub mod wire;

pub use service::{IngestRoute, IngestService, StoredBatch};
pub use sessions::SessionLimiter;
pub use store::{AppendOutcome, BatchStore, StoreError};
