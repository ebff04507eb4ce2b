//! Which NATed packets are counted on another link, so that a container's traffic is counted
//! once (see `pipeline::vantage` for the rule by address this completes).
//!
//! Docker masquerades a bridged container's traffic to the host's address on the way out,
//! and publishes its ports on the host's address on the way in; the EKS VPC CNI masquerades a
//! pod's traffic to outside the VPC to the node's primary address. On the uplink such a
//! packet has the host's address where the container's was, so the vantage's address rule
//! cannot tell it, and it would be counted again as the host's own: one scan from a container
//! reported as two, one of them from the node.
//!
//! The kernel's connection tracking knows: a NATed connection's original and reply tuples
//! differ, and one of them holds the container's address. A flow with one end the host's own
//! is looked up once, when it is new (not held by the flow table); when its connection has a
//! container counted at its link, the flow is left to that link, and remembered as left so
//! its other packets cost a hash lookup, not a question to the kernel. A flow that is not
//! NATed goes on into the flow table, and its later packets are not looked up again.
//!
//! On one node, a pod's connection to a service address that kube-proxy DNATs to another pod
//! of the node crosses the sender's link as sent to the service, and the receiver's link as
//! between the two pods. The address rule counts the first on the sender's link and the
//! second on the lower pod's link: twice when the receiver is the lower. So a container's
//! link asks about a flow between two containers it counts, and leaves it to the sender's
//! link when the connection was addressed to neither of them.
//!
//! An ICMP error (unreachable, time exceeded, parameter problem, packet too big) for a NATed
//! connection is translated too, quoted packet and all: on the host's own links it is between
//! the host's address and the remote end, on the container's link between the container and
//! the remote end. On the host's links each error is looked up by the connection it quotes
//! (errors are rare and rate-limited by their senders, and each may quote another
//! connection, so none is remembered), and left to the container's link when that connection
//! holds a container counted there.

use std::io;
use std::net::IpAddr;

use tracing::warn;

use super::vantage::Vantage;
use crate::capture::Timestamp;
use crate::decode::{Decoded, Transport, protocol};
use crate::flow_table::{Endpoint, FlowTable};

/// A connection as the host's connection tracking holds it: (source, destination) of its
/// original direction and of its reply direction, which differ when it was NATed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// As its first packet was sent.
    pub original: (IpAddr, IpAddr),
    /// As its answers are expected.
    pub reply: (IpAddr, IpAddr),
}

impl Tracked {
    /// Whether any address of either tuple is one that `wanted` says yes to.
    fn holds_any(&self, wanted: impl Fn(IpAddr) -> bool) -> bool {
        let (a, b) = self.original;
        let (c, d) = self.reply;
        [a, b, c, d].into_iter().any(wanted)
    }
}

/// Where the host keeps its NATed connections: the kernel's connection tracking
/// (`conntrack::Conntrack`) live, a table of its own in tests.
pub trait NatTable: Send + std::fmt::Debug {
    /// The tracked connection that a packet of `protocol` from `from` to `to` belongs to, in
    /// either direction; `None` when no such connection is tracked. For ICMP and ICMPv6 the
    /// packet is an echo reply, and both ports hold its echo id (as in the flow table's key).
    ///
    /// # Errors
    /// When the table cannot be asked.
    fn lookup(&mut self, protocol: u8, from: Endpoint, to: Endpoint)
    -> io::Result<Option<Tracked>>;
}

/// What the NAT check did, for `HostStats` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatStats {
    /// Questions asked of the connection tracking.
    pub lookups: u64,
    /// Flows found NATed from a container counted at its link, and left to it.
    pub left_to_links: u64,
    /// Questions that failed; their flows were counted here (twice, rather than lost).
    pub errors: u64,
    /// New flows not looked up because the second's questions were spent (a flood of new
    /// flows) or questions were paused after failing in a row; counted here, twice if they
    /// were a container's.
    pub unchecked: u64,
}

