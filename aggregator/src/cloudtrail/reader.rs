//! Reading CloudTrail files as they are found: what S3 delivers (`{"Records":[…]}`, gzip),
//! JSON arrays of events (Stratus Red Team, exports), what `aws cloudtrail lookup-events`
//! prints (`{"Events":[{…, "CloudTrailEvent": "<the event as JSON text>"}]}`: the last 90 days
//! of management events, for an account with no trail to S3), and newline-delimited events,
//! gzip or plain (decided by magic bytes, never by the name); any of them may hold EventBridge
//! events wrapping CloudTrail ones. Digest files are recognised and skipped.
//!
//! A file is decompressed into one reused buffer and its events are deserialised from it
//! without copying strings ([`super::raw`]), one at a time, so a bad event is reported with its
//! position and skipped while the events around it still count. A truncated file (cut gzip,
//! cut JSON) still yields every event before the cut.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::event::{ApiEvent, EventOrigin};
use super::normalize::{event_from_raw, parse_event};
use super::raw::RawRecord;
use super::resume::{LinesCursor, complete_len};

/// Largest decompressed file read (CloudTrail files are a few MB; this stops a gzip bomb).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The file as a whole (unreadable, bad gzip, unknown format).
    File,
    /// Element `i` (0-based) of the `Records` array.
    Record(u64),
    /// Element `i` (0-based) of a top-level JSON array.
    Element(u64),
    /// Element `i` (0-based) of the `Events` array of a LookupEvents response.
    LookupEvent(u64),
    /// 1-based line of a newline-delimited file.
    Line(u64),
    /// 1-based line and column of a JSON syntax error that ended the file.
    Syntax {
        /// Line.
        line: u64,
        /// Column.
        column: u64,
    },
}

/// A file, or part of one, that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Where in it.
    pub position: Position,
    /// What was wrong.
    pub why: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.position {
            Position::File => write!(f, "{file}: {}", self.why),
            Position::Record(i) => write!(f, "{file}:Records[{i}]: {}", self.why),
            Position::Element(i) => write!(f, "{file}:[{i}]: {}", self.why),
            Position::LookupEvent(i) => write!(f, "{file}:Events[{i}]: {}", self.why),
            Position::Line(n) => write!(f, "{file}:{n}: {}", self.why),
            Position::Syntax { line, column } => write!(f, "{file}:{line}:{column}: {}", self.why),
        }
    }
}

/// What a file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `{"Records":[…]}`, as CloudTrail delivers.
    Records,
    /// A JSON array of events.
    Array,
    /// `{"Events":[…]}`, as `aws cloudtrail lookup-events` prints: each entry's event is the
    /// JSON text in its `CloudTrailEvent` member.
    LookupEvents,
    /// Events one per line (or concatenated JSON objects).
    Lines,
    /// A CloudTrail digest file: skipped.
    Digest,
    /// Could not be read or recognised (see the problems).
    Unreadable,
}

/// What reading one file gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    /// The format found.
    pub kind: FileKind,
    /// Events handed on.
    pub events: u64,
    /// Problems reported (file-level and per event).
    pub problems: u64,
}

/// Totals over several files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadTotals {
    /// Files read (digests and unreadable ones included).
    pub files: u64,
    /// Digest files skipped.
    pub digests: u64,
    /// Events handed on.
    pub events: u64,
    /// Problems reported.
    pub problems: u64,
}

impl ReadTotals {
    /// Adds one file's summary.
    pub fn add(&mut self, s: FileSummary) {
        self.files += 1;
        self.digests += u64::from(s.kind == FileKind::Digest);
        self.events += s.events;
        self.problems += s.problems;
    }
}

/// Whether a path is in a digest folder or named like a digest (`…_CloudTrail-Digest_…`).
pub fn is_digest_path(path: &Path) -> bool {
    path.to_string_lossy().contains("CloudTrail-Digest")
}

