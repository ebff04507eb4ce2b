//! Which CloudTrail files `serve` has read, in a sled tree, so a restart does not read them
//! again, and how far into a growing line file.
//!
//! Invariants: a file is marked only after all its events were handed to detection; the mark
//! holds the file's length and modification time, so a file that changes afterwards is looked
//! at again. A file written once (gzip, `{"Records":…}`, an array) is then read again whole; a
//! newline-delimited file's mark also holds a [`LinesCursor`] and the fingerprint of the bytes
//! before it, so an appended file is read from the cursor and only a replaced or cut one from
//! the start. Marks are flushed before they count. A damaged mark reads as "not read" (the file
//! is read again), never a panic.

use std::path::Path;
use std::time::UNIX_EPOCH;

use super::resume::LinesCursor;

/// Why the tree could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cloudtrail read-files tree: {0}")]
pub struct SeenError(#[from] sled::Error);

/// A file's identity for "already read": length and modification time (ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, ns since the epoch (0 when the platform gives none).
    pub modified_ns: u128,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Self {
            len: meta.len(),
            modified_ns,
        }
    }

    fn encode(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.len.to_be_bytes());
        b[8..].copy_from_slice(&self.modified_ns.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let (len, rest) = b.split_first_chunk::<8>()?;
        let ns: [u8; 16] = rest.try_into().ok()?;
        Some(Self {
            len: u64::from_be_bytes(*len),
            modified_ns: u128::from_be_bytes(ns),
        })
    }
}

/// What is remembered about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Read whole when it had this stamp.
    Whole(FileStamp),
    /// A line file read up to `cursor` when it had `stamp`; `fingerprint` is
    /// [`super::resume::fingerprint`] of the bytes before the cursor.
    Lines {
        /// The file's stamp when it was read.
        stamp: FileStamp,
        /// Where the next read starts.
        cursor: LinesCursor,
        /// The fingerprint of the consumed bytes.
        fingerprint: u64,
    },
}

impl Mark {
    /// The stamp the file had when it was read.
    pub fn stamp(&self) -> FileStamp {
        match *self {
            Self::Whole(stamp) | Self::Lines { stamp, .. } => stamp,
        }
    }

    fn encode(self) -> Vec<u8> {
        match self {
            Self::Whole(stamp) => stamp.encode().to_vec(),
            Self::Lines {
                stamp,
                cursor,
                fingerprint,
            } => {
                let mut b = stamp.encode().to_vec();
                b.extend_from_slice(&cursor.offset.to_be_bytes());
                b.extend_from_slice(&cursor.line.to_be_bytes());
                b.extend_from_slice(&fingerprint.to_be_bytes());
                b
            }
        }
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let (stamp, rest) = b.split_first_chunk::<24>()?;
        let stamp = FileStamp::decode(stamp)?;
        if rest.is_empty() {
            return Some(Self::Whole(stamp));
        }
        let (offset, rest) = rest.split_first_chunk::<8>()?;
        let (line, rest) = rest.split_first_chunk::<8>()?;
        let fingerprint: [u8; 8] = rest.try_into().ok()?;
        Some(Self::Lines {
            stamp,
            cursor: LinesCursor {
                offset: u64::from_be_bytes(*offset),
                line: u64::from_be_bytes(*line),
            },
            fingerprint: u64::from_be_bytes(fingerprint),
        })
    }
}

/// The read-files tree.
#[derive(Debug, Clone)]
pub struct SeenFiles {
    tree: sled::Tree,
}

impl SeenFiles {
    /// Uses `tree` (e.g. the ingest store's `cloudtrail_files`).
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    fn key(path: &Path) -> Vec<u8> {
        path.to_string_lossy().into_owned().into_bytes()
    }

    /// Whether `path` was read when it had `stamp`.
    ///
    /// # Errors
    /// [`SeenError`] when sled fails.
    pub fn is_read(&self, path: &Path, stamp: FileStamp) -> Result<bool, SeenError> {
        Ok(self.mark(path)?.map(|m| m.stamp()) == Some(stamp))
    }

