//! Replay benchmark: `cargo bench -p picket-agent --bench replay`.
//!
//! On a deterministic mixed capture (see `support/traffic.rs`) it prints:
//! - the floor: packets/s merely walking the pcap's records (reader only);
//! - replay: packets/s through the whole pipeline (decode → flow table → DNS → summaries,
//!   records serialised to JSON as `replay` writes them, and discarded), on one core, and its
//!   ratio to the floor;
//! - heap allocations per packet over the whole replay, and on the steady path (packets of
//!   flows that already exist), counted by a global allocator wrapper;
//! - bytes per active flow with 250 000 concurrent flows: by the flow table's own accounting
//!   (slots, index, expiry heap), by the heap the whole pipeline holds, and as peak RSS growth,
//!   measured in a fresh process (the bench runs itself with `--memory-phase`: this one keeps
//!   the heap its earlier phases freed, which hid the growth), whose peak is reset through
//!   `/proc/self/clear_refs` once its capture is in memory.
//!
//! `-- --write FILE` writes the mixed capture to FILE instead (for other tools).
//! `-- --packets N` changes its size (default 2 000 000), `-- --conversations N` how many
//! conversations are open at once (default 5 000; fewer keep the live flows in cache).
//! Nothing here is asserted: timings are reported, not tested.

#[path = "support/traffic.rs"]
mod traffic;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use picket_agent::capture::{PacketSource, PcapFile};
use picket_agent::pipeline::{Pipeline, PipelineConfig, drive};

/// Counts allocations and live bytes; forwards to the system allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to `System`, only counting on the side.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: usize = 5;

fn source(bytes: &Arc<[u8]>) -> PcapFile {
    PcapFile::from_reader(Cursor::new(Arc::clone(bytes))).expect("generated pcap opens")
}

/// Best of `ROUNDS` runs of `f`, in seconds.
fn best(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn replay(bytes: &Arc<[u8]>) -> u64 {
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut records = 0_u64;
    let mut line = Vec::with_capacity(1024);
    let mut emit = |r: picket_proto::v1::Record| {
        line.clear();
        picket_agent::record_json::write_record(&mut line, &r).expect("serialises");
        records += 1;
    };
    let mut src = source(bytes);
    drive(&mut src, &mut pipeline, &mut emit).expect("reads");
    pipeline.finish(&mut emit);
    records
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5); false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    if args.iter().any(|a| a == MEMORY_PHASE) {
        memory_phase();
        return;
    }
    let packets: u64 = flag("--packets").map_or(2_000_000, |v| v.parse().expect("--packets N"));
    let conversations: usize =
        flag("--conversations").map_or(5000, |v| v.parse().expect("--conversations N"));
    let mix = traffic::mixed(0x5eed, packets, conversations, 1_700_000_000_000_000, 5);
    if let Some(path) = flag("--write") {
        std::fs::write(&path, &mix.bytes).expect("writes");
        println!(
            "wrote {} packets ({} bytes) to {path}",
            mix.packets,
            mix.bytes.len()
        );
        return;
    }
    let bytes: Arc<[u8]> = mix.bytes.into();
    println!(
        "mixed capture: {} packets, {:.1} MiB, {conversations} concurrent conversations",
        mix.packets,
        bytes.len() as f64 / 1_048_576.0
    );

    let walked = best(|| {
        let mut src = source(&bytes);
        let mut n = 0_u64;
        while let Some(p) = src.next_packet().expect("reads") {
            n += u64::from(!p.data.is_empty());
        }
        assert_eq!(n, mix.packets);
    });
    let mut records = 0;
    let replayed = best(|| records = replay(&bytes));
    let n = mix.packets as f64;
    println!("floor (walk records):   {:>12.0} packets/s", n / walked);
    println!(
        "replay (full pipeline): {:>12.0} packets/s  ({records} records)",
        n / replayed
    );
    println!(
        "replay / floor time:    {:>12.2}x   (target: >= 3 M packets/s, within 2x of the floor)",
        replayed / walked
    );

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    replay(&bytes);
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "allocations, whole replay: {:.3} per packet ({allocs} total; new flows, DNS, summaries)",
        allocs as f64 / n
    );

    // Steady path: packets of flows that already exist.
    let (steady, opened) = traffic::many_open_flows(10_000, 50);
    let steady_bytes: Arc<[u8]> = steady.bytes.into();
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut src = source(&steady_bytes);
    let mut sink = |_r: picket_proto::v1::Record| {};
    for _ in 0..opened {
        let p = src.next_packet().expect("reads").expect("packet");
        pipeline.packet(&p, &mut sink);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut steady_packets = 0_u64;
    while let Some(p) = src.next_packet().expect("reads") {
        pipeline.packet(&p, &mut sink);
        steady_packets += 1;
    }
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "allocations, steady path: {:.6} per packet ({allocs} in {steady_packets} packets of 10 000 existing flows)",
        allocs as f64 / steady_packets as f64
    );
    drop(pipeline);

    // Memory with 250 000 concurrent flows, in a process of its own: this one holds the heap
    // the phases above freed, which would hide the flows' growth.
    let child = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg(MEMORY_PHASE)
            .stderr(std::process::Stdio::inherit())
            .output()
    });
    match child {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => println!("memory phase failed: {}", out.status),
        Err(e) => println!("memory phase could not start: {e}"),
    }
}

/// The flag that runs only [`memory_phase`], in the child process `main` starts.
const MEMORY_PHASE: &str = "--memory-phase";

/// Opens 250 000 concurrent flows in a fresh pipeline and prints the memory they take: by
/// the flow table's accounting, by the heap the pipeline holds, and as peak RSS growth.
fn memory_phase() {
    let mut sink = |_r: picket_proto::v1::Record| {};
    let (many, opened) = traffic::many_open_flows(250_000, 0);
    let many_bytes: Arc<[u8]> = many.bytes.into();
    let mut src = source(&many_bytes);
    let reset = reset_peak_rss();
    let rss_before = status_kib("VmRSS:");
    let live_before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    while let Some(p) = src.next_packet().expect("reads") {
        pipeline.packet(&p, &mut sink);
    }
    let live_after = LIVE_BYTES.load(Ordering::Relaxed);
    let flows = pipeline.active_flows();
    assert_eq!(u64::try_from(flows).expect("fits"), opened);
    let peak = peak_rss_kib();
    println!(
        "memory, {flows} concurrent flows: {:.0} bytes per flow (flow table accounting: slots, index, expiry heap)",
        pipeline.flow_table_bytes() as f64 / flows as f64,
    );
    println!(
        "memory, {flows} concurrent flows: {:.0} bytes per flow (heap held by the whole pipeline)",
        (live_after - live_before) as f64 / flows as f64,
    );
    if reset {
        println!(
            "memory, {flows} concurrent flows: peak RSS {} MiB in a fresh process, {} MiB of it before the first flow (the capture in memory), so {} MiB ({:.0} bytes per flow) for the flows",
            peak / 1024,
            rss_before / 1024,
            peak.saturating_sub(rss_before) / 1024,
            peak.saturating_sub(rss_before) as f64 * 1024.0 / flows as f64
        );
    } else {
        println!(
            "memory, {flows} concurrent flows: peak RSS {} MiB in a fresh process (its whole life: the peak could not be reset)",
            peak / 1024
        );
    }
}
