//! Flow summaries: one interval's flow records folded per (direction, local address, remote
//! address, protocol, service port) into `FlowSummary` records.
//!
//! Keys:
//! - The service port is the responder's port (ICMP: the initiator's first message type).
//! - A TCP connection that never completed a handshake (its SYN unanswered, or answered only
//!   by a reset) goes under service port 0, "failed attempts to any port", and its port counts
//!   into `distinct_ports`: a SYN scan of a thousand ports is one summary with
//!   `distinct_ports` = 1000, not a thousand summaries. Its `failed_ports` lists the lowest
//!   [`MAX_FAILED_PORTS`] of them, so refused attempts at a few ports (SMTP) can still be named.
//! - A flow whose direction could not be told (neither or both ends local) keeps
//!   `DIRECTION_UNSPECIFIED` and is summarised as if egress: the initiator stands in for the
//!   local end, the responder for the remote one.
//!
//! Bounds: at most `max_summaries` keys per interval (records for further keys are counted
//! in [`FlowSummaryStats::overflow`] and not summarised); `distinct_ports` counts exactly up
//! to [`MAX_DISTINCT_PORTS`] and saturates there; at most [`MAX_SERVER_NAMES`] TLS names per
//! summary; the pending TLS names by flow are capped and their drops counted.

use std::collections::HashMap;
use std::net::IpAddr;

use picket_proto::v1::{Direction, FlowSummary, Record, record};
use smallvec::SmallVec;

use super::addr_text::addr_text;
use super::interval::Interval;
use super::{Aggregates, bounded_entry};
use crate::decode::{AppProtocol, TcpFlags, protocol};
use crate::flow_table::{FlowKey, FlowRecord};

/// Distinct ports counted exactly per summary; past this `distinct_ports` stays at the cap,
/// which detectors read as "at least this many".
pub const MAX_DISTINCT_PORTS: usize = 1024;
/// TLS server names kept per summary.
pub const MAX_SERVER_NAMES: usize = 4;
/// Ports listed in `failed_ports` of a failed-attempts summary, lowest first: enough to name
/// the few ports a refused client tried (SMTP for a spambot), not a scan's thousand.
pub const MAX_FAILED_PORTS: usize = 16;
/// A connection with at most this many packets each way counts as short: probes, refused
/// connections and aborted handshakes take one to three.
pub const SHORT_CONNECTION_PACKETS: u64 = 3;

/// What bounds the flow summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSummaryLimits {
    /// Most summaries per interval.
    pub max_summaries: usize,
    /// Most flows whose TLS server name waits for the flow's record.
    pub max_pending_names: usize,
}

impl Default for FlowSummaryLimits {
    /// 65 536 summaries (a few MiB at most) and 16 384 pending names.
    fn default() -> Self {
        Self {
            max_summaries: 65_536,
            max_pending_names: 16_384,
        }
    }
}

/// What the flow summaries dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowSummaryStats {
    /// Flow records not summarised because the interval already had `max_summaries` keys.
    pub overflow: u64,
    /// TLS server names that reached no summary: the pending table was full, or the flow gave
    /// no record within two intervals.
    pub names_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct SummaryKey {
    direction: i32,
    local: IpAddr,
    remote: IpAddr,
    protocol: u8,
    service_port: u16,
}

/// A [`SummaryKey`] as three integers that order as the key does: its fields' bits one after
/// another, most significant first (direction, local family and bits, remote family and bits,
/// protocol, port: 314 bits).
type SummaryOrder = (u128, u128, u64);

