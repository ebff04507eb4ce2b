//! IPv4 headers (RFC 791): version, header length, total length, fragmentation, addresses.

use std::net::{IpAddr, Ipv4Addr};

use super::{DecodeError, ErrorKind, Fragment, IpFields, Layer, Outcome, be16, transport};

/// Decodes an IPv4 packet and its transport header.
///
/// Bytes after the stated total length (Ethernet padding) are ignored. A total length past the
/// captured bytes is an error unless the capture was `snapped`.
///
/// # Errors
///
/// Returns [`ErrorKind::BadVersion`], [`ErrorKind::BadHeaderLength`] for IHL < 5,
/// [`ErrorKind::LengthTooShort`] when the total length does not cover the header,
/// [`ErrorKind::LengthBeyondCapture`], a truncated header, or the transport's error.
#[inline]
pub fn decode(data: &[u8], snapped: bool, vlan: Option<u16>) -> Result<Outcome<'_>, DecodeError> {
    // The version first: a short packet of the wrong version is the wrong version.
    if let Some(version) = data.first().map(|b| b >> 4).filter(|v| *v != 4) {
        return Err(DecodeError {
            layer: Layer::Ipv4,
            kind: ErrorKind::BadVersion(version),
        });
    }
    let Some((header, _)) = data.split_first_chunk::<20>() else {
        return Err(DecodeError::truncated(Layer::Ipv4, 20, data.len()));
    };
    let [
        vihl,
        _tos,
        l0,
        l1,
        i0,
        i1,
        f0,
        f1,
        ttl,
        protocol,
        _,
        _,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ] = *header;
    let error = |kind| DecodeError {
        layer: Layer::Ipv4,
        kind,
    };
    let version = vihl >> 4;
    if version != 4 {
        return Err(error(ErrorKind::BadVersion(version)));
    }
    let ihl = vihl & 0x0f;
    if ihl < 5 {
        return Err(error(ErrorKind::BadHeaderLength(ihl)));
    }
    let header_len = usize::from(ihl) * 4;
    if data.len() < header_len {
        return Err(DecodeError::truncated(Layer::Ipv4, header_len, data.len()));
    }
    let total = usize::from(be16([l0, l1]));
    if total < header_len {
        return Err(error(ErrorKind::LengthTooShort {
            claimed: total,
            minimum: header_len,
        }));
    }
    if total > data.len() && !snapped {
        return Err(error(ErrorKind::LengthBeyondCapture {
            claimed: total,
            captured: data.len(),
        }));
    }
    let end = total.min(data.len());
    let rest = data.get(header_len..end).unwrap_or_default();

    let flags_offset = be16([f0, f1]);
    let more = flags_offset & 0x2000 != 0;
    // The offset field counts 8-byte units (RFC 791 §3.1).
    let offset = u32::from(flags_offset & 0x1fff) * 8;
    let fragment = (more || offset > 0).then_some(Fragment {
        id: u32::from(be16([i0, i1])),
        offset,
        more,
    });

    transport(IpFields {
        vlan,
        src: IpAddr::V4(Ipv4Addr::new(s0, s1, s2, s3)),
        dst: IpAddr::V4(Ipv4Addr::new(d0, d1, d2, d3)),
        protocol,
        ip_total_len: u32::from(be16([l0, l1])),
        ip_payload_len: u32::from(be16([l0, l1])).saturating_sub(u32::from(ihl) * 4),
        ttl,
        fragment,
        rest,
        snapped,
    })
}
