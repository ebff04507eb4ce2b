//! One DNS message, parsed by `hickory-proto` after cheap checks of our own, reduced to the
//! fields Picket uses.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RecordType;
use smallvec::SmallVec;

use crate::summaries::addr_text::addr_text;

/// Most answers kept per message; the rest are counted in [`DnsMessage::answers_dropped`].
pub const MAX_ANSWERS: usize = 32;

/// The DNS header's size (RFC 1035 §4.1.1).
const HEADER_LEN: usize = 12;
/// The smallest question: a root name (1 byte), type and class (RFC 1035 §4.1.2).
const MIN_QUESTION_LEN: usize = 5;
/// The smallest resource record: root name, type, class, TTL, rdlength (§4.1.3).
const MIN_RECORD_LEN: usize = 11;

/// Why a DNS message was not used; `as_str` gives a fixed metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DnsErrorKind {
    /// Occurs when the message is shorter than the 12-byte header.
    #[error("shorter than the DNS header")]
    TooShort,
    /// Occurs when the header's record counts need more bytes than the message has.
    #[error("record counts exceed the message length")]
    BadCounts,
    /// Occurs when hickory-proto rejects the message (bad name, compression loop, bad rdata
    /// length...).
    #[error("malformed message")]
    Malformed,
    /// Occurs when a message has no question to pair or name it by.
    #[error("no question")]
    NoQuestion,
}

impl DnsErrorKind {
    /// Number of kinds.
    pub const COUNT: usize = 4;

    /// Every kind, in declaration order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::TooShort,
        Self::BadCounts,
        Self::Malformed,
        Self::NoQuestion,
    ];

    /// A fixed label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::BadCounts => "bad_counts",
            Self::Malformed => "malformed",
            Self::NoQuestion => "no_question",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Answers kept in place, without an allocation, up to this many (most answers hold one or
/// two addresses).
pub const INLINE_ANSWERS: usize = 2;

/// A message's answer records.
pub type Answers = SmallVec<[DnsAnswer; INLINE_ANSWERS]>;

/// One resource record of a response's answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Owner name, lower case, without the trailing dot; `None` when it is the message's
    /// question name (the common case, which then costs no copy of the name).
    pub owner: Option<String>,
    /// Record type number (1 A, 28 AAAA, 5 CNAME, 16 TXT...).
    pub rtype: u16,
    /// Record data.
    pub data: AnswerData,
    /// Time to live, seconds.
    pub ttl: u32,
}

impl DnsAnswer {
    /// The owner name, where `question` is the name of the message it came in.
    pub fn name<'a>(&'a self, question: &'a str) -> &'a str {
        self.owner.as_deref().unwrap_or(question)
    }

    /// The address, for A and AAAA records.
    pub fn addr(&self) -> Option<IpAddr> {
        match self.data {
            AnswerData::Addr(addr) => Some(addr),
            AnswerData::Text(_) => None,
        }
    }
}

/// A record's data: an address is kept as one, and written out only where a summary needs
/// its text; anything else is kept in presentation format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerData {
    /// The address of an A or AAAA record.
    Addr(IpAddr),
    /// Any other record's data, in presentation format.
    Text(String),
}

impl AnswerData {
    /// The data in presentation format.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Addr(addr) => Cow::Owned(addr_text(*addr)),
            Self::Text(text) => Cow::Borrowed(text),
        }
    }
}

/// The parts of a DNS message Picket uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsMessage {
    /// Transaction id.
    pub id: u16,
    /// QR bit: a response rather than a query.
    pub is_response: bool,
    /// Response code (0 NOERROR, 3 NXDOMAIN...).
    pub rcode: u16,
    /// The first question's name, lower case, without the trailing dot.
    pub name: String,
    /// The first question's type.
    pub qtype: u16,
    /// Answer records, at most [`MAX_ANSWERS`].
    pub answers: Answers,
    /// Answer records beyond [`MAX_ANSWERS`], not kept.
    pub answers_dropped: usize,
}

/// Parses one DNS message (without the TCP length prefix).
///
/// # Errors
///
/// Returns the [`DnsErrorKind`] saying why the message cannot be used.
pub fn parse(bytes: &[u8]) -> Result<DnsMessage, DnsErrorKind> {
    let mut message = DnsMessage::default();
    parse_into(bytes, &mut message)?;
    Ok(message)
}

