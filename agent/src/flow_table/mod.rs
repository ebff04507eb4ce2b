//! The flow table: decoded packets become bidirectional flows, and finished flows become
//! [`FlowRecord`]s.
//!
//! Invariants:
//! - Every live flow has exactly one entry in the expiry heap, and that entry's due time is no
//!   later than the flow's real due time (packets only push a due time later). Expiry pops due
//!   entries and re-queues the ones whose flow was seen since, so a packet costs one map update
//!   and no scan, and each flow is re-queued at most once per packet it received.
//! - The table never holds more than its capacity. A new flow in a full table first evicts the
//!   flow closest to expiring, and that flow is emitted as a record with
//!   [`EndReason::Evicted`] and counted: flows are never dropped silently.
//! - A flow longer than the active timeout is emitted as interim records, one per interval,
//!   as VPC Flow Logs do; counters restart with each interval and the flow keeps its identity,
//!   direction and whether it was ever answered.
//! - Time is whatever the caller says (packet timestamps in replay, the clock when live), so
//!   replays are deterministic.

pub mod key;
pub mod local_nets;
pub mod record;
pub mod store;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use picket_proto::v1::Direction;

use crate::capture::Timestamp;
use crate::decode::express::Express;
use crate::decode::{AppProtocol, Decoded, TcpFlags, Transport, app_protocol, protocol};

pub use key::{Endpoint, FlowKey, Side};
pub use local_nets::{Cidr, CidrError, LocalEnd, LocalNets, is_private};
pub use record::{EndReason, FlowCounters, FlowRecord};
use store::{PackedKey, Store};

/// How long flows live and how many the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// A flow with no packet for this long is over.
    pub idle_timeout: Duration,
    /// A flow is reported at least this often while it lasts (interim records).
    pub active_timeout: Duration,
    /// Most flows held at once.
    pub capacity: NonZeroUsize,
}

impl Default for FlowTableConfig {
    /// 60 s idle (VPC Flow Logs' shortest aggregation interval), 600 s active (their longest),
    /// and 262 144 flows: about 64 MiB at the measured entry size.
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            active_timeout: Duration::from_secs(600),
            capacity: NonZeroUsize::new(262_144).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// What the table did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowTableStats {
    /// Flows held now.
    pub active: u64,
    /// Flows created.
    pub created: u64,
    /// Records emitted because a flow went idle.
    pub expired_idle: u64,
    /// Interim records emitted at the active timeout.
    pub interim: u64,
    /// Flows evicted to make room (each was emitted as a record).
    pub evicted: u64,
    /// Flows emitted by [`FlowTable::flush`].
    pub flushed: u64,
    /// Packets counted into flows.
    pub packets: u64,
    /// Later IP fragments with no ports, which cannot be put in a flow.
    pub fragments_without_ports: u64,
}

/// One flow's state. Kept small: see `flow_entry_fits_the_memory_budget` in the tests. With
/// its key it fills a 128-byte slot, two cache lines: so the counters are split by field
/// (a `FlowCounters` pair would pad each flags byte to eight) and the direction is one byte.
#[derive(Debug, Clone, Copy)]
struct FlowEntry {
    /// Which side of the key opened the flow.
    initiator: Side,
    /// Which end is the host, when known: the flow's direction.
    local_end: Option<LocalEnd>,
    /// Bumped when a key is reused by a new flow, so old heap entries are recognised.
    generation: u32,
    /// Interim records emitted so far.
    sequence: u32,
    flow_start: Timestamp,
    /// First packet of the current interval; meaningless while `interval_packets` is 0.
    start: Timestamp,
    last_seen: Timestamp,
    /// Packets sent by each side, indexed by [`Side::index`].
    packets: [u64; 2],
    /// IP bytes sent by each side.
    bytes: [u64; 2],
    /// OR of the TCP flags each side sent.
    tcp_flags: [u8; 2],
    syns: u32,
    resets: u32,
    answered: bool,
    icmp: Option<(u8, u8)>,
    /// Recognised from the first payload bytes; see [`APP_PAYLOAD_TRIES`].
    app: Option<AppProtocol>,
    /// Payload-carrying packets looked at so far for `app`.
    app_tries: u8,
    /// The observer epoch this flow's addresses were last shown to the intel observer in.
    intel_epoch: u32,
}

/// Payload-carrying packets per flow inspected for an application protocol: the banner or
/// hello is in the first one or two, and stopping early keeps the per-packet cost at a compare.
pub const APP_PAYLOAD_TRIES: u8 = 2;

