//! BSD loopback link types: `DLT_NULL` (0, address family in the capturing host's byte
//! order) and `DLT_LOOP` (108, network byte order).

use super::{DecodeError, Layer, Outcome, SkipKind, ipv4, ipv6};

/// `AF_INET` on every platform.
const AF_INET: u32 = 2;
/// `AF_INET6` differs by platform: Linux, NetBSD/OpenBSD, FreeBSD, macOS.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Decodes a `DLT_NULL` frame; the byte order is whichever gives a small family number.
///
/// # Errors
///
/// Returns a truncated error at [`Layer::Loopback`], or the IP layer's error.
pub fn decode_null(data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let Some((family, rest)) = data.split_first_chunk::<4>() else {
        return Err(DecodeError::truncated(Layer::Loopback, 4, data.len()));
    };
    let le = u32::from_le_bytes(*family);
    // Families are small numbers, so the wrong byte order shows as a value above 0xffff.
    let family = if le > 0xffff {
        u32::from_be_bytes(*family)
    } else {
        le
    };
    by_family(family, rest, snapped)
}

/// Decodes a `DLT_LOOP` frame (family in network byte order).
///
/// # Errors
///
/// Returns a truncated error at [`Layer::Loopback`], or the IP layer's error.
pub fn decode_loop(data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let Some((family, rest)) = data.split_first_chunk::<4>() else {
        return Err(DecodeError::truncated(Layer::Loopback, 4, data.len()));
    };
    by_family(u32::from_be_bytes(*family), rest, snapped)
}

fn by_family(family: u32, rest: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    if family == AF_INET {
        ipv4::decode(rest, snapped, None)
    } else if AF_INET6.contains(&family) {
        ipv6::decode(rest, snapped, None)
    } else {
        Ok(Outcome::Skipped(SkipKind::OtherAddressFamily))
    }
}
