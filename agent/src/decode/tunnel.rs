//! VXLAN (RFC 7348) and Geneve (RFC 8926): Ethernet frames carried in UDP, as AWS VPC Traffic
//! Mirroring (VXLAN, port 4789) and Gateway Load Balancer (Geneve, port 6081) deliver them.
//! The inner frame is what the flows are about, so decode unwraps it.

use std::net::IpAddr;

use super::{Decoded, Transport, be16};

/// IANA port for VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// IANA port for Geneve.
pub const GENEVE_PORT: u16 = 6081;
/// Most tunnel layers unwrapped; a deeper packet is reported as the UDP packet it then is.
pub const MAX_TUNNEL_DEPTH: usize = 2;

/// Geneve's protocol type for an Ethernet payload ("transparent Ethernet bridging").
const ETHERNET_BRIDGING: u16 = 0x6558;

/// Which encapsulation carried a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN.
    Vxlan,
    /// Geneve.
    Geneve,
}

/// The tunnel a decoded packet came out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// Encapsulation.
    pub kind: TunnelKind,
    /// 24-bit virtual network identifier.
    pub vni: u32,
    /// Outer source address (the tunnel endpoint that sent it).
    pub outer_src: IpAddr,
    /// Outer destination address.
    pub outer_dst: IpAddr,
}

/// If `packet` is VXLAN or Geneve carrying Ethernet, the tunnel and the inner frame.
///
/// A packet to the port whose header does not check out (VXLAN without the I flag, Geneve of
/// another version or protocol, options past the payload) is left as the UDP packet it is.
pub fn inner_frame<'a>(packet: &Decoded<'a>) -> Option<(Tunnel, &'a [u8])> {
    let Transport::Udp { dst_port, .. } = packet.transport else {
        return None;
    };
    let (kind, vni, frame) = match dst_port {
        VXLAN_PORT => {
            let (&[flags, _, _, _, v0, v1, v2, _], frame) =
                packet.payload.split_first_chunk::<8>()?;
            // The I flag says the VNI is valid (RFC 7348 §5).
            if flags & 0x08 == 0 {
                return None;
            }
            (
                TunnelKind::Vxlan,
                u32::from_be_bytes([0, v0, v1, v2]),
                frame,
            )
        }
        GENEVE_PORT => {
            let (&[ver_opt, _, p0, p1, v0, v1, v2, _], rest) =
                packet.payload.split_first_chunk::<8>()?;
            if ver_opt >> 6 != 0 || be16([p0, p1]) != ETHERNET_BRIDGING {
                return None;
            }
            // Options length in 4-byte words (RFC 8926 §3.4).
            let options = usize::from(ver_opt & 0x3f) * 4;
            (
                TunnelKind::Geneve,
                u32::from_be_bytes([0, v0, v1, v2]),
                rest.get(options..)?,
            )
        }
        _ => return None,
    };
    let tunnel = Tunnel {
        kind,
        vni,
        outer_src: packet.src,
        outer_dst: packet.dst,
    };
    Some((tunnel, frame))
}
