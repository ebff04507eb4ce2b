//! IPv6 (RFC 8200): the fixed header and the extension-header chain up to the transport.

use std::net::{IpAddr, Ipv6Addr};

use super::{DecodeError, ErrorKind, Fragment, IpFields, Layer, Outcome, SkipKind, transport};

/// Most extension headers walked before giving up. RFC 8200 §4.1 expects each at most once
/// (destination options twice), about seven in all; the cap bounds work on a hostile chain.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Extension header numbers (IANA "IPv6 Extension Header Types").
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTHENTICATION: u8 = 51;
const NO_NEXT_HEADER: u8 = 59;
const DESTINATION_OPTIONS: u8 = 60;
const MOBILITY: u8 = 135;
const HIP: u8 = 139;
const SHIM6: u8 = 140;

/// Decodes an IPv6 packet, walks its extension headers, then decodes the transport header.
///
/// # Errors
///
/// Returns [`ErrorKind::BadVersion`], [`ErrorKind::LengthBeyondCapture`] (unless `snapped`),
/// [`ErrorKind::TooManyExtensionHeaders`], a truncated header at [`Layer::Ipv6`] or
/// [`Layer::Ipv6Extension`], or the transport's error.
#[inline]
pub fn decode(data: &[u8], snapped: bool, vlan: Option<u16>) -> Result<Outcome<'_>, DecodeError> {
    // The version first: a short packet of the wrong version is the wrong version.
    if let Some(version) = data.first().map(|b| b >> 4).filter(|v| *v != 6) {
        return Err(DecodeError {
            layer: Layer::Ipv6,
            kind: ErrorKind::BadVersion(version),
        });
    }
    let Some((fixed, rest)) = data.split_first_chunk::<8>() else {
        return Err(DecodeError::truncated(Layer::Ipv6, 40, data.len()));
    };
    let Some((src, rest)) = rest.split_first_chunk::<16>() else {
        return Err(DecodeError::truncated(Layer::Ipv6, 40, data.len()));
    };
    let Some((dst, rest)) = rest.split_first_chunk::<16>() else {
        return Err(DecodeError::truncated(Layer::Ipv6, 40, data.len()));
    };
    let [v, _, _, _, l0, l1, mut next, hop_limit] = *fixed;
    let version = v >> 4;
    if version != 6 {
        return Err(DecodeError {
            layer: Layer::Ipv6,
            kind: ErrorKind::BadVersion(version),
        });
    }
    let stated = usize::from(u16::from_be_bytes([l0, l1]));
    // A zero payload length with a hop-by-hop header is a jumbogram (RFC 2675), whose real
    // length is in an option; the captured bytes are the best measure of it.
    let payload_len = if stated == 0 && next == HOP_BY_HOP {
        rest.len()
    } else {
        stated
    };
    if payload_len > rest.len() && !snapped {
        return Err(DecodeError {
            layer: Layer::Ipv6,
            kind: ErrorKind::LengthBeyondCapture {
                claimed: payload_len,
                captured: rest.len(),
            },
        });
    }
    let mut rest = rest.get(..payload_len.min(rest.len())).unwrap_or_default();
    let mut headers_len = 0_usize;
    let mut fragment = None;
    let mut hops = 0_usize;
    loop {
        let len = match next {
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | MOBILITY | HIP | SHIM6 => {
                let Some((&[nh, units], _)) = rest.split_first_chunk::<2>() else {
                    return Err(DecodeError::truncated(Layer::Ipv6Extension, 2, rest.len()));
                };
                next = nh;
                // Length in 8-octet units, not counting the first 8 (RFC 8200 §4.3).
                (usize::from(units) + 1) * 8
            }
            AUTHENTICATION => {
                let Some((&[nh, units], _)) = rest.split_first_chunk::<2>() else {
                    return Err(DecodeError::truncated(Layer::Ipv6Extension, 2, rest.len()));
                };
                next = nh;
                // Length in 4-octet units, minus 2 (RFC 4302 §2.2).
                (usize::from(units) + 2) * 4
            }
            FRAGMENT => {
                let Some((&[nh, _, o0, o1, i0, i1, i2, i3], _)) = rest.split_first_chunk::<8>()
                else {
                    return Err(DecodeError::truncated(Layer::Ipv6Extension, 8, rest.len()));
                };
                next = nh;
                let field = u16::from_be_bytes([o0, o1]);
                fragment = Some(Fragment {
                    id: u32::from_be_bytes([i0, i1, i2, i3]),
                    // The top 13 bits count 8-octet units (RFC 8200 §4.5).
                    offset: u32::from(field >> 3) * 8,
                    more: field & 1 != 0,
                });
                8
            }
            NO_NEXT_HEADER => return Ok(Outcome::Skipped(SkipKind::NoNextHeader)),
            _ => break,
        };
        hops = hops.saturating_add(1);
        if hops > MAX_EXTENSION_HEADERS {
            return Err(DecodeError {
                layer: Layer::Ipv6Extension,
                kind: ErrorKind::TooManyExtensionHeaders,
            });
        }
        let Some(after) = rest.get(len..) else {
            return Err(DecodeError::truncated(
                Layer::Ipv6Extension,
                len,
                rest.len(),
            ));
        };
        rest = after;
        headers_len = headers_len.saturating_add(len);
        // After a later fragment's header come data bytes, not more headers.
        if fragment.is_some_and(|f| !f.is_first()) {
            break;
        }
    }
    let payload_len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    let headers_len = u32::try_from(headers_len).unwrap_or(u32::MAX);
    transport(IpFields {
        vlan,
        src: IpAddr::V6(Ipv6Addr::from(*src)),
        dst: IpAddr::V6(Ipv6Addr::from(*dst)),
        protocol: next,
        ip_total_len: payload_len.saturating_add(40),
        ip_payload_len: payload_len.saturating_sub(headers_len),
        ttl: hop_limit,
        fragment,
        rest,
        snapped,
    })
}
