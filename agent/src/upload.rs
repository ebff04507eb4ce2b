//! `picket-agent upload`: sends records from JSON-lines files (as `replay --out` writes them)
//! through the same outbox and session as `run`, and finishes only when every record is acked.
//!
//! Each file's read position is stored in the outbox in the same transaction as the records
//! read up to it, so an upload killed at any moment and started again with the same data
//! folder neither loses nor repeats a record.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use picket_proto::v1::Record;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::config::Settings;
use crate::health::Health;
use crate::outbox::{Outbox, OutboxError};
use crate::records_sink::RecordSink;
use crate::run::{RunError, open_state, state_path};
use crate::tls::client_config;
use crate::transport::Transport;

/// Longest input line read; a longer one is skipped to its end and counted as malformed, so a
/// file without newlines cannot make the agent grow without bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What [`read_line_bounded`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// End of input.
    Eof,
    /// A line (without its limit exceeded) is in the buffer.
    Complete,
    /// A line longer than [`MAX_LINE_BYTES`] was skipped; the buffer is empty.
    TooLong,
}

/// Reads one line into `buf` (newline included), keeping at most [`MAX_LINE_BYTES`].
fn read_line_bounded(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Line> {
    buf.clear();
    let mut any = false;
    let mut too_long = false;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => Line::Eof,
                (true, true) => Line::TooLong,
                (true, false) => Line::Complete,
            });
        }
        any = true;
        let (chunk, ends) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (available.split_at(i + 1).0, true),
            None => (available, false),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = chunk.len();
        r.consume(used);
        if ends {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// Records per batch when uploading.
pub const UPLOAD_BATCH_RECORDS: usize = picket_proto::AGENT_BATCH_RECORDS;
/// Malformed lines quoted in the report; the rest are only counted.
const MAX_QUOTED_ERRORS: usize = 20;

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// Occurs when the agent's state or TLS files are unusable.
    #[error(transparent)]
    Start(#[from] RunError),
    /// Occurs when an input file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Occurs when the outbox fails.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Occurs when the aggregator did not ack everything in time.
    #[error(
        "{batches} batches not acked within {secs} s; they stay buffered in {dir} and are sent by the next upload or run with that data folder"
    )]
    Timeout {
        /// Batches still waiting.
        batches: u64,
        /// The timeout.
        secs: u64,
        /// The data folder holding them.
        dir: PathBuf,
    },
    /// Occurs when interrupted before everything was acked.
    #[error("interrupted with {batches} batches not acked; they stay buffered in {dir}")]
    Interrupted {
        /// Batches still waiting.
        batches: u64,
        /// The data folder holding them.
        dir: PathBuf,
    },
}

/// What an upload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// Records read and buffered by this run.
    pub records: u64,
    /// Lines that were JSON objects but not records (e.g. `replay`'s closing stats line).
    pub non_record_lines: u64,
    /// Lines that did not parse; counted, skipped.
    pub malformed_lines: u64,
    /// The first few malformed lines as `file:line: why`.
    pub errors: Vec<String>,
    /// Lines skipped because an earlier run had already uploaded them.
    pub already_uploaded_lines: u64,
}

fn cursor_key(path: &Path) -> Result<Vec<u8>, UploadError> {
    let read_err = |source| UploadError::Read {
        path: path.to_owned(),
        source,
    };
    let canonical = std::fs::canonicalize(path).map_err(read_err)?;
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    Ok(format!("upload/{}#{len}", canonical.display()).into_bytes())
}

/// Uploads `files` and waits until every record is acked, `timeout` passes or `interrupt`
/// resolves.
///
/// # Errors
/// [`UploadError`]; records not yet acked stay in the outbox for the next run.
pub async fn upload(
    settings: Settings,
    files: &[PathBuf],
    timeout: Option<Duration>,
    interrupt: impl Future<Output = ()>,
) -> Result<UploadReport, UploadError> {
    let tls = client_config(
        &settings.ca,
        &settings.cert,
        &settings.key,
        &settings.server_name,
    )
    .map_err(RunError::from)?;
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| RunError::DataDir {
        path: settings.data_dir.clone(),
        reason: e.to_string(),
    })?;
    let db = open_state(&settings.data_dir)?;
    let outbox = Outbox::open(
        &db,
        state_path(&settings.data_dir),
        settings.outbox_max_bytes,
    )?;
    let new_batches = Arc::new(Notify::new());
    let health = Arc::new(Health::default());
    let sink = RecordSink::new(
        outbox.clone(),
        Arc::clone(&new_batches),
        Arc::clone(&health),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let data_dir = settings.data_dir.clone();
    let status = tokio::spawn(crate::status::write_every_second(
        settings.data_dir.clone(),
        settings.identity.to_string(),
        settings.aggregator_url.clone(),
        outbox.clone(),
        Arc::clone(&health),
        // An upload captures nothing.
        crate::sensor::CaptureThreads::default(),
        stop_rx.clone(),
    ));
    let intel = crate::intel_cache::IntelCache::open(&db).map_err(RunError::from)?;
    let transport = Transport::new(settings, tls, outbox.clone(), new_batches, health, intel);
    let transport = tokio::spawn(transport.run(stop_rx));

    let mut report = UploadReport::default();
    let result = async {
        for path in files {
            read_file(path, &sink, &mut report).await?;
        }
        info!(
            records = report.records,
            "all input buffered; waiting for acks"
        );
        Ok::<(), UploadError>(())
    }
    .await;
    let outcome = match result {
        Err(e) => Err(e),
        Ok(()) => wait_until_drained(&outbox, timeout, interrupt, &data_dir).await,
    };
    let _ = stop_tx.send(true);
    for task in [status, transport] {
        if let Err(e) = task.await {
            warn!(error = %e, "upload task failed");
        }
    }
    if let Err(e) = db.flush_async().await {
        warn!(error = %e, "final flush failed");
    }
    outcome.map(|()| report)
}

