//! What the flow table hands out when a flow (or an interval of one) is done.

use picket_proto::v1::Direction;

use super::key::{Endpoint, FlowKey};
use crate::capture::Timestamp;
use crate::decode::AppProtocol;

/// Packets, bytes and TCP flags sent by one end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowCounters {
    /// Packets sent.
    pub packets: u64,
    /// IP bytes sent (IP total length, as VPC Flow Logs count).
    pub bytes: u64,
    /// OR of the TCP flags sent.
    pub tcp_flags: u8,
}

/// Why a record was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Nothing was seen for the idle timeout; the flow is over.
    Idle,
    /// The flow reached the active timeout; this is an interim record and the flow goes on.
    Active,
    /// The table was full and this flow was the closest to expiring.
    Evicted,
    /// The caller asked for every flow (end of a replay, shutdown).
    Flushed,
}

impl EndReason {
    /// A fixed label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Active => "active",
            Self::Evicted => "evicted",
            Self::Flushed => "flushed",
        }
    }
}

/// One flow's activity over one interval: from its first packet (or its previous interim
/// record) to its last packet before the record was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow's canonical key.
    pub key: FlowKey,
    /// The end that opened the flow (sent the SYN, the request, the first packet).
    pub initiator: Endpoint,
    /// The end that was contacted.
    pub responder: Endpoint,
    /// Ingress when the responder is the host, egress when the initiator is, unspecified when
    /// neither or both could be told (see [`LocalNets`](super::LocalNets)).
    pub direction: Direction,
    /// First packet of this interval.
    pub start: Timestamp,
    /// Last packet of this interval.
    pub end: Timestamp,
    /// First packet of the whole flow (earlier than `start` for later interim records).
    pub flow_start: Timestamp,
    /// Initiator → responder.
    pub forward: FlowCounters,
    /// Responder → initiator.
    pub reverse: FlowCounters,
    /// SYNs without ACK sent by the initiator in this interval.
    pub syns: u32,
    /// Packets with RST, either way, in this interval.
    pub resets: u32,
    /// Whether the responder ever sent a packet, in this interval or an earlier one.
    pub answered: bool,
    /// The first ICMP type and code the initiator sent, for ICMP flows.
    pub icmp: Option<(u8, u8)>,
    /// The application protocol recognised from the flow's first payload bytes, if any.
    pub app: Option<AppProtocol>,
    /// Why the record was emitted.
    pub reason: EndReason,
    /// 0 for a flow's first record, counting up with each interim record.
    pub sequence: u32,
}

impl FlowRecord {
    /// Whether the initiator sent a SYN that the responder never answered at all.
    pub fn unanswered_syn(&self) -> bool {
        self.syns > 0 && !self.answered
    }

    /// The host's end, when the direction is known.
    pub fn local(&self) -> Option<Endpoint> {
        match self.direction {
            Direction::Egress => Some(self.initiator),
            Direction::Ingress => Some(self.responder),
            Direction::Unspecified => None,
        }
    }

    /// The other end, when the direction is known.
    pub fn remote(&self) -> Option<Endpoint> {
        match self.direction {
            Direction::Egress => Some(self.responder),
            Direction::Ingress => Some(self.initiator),
            Direction::Unspecified => None,
        }
    }
}
