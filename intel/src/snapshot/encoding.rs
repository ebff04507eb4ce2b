//! The binary encoding of a snapshot, for shipping to agents and persisting.
//!
//! Layout (little-endian): magic `PKTINTEL`, format `u16`, snapshot version `u64`, SHA-256 of the
//! body (32 bytes), body length `u64`, then the body: strings, lists, metadata rows, IPv4 rows,
//! IPv6 rows, domain rows, each a `u32` count then fixed-layout records. Only the canonical
//! content is encoded; lookup indexes are rebuilt on decode.
//!
//! The decoder treats its input as hostile: every count is checked against the bytes left before
//! anything is sized from it, every index is range-checked, every table must be strictly sorted
//! (so one content has exactly one encoding and one hash), and it returns errors, never panics.

use super::content::{Content, DomainRows, ListSummary, MetaRow, NetRows};
use crate::category::{Category, ListKind};
use crate::domain;
use sha2::{Digest, Sha256};

/// The encoding's first eight bytes.
pub const MAGIC: &[u8; 8] = b"PKTINTEL";
/// The encoding format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Header length: magic, format, version, hash, body length.
const HEADER_LEN: usize = 8 + 2 + 8 + 32 + 8;

/// Why bytes are not a valid snapshot encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Occurs when the input is shorter than the fixed header.
    #[error("input is {have} bytes, shorter than the {need}-byte header")]
    TooShort {
        /// Bytes present.
        have: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// Occurs when the input does not start with `PKTINTEL`.
    #[error("not a Picket intel snapshot (bad magic)")]
    BadMagic,
    /// Occurs when the format version is not one this build reads.
    #[error("snapshot format {found} is not supported (this build reads {FORMAT_VERSION})")]
    UnsupportedFormat {
        /// The format found.
        found: u16,
    },
    /// Occurs when the declared body length disagrees with the bytes present.
    #[error("header declares a {declared}-byte body but {actual} bytes follow")]
    BodyLength {
        /// The declared length.
        declared: u64,
        /// The bytes actually present.
        actual: usize,
    },
    /// Occurs when the body's SHA-256 differs from the header's.
    #[error("content hash mismatch: the body is corrupt or was altered")]
    HashMismatch,
    /// Occurs when a record runs past the end of the body.
    #[error("{section}: truncated at body offset {offset}")]
    Truncated {
        /// The section being read.
        section: &'static str,
        /// Where the read started.
        offset: usize,
    },
    /// Occurs when a count claims more records than the remaining bytes could hold.
    #[error("{section}: count {count} needs more than the {remaining} bytes left")]
    CountTooLarge {
        /// The section.
        section: &'static str,
        /// The claimed count.
        count: u32,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// Occurs when a record holds a value outside its domain.
    #[error("{section}[{index}]: {why}")]
    Invalid {
        /// The section.
        section: &'static str,
        /// The record's index.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// Occurs when bytes remain after the last section.
    #[error("{count} unexpected bytes after the last section")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
}

/// Encodes the body of `content`.
pub(crate) fn encode_body(c: &Content) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(c.v4.len() * 9 + c.v6.len() * 21 + c.domains.records.len() + 1024);
    // Counts fit in u32: `Content::from_lists` and the decoder both check. Were one ever too big,
    // the saturated count would make the decoder fail rather than misread.
    let count = |out: &mut Vec<u8>, n: usize| {
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    };
    count(&mut out, c.strings.len());
    for s in &c.strings {
        count(&mut out, s.len());
        out.extend_from_slice(s.as_bytes());
    }
    count(&mut out, c.lists.len());
    for l in &c.lists {
        count(&mut out, l.name.len());
        out.extend_from_slice(l.name.as_bytes());
        out.push(l.kind as u8);
        for n in [l.rejected, l.ignored, l.skipped] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    count(&mut out, c.metas.len());
    for m in &c.metas {
        out.extend_from_slice(&m.list.to_le_bytes());
        out.push(m.category as u8);
        out.extend_from_slice(&m.source.to_le_bytes());
        out.extend_from_slice(&m.description.to_le_bytes());
    }
    count(&mut out, c.v4.len());
    for ((a, p), m) in c.v4.addr.iter().zip(&c.v4.prefix).zip(&c.v4.meta) {
        out.extend_from_slice(&a.to_le_bytes());
        out.push(*p);
        out.extend_from_slice(&m.to_le_bytes());
    }
    count(&mut out, c.v6.len());
    for ((a, p), m) in c.v6.addr.iter().zip(&c.v6.prefix).zip(&c.v6.meta) {
        out.extend_from_slice(&a.to_le_bytes());
        out.push(*p);
        out.extend_from_slice(&m.to_le_bytes());
    }
    count(&mut out, c.domains.len());
    for i in 0..c.domains.len() {
        let name = c.domains.name(i);
        // Names are at most 253 bytes (checked on build and decode).
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&c.domains.meta(i).to_le_bytes());
    }
    out
}

/// SHA-256 of an encoded body.
pub(crate) fn hash_body(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// The full encoding: header then body.
pub(crate) fn encode(version: u64, hash: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(&u64::try_from(body.len()).unwrap_or(u64::MAX).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Decodes and validates an encoding into (version, hash, content).
pub(crate) fn decode(bytes: &[u8]) -> Result<(u64, [u8; 32], Content), DecodeError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::TooShort {
            have: bytes.len(),
            need: HEADER_LEN,
        });
    };
    let mut h = Reader {
        buf: header,
        pos: 0,
        section: "header",
    };
    if h.array::<8>()? != *MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let format = u16::from_le_bytes(h.array()?);
    if format != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedFormat { found: format });
    }
    let version = u64::from_le_bytes(h.array()?);
    let hash: [u8; 32] = h.array()?;
    let declared = u64::from_le_bytes(h.array()?);
    if u64::try_from(body.len()).ok() != Some(declared) {
        return Err(DecodeError::BodyLength {
            declared,
            actual: body.len(),
        });
    }
    if hash_body(body) != hash {
        return Err(DecodeError::HashMismatch);
    }
    let content = decode_body(body)?;
    Ok((version, hash, content))
}

