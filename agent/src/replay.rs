//! `picket-agent replay`: capture files through the same [`Pipeline`] as live capture, out as
//! the records `run` would stream, then a closing stats object.
//!
//! Files are replayed one after another into one pipeline, in the order given; summary
//! intervals follow the packets' timestamps. A file damaged part-way (truncated, corrupt
//! block) is reported with the byte offset of the damage and the packets before it still
//! count. A file that yields nothing at all (cannot be opened, not a capture, damaged before
//! its first packet) is reported the same way and makes [`ReplayReport::all_read`] false,
//! which the CLI turns into exit status 1 after writing what the other files gave.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use picket_proto::v1::Record;
use serde::Serialize;

use crate::capture::{CaptureStats, PacketSource, PcapFile, PcapFileError};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineTotals};

/// Packets between two looks at the stop flag: often enough to stop within a millisecond,
/// rarely enough to cost nothing per packet.
const STOP_CHECK_PACKETS: u32 = 4096;

/// What went wrong with one input file.
#[derive(Debug, thiserror::Error)]
#[error("{}{source}", path_prefix(.path, .source))]
pub struct ReplayFileError {
    /// The file.
    pub path: PathBuf,
    /// What the capture reader said, with the byte offset where it applies.
    #[source]
    pub source: PcapFileError,
    /// Packets read from the file before the error.
    pub packets_before: u64,
}

/// The `--pcap` value that reads the capture from standard input, as tcpdump's `-r -` does.
pub const STDIN: &str = "-";

/// Whether `path` means standard input.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new(STDIN)
}

/// `path: `, unless the error names the path itself (a file that could not be opened).
fn path_prefix(path: &Path, error: &PcapFileError) -> String {
    match error {
        PcapFileError::Open { .. } => String::new(),
        _ if is_stdin(path) => "standard input: ".to_owned(),
        _ => format!("{}: ", path.display()),
    }
}

/// One replay's outcome: counters and the problems met.
#[derive(Debug)]
pub struct ReplayReport {
    /// The pipeline's counters at the end.
    pub totals: PipelineTotals,
    /// Files that were damaged or unreadable, in the order met.
    pub errors: Vec<ReplayFileError>,
    /// Whether reading was stopped early (Ctrl-C): the records cover the packets read so far.
    pub interrupted: bool,
}

impl ReplayReport {
    /// Whether every file gave at least its first packet or was read to a clean end.
    pub fn all_read(&self) -> bool {
        self.errors.iter().all(|e| e.packets_before > 0)
    }

    /// The closing stats object `replay` writes after the records.
    pub fn stats_line(&self, account_id: Option<&str>, instance_id: Option<&str>) -> StatsLine {
        let t = &self.totals;
        StatsLine {
            stats: ReplayStats {
                account_id: account_id.map(str::to_owned),
                instance_id: instance_id.map(str::to_owned),
                packets: t.packets,
                bytes: t.bytes,
                decoded: t.decode.decoded,
                decode_errors: t
                    .decode
                    .error_counts()
                    .map(|(layer, kind, n)| (format!("{layer}.{kind}"), n))
                    .collect(),
                skipped: t
                    .decode
                    .skip_counts()
                    .map(|(kind, n)| (kind.to_owned(), n))
                    .collect(),
                flows: t.flows.created,
                evictions: t.flows.evicted,
                dns_messages: t.dns.messages,
                dns_malformed: t.dns.total_malformed(),
                internal_drops: t.capture.internal_drops,
                summaries_dropped: t
                    .flow_summaries
                    .overflow
                    .saturating_add(t.dns_summaries.overflow),
                records: t.records,
                files_damaged: u64::try_from(self.errors.len()).unwrap_or(u64::MAX),
                interrupted: self.interrupted,
            },
        }
    }
}

/// The closing line: `{"stats": {...}}`, which `upload` skips as a non-record line.
#[derive(Debug, Serialize)]
pub struct StatsLine {
    /// The counters.
    pub stats: ReplayStats,
}