impl FlowEntry {
    /// Whether the flow's next packet must be shown to the intel observer: the flow was
    /// last checked under another `epoch`, or this packet starts an interval of it.
    fn needs_check(&self, epoch: u32) -> bool {
        self.intel_epoch != epoch || self.interval_packets() == 0
    }

    fn interval_packets(&self) -> u64 {
        self.packets[0].saturating_add(self.packets[1])
    }

    /// What `side` sent in this interval.
    fn counters(&self, side: Side) -> FlowCounters {
        let i = side.index();
        FlowCounters {
            packets: self.packets.get(i).copied().unwrap_or(0),
            bytes: self.bytes.get(i).copied().unwrap_or(0),
            tcp_flags: self.tcp_flags.get(i).copied().unwrap_or(0),
        }
    }
}

/// Heap entry: when a flow is due, earliest first; then its generation and slot number.
type Due = Reverse<(Timestamp, u32, u32)>;

/// Bidirectional flows with idle and active timeouts and a hard capacity.
#[derive(Debug)]
pub struct FlowTable {
    config: FlowTableConfig,
    local: LocalNets,
    /// Flows in numbered slots, hashed with a per-table random seed (see [`store`]).
    flows: Store<FlowEntry>,
    /// Min-heap of due times; see the module invariants.
    expiry: BinaryHeap<Due>,
    next_generation: u32,
    stats: FlowTableStats,
}

impl FlowTable {
    /// An empty table.
    pub fn new(config: FlowTableConfig, local: LocalNets) -> Self {
        Self {
            config,
            local,
            flows: Store::new(),
            expiry: BinaryHeap::new(),
            next_generation: 0,
            stats: FlowTableStats::default(),
        }
    }

    /// Replaces the networks that count as the host's: flows created from now on take their
    /// direction from `local`; flows already in the table keep theirs.
    pub fn set_local(&mut self, local: LocalNets) {
        self.local = local;
    }

    /// Counters so far.
    pub fn stats(&self) -> FlowTableStats {
        FlowTableStats {
            active: u64::try_from(self.flows.len()).unwrap_or(u64::MAX),
            ..self.stats
        }
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.flows.len() == 0
    }