/// A bounds-checked cursor over the body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    section: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n);
        let slice = end.and_then(|e| self.buf.get(self.pos..e));
        let Some(slice) = slice else {
            return Err(DecodeError::Truncated {
                section: self.section,
                offset: self.pos,
            });
        };
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a count and checks `count * min_record` bytes remain before anything is allocated.
    fn count(&mut self, section: &'static str, min_record: usize) -> Result<usize, DecodeError> {
        self.section = section;
        let count = self.u32()?;
        let remaining = self.buf.len().saturating_sub(self.pos);
        let need = (count as usize).checked_mul(min_record);
        if need.is_none_or(|n| n > remaining) {
            return Err(DecodeError::CountTooLarge {
                section,
                count,
                remaining,
            });
        }
        Ok(count as usize)
    }

    fn str(&mut self, index: usize) -> Result<&'a str, DecodeError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Invalid {
            section: self.section,
            index,
            why: "not UTF-8",
        })
    }

    fn invalid(&self, index: usize, why: &'static str) -> DecodeError {
        DecodeError::Invalid {
            section: self.section,
            index,
            why,
        }
    }
}

fn decode_body(body: &[u8]) -> Result<Content, DecodeError> {
    let mut r = Reader {
        buf: body,
        pos: 0,
        section: "strings",
    };
    let mut c = Content::default();

    let n = r.count("strings", 4)?;
    c.strings.reserve(n);
    for i in 0..n {
        let s = r.str(i)?;
        if c.strings.last().is_some_and(|prev| prev.as_str() >= s) {
            return Err(r.invalid(i, "not strictly sorted"));
        }
        c.strings.push(s.to_owned());
    }

    let n = r.count("lists", 4 + 1 + 24)?;
    for i in 0..n {
        let name = r.str(i)?;
        if name.is_empty() {
            return Err(r.invalid(i, "empty list name"));
        }
        if c.lists
            .last()
            .is_some_and(|prev| prev.name.as_str() >= name)
        {
            return Err(r.invalid(i, "not strictly sorted"));
        }
        let kind = ListKind::from_repr(r.u8()?).ok_or_else(|| r.invalid(i, "unknown list kind"))?;
        let rejected = u64::from_le_bytes(r.array()?);
        let ignored = u64::from_le_bytes(r.array()?);
        let skipped = u64::from_le_bytes(r.array()?);
        c.lists.push(ListSummary {
            name: name.to_owned(),
            kind,
            rejected,
            ignored,
            skipped,
        });
    }

    let n = r.count("metadata", 13)?;
    c.metas.reserve(n);
    for i in 0..n {
        let list = r.u32()?;
        let category =
            Category::from_repr(r.u8()?).ok_or_else(|| r.invalid(i, "unknown category"))?;
        let (source, description) = (r.u32()?, r.u32()?);
        if list as usize >= c.lists.len() {
            return Err(r.invalid(i, "list index out of range"));
        }
        if source as usize >= c.strings.len() || description as usize >= c.strings.len() {
            return Err(r.invalid(i, "string index out of range"));
        }
        let row = MetaRow {
            list,
            category,
            source,
            description,
        };
        if c.metas.last().is_some_and(|prev| *prev >= row) {
            return Err(r.invalid(i, "not strictly sorted"));
        }
        c.metas.push(row);
    }
    let metas = c.metas.len();

    c.v4 = net_rows(&mut r, "ipv4", 32, metas, |r| {
        Ok(u128::from(u32::from_le_bytes(r.array()?)))
    })
    .map(|rows| NetRows {
        // Each address was read from four bytes, so it fits.
        addr: rows
            .addr
            .into_iter()
            .map(|a| u32::try_from(a).unwrap_or(u32::MAX))
            .collect(),
        prefix: rows.prefix,
        meta: rows.meta,
    })?;
    c.v6 = net_rows(&mut r, "ipv6", 128, metas, |r| {
        Ok(u128::from_le_bytes(r.array()?))
    })?;

    let n = r.count("domains", 1 + 4)?;
    let mut rows = DomainRows::default();
    for i in 0..n {
        let len = usize::from(r.u8()?);
        let name = std::str::from_utf8(r.take(len)?).map_err(|_| r.invalid(i, "not UTF-8"))?;
        domain::check_normalized(name).map_err(|_| r.invalid(i, "not a normalised domain name"))?;
        let meta = r.u32()?;
        if meta as usize >= metas {
            return Err(r.invalid(i, "metadata index out of range"));
        }
        if let Some(p) = i.checked_sub(1) {
            let prev = (rows.name(p), rows.meta(p));
            if prev >= (name, meta) {
                return Err(r.invalid(i, "not strictly sorted"));
            }
        }
        if !rows.push(name.as_bytes(), meta) {
            return Err(r.invalid(i, "name bytes overflow"));
        }
    }
    c.domains = rows;

    let left = body.len().saturating_sub(r.pos);
    if left != 0 {
        return Err(DecodeError::TrailingBytes { count: left });
    }
    Ok(c)
}