impl SummaryKey {
    /// Orders as the derived `Ord` does: an address by family (IPv4 first), then its bits.
    fn order(&self) -> SummaryOrder {
        let addr = |a: IpAddr| match a {
            IpAddr::V4(v4) => (0_u128, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (1, u128::from(v6)),
        };
        // Flipping the sign bit makes the `i32` order an unsigned one.
        let direction = u128::from(self.direction as u32 ^ 0x8000_0000);
        let (local_v6, local) = addr(self.local);
        let (remote_v6, remote) = addr(self.remote);
        let high = direction << 96 | local_v6 << 95 | local >> 33;
        let middle = local << 95 | remote_v6 << 94 | remote >> 34;
        // The low 34 bits of `remote`; the rest are in `middle`.
        let low = (remote as u64 & ((1 << 34) - 1)) << 24
            | u64::from(self.protocol) << 16
            | u64::from(self.service_port);
        (high, middle, low)
    }
}

#[derive(Debug, Default)]
struct Aggregate {
    connections: u64,
    packets_out: u64,
    packets_in: u64,
    bytes_out: u64,
    bytes_in: u64,
    unanswered_syns: u64,
    resets: u64,
    /// Sorted, at most [`MAX_DISTINCT_PORTS`]. Most summaries have one port: held inline, a
    /// new summary allocates nothing for it.
    ports: SmallVec<[u16; 4]>,
    first_seen_ms: u64,
    last_seen_ms: u64,
    remote_name: Option<Box<str>>,
    tcp_flags: u8,
    remote_answered: bool,
    short_connections: u64,
    app: Option<AppProtocol>,
    server_names: Vec<Box<str>>,
}

/// One interval's flow summaries being built.
#[derive(Debug)]
pub struct FlowSummaries {
    limits: FlowSummaryLimits,
    map: Aggregates<SummaryKey, Aggregate>,
    /// TLS names seen in ClientHellos, by flow, with the interval number they were seen in,
    /// until the flow's record arrives.
    pending_names: HashMap<FlowKey, PendingName, foldhash::fast::RandomState>,
    interval_no: u64,
    stats: FlowSummaryStats,
}

/// A TLS server name waiting for its flow's next record.
#[derive(Debug)]
struct PendingName {
    name: Box<str>,
    /// The interval it was noted or last attached to a record in.
    seen: u64,
    /// Whether an interim record of the flow has carried it already.
    delivered: bool,
}

impl FlowSummaries {
    /// Empty summaries within `limits`.
    pub fn new(limits: FlowSummaryLimits) -> Self {
        Self {
            limits,
            map: Aggregates::with_hasher(foldhash::fast::RandomState::default()),
            pending_names: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            interval_no: 0,
            stats: FlowSummaryStats::default(),
        }
    }

    /// Drops so far.
    pub fn stats(&self) -> FlowSummaryStats {
        self.stats
    }

    /// Summaries being built now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no summary is being built.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Remembers the TLS server name a flow's ClientHello carried, for its summary.
    pub fn note_server_name(&mut self, flow: FlowKey, name: &str) {
        if self.pending_names.contains_key(&flow) {
            return;
        }
        if self.pending_names.len() >= self.limits.max_pending_names {
            self.stats.names_dropped = self.stats.names_dropped.saturating_add(1);
            return;
        }
        self.pending_names.insert(
            flow,
            PendingName {
                name: name.into(),
                seen: self.interval_no,
                delivered: false,
            },
        );
    }

