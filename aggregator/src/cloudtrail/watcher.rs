//! `serve`'s CloudTrail input: watches the configured files and folders (notify, recursive)
//! and rescans them every `rescan_secs` (for file systems whose events are missed), reads every
//! file that is new or changed since it was read ([`super::seen`]) and hands its events to
//! detection as one [`ApiBatch`], on a bounded channel, in path order. A newline-delimited
//! file that grew is read from where the last read stopped ([`super::resume`]), so its earlier
//! events are not counted again; other files are written once and read whole.
//!
//! A burst of changes is read once after `debounce_ms` of quiet, so a file still being written
//! is not read half-way. Problems are logged as `file:position: why` (at most
//! [`MAX_LOGGED_PROBLEMS`] per file, the rest counted), and a file with problems is still marked
//! read: reading it again would give the same problems.

use std::path::PathBuf;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::event::ApiEvent;
use super::reader::{FileKind, Reader, collect_files};
use super::resume::{LinesCursor, fingerprint};
use super::seen::{FileStamp, Mark, SeenFiles};

/// Problems logged per file; the rest are counted in one line.
pub const MAX_LOGGED_PROBLEMS: usize = 20;

/// The events of one CloudTrail file, for detection.
#[derive(Debug, Clone)]
pub struct ApiBatch {
    /// The file they came from.
    pub file: PathBuf,
    /// Its events, in file order.
    pub events: Vec<ApiEvent>,
}

/// What the feed watches and how often it looks.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// Files and folders.
    pub paths: Vec<PathBuf>,
    /// Quiet time after a change before reading.
    pub debounce: Duration,
    /// Time between full rescans.
    pub rescan: Duration,
}

/// Why the feed could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// Occurs when the platform watcher cannot be created.
    #[error("creating the CloudTrail file watcher: {0}")]
    Create(notify::Error),
    /// Occurs when a configured path cannot be watched (missing, no permission, inotify limit).
    #[error("watching {path} for CloudTrail files: {source}")]
    Watch {
        /// The path.
        path: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
}

/// The running feed; dropping it stops watching and reading.
pub struct CloudTrailFeed {
    _watcher: RecommendedWatcher,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for CloudTrailFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTrailFeed").finish_non_exhaustive()
    }
}

impl Drop for CloudTrailFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `settings.paths`; reads what is there now, then what arrives.
///
/// # Errors
/// [`FeedError`] naming the path that cannot be watched.
pub fn spawn(
    settings: FeedSettings,
    seen: SeenFiles,
    tx: mpsc::Sender<ApiBatch>,
) -> Result<CloudTrailFeed, FeedError> {
    // Capacity one: a queued signal already means "scan soon".
    let (signal_tx, mut signal_rx) = mpsc::channel::<()>(1);
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _full_means_already_pending = signal_tx.try_send(());
            }
            Err(e) => warn!(error = %e, "CloudTrail file watcher error"),
        })
        .map_err(FeedError::Create)?;
    for path in &settings.paths {
        watcher
            .watch(path, RecursiveMode::Recursive)
            .map_err(|source| FeedError::Watch {
                path: path.clone(),
                source,
            })?;
        debug!(path = %path.display(), "watching for CloudTrail files");
    }
    let task = tokio::spawn(async move {
        let mut reader = Some(Reader::new());
        let mut rescan = tokio::time::interval(settings.rescan);
        loop {
            // The interval's first tick is immediate: the start-up scan.
            tokio::select! {
                _ = rescan.tick() => {}
                s = signal_rx.recv() => {
                    if s.is_none() { return; }
                    loop {
                        match tokio::time::timeout(settings.debounce, signal_rx.recv()).await {
                            Ok(Some(())) => continue,
                            Ok(None) => return,
                            Err(_quiet) => break,
                        }
                    }
                }
            }
            let Some(r) = reader.take() else { return };
            match scan(r, &settings.paths, &seen, &tx).await {
                Some(r) => reader = Some(r),
                None => return,
            }
        }
    });
    Ok(CloudTrailFeed {
        _watcher: watcher,
        task,
    })
}