/// Reads a section of address rows (address, prefix, metadata index), checking each.
fn net_rows(
    r: &mut Reader<'_>,
    section: &'static str,
    bits: u8,
    metas: usize,
    read_addr: impl Fn(&mut Reader<'_>) -> Result<u128, DecodeError>,
) -> Result<NetRows<u128>, DecodeError> {
    let addr_len = usize::from(bits / 8);
    let n = r.count(section, addr_len + 1 + 4)?;
    let mut rows = NetRows {
        addr: Vec::with_capacity(n),
        prefix: Vec::with_capacity(n),
        meta: Vec::with_capacity(n),
    };
    let mut prev: Option<(u128, u8, u32)> = None;
    for i in 0..n {
        let addr = read_addr(r)?;
        let prefix = r.u8()?;
        let meta = r.u32()?;
        if prefix > bits {
            return Err(r.invalid(i, "prefix longer than the address"));
        }
        let host_bits = u32::from(bits - prefix);
        let host_mask = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        if addr & host_mask != 0 {
            return Err(r.invalid(i, "host bits set"));
        }
        if meta as usize >= metas {
            return Err(r.invalid(i, "metadata index out of range"));
        }
        let row = (addr, prefix, meta);
        if prev.is_some_and(|p| p >= row) {
            return Err(r.invalid(i, "not strictly sorted"));
        }
        prev = Some(row);
        rows.addr.push(addr);
        rows.prefix.push(prefix);
        rows.meta.push(meta);
    }
    Ok(rows)
}