/// Whether a file met while walking a folder may be a trail file (editor and sync leftovers,
/// and files with other extensions, are passed over; files named explicitly are always read).
fn looks_like_trail_file(name: &str) -> bool {
    !name.starts_with('.')
        && [".json", ".json.gz", ".gz", ".jsonl", ".ndjson", ".log"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The files `paths` stand for: files as given, folders walked recursively (trail-like files
/// only), each folder's files sorted by name so S3's layout reads in time order. Folders that
/// cannot be read become problems.
pub fn collect_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Problem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files, &mut problems);
        } else {
            files.push(path.clone());
        }
    }
    (files, problems)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem {
                file: dir.to_owned(),
                position: Position::File,
                why: format!("cannot read folder: {e}"),
            });
            return;
        }
    };
    let mut here: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    here.sort();
    for p in here {
        if p.is_dir() {
            walk(&p, files, problems);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(looks_like_trail_file)
        {
            files.push(p);
        }
    }
}

/// Reads files, reusing one buffer.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
}

struct Ctx<'c> {
    file: &'c Path,
    /// The path as text, shared by every event's origin (one allocation per file).
    file_text: Arc<str>,
    on_event: &'c mut dyn FnMut(ApiEvent),
    on_problem: &'c mut dyn FnMut(Problem),
    events: u64,
    problems: u64,
}

impl<'c> Ctx<'c> {
    /// A context for one file, nothing counted yet.
    fn new(
        file: &'c Path,
        on_event: &'c mut dyn FnMut(ApiEvent),
        on_problem: &'c mut dyn FnMut(Problem),
    ) -> Self {
        Self {
            file,
            file_text: file.display().to_string().into(),
            on_event,
            on_problem,
            events: 0,
            problems: 0,
        }
    }

    fn problem(&mut self, position: Position, why: String) {
        self.problems += 1;
        (self.on_problem)(Problem {
            file: self.file.to_owned(),
            position,
            why,
        });
    }

    fn origin(&self, index: u64, position: Position) -> EventOrigin {
        // `EventOrigin::position`: the index in the array, or the line of a line file.
        EventOrigin {
            file: Arc::clone(&self.file_text),
            position: match position {
                Position::Line(n) => n,
                _ => index,
            },
        }
    }

    fn event(&mut self, json: &str, index: u64, position: Position) {
        let origin = self.origin(index, position);
        let result = parse_event(json, origin);
        self.deliver(result, position);
    }

    /// A LookupEvents entry: its `CloudTrailEvent` text is the event.
    fn lookup_event(&mut self, json: &str, index: u64, position: Position) {
        match serde_json::from_str::<LookupEntry<'_>>(json) {
            Ok(entry) => self.event(&entry.event, index, position),
            Err(e) => self.problem(
                position,
                format!("not a LookupEvents entry (no CloudTrailEvent text): {e}"),
            ),
        }
    }

    fn raw_event(&mut self, raw: RawRecord<'_>, index: u64, position: Position) {
        let origin = self.origin(index, position);
        let result = event_from_raw(raw, origin);
        self.deliver(result, position);
    }

    fn deliver(&mut self, result: Result<ApiEvent, String>, position: Position) {
        match result {
            Ok(e) => {
                self.events += 1;
                (self.on_event)(e);
            }
            Err(why) => self.problem(position, why),
        }
    }
}

impl Reader {
    /// A reader with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one file, handing each event to `on_event` and each problem to `on_problem`.
    /// Never fails as a whole: an unreadable file is a [`Position::File`] problem.
    pub fn read_file(
        &mut self,
        path: &Path,
        on_event: &mut dyn FnMut(ApiEvent),
        on_problem: &mut dyn FnMut(Problem),
    ) -> FileSummary {
        let mut ctx = Ctx::new(path, on_event, on_problem);
        let kind = if is_digest_path(path) {
            FileKind::Digest
        } else {
            self.buf.clear();
            match load(path, &mut self.buf) {
                Ok(None) => parse_buffer(&self.buf, &mut ctx),
                Ok(Some(why)) => {
                    // A cut or damaged gzip: report it, then read what came out before the cut.
                    ctx.problem(Position::File, why);
                    let kind = parse_buffer(&self.buf, &mut ctx);
                    if ctx.events == 0 {
                        FileKind::Unreadable
                    } else {
                        kind
                    }
                }
                Err(why) => {
                    ctx.problem(Position::File, why);
                    FileKind::Unreadable
                }
            }
        };
        FileSummary {
            kind,
            events: ctx.events,
            problems: ctx.problems,
        }
    }