/// A replay's counters, as written in the closing line.
#[derive(Debug, Serialize)]
pub struct ReplayStats {
    /// `--account-id`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// `--instance-id`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Packets read.
    pub packets: u64,
    /// Captured bytes read.
    pub bytes: u64,
    /// Packets decoded down to a transport.
    pub decoded: u64,
    /// Decode errors by `layer.kind`.
    pub decode_errors: BTreeMap<String, u64>,
    /// Packets skipped on purpose, by kind.
    pub skipped: BTreeMap<String, u64>,
    /// Flows created.
    pub flows: u64,
    /// Flows evicted from a full table.
    pub evictions: u64,
    /// DNS messages parsed.
    pub dns_messages: u64,
    /// DNS messages rejected as malformed.
    pub dns_malformed: u64,
    /// Records the capture reader dropped (e.g. naming an undeclared interface).
    pub internal_drops: u64,
    /// Flow records or DNS transactions not summarised because a summary table was full.
    pub summaries_dropped: u64,
    /// Records written before this line.
    pub records: u64,
    /// Files reported damaged or unreadable.
    pub files_damaged: u64,
    /// Present (and true) when reading was stopped before the input ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// Replays `files` through one pipeline built from `config`, handing each record to `emit`.
pub fn replay(
    files: &[PathBuf],
    config: PipelineConfig,
    emit: &mut impl FnMut(Record),
) -> ReplayReport {
    replay_with(files, Pipeline::new(config), emit)
}

/// As [`replay`], with a pipeline that already has its observer (the intel pre-filter).
pub fn replay_with<O: crate::pipeline::Observer>(
    files: &[PathBuf],
    pipeline: Pipeline<O>,
    emit: &mut impl FnMut(Record),
) -> ReplayReport {
    replay_until(files, pipeline, emit, &AtomicBool::new(false))
}

/// As [`replay_with`], stopping early once `stop` is set (checked every few thousand
/// packets and between files): the pipeline is still finished, so the records cover every
/// packet read, and the report says it was interrupted.
pub fn replay_until<O: crate::pipeline::Observer>(
    files: &[PathBuf],
    mut pipeline: Pipeline<O>,
    emit: &mut impl FnMut(Record),
    stop: &AtomicBool,
) -> ReplayReport {
    let mut capture = CaptureStats::default();
    let mut errors = Vec::new();
    let mut interrupted = false;
    for path in files {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let before = pipeline.totals().packets;
        match replay_file(path, &mut pipeline, &mut capture, emit, stop) {
            Ok(Finished::Read) => {}
            Ok(Finished::Stopped) => {
                interrupted = true;
                break;
            }
            Err(source) => {
                let packets_before = pipeline.totals().packets.saturating_sub(before);
                errors.push(ReplayFileError {
                    path: path.clone(),
                    source,
                    packets_before,
                });
            }
        }
    }
    pipeline.finish(emit);
    ReplayReport {
        totals: pipeline.totals(),
        errors,
        // A stop that came while the last read was ending still counts as one.
        interrupted: interrupted || stop.load(Ordering::Relaxed),
    }
}

/// How reading one file ended, when it did not fail.
enum Finished {
    /// At its end.
    Read,
    /// Because the stop flag was set.
    Stopped,
}

fn replay_file<O: crate::pipeline::Observer>(
    path: &Path,
    pipeline: &mut Pipeline<O>,
    capture: &mut CaptureStats,
    emit: &mut impl FnMut(Record),
    stop: &AtomicBool,
) -> Result<Finished, PcapFileError> {
    let mut source = if is_stdin(path) {
        PcapFile::from_reader(std::io::stdin())?
    } else {
        PcapFile::open(path)?
    };
    let result = drive_until(&mut source, pipeline, emit, stop);
    let s = source.stats();
    capture.packets = capture.packets.saturating_add(s.packets);
    capture.bytes = capture.bytes.saturating_add(s.bytes);
    capture.internal_drops = capture.internal_drops.saturating_add(s.internal_drops);
    pipeline.set_capture_stats(*capture);
    result
}

/// Every packet of `source` through `pipeline`, until its end or `stop`.
fn drive_until<O: crate::pipeline::Observer>(
    source: &mut PcapFile,
    pipeline: &mut Pipeline<O>,
    emit: &mut impl FnMut(Record),
    stop: &AtomicBool,
) -> Result<Finished, PcapFileError> {
    let mut until_check = STOP_CHECK_PACKETS;
    while let Some(packet) = source.next_packet()? {
        pipeline.packet(&packet, emit);
        until_check -= 1;
        if until_check == 0 {
            until_check = STOP_CHECK_PACKETS;
            if stop.load(Ordering::Relaxed) {
                return Ok(Finished::Stopped);
            }
        }
    }
    Ok(Finished::Read)
}
