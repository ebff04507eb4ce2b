//! GuardDuty's S3 export layout under a folder (the folder stands in for the bucket):
//! `AWSLogs/<account>/GuardDuty/<region>/YYYY/MM/DD/<exporter>-<seq>-<n>.jsonl.gz` (`seq`
//! counts batches from the ms the exporter first ran, 13 digits), one gzip
//! JSON-lines object per account and region of a batch, dated by the export (UTC), as
//! GuardDuty dates its exports.
//!
//! Invariants:
//! - The objects of a batch are named by the exporter's sequence number, and their paths are
//!   saved as `pending` before any is written.
//! - Each object is written under a temporary name, fsynced and renamed, so an object is either
//!   complete or absent.
//! - On the next delivery, pending objects (of a batch whose cursor was never saved, which will
//!   be sent again) are deleted first: no loss, no duplicates.
//! - Account and region become folder names only if they are plain (`[A-Za-z0-9-]`);
//!   anything else is written under `invalid`, so a hostile value cannot leave the folder.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tracing::warn;

use super::super::ExportError;
use super::super::position::{Position, SinkState};
use super::{Item, sync_dir};
use crate::findings::model::Timestamp;

/// The S3-layout sink.
#[derive(Debug)]
pub struct S3Layout {
    root: PathBuf,
    name: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `s` if it is safe as one folder name, else `invalid`.
fn component(s: &str) -> &str {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        s
    } else {
        "invalid"
    }
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

impl S3Layout {
    /// A sink writing under `root` for exporter `name`.
    pub fn new(root: PathBuf, name: &str) -> Self {
        Self {
            root,
            name: name.to_owned(),
        }
    }

    /// The folder of `account`/`region` objects exported on `day`.
    pub fn folder(&self, account: &str, region: &str, day: Timestamp) -> PathBuf {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(day.0) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        self.root
            .join("AWSLogs")
            .join(component(account))
            .join("GuardDuty")
            .join(component(region))
            .join(format!("{:04}", t.year()))
            .join(format!("{:02}", u8::from(t.month())))
            .join(format!("{:02}", t.day()))
    }

    /// Writes `items` as one object per account and region; `pos.sink` gets the next sequence
    /// number for the caller to save with the cursor.
    ///
    /// # Errors
    /// [`ExportError::Io`] naming the object; the next call removes what was written.
    pub fn write_batch(
        &self,
        items: &[Item],
        pos: &mut Position,
        save: &dyn Fn(&Position) -> Result<(), ExportError>,
        now: Timestamp,
    ) -> Result<(), ExportError> {
        let (seq, pending) = match &pos.sink {
            SinkState::S3Layout { seq, pending } => (*seq, pending.clone()),
            // A new (or renamed) exporter starts its numbers at the clock, in ms, so it never
            // writes over objects an earlier exporter of the same name left.
            _ => (u64::try_from(now.0).unwrap_or(0), Vec::new()),
        };
        if !pending.is_empty() {
            for path in &pending {
                for p in [path.clone(), tmp_of(path)] {
                    match fs::remove_file(&p) {
                        Ok(()) => {
                            warn!(object = %p.display(), "removed export object of an unfinished batch; it is sent again")
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&p)(e)),
                    }
                }
            }
            pos.sink = SinkState::S3Layout {
                seq,
                pending: Vec::new(),
            };
            save(pos)?;
        }
        let mut groups: BTreeMap<(&str, &str), Vec<&Item>> = BTreeMap::new();
        for item in items {
            groups
                .entry((component(&item.account_id), component(&item.region)))
                .or_default()
                .push(item);
        }
        let objects: Vec<(PathBuf, Vec<&Item>)> = groups
            .into_iter()
            .enumerate()
            .map(|(n, ((account, region), items))| {
                let file = format!("{}-{seq:013}-{n}.jsonl.gz", self.name);
                (self.folder(account, region, now).join(file), items)
            })
            .collect();
        if objects.is_empty() {
            return Ok(());
        }
        pos.sink = SinkState::S3Layout {
            seq,
            pending: objects.iter().map(|(p, _)| p.clone()).collect(),
        };
        save(pos)?;
        for (path, items) in &objects {
            let dir = path.parent().unwrap_or(&self.root);
            fs::create_dir_all(dir).map_err(io(dir))?;
            let tmp = tmp_of(path);
            let file = fs::File::create(&tmp).map_err(io(&tmp))?;
            let mut gz = GzEncoder::new(file, Compression::default());
            for item in items {
                gz.write_all(&item.bytes).map_err(io(&tmp))?;
                gz.write_all(b"\n").map_err(io(&tmp))?;
            }
            let file = gz.finish().map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, path).map_err(io(path))?;
            sync_dir(dir)?;
        }
        pos.sink = SinkState::S3Layout {
            seq: seq.saturating_add(1),
            pending: Vec::new(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_account_or_region_names_stay_inside_the_folder() {
        let layout = S3Layout::new(PathBuf::from("/x"), "e");
        let p = layout.folder("../../etc", "eu-west-1", Timestamp(0));
        assert_eq!(
            p,
            PathBuf::from("/x/AWSLogs/invalid/GuardDuty/eu-west-1/1970/01/01")
        );
        assert_eq!(component("a/b"), "invalid");
        assert_eq!(component(""), "invalid");
        assert_eq!(component("123456789012"), "123456789012");
    }
}