    /// Bytes the table holds on the heap (slots, index, expiry heap), for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.flows.heap_bytes() + self.expiry.capacity() * std::mem::size_of::<Due>()
    }

    /// Counts one packet seen at `ts` into its flow, first emitting into `out` the flows that
    /// are due by `ts` and, if the table is full, the one evicted to make room.
    pub fn observe(&mut self, ts: Timestamp, packet: &Decoded<'_>, out: &mut Vec<FlowRecord>) {
        self.observe_checked(ts, packet, 0, out);
    }

    /// As [`FlowTable::observe`], and says whether the packet's addresses should be shown to
    /// the intel observer: the packet opened a flow or a new interval of one, or the flow was
    /// last checked under an older observer `epoch` (an older intel snapshot), or it belongs
    /// to no flow. The flow is then marked checked at `epoch`, so its other packets cost a
    /// compare instead of a lookup.
    pub fn observe_checked(
        &mut self,
        ts: Timestamp,
        packet: &Decoded<'_>,
        epoch: u32,
        out: &mut Vec<FlowRecord>,
    ) -> bool {
        self.expire(ts, out);
        let (src_port, dst_port, icmp) = match packet.transport {
            Transport::Tcp {
                src_port, dst_port, ..
            }
            | Transport::Udp { src_port, dst_port } => (src_port, dst_port, None),
            // Echo requests and replies share their identifier, which keeps ping sessions
            // apart; other ICMP messages between two hosts share one flow.
            Transport::Icmp {
                kind,
                code,
                echo_id,
            } => {
                let id = echo_id.unwrap_or(0);
                (id, id, Some((kind, code)))
            }
            Transport::LaterFragment => {
                self.stats.fragments_without_ports =
                    self.stats.fragments_without_ports.saturating_add(1);
                return true;
            }
        };
        let (key, sender, hash, held) = self.locate(
            packet.protocol,
            (packet.src, src_port),
            (packet.dst, dst_port),
        );
        let flags = packet.transport.tcp_flags();

        // One hash lookup for a packet of a known flow, the common case.
        let check = if let Some((_, entry)) = held.and_then(|id| self.flows.get_mut(id)) {
            let check = entry.needs_check(epoch);
            entry.intel_epoch = epoch;
            count_packet(
                entry,
                ts,
                sender,
                packet.ip_total_len,
                packet.payload,
                flags,
                icmp,
            );
            check
        } else {
            if self.flows.len() >= self.config.capacity.get() {
                self.evict_one(out);
            }
            let initiator = if opened_by_receiver(packet, src_port, dst_port) {
                sender.other()
            } else {
                sender
            };
            let mut entry = self.new_entry(ts, &key.unpack(), initiator);
            entry.intel_epoch = epoch;
            let (due, generation) = (self.due(&entry), entry.generation);
            count_packet(
                &mut entry,
                ts,
                sender,
                packet.ip_total_len,
                packet.payload,
                flags,
                icmp,
            );
            let id = self.flows.insert(hash, key, entry);
            self.expiry.push(Reverse((due, generation, id)));
            self.stats.created = self.stats.created.saturating_add(1);
            true
        };
        self.stats.packets = self.stats.packets.saturating_add(1);
        check
    }

    /// Whether a flow of `protocol` between `src` and `dst` (either way) is held now.
    pub fn holds(&self, protocol: u8, src: Endpoint, dst: Endpoint) -> bool {
        self.locate(protocol, (src.addr, src.port), (dst.addr, dst.port))
            .3
            .is_some()
    }

    /// The express lane's count: as [`FlowTable::observe_checked`] for a TCP or UDP packet
    /// read by [`express::read`], when the answer would be "do not show it to the intel
    /// observer": its flow is held, already has packets in this interval and was checked
    /// under `epoch`. Then the packet is counted and this returns true; otherwise nothing but
    /// due expiry happens and the caller takes the layered path, which gives the same result
    /// as if this had never been called.
    #[inline]
    pub fn observe_known(
        &mut self,
        ts: Timestamp,
        packet: &Express<'_>,
        epoch: u32,
        out: &mut Vec<FlowRecord>,
    ) -> bool {
        self.expire(ts, out);
        let (_, sender, _, held) = self.locate(
            packet.protocol,
            (packet.src, packet.src_port),
            (packet.dst, packet.dst_port),
        );
        let Some((_, entry)) = held.and_then(|id| self.flows.get_mut(id)) else {
            return false;
        };
        if entry.needs_check(epoch) {
            return false;
        }
        count_packet(
            entry,
            ts,
            sender,
            packet.ip_total_len,
            packet.payload,
            packet.flags,
            None,
        );
        self.stats.packets = self.stats.packets.saturating_add(1);
        true
    }

    /// The key of a packet from `src` to `dst` (address, port), which side of it sent the
    /// packet, the key's hash, and the slot of its flow when the table holds one: the lookup
    /// both paths share.
    #[inline(always)]
    fn locate(
        &self,
        protocol: u8,
        (src, src_port): (IpAddr, u16),
        (dst, dst_port): (IpAddr, u16),
    ) -> (PackedKey, Side, u64, Option<u32>) {
        let (key, sender) = PackedKey::new(
            protocol,
            Endpoint {
                addr: src,
                port: src_port,
            },
            Endpoint {
                addr: dst,
                port: dst_port,
            },
        );
        let hash = self.flows.hash(&key);
        let held = self.flows.find(hash, &key);
        (key, sender, hash, held)
    }

    /// Emits into `out` every flow idle for the idle timeout, and an interim record for every
    /// flow whose interval reached the active timeout, as of `now`.
    ///
    /// [`FlowTable::observe`] calls this itself; a live capture also calls it on a timer so
    /// flows end when traffic stops.
    #[inline]
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<FlowRecord>) {
        // Called for every packet: one compare with the earliest due time, the call only
        // when something is due.
        if self
            .expiry
            .peek()
            .is_some_and(|Reverse((due, _, _))| *due <= now)
        {
            self.expire_due(now, out);
        }
    }

    fn expire_due(&mut self, now: Timestamp, out: &mut Vec<FlowRecord>) {
        while let Some(Reverse((due, generation, id))) = self.expiry.peek().copied() {
            if due > now {
                break;
            }
            self.expiry.pop();
            let Some((&packed, &entry)) = self.flows.get(id) else {
                continue;
            };
            if entry.generation != generation {
                continue;
            }
            let key = packed.unpack();
            let real_due = self.due(&entry);
            if real_due > now {
                self.expiry.push(Reverse((real_due, generation, id)));
                continue;
            }
            let idle_due = entry
                .last_seen
                .saturating_add_nanos(nanos(self.config.idle_timeout));
            if idle_due <= now {
                self.flows.remove(id);
                if entry.interval_packets() > 0 {
                    out.push(record(&key, &entry, EndReason::Idle));
                    self.stats.expired_idle = self.stats.expired_idle.saturating_add(1);
                }
            } else {
                out.push(record(&key, &entry, EndReason::Active));
                self.stats.interim = self.stats.interim.saturating_add(1);
                let next = FlowEntry {
                    sequence: entry.sequence.saturating_add(1),
                    packets: [0; 2],
                    bytes: [0; 2],
                    tcp_flags: [0; 2],
                    syns: 0,
                    resets: 0,
                    ..entry
                };
                let due = self.due(&next);
                if let Some((_, slot)) = self.flows.get_mut(id) {
                    *slot = next;
                }
                self.expiry.push(Reverse((due, generation, id)));
            }
        }
    }

    /// Ends every flow whose key `leave` picks (another capture counts them from now on):
    /// each with packets not yet reported is emitted as flushed, and later packets of its
    /// key start a new flow. Walks the whole table: for a rare change, never per packet.
    pub fn close_where(&mut self, leave: impl Fn(&FlowKey) -> bool, out: &mut Vec<FlowRecord>) {
        let leaving: Vec<u32> = self
            .flows
            .ids()
            .filter(|&id| self.flows.get(id).is_some_and(|(k, _)| leave(&k.unpack())))
            .collect();
        for id in leaving {
            // Its expiry entry stays in the heap and is skipped when it comes due: the slot
            // is empty, or reused under a new generation.
            let Some((packed, entry)) = self.flows.remove(id) else {
                continue;
            };
            if entry.interval_packets() > 0 {
                out.push(record(&packed.unpack(), &entry, EndReason::Flushed));
                self.stats.flushed = self.stats.flushed.saturating_add(1);
            }
        }
    }

    /// Emits every flow that has packets not yet reported, and empties the table.
    pub fn flush(&mut self, out: &mut Vec<FlowRecord>) {
        self.flush_in_batches(usize::MAX, out, |_| {});
    }

    /// As [`FlowTable::flush`], `batch` records at a time: after each batch `drain` is
    /// called with `out` and should empty it. At a large table's end (a replay's last
    /// packet, shutdown) all the records at once were the largest allocation the sensor made:
    /// about 180 bytes a flow, 25 MB of fresh memory at the replay bench's 124 000 flows.
    pub fn flush_in_batches(
        &mut self,
        batch: usize,
        out: &mut Vec<FlowRecord>,
        mut drain: impl FnMut(&mut Vec<FlowRecord>),
    ) {
        let flows = &self.flows;
        // Deterministic output order for replays: by first packet, then key. Sorted as plain
        // integers, start above slot, which is a few compares each; equal starts are rare, and
        // only their runs are then put in key order.
        let mut order: Vec<u128> = flows
            .ids()
            .filter_map(|id| {
                flows
                    .get(id)
                    .map(|(_, e)| u128::from(e.start.0) << 32 | u128::from(id))
            })
            .collect();
        order.sort_unstable();
        // The low 32 bits are the slot.
        let key_order = |slot: &u128| flows.get(*slot as u32).map(|(k, _)| k.order());
        for run in order.chunk_by_mut(|a, b| a >> 32 == b >> 32) {
            if run.len() > 1 {
                run.sort_unstable_by_key(key_order);
            }
        }
        for part in order.chunks(batch.max(1)) {
            out.reserve(part.len());
            for &slot in part {
                let Some((packed, entry)) = self.flows.get(slot as u32) else {
                    continue;
                };
                if entry.interval_packets() > 0 {
                    out.push(record(&packed.unpack(), entry, EndReason::Flushed));
                    self.stats.flushed = self.stats.flushed.saturating_add(1);
                }
            }
            drain(out);
        }
        self.flows.clear();
        self.expiry.clear();
    }

    /// Evicts the flow closest to expiring; stale heap entries met on the way are re-queued.
    fn evict_one(&mut self, out: &mut Vec<FlowRecord>) {
        while let Some(Reverse((due, generation, id))) = self.expiry.pop() {
            let Some((&packed, &entry)) = self.flows.get(id) else {
                continue;
            };
            if entry.generation != generation {
                continue;
            }
            let key = packed.unpack();
            let real_due = self.due(&entry);
            if real_due > due {
                self.expiry.push(Reverse((real_due, generation, id)));
                continue;
            }
            self.flows.remove(id);
            self.stats.evicted = self.stats.evicted.saturating_add(1);
            if entry.interval_packets() > 0 {
                out.push(record(&key, &entry, EndReason::Evicted));
            }
            return;
        }
    }

    fn new_entry(&mut self, ts: Timestamp, key: &FlowKey, initiator: Side) -> FlowEntry {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let from = key.endpoint(initiator).addr;
        let to = key.endpoint(initiator.other()).addr;
        FlowEntry {
            initiator,
            local_end: self.local.local_end(from, to),
            generation,
            sequence: 0,
            flow_start: ts,
            start: ts,
            last_seen: ts,
            packets: [0; 2],
            bytes: [0; 2],
            tcp_flags: [0; 2],
            syns: 0,
            resets: 0,
            answered: false,
            icmp: None,
            app: None,
            app_tries: 0,
            intel_epoch: 0,
        }
    }

    /// When a flow next needs attention: idle expiry, or the end of its active interval.
    fn due(&self, entry: &FlowEntry) -> Timestamp {
        let idle = entry
            .last_seen
            .saturating_add_nanos(nanos(self.config.idle_timeout));
        if entry.interval_packets() == 0 {
            return idle;
        }
        let active = entry
            .start
            .saturating_add_nanos(nanos(self.config.active_timeout));
        idle.min(active)
    }
}