/// Parses one DNS message (without the TCP length prefix) into `out`, whose name's buffer a
/// plain message reuses: a tracker parsing every message into one `DnsMessage` allocates no
/// name for a response (its transaction is named by its query).
///
/// # Errors
///
/// Returns the [`DnsErrorKind`] saying why the message cannot be used; `out` then holds
/// nothing meaningful.
pub fn parse_into(bytes: &[u8], out: &mut DnsMessage) -> Result<(), DnsErrorKind> {
    let Some((header, _)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(DnsErrorKind::TooShort);
    };
    // Header counts are claims: reject ones the message cannot hold before anything is sized
    // from them (the approach of Suricata's `probe_header_validity`).
    let [_, _, _, _, q0, q1, a0, a1, n0, n1, r0, r1] = *header;
    let count = |hi, lo| usize::from(u16::from_be_bytes([hi, lo]));
    let needed = count(q0, q1)
        .saturating_mul(MIN_QUESTION_LEN)
        .saturating_add(
            (count(a0, a1) + count(n0, n1) + count(r0, r1)).saturating_mul(MIN_RECORD_LEN),
        );
    if needed > bytes.len().saturating_sub(HEADER_LEN) {
        return Err(DnsErrorKind::BadCounts);
    }
    match parse_plain_into(bytes, out) {
        Some(result) => result,
        None => {
            *out = parse_with_hickory(bytes)?;
            Ok(())
        }
    }
}

/// The whole message through `hickory-proto`.
pub(super) fn parse_with_hickory(bytes: &[u8]) -> Result<DnsMessage, DnsErrorKind> {
    let message = Message::from_vec(bytes).map_err(|_| DnsErrorKind::Malformed)?;
    let Some(query) = message.queries().first() else {
        return Err(DnsErrorKind::NoQuestion);
    };
    let name = presentation(&query.name().to_ascii());
    let mut answers = Answers::new();
    for record in message.answers().iter().take(MAX_ANSWERS) {
        let data = match record.data().ip_addr() {
            Some(addr) => AnswerData::Addr(addr),
            None => {
                // hickory's `Display` of some record data it parsed fails (the `dns` fuzz
                // target found one), and `to_string` would panic on that: such a message is
                // malformed.
                let mut text = String::new();
                write!(text, "{}", record.data()).map_err(|_| DnsErrorKind::Malformed)?;
                AnswerData::Text(text)
            }
        };
        let owner = presentation(&record.name().to_ascii());
        answers.push(DnsAnswer {
            owner: (owner != name).then_some(owner),
            rtype: u16::from(record.record_type()),
            data,
            ttl: record.ttl(),
        });
    }
    Ok(DnsMessage {
        id: message.id(),
        is_response: message.message_type() == MessageType::Response,
        rcode: u16::from(message.response_code()),
        name,
        qtype: u16::from(query.query_type()),
        answers,
        answers_dropped: message.answers().len().saturating_sub(MAX_ANSWERS),
    })
}

/// [`parse_plain_into`] into a message of its own, for tests that compare it with hickory.
#[cfg(test)]
pub(super) fn parse_plain(bytes: &[u8]) -> Option<Result<DnsMessage, DnsErrorKind>> {
    let mut message = DnsMessage::default();
    Some(parse_plain_into(bytes, &mut message)?.map(|()| message))
}

