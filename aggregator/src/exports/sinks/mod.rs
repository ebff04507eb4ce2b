//! Where exports go:
//!
//! - [`jsonl_file`]: a JSON-lines file, rotated by size and age.
//! - [`s3_layout`]: gzip JSON-lines objects in GuardDuty's S3 export layout under a folder.
//! - [`webhook`]: HTTP POSTs (a JSON array per batch, or one finding per request).
//!
//! File sinks make a batch durable (written and fsynced) and record how to undo an unfinished
//! one in the position, so a restart neither loses nor repeats findings. A webhook is
//! at-least-once: a request whose answer was lost is sent again.

pub mod jsonl_file;
pub mod s3_layout;
pub mod webhook;

use std::sync::Arc;

use super::ExportError;
use super::config::SinkSpec;
use super::position::{Position, PositionStore};
use crate::findings::model::Timestamp;

/// One finding, encoded in the exporter's format.
#[derive(Debug, Clone)]
pub struct Item {
    /// The finding's account (S3 layout folders).
    pub account_id: String,
    /// The finding's region (S3 layout folders).
    pub region: String,
    /// The finding's `updatedAt` (export lag).
    pub updated_at: Timestamp,
    /// The document, without a newline.
    pub bytes: Vec<u8>,
}

/// An opened sink.
#[derive(Debug)]
pub enum Sink {
    /// See [`jsonl_file`].
    Jsonl(Arc<jsonl_file::JsonlFile>),
    /// See [`s3_layout`].
    S3Layout(Arc<s3_layout::S3Layout>),
    /// See [`webhook`] (boxed: the HTTP client is large).
    Webhook(Box<webhook::Webhook>),
}

impl Sink {
    /// Opens the sink `spec` describes; `name` is the exporter's.
    ///
    /// # Errors
    /// [`ExportError::Io`] when a webhook's CA file cannot be read or holds no certificate.
    pub fn open(name: &str, spec: &SinkSpec) -> Result<Self, ExportError> {
        Ok(match spec {
            SinkSpec::Jsonl {
                path,
                rotate_bytes,
                rotate_after,
            } => Self::Jsonl(Arc::new(jsonl_file::JsonlFile::new(
                path.clone(),
                *rotate_bytes,
                *rotate_after,
            ))),
            SinkSpec::S3Layout { root } => {
                Self::S3Layout(Arc::new(s3_layout::S3Layout::new(root.clone(), name)))
            }
            SinkSpec::Webhook {
                url,
                headers,
                ca,
                single,
                timeout,
            } => Self::Webhook(Box::new(webhook::Webhook::new(
                url.clone(),
                headers.clone(),
                ca.as_deref(),
                *single,
                *timeout,
            )?)),
        })
    }

    /// Delivers `items` durably (file sinks) or to the endpoint (webhook), updating the sink
    /// part of `pos` (saved through `positions` where a crash must be undone). `sent` counts
    /// the items a webhook in single mode has already delivered, so a retry resumes after them.
    ///
    /// # Errors
    /// Whatever failed; the caller retries with the same items.
    pub async fn deliver(
        &self,
        name: &str,
        items: &Arc<Vec<Item>>,
        pos: &mut Position,
        positions: &PositionStore,
        sent: &mut usize,
    ) -> Result<(), ExportError> {
        match self {
            Self::Jsonl(file) => {
                let (file, items, positions) =
                    (Arc::clone(file), Arc::clone(items), positions.clone());
                let (mut p, name) = (pos.clone(), name.to_owned());
                let (result, p) = tokio::task::spawn_blocking(move || {
                    let save = |p: &Position| positions.save(&name, p);
                    let r = file.write_batch(&items, &mut p, &save, Timestamp::now());
                    (r, p)
                })
                .await
                .map_err(|e| ExportError::Task(e.to_string()))?;
                *pos = p;
                result
            }
            Self::S3Layout(layout) => {
                let (layout, items, positions) =
                    (Arc::clone(layout), Arc::clone(items), positions.clone());
                let (mut p, name) = (pos.clone(), name.to_owned());
                let (result, p) = tokio::task::spawn_blocking(move || {
                    let save = |p: &Position| positions.save(&name, p);
                    let r = layout.write_batch(&items, &mut p, &save, Timestamp::now());
                    (r, p)
                })
                .await
                .map_err(|e| ExportError::Task(e.to_string()))?;
                *pos = p;
                result
            }
            Self::Webhook(hook) => hook.deliver(items, sent).await,
        }
    }
}

/// fsyncs a folder so a rename or a new file in it survives a crash.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), ExportError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ExportError::Io {
            path: dir.to_owned(),
            source,
        })
}
