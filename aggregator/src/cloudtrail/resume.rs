//! Where a growing newline-delimited file was read up to, and a fingerprint of what was read,
//! so `serve` reads only the lines appended since and notices a file that was replaced or cut.
//!
//! The fingerprint hashes the first and the last [`FINGERPRINT_SPAN`] bytes before the cursor:
//! appending leaves both unchanged; a file rewritten with other content (rotation, a new export
//! under the same name) changes at least one in practice, and a shorter file cannot reach the
//! cursor at all. Both are cheap to read however large the file has grown.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes hashed at each end of the consumed part.
pub const FINGERPRINT_SPAN: u64 = 4096;

/// The point in a line file up to which every complete line has been handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinesCursor {
    /// Byte offset just after the last consumed line (its newline included).
    pub offset: u64,
    /// 1-based number of the line that starts at `offset`, so positions stay true.
    pub line: u64,
}

impl LinesCursor {
    /// The start of a file.
    pub const START: Self = Self { offset: 0, line: 1 };
}

/// The fingerprint of `path`'s first `offset` bytes (see the module docs).
///
/// # Errors
/// The I/O error when the file cannot be opened or read, or is shorter than `offset`.
pub fn fingerprint(path: &Path, offset: u64) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    hasher.update(offset.to_be_bytes());
    let head = offset.min(FINGERPRINT_SPAN);
    hash_span(&mut file, 0, head, &mut hasher)?;
    let tail_start = offset.saturating_sub(FINGERPRINT_SPAN).max(head);
    hash_span(&mut file, tail_start, offset - tail_start, &mut hasher)?;
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Ok(u64::from_be_bytes(first))
}

fn hash_span(file: &mut File, start: u64, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // `len` is at most FINGERPRINT_SPAN, so the cast cannot truncate.
    let mut buf = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    hasher.update(&buf);
    Ok(())
}

/// How much of `bytes` (read from a line file) is complete: up to and including the last
/// newline, or everything when the text after it is blank or whole JSON values (a last line
/// written without a newline). A cut last line is left for the next read.
pub fn complete_len(bytes: &[u8]) -> usize {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let tail = bytes.get(end..).unwrap_or_default();
    let whole = serde_json::Deserializer::from_slice(tail)
        .into_iter::<serde::de::IgnoredAny>()
        .all(|v| v.is_ok());
    if whole { bytes.len() } else { end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_last_line_is_left_and_a_whole_one_is_taken() {
        assert_eq!(complete_len(b"{\"a\":1}\n{\"b\":"), 8);
        assert_eq!(complete_len(b"{\"a\":1}\n{\"b\":2}"), 15);
        assert_eq!(complete_len(b"{\"a\":1}\n  "), 10);
        assert_eq!(complete_len(b"{\"a\""), 0);
        assert_eq!(complete_len(b""), 0);
    }

    #[test]
    fn appending_keeps_the_fingerprint_and_rewriting_changes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.jsonl");
        let first: String = (0..500).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        std::fs::write(&path, &first).expect("write");
        let at = first.len() as u64;
        let before = fingerprint(&path, at).expect("hash");
        std::fs::write(&path, format!("{first}{{\"n\":500}}\n")).expect("append");
        assert_eq!(fingerprint(&path, at).expect("hash"), before);
        // Same length, one byte changed near the cursor.
        std::fs::write(&path, first.replace("{\"n\":499}", "{\"n\":498}")).expect("rewrite");
        assert_ne!(fingerprint(&path, at).expect("hash"), before);
        std::fs::write(&path, "{}\n").expect("cut");
        assert!(fingerprint(&path, at).is_err());
    }
}
