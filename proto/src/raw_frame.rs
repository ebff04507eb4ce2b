//! `picket.v1.AgentFrame` with its batch left encoded, for the two ends that only move a batch:
//! the agent sends the bytes its outbox stored, and the aggregator's ack path stores the bytes it
//! received. A length-delimited field reads and writes the same whether it holds a message or
//! bytes, so this type and `AgentFrame` are identical on the wire; prost's derive still checks
//! the frame's own framing.

use crate::v1::{Heartbeat, Hello};

/// `picket.v1.AgentFrame` with the batch kept as its encoded bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawAgentFrame {
    /// Which frame.
    #[prost(oneof = "RawFrameKind", tags = "1, 2, 3")]
    pub frame: Option<RawFrameKind>,
}

/// The kinds of [`RawAgentFrame`], tagged as in `AgentFrame.frame`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RawFrameKind {
    /// `AgentFrame.hello`.
    #[prost(message, tag = "1")]
    Hello(Hello),
    /// `AgentFrame.batch`, still encoded (a `picket.v1.Batch`).
    #[prost(bytes = "bytes", tag = "2")]
    Batch(bytes::Bytes),
    /// `AgentFrame.heartbeat`.
    #[prost(message, tag = "3")]
    Heartbeat(Heartbeat),
}

/// `picket.v1.Batch` read for when the agent sealed it: the records (field 2) are skipped by
/// their length instead of built, so reading a stored batch's age allocates nothing.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct BatchSealTime {
    /// `Batch.created_at_ms`.
    #[prost(int64, tag = "3")]
    pub created_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{AgentFrame, Batch, HostStats, Lane, Record, agent_frame, record};
    use prost::Message;

    #[test]
    fn a_raw_frame_is_byte_identical_to_the_agent_frame_it_stands_for_both_ways() {
        let batch = Batch {
            seq: 7,
            records: vec![Record {
                record: Some(record::Record::HostStats(HostStats {
                    packets: 42,
                    ..HostStats::default()
                })),
            }],
            created_at_ms: 1_700_000_000_000,
            lane: Lane::Priority as i32,
        };
        let raw = RawAgentFrame {
            frame: Some(RawFrameKind::Batch(batch.encode_to_vec().into())),
        }
        .encode_to_vec();
        let full = AgentFrame {
            frame: Some(agent_frame::Frame::Batch(batch.clone())),
        };
        assert_eq!(AgentFrame::decode(raw.as_slice()).unwrap(), full);
        assert_eq!(raw, full.encode_to_vec());
        let Some(RawFrameKind::Batch(bytes)) = RawAgentFrame::decode(raw.as_slice()).unwrap().frame
        else {
            panic!("expected a batch");
        };
        assert_eq!(Batch::decode(bytes).unwrap(), batch);

        let hb = Heartbeat {
            sent_at_ms: 5,
            health: None,
        };
        let raw = RawAgentFrame {
            frame: Some(RawFrameKind::Heartbeat(hb.clone())),
        }
        .encode_to_vec();
        assert_eq!(
            AgentFrame::decode(raw.as_slice()).unwrap(),
            AgentFrame {
                frame: Some(agent_frame::Frame::Heartbeat(hb))
            }
        );
    }
}
