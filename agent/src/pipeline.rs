//! The sensor pipeline: packets from any [`PacketSource`] through decode → flow table → DNS →
//! summaries, out as wire records to a sink the caller provides.
//!
//! Replay and live capture both drive a [`Pipeline`], so they produce the same records for the
//! same traffic. Time is the packets' own (live packets carry the clock's time), and summary
//! intervals close when a packet (or [`Pipeline::tick`]) passes their end; before an interval
//! closes, flows and DNS queries due by its end are expired into it.
//!
//! Flow records reach the summaries when the flow table emits them (idle, active timeout,
//! eviction, flush); the pipeline sets the table's active timeout to at most the summary
//! interval, so a long flow is summarised in each interval it spans.
//!
//! The intel matcher plugs in through [`Observer`]: it sees a flow's packets when the flow
//! opens, when it starts a new interval and when the observer's [`Observer::epoch`] changed
//! since the flow was last shown (a new intel snapshot), and every packet that belongs to no
//! flow; it sees every flow record (with its remote address and direction) and every DNS
//! transaction (query name and answers). Any `IntelHit` it returns is emitted at once, ahead
//! of the summaries.

mod nat;
mod vantage;

pub use nat::{NatStats, NatTable, Tracked};

use std::time::Duration;

use picket_proto::v1::{Counter, HostStats, IntelHit, Record, record};

use crate::capture::{CaptureStats, Packet, PacketSource, Timestamp};
use crate::decode::{
    DecodeStats, Decoded, FragmentPorts, Outcome, SkipKind, app_protocol, decode_packet, express,
};
use crate::dns::{DnsConfig, DnsStats, DnsTracker, DnsTransaction};
use crate::flow_table::{
    Endpoint, FlowKey, FlowRecord, FlowTable, FlowTableConfig, FlowTableStats, LocalNets,
};
use crate::summaries::{
    DnsSummaries, DnsSummaryLimits, DnsSummaryStats, FlowSummaries, FlowSummaryLimits,
    FlowSummaryStats, Interval, IntervalClock,
};

/// Flow records flushed at a time when the input ends, each batch absorbed before the next.
const FLUSH_BATCH: usize = 1024;
/// Addresses a container link's pipeline holds at most, for [`Pipeline::take_learned`] and as
/// its container's.
const LEARNED_AT_MOST: usize = 16;
/// Datagrams whose first-fragment ports are remembered for later fragments.
const MAX_FRAGMENTED_DATAGRAMS: usize = 4096;
/// Packets between two reads of [`Observer::epoch`]: a new snapshot applies within this many
/// packets (or at the next tick), and reading it is kept off the per-packet path.
pub const EPOCH_EVERY_PACKETS: u64 = 256;

/// The intel seam: sees what an indicator could match and returns hits to ship at once.
///
/// Every method has a no-op default, so a matcher implements only what it checks. Methods run
/// on the capture thread: `on_packet` once per flow and interval (keep it to a lookup), the
/// others once per flow record or DNS transaction.
pub trait Observer {
    /// A number that changes whenever `on_packet` may answer differently for the same packet
    /// (a new intel snapshot). Read every [`EPOCH_EVERY_PACKETS`] packets and on each tick;
    /// flows shown under an older epoch are shown again at their next packet.
    fn epoch(&self) -> u64 {
        0
    }