impl NatStats {
    /// The labels of [`NatStats::by_kind`], as `HostStats.nat_checks` and `/metrics` name
    /// the counts.
    pub const KINDS: [&'static str; 4] = ["asked", "left_to_link", "failed", "unchecked"];

    /// Each count with its label, in [`NatStats::KINDS`] order.
    pub fn by_kind(&self) -> [(&'static str, u64); 4] {
        let [asked, left, failed, unchecked] = Self::KINDS;
        [
            (asked, self.lookups),
            (left, self.left_to_links),
            (failed, self.errors),
            (unchecked, self.unchecked),
        ]
    }
}

/// Left flows remembered at most; past it the idle ones are forgotten (and looked up again if
/// they come back).
const REMEMBERED_AT_MOST: usize = 65_536;
/// A left flow idle this long is looked up again: its tuple may be another connection's now.
const REMEMBERED_FOR_NANOS: u64 = 30_000_000_000;

/// Questions asked per second at most: each costs 3-6 µs on the capture thread, and a flood
/// of new flows (a SYN flood at the host) must not turn into a flood of questions.
const LOOKUPS_PER_SECOND: u32 = 10_000;
const SECOND_NANOS: u64 = 1_000_000_000;
/// Failures in a row after which no question is asked for [`PAUSE_SECONDS`]: a table that
/// cannot answer (connection tracking not loaded, a wedged socket) would fail every new
/// flow's question, each a syscall or a 10 ms timeout.
const FAILURES_BEFORE_PAUSE: u32 = 16;
const PAUSE_SECONDS: u64 = 60;

/// A flow's tuple as asked: protocol, then the end asked from and the end asked to.
type TupleKey = (u8, Endpoint, Endpoint);

/// The NAT check of one capture: its questions, what it left to other links, its bounds.
#[derive(Debug)]
pub struct NatCheck {
    table: Box<dyn NatTable>,
    /// Flows left to containers' links, with when their last packet was seen.
    left: hashbrown::HashMap<TupleKey, Timestamp, foldhash::fast::RandomState>,
    /// The second (of packet time) whose questions are being counted, and how many were
    /// asked in it.
    second: u64,
    asked_this_second: u32,
    /// Questions failed in a row, and the second (of packet time) until which none is asked.
    failures_in_a_row: u32,
    paused_until: u64,
    /// Pauses so far, so the warning is said ever more rarely (a kernel without connection
    /// tracking fails every minute).
    pauses: u64,
    stats: NatStats,
}

impl NatCheck {
    /// A check asking `table`.
    pub fn new(table: Box<dyn NatTable>) -> Self {
        Self {
            table,
            left: hashbrown::HashMap::default(),
            second: 0,
            asked_this_second: 0,
            failures_in_a_row: 0,
            paused_until: 0,
            pauses: 0,
            stats: NatStats::default(),
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> NatStats {
        self.stats
    }

    /// Whether `packet`, seen at `ts` by a capture with `vantage` (which counts it by
    /// address), is counted on another link instead: on the host's own links, a container's
    /// packet NATed to one of the host's addresses; on a container's link, a packet between
    /// two containers that the other one sent to a service address (kube-proxy's DNAT), which
    /// the other one's link counts as sent there.
    pub fn counted_at_link(
        &mut self,
        vantage: &Vantage,
        table: &FlowTable,
        packet: &Decoded<'_>,
        ts: Timestamp,
    ) -> bool {
        if !vantage.has_links() {
            return false;
        }
        if !vantage.container_link() {
            if let Some((protocol, src, dst)) = quoted_connection(packet) {
                return self.error_counted_at_link(vantage, protocol, src, dst, ts);
            }
        }
        // Connection tracking's tuples have ports, or for ICMP echoes an id: as the flow table
        // keys them, the id in both ports. ICMP errors are looked up by what they quote, above.
        let (src_port, dst_port) = match packet.transport {
            Transport::Icmp {
                echo_id: Some(id), ..
            } if !vantage.container_link() => (id, id),
            _ => match packet.ports() {
                Some(ports) => ports,
                None => return false,
            },
        };
        let (src, dst) = Endpoint::pair(packet, (src_port, dst_port));
        // Asked from the end whose tuple the kernel holds: the remote end for the host's
        // (masquerade's reply tuple, a published port's original), the container behind this
        // link for two containers (the reply tuple of the connection to the service).
        let (from, to) = if vantage.container_link() {
            if !(vantage.at_link(src.addr) && vantage.at_link(dst.addr)) {
                return false;
            }
            // Counted here by address: the lower end is the container behind this link.
            if src.addr <= dst.addr {
                (src, dst)
            } else {
                (dst, src)
            }
        } else {
            match (vantage.is_own(src.addr), vantage.is_own(dst.addr)) {
                (false, true) => (src, dst),
                (true, false) => (dst, src),
                _ => return false,
            }
        };
        let key = (packet.protocol, from, to);
        if let Some(last) = self.left.get_mut(&key) {
            if ts.0.saturating_sub(last.0) < REMEMBERED_FOR_NANOS {
                *last = ts;
                return true;
            }
        }
        if table.holds(packet.protocol, src, dst) {
            return false;
        }
        let Some(tracked) = self.ask(packet.protocol, from, to, ts) else {
            self.left.remove(&key);
            return false;
        };
        let elsewhere = if vantage.container_link() {
            // Sent by the other container to an address that is neither (a service's): its
            // link counts it, as sent to that address.
            let (sender, receiver) = tracked.original;
            sender == to.addr && receiver != from.addr && receiver != to.addr
        } else {
            tracked.holds_any(|addr| vantage.at_link(addr))
        };
        if !elsewhere {
            self.left.remove(&key);
            return false;
        }
        self.stats.left_to_links = self.stats.left_to_links.saturating_add(1);
        if self.left.len() >= REMEMBERED_AT_MOST {
            self.left
                .retain(|_, last| ts.0.saturating_sub(last.0) < REMEMBERED_FOR_NANOS);
            if self.left.len() >= REMEMBERED_AT_MOST {
                self.left.clear();
            }
        }
        self.left.insert(key, ts);
        true
    }

    /// An ICMP error on the host's own links, quoting a packet of `protocol` from `src` to
    /// `dst`: counted on a container's link when the connection it quotes holds a container
    /// counted there.
    fn error_counted_at_link(
        &mut self,
        vantage: &Vantage,
        protocol: u8,
        src: Endpoint,
        dst: Endpoint,
        ts: Timestamp,
    ) -> bool {
        // As for the connection's own packets: asked from its remote end.
        let (from, to) = match (vantage.is_own(src.addr), vantage.is_own(dst.addr)) {
            (false, true) => (src, dst),
            (true, false) => (dst, src),
            _ => return false,
        };
        let Some(tracked) = self.ask(protocol, from, to, ts) else {
            return false;
        };
        let elsewhere = tracked.holds_any(|addr| vantage.at_link(addr));
        if elsewhere {
            self.stats.left_to_links = self.stats.left_to_links.saturating_add(1);
        }
        elsewhere
    }

    /// Asks the table about a connection of `protocol` from `from` to `to` at `ts`, within
    /// the questions a second allows and outside a pause; `None` when it is not tracked, the
    /// question failed (counted, and warned about ever more rarely) or was not asked.
    fn ask(
        &mut self,
        protocol: u8,
        from: Endpoint,
        to: Endpoint,
        ts: Timestamp,
    ) -> Option<Tracked> {
        let second = ts.0 / SECOND_NANOS;
        if second != self.second {
            (self.second, self.asked_this_second) = (second, 0);
        }
        if self.asked_this_second >= LOOKUPS_PER_SECOND || second < self.paused_until {
            self.stats.unchecked = self.stats.unchecked.saturating_add(1);
            return None;
        }
        self.asked_this_second += 1;
        self.stats.lookups = self.stats.lookups.saturating_add(1);
        match self.table.lookup(protocol, from, to) {
            Ok(tracked) => {
                self.failures_in_a_row = 0;
                tracked
            }
            Err(e) => {
                self.stats.errors = self.stats.errors.saturating_add(1);
                self.failures_in_a_row += 1;
                // The first and then ever more rarely: a wedged socket fails every question.
                if self.stats.errors.is_power_of_two() {
                    warn!(error = %e, errors = self.stats.errors,
                        "connection tracking could not be asked; the flow is counted on this link");
                }
                if self.failures_in_a_row >= FAILURES_BEFORE_PAUSE {
                    self.failures_in_a_row = 0;
                    self.paused_until = second.saturating_add(PAUSE_SECONDS);
                    self.pauses = self.pauses.saturating_add(1);
                    if self.pauses.is_power_of_two() {
                        warn!(
                            seconds = PAUSE_SECONDS,
                            pauses = self.pauses,
                            "connection tracking failed {FAILURES_BEFORE_PAUSE} questions in a row; none asked for a while, new flows counted on this link"
                        );
                    }
                }
                None
            }
        }
    }
}

/// The connection an ICMP or ICMPv6 error quotes: the quoted packet's protocol and its two
/// ends, with ports as the flow table keys them (an echo's id in both). `None` for any other
/// packet, and for a quote too short to hold the ports or of another family.
fn quoted_connection(packet: &Decoded<'_>) -> Option<(u8, Endpoint, Endpoint)> {
    let Transport::Icmp { kind, .. } = packet.transport else {
        return None;
    };
    // Destination unreachable, time exceeded, parameter problem (RFC 792); and ICMPv6's
    // destination unreachable, packet too big, time exceeded, parameter problem (RFC 4443).
    let error = match packet.protocol {
        protocol::ICMP => matches!(kind, 3 | 11 | 12),
        protocol::ICMPV6 => matches!(kind, 1..=4),
        _ => false,
    };
    if !error {
        return None;
    }
    let quote = packet.payload;
    let (quoted_protocol, src, dst, transport) = match (packet.protocol, quote.first()? >> 4) {
        (protocol::ICMP, 4) => {
            let header_len = usize::from(quote.first()? & 0x0f) * 4;
            let octets = |at: usize| <[u8; 4]>::try_from(quote.get(at..at + 4)?).ok();
            if header_len < 20 {
                return None;
            }
            (
                *quote.get(9)?,
                IpAddr::from(octets(12)?),
                IpAddr::from(octets(16)?),
                quote.get(header_len..)?,
            )
        }
        (protocol::ICMPV6, 6) => {
            let octets = |at: usize| <[u8; 16]>::try_from(quote.get(at..at + 16)?).ok();
            // A quote with extension headers is left alone: rare, and the ports are
            // further in.
            (
                *quote.get(6)?,
                IpAddr::from(octets(8)?),
                IpAddr::from(octets(24)?),
                quote.get(40..)?,
            )
        }
        _ => return None,
    };
    let word = |at: usize| {
        Some(u16::from_be_bytes([
            *transport.get(at)?,
            *transport.get(at + 1)?,
        ]))
    };
    let ports = match quoted_protocol {
        protocol::TCP | protocol::UDP => (word(0)?, word(2)?),
        // An echo request or reply: its id, in both ports.
        protocol::ICMP if matches!(transport.first()?, 8 | 0) => (word(4)?, word(4)?),
        protocol::ICMPV6 if matches!(transport.first()?, 128 | 129) => (word(4)?, word(4)?),
        _ => return None,
    };
    let src = Endpoint {
        addr: src,
        port: ports.0,
    };
    let dst = Endpoint {
        addr: dst,
        port: ports.1,
    };
    Some((quoted_protocol, src, dst))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::capture::LinkType;
    use crate::decode::{Outcome, decode};

    /// A raw IPv6 packet from `src` to `dst` with next header `next` and `payload`.
    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&u16::try_from(payload.len()).expect("small").to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    fn quoted(packet: &[u8]) -> Option<(u8, Endpoint, Endpoint)> {
        match decode(LinkType::IPV6, packet, false) {
            Ok(Outcome::Decoded(d)) => quoted_connection(&d),
            other => panic!("not decoded: {other:?}"),
        }
    }

    #[test]
    fn an_icmpv6_error_gives_the_connection_it_quotes() {
        let (host, remote): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::5".parse().expect("v6"),
            "2001:db8:1::20".parse().expect("v6"),
        );
        let udp = [0xc3, 0x50, 0, 53, 0, 8, 0, 0];
        let sent = ipv6(host, remote, 17, &udp);
        let error = |kind: u8, quote: &[u8]| {
            let mut icmp = vec![kind, 4, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(quote);
            ipv6(remote, host, 58, &icmp)
        };
        let end = |addr: Ipv6Addr, port| Endpoint {
            addr: addr.into(),
            port,
        };
        // Destination unreachable, packet too big, time exceeded, parameter problem.
        for kind in 1..=4 {
            assert_eq!(
                quoted(&error(kind, &sent)),
                Some((17, end(host, 50_000), end(remote, 53))),
                "type {kind}"
            );
        }
        // An echo quoted: its id in both ports.
        let echo = ipv6(host, remote, 58, &[128, 0, 0, 0, 0, 9, 0, 1]);
        assert_eq!(
            quoted(&error(1, &echo)),
            Some((58, end(host, 9), end(remote, 9)))
        );
        // Not an error, a quote cut before its ports, a quote of the other family.
        assert_eq!(quoted(&error(128, &sent)), None);
        assert_eq!(quoted(&error(1, &sent[..42])), None);
        assert_eq!(quoted(&error(1, &[0x45; 28])), None);
    }
}
