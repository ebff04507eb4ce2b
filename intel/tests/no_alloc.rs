//! Hot-path lookups allocate nothing: counted with an allocator that tallies this thread's
//! allocations. (The library forbids `unsafe`; this test binary needs it only to install the
//! counting allocator, which forwards everything to the system allocator.)

use picket_intel::{Category, ListKind, ListOptions, SnapshotBuilder, canary_list, parse_list};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; the counter is a const-initialised
// thread-local `Cell`, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn ip_and_ascii_name_lookups_allocate_nothing_hit_or_miss() {
    let threat = parse_list(
        "t",
        b"45.95.19.50\n45.95.20.0/24\n2a06:e480::/29\nevil.example\n",
        &ListOptions::new("t", ListKind::Threat).category(Category::C2),
    )
    .expect("parse");
    let trusted = parse_list(
        "ok",
        b"8.8.8.8\ncorp.example\n",
        &ListOptions::new("ok", ListKind::Trusted),
    )
    .expect("parse");
    let mut b = SnapshotBuilder::new();
    b.add_list(threat).add_list(trusted).add_list(canary_list());
    let snap = b.build(1).expect("build");
    let ips: Vec<IpAddr> = [
        "45.95.19.50",
        "45.95.20.9",
        "2a06:e480::1",
        "8.8.8.8",
        "9.9.9.9",
        "::ffff:45.95.19.50",
    ]
    .iter()
    .map(|s| s.parse().expect("ip"))
    .collect();
    let names = [
        "www.evil.example",
        "EVIL.example.",
        "x.corp.example",
        "nothing.example",
        "guarddutyc2activityb.com",
    ];

    // Warm up once so lazily initialised runtime state is not counted.
    let mut hits = 0;
    for ip in &ips {
        hits += usize::from(snap.match_ip(*ip).is_some());
    }
    assert_eq!(hits, 4);

    let n = allocations_during(|| {
        for _ in 0..100 {
            for ip in &ips {
                std::hint::black_box(snap.lookup_ip(*ip));
            }
            for name in names {
                std::hint::black_box(snap.lookup_domain(name));
            }
        }
    });
    assert_eq!(n, 0);

    // The counter works: a lookup of a Unicode name converts it, which allocates.
    assert!(
        allocations_during(|| {
            std::hint::black_box(snap.lookup_domain("bücher.example"));
        }) > 0
    );
}