    /// A decoded packet: the first of its flow, of each of the flow's intervals, and the
    /// first after the epoch changed; and every packet that belongs to no flow. Checking
    /// addresses per flow rather than per packet keeps the steady path to a compare.
    fn on_packet(&mut self, _ts: Timestamp, _packet: &Decoded<'_>, _hits: &mut Vec<IntelHit>) {}

    /// A flow record: [`FlowRecord::remote`] is the address to check, `direction` its context.
    fn on_flow(&mut self, _flow: &FlowRecord, _hits: &mut Vec<IntelHit>) {}

    /// A DNS transaction: the query name, and the answers' names and addresses.
    fn on_dns(&mut self, _transaction: &DnsTransaction, _hits: &mut Vec<IntelHit>) {}
}

/// The observer that matches nothing: the pipeline without intel.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIntel;

impl Observer for NoIntel {}

/// Everything a pipeline is built from.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Flow timeouts and capacity; the active timeout is lowered to the summary interval.
    pub flows: FlowTableConfig,
    /// DNS bounds and timeouts.
    pub dns: DnsConfig,
    /// Length of a summary interval.
    pub summary_interval: Duration,
    /// The host's own networks, for flow direction.
    pub local: LocalNets,
    /// Bounds of the flow summaries.
    pub flow_limits: FlowSummaryLimits,
    /// Bounds of the DNS summaries.
    pub dns_limits: DnsSummaryLimits,
    /// Interface name written into flow summaries (empty for replay).
    pub interface: String,
    /// Whether the packets come from a container's own link, where its traffic is counted
    /// on a host whose containers' links are captured (see `pipeline::vantage`).
    pub container_link: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            flows: FlowTableConfig::default(),
            dns: DnsConfig::default(),
            summary_interval: Duration::from_secs(60),
            local: LocalNets::default(),
            flow_limits: FlowSummaryLimits::default(),
            dns_limits: DnsSummaryLimits::default(),
            interface: String::new(),
            container_link: false,
        }
    }
}

/// Cumulative counters of a pipeline since it was built.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineTotals {
    /// Packets given to the pipeline.
    pub packets: u64,
    /// Captured bytes of those packets.
    pub bytes: u64,
    /// Decode outcomes by kind.
    pub decode: DecodeStats,
    /// The flow table's counters.
    pub flows: FlowTableStats,
    /// The DNS stage's counters.
    pub dns: DnsStats,
    /// Flow summary drops.
    pub flow_summaries: FlowSummaryStats,
    /// DNS summary drops.
    pub dns_summaries: DnsSummaryStats,
    /// What the capture source reported (drops), as last given to the pipeline.
    pub capture: CaptureStats,
    /// Intel hits the observer returned.
    pub intel_hits: u64,
    /// What the NAT check asked and left to containers' links.
    pub nat: NatStats,
    /// Records emitted.
    pub records: u64,
}

/// Decode → flow table → DNS → summaries, for one stream of packets.
#[derive(Debug)]
pub struct Pipeline<O: Observer = NoIntel> {
    interface: String,
    /// Which packets other captures of the host count instead.
    vantage: vantage::Vantage,
    /// Which NATed packets containers' links count instead, once a NAT table is given.
    nat: Option<nat::NatCheck>,
    /// Bridged containers' addresses this link's capture saw sending, not yet taken by
    /// [`Pipeline::take_learned`].
    learned: Vec<std::net::IpAddr>,
    /// On a container's link, the addresses its container was seen sending from: which end of
    /// a tracked flow is behind the link, for handing flows over.
    behind: Vec<std::net::IpAddr>,
    fragments: FragmentPorts,
    table: FlowTable,
    dns: DnsTracker,
    flow_summaries: FlowSummaries,
    dns_summaries: DnsSummaries,
    clock: IntervalClock,
    observer: O,
    /// The observer's epoch as last read, truncated: only changes matter.
    epoch: u32,
    totals: PipelineTotals,
    /// Totals when the last `HostStats` was emitted, for per-interval deltas.
    reported: PipelineTotals,
    /// The host's own addresses and public one, reported in each `HostStats`.
    addresses: (Vec<String>, String),
    // Scratch buffers the loop owns and reuses, so the steady path allocates nothing.
    flow_out: Vec<FlowRecord>,
    dns_out: Vec<DnsTransaction>,
    hits: Vec<IntelHit>,
    /// Whether [`Pipeline::express`] is used; off only to test that it changes nothing.
    express_lane: bool,
    /// Packets the express lane counted, so tests can tell it was used.
    express_packets: u64,
}

impl Pipeline<NoIntel> {
    /// A pipeline without intel.
    pub fn new(config: PipelineConfig) -> Self {
        Self::with_observer(config, NoIntel)
    }
}

