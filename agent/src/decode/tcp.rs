//! TCP headers (RFC 9293): ports, flags and the data offset that locates the payload.

use super::{DecodeError, ErrorKind, Layer, TcpFlags, Transport, be16};

/// Decodes a TCP header; returns its fields and the segment's payload.
///
/// # Errors
///
/// Returns a truncated error when fewer than 20 bytes or fewer than the data offset remain,
/// and [`ErrorKind::BadHeaderLength`] when the data offset is below 5 words.
#[inline]
pub fn decode(data: &[u8]) -> Result<(Transport, &[u8]), DecodeError> {
    let Some((header, _)) = data.split_first_chunk::<20>() else {
        return Err(DecodeError::truncated(Layer::Tcp, 20, data.len()));
    };
    let [
        s0,
        s1,
        d0,
        d1,
        q0,
        q1,
        q2,
        q3,
        _,
        _,
        _,
        _,
        offset,
        flags,
        ..,
    ] = *header;
    let words = offset >> 4;
    if words < 5 {
        return Err(DecodeError {
            layer: Layer::Tcp,
            kind: ErrorKind::BadHeaderLength(words),
        });
    }
    let header_len = usize::from(words) * 4;
    let Some(payload) = data.get(header_len..) else {
        return Err(DecodeError::truncated(Layer::Tcp, header_len, data.len()));
    };
    let transport = Transport::Tcp {
        src_port: be16([s0, s1]),
        dst_port: be16([d0, d1]),
        flags: TcpFlags(flags),
        seq: u32::from_be_bytes([q0, q1, q2, q3]),
    };
    Ok((transport, payload))
}
