//! DNS over TCP: each message is prefixed by its 2-byte length (RFC 1035 §4.2.2, RFC 7766)
//! and may be split across segments. Each direction of each connection gets a buffer bounded
//! by the largest possible message; the number of connections is bounded too.

use std::collections::{HashMap, VecDeque};

use crate::decode::TcpFlags;
use crate::flow_table::Endpoint;

/// A length prefix plus the largest message it can announce.
pub const MAX_BUFFER: usize = 2 + 65_535;

/// One direction of one connection.
#[derive(Debug)]
struct Stream {
    /// Sequence number expected next.
    next_seq: u32,
    buf: Vec<u8>,
    order: u64,
}

/// What happened to a segment that could not be used as-is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// Segments that skipped ahead (a lost segment): the stream was dropped.
    pub gaps: u64,
    /// Streams forgotten to make room for new ones.
    pub evicted: u64,
}

/// Reassembles length-prefixed DNS messages per (sender, receiver).
#[derive(Debug)]
pub struct TcpStreams {
    streams: HashMap<(Endpoint, Endpoint), Stream, foldhash::fast::RandomState>,
    order: VecDeque<((Endpoint, Endpoint), u64)>,
    capacity: usize,
    next_order: u64,
    stats: StreamStats,
}

impl TcpStreams {
    /// Holds at most `capacity` stream directions (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            streams: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            next_order: 0,
            stats: StreamStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Adds one segment from `src` to `dst` and calls `message` with each DNS message it
    /// completes (without the length prefix).
    pub fn push(
        &mut self,
        src: Endpoint,
        dst: Endpoint,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        mut message: impl FnMut(&[u8]),
    ) {
        let key = (src, dst);
        if flags.contains(TcpFlags::SYN) {
            // The SYN takes one sequence number; data starts after it.
            self.streams.remove(&key);
            self.open(key, seq.wrapping_add(1));
        }
        if !payload.is_empty() {
            if !self.streams.contains_key(&key) {
                // Joined mid-connection: assume the segment starts a message, as a
                // connection's first data segment does.
                self.open(key, seq);
            }
            if let Some(stream) = self.streams.get_mut(&key) {
                let behind = stream.next_seq.wrapping_sub(seq);
                // Sequence space wraps: "behind" by less than 2^31 is a retransmission.
                let data = if behind == 0 {
                    Some(payload)
                } else if behind < 0x8000_0000 {
                    usize::try_from(behind).ok().and_then(|b| payload.get(b..))
                } else {
                    None
                };
                match data {
                    Some(data) if !data.is_empty() => {
                        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                        stream.next_seq = stream.next_seq.wrapping_add(len);
                        stream.buf.extend_from_slice(data);
                        if !drain_messages(&mut stream.buf, &mut message) {
                            self.streams.remove(&key);
                            self.stats.gaps = self.stats.gaps.saturating_add(1);
                        }
                    }
                    Some(_) => {}
                    None if behind >= 0x8000_0000 => {
                        // Ahead of what was expected: a segment was lost, and the message
                        // boundaries with it.
                        self.streams.remove(&key);
                        self.stats.gaps = self.stats.gaps.saturating_add(1);
                    }
                    None => {}
                }
            }
        }
        if flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST) {
            self.streams.remove(&key);
        }
    }

    fn open(&mut self, key: (Endpoint, Endpoint), next_seq: u32) {
        while self.streams.len() >= self.capacity {
            let Some((oldest, order)) = self.order.pop_front() else {
                break;
            };
            if self.streams.get(&oldest).is_some_and(|s| s.order == order) {
                self.streams.remove(&oldest);
                self.stats.evicted = self.stats.evicted.saturating_add(1);
            }
        }
        let order = self.next_order;
        self.next_order = self.next_order.wrapping_add(1);
        self.streams.insert(
            key,
            Stream {
                next_seq,
                buf: Vec::new(),
                order,
            },
        );
        self.order.push_back((key, order));
        if self.order.len() > self.capacity.saturating_mul(2) {
            let streams = &self.streams;
            self.order
                .retain(|(key, order)| streams.get(key).is_some_and(|s| s.order == *order));
        }
    }

    /// Stream directions held now.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is held.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Hands out every complete message at the front of `buf` and keeps the rest. Returns false
/// when the buffer outgrew any possible message (the stream is garbage).
fn drain_messages(buf: &mut Vec<u8>, message: &mut impl FnMut(&[u8])) -> bool {
    let mut start = 0_usize;
    loop {
        let rest = buf.get(start..).unwrap_or_default();
        let Some((&[hi, lo], body)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(msg) = body.get(..len) else {
            break;
        };
        message(msg);
        start = start.saturating_add(2).saturating_add(len);
    }
    buf.drain(..start.min(buf.len()));
    buf.len() <= MAX_BUFFER
}
