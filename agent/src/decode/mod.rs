//! Decode: from a captured frame to the addresses, ports and flags the flow table needs.
//!
//! One file per layer; each parses its header from a borrowed slice, checks every length
//! before reading, and hands the rest to the next layer. The result is a [`Decoded`] view
//! that borrows the frame and allocates nothing. A frame that lies about its lengths is a
//! [`DecodeError`]; a well-formed frame with nothing to track (ARP, other protocols) is
//! [`Outcome::Skipped`]. Neither ever panics, and [`DecodeStats`] counts both by kind.

pub mod app_protocol;
pub mod error;
pub mod ethernet;
pub mod express;
pub mod fragments;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod loopback;
pub mod pppoe;
pub mod sll;
pub mod stats;
pub mod tcp;
pub mod tunnel;
pub mod udp;

use std::net::IpAddr;

use crate::capture::{LinkType, Packet};

pub use app_protocol::AppProtocol;
pub use error::{DecodeError, ErrorKind, Layer, SkipKind};
pub use fragments::FragmentPorts;
pub use stats::DecodeStats;
pub use tunnel::{Tunnel, TunnelKind};

/// IP protocol numbers the decoder reads past the IP header.
pub mod protocol {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// Ethertypes the decoder dispatches on.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// Reverse ARP.
    pub const RARP: u16 = 0x8035;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// PPPoE session stage.
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag some switches still send.
    pub const QINQ_LEGACY: u16 = 0x9100;
}

/// The result of decoding one frame that was well-formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// An IP packet with a transport the flow table tracks.
    Decoded(Decoded<'a>),
    /// A frame with nothing to track, and why.
    Skipped(SkipKind),
}

/// What one IP packet says about its flow, borrowing the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The outermost VLAN id, when the frame was tagged.
    pub vlan: Option<u16>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The transport's IP protocol number (after IPv6 extension headers).
    pub protocol: u8,
    /// The IP packet's length as its header states it: IPv4 total length, or the IPv6 fixed
    /// header plus payload length. This is what flow byte counts add up, as in VPC Flow Logs.
    pub ip_total_len: u32,
    /// Bytes after the IP header and any extension headers, as the header states it.
    pub ip_payload_len: u32,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Set when the packet is a fragment (first or later).
    pub fragment: Option<Fragment>,
    /// The transport header's fields.
    pub transport: Transport,
    /// The transport payload as captured (shorter than stated when the capture was snapped or
    /// this is a first fragment).
    pub payload: &'a [u8],
    /// Whether the capture kept fewer bytes than the packet had, so lengths past the capture
    /// were trusted rather than rejected.
    pub snapped: bool,
    /// The VXLAN or Geneve tunnel this packet was unwrapped from, if any.
    pub tunnel: Option<Tunnel>,
}

impl Decoded<'_> {
    /// Source and destination ports, when the transport has them.
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.transport.ports()
    }
}

/// A fragment's place in its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// The datagram's identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// Offset of this fragment's data in the datagram, in bytes.
    pub offset: u32,
    /// Whether more fragments follow.
    pub more: bool,
}

impl Fragment {
    /// Whether this fragment carries the transport header (offset zero).
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// The transport header's fields that matter for flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Control flags.
        flags: TcpFlags,
        /// Sequence number of the segment's first byte (0 for a later fragment given ports),
        /// for reassembling DNS over TCP.
        seq: u32,
    },
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP (IPv4) or ICMPv6, told apart by [`Decoded::protocol`].
    Icmp {
        /// Message type.
        kind: u8,
        /// Message code.
        code: u8,
        /// Identifier of echo requests and replies, which pairs them.
        echo_id: Option<u16>,
    },
    /// A fragment after the first: no transport header, so no ports (unless
    /// [`FragmentPorts`] fills them in).
    LaterFragment,
}

impl Transport {
    /// Source and destination ports, when the transport has them.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            Self::Tcp {
                src_port, dst_port, ..
            }
            | Self::Udp { src_port, dst_port } => Some((src_port, dst_port)),
            Self::Icmp { .. } | Self::LaterFragment => None,
        }
    }

    /// TCP flags, or none for other transports.
    pub fn tcp_flags(&self) -> TcpFlags {
        match *self {
            Self::Tcp { flags, .. } => flags,
            _ => TcpFlags::default(),
        }
    }
}

/// TCP control flags (the header's 13th byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers: opens a connection.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer is significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;

    /// Whether every bit of `mask` is set.
    pub fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// Whether this is a connection-opening SYN (SYN without ACK).
    pub fn is_syn_only(self) -> bool {
        self.contains(Self::SYN) && !self.contains(Self::ACK)
    }
}

/// Decodes a captured packet; see [`decode`].
///
/// # Errors
///
/// Returns a [`DecodeError`] naming the layer whose header is truncated or inconsistent.
#[inline]
pub fn decode_packet<'a>(packet: &Packet<'a>) -> Result<Outcome<'a>, DecodeError> {
    decode(packet.link_type, packet.data, packet.is_snapped())
}