impl<O: Observer> Pipeline<O> {
    /// A pipeline that shows `observer` what it sees.
    pub fn with_observer(config: PipelineConfig, observer: O) -> Self {
        let mut flows = config.flows;
        flows.active_timeout = flows.active_timeout.min(config.summary_interval);
        let addresses = crate::host_stats::instance_addresses(config.local.host_addresses());
        Self {
            addresses,
            vantage: vantage::Vantage::new(config.container_link, &config.local),
            nat: None,
            learned: Vec::new(),
            behind: Vec::new(),
            interface: config.interface,
            fragments: FragmentPorts::new(MAX_FRAGMENTED_DATAGRAMS),
            table: FlowTable::new(flows, config.local),
            dns: DnsTracker::new(config.dns),
            flow_summaries: FlowSummaries::new(config.flow_limits),
            dns_summaries: DnsSummaries::new(config.dns_limits),
            clock: IntervalClock::new(config.summary_interval),
            epoch: observer.epoch() as u32,
            observer,
            totals: PipelineTotals::default(),
            reported: PipelineTotals::default(),
            flow_out: Vec::new(),
            dns_out: Vec::new(),
            hits: Vec::new(),
            express_lane: true,
            express_packets: 0,
        }
    }

    /// Takes `local` as the host's addresses from now on (they changed while capturing): new
    /// flows take their direction from it, flows already tracked keep theirs, packets are
    /// left to the captures of the containers' links it names, and the next `HostStats`
    /// reports it.
    pub fn set_local(&mut self, local: LocalNets) {
        self.addresses = crate::host_stats::instance_addresses(local.host_addresses());
        let vantage = vantage::Vantage::new(self.vantage.container_link(), &local);
        // Flows this capture tracked before their containers' links were captured are ended
        // here (what they counted so far is reported), or the express lane would go on
        // counting them beside the links. The walk over the table is made only when a
        // container is newly left to its link. On a container's link a flow's packets are
        // judged as sent by its container, the end seen sending from behind the link; a flow
        // with neither end seen there stays.
        if vantage.leaves_more_than(&self.vantage) {
            let behind = &self.behind;
            self.table.close_where(
                |key| {
                    let (a, b) = (key.lower.addr, key.upper.addr);
                    if !vantage.container_link() {
                        !vantage.counts(a, b, None)
                    } else if behind.contains(&a) {
                        !vantage.counts(a, b, Some(false))
                    } else if behind.contains(&b) {
                        !vantage.counts(b, a, Some(false))
                    } else {
                        false
                    }
                },
                &mut self.flow_out,
            );
        }
        self.vantage = vantage;
        self.table.set_local(local);
    }

    /// Asks `table` which NATed flows another link counts (a container's NATed to the host's
    /// addresses, or sent to another container through a service address), and leaves those
    /// to it (see `pipeline::nat`).
    pub fn set_nat_table(&mut self, table: Box<dyn NatTable>) {
        self.nat = Some(nat::NatCheck::new(table));
    }

    /// The bridged containers' addresses seen sending through this capture's container link
    /// since the last call, for `HostAddresses::learn`.
    pub fn take_learned(&mut self) -> Vec<std::net::IpAddr> {
        std::mem::take(&mut self.learned)
    }

    /// The counters so far.
    pub fn totals(&self) -> PipelineTotals {
        let mut totals = self.totals.clone();
        self.refresh(&mut totals);
        totals
    }

    /// Flows held now.
    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// Bytes the flow table holds on the heap (slots, index, expiry heap), for the memory
    /// figures.
    pub fn flow_table_bytes(&self) -> usize {
        self.table.heap_bytes()
    }

    /// Records the capture source's own counters (drops), for the next `HostStats`.
    pub fn set_capture_stats(&mut self, stats: CaptureStats) {
        self.totals.capture = stats;
    }