    /// Folds one flow record into its summary; `remote_name` is the name the host resolved
    /// for the remote address, if any.
    pub fn add(&mut self, rec: &FlowRecord, remote_name: Option<&str>) {
        let server_name = if self.pending_names.is_empty() {
            // Most flows have no TLS name waiting: no key to hash for a lookup that must miss.
            None
        } else if rec.reason == crate::flow_table::EndReason::Active {
            // A flow still open keeps its name for its next interim record: refreshing the
            // interval stops a long TLS session's name from ageing out as if it were lost.
            let now = self.interval_no;
            self.pending_names.get_mut(&rec.key).map(|p| {
                p.seen = now;
                p.delivered = true;
                p.name.clone()
            })
        } else {
            self.pending_names.remove(&rec.key).map(|p| p.name)
        };
        let new = || Aggregate {
            first_seen_ms: u64::MAX,
            ..Aggregate::default()
        };
        let key = summary_key(rec);
        let Some(agg) = bounded_entry(
            &mut self.map,
            &key,
            || key,
            self.limits.max_summaries,
            &mut self.stats.overflow,
            new,
        ) else {
            return;
        };
        // Egress and unspecified: the initiator is the local end, so forward is "out".
        let (out, inn) = if rec.direction == Direction::Ingress {
            (rec.reverse, rec.forward)
        } else {
            (rec.forward, rec.reverse)
        };
        let new_connection = rec.sequence == 0;
        if new_connection {
            agg.connections = agg.connections.saturating_add(1);
            let finished = rec.reason != crate::flow_table::EndReason::Active;
            if finished
                && rec.forward.packets <= SHORT_CONNECTION_PACKETS
                && rec.reverse.packets <= SHORT_CONNECTION_PACKETS
            {
                agg.short_connections = agg.short_connections.saturating_add(1);
            }
        }
        agg.packets_out = agg.packets_out.saturating_add(out.packets);
        agg.packets_in = agg.packets_in.saturating_add(inn.packets);
        agg.bytes_out = agg.bytes_out.saturating_add(out.bytes);
        agg.bytes_in = agg.bytes_in.saturating_add(inn.bytes);
        if rec.unanswered_syn() {
            agg.unanswered_syns = agg.unanswered_syns.saturating_add(1);
        }
        agg.resets = agg.resets.saturating_add(u64::from(rec.resets));
        if rec.key.protocol == protocol::TCP || rec.key.protocol == protocol::UDP {
            insert_port(&mut agg.ports, rec.responder.port);
        }
        agg.first_seen_ms = agg.first_seen_ms.min(rec.start.as_millis());
        agg.last_seen_ms = agg.last_seen_ms.max(rec.end.as_millis());
        if agg.remote_name.is_none() {
            agg.remote_name = remote_name.map(Box::from);
        }
        agg.tcp_flags |= rec.forward.tcp_flags | rec.reverse.tcp_flags;
        agg.remote_answered |= rec.answered;
        if agg.app.is_none() {
            agg.app = rec.app;
        }
        if let Some(name) = server_name {
            if agg.server_names.len() < MAX_SERVER_NAMES && !agg.server_names.contains(&name) {
                agg.server_names.push(name);
            }
        }
    }

    /// Emits every summary of `interval` (ordered by key, so replays are byte-identical) and
    /// starts the next interval empty.
    pub fn drain(&mut self, interval: Interval, interface: &str, emit: &mut impl FnMut(Record)) {
        let mut entries: Vec<(SummaryKey, Aggregate)> = self.map.drain().collect();
        // Sorted as (key, position) integers: moving whole aggregates about was most of the
        // cost, and comparing `IpAddr`s field by field most of the rest.
        let mut order: Vec<(u128, u128, u64, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, (key, _))| {
                let (high, middle, low) = key.order();
                (high, middle, low, i)
            })
            .collect();
        order.sort_unstable();
        for (_, _, _, i) in order {
            let Some((key, agg)) = entries.get_mut(i) else {
                continue;
            };
            let summary = to_summary(interval, interface, *key, std::mem::take(agg));
            emit(Record {
                record: Some(record::Record::Flow(summary)),
            });
        }
        // Names whose flow gave no record for a full interval more age out: a flow that ends
        // with no packet since its last interim record gives no final record. Only a name that
        // never reached a summary is a drop.
        let now = self.interval_no;
        let mut lost = 0_u64;
        self.pending_names.retain(|_, p| {
            let keep = p.seen.saturating_add(2) > now;
            if !keep && !p.delivered {
                lost = lost.saturating_add(1);
            }
            keep
        });
        self.stats.names_dropped = self.stats.names_dropped.saturating_add(lost);
        self.interval_no = self.interval_no.saturating_add(1);
    }
}

