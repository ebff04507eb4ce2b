//! DNS: queries and responses on port 53 over UDP and TCP, paired into transactions, and
//! the address → name map their answers give.
//!
//! Parsing is `hickory-proto`, behind cheap header checks and a reader of our own for the
//! plainest messages. Unlike decode, this stage allocates per DNS message: a query's name, kept
//! until its response; hickory's owned names and records for any message the plain reader
//! leaves to it. Answers stay in place (up to [`message::INLINE_ANSWERS`]), an address as an
//! address and an owner as a reference to the question's name where it is that. Every table
//! is bounded and counts what it drops, and a malformed message is counted by kind and
//! skipped, never fatal.

pub mod ip_names;
pub mod message;
pub mod pending;
pub mod registered_domain;
pub mod tcp_stream;

use std::net::IpAddr;
use std::time::Duration;

use crate::capture::Timestamp;
use crate::decode::{Decoded, Transport, protocol};
use crate::flow_table::Endpoint;

pub use ip_names::IpNames;
pub use message::{
    AnswerData, Answers, DnsAnswer, DnsErrorKind, DnsMessage, parse, parse_into, record_type_name,
};
pub use pending::{PendingKey, PendingQueries, PendingQuery};
pub use registered_domain::registered_domain;
pub use tcp_stream::TcpStreams;

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Bounds and timeouts of the DNS stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsConfig {
    /// Most queries waiting for a response.
    pub max_pending: usize,
    /// How long a query waits before it counts as unanswered.
    pub query_timeout: Duration,
    /// Most addresses in the address → name map.
    pub max_names: usize,
    /// Most TCP stream directions being reassembled (each up to 64 KiB).
    pub max_tcp_streams: usize,
}

impl Default for DnsConfig {
    /// 5 s query timeout (resolvers retry after about that), 16 384 pending queries, 65 536
    /// names, 256 TCP streams (at most 16 MiB of buffers).
    fn default() -> Self {
        Self {
            max_pending: 16_384,
            query_timeout: Duration::from_secs(5),
            max_names: 65_536,
            max_tcp_streams: 256,
        }
    }
}

/// One query and its response, or a query that got none, or a response whose query was not
/// seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTransaction {
    /// The end that asked.
    pub client: Endpoint,
    /// The resolver.
    pub server: Endpoint,
    /// IP protocol the exchange used (UDP or TCP).
    pub protocol: u8,
    /// Transaction id.
    pub id: u16,
    /// Name asked for, lower case, no trailing dot.
    pub name: String,
    /// Type asked for.
    pub qtype: u16,
    /// When the query was seen, if it was.
    pub query_ts: Option<Timestamp>,
    /// When the response was seen, if it was.
    pub response_ts: Option<Timestamp>,
    /// Response code, when there was a response.
    pub rcode: Option<u16>,
    /// Answer records of the response; an answer without an owner is for `name`.
    pub answers: Answers,
}

impl DnsTransaction {
    /// The registered domain of the name asked for.
    pub fn registered_domain(&self) -> &str {
        registered_domain(&self.name)
    }

    /// Whether the response said the name does not exist (NXDOMAIN, rcode 3).
    pub fn is_nxdomain(&self) -> bool {
        self.rcode == Some(3)
    }

    /// Whether a query went unanswered.
    pub fn is_unanswered(&self) -> bool {
        self.response_ts.is_none()
    }
}

/// What the DNS stage counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsStats {
    /// Messages parsed.
    pub messages: u64,
    /// Of which queries.
    pub queries: u64,
    /// Of which responses.
    pub responses: u64,
    /// Queries whose response never came (timed out, evicted or drained).
    pub unanswered: u64,
    /// Responses whose query was not seen.
    pub unmatched_responses: u64,
    /// Pending queries given up on to make room.
    pub pending_evicted: u64,
    /// Addresses dropped from the name map to make room.
    pub names_evicted: u64,
    /// TCP streams dropped after a lost segment.
    pub tcp_gaps: u64,
    /// TCP streams dropped to make room.
    pub tcp_streams_evicted: u64,
    malformed: [u64; DnsErrorKind::COUNT],
}

impl DnsStats {
    /// Messages rejected for one reason.
    pub fn malformed(&self, kind: DnsErrorKind) -> u64 {
        self.malformed.get(kind.index()).copied().unwrap_or(0)
    }

    /// Messages rejected for any reason.
    pub fn total_malformed(&self) -> u64 {
        self.malformed
            .iter()
            .fold(0_u64, |acc, n| acc.saturating_add(*n))
    }

    fn count_malformed(&mut self, kind: DnsErrorKind) {
        if let Some(n) = self.malformed.get_mut(kind.index()) {
            *n = n.saturating_add(1);
        }
    }
}

/// The DNS stage: feed it every decoded packet; it picks out port 53.
#[derive(Debug)]
pub struct DnsTracker {
    pending: PendingQueries,
    names: IpNames,
    streams: TcpStreams,
    stats: DnsStats,
    /// Every UDP message is parsed into this one, so a plain response reuses its name's
    /// buffer instead of allocating a name its query already gave.
    scratch: DnsMessage,
}

