//! Offline analysis: agent-record files (JSON lines) through the same [`Pipeline`] the service
//! runs, with findings aggregated across the whole input.
//!
//! A line is either a bare `picket_proto::v1::Record` (the identity then comes from
//! [`AnalyzeOptions::default_source`]) or `{"account_id", "instance_id", "region", "record"}`.
//! A line that does not parse is reported as `file:line: why` and skipped; the rest still counts.
//!
//! CloudTrail files ([`AnalyzeOptions::cloudtrail`], files or folders) are read with
//! [`crate::cloudtrail::reader`]; with any given, agent records and API events are gathered and
//! fed in time order (a stable sort, so equal times keep input order), because correlation
//! across the two sources needs one timeline. That holds the whole input in memory; agent
//! records alone still stream.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use picket_proto::v1::Record;
use serde::Deserialize;

use crate::detectors::{AgentSource, DetectorContext, DetectorCounter, DetectorsConfig, Event};
use crate::findings::engine::{EngineConfig, EngineStats};
use crate::findings::model::Finding;
use crate::findings::suppression::SuppressionRules;
use crate::pipeline::{Clock, Pipeline};

/// Longest line read; longer ones are reported and skipped so one bad file cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why analysis could not run at all (bad lines are [`LineProblem`]s instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyzeError {
    /// Occurs when an input file cannot be opened or read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A line that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub why: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.why)
    }
}

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// JSON-lines files of agent records.
    pub agent_records: Vec<PathBuf>,
    /// Identity for bare records.
    pub default_source: AgentSource,
    /// Engine bounds.
    pub engine: EngineConfig,
    /// Suppression rules to apply.
    pub rules: SuppressionRules,
    /// Detector thresholds (`[detectors]`).
    pub detectors: DetectorsConfig,
    /// Lookups detectors consult (intel for CloudTrail callers).
    pub context: DetectorContext,
    /// CloudTrail files or folders (read recursively).
    pub cloudtrail: Vec<PathBuf>,
}

/// The result of an analysis.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Findings after aggregation over all input, by first sighting then id.
    pub findings: Vec<Finding>,
    /// Lines skipped.
    pub problems: Vec<LineProblem>,
    /// Records read.
    pub records: u64,
    /// Detector counters, with the detector's name.
    pub counters: Vec<(&'static str, DetectorCounter)>,
    /// The engine's counters.
    pub engine: EngineStats,
    /// CloudTrail files, events or folders skipped, as `file:position: why`.
    pub cloudtrail_problems: Vec<crate::cloudtrail::reader::Problem>,
    /// What the CloudTrail reader read.
    pub cloudtrail: crate::cloudtrail::reader::ReadTotals,
}

/// A record line with the agent identity beside it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifiedRecord {
    account_id: Option<String>,
    instance_id: Option<String>,
    region: Option<String>,
    record: Record,
}

fn valid_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// Parses one line into an event, or says why not.
fn parse_line(line: &str, default: &AgentSource) -> Result<Event, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let identified = value.as_object().is_some_and(|o| {
        ["account_id", "instance_id", "region"]
            .iter()
            .any(|k| o.contains_key(*k))
    });
    let (source, record) = if identified {
        let r: IdentifiedRecord =
            serde_json::from_value(value).map_err(|e| format!("not an identified record: {e}"))?;
        let source = AgentSource {
            account_id: r.account_id.unwrap_or_else(|| default.account_id.clone()),
            instance_id: r.instance_id.unwrap_or_else(|| default.instance_id.clone()),
            region: r.region.unwrap_or_else(|| default.region.clone()),
        };
        (source, r.record)
    } else {
        let r: Record = serde_json::from_value(value).map_err(|e| format!("not a record: {e}"))?;
        (default.clone(), r)
    };
    if !valid_account(&source.account_id) {
        return Err(format!(
            "account_id must be 12 digits, got {:?}",
            source.account_id
        ));
    }
    if source.instance_id.is_empty() || source.region.is_empty() {
        return Err("instance_id and region must not be empty".to_owned());
    }
    if record.record.is_none() {
        return Err("record has no body (expected Flow, Dns, IntelHit or HostStats)".to_owned());
    }
    Ok(Event::Agent { source, record })
}

fn read_file(
    path: &Path,
    opts: &AnalyzeOptions,
    sink: &mut dyn FnMut(Event),
    report: &mut Report,
    progress: &mut crate::progress::Progress,
) -> Result<(), AnalyzeError> {
    let err = |source| AnalyzeError::Read {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(err)?);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = Read::by_ref(&mut reader)
            .take(u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1)
            .read_until(b'\n', &mut buf)
            .map_err(err)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let problem = |why: String| LineProblem {
            file: path.to_owned(),
            line: line_no,
            why,
        };
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            report
                .problems
                .push(problem(format!("line longer than {MAX_LINE_BYTES} bytes")));
            // Skip the rest of the over-long line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest).map_err(err)?;
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            report.problems.push(problem("not UTF-8".to_owned()));
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match parse_line(text, &opts.default_source) {
            Ok(event) => {
                report.records += 1;
                progress.record();
                sink(event);
            }
            Err(why) => report.problems.push(problem(why)),
        }
    }
    Ok(())
}

/// When an event happened, for ordering agent records among API events.
fn event_time_ms(event: &Event) -> Option<i64> {
    use picket_proto::v1::record::Record as R;
    let t = match event {
        Event::Api(e) => e.time_ms,
        Event::Agent { record, .. } => match record.record.as_ref()? {
            R::Flow(f) => f.first_seen_ms.max(f.interval_start_ms),
            R::Dns(d) => d.first_seen_ms.max(d.interval_start_ms),
            R::IntelHit(h) => h.observed_at_ms,
            R::HostStats(h) => h.interval_start_ms,
        },
    };
    (t > 0).then_some(t)
}