    /// Reads one file the way a watcher that comes back to it wants: a plain newline-delimited
    /// file from `from` up to its last complete line (a cut last line is left for next time),
    /// returning where the next read starts; anything else (gzip, `Records`, arrays, digests)
    /// whole, as [`Self::read_file`], returning `None`. `from` past the start is trusted to be
    /// a line boundary of a line file (the caller checks the file was only appended to).
    pub fn read_file_from(
        &mut self,
        path: &Path,
        from: LinesCursor,
        on_event: &mut dyn FnMut(ApiEvent),
        on_problem: &mut dyn FnMut(Problem),
    ) -> (FileSummary, Option<LinesCursor>) {
        if from.offset == 0 {
            return self.read_file_start(path, on_event, on_problem);
        }
        let mut ctx = Ctx::new(path, on_event, on_problem);
        self.buf.clear();
        let kind = match load_from(path, from.offset, &mut self.buf) {
            Ok(()) => FileKind::Lines,
            Err(why) => {
                ctx.problem(Position::File, why);
                FileKind::Unreadable
            }
        };
        let mut next = None;
        if kind == FileKind::Lines {
            let end = complete_len(&self.buf);
            let body = self.buf.get(..end).unwrap_or_default();
            stream_values(body, &mut ctx, from.line, false);
            next = Some(advance(from, body));
        }
        let summary = FileSummary {
            kind,
            events: ctx.events,
            problems: ctx.problems,
        };
        (summary, next)
    }

    /// [`Self::read_file_from`] at the start of the file.
    fn read_file_start(
        &mut self,
        path: &Path,
        on_event: &mut dyn FnMut(ApiEvent),
        on_problem: &mut dyn FnMut(Problem),
    ) -> (FileSummary, Option<LinesCursor>) {
        let mut ctx = Ctx::new(path, on_event, on_problem);
        if is_digest_path(path) {
            let summary = FileSummary {
                kind: FileKind::Digest,
                events: 0,
                problems: 0,
            };
            return (summary, None);
        }
        self.buf.clear();
        let mut next = None;
        let kind = match load_raw(path, &mut self.buf) {
            Err(why) => {
                ctx.problem(Position::File, why);
                FileKind::Unreadable
            }
            Ok(()) if self.buf.starts_with(&GZIP_MAGIC) => {
                let raw = std::mem::take(&mut self.buf);
                let damaged = gunzip(&raw, &mut self.buf);
                whole(&self.buf, damaged, &mut ctx)
            }
            Ok(()) if is_lines_body(&self.buf) => {
                let end = complete_len(&self.buf);
                let body = self.buf.get(..end).unwrap_or_default();
                let kind = if skip_ws(body).is_empty() {
                    // Only a cut first line so far: nothing to read or report yet.
                    FileKind::Lines
                } else {
                    parse_buffer(body, &mut ctx)
                };
                if kind == FileKind::Lines {
                    next = Some(advance(LinesCursor::START, body));
                }
                kind
            }
            Ok(()) => parse_buffer(&self.buf, &mut ctx),
        };
        let summary = FileSummary {
            kind,
            events: ctx.events,
            problems: ctx.problems,
        };
        (summary, next)
    }