/// Decodes a frame of the given link type, unwrapping VXLAN and Geneve tunnels (up to
/// [`tunnel::MAX_TUNNEL_DEPTH`] deep) so the result describes the inner packet.
///
/// `snapped` says the capture kept fewer bytes than the packet had; lengths beyond the
/// captured bytes are then trusted instead of rejected, and payload slices stop at the capture.
///
/// # Errors
///
/// Returns a [`DecodeError`] naming the layer whose header is truncated or inconsistent,
/// in the outer packet or the inner one.
#[inline]
pub fn decode(link: LinkType, data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let result = decode_link(link, data, snapped);
    // Returned as it came unless it is a tunnel: a view is over a hundred bytes, and passing
    // the callee's result straight through lets it be built where the caller wants it.
    match &result {
        Ok(Outcome::Decoded(outer)) if tunnel::inner_frame(outer).is_some() => {
            unwrap_tunnels(*outer, snapped)
        }
        _ => result,
    }
}

/// The tunnel layers of `outer`, which carries one, unwrapped down to the innermost packet.
fn unwrap_tunnels(outer: Decoded<'_>, snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let mut outcome = Outcome::Decoded(outer);
    // A loop rather than recursion through the layers keeps nesting bounded in one place.
    for _ in 0..tunnel::MAX_TUNNEL_DEPTH {
        let Outcome::Decoded(outer) = outcome else {
            break;
        };
        let Some((tunnel, frame)) = tunnel::inner_frame(&outer) else {
            break;
        };
        outcome = match ethernet::decode(frame, snapped)? {
            Outcome::Decoded(inner) => Outcome::Decoded(Decoded {
                tunnel: Some(tunnel),
                ..inner
            }),
            skipped @ Outcome::Skipped(_) => skipped,
        };
    }
    Ok(outcome)
}

#[inline]
fn decode_link(link: LinkType, data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    match link {
        LinkType::ETHERNET => ethernet::decode(data, snapped),
        LinkType::LINUX_SLL => sll::decode_v1(data, snapped),
        LinkType::LINUX_SLL2 => sll::decode_v2(data, snapped),
        LinkType::RAW | LinkType::RAW_LEGACY => raw_ip(data, snapped),
        LinkType::IPV4 => ipv4::decode(data, snapped, None),
        LinkType::IPV6 => ipv6::decode(data, snapped, None),
        LinkType::NULL => loopback::decode_null(data, snapped),
        LinkType::LOOP => loopback::decode_loop(data, snapped),
        _ => Ok(Outcome::Skipped(SkipKind::UnknownLinkType)),
    }
}

/// Raw IP: the version nibble says which header follows.
fn raw_ip(data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let Some(first) = data.first() else {
        return Err(DecodeError::truncated(Layer::RawIp, 1, 0));
    };
    match first >> 4 {
        4 => ipv4::decode(data, snapped, None),
        6 => ipv6::decode(data, snapped, None),
        version => Err(DecodeError {
            layer: Layer::RawIp,
            kind: ErrorKind::BadVersion(version),
        }),
    }
}

/// Dispatches on an ethertype after any link header and VLAN tags.
#[inline]
fn network(
    ethertype: u16,
    data: &[u8],
    snapped: bool,
    vlan: Option<u16>,
) -> Result<Outcome<'_>, DecodeError> {
    match ethertype {
        ethertype::IPV4 => ipv4::decode(data, snapped, vlan),
        ethertype::IPV6 => ipv6::decode(data, snapped, vlan),
        ethertype::PPPOE_SESSION => pppoe::decode(data, snapped, vlan),
        ethertype::ARP | ethertype::RARP => Ok(Outcome::Skipped(SkipKind::Arp)),
        // Values up to 1500 are 802.3 lengths, not types (IEEE 802.3 §3.2.6).
        0..0x0600 => Ok(Outcome::Skipped(SkipKind::Llc)),
        _ => Ok(Outcome::Skipped(SkipKind::OtherEthertype)),
    }
}

/// Reads a big-endian u16 from two bytes.
#[inline]
fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

/// The transport layer shared by IPv4 and IPv6, once the IP header is known.
struct IpFields<'a> {
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ip_total_len: u32,
    ip_payload_len: u32,
    ttl: u8,
    fragment: Option<Fragment>,
    /// The transport header and payload as captured.
    rest: &'a [u8],
    snapped: bool,
}

/// Decodes the transport header that `ip` carries and builds the view.
#[inline]
fn transport(ip: IpFields<'_>) -> Result<Outcome<'_>, DecodeError> {
    // A first fragment or a snapped capture holds only part of the datagram, so transport
    // lengths that reach past it are expected rather than lies.
    let partial = ip.snapped || ip.fragment.is_some_and(|f| f.more);
    let (transport, payload) = match ip.fragment {
        Some(frag) if !frag.is_first() => (Transport::LaterFragment, ip.rest),
        _ => match ip.protocol {
            protocol::TCP => tcp::decode(ip.rest)?,
            protocol::UDP => udp::decode(ip.rest, partial)?,
            protocol::ICMP => icmp::decode(ip.rest, Layer::Icmp)?,
            protocol::ICMPV6 => icmp::decode(ip.rest, Layer::Icmpv6)?,
            _ => return Ok(Outcome::Skipped(SkipKind::OtherIpProtocol)),
        },
    };
    Ok(Outcome::Decoded(Decoded {
        vlan: ip.vlan,
        src: ip.src,
        dst: ip.dst,
        protocol: ip.protocol,
        ip_total_len: ip.ip_total_len,
        ip_payload_len: ip.ip_payload_len,
        ttl: ip.ttl,
        fragment: ip.fragment,
        transport,
        payload,
        snapped: ip.snapped,
        tunnel: None,
    }))
}

#[cfg(test)]
mod tests;