async fn wait_until_drained(
    outbox: &Outbox,
    timeout: Option<Duration>,
    interrupt: impl Future<Output = ()>,
    data_dir: &Path,
) -> Result<(), UploadError> {
    let started = tokio::time::Instant::now();
    tokio::pin!(interrupt);
    loop {
        let stats = outbox.stats()?;
        let waiting = stats.batches + stats.priority_batches;
        if waiting == 0 {
            info!("every record acked");
            return Ok(());
        }
        if let Some(t) = timeout {
            if started.elapsed() >= t {
                return Err(UploadError::Timeout {
                    batches: waiting,
                    secs: t.as_secs(),
                    dir: data_dir.to_owned(),
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = &mut interrupt => {
                return Err(UploadError::Interrupted { batches: waiting, dir: data_dir.to_owned() });
            }
        }
    }
}

async fn read_file(
    path: &Path,
    sink: &RecordSink,
    report: &mut UploadReport,
) -> Result<(), UploadError> {
    let read_err = |source| UploadError::Read {
        path: path.to_owned(),
        source,
    };
    let key = cursor_key(path)?;
    let done = sink
        .outbox()
        .cursor(&key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    if done > 0 {
        info!(file = %path.display(), lines = done, "resuming after lines already uploaded");
        report.already_uploaded_lines += done;
    }
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut reader = BufReader::new(file);
    let mut batch: Vec<Record> = Vec::with_capacity(UPLOAD_BATCH_RECORDS);
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    loop {
        let line = read_line_bounded(&mut reader, &mut buf).map_err(read_err)?;
        if matches!(line, Line::Eof) {
            break;
        }
        line_no += 1;
        if line_no <= done {
            continue;
        }
        let problem = match line {
            Line::TooLong => Some(format!("line longer than {MAX_LINE_BYTES} bytes")),
            _ if buf.trim_ascii().is_empty() => continue,
            _ => match serde_json::from_slice::<Record>(&buf) {
                Ok(r) if r.record.is_some() => {
                    batch.push(r);
                    None
                }
                Ok(_) => {
                    report.non_record_lines += 1;
                    None
                }
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(why) = problem {
            report.malformed_lines += 1;
            if report.errors.len() < MAX_QUOTED_ERRORS {
                report
                    .errors
                    .push(format!("{}:{line_no}: {why}", path.display()));
            }
        }
        if batch.len() >= UPLOAD_BATCH_RECORDS {
            report.records += batch.len() as u64;
            let records = std::mem::take(&mut batch);
            sink.submit_with_cursor(records, Some((key.clone(), line_no.to_be_bytes().to_vec())))
                .await?;
        }
    }
    report.records += batch.len() as u64;
    // Also stores the final position when the last batch is empty, so a rerun skips the file.
    sink.submit_with_cursor(batch, Some((key, line_no.to_be_bytes().to_vec())))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Line, Vec<u8>)> {
        let mut r = std::io::Cursor::new(input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let l = read_line_bounded(&mut r, &mut buf).unwrap();
            if l == Line::Eof {
                return out;
            }
            out.push((l, buf.clone()));
        }
    }

    #[test]
    fn lines_are_split_with_or_without_a_final_newline() {
        assert_eq!(
            lines(b"a\nbc\nd"),
            vec![
                (Line::Complete, b"a\n".to_vec()),
                (Line::Complete, b"bc\n".to_vec()),
                (Line::Complete, b"d".to_vec()),
            ]
        );
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn an_oversized_line_is_skipped_and_the_next_one_still_reads() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\n{}\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (Line::TooLong, Vec::new()));
        assert_eq!(got[1], (Line::Complete, b"{}\n".to_vec()));
        // Without a newline at all: one skipped line, no unbounded buffer.
        assert_eq!(
            lines(&vec![b'y'; MAX_LINE_BYTES * 3]),
            vec![(Line::TooLong, Vec::new())]
        );
    }
}
