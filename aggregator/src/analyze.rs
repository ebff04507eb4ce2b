//! Offline analysis: agent-record files (JSON lines) through the same [`Pipeline`] the service
//! runs, with findings aggregated across the whole input.
//!
//! A line is either a bare `picket_proto::v1::Record` (the identity then comes from
//! [`AnalyzeOptions::default_source`]) or `{"account_id", "instance_id", "region", "record"}`.
//! A line that does not parse is reported as `file:line: why` and skipped; the rest still counts.
//! `picket-agent replay`'s closing `{"stats": {...}}` line is not a record and not a problem:
//! with [`AnalyzeOptions::identity_from_replay_stats`], the account and instance it names
//! (`replay --account-id/--instance-id`) are its file's identity for bare records.
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
    /// Whether a file's bare records take the account and instance named in its closing
    /// `replay` stats line over [`AnalyzeOptions::default_source`]'s (off when the user named
    /// an identity).
    pub identity_from_replay_stats: bool,
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
    /// `replay`'s closing stats lines met (not records, not problems).
    pub replay_stats_lines: u64,
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

/// The `--agent-records` value that reads standard input (`picket-agent replay | analyze`).
pub const STDIN: &str = "-";

/// Standard input copied into an unnamed temporary file. The identity a replay wrote is in
/// the stats line at the end, and it applies to every record before it, so the whole input is
/// needed before the first record can be read; on disk, not in memory, as replay output of a
/// long capture can be large. The file goes when it is closed.
fn spool_stdin() -> std::io::Result<File> {
    use std::io::{Seek, SeekFrom};
    let mut file = tempfile::tempfile()?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

fn read_file(
    path: &Path,
    opts: &AnalyzeOptions,
    sink: &mut dyn FnMut(Event),
    report: &mut Report,
    progress: &mut crate::progress::Progress,
) -> Result<(), AnalyzeError> {
    let stdin = path == Path::new(STDIN);
    // Standard input is named as compilers name it, in errors and in each line's problems.
    let path = if stdin { Path::new("<stdin>") } else { path };
    let err = |source| AnalyzeError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = if stdin {
        spool_stdin().map_err(err)?
    } else {
        File::open(path).map_err(err)?
    };
    let replayed = if opts.identity_from_replay_stats {
        replay_identity(&mut file, &opts.default_source).map_err(err)?
    } else {
        None
    };
    let source = replayed.as_ref().unwrap_or(&opts.default_source);
    let mut reader = BufReader::new(file);
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
        if let Some(named) = replay_stats(text) {
            report.replay_stats_lines += 1;
            if let Some(account) = named.account_id.filter(|a| !valid_account(a)) {
                if opts.identity_from_replay_stats {
                    report.problems.push(problem(format!(
                        "replay stats line names account_id {account:?}, not 12 digits; \
                         the file's records keep {}",
                        opts.default_source.account_id
                    )));
                }
            }
            continue;
        }
        match parse_line(text, source) {
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

/// `picket-agent replay`'s closing line, as far as analysis needs it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayStatsLine {
    stats: ReplayIdentity,
}

/// The identity a replay was given (`--account-id`, `--instance-id`); its counters are ignored.
#[derive(Debug, Deserialize)]
struct ReplayIdentity {
    account_id: Option<String>,
    instance_id: Option<String>,
}

/// The identity in `line` when it is a replay's closing stats line.
fn replay_stats(line: &str) -> Option<ReplayIdentity> {
    if !line.starts_with("{\"stats\"") {
        return None;
    }
    serde_json::from_str::<ReplayStatsLine>(line)
        .ok()
        .map(|l| l.stats)
}

/// Bytes read from a file's end to find a closing stats line (a few hundred in practice).
const STATS_TAIL_BYTES: u64 = 64 * 1024;

/// The identity for `file`'s bare records when its last line is a replay's stats line naming
/// an account or instance; the file is left at its start. A named account that is not 12
/// digits keeps the default (the line is reported when it is read).
fn replay_identity(file: &mut File, default: &AgentSource) -> std::io::Result<Option<AgentSource>> {
    use std::io::{Seek, SeekFrom};
    let len = file.metadata()?.len();
    let start = len.saturating_sub(STATS_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    Read::by_ref(file)
        .take(STATS_TAIL_BYTES)
        .read_to_end(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    let text = String::from_utf8_lossy(&tail);
    let Some(last) = text.lines().rev().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let Some(named) = replay_stats(last) else {
        return Ok(None);
    };
    if named.account_id.is_none() && named.instance_id.is_none() {
        return Ok(None);
    }
    if named
        .account_id
        .as_deref()
        .is_some_and(|a| !valid_account(a))
    {
        return Ok(None);
    }
    Ok(Some(AgentSource {
        account_id: named
            .account_id
            .unwrap_or_else(|| default.account_id.clone()),
        instance_id: named
            .instance_id
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| default.instance_id.clone()),
        region: default.region.clone(),
    }))
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
    use crate::cloudtrail::reader::{MAX_FILE_BYTES, Position, Problem, Reader, collect_files};
    let (stdin, paths): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.iter().cloned().partition(|p| p == Path::new(STDIN));
    let (files, problems) = collect_files(&paths);
    report.cloudtrail.problems += problems.len() as u64;
    report.cloudtrail_problems.extend(problems);
    let mut reader = Reader::new();
    if !stdin.is_empty() {
        // `aws s3 cp s3://…/file.json.gz - | analyze --cloudtrail -`, or lookup-events piped.
        let name = Path::new("<stdin>");
        let mut bytes = Vec::new();
        let read = std::io::stdin()
            .lock()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes);
        let why = match read {
            Err(e) => Some(format!("cannot read: {e}")),
            Ok(_) if bytes.len() as u64 > MAX_FILE_BYTES => {
                Some(format!("larger than {MAX_FILE_BYTES} bytes"))
            }
            Ok(_) => None,
        };
        if let Some(why) = why {
            report.cloudtrail.problems += 1;
            report.cloudtrail_problems.push(Problem {
                file: name.to_owned(),
                position: Position::File,
                why,
            });
        } else {
            let summary = reader.read_bytes(
                name,
                &bytes,
                &mut |e| timeline.push((e.time_ms, Event::Api(Box::new(e)))),
                &mut |p| report.cloudtrail_problems.push(p),
            );
            report.cloudtrail.add(summary);
        }
    }
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

    /// Reads `text` as one agent-record file; the identities of the events and the report.
    fn read_text(text: &str, from_stats: bool) -> (Vec<AgentSource>, Report) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("replay.jsonl");
        std::fs::write(&path, text).expect("write");
        let opts = AnalyzeOptions {
            agent_records: vec![path.clone()],
            identity_from_replay_stats: from_stats,
            default_source: default_source(),
            engine: EngineConfig::default(),
            rules: crate::findings::suppression::SuppressionRules::default(),
            detectors: DetectorsConfig::default(),
            context: DetectorContext::default(),
            cloudtrail: Vec::new(),
        };
        let mut sources = Vec::new();
        let mut report = Report::default();
        let mut sink = |e: Event| {
            if let Event::Agent { source, .. } = e {
                sources.push(source);
            }
        };
        read_file(
            &path,
            &opts,
            &mut sink,
            &mut report,
            &mut crate::progress::Progress::off(),
        )
        .expect("read");
        (sources, report)
    }

    const HIT: &str = r#"{"record":{"IntelHit":{"category":"c2","matched_value":"198.51.100.7"}}}"#;

    #[test]
    fn a_replay_file_gives_its_records_the_identity_its_stats_line_names() {
        let text = format!(
            "{HIT}\n{HIT}\n{}\n",
            r#"{"stats":{"account_id":"111122223333","instance_id":"i-0replay","packets":2,"skipped":{"arp":1}}}"#
        );
        let (sources, report) = read_text(&text, true);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!((report.records, report.replay_stats_lines), (2, 1));
        assert_eq!(sources.len(), 2);
        for s in &sources {
            assert_eq!(
                (
                    s.account_id.as_str(),
                    s.instance_id.as_str(),
                    s.region.as_str()
                ),
                ("111122223333", "i-0replay", "us-east-1")
            );
        }
        // An identity on the command line wins: the stats line is still not a problem.
        let (sources, report) = read_text(&text, false);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(sources.iter().all(|s| *s == default_source()));
    }

    #[test]
    fn a_stats_line_without_an_identity_or_with_a_bad_account_keeps_the_default() {
        let plain = format!("{HIT}\n{}\n", r#"{"stats":{"packets":2}}"#);
        let (sources, report) = read_text(&plain, true);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(sources, vec![default_source()]);

        let bad = format!(
            "{HIT}\n{}\n",
            r#"{"stats":{"account_id":"12","instance_id":"i-1"}}"#
        );
        let (sources, report) = read_text(&bad, true);
        assert_eq!(sources, vec![default_source()]);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].line, 2);
        assert!(report.problems[0].why.contains("12 digits"));
    }
}
