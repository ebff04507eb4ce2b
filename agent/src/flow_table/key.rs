//! The canonical, direction-free identity of a flow.

use std::net::IpAddr;

/// One end of a flow: an address and a port (0 where the protocol has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// IP address.
    pub addr: IpAddr,
    /// Transport port, or the ICMP echo identifier, or 0.
    pub port: u16,
}

impl Endpoint {
    /// A packet's source and destination ends, with `ports` (source, destination) as read
    /// from its transport (or the ICMP echo id in both).
    pub fn pair(
        packet: &crate::decode::Decoded<'_>,
        (src_port, dst_port): (u16, u16),
    ) -> (Self, Self) {
        let src = Self {
            addr: packet.src,
            port: src_port,
        };
        let dst = Self {
            addr: packet.dst,
            port: dst_port,
        };
        (src, dst)
    }
}

/// Which end of a [`FlowKey`] an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The endpoint that sorts first.
    Lower,
    /// The endpoint that sorts second.
    Upper,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Self {
        match self {
            Self::Lower => Self::Upper,
            Self::Upper => Self::Lower,
        }
    }

    /// 0 for lower, 1 for upper: an index into per-side arrays.
    pub(super) fn index(self) -> usize {
        match self {
            Self::Lower => 0,
            Self::Upper => 1,
        }
    }
}

/// A bidirectional 5-tuple: both directions of a conversation map to the same key because the
/// endpoints are stored in sorted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    /// IP protocol number.
    pub protocol: u8,
    /// The endpoint that sorts first (by address, then port).
    pub lower: Endpoint,
    /// The endpoint that sorts second.
    pub upper: Endpoint,
}

impl FlowKey {
    /// The key of a packet from `src` to `dst`, and which side of the key `src` is.
    pub fn new(protocol: u8, src: Endpoint, dst: Endpoint) -> (Self, Side) {
        if src <= dst {
            (
                Self {
                    protocol,
                    lower: src,
                    upper: dst,
                },
                Side::Lower,
            )
        } else {
            (
                Self {
                    protocol,
                    lower: dst,
                    upper: src,
                },
                Side::Upper,
            )
        }
    }

    /// The endpoint on `side`.
    pub fn endpoint(&self, side: Side) -> Endpoint {
        match side {
            Side::Lower => self.lower,
            Side::Upper => self.upper,
        }
    }
}
