//! Ethernet II frames and their 802.1Q / 802.1ad (QinQ) VLAN tags.

use super::{DecodeError, ErrorKind, Layer, Outcome, be16, ethertype, network};

/// Most VLAN tags read before giving up: QinQ uses two, and nothing legitimate stacks more
/// than a few; the cap stops a frame of repeated tags from being walked to its end.
pub const MAX_VLAN_TAGS: usize = 4;

/// Decodes an Ethernet frame: destination, source, ethertype, then any VLAN tags.
///
/// # Errors
///
/// Returns a truncated-header error at [`Layer::Ethernet`] or [`Layer::Vlan`], too many VLAN
/// tags, or the error of the network layer.
#[inline]
pub fn decode(data: &[u8], snapped: bool) -> Result<Outcome<'_>, DecodeError> {
    let Some((header, rest)) = data.split_first_chunk::<14>() else {
        return Err(DecodeError::truncated(Layer::Ethernet, 14, data.len()));
    };
    let [.., t0, t1] = *header;
    let (ethertype, vlan, rest) = vlan_tags(be16([t0, t1]), rest)?;
    network(ethertype, rest, snapped, vlan)
}

/// Reads VLAN tags while the ethertype says one follows; returns the inner ethertype, the
/// outermost VLAN id and the bytes after the last tag.
///
/// Shared with Linux cooked captures, whose protocol field can also announce a tag.
///
/// # Errors
///
/// Returns a truncated error at [`Layer::Vlan`] or [`ErrorKind::TooManyVlanTags`].
#[inline]
pub fn vlan_tags(
    mut ethertype: u16,
    mut rest: &[u8],
) -> Result<(u16, Option<u16>, &[u8]), DecodeError> {
    let mut outer = None;
    let mut tags = 0_usize;
    while matches!(
        ethertype,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_LEGACY
    ) {
        tags = tags.saturating_add(1);
        if tags > MAX_VLAN_TAGS {
            return Err(DecodeError {
                layer: Layer::Vlan,
                kind: ErrorKind::TooManyVlanTags,
            });
        }
        let Some((&[tci0, tci1, t0, t1], after)) = rest.split_first_chunk::<4>() else {
            return Err(DecodeError::truncated(Layer::Vlan, 4, rest.len()));
        };
        // The low 12 bits of the tag control information are the VLAN id.
        outer.get_or_insert(be16([tci0, tci1]) & 0x0fff);
        ethertype = be16([t0, t1]);
        rest = after;
    }
    Ok((ethertype, outer, rest))
}