/// The summary key of a record; see the module docs for the service port rule.
fn summary_key(rec: &FlowRecord) -> SummaryKey {
    let (local, remote) = match rec.direction {
        Direction::Ingress => (rec.responder.addr, rec.initiator.addr),
        Direction::Egress | Direction::Unspecified => (rec.initiator.addr, rec.responder.addr),
    };
    let service_port = match rec.key.protocol {
        protocol::ICMP | protocol::ICMPV6 => rec.icmp.map_or(0, |(kind, _)| u16::from(kind)),
        protocol::TCP if !handshake_completed(rec) => 0,
        _ => rec.responder.port,
    };
    SummaryKey {
        direction: rec.direction as i32,
        local,
        remote,
        protocol: rec.key.protocol,
        service_port,
    }
}

/// Whether a TCP record shows a real connection: the responder sent SYN-ACK, or the flow was
/// met mid-way (no SYN seen) and the responder spoke.
fn handshake_completed(rec: &FlowRecord) -> bool {
    let syn_ack = TcpFlags::SYN | TcpFlags::ACK;
    TcpFlags(rec.reverse.tcp_flags).contains(syn_ack) || (rec.syns == 0 && rec.answered)
}

fn insert_port(ports: &mut SmallVec<[u16; 4]>, port: u16) {
    if let Err(at) = ports.binary_search(&port) {
        if ports.len() < MAX_DISTINCT_PORTS {
            ports.insert(at, port);
        }
    }
}

fn millis(ts: crate::capture::Timestamp) -> i64 {
    i64::try_from(ts.as_millis()).unwrap_or(i64::MAX)
}

fn to_summary(interval: Interval, interface: &str, key: SummaryKey, agg: Aggregate) -> FlowSummary {
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    FlowSummary {
        interval_start_ms: millis(interval.start),
        interval_end_ms: millis(interval.end),
        direction: key.direction,
        local_addr: addr_text(key.local),
        remote_addr: addr_text(key.remote),
        protocol: u32::from(key.protocol),
        service_port: u32::from(key.service_port),
        connections: agg.connections,
        packets_out: agg.packets_out,
        packets_in: agg.packets_in,
        bytes_out: agg.bytes_out,
        bytes_in: agg.bytes_in,
        unanswered_syns: agg.unanswered_syns,
        resets: agg.resets,
        distinct_ports: u64::try_from(agg.ports.len()).unwrap_or(u64::MAX),
        first_seen_ms: to_i64(agg.first_seen_ms),
        last_seen_ms: to_i64(agg.last_seen_ms),
        remote_name: agg.remote_name.map(String::from).unwrap_or_default(),
        tcp_flags: u32::from(agg.tcp_flags),
        remote_answered: agg.remote_answered,
        short_connections: agg.short_connections,
        app_protocol: agg.app.map(|a| a.as_str().to_owned()).unwrap_or_default(),
        tls_server_names: agg.server_names.into_iter().map(String::from).collect(),
        interface: interface.to_owned(),
        failed_ports: if key.protocol == protocol::TCP && key.service_port == 0 {
            agg.ports
                .iter()
                .take(MAX_FAILED_PORTS)
                .map(|p| u32::from(*p))
                .collect()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn summary_key() -> impl Strategy<Value = SummaryKey> {
        // Few distinct values, so equal fields (and equal addresses of both families) are common;
        // IPv6 ones differ in their top bits or around bits 33 and 34, where the order's
        // integers split an address.
        let addr = prop_oneof![
            (0_u32..3).prop_map(|a| IpAddr::from(Ipv4Addr::from(a << 30 | 9))),
            (0_u128..3).prop_map(|a| IpAddr::from(Ipv6Addr::from(a << 126 | 9))),
            (0_u128..16).prop_map(|a| IpAddr::from(Ipv6Addr::from(a << 31 | 9))),
        ];
        (-1_i32..3, addr.clone(), addr, 0_u8..2, 0_u16..2).prop_map(
            |(direction, local, remote, protocol, service_port)| SummaryKey {
                direction,
                local,
                remote,
                protocol: protocol * 200,
                service_port: service_port * 40_000,
            },
        )
    }

    proptest! {
        #[test]
        fn summary_keys_order_as_their_integers_do(a in summary_key(), b in summary_key()) {
            prop_assert_eq!(a.order().cmp(&b.order()), a.cmp(&b));
        }
    }
}
