//! Exports: stored findings delivered to files, GuardDuty's S3 layout or webhooks, in
//! GuardDuty JSON, EventBridge envelopes, ASFF or OCSF. Downstream of the findings store;
//! nothing upstream knows exports exist.
//!
//! - [`config`]: `[[exports]]` tables and their checks.
//! - [`formats`]: one module per format, all from the same stored finding.
//! - [`sinks`]: one module per destination.
//! - [`position`]: where each exporter stands, persisted beside the findings.
//! - [`backoff`]: retry waits.
//! - [`runner`]: one task per exporter, started and stopped by `serve`.
//! - [`offline`]: `findings export`, a one-shot export with the server stopped.
//!
//! Delivery:
//! - Each exporter walks the store's update-order index (`by_updated`) from its persisted
//!   cursor (`updatedAt`, id) with [`crate::findings::store::FindingStore::updated_since`].
//!   A finding updated again (a repeat raised its `count`) moves to a later position and is
//!   exported again, as an update: the same id, higher `count`, later `updatedAt`. This is what
//!   GuardDuty does for EventBridge; consumers keep the latest per id. (Archiving through the
//!   store does not change `updatedAt`, so it is not re-exported by itself.)
//! - Only updates at least `settle_secs` old are read: detection writes a finding when it
//!   flushes (every 10 s), so an update can reach the store up to that long after its
//!   `updatedAt`. Reading only settled updates keeps the cursor from passing a finding that is
//!   about to be written with an earlier time. The lag metric includes this delay.
//! - At least once, and for file sinks exactly once across restarts: a batch is written and
//!   fsynced, then the cursor is saved (flushed). Failures are retried with exponential backoff
//!   and jitter until they succeed or the server stops; nothing is dropped. A restart resumes
//!   from the saved cursor; the file sinks undo what an interrupted batch left (see
//!   [`sinks::jsonl_file`] and [`sinks::s3_layout`]). A webhook may receive a batch twice.
//! - Export lag per exporter ([`runner::ExportStats`]) is `now − updatedAt` of the newest
//!   finding exported, and 0 when the exporter has caught up.

pub mod backoff;
pub mod config;
pub mod formats;
pub mod offline;
pub mod position;
pub mod runner;
pub mod sinks;

use std::path::PathBuf;

pub use config::{ExportConfig, ExportSpec};
pub use runner::{ExportStats, Exports};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Occurs when the findings store cannot be read.
    #[error(transparent)]
    Store(#[from] crate::findings::store::StoreError),
    /// Occurs when the positions tree cannot be read or written.
    #[error("export positions: {0}")]
    Sled(sled::Error),
    /// Occurs when an exporter's saved position is damaged.
    #[error("exporter {name}: {why} (delete its entry in the export_positions tree to start over)")]
    Position {
        /// The exporter.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Occurs when a file or folder cannot be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Occurs when a webhook request cannot be made or gets no answer.
    #[error("POST {url}: {why}")]
    Http {
        /// The endpoint.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// Occurs when a webhook answers with a status other than 2xx.
    #[error("POST {url}: HTTP {status}: {body}")]
    Status {
        /// The endpoint.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// Occurs when a finding or position cannot be encoded.
    #[error("encoding: {0}")]
    Encode(serde_json::Error),
    /// Occurs when a blocking task panics or is cancelled.
    #[error("export task: {0}")]
    Task(String),
}
