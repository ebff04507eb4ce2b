//! Resumable `picket-agent replay --aggregator …`: the records a capture gives are staged once
//! in a file named for the replay's inputs, then uploaded with [`crate::upload`]'s cursor.
//!
//! Why a staged file rather than replaying again on every run: the line number in the staged
//! file is each record's number, fixed once the file is complete. `upload` stores the number
//! of lines read in the same outbox transaction as the batches holding them, so after a
//! `kill -9` at any moment a re-run with the same inputs and data folder finds the same file,
//! skips exactly the lines already in the outbox (acked or not) and sends the rest. Replaying
//! again would have to produce byte-identical output for the numbering to hold, which the
//! pipeline does not promise (the order in which flows of one interval are emitted follows a
//! hash table).
//!
//! The file is written as `<name>.partial` and renamed only after it is complete and synced,
//! so a crash while replaying leaves no file that looks complete; nothing of a partial file is
//! ever uploaded. The name is a hash of everything that shapes the records (the capture and
//! list files' paths, sizes and modification times, and the pipeline settings), so a changed
//! input gets a new file and is uploaded as new data. Once every record is acked the file is
//! removed; its cursor stays in the outbox, so replaying the same unchanged inputs again into
//! the same data folder uploads nothing twice.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why staging failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagingError {
    /// Occurs when an input or the staging folder cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StagingError + '_ {
    move |source| StagingError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where one replay's records are staged for upload.
#[derive(Debug, Clone)]
pub struct Staging {
    /// The complete file, uploaded from.
    pub path: PathBuf,
    /// The file being written.
    pub partial: PathBuf,
    /// Whether an earlier run already staged these records completely: they are uploaded as
    /// they are and the capture is only read again for its report.
    pub resume: bool,
}

impl Staging {
    /// The staging file for a replay of `inputs` (capture and list files, in order) with
    /// `settings` (a description of every other option that shapes the records) in
    /// `<data_dir>/replay/`.
    ///
    /// # Errors
    /// [`StagingError::Io`] naming the folder that cannot be created.
    pub fn prepare(
        data_dir: &Path,
        inputs: &[PathBuf],
        settings: &str,
    ) -> Result<Self, StagingError> {
        let mut h = Sha256::new();
        h.update(settings.as_bytes());
        for input in inputs {
            // An input that cannot be examined is hashed by its name alone: replay reports it
            // (and its exit status says so) when it tries to read it.
            let canonical = std::fs::canonicalize(input).unwrap_or_else(|_| input.clone());
            let (len, mtime) = std::fs::metadata(&canonical).map_or((u64::MAX, 0), |meta| {
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                (meta.len(), mtime)
            });
            h.update([0]);
            h.update(canonical.as_os_str().as_encoded_bytes());
            h.update([0]);
            h.update(len.to_be_bytes());
            h.update(mtime.to_be_bytes());
        }
        let digest = h.finalize();
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let dir = data_dir.join("replay");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("records-{name}.jsonl"));
        let partial = dir.join(format!("records-{name}.jsonl.partial"));
        let resume = path.is_file();
        Ok(Self {
            path,
            partial,
            resume,
        })
    }

    /// Creates (or truncates: a partial file is never uploaded) the file to write records to.
    ///
    /// # Errors
    /// [`StagingError::Io`] naming the file.
    pub fn create_partial(&self) -> Result<File, StagingError> {
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.partial)
            .map_err(io_err(&self.partial))
    }

    /// Makes the written partial file the complete staged file: synced, then renamed, then the
    /// rename synced, so the complete name never points at a file missing its end.
    ///
    /// # Errors
    /// [`StagingError::Io`] naming the file or folder.
    pub fn commit(&self) -> Result<(), StagingError> {
        File::open(&self.partial)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&self.partial))?;
        std::fs::rename(&self.partial, &self.path).map_err(io_err(&self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir))?;
        }
        Ok(())
    }

    /// Removes the staged file once every record in it is acked.
    ///
    /// # Errors
    /// [`StagingError::Io`] naming the file.
    pub fn remove(&self) -> Result<(), StagingError> {
        std::fs::remove_file(&self.path).map_err(io_err(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn same_inputs_find_the_same_complete_file_and_changed_ones_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("a.pcap");
        std::fs::write(&pcap, b"capture").unwrap();
        let inputs = vec![pcap.clone()];
        let first = Staging::prepare(dir.path(), &inputs, "interval=60").unwrap();
        assert!(!first.resume);
        first.create_partial().unwrap().write_all(b"{}\n").unwrap();
        // Not complete yet: a run killed here starts the file again.
        assert!(
            !Staging::prepare(dir.path(), &inputs, "interval=60")
                .unwrap()
                .resume
        );
        first.commit().unwrap();
        let again = Staging::prepare(dir.path(), &inputs, "interval=60").unwrap();
        assert!(again.resume);
        assert_eq!(again.path, first.path);
        assert_eq!(std::fs::read(&again.path).unwrap(), b"{}\n");
        let other = Staging::prepare(dir.path(), &inputs, "interval=10").unwrap();
        assert_ne!(other.path, first.path);
        assert!(!other.resume);
        std::fs::write(&pcap, b"another capture").unwrap();
        assert_ne!(
            Staging::prepare(dir.path(), &inputs, "interval=60")
                .unwrap()
                .path,
            first.path
        );
        again.remove().unwrap();
        assert!(
            !Staging::prepare(dir.path(), &inputs, "interval=60")
                .unwrap()
                .resume
        );
    }

    #[test]
    fn an_unreadable_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"").unwrap();
        // The data folder is a file: its replay/ folder cannot be created.
        let err = Staging::prepare(&file, &[], "").unwrap_err();
        assert!(err.to_string().contains("plain"), "{err}");
    }
}
