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

use picket_proto::v1::Record;
use serde::Serialize;

use crate::capture::{CaptureStats, PacketSource, PcapFile, PcapFileError};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineTotals, drive};

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
    mut pipeline: Pipeline<O>,
    emit: &mut impl FnMut(Record),
) -> ReplayReport {
    let mut capture = CaptureStats::default();
    let mut errors = Vec::new();
    for path in files {
        let before = pipeline.totals().packets;
        let result = replay_file(path, &mut pipeline, &mut capture, emit);
        if let Err(source) = result {
            let packets_before = pipeline.totals().packets.saturating_sub(before);
            errors.push(ReplayFileError {
                path: path.clone(),
                source,
                packets_before,
            });
        }
    }
    pipeline.finish(emit);
    ReplayReport {
        totals: pipeline.totals(),
        errors,
    }
}

fn replay_file<O: crate::pipeline::Observer>(
    path: &Path,
    pipeline: &mut Pipeline<O>,
    capture: &mut CaptureStats,
    emit: &mut impl FnMut(Record),
) -> Result<(), PcapFileError> {
    let mut source = if is_stdin(path) {
        PcapFile::from_reader(std::io::stdin())?
    } else {
        PcapFile::open(path)?
    };
    let result = drive(&mut source, pipeline, emit);
    let s = source.stats();
    capture.packets = capture.packets.saturating_add(s.packets);
    capture.bytes = capture.bytes.saturating_add(s.bytes);
    capture.internal_drops = capture.internal_drops.saturating_add(s.internal_drops);
    pipeline.set_capture_stats(*capture);
    result
}
