//! One DNS message, parsed by `hickory-proto` after cheap checks of our own, reduced to the
//! fields Picket uses.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RecordType;

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

/// One resource record of a response's answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Owner name, lower case, without the trailing dot.
    pub name: String,
    /// Record type number (1 A, 28 AAAA, 5 CNAME, 16 TXT...).
    pub rtype: u16,
    /// Record data in presentation format.
    pub data: String,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The address, for A and AAAA records.
    pub addr: Option<IpAddr>,
}

/// The parts of a DNS message Picket uses.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub answers: Vec<DnsAnswer>,
    /// Answer records beyond [`MAX_ANSWERS`], not kept.
    pub answers_dropped: usize,
}

/// Parses one DNS message (without the TCP length prefix).
///
/// # Errors
///
/// Returns the [`DnsErrorKind`] saying why the message cannot be used.
pub fn parse(bytes: &[u8]) -> Result<DnsMessage, DnsErrorKind> {
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
    let message = Message::from_vec(bytes).map_err(|_| DnsErrorKind::Malformed)?;
    let Some(query) = message.queries().first() else {
        return Err(DnsErrorKind::NoQuestion);
    };
    let answers = message
        .answers()
        .iter()
        .take(MAX_ANSWERS)
        .map(|record| DnsAnswer {
            name: presentation(&record.name().to_ascii()),
            rtype: u16::from(record.record_type()),
            data: record.data().to_string(),
            ttl: record.ttl(),
            addr: record.data().ip_addr(),
        })
        .collect();
    Ok(DnsMessage {
        id: message.id(),
        is_response: message.message_type() == MessageType::Response,
        rcode: u16::from(message.response_code()),
        name: presentation(&query.name().to_ascii()),
        qtype: u16::from(query.query_type()),
        answers,
        answers_dropped: message.answers().len().saturating_sub(MAX_ANSWERS),
    })
}

/// A record type's mnemonic ("A", "AAAA", "TXT"...), or "Unknown".
pub fn record_type_name(rtype: u16) -> &'static str {
    <&'static str>::from(RecordType::from(rtype))
}

/// Names are compared and reported in lower case without the root's trailing dot.
fn presentation(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}
