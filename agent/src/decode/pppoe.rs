//! PPPoE session frames (RFC 2516), as DSL uplinks carry IP: a 6-byte PPPoE header, then a
//! 2-byte PPP protocol number.

use super::{DecodeError, Layer, Outcome, SkipKind, be16, ipv4, ipv6};

/// PPP protocol numbers for IPv4 and IPv6 (RFC 1332, RFC 5072).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// Decodes a PPPoE session frame and the IP packet inside it.
///
/// # Errors
///
/// Returns a truncated error at [`Layer::Pppoe`], or the IP layer's error.
pub fn decode(data: &[u8], snapped: bool, vlan: Option<u16>) -> Result<Outcome<'_>, DecodeError> {
    let Some((&[_, _, _, _, _, _, p0, p1], rest)) = data.split_first_chunk::<8>() else {
        return Err(DecodeError::truncated(Layer::Pppoe, 8, data.len()));
    };
    match be16([p0, p1]) {
        PPP_IPV4 => ipv4::decode(rest, snapped, vlan),
        PPP_IPV6 => ipv6::decode(rest, snapped, vlan),
        _ => Ok(Outcome::Skipped(SkipKind::OtherEthertype)),
    }
}