    /// Runs one captured packet through every stage; records it completes go to `emit`.
    pub fn packet(&mut self, packet: &Packet<'_>, emit: &mut impl FnMut(Record)) {
        let ts = packet.ts;
        self.totals.packets = self.totals.packets.saturating_add(1);
        let len = u64::try_from(packet.data.len()).unwrap_or(u64::MAX);
        self.totals.bytes = self.totals.bytes.saturating_add(len);
        self.advance(ts, emit);
        if self.express(packet) {
            self.absorb(emit);
            return;
        }
        let result = decode_packet(packet);
        let Ok(Outcome::Decoded(decoded)) = &result else {
            self.totals.decode.record(&result);
            return;
        };
        if !self
            .vantage
            .counts(decoded.src, decoded.dst, packet.outgoing)
        {
            self.totals
                .decode
                .record_skip(SkipKind::CountedOnContainerLink);
            return;
        }
        // Borrowed, not moved: the view is large and most packets are not fragments.
        // Attributed before the NAT check, so a NATed datagram's later fragments are left
        // with its first.
        let attributed;
        let decoded = if decoded.fragment.is_some() {
            attributed = self.fragments.attribute(*decoded);
            &attributed
        } else {
            decoded
        };
        if let Some(nat) = self.nat.as_mut() {
            if nat.counted_at_link(&self.vantage, &self.table, decoded, ts) {
                self.totals
                    .decode
                    .record_skip(SkipKind::CountedOnContainerLink);
                return;
            }
        }
        self.totals.decode.record_decoded();
        if self.vantage.container_link()
            && packet.outgoing == Some(false)
            && self.behind.len() < LEARNED_AT_MOST
            && !self.behind.contains(&decoded.src)
        {
            self.behind.push(decoded.src);
        }
        // Bounded: a container sending from many addresses (spoofing) is not all learned.
        if self.learned.len() < LEARNED_AT_MOST
            && self.vantage.learns(decoded.src, packet.outgoing)
            && !self.learned.contains(&decoded.src)
        {
            self.learned.push(decoded.src);
        }
        if self.totals.packets % EPOCH_EVERY_PACKETS == 0 {
            self.epoch = self.observer.epoch() as u32;
        }
        self.note_server_name(decoded);
        if self
            .table
            .observe_checked(ts, decoded, self.epoch, &mut self.flow_out)
        {
            self.observer.on_packet(ts, decoded, &mut self.hits);
        }
        self.dns.observe(ts, decoded, &mut self.dns_out);
        self.absorb(emit);
    }

    /// The same pipeline without the express lane, to check it changes nothing.
    #[cfg(test)]
    fn layered_only(mut self) -> Self {
        self.express_lane = false;
        self
    }

    /// The express lane for the common packet: a plain Ethernet/IPv4 TCP or UDP packet of a
    /// flow already counted in this interval and already shown to the observer. Counts it as
    /// the layered path would, without building the decoded view, and says whether it did;
    /// false leaves everything as it was (but for due expiry, which the layered path does
    /// first anyway).
    #[inline]
    fn express(&mut self, packet: &Packet<'_>) -> bool {
        // The epoch is refreshed on the layered path, so its packet takes that path.
        if !self.express_lane || self.totals.packets % EPOCH_EVERY_PACKETS == 0 {
            return false;
        }
        let Some(fields) = express::read(packet) else {
            return false;
        };
        if !self
            .table
            .observe_known(packet.ts, &fields, self.epoch, &mut self.flow_out)
        {
            return false;
        }
        self.totals.decode.record_decoded();
        self.express_packets = self.express_packets.wrapping_add(1);
        // What the DNS tracker does with a packet that is not DNS.
        self.dns.expire(packet.ts, &mut self.dns_out);
        true
    }

    /// Moves time to `now` without a packet (a live capture's idle timer): flows and queries
    /// due by then are expired, and the interval closes if `now` is past its end.
    pub fn tick(&mut self, now: Timestamp, emit: &mut impl FnMut(Record)) {
        self.epoch = self.observer.epoch() as u32;
        self.advance(now, emit);
        self.table.expire(now, &mut self.flow_out);
        self.dns.expire(now, &mut self.dns_out);
        self.absorb(emit);
    }

    /// Ends the input: every flow and pending query is emitted, and the open interval is
    /// closed with its summaries and `HostStats`.
    pub fn finish(&mut self, emit: &mut impl FnMut(Record)) {
        // In batches, absorbed as they come, rather than every flow's record at once.
        // Flushing the DNS queries after the flows changes no name: a query still waiting
        // has no answer. Hits wait in `hits` and go out in the same order as before.
        self.table
            .flush_in_batches(FLUSH_BATCH, &mut self.flow_out, |flows| {
                absorb_flows(
                    flows,
                    &mut self.observer,
                    &self.dns,
                    &mut self.flow_summaries,
                    &mut self.hits,
                );
            });
        self.dns.flush(&mut self.dns_out);
        self.absorb(emit);
        if let Some(interval) = self.clock.close() {
            self.close_interval(interval, emit);
        }
    }

