//! Which CloudTrail files `serve` has read, in a sled tree, so a restart does not read them
//! again.
//!
//! Invariants: a file is marked only after all its events were handed to detection; the mark
//! holds the file's length and modification time, so a file that changes afterwards (a
//! rewritten object, an appended line file) is read again — whole, so an appended file's earlier
//! events are counted twice, which only repeats findings' counts. Marks are flushed before
//! they count. A damaged mark reads as "not read" (the file is read again), never a panic.

use std::path::Path;
use std::time::UNIX_EPOCH;

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
        Ok(self
            .tree
            .get(Self::key(path))?
            .and_then(|v| FileStamp::decode(&v))
            == Some(stamp))
    }

    /// Records that `path` was read whole with `stamp`, flushed.
    ///
    /// # Errors
    /// [`SeenError`] when sled fails.
    pub fn mark_read(&self, path: &Path, stamp: FileStamp) -> Result<(), SeenError> {
        self.tree.insert(Self::key(path), &stamp.encode()[..])?;
        self.tree.flush()?;
        Ok(())
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
        let db = sled::open(dir.path()).expect("reopen");
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
}