/// Reads every unread file once; gives the reader back, or `None` when detection is gone.
async fn scan(
    mut reader: Reader,
    paths: &[PathBuf],
    seen: &SeenFiles,
    tx: &mpsc::Sender<ApiBatch>,
) -> Option<Reader> {
    let paths_owned = paths.to_vec();
    let (files, problems) = tokio::task::spawn_blocking(move || collect_files(&paths_owned))
        .await
        .unwrap_or_default();
    for p in problems {
        warn!(problem = %p, "CloudTrail path not read");
    }
    for file in files {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let stamp = FileStamp::of(&meta);
        let mark = match seen.mark(&file) {
            Ok(mark) => mark,
            Err(e) => {
                warn!(error = %e, "CloudTrail read-files tree unreadable; not reading new files");
                return Some(reader);
            }
        };
        if mark.map(|m| m.stamp()) == Some(stamp) {
            continue;
        }
        let path = file.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let from = resume_point(&path, mark, stamp);
            let mut events = Vec::new();
            let mut problems = Vec::new();
            let (summary, next) =
                reader.read_file_from(&path, from, &mut |e| events.push(e), &mut |p| {
                    problems.push(p);
                });
            let new_mark = match next {
                None => Some(Mark::Whole(stamp)),
                Some(cursor) => {
                    fingerprint(&path, cursor.offset)
                        .ok()
                        .map(|fingerprint| Mark::Lines {
                            stamp,
                            cursor,
                            fingerprint,
                        })
                }
            };
            (reader, summary, events, problems, from, new_mark)
        })
        .await;
        let Ok((r, summary, events, problems, from, new_mark)) = joined else {
            warn!(file = %file.display(), "CloudTrail reader task failed");
            return None;
        };
        reader = r;
        for p in problems.iter().take(MAX_LOGGED_PROBLEMS) {
            warn!(problem = %p, "CloudTrail input skipped");
        }
        if problems.len() > MAX_LOGGED_PROBLEMS {
            warn!(file = %file.display(), more = problems.len() - MAX_LOGGED_PROBLEMS, "more CloudTrail problems in this file");
        }
        let n = events.len();
        if !events.is_empty()
            && tx
                .send(ApiBatch {
                    file: file.clone(),
                    events,
                })
                .await
                .is_err()
        {
            return None;
        }
        match new_mark.map(|m| seen.set_mark(&file, m)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                warn!(file = %file.display(), error = %e, "CloudTrail file read but not marked; it will be read again");
            }
            None => {
                warn!(file = %file.display(), "CloudTrail file read but gone before it could be marked");
            }
        }
        match summary.kind {
            FileKind::Digest => debug!(file = %file.display(), "CloudTrail digest file skipped"),
            _ => {
                info!(file = %file.display(), events = n, problems = summary.problems, from_byte = from.offset, from_line = from.line, "CloudTrail file read")
            }
        }
    }
    Some(reader)
}

