//! Linux cooked captures (`tcpdump -i any`): SLL v1 (link type 113) and SLL2 (276).
//!
//! Both carry the ethertype in a protocol field; neither has Ethernet addresses.

use super::ethernet::vlan_tags;
use super::{DecodeError, Layer, Outcome, SkipKind, be16, network};

/// `ARPHRD_NETLINK`: netlink messages captured on the `nlmon` device, never IP.
const ARPHRD_NETLINK: u16 = 824;

/// Decodes a Linux cooked v1 frame: packet type, hardware type, address length, address
/// (8 bytes), protocol.
///
/// # Errors
///
/// Returns a truncated error at [`Layer::Sll`], or the error of a later layer.
pub fn decode_v1(data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let Some((header, rest)) = data.split_first_chunk::<16>() else {
        return Err(DecodeError::truncated(Layer::Sll, 16, data.len()));
    };
    let [_, _, h0, h1, .., p0, p1] = *header;
    cooked(be16([h0, h1]), be16([p0, p1]), rest, snapped)
}

/// Decodes a Linux cooked v2 frame: protocol, reserved, interface index, hardware type,
/// packet type, address length, address (8 bytes).
///
/// # Errors
///
/// Returns a truncated error at [`Layer::Sll2`], or the error of a later layer.
pub fn decode_v2(data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let Some((header, rest)) = data.split_first_chunk::<20>() else {
        return Err(DecodeError::truncated(Layer::Sll2, 20, data.len()));
    };
    let [p0, p1, _, _, _, _, _, _, h0, h1, ..] = *header;
    cooked(be16([h0, h1]), be16([p0, p1]), rest, snapped)
}

fn cooked(
    hatype: u16,
    protocol: u16,
    rest: &[u8],
    snapped: bool,
) -> Result<Outcome<'_>, DecodeError> {
    if hatype == ARPHRD_NETLINK {
        return Ok(Outcome::Skipped(SkipKind::NonIpHardware));
    }
    let (ethertype, vlan, rest) = vlan_tags(protocol, rest)?;
    network(ethertype, rest, snapped, vlan)
}