/// Counts one packet from `sender` into its flow's entry. Inlined: a call with seven
/// arguments cost the express lane more than the counting.
#[inline(always)]
fn count_packet(
    entry: &mut FlowEntry,
    ts: Timestamp,
    sender: Side,
    ip_total_len: u32,
    payload: &[u8],
    flags: TcpFlags,
    icmp: Option<(u8, u8)>,
) {
    if entry.interval_packets() == 0 {
        entry.start = ts;
    }
    entry.last_seen = entry.last_seen.max(ts);
    let i = sender.index();
    if let Some(n) = entry.packets.get_mut(i) {
        *n = n.saturating_add(1);
    }
    if let Some(n) = entry.bytes.get_mut(i) {
        *n = n.saturating_add(u64::from(ip_total_len));
    }
    if let Some(f) = entry.tcp_flags.get_mut(i) {
        *f |= flags.0;
    }
    // Which side sent a packet is a coin toss across flows, so these are written without
    // branches: the branches were the express lane's most mispredicted.
    let from_initiator = sender == entry.initiator;
    entry.syns = entry
        .syns
        .saturating_add(u32::from(from_initiator & flags.is_syn_only()));
    // Only ICMP packets carry a type; the express lane's constant `None` removes this.
    if icmp.is_some() && from_initiator && entry.icmp.is_none() {
        entry.icmp = icmp;
    }
    entry.answered |= !from_initiator;
    if entry.app.is_none() && entry.app_tries < APP_PAYLOAD_TRIES && !payload.is_empty() {
        entry.app_tries = entry.app_tries.saturating_add(1);
        entry.app = app_protocol::recognise(payload);
    }
    if flags.contains(TcpFlags::RST) {
        entry.resets = entry.resets.saturating_add(1);
    }
}

