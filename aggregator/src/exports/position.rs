//! Where each exporter stands, persisted in the sled tree `export_positions` of the findings
//! database (beside the findings it points into), keyed by exporter name.
//!
//! A position is the cursor on the store's update-order index plus what the sink needs to
//! make a crash harmless: the committed length of the JSON-lines file, or the S3-layout
//! objects of a batch being written. Saving flushes before returning.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ExportError;
use crate::findings::store::{FindingStore, UpdatedCursor};

/// The sled tree that holds positions.
pub const TREE: &str = "export_positions";

/// One exporter's persisted position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The last `by_updated` entry handled, as hex; `None` before the first batch.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Findings exported so far.
    #[serde(default)]
    pub exported: u64,
    /// The sink's own state.
    #[serde(default)]
    pub sink: SinkState,
}

/// Sink state saved with the cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkState {
    /// Nothing (webhooks).
    #[default]
    None,
    /// The JSON-lines file: bytes that belong to committed batches, and when it was started.
    Jsonl {
        /// Committed length of the file.
        len: u64,
        /// When the file was started (ms), for rotation by age.
        opened_at_ms: i64,
    },
    /// The S3 layout: the next object sequence number and the objects of an uncommitted batch.
    S3Layout {
        /// Sequence number of the next batch's objects.
        seq: u64,
        /// Objects being written; removed on recovery since their batch will be sent again.
        pending: Vec<PathBuf>,
    },
}

impl Position {
    /// The cursor, decoded.
    ///
    /// # Errors
    /// [`ExportError::Position`] when the stored cursor is not a valid index position.
    pub fn cursor(&self, name: &str) -> Result<Option<UpdatedCursor>, ExportError> {
        let Some(hex) = &self.cursor else {
            return Ok(None);
        };
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>();
        bytes
            .and_then(|b| UpdatedCursor::from_bytes(&b))
            .map(Some)
            .ok_or_else(|| ExportError::Position {
                name: name.to_owned(),
                why: format!("cursor {hex:?} is not a findings index position"),
            })
    }

    /// Sets the cursor.
    pub fn set_cursor(&mut self, cursor: &UpdatedCursor) {
        self.cursor = Some(
            cursor
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        );
    }
}

/// The positions tree.
#[derive(Debug, Clone)]
pub struct PositionStore {
    tree: sled::Tree,
}

impl PositionStore {
    /// Opens the tree in the findings database.
    ///
    /// # Errors
    /// [`ExportError::Store`].
    pub fn open(store: &FindingStore) -> Result<Self, ExportError> {
        Ok(Self {
            tree: store.aux_tree(TREE)?,
        })
    }

    /// The saved position of `name`, or the start.
    ///
    /// # Errors
    /// [`ExportError::Position`] when the record does not decode (it is never silently reset:
    /// starting over would export everything again); [`ExportError::Sled`].
    pub fn load(&self, name: &str) -> Result<Position, ExportError> {
        let Some(bytes) = self.tree.get(name.as_bytes()).map_err(ExportError::Sled)? else {
            return Ok(Position::default());
        };
        let pos: Position = serde_json::from_slice(&bytes).map_err(|e| ExportError::Position {
            name: name.to_owned(),
            why: format!("stored position does not decode: {e}"),
        })?;
        pos.cursor(name)?;
        Ok(pos)
    }

    /// Saves `pos` for `name` and flushes.
    ///
    /// # Errors
    /// [`ExportError::Sled`].
    pub fn save(&self, name: &str, pos: &Position) -> Result<(), ExportError> {
        let bytes = serde_json::to_vec(pos).map_err(ExportError::Encode)?;
        self.tree
            .insert(name.as_bytes(), bytes)
            .map_err(ExportError::Sled)?;
        self.tree.flush().map_err(ExportError::Sled)?;
        Ok(())
    }

    /// Overwrites the raw record (tests corrupt positions with it).
    #[cfg(test)]
    fn put_raw(&self, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
        self.tree
            .insert(name.as_bytes(), bytes)
            .map_err(ExportError::Sled)?;
        self.tree.flush().map_err(ExportError::Sled)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_position_is_an_error_naming_the_exporter_never_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FindingStore::open(dir.path()).expect("open");
        let positions = PositionStore::open(&store).expect("positions");
        assert_eq!(positions.load("fresh").expect("load"), Position::default());
        let mut pos = Position {
            exported: 3,
            ..Position::default()
        };
        let cursor = UpdatedCursor::from_bytes(
            &[
                &[0x80, 0, 0, 0, 0, 0, 0, 1][..],
                b"0123456789abcdef0123456789abcdef",
            ]
            .concat(),
        )
        .expect("cursor");
        pos.set_cursor(&cursor);
        positions.save("good", &pos).expect("save");
        let back = positions.load("good").expect("load");
        assert_eq!(back.cursor("good").expect("cursor"), Some(cursor));
        positions
            .put_raw("torn", b"{\"cursor\": \"80")
            .expect("put");
        let err = positions.load("torn").expect_err("damaged").to_string();
        assert!(err.contains("exporter torn"), "{err}");
        positions
            .put_raw("odd", b"{\"cursor\": \"zz\"}")
            .expect("put");
        let err = positions.load("odd").expect_err("bad cursor").to_string();
        assert!(err.contains("exporter odd") && err.contains("zz"), "{err}");
        let err = crate::exports::Exports::start(
            &store,
            vec![crate::exports::ExportSpec {
                name: "odd".into(),
                format: crate::exports::formats::Format::GuardDuty,
                sink: crate::exports::config::SinkSpec::S3Layout {
                    root: dir.path().join("b"),
                },
                min_severity: 0.0,
                include_archived: false,
                batch_size: std::num::NonZeroUsize::MIN,
                poll: std::time::Duration::from_secs(1),
                settle: std::time::Duration::ZERO,
                retry_initial: std::time::Duration::from_millis(1),
                retry_max: std::time::Duration::from_millis(1),
            }],
        )
        .expect_err("refused");
        assert!(err.to_string().contains("exporter odd"), "{err}");
    }
}
