//! Fuzz the pcap/pcapng reader, decoding every packet it yields.
//!
//! Run: `cargo +nightly fuzz run pcap_file` from `agent/`; seed the corpus with
//! `agent/tests/fixtures/pcap/*`.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use picket_agent::capture::{PacketSource, PcapFile};
use picket_agent::decode::decode_packet;

fuzz_target!(|data: &[u8]| {
    let Ok(mut source) = PcapFile::from_reader(Cursor::new(data.to_vec())) else {
        return;
    };
    // Each call consumes at least one block, so a bound on calls only guards against a bug.
    for _ in 0..100_000 {
        match source.next_packet() {
            Ok(Some(packet)) => {
                let _ = decode_packet(&packet);
            }
            Ok(None) | Err(_) => break,
        }
    }
});
