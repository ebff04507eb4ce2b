//! Fuzz DNS parsing and TCP reassembly: the input is cut into segments of one DNS-over-TCP
//! stream, and also parsed whole as one UDP message.
//!
//! Run: `cargo +nightly fuzz run dns` from `agent/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket_agent::decode::TcpFlags;
use picket_agent::dns::{TcpStreams, parse};
use picket_agent::flow_table::Endpoint;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
    let src = Endpoint { addr: [10, 0, 0, 1].into(), port: 40000 };
    let dst = Endpoint { addr: [10, 0, 0, 2].into(), port: 53 };
    let mut streams = TcpStreams::new(2);
    let mut seq = 1_u32;
    // The first byte of each chunk says how long the chunk is.
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first() {
        let take = usize::from(*len).min(tail.len());
        let (segment, after) = tail.split_at(take);
        streams.push(src, dst, seq, TcpFlags(TcpFlags::ACK), segment, |msg| {
            let _ = parse(msg);
        });
        seq = seq.wrapping_add(u32::try_from(segment.len()).unwrap_or(0));
        rest = after;
    }
});