/// Whether the first packet of a new flow was sent by the responder: a SYN-ACK or an echo
/// reply means the opening packet was missed, and a packet from a well-known port to an
/// ephemeral one is most likely a server's answer (a capture that began mid-flow).
fn opened_by_receiver(packet: &Decoded<'_>, src_port: u16, dst_port: u16) -> bool {
    match packet.transport {
        Transport::Tcp { flags, .. } if flags.contains(TcpFlags::SYN) => {
            flags.contains(TcpFlags::ACK)
        }
        Transport::Icmp { kind, .. } => match packet.protocol {
            protocol::ICMP => kind == 0,
            _ => kind == 129,
        },
        Transport::Tcp { .. } | Transport::Udp { .. } => src_port < 1024 && dst_port >= 1024,
        Transport::LaterFragment => false,
    }
}

fn record(key: &FlowKey, entry: &FlowEntry, reason: EndReason) -> FlowRecord {
    let responder = entry.initiator.other();
    FlowRecord {
        key: *key,
        initiator: key.endpoint(entry.initiator),
        responder: key.endpoint(responder),
        direction: match entry.local_end {
            Some(LocalEnd::Initiator) => Direction::Egress,
            Some(LocalEnd::Responder) => Direction::Ingress,
            None => Direction::Unspecified,
        },
        start: entry.start,
        end: entry.last_seen,
        flow_start: entry.flow_start,
        forward: entry.counters(entry.initiator),
        reverse: entry.counters(responder),
        syns: entry.syns,
        resets: entry.resets,
        answered: entry.answered,
        icmp: entry.icmp,
        app: entry.app,
        reason,
        sequence: entry.sequence,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