    /// Reads JSON text already in memory (an S3 object body, a test), gzip or plain.
    pub fn read_bytes(
        &mut self,
        name: &Path,
        bytes: &[u8],
        on_event: &mut dyn FnMut(ApiEvent),
        on_problem: &mut dyn FnMut(Problem),
    ) -> FileSummary {
        let mut ctx = Ctx::new(name, on_event, on_problem);
        let kind = if bytes.starts_with(&GZIP_MAGIC) {
            self.buf.clear();
            if let Some(why) = gunzip(bytes, &mut self.buf) {
                ctx.problem(Position::File, why);
            }
            parse_buffer(&self.buf, &mut ctx)
        } else {
            parse_buffer(bytes, &mut ctx)
        };
        FileSummary {
            kind,
            events: ctx.events,
            problems: ctx.problems,
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompresses `bytes` into `out`; `Some(why)` when the stream is damaged or too large (what
/// came out before stays in `out`).
fn gunzip(bytes: &[u8], out: &mut Vec<u8>) -> Option<String> {
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut limited = decoder.take(MAX_FILE_BYTES + 1);
    match limited.read_to_end(out) {
        Ok(_) if out.len() as u64 > MAX_FILE_BYTES => {
            Some(format!("decompresses to more than {MAX_FILE_BYTES} bytes"))
        }
        Ok(_) => None,
        Err(e) => Some(format!("bad gzip after {} bytes: {e}", out.len())),
    }
}

/// Parses a decompressed file; `damaged` is why its gzip stream broke off, if it did.
fn whole(buf: &[u8], damaged: Option<String>, ctx: &mut Ctx<'_>) -> FileKind {
    match damaged {
        None => parse_buffer(buf, ctx),
        Some(why) => {
            ctx.problem(Position::File, why);
            let kind = parse_buffer(buf, ctx);
            if ctx.events == 0 {
                FileKind::Unreadable
            } else {
                kind
            }
        }
    }
}

/// One entry of a LookupEvents response; the other members repeat parts of the event.
#[derive(serde::Deserialize)]
struct LookupEntry<'a> {
    /// The whole event, as JSON text (escaped inside the response, so usually owned here).
    #[serde(rename = "CloudTrailEvent", borrow)]
    event: std::borrow::Cow<'a, str>,
}

/// The container an object file's first member names: `{"Records":…}` or `{"Events":…}`.
fn object_container(body: &[u8]) -> Option<Container> {
    let first = skip_ws(body.strip_prefix(b"{")?);
    if first.starts_with(b"\"Records\"") {
        Some(Container::Records)
    } else if first.starts_with(b"\"Events\"") {
        Some(Container::Lookup)
    } else {
        None
    }
}

/// Whether plain text is newline-delimited events (an object that is not `{"Records":…}` or
/// `{"Events":…}`).
fn is_lines_body(bytes: &[u8]) -> bool {
    let body = skip_ws(bytes);
    body.first() == Some(&b'{') && object_container(body).is_none()
}

/// The cursor after reading `body` from `from`.
fn advance(from: LinesCursor, body: &[u8]) -> LinesCursor {
    LinesCursor {
        offset: from.offset + body.len() as u64,
        line: from.line + count_newlines(body),
    }
}

/// The file's bytes as stored (not decompressed) into `buf`.
fn load_raw(path: &Path, buf: &mut Vec<u8>) -> Result<(), String> {
    load_from(path, 0, buf)
}

/// The file's bytes from `offset` on, as stored, into `buf`.
fn load_from(path: &Path, offset: u64, buf: &mut Vec<u8>) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("cannot seek to byte {offset}: {e}"))?;
    }
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("more than {MAX_FILE_BYTES} bytes to read"));
    }
    Ok(())
}

/// The file's bytes, decompressed when they start with gzip's magic, into `buf`.
/// `Ok(Some(why))`: a damaged gzip whose readable prefix is in `buf`; `Err`: unreadable.
fn load(path: &Path, buf: &mut Vec<u8>) -> Result<Option<String>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut raw = Vec::new();
    file.by_ref()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read: {e}"))?;
    if raw.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    if raw.starts_with(&GZIP_MAGIC) {
        Ok(gunzip(&raw, buf))
    } else {
        *buf = raw;
        Ok(None)
    }
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