impl DnsTracker {
    /// An empty tracker.
    pub fn new(config: DnsConfig) -> Self {
        Self {
            pending: PendingQueries::new(config.max_pending, config.query_timeout),
            names: IpNames::new(config.max_names),
            streams: TcpStreams::new(config.max_tcp_streams),
            stats: DnsStats::default(),
            scratch: DnsMessage::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> DnsStats {
        let streams = self.streams.stats();
        DnsStats {
            pending_evicted: self.pending.evicted(),
            names_evicted: self.names.evicted(),
            tcp_gaps: streams.gaps,
            tcp_streams_evicted: streams.evicted,
            ..self.stats
        }
    }

    /// The name the host resolved `addr` from, if an answer said so recently.
    pub fn name_for(&self, addr: IpAddr, now: Timestamp) -> Option<&str> {
        self.names.get(addr, now)
    }

    /// Looks at one packet; DNS transactions it completes (and queries that timed out by
    /// `ts`) go to `out`. Packets not to or from port 53 are ignored.
    pub fn observe(&mut self, ts: Timestamp, packet: &Decoded<'_>, out: &mut Vec<DnsTransaction>) {
        self.expire(ts, out);
        match packet.transport {
            Transport::Udp { src_port, dst_port }
                if src_port == DNS_PORT || dst_port == DNS_PORT =>
            {
                let (src, dst) = Endpoint::pair(packet, (src_port, dst_port));
                self.message(ts, src, dst, protocol::UDP, packet.payload, out);
            }
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
                seq,
            } if src_port == DNS_PORT || dst_port == DNS_PORT => {
                let (src, dst) = Endpoint::pair(packet, (src_port, dst_port));
                // Messages borrow the stream buffer, so they are parsed into owned form
                // before the tracker's other tables are touched.
                let mut parsed = Vec::new();
                self.streams
                    .push(src, dst, seq, flags, packet.payload, |bytes| {
                        parsed.push(parse(bytes));
                    });
                for mut result in parsed {
                    let message = result.as_mut().map_err(|kind| *kind);
                    self.handle(ts, src, dst, protocol::TCP, message, out);
                }
            }
            _ => {}
        }
    }

    /// Emits queries that have waited longer than the query timeout at `now`.
    #[inline]
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<DnsTransaction>) {
        let mut unanswered = 0_u64;
        self.pending.expire(now, &mut |key, query| {
            unanswered = unanswered.saturating_add(1);
            out.push(unanswered_transaction(key, query));
        });
        self.stats.unanswered = self.stats.unanswered.saturating_add(unanswered);
    }

    /// Emits every query still waiting (end of a replay, shutdown).
    pub fn flush(&mut self, out: &mut Vec<DnsTransaction>) {
        let mut unanswered = 0_u64;
        self.pending.drain(&mut |key, query| {
            unanswered = unanswered.saturating_add(1);
            out.push(unanswered_transaction(key, query));
        });
        self.stats.unanswered = self.stats.unanswered.saturating_add(unanswered);
    }

    fn message(
        &mut self,
        ts: Timestamp,
        src: Endpoint,
        dst: Endpoint,
        protocol: u8,
        bytes: &[u8],
        out: &mut Vec<DnsTransaction>,
    ) {
        let mut message = std::mem::take(&mut self.scratch);
        let result = parse_into(bytes, &mut message).map(|()| &mut message);
        self.handle(ts, src, dst, protocol, result, out);
        self.scratch = message;
    }

    fn handle(
        &mut self,
        ts: Timestamp,
        src: Endpoint,
        dst: Endpoint,
        protocol: u8,
        result: Result<&mut DnsMessage, DnsErrorKind>,
        out: &mut Vec<DnsTransaction>,
    ) {
        let message = match result {
            Ok(message) => message,
            Err(kind) => {
                self.stats.count_malformed(kind);
                return;
            }
        };
        self.stats.messages = self.stats.messages.saturating_add(1);
        if !message.is_response {
            self.stats.queries = self.stats.queries.saturating_add(1);
            let key = PendingKey {
                client: src,
                server: dst,
                protocol,
                id: message.id,
            };
            let mut evicted = 0_u64;
            let name = message.name.clone();
            self.pending
                .insert(ts, key, name, message.qtype, &mut |key, query| {
                    evicted = evicted.saturating_add(1);
                    out.push(unanswered_transaction(key, query));
                });
            self.stats.unanswered = self.stats.unanswered.saturating_add(evicted);
            return;
        }
        self.stats.responses = self.stats.responses.saturating_add(1);
        for answer in &message.answers {
            if let Some(addr) = answer.addr() {
                // The name the host asked for, not the end of a CNAME chain: that is the name
                // the host will be seen talking to.
                self.names.insert(ts, addr, &message.name, answer.ttl);
            }
        }
        let key = PendingKey {
            client: dst,
            server: src,
            protocol,
            id: message.id,
        };
        let query = self.pending.take(&key);
        if query.is_none() {
            self.stats.unmatched_responses = self.stats.unmatched_responses.saturating_add(1);
        }
        let mut answers = std::mem::take(&mut message.answers);
        let (query_ts, name, qtype) = match query {
            Some(q) => {
                // The transaction is named by its query; answers that were for a different
                // question name keep theirs.
                if q.name != message.name {
                    for answer in answers.iter_mut().filter(|a| a.owner.is_none()) {
                        answer.owner = Some(message.name.clone());
                    }
                }
                (Some(q.ts), q.name, q.qtype)
            }
            None => (None, message.name.clone(), message.qtype),
        };
        out.push(DnsTransaction {
            client: dst,
            server: src,
            protocol,
            id: message.id,
            name,
            qtype,
            query_ts,
            response_ts: Some(ts),
            rcode: Some(message.rcode),
            answers,
        });
    }
}

fn unanswered_transaction(key: PendingKey, query: PendingQuery) -> DnsTransaction {
    DnsTransaction {
        client: key.client,
        server: key.server,
        protocol: key.protocol,
        id: key.id,
        name: query.name,
        qtype: query.qtype,
        query_ts: Some(query.ts),
        response_ts: None,
        rcode: None,
        answers: Answers::new(),
    }
}

#[cfg(test)]
mod tests;
