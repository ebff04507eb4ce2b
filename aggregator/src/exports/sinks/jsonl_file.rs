//! A JSON-lines file of exported findings, rotated by size and age.
//!
//! Invariants:
//! - The position holds the file's committed length: the bytes of batches whose cursor was
//!   saved. A batch is appended and fsynced, then the runner saves the new length with the
//!   new cursor.
//! - Before every write the file is cut back to the committed length, so what a crash or a
//!   failed write left after it (a half-written line, or a whole batch whose cursor was never
//!   saved and which will be sent again) is removed: no loss, no duplicates.
//! - Rotation renames the file to `<path>.<UTC time>` and saves length 0 before anything is
//!   written to the new file. A file shorter than the committed length (rotated or removed by
//!   someone else) is accepted as it is and logged.
//! - An exporter without a saved file length (new, or renamed) appends to whatever the file
//!   already holds, after completing its last line; it never cuts a file it did not write.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use tracing::{info, warn};

use super::super::ExportError;
use super::super::position::{Position, SinkState};
use super::{Item, sync_dir};
use crate::findings::model::Timestamp;

/// The file sink.
#[derive(Debug)]
pub struct JsonlFile {
    path: PathBuf,
    rotate_bytes: u64,
    rotate_after: Option<Duration>,
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

impl JsonlFile {
    /// A sink writing `path`.
    pub fn new(path: PathBuf, rotate_bytes: u64, rotate_after: Option<Duration>) -> Self {
        Self {
            path,
            rotate_bytes,
            rotate_after,
        }
    }

