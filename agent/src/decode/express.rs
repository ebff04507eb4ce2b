//! The express lane: the one frame shape most traffic has (Ethernet, IPv4 without options
//! or IPv6 without extension headers, not a fragment, TCP or UDP) read in one step.
//!
//! The layered decoder builds a [`Decoded`](super::Decoded) view of over a hundred bytes
//! through four layers for every packet; for a packet of a flow the table already holds, the
//! pipeline needs only the addresses, ports, TCP flags, IP length and payload. This reads
//! exactly those for the common shape and says `None` for anything else (VLAN tags, IP
//! options, IPv6 extension headers, fragments, tunnels, DNS, a TLS record, any length the
//! layered decoder would call a lie), which then takes the layered path. It never decides anything the layered decoder
//! would decide differently: a test checks every frame it accepts against that decoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::tunnel::{GENEVE_PORT, VXLAN_PORT};
use super::{TcpFlags, be16, ethertype, protocol};
use crate::capture::{LinkType, Packet};

/// DNS, which the DNS tracker must see.
const DNS_PORT: u16 = 53;

/// The first byte of a TLS handshake record, whose server name the pipeline reads.
const TLS_HANDSHAKE: u8 = 22;

/// What the express lane read from a frame: the fields the flow table counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Express<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// [`protocol::TCP`] or [`protocol::UDP`].
    pub protocol: u8,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// TCP flags (none for UDP).
    pub flags: TcpFlags,
    /// The IP header's total length, as the layered decoder reports it.
    pub ip_total_len: u32,
    /// The transport payload, bounded as the layered decoder bounds it.
    pub payload: &'a [u8],
}

/// Reads `packet` if it has the express shape; `None` sends it the layered way.
#[inline]
pub fn read<'a>(packet: &Packet<'a>) -> Option<Express<'a>> {
    if packet.link_type != LinkType::ETHERNET {
        return None;
    }
    let (eth, ip) = packet.data.split_first_chunk::<14>()?;
    let snapped = packet.is_snapped();
    let (src, dst, protocol, total, rest) = match be16([eth[12], eth[13]]) {
        ethertype::IPV4 => ipv4(ip, snapped)?,
        ethertype::IPV6 => ipv6(ip, snapped)?,
        _ => return None,
    };
    let (src_port, dst_port, flags, payload) = match protocol {
        protocol::TCP => {
            let (tcp, _) = rest.split_first_chunk::<20>()?;
            let words = tcp[12] >> 4;
            if words < 5 {
                return None;
            }
            let payload = rest.get(usize::from(words) * 4..)?;
            (
                be16([tcp[0], tcp[1]]),
                be16([tcp[2], tcp[3]]),
                TcpFlags(tcp[13]),
                payload,
            )
        }
        protocol::UDP => {
            let (udp, after) = rest.split_first_chunk::<8>()?;
            let length = usize::from(be16([udp[4], udp[5]]));
            if length < 8 || (length > rest.len() && !snapped) {
                return None;
            }
            let dst_port = be16([udp[2], udp[3]]);
            if dst_port == VXLAN_PORT || dst_port == GENEVE_PORT {
                return None;
            }
            (
                be16([udp[0], udp[1]]),
                dst_port,
                TcpFlags::default(),
                after.get(..length - 8).unwrap_or(after),
            )
        }
        _ => return None,
    };
    if src_port == DNS_PORT || dst_port == DNS_PORT || payload.first() == Some(&TLS_HANDSHAKE) {
        return None;
    }
    Some(Express {
        src,
        dst,
        protocol,
        src_port,
        dst_port,
        flags,
        ip_total_len: total,
        payload,
    })
}

/// The IP layer's part: addresses, protocol, total length as the layered decoder reports it,
/// and the transport bytes.
type IpPart<'a> = (IpAddr, IpAddr, u8, u32, &'a [u8]);

/// An IPv4 header of 20 bytes that is not a fragment.
#[inline]
fn ipv4(ip: &[u8], snapped: bool) -> Option<IpPart<'_>> {
    let (header, _) = ip.split_first_chunk::<20>()?;
    // Version 4 with a 20-byte header: options take the layered path.
    if header[0] != 0x45 {
        return None;
    }
    let total = usize::from(be16([header[2], header[3]]));
    if total < 20 || (total > ip.len() && !snapped) {
        return None;
    }
    // Any fragment (more-fragments flag or an offset) takes the layered path.
    if be16([header[6], header[7]]) & 0x3fff != 0 {
        return None;
    }
    let rest = ip.get(20..total.min(ip.len()))?;
    let src = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    let total = u32::try_from(total).ok()?;
    Some((IpAddr::V4(src), IpAddr::V4(dst), header[9], total, rest))
}

/// An IPv6 header followed directly by the transport (no extension headers).
#[inline]
fn ipv6(ip: &[u8], snapped: bool) -> Option<IpPart<'_>> {
    let (fixed, rest) = ip.split_first_chunk::<8>()?;
    let (src, rest) = rest.split_first_chunk::<16>()?;
    let (dst, rest) = rest.split_first_chunk::<16>()?;
    if fixed[0] >> 4 != 6 {
        return None;
    }
    let protocol = fixed[6];
    if protocol != protocol::TCP && protocol != protocol::UDP {
        return None;
    }
    let payload_len = usize::from(be16([fixed[4], fixed[5]]));
    if payload_len > rest.len() && !snapped {
        return None;
    }
    let rest = rest.get(..payload_len.min(rest.len()))?;
    let total = u32::try_from(payload_len).ok()?.checked_add(40)?;
    Some((
        IpAddr::V6(Ipv6Addr::from(*src)),
        IpAddr::V6(Ipv6Addr::from(*dst)),
        protocol,
        total,
        rest,
    ))
}