    /// Closes the open interval if `now` is past its end, first expiring into it what was
    /// due by its end.
    #[inline(always)]
    fn advance(&mut self, now: Timestamp, emit: &mut impl FnMut(Record)) {
        if !self.clock.due(now) {
            return;
        }
        self.advance_clock(now, emit);
    }

    /// The rest of [`Pipeline::advance`], once the clock says an interval starts or ends.
    fn advance_clock(&mut self, now: Timestamp, emit: &mut impl FnMut(Record)) {
        if let Some(open) = self.clock.current() {
            if now >= open.end {
                self.table.expire(open.end, &mut self.flow_out);
                self.dns.expire(open.end, &mut self.dns_out);
                self.absorb(emit);
            }
        }
        if let Some(closed) = self.clock.advance(now) {
            self.close_interval(closed, emit);
        }
    }

    /// A TLS ClientHello's server name, kept for its flow's summary. The first-byte test
    /// keeps this to one compare for every other packet.
    fn note_server_name(&mut self, packet: &Decoded<'_>) {
        if packet.payload.first() != Some(&22) {
            return;
        }
        let (Some(name), Some((src_port, dst_port))) = (
            app_protocol::tls_server_name(packet.payload),
            packet.ports(),
        ) else {
            return;
        };
        let (key, _) = FlowKey::new(
            packet.protocol,
            Endpoint {
                addr: packet.src,
                port: src_port,
            },
            Endpoint {
                addr: packet.dst,
                port: dst_port,
            },
        );
        self.flow_summaries.note_server_name(key, name);
    }

    /// Hands finished flows and DNS transactions to the observer and the summaries, and
    /// emits the observer's hits at once.
    #[inline(always)]
    fn absorb(&mut self, emit: &mut impl FnMut(Record)) {
        // Most packets finish nothing: three emptiness tests instead of three drains.
        if self.flow_out.is_empty() && self.dns_out.is_empty() && self.hits.is_empty() {
            return;
        }
        self.absorb_some(emit);
    }

    fn absorb_some(&mut self, emit: &mut impl FnMut(Record)) {
        absorb_flows(
            &mut self.flow_out,
            &mut self.observer,
            &self.dns,
            &mut self.flow_summaries,
            &mut self.hits,
        );
        for tx in self.dns_out.drain(..) {
            self.observer.on_dns(&tx, &mut self.hits);
            self.dns_summaries.add(&tx);
        }
        for hit in self.hits.drain(..) {
            self.totals.intel_hits = self.totals.intel_hits.saturating_add(1);
            self.totals.records = self.totals.records.saturating_add(1);
            emit(Record {
                record: Some(record::Record::IntelHit(hit)),
            });
        }
    }

    fn refresh(&self, totals: &mut PipelineTotals) {
        totals.flows = self.table.stats();
        totals.dns = self.dns.stats();
        totals.flow_summaries = self.flow_summaries.stats();
        totals.dns_summaries = self.dns_summaries.stats();
        totals.nat = self
            .nat
            .as_ref()
            .map(nat::NatCheck::stats)
            .unwrap_or_default();
    }

    fn close_interval(&mut self, interval: Interval, emit: &mut impl FnMut(Record)) {
        let mut count = 0_u64;
        let mut counting = |r: Record| {
            count = count.saturating_add(1);
            emit(r);
        };
        self.flow_summaries
            .drain(interval, &self.interface, &mut counting);
        self.dns_summaries.drain(interval, &mut counting);
        let mut now = self.totals.clone();
        self.refresh(&mut now);
        let mut stats = host_stats(interval, &now, &self.reported);
        stats.addresses.clone_from(&self.addresses.0);
        stats.public_ip.clone_from(&self.addresses.1);
        counting(Record {
            record: Some(record::Record::HostStats(stats)),
        });
        self.totals.records = self.totals.records.saturating_add(count);
        now.records = self.totals.records;
        self.reported = now;
    }
}