    /// The file written to.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends `items` as lines and fsyncs, rotating first when due; `pos.sink` gets the new
    /// committed length for the caller to save with the cursor.
    ///
    /// # Errors
    /// [`ExportError::Io`] naming the file; a failed write is undone by the next call.
    pub fn write_batch(
        &self,
        items: &[Item],
        pos: &mut Position,
        save: &dyn Fn(&Position) -> Result<(), ExportError>,
        now: Timestamp,
    ) -> Result<(), ExportError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let (mut len, mut opened_at_ms) = match pos.sink {
            SinkState::Jsonl { len, opened_at_ms } => (len, opened_at_ms),
            _ => {
                // Adopt what the file holds (completing its last line) and save that before
                // writing, so the first batch is undone like any other after a crash.
                let len = self.adopt()?;
                pos.sink = SinkState::Jsonl {
                    len,
                    opened_at_ms: now.0,
                };
                save(pos)?;
                (len, now.0)
            }
        };
        let actual = match fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&self.path)(e)),
        };
        if actual < len {
            warn!(file = %self.path.display(), committed = len, actual, "export file is shorter than exported; rotated or removed elsewhere, continuing");
            len = actual;
        }
        if actual == 0 {
            opened_at_ms = now.0;
        }
        let aged = self.rotate_after.is_some_and(|d| {
            now.0.saturating_sub(opened_at_ms) >= i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        });
        if len > 0 && (len >= self.rotate_bytes || aged) {
            let rotated = self.rotated_name(now);
            fs::rename(&self.path, &rotated).map_err(io(&self.path))?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir)?;
            }
            info!(file = %rotated.display(), bytes = len, "export file rotated");
            len = 0;
            opened_at_ms = now.0;
            pos.sink = SinkState::Jsonl { len, opened_at_ms };
            save(pos)?;
        }
        let mut file = self.open()?;
        // Cut off whatever follows the last committed batch: a torn line or an unsaved batch.
        if file.metadata().map_err(io(&self.path))?.len() != len {
            file.set_len(len).map_err(io(&self.path))?;
        }
        let mut buf = Vec::with_capacity(items.iter().map(|i| i.bytes.len() + 1).sum());
        for item in items {
            buf.extend_from_slice(&item.bytes);
            buf.push(b'\n');
        }
        file.seek(SeekFrom::Start(len)).map_err(io(&self.path))?;
        file.write_all(&buf).map_err(io(&self.path))?;
        file.sync_all().map_err(io(&self.path))?;
        pos.sink = SinkState::Jsonl {
            len: len.saturating_add(buf.len() as u64),
            opened_at_ms,
        };
        Ok(())
    }

    fn open(&self) -> Result<fs::File, ExportError> {
        OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io(&self.path))
    }

    /// The length of the file as found, after ending a last line that lacks its newline.
    fn adopt(&self) -> Result<u64, ExportError> {
        let mut file = self.open()?;
        let len = file.metadata().map_err(io(&self.path))?.len();
        if len == 0 {
            return Ok(0);
        }
        file.seek(SeekFrom::Start(len - 1))
            .map_err(io(&self.path))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last).map_err(io(&self.path))?;
        if last == [b'\n'] {
            return Ok(len);
        }
        file.seek(SeekFrom::Start(len)).map_err(io(&self.path))?;
        file.write_all(b"\n").map_err(io(&self.path))?;
        file.sync_all().map_err(io(&self.path))?;
        Ok(len + 1)
    }

    fn rotated_name(&self, now: Timestamp) -> PathBuf {
        let stamp: String = super::super::formats::iso_seconds(now)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let base = self.path.as_os_str().to_owned();
        let mut n = 0u32;
        loop {
            let mut name = base.clone();
            name.push(format!(".{stamp}"));
            if n > 0 {
                name.push(format!("-{n}"));
            }
            let candidate = PathBuf::from(name);
            if !candidate.exists() {
                return candidate;
            }
            n = n.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str) -> Item {
        Item {
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            updated_at: Timestamp(0),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_torn_tail_is_cut_back_to_the_committed_length_before_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/f.jsonl");
        let sink = JsonlFile::new(path.clone(), 1 << 20, None);
        let mut pos = Position::default();
        let save = |_: &Position| Ok(());
        sink.write_batch(&[item("{\"a\":1}")], &mut pos, &save, Timestamp(1))
            .expect("write");
        // A crash mid-batch: half a line that was never committed.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"half\":").expect("tear");
        sink.write_batch(&[item("{\"b\":2}")], &mut pos, &save, Timestamp(2))
            .expect("write");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(
            pos.sink,
            SinkState::Jsonl {
                len: 16,
                opened_at_ms: 1
            }
        );
    }

    #[test]
    fn a_new_exporter_appends_to_an_existing_file_instead_of_cutting_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.jsonl");
        fs::write(&path, "{\"old\":1}\n{\"old\":2}").expect("write");
        let sink = JsonlFile::new(path.clone(), 1 << 20, None);
        let mut pos = Position::default();
        sink.write_batch(&[item("{\"new\":3}")], &mut pos, &|_| Ok(()), Timestamp(5))
            .expect("write");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "{\"old\":1}\n{\"old\":2}\n{\"new\":3}\n"
        );
        assert_eq!(
            pos.sink,
            SinkState::Jsonl {
                len: 30,
                opened_at_ms: 5
            }
        );
    }

    #[test]
    fn the_file_rotates_by_size_and_the_new_length_is_saved_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.jsonl");
        let sink = JsonlFile::new(path.clone(), 4096, Some(Duration::from_secs(60)));
        let mut pos = Position::default();
        let saved = std::cell::RefCell::new(Vec::new());
        let save = |p: &Position| {
            saved.borrow_mut().push(p.sink.clone());
            Ok(())
        };
        let big = "x".repeat(5000);
        sink.write_batch(&[item(&big)], &mut pos, &save, Timestamp(0))
            .expect("write");
        // A new exporter saves the length it adopts before writing.
        assert_eq!(
            saved.borrow().as_slice(),
            &[SinkState::Jsonl {
                len: 0,
                opened_at_ms: 0
            }]
        );
        saved.borrow_mut().clear();
        sink.write_batch(&[item("small")], &mut pos, &save, Timestamp(1_000))
            .expect("write");
        assert_eq!(
            saved.borrow().as_slice(),
            &[SinkState::Jsonl {
                len: 0,
                opened_at_ms: 1_000
            }]
        );
        assert_eq!(fs::read_to_string(&path).expect("read"), "small\n");
        let rotated: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "f.jsonl")
            .collect();
        assert_eq!(rotated.len(), 1);
        assert_eq!(fs::metadata(rotated[0].path()).expect("meta").len(), 5001);
        // By age: a minute later the small file rotates too.
        sink.write_batch(&[item("later")], &mut pos, &save, Timestamp(61_000))
            .expect("write");
        assert_eq!(fs::read_to_string(&path).expect("read"), "later\n");
    }
}
