//! Replays a capture held in memory as the replay bench does, for profilers and A/B timing.
//!
//! `cargo run --release -p picket-agent --example replay_profile -- FILE [ROUNDS] [--floor]`
//!
//! Each round builds a fresh pipeline and runs every packet of FILE through it, records
//! written as `replay` writes them (JSON, then discarded), and prints the round's time. With
//! `--floor` it only walks the records, as the bench's floor does. Unlike the bench it does no
//! generating, allocation counting or memory phases, so `valgrind --tool=callgrind` and
//! `perf record` see the replay alone; the bench's capture comes from
//! `cargo bench -p picket-agent --bench replay -- --write FILE`.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use picket_agent::capture::{PacketSource, PcapFile};
use picket_agent::pipeline::{Pipeline, PipelineConfig, drive};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let floor = args.iter().any(|a| a == "--floor");
    let mut positional = args.iter().filter(|a| *a != "--floor");
    let path = positional
        .next()
        .ok_or("usage: replay_profile FILE [ROUNDS] [--floor]")?;
    let rounds: u32 = positional
        .next()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5);
    let bytes: Arc<[u8]> = std::fs::read(path)?.into();

    for _ in 0..rounds {
        let start = Instant::now();
        let mut source = PcapFile::from_reader(Cursor::new(Arc::clone(&bytes)))?;
        let mut count = 0_u64;
        if floor {
            while let Some(p) = source.next_packet()? {
                count += u64::from(!p.data.is_empty());
            }
        } else {
            let mut pipeline = Pipeline::new(PipelineConfig::default());
            let mut line = Vec::with_capacity(1024);
            let mut failed = None;
            let mut emit = |r: picket_proto::v1::Record| {
                line.clear();
                if let Err(e) = picket_agent::record_json::write_record(&mut line, &r) {
                    failed.get_or_insert(e);
                }
                count += 1;
            };
            drive(&mut source, &mut pipeline, &mut emit)?;
            pipeline.finish(&mut emit);
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        let what = if floor { "packets walked" } else { "records" };
        println!("{:.3} s  ({count} {what})", start.elapsed().as_secs_f64());
    }
    Ok(())
}