fn parse_buffer(bytes: &[u8], ctx: &mut Ctx<'_>) -> FileKind {
    let body = skip_ws(bytes);
    match body.first() {
        None => {
            ctx.problem(Position::File, "empty".to_owned());
            FileKind::Unreadable
        }
        Some(b'[') => {
            stream_elements(body, ctx, Container::Array);
            FileKind::Array
        }
        Some(b'{') => match object_container(body) {
            Some(Container::Records) => {
                stream_elements(body, ctx, Container::Records);
                FileKind::Records
            }
            Some(container) => {
                stream_elements(body, ctx, container);
                FileKind::LookupEvents
            }
            None => stream_values(body, ctx, 1, true),
        },
        Some(_) => {
            ctx.problem(
                Position::File,
                "not CloudTrail JSON (neither an object nor an array)".to_owned(),
            );
            FileKind::Unreadable
        }
    }
}

/// Hands each element of a JSON array to the context as it is parsed, so the elements before
/// a syntax error still count.
///
/// Two passes share it. The fast one deserialises each element straight into a [`RawRecord`]
/// (one parse per event); any error stops it at the element that failed. The careful one then
/// goes over the file again, each element first cut out as raw text so a bad one is reported
/// with its position and skipped, and hands on only elements from `skip` on (those before were
/// handed on by the fast pass).
struct EventsSeed<'x, 'c> {
    ctx: &'x mut Ctx<'c>,
    container: Container,
    index: u64,
    fast: bool,
    skip: u64,
}

impl<'de> Visitor<'de> for &mut EventsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.fast {
            while let Some(raw) = seq.next_element::<RawRecord<'de>>()? {
                let i = self.index;
                self.index += 1;
                let position = self.position(i);
                self.ctx.raw_event(raw, i, position);
            }
            return Ok(());
        }
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let i = self.index;
            self.index += 1;
            if i < self.skip {
                continue;
            }
            let position = self.position(i);
            if self.container == Container::Lookup {
                self.ctx.lookup_event(raw.get(), i, position);
            } else {
                self.ctx.event(raw.get(), i, position);
            }
        }
        Ok(())
    }
}

impl EventsSeed<'_, '_> {
    fn position(&self, i: u64) -> Position {
        match self.container {
            Container::Records => Position::Record(i),
            Container::Array => Position::Element(i),
            Container::Lookup => Position::LookupEvent(i),
        }
    }
}

impl<'de> DeserializeSeed<'de> for &mut EventsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// Where a file's events are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// `{"Records": [...]}`.
    Records,
    /// A top-level array.
    Array,
    /// `{"Events": [...]}` of LookupEvents entries.
    Lookup,
}

/// `{"Records": [...], ...}` or `{"Events": [...], ...}`: other members are skipped.
struct RecordsVisitor<'s, 'x, 'c>(&'s mut EventsSeed<'x, 'c>);