    /// What is remembered about `path` (`None`: never read, or the mark is damaged).
    ///
    /// # Errors
    /// [`SeenError`] when sled fails.
    pub fn mark(&self, path: &Path) -> Result<Option<Mark>, SeenError> {
        Ok(self
            .tree
            .get(Self::key(path))?
            .and_then(|v| Mark::decode(&v)))
    }

    /// Records `mark` for `path`, flushed.
    ///
    /// # Errors
    /// [`SeenError`] when sled fails.
    pub fn set_mark(&self, path: &Path, mark: Mark) -> Result<(), SeenError> {
        self.tree.insert(Self::key(path), mark.encode())?;
        self.tree.flush()?;
        Ok(())
    }

    /// Records that `path` was read whole with `stamp`, flushed.
    ///
    /// # Errors
    /// [`SeenError`] when sled fails.
    pub fn mark_read(&self, path: &Path, stamp: FileStamp) -> Result<(), SeenError> {
        self.set_mark(path, Mark::Whole(stamp))
    }

    /// Files marked.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether no file is marked.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the store again after the test dropped it: sled's background flusher may hold the
    /// file lock a moment after the drop (in one process only), so wait for it, bounded.
    fn reopen(dir: &Path) -> sled::Db {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match sled::open(dir) {
                Ok(db) => return db,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen kept failing: {e}"),
            }
        }
    }

    #[test]
    fn a_marked_file_is_read_until_it_changes_and_marks_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Path::new("/logs/a.json.gz");
        let stamp = FileStamp {
            len: 10,
            modified_ns: 5,
        };
        {
            let db = sled::open(dir.path()).expect("open");
            let seen = SeenFiles::new(db.open_tree("cloudtrail_files").expect("tree"));
            assert!(!seen.is_read(path, stamp).expect("get"));
            seen.mark_read(path, stamp).expect("mark");
            assert!(seen.is_read(path, stamp).expect("get"));
            assert!(
                !seen
                    .is_read(path, FileStamp { len: 11, ..stamp })
                    .expect("get")
            );
        }
        let db = reopen(dir.path());
        let tree = db.open_tree("cloudtrail_files").expect("tree");
        let seen = SeenFiles::new(tree.clone());
        assert!(seen.is_read(path, stamp).expect("get"));
        tree.insert(b"/logs/b.json".as_slice(), b"junk".as_slice())
            .expect("insert");
        assert!(
            !seen
                .is_read(Path::new("/logs/b.json"), stamp)
                .expect("damaged mark is unread")
        );
    }

    #[test]
    fn a_line_file_mark_keeps_its_cursor_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Path::new("/logs/a.jsonl");
        let mark = Mark::Lines {
            stamp: FileStamp {
                len: 300,
                modified_ns: 7,
            },
            cursor: LinesCursor {
                offset: 290,
                line: 4,
            },
            fingerprint: 0xfeed,
        };
        {
            let db = sled::open(dir.path()).expect("open");
            let seen = SeenFiles::new(db.open_tree("cloudtrail_files").expect("tree"));
            seen.set_mark(path, mark).expect("mark");
        }
        let db = reopen(dir.path());
        let tree = db.open_tree("cloudtrail_files").expect("tree");
        let seen = SeenFiles::new(tree.clone());
        assert_eq!(seen.mark(path).expect("get"), Some(mark));
        assert!(seen.is_read(path, mark.stamp()).expect("get"));
        // A cut mark is damaged, not a panic.
        let mut cut = mark.encode();
        cut.truncate(40);
        tree.insert(b"/logs/c.jsonl".as_slice(), cut)
            .expect("insert");
        assert_eq!(seen.mark(Path::new("/logs/c.jsonl")).expect("get"), None);
    }
}