/// Reads every CloudTrail file under `paths` onto the timeline.
fn read_cloudtrail(paths: &[PathBuf], timeline: &mut Vec<(i64, Event)>, report: &mut Report) {
    use crate::cloudtrail::reader::{Reader, collect_files};
    let (files, problems) = collect_files(paths);
    report.cloudtrail.problems += problems.len() as u64;
    report.cloudtrail_problems.extend(problems);
    let mut reader = Reader::new();
    for file in files {
        let summary = reader.read_file(
            &file,
            &mut |e| timeline.push((e.time_ms, Event::Api(Box::new(e)))),
            &mut |p| report.cloudtrail_problems.push(p),
        );
        report.cloudtrail.add(summary);
    }
}

fn fold(merged: &mut BTreeMap<String, Finding>, drained: Vec<Finding>) {
    for f in drained {
        match merged.get_mut(&f.id) {
            Some(existing) => existing.absorb(&f),
            None => {
                merged.insert(f.id.clone(), f);
            }
        }
    }
}

/// Runs every detector and the finding engine over the input files.
///
/// # Errors
/// [`AnalyzeError::Read`] when a file cannot be opened or read; malformed lines are not errors
/// but [`Report::problems`].
pub fn analyze(opts: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    analyze_with_progress(opts, &mut crate::progress::Progress::off())
}

/// `analyze` with the detectors off: the same reading and parsing of the agent-record files
/// (lines, identities, problems), each event dropped instead of fed to the pipeline. The
/// reference the detector-overhead benchmark measures against; `report.findings` is empty.
///
/// # Errors
/// As [`analyze`].
pub fn read_only(opts: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    let mut report = Report::default();
    let mut progress = crate::progress::Progress::off();
    let mut sink = |event: Event| {
        std::hint::black_box(&event);
    };
    for path in &opts.agent_records {
        read_file(path, opts, &mut sink, &mut report, &mut progress)?;
    }
    Ok(report)
}

/// [`analyze`], reporting progress (records, files) to `progress` as it goes.
///
/// # Errors
/// As [`analyze`].
pub fn analyze_with_progress(
    opts: &AnalyzeOptions,
    progress: &mut crate::progress::Progress,
) -> Result<Report, AnalyzeError> {
    let mut pipeline = Pipeline::new(
        opts.engine.clone(),
        opts.rules.clone(),
        Clock::EventTime,
        &opts.detectors,
        &opts.context,
    );
    let mut merged = BTreeMap::new();
    let mut report = Report::default();
    if opts.cloudtrail.is_empty() {
        let mut sink = |event: Event| {
            pipeline.feed(&event);
            if pipeline.is_full() {
                fold(&mut merged, pipeline.drain());
            }
        };
        for path in &opts.agent_records {
            read_file(path, opts, &mut sink, &mut report, progress)?;
            progress.file_done();
        }
    } else {
        let mut timeline = Vec::new();
        for path in &opts.agent_records {
            // Records without a time take the previous record's, keeping their place.
            let mut last = i64::MIN;
            let mut sink = |event: Event| {
                if let Some(t) = event_time_ms(&event) {
                    last = t;
                }
                timeline.push((last, event));
            };
            read_file(path, opts, &mut sink, &mut report, progress)?;
            progress.file_done();
        }
        read_cloudtrail(&opts.cloudtrail, &mut timeline, &mut report);
        timeline.sort_by_key(|(t, _)| *t);
        for (_, event) in timeline {
            pipeline.feed(&event);
            if pipeline.is_full() {
                fold(&mut merged, pipeline.drain());
            }
        }
    }
    progress.finish();
    fold(&mut merged, pipeline.drain());
    let mut findings: Vec<Finding> = merged.into_values().collect();
    findings.sort_by(|a, b| {
        (a.service.event_first_seen, &a.id).cmp(&(b.service.event_first_seen, &b.id))
    });
    report.findings = findings;
    report.counters = pipeline.counters();
    report.engine = pipeline.engine().stats();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_source() -> AgentSource {
        AgentSource {
            account_id: "000000000000".into(),
            instance_id: "i-default".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn a_bare_record_takes_the_default_identity() {
        let line =
            r#"{"record":{"IntelHit":{"category":"c2","matched_value":"198.51.100.7","site":1}}}"#;
        let Ok(Event::Agent { source, .. }) = parse_line(line, &default_source()) else {
            panic!("rejected");
        };
        assert_eq!(source, default_source());
    }

    #[test]
    fn an_identified_record_takes_its_own_identity() {
        let line = r#"{"account_id":"123456789012","instance_id":"i-1","region":"eu-west-1","record":{"record":{"IntelHit":{"category":"c2"}}}}"#;
        let Ok(Event::Agent { source, .. }) = parse_line(line, &default_source()) else {
            panic!("rejected");
        };
        assert_eq!(source.account_id, "123456789012");
        assert_eq!(source.instance_id, "i-1");
        assert_eq!(source.region, "eu-west-1");
    }

    #[test]
    fn malformed_lines_say_why() {
        let d = default_source();
        let cases = [
            ("{not json", "not JSON"),
            (
                r#"{"account_id":"12","record":{"record":{"IntelHit":{}}}}"#,
                "12 digits",
            ),
            (
                r#"{"account_id":"123456789012","record":{},"extra":1}"#,
                "identified record",
            ),
            (r#"{"record":{"Bogus":{}}}"#, "not a record"),
            (r#"{}"#, "no body"),
        ];
        for (line, expected) in cases {
            match parse_line(line, &d) {
                Err(why) => assert!(why.contains(expected), "{line}: {why}"),
                Ok(_) => panic!("{line} accepted"),
            }
        }
    }
}
