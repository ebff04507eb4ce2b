//! Splitting a list file into numbered text lines.

use super::Collector;
use crate::indicator::LineProblem;

/// Calls `f(line_number, text)` for each line (1-based, `\r` and a leading BOM removed); lines
/// that are not UTF-8 are reported and skipped. Stops when the collector is full.
pub(crate) fn for_each_line(
    bytes: &[u8],
    out: &mut Collector<'_>,
    mut f: impl FnMut(u32, &str, &mut Collector<'_>),
) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        if out.is_full() {
            return;
        }
        let line = u32::try_from(i.saturating_add(1)).unwrap_or(u32::MAX);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(text) => f(line, text, out),
            Err(_) => out.reject(line, LineProblem::NotUtf8),
        }
    }
}

/// The part of a line before a `#` or `;` comment.
pub(crate) fn before_comment(line: &str) -> &str {
    line.split(['#', ';']).next().unwrap_or("")
}
