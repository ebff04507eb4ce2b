//! Batches as the ack path reads them: a batch stays the bytes the agent sent (in a
//! [`picket_proto::RawAgentFrame`]) until after it is stored and acked, and the ack path looks
//! only at what it needs (seq, lane and the kind of each record) through [`BatchHeader`],
//! without building the records.
//!
//! These types decode the same wire bytes as `picket.v1.Batch` (a length-delimited field reads
//! the same as a message or as bytes); prost's derive does the framing checks, so a batch whose
//! framing is damaged is refused before it is stored.

/// `picket.v1.Batch` with each record reduced to its kind: decoding checks the framing of the
/// batch and of every record (tags, lengths, varints) but allocates only the kinds vector.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchHeader {
    /// `Batch.seq`.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// `Batch.records`, kinds only.
    #[prost(message, repeated, tag = "2")]
    pub records: Vec<RecordKind>,
    /// `Batch.created_at_ms`.
    #[prost(int64, tag = "3")]
    pub created_at_ms: i64,
    /// `Batch.lane`.
    #[prost(int32, tag = "4")]
    pub lane: i32,
}

/// `picket.v1.Record` reduced to which of its oneof fields is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordKind {
    /// The set field, its contents skipped.
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4")]
    pub record: Option<Kind>,
}

/// The fields of `Record.record`, tagged as in records.proto, contents skipped.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// `Record.flow`.
    #[prost(message, tag = "1")]
    Flow(Skipped),
    /// `Record.dns`.
    #[prost(message, tag = "2")]
    Dns(Skipped),
    /// `Record.intel_hit`.
    #[prost(message, tag = "3")]
    IntelHit(Skipped),
    /// `Record.host_stats`.
    #[prost(message, tag = "4")]
    HostStats(Skipped),
}

/// A message whose fields are all skipped (zero-sized).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Skipped {}

impl RecordKind {
    /// The same name [`picket_proto::record_kind`] gives the decoded record.
    pub fn name(&self) -> &'static str {
        match self.record {
            Some(Kind::Flow(_)) => "flow",
            Some(Kind::Dns(_)) => "dns",
            Some(Kind::IntelHit(_)) => "intel_hit",
            Some(Kind::HostStats(_)) => "host_stats",
            None => "empty",
        }
    }
}

impl BatchHeader {
    /// Records per kind, by the kinds' static names (no allocation per record).
    pub fn kind_counts(&self) -> Vec<(&'static str, u64)> {
        let mut kinds: Vec<(&'static str, u64)> = Vec::with_capacity(4);
        for r in &self.records {
            let kind = r.name();
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_proto::v1::{Batch, DnsSummary, FlowSummary, HostStats, IntelHit, Record, record};
    use prost::Message;

    fn batch() -> Batch {
        let r = |r| Record { record: Some(r) };
        Batch {
            seq: 42,
            records: vec![
                r(record::Record::Flow(FlowSummary {
                    remote_addr: "203.0.113.9".into(),
                    connections: 3,
                    ..FlowSummary::default()
                })),
                r(record::Record::Dns(DnsSummary::default())),
                r(record::Record::Flow(FlowSummary::default())),
                r(record::Record::IntelHit(IntelHit {
                    indicator: "x.example".into(),
                    ..IntelHit::default()
                })),
                r(record::Record::HostStats(HostStats {
                    packets: 7,
                    ..HostStats::default()
                })),
                Record { record: None },
            ],
            created_at_ms: -5,
            lane: 1,
        }
    }

    #[test]
    fn the_header_reads_what_a_full_decode_reads() {
        let b = batch();
        let bytes = b.encode_to_vec();
        let h = BatchHeader::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            (h.seq, h.created_at_ms, h.lane),
            (b.seq, b.created_at_ms, b.lane)
        );
        let created = picket_proto::BatchSealTime::decode(bytes.as_slice()).unwrap();
        assert_eq!(created.created_at_ms, b.created_at_ms);
        let names: Vec<&str> = h.records.iter().map(RecordKind::name).collect();
        let expected: Vec<&str> = b.records.iter().map(picket_proto::record_kind).collect();
        assert_eq!(names, expected);
        assert_eq!(
            h.kind_counts(),
            vec![
                ("flow", 2),
                ("dns", 1),
                ("intel_hit", 1),
                ("host_stats", 1),
                ("empty", 1)
            ]
        );
    }

    #[test]
    fn damaged_record_framing_is_refused() {
        let mut bytes = Batch {
            seq: 2,
            ..Batch::default()
        }
        .encode_to_vec();
        // A record whose inner length claims more bytes than it holds.
        bytes.extend_from_slice(&[0x12, 0x05, 0x0a, 0x09, 0x01]);
        assert!(BatchHeader::decode(bytes.as_slice()).is_err());
    }
}