impl<'de> Visitor<'de> for RecordsVisitor<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudTrail log file object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let events = if self.0.container == Container::Lookup {
            "Events"
        } else {
            "Records"
        };
        while let Some(key) = map.next_key::<super::raw::JStr<'de>>()? {
            if key.as_str() == events {
                map.next_value_seed(&mut *self.0)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

fn syntax_problem(ctx: &mut Ctx<'_>, e: &serde_json::Error, after: u64) {
    ctx.problem(
        Position::Syntax {
            line: e.line() as u64,
            column: e.column() as u64,
        },
        format!("malformed or truncated JSON after {after} events; rest of file skipped: {e}"),
    );
}

/// The events of a `Records` or `Events` object or of a top-level array: the fast pass, and
/// the careful one only when the fast one met an error (see [`EventsSeed`]). LookupEvents
/// entries hold their events as text, which the fast pass cannot read in place, so they go
/// straight to the careful pass (a page holds at most 50 events).
///
/// The body's UTF-8 is checked once here, so the parser need not check each string it reads;
/// a body that is not UTF-8 throughout (a damaged file) is parsed from bytes as before, which
/// reports the bad event and keeps the rest.
fn stream_elements(body: &[u8], ctx: &mut Ctx<'_>, container: Container) {
    let text = std::str::from_utf8(body).ok();
    let mut seed = EventsSeed {
        ctx,
        container,
        index: 0,
        fast: container != Container::Lookup,
        skip: 0,
    };
    if seed.fast && parse_elements(body, text, &mut seed).is_ok() {
        return;
    }
    let mut seed = EventsSeed {
        skip: seed.index,
        ctx: seed.ctx,
        container,
        index: 0,
        fast: false,
    };
    if let Err(e) = parse_elements(body, text, &mut seed) {
        let after = seed.index;
        syntax_problem(seed.ctx, &e, after);
    }
}

/// Parses `body`, through `text` (the same bytes, known to be UTF-8) when given.
fn parse_elements(
    body: &[u8],
    text: Option<&str>,
    seed: &mut EventsSeed<'_, '_>,
) -> Result<(), serde_json::Error> {
    match text {
        Some(t) => parse_elements_with(serde_json::Deserializer::from_str(t), seed),
        None => parse_elements_with(serde_json::Deserializer::from_slice(body), seed),
    }
}

fn parse_elements_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    seed: &mut EventsSeed<'_, '_>,
) -> Result<(), serde_json::Error> {
    if seed.container != Container::Array {
        de.deserialize_map(RecordsVisitor(seed))?;
    } else {
        seed.deserialize(&mut de)?;
    }
    de.end()
}

/// Newline-delimited (or concatenated) JSON objects, `body` starting on line `first_line`. A
/// value that does not parse is skipped to the end of its line and reading resumes there. With
/// `detect_digest`, a first object that is a digest makes the whole file a digest.
fn stream_values(body: &[u8], ctx: &mut Ctx<'_>, first_line: u64, detect_digest: bool) -> FileKind {
    let mut offset = 0usize;
    let mut line = first_line;
    let mut counted_to = 0usize;
    let mut index = 0u64;
    let mut first = detect_digest;
    while offset < body.len() {
        let rest = body.get(offset..).unwrap_or_default();
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<&RawValue>();
        loop {
            let before = offset + stream.byte_offset();
            match stream.next() {
                None => return FileKind::Lines,
                Some(Ok(raw)) => {
                    // The value starts at the first non-blank byte after `before`.
                    let start = before
                        + body
                            .get(before..)
                            .unwrap_or_default()
                            .iter()
                            .position(|c| !c.is_ascii_whitespace())
                            .unwrap_or(0);
                    line += count_newlines(body.get(counted_to..start).unwrap_or_default());
                    counted_to = start;
                    if first {
                        first = false;
                        if is_digest_text(raw.get()) {
                            return FileKind::Digest;
                        }
                    }
                    ctx.event(raw.get(), index, Position::Line(line));
                    index += 1;
                }
                Some(Err(e)) => {
                    let start = before
                        + body
                            .get(before..)
                            .unwrap_or_default()
                            .iter()
                            .position(|c| !c.is_ascii_whitespace())
                            .unwrap_or(0);
                    line += count_newlines(body.get(counted_to..start).unwrap_or_default());
                    counted_to = start;
                    first = false;
                    ctx.problem(Position::Line(line), format!("bad JSON: {e}"));
                    index += 1;
                    // Resume after the end of the bad value's line.
                    let next = body
                        .get(start..)
                        .unwrap_or_default()
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(body.len(), |p| start + p + 1);
                    offset = next;
                    break;
                }
            }
        }
    }
    FileKind::Lines
}

fn count_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

fn is_digest_text(json: &str) -> bool {
    serde_json::from_str::<super::raw::RawRecord<'_>>(json).is_ok_and(|r| r.is_digest())
}