/// Finished flows, taken out of `flows`, to the observer and into their summaries, each
/// with the name its host resolved for the remote address.
fn absorb_flows<O: Observer>(
    flows: &mut Vec<FlowRecord>,
    observer: &mut O,
    dns: &DnsTracker,
    summaries: &mut FlowSummaries,
    hits: &mut Vec<IntelHit>,
) {
    for flow in flows.drain(..) {
        observer.on_flow(&flow, hits);
        let remote = flow.remote().unwrap_or(flow.responder).addr;
        summaries.add(&flow, dns.name_for(remote, flow.end));
    }
}

/// Runs every packet of `source` through `pipeline`. Does not finish the pipeline, so several
/// sources (files replayed one after another) can feed one pipeline.
///
/// # Errors
///
/// The source's error when its input is damaged; packets before the damage have been
/// processed and their records emitted.
pub fn drive<S: PacketSource, O: Observer>(
    source: &mut S,
    pipeline: &mut Pipeline<O>,
    emit: &mut impl FnMut(Record),
) -> Result<(), S::Error> {
    while let Some(packet) = source.next_packet()? {
        pipeline.packet(&packet, emit);
    }
    Ok(())
}

/// The `HostStats` of one interval: `now` minus what was already `reported`.
fn host_stats(interval: Interval, now: &PipelineTotals, reported: &PipelineTotals) -> HostStats {
    let ms = |t: Timestamp| i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
    let decode_errors = now
        .decode
        .error_counts()
        .filter_map(|(layer, kind, n)| {
            let before = reported
                .decode
                .error_counts()
                .find(|(l, k, _)| *l == layer && *k == kind)
                .map_or(0, |(_, _, n)| n);
            let delta = n.saturating_sub(before);
            (delta > 0).then(|| Counter {
                kind: format!("{layer}.{kind}"),
                count: delta,
            })
        })
        .collect();
    let skipped = now
        .decode
        .skip_counts()
        .filter_map(|(kind, n)| {
            let before = reported
                .decode
                .skip_counts()
                .find(|(k, _)| *k == kind)
                .map_or(0, |(_, n)| n);
            let delta = n.saturating_sub(before);
            (delta > 0).then(|| Counter {
                kind: kind.to_owned(),
                count: delta,
            })
        })
        .collect();
    let dropped = [
        (
            "flow_summaries_full",
            now.flow_summaries.overflow,
            reported.flow_summaries.overflow,
        ),
        (
            "tls_names_full",
            now.flow_summaries.names_dropped,
            reported.flow_summaries.names_dropped,
        ),
        (
            "dns_summaries_full",
            now.dns_summaries.overflow,
            reported.dns_summaries.overflow,
        ),
    ];
    let nat: Vec<(&str, u64, u64)> = now
        .nat
        .by_kind()
        .into_iter()
        .zip(reported.nat.by_kind())
        .map(|((kind, now), (_, before))| (kind, now, before))
        .collect();
    let nat_checks = changed_counters(&nat);
    let records_dropped = changed_counters(&dropped);
    HostStats {
        interval_start_ms: ms(interval.start),
        interval_end_ms: ms(interval.end),
        packets: now.packets.saturating_sub(reported.packets),
        bytes: now.bytes.saturating_sub(reported.bytes),
        kernel_drops: now
            .capture
            .kernel_drops
            .saturating_sub(reported.capture.kernel_drops),
        internal_drops: now
            .capture
            .internal_drops
            .saturating_sub(reported.capture.internal_drops),
        decode_errors,
        skipped,
        flows_active: now.flows.active,
        flows_evicted: now.flows.evicted.saturating_sub(reported.flows.evicted),
        dns_malformed: now
            .dns
            .total_malformed()
            .saturating_sub(reported.dns.total_malformed()),
        records_dropped,
        intel_hits: now.intel_hits.saturating_sub(reported.intel_hits),
        nat_checks,
        // Filled by the pipeline, which knows the host's addresses.
        addresses: Vec::new(),
        public_ip: String::new(),
    }
}

/// Counters of (kind, now, reported) that moved since they were reported, as their change.
fn changed_counters(counts: &[(&str, u64, u64)]) -> Vec<Counter> {
    counts
        .iter()
        .filter_map(|(kind, now, before)| {
            let delta = now.saturating_sub(*before);
            (delta > 0).then(|| Counter {
                kind: (*kind).to_owned(),
                count: delta,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
