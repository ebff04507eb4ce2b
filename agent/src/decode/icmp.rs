//! ICMP (RFC 792) and ICMPv6 (RFC 4443) headers: type, code, and the echo identifier.

use super::{DecodeError, Layer, Transport, be16};

/// ICMP echo request and reply types.
const ICMP_ECHO: [u8; 2] = [8, 0];
/// ICMPv6 echo request and reply types.
const ICMPV6_ECHO: [u8; 2] = [128, 129];

/// Decodes an ICMP or ICMPv6 header (`layer` says which); returns its fields and the rest of
/// the message after the 8-byte header (or after 4 bytes when only those were captured).
///
/// # Errors
///
/// Returns a truncated error at `layer` when fewer than 4 bytes remain.
#[inline]
pub fn decode(data: &[u8], layer: Layer) -> Result<(Transport, &[u8]), DecodeError> {
    let Some((&[kind, code, _, _], _)) = data.split_first_chunk::<4>() else {
        return Err(DecodeError::truncated(layer, 4, data.len()));
    };
    let echo = if layer == Layer::Icmpv6 {
        ICMPV6_ECHO
    } else {
        ICMP_ECHO
    };
    let (echo_id, body) = match data.split_first_chunk::<8>() {
        Some((&[_, _, _, _, i0, i1, _, _], body)) => {
            (echo.contains(&kind).then_some(be16([i0, i1])), body)
        }
        None => (None, data.get(4..).unwrap_or_default()),
    };
    Ok((
        Transport::Icmp {
            kind,
            code,
            echo_id,
        },
        body,
    ))
}