/// Where to read `path` from: after what an earlier read consumed when the file is a line file
/// that was only appended to since (long enough, same bytes before the cursor), else the start.
fn resume_point(path: &std::path::Path, mark: Option<Mark>, stamp: FileStamp) -> LinesCursor {
    match mark {
        Some(Mark::Lines {
            cursor,
            fingerprint: before,
            ..
        }) if cursor.offset > 0
            && cursor.offset <= stamp.len
            && fingerprint(path, cursor.offset).ok() == Some(before) =>
        {
            cursor
        }
        _ => LinesCursor::START,
    }
}
#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write_trail(dir: &std::path::Path, name: &str, event_name: &str) {
        let body = format!(
            r#"{{"Records":[{{"eventTime":"2024-05-01T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"{event_name}","awsRegion":"us-east-1","recipientAccountId":"111122223333","sourceIPAddress":"81.2.69.142","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u","accountId":"111122223333","accessKeyId":"AKIAU"}}}}]}}"#
        );
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body.as_bytes()).expect("gzip");
        // Written aside and renamed in, as sync tools do, so the feed never sees half a file.
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, e.finish().expect("gzip")).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }

    async fn next(rx: &mut mpsc::Receiver<ApiBatch>) -> ApiBatch {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a batch within 20 s")
            .expect("feed alive")
    }

    #[tokio::test]
    async fn files_present_and_arriving_are_read_once_even_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir
            .path()
            .join("AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01");
        std::fs::create_dir_all(&logs).expect("mkdir");
        write_trail(&logs, "a.json.gz", "StopLogging");
        let db = sled::open(dir.path().join("db")).expect("sled");
        let settings = FeedSettings {
            paths: vec![dir.path().join("AWSLogs")],
            debounce: Duration::from_millis(50),
            rescan: Duration::from_secs(3600),
        };
        let seen = SeenFiles::new(db.open_tree("cloudtrail_files").expect("tree"));
        let (tx, mut rx) = mpsc::channel(4);
        let feed = spawn(settings.clone(), seen.clone(), tx).expect("feed");
        let first = next(&mut rx).await;
        assert!(first.file.ends_with("a.json.gz"));
        assert_eq!(first.events.len(), 1);
        write_trail(&logs, "b.json.gz", "DeleteTrail");
        let second = next(&mut rx).await;
        assert!(second.file.ends_with("b.json.gz"), "{:?}", second.file);
        assert_eq!(second.events[0].event_name, "DeleteTrail");
        drop(feed);

        // Restarted: a and b are known; the first batch must be the new file c.
        let (tx, mut rx) = mpsc::channel(4);
        let _feed = spawn(settings, seen.clone(), tx).expect("feed");
        write_trail(&logs, "c.json.gz", "StopLogging");
        let third = next(&mut rx).await;
        assert!(third.file.ends_with("c.json.gz"), "{:?}", third.file);
        assert_eq!(seen.len(), 3);
    }

    fn line(event_name: &str, second: u32) -> String {
        format!(
            r#"{{"eventTime":"2024-05-01T10:00:{second:02}Z","eventSource":"cloudtrail.amazonaws.com","eventName":"{event_name}","recipientAccountId":"111122223333"}}"#
        )
    }

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn names(batch: &ApiBatch) -> Vec<&str> {
        batch.events.iter().map(|e| e.event_name.as_str()).collect()
    }

    #[tokio::test]
    async fn a_growing_line_file_is_read_from_where_it_stopped_even_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("exports");
        std::fs::create_dir_all(&logs).expect("mkdir");
        let path = logs.join("events.jsonl");
        // Two whole lines and the first half of a third.
        let third = line("C", 3);
        let (head, tail) = third.split_at(30);
        append(
            &path,
            &format!("{}\n{}\n{head}", line("A", 1), line("B", 2)),
        );
        let db = sled::open(dir.path().join("db")).expect("sled");
        let settings = FeedSettings {
            paths: vec![logs.clone()],
            debounce: Duration::from_millis(50),
            rescan: Duration::from_secs(3600),
        };
        let seen = SeenFiles::new(db.open_tree("cloudtrail_files").expect("tree"));
        let (tx, mut rx) = mpsc::channel(4);
        let feed = spawn(settings.clone(), seen.clone(), tx).expect("feed");
        assert_eq!(names(&next(&mut rx).await), ["A", "B"]);
        append(&path, &format!("{tail}\n{}\n", line("D", 4)));
        let second = next(&mut rx).await;
        assert_eq!(names(&second), ["C", "D"]);
        assert_eq!(second.events[0].origin.position, 3, "line numbers carry on");
        drop(feed);

        let (tx, mut rx) = mpsc::channel(4);
        let feed = spawn(settings.clone(), seen.clone(), tx).expect("feed");
        append(&path, &format!("{}\n", line("E", 5)));
        assert_eq!(names(&next(&mut rx).await), ["E"]);
        drop(feed);

        // Replaced by a shorter file: read anew from its start.
        std::fs::write(&path, format!("{}\n", line("F", 6))).expect("rewrite");
        let (tx, mut rx) = mpsc::channel(4);
        let _feed = spawn(settings, seen, tx).expect("feed");
        assert_eq!(names(&next(&mut rx).await), ["F"]);
    }

    #[tokio::test]
    async fn a_missing_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path().join("db")).expect("sled");
        let (tx, _rx) = mpsc::channel(1);
        let err = spawn(
            FeedSettings {
                paths: vec![dir.path().join("nope")],
                debounce: Duration::from_millis(50),
                rescan: Duration::from_secs(60),
            },
            SeenFiles::new(db.open_tree("t").expect("tree")),
            tx,
        )
        .expect_err("missing path");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