/// The most common messages, read by hand: a plain query, or its answer holding only A and
/// AAAA records named by a pointer to the question. Gives `None` for anything else (and for
/// anything hickory might read or print differently), which then goes to hickory. A message
/// plain up to where its bytes run out (a capture's snap length cut it) is malformed, as
/// hickory finds it after building and dropping most of it.
///
/// Hand-written rather than hickory for speed: hickory builds owned names, labels and records
/// and prints them back, about 4 600 instructions and ten allocations per message, the
/// largest cost of DNS in the replay benchmark. `the_plain_reader_agrees_with_hickory` in the
/// tests checks it against hickory on generated messages, plain and otherwise.
///
/// Plain means: one question of class IN; no authority or additional records (so no EDNS);
/// opcode QUERY and not truncated; a name of at most 200 wire bytes whose labels hold only
/// letters, digits, `_` and a `-` that is not first (what hickory writes unescaped); at most
/// [`MAX_ANSWERS`] answers, each of class IN, owned by a pointer to offset 12, and an A with
/// 4 bytes of data or an AAAA with 16. Bytes after the last answer are ignored, as hickory
/// ignores them.
///
/// The message goes into `out`, its name into `out.name`'s buffer. Where this gives `None`
/// or an error, `out` holds nothing meaningful.
fn parse_plain_into(bytes: &[u8], out: &mut DnsMessage) -> Option<Result<(), DnsErrorKind>> {
    let cut = Some(Err(DnsErrorKind::Malformed));
    let (&[i0, i1, f0, f1, q0, q1, a0, a1, n0, n1, r0, r1], rest) =
        bytes.split_first_chunk::<HEADER_LEN>()?;
    // Opcode (0x78) and TC (0x02) bits clear.
    if [q0, q1, n0, n1, r0, r1] != [0, 1, 0, 0, 0, 0] || f0 & 0x7a != 0 {
        return None;
    }
    let answer_count = usize::from(u16::from_be_bytes([a0, a1]));
    if answer_count > MAX_ANSWERS {
        return None;
    }
    let rest = match plain_name(rest, &mut out.name)? {
        Some(rest) => rest,
        None => return cut,
    };
    let Some((&[t0, t1, c0, c1], mut rest)) = rest.split_first_chunk::<4>() else {
        return cut;
    };
    if [c0, c1] != [0, 1] {
        return None;
    }
    let mut answers = Answers::new();
    for _ in 0..answer_count {
        // A cut anywhere in the record's fixed part, once what came before is plain, fails in
        // hickory whatever the missing bytes were; so does data running past the message.
        let fixed = match rest.split_first_chunk::<12>() {
            Some(split) => split,
            None if rest.len() < 2 || rest.starts_with(&[0xc0, 0x0c]) => return cut,
            None => return None,
        };
        let (&[0xc0, 0x0c, r0, r1, 0, 1, l0, l1, l2, l3, d0, d1], after) = fixed else {
            return None;
        };
        let rtype = u16::from_be_bytes([r0, r1]);
        let length = usize::from(u16::from_be_bytes([d0, d1]));
        let Some(data) = after.get(..length) else {
            return cut;
        };
        let addr = match (rtype, data.len()) {
            (1, 4) => IpAddr::from(<[u8; 4]>::try_from(data).ok()?),
            (28, 16) => IpAddr::from(<[u8; 16]>::try_from(data).ok()?),
            _ => return None,
        };
        answers.push(DnsAnswer {
            owner: None,
            rtype,
            data: AnswerData::Addr(addr),
            ttl: u32::from_be_bytes([l0, l1, l2, l3]),
        });
        rest = after.get(length..)?;
    }
    out.id = u16::from_be_bytes([i0, i1]);
    out.is_response = f0 & 0x80 != 0;
    // Without EDNS the response code is the header's four bits.
    out.rcode = u16::from(f1 & 0x0f);
    out.qtype = u16::from_be_bytes([t0, t1]);
    out.answers = answers;
    out.answers_dropped = 0;
    Some(Ok(()))
}

/// A name of plain labels (see [`parse_plain_into`]) written into `name` in presentation form,
/// lower case, without the trailing dot, and the bytes after it; `Some(None)` when the bytes
/// end inside a plain name.
fn plain_name<'a>(bytes: &'a [u8], name: &mut String) -> Option<Option<&'a [u8]>> {
    // First the labels are checked and the name's end found, then the text is copied once:
    // built label by label it grew and was checked per label.
    let mut end = 0_usize;
    let mut text_len = 0_usize;
    loop {
        let Some((&length, after)) = bytes.get(end..).and_then(<[u8]>::split_first) else {
            return Some(None);
        };
        let length = usize::from(length);
        if length == 0 {
            break;
        }
        // Above 63 are pointers and reserved label types.
        if length > 63 {
            return None;
        }
        // The wire name so far, with the root's byte to come.
        if end + length + 2 > 200 {
            return None;
        }
        // Cut inside a label: plain only if what is there is.
        let label = after.get(..length).unwrap_or(after);
        let plain = label
            .iter()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || *b == b'_' || (*b == b'-' && i > 0));
        if !plain {
            return None;
        }
        if label.len() < length {
            return Some(None);
        }
        text_len += length + usize::from(end > 0);
        end += length + 1;
    }
    let mut text = std::mem::take(name).into_bytes();
    text.clear();
    text.reserve(text_len);
    let mut at = 0_usize;
    while at < end {
        let length = usize::from(*bytes.get(at)?);
        if at > 0 {
            text.push(b'.');
        }
        let label = bytes.get(at + 1..at + 1 + length)?;
        text.extend(label.iter().map(u8::to_ascii_lowercase));
        at += length + 1;
    }
    // Plain labels are ASCII, so this never fails.
    *name = String::from_utf8(text).ok()?;
    Some(Some(bytes.get(end + 1..)?))
}

/// A record type's mnemonic ("A", "AAAA", "TXT"...), or "Unknown".
pub fn record_type_name(rtype: u16) -> &'static str {
    <&'static str>::from(RecordType::from(rtype))
}

/// Names are compared and reported in lower case without the root's trailing dot.
fn presentation(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}
