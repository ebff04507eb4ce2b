//! Reading comma-separated feeds with the `csv` crate while keeping line numbers for reports.
//!
//! Comment lines are skipped here rather than by the reader's `comment` option, because records
//! read with that option report line numbers that leave the comment lines out.

use super::Collector;
use crate::indicator::LineProblem;

/// Calls `f(line, record)` for each record (fields trimmed, records whose first field starts
/// with `#` skipped as comments, rows of any width); unreadable records are reported and skipped. Stops when the collector is full.
pub(crate) fn for_each_record(
    bytes: &[u8],
    out: &mut Collector<'_>,
    mut f: impl FnMut(u32, &csv::StringRecord, &mut Collector<'_>),
) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    loop {
        if out.is_full() {
            return;
        }
        match reader.read_record(&mut record) {
            Ok(false) => return,
            Ok(true) => {
                if record.get(0).is_some_and(|f| f.starts_with('#')) {
                    continue;
                }
                let line = record.position().map_or(0, |p| p.line());
                let line = u32::try_from(line).unwrap_or(u32::MAX);
                f(line, &record, out);
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let line = u32::try_from(line).unwrap_or(u32::MAX);
                let problem = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => LineProblem::NotUtf8,
                    _ => LineProblem::Csv {
                        message: e.to_string(),
                    },
                };
                out.reject(line, problem);
                // A reader error without a position cannot make progress; stop instead of looping.
                if e.position().is_none() {
                    return;
                }
            }
        }
    }
}
