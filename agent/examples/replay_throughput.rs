//! Measures capture → decode → flow table throughput on a capture file held in memory.
//!
//! `cargo run --release -p picket-agent --example replay_throughput -- FILE [ROUNDS]`
//!
//! Reads the file once, then replays it ROUNDS times (default 200) through `PcapFile`, the
//! decoder and a flow table, and prints packets per second for decode alone and for the
//! whole path. Timestamps are shifted per round so flows expire as they would in a longer
//! capture.

use std::io::Cursor;
use std::time::Instant;

use picket_agent::capture::{PacketSource, PcapFile};
use picket_agent::decode::{DecodeStats, Outcome, decode_packet};
use picket_agent::flow_table::{FlowTable, FlowTableConfig, LocalNets};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: replay_throughput FILE [ROUNDS]")?;
    let rounds: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(200);
    let bytes = std::fs::read(&path)?;

    let start = Instant::now();
    let mut stats = DecodeStats::default();
    let mut packets = 0_u64;
    for _ in 0..rounds {
        let mut source = PcapFile::from_reader(Cursor::new(bytes.clone()))?;
        while let Some(p) = source.next_packet()? {
            stats.record(&decode_packet(&p));
            packets += 1;
        }
    }
    let decode_secs = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut table = FlowTable::new(FlowTableConfig::default(), LocalNets::default());
    let mut out = Vec::new();
    let mut records = 0_usize;
    for round in 0..rounds {
        let shift = u64::from(round) * 3_600_000_000_000;
        let mut source = PcapFile::from_reader(Cursor::new(bytes.clone()))?;
        while let Some(p) = source.next_packet()? {
            let ts = p.ts.saturating_add_nanos(shift);
            if let Ok(Outcome::Decoded(d)) = decode_packet(&p) {
                table.observe(ts, &d, &mut out);
            }
            records += out.len();
            out.clear();
        }
    }
    table.flush(&mut out);
    records += out.len();
    let flow_secs = start.elapsed().as_secs_f64();

    let per_round = packets / u64::from(rounds.max(1));
    println!("{path}: {per_round} packets x {rounds} rounds");
    println!(
        "read+decode:            {:>12.0} packets/s",
        packets as f64 / decode_secs
    );
    println!(
        "read+decode+flow table: {:>12.0} packets/s ({records} records)",
        packets as f64 / flow_secs
    );
    println!(
        "decoded {} errors {} skipped {}",
        stats.decoded,
        stats.total_errors(),
        stats.total_skipped()
    );
    Ok(())
}
