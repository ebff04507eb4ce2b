//! UDP headers (RFC 768): ports and the length that bounds the payload.

use super::{DecodeError, ErrorKind, Layer, Transport, be16};

/// Decodes a UDP header; returns its fields and the datagram's payload.
///
/// `partial` says the bytes are only part of the datagram (a first fragment or a snapped
/// capture), so a length past them is expected.
///
/// # Errors
///
/// Returns a truncated error under 8 bytes, [`ErrorKind::LengthTooShort`] for a length below
/// 8, and [`ErrorKind::LengthBeyondCapture`] for a length past a whole datagram.
#[inline]
pub fn decode(data: &[u8], partial: bool) -> Result<(Transport, &[u8]), DecodeError> {
    let Some((&[s0, s1, d0, d1, l0, l1, _, _], rest)) = data.split_first_chunk::<8>() else {
        return Err(DecodeError::truncated(Layer::Udp, 8, data.len()));
    };
    let length = usize::from(be16([l0, l1]));
    let error = |kind| DecodeError {
        layer: Layer::Udp,
        kind,
    };
    if length < 8 {
        return Err(error(ErrorKind::LengthTooShort {
            claimed: length,
            minimum: 8,
        }));
    }
    if length > data.len() && !partial {
        return Err(error(ErrorKind::LengthBeyondCapture {
            claimed: length,
            captured: data.len(),
        }));
    }
    let payload = rest.get(..length.saturating_sub(8)).unwrap_or(rest);
    Ok((
        Transport::Udp {
            src_port: be16([s0, s1]),
            dst_port: be16([d0, d1]),
        },
        payload,
    ))
}
