//! Matcher benchmark: a plain `main` (run with `cargo bench -p picket-intel`) that prints figures.
//!
//! Generates 1,000,000 mixed indicators deterministically, then reports compile time, encode and
//! decode time, bytes per indicator in memory and encoded, and single-core lookup rates for IPv4
//! (random addresses, mostly misses) and domains (with the parent-name walk), each beside a naive
//! `HashSet` baseline measured in the same run. Figures only: nothing here asserts a timing.

use picket_intel::reserved::range_of;
use picket_intel::{
    Category, Indicator, IndicatorValue, ListKind, ParsedList, Snapshot, SnapshotBuilder,
};
use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

const INDICATORS: usize = 1_000_000;
const IP_QUERIES: usize = 10_000_000;
const NAME_QUERIES: usize = 2_000_000;
/// Each rate is the best of this many runs: the machine is shared, and the best run is the one
/// least disturbed by other work.
const RUNS: usize = 5;

/// Measures the time this thread spent on a CPU (from `/proc/thread-self/schedstat`), or wall
/// time where that file is missing: on a shared, loaded machine the time a run spends waiting
/// for a core is not the code's cost, and counting it made runs differ by 2x.
struct Timer {
    wall: Instant,
    cpu: Option<u64>,
}

/// Nanoseconds this thread has run on a CPU, if the kernel reports it.
fn on_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Timer {
    fn start() -> Self {
        Timer {
            cpu: on_cpu_ns(),
            wall: Instant::now(),
        }
    }

    /// Seconds since `start`: on-CPU time if available, else wall time.
    fn secs(&self) -> f64 {
        let wall = self.wall.elapsed().as_secs_f64();
        match (self.cpu, on_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => wall,
        }
    }
}

/// Runs `f` `RUNS` times; returns the shortest time in seconds and the last result.
fn best_of(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::INFINITY;
    let mut out = 0;
    for _ in 0..RUNS {
        let t = Timer::start();
        out = f();
        best = best.min(t.secs());
    }
    (best, out)
}

/// SplitMix64: a tiny deterministic generator, so runs compare like with like.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn public_v4(&mut self) -> Ipv4Addr {
        loop {
            let a = Ipv4Addr::from(self.next() as u32);
            if range_of(IpAddr::V4(a)).is_none() {
                return a;
            }
        }
    }

    fn label(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

const TLDS: &[&str] = &["com", "net", "org", "info", "ru", "xyz", "io", "cn"];

fn generate(rng: &mut Rng) -> (Vec<ParsedList>, Vec<u32>, Vec<String>) {
    let categories = [
        Category::C2,
        Category::Crypto,
        Category::Phishing,
        Category::Custom,
    ];
    let mut lists: Vec<ParsedList> = (0..4)
        .map(|i| ParsedList::new(format!("feed-{i}"), ListKind::Threat))
        .collect();
    let mut v4_singles = Vec::new();
    let mut names = Vec::new();
    for i in 0..INDICATORS {
        let roll = rng.below(100);
        let value = if roll < 40 {
            let a = rng.public_v4();
            v4_singles.push(u32::from(a));
            IndicatorValue::Net(ipnet::IpNet::from(IpAddr::V4(a)))
        } else if roll < 50 {
            // Feeds list mostly small networks (DShield /24s, iprep and DROP blocks /13-/24);
            // /20-/30 keeps random traffic mostly missing, as real traffic does.
            let len = 20 + rng.below(11) as u8;
            let net = ipnet::Ipv4Net::new(rng.public_v4(), len).map(|n| n.trunc());
            IndicatorValue::Net(ipnet::IpNet::V4(net.unwrap_or_default()))
        } else if roll < 60 {
            let a = Ipv6Addr::from(
                (0x2a00u128 << 112) | u128::from(rng.next()) << 48 | u128::from(rng.next() as u16),
            );
            let len = if rng.below(2) == 0 { 128 } else { 48 };
            let net = ipnet::Ipv6Net::new(a, len).map(|n| n.trunc());
            IndicatorValue::Net(ipnet::IpNet::V6(net.unwrap_or_default()))
        } else {
            let tld = TLDS[rng.below(TLDS.len() as u64) as usize];
            let len = 6 + rng.below(10) as usize;
            let name = if rng.below(4) == 0 {
                let sub_len = 3 + rng.below(5) as usize;
                let sub = rng.label(sub_len);
                format!("{sub}.{}.{tld}", rng.label(len))
            } else {
                format!("{}.{tld}", rng.label(len))
            };
            names.push(name.clone());
            IndicatorValue::Domain(name)
        };
        let list = i % lists.len();
        lists[list].indicators.push(Indicator {
            value,
            category: categories[list],
            source: format!("source-{list}"),
            description: format!("generated {}", rng.below(16)),
            line: u32::try_from(i).unwrap_or(u32::MAX),
        });
    }
    let mut trusted = ParsedList::new("trusted", ListKind::Trusted);
    for _ in 0..2_000 {
        let a = rng.public_v4();
        trusted.indicators.push(Indicator {
            value: IndicatorValue::Net(ipnet::IpNet::from(IpAddr::V4(a))),
            category: Category::Custom,
            source: "ops".into(),
            description: String::new(),
            line: 0,
        });
    }
    lists.push(trusted);
    lists.push(picket_intel::canary_list());
    (lists, v4_singles, names)
}

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs / 1e6
}

fn main() {
    let mut rng = Rng(0x5049_434b_4554);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {} (times are this thread's on-CPU time where the kernel reports it)",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let t = Instant::now();
    let (lists, v4_singles, names) = generate(&mut rng);
    println!(
        "generated {INDICATORS} indicators (+2,000 trusted, +6 canary) in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // Compile time is the best of three builds from identical input (copies made untimed).
    let mut compile = f64::INFINITY;
    let mut worst = 0f64;
    let mut built = None;
    for _ in 0..3 {
        let mut builder = SnapshotBuilder::new();
        for l in &lists {
            builder.add_list(l.clone());
        }
        let t = Timer::start();
        let snap = builder.build(1).expect("build");
        let secs = t.secs();
        compile = compile.min(secs);
        worst = worst.max(secs);
        built = Some(snap);
    }
    drop(lists);
    let snap = built.expect("three builds ran");
    let count = snap.indicator_count();
    let (v4_ranges, v6_ranges) = snap.range_counts();
    println!(
        "compile: {compile:.3} s best of 3 (worst {worst:.3} s) for {count} rows ({v4_ranges} IPv4 ranges, {v6_ranges} IPv6 ranges)  [target <= 2 s]"
    );

    let t = Timer::start();
    let bytes = snap.to_bytes();
    let encode = t.secs();
    let t = Timer::start();
    let decoded = Snapshot::from_bytes(&bytes).expect("decode");
    let decode = t.secs();
    assert_eq!(
        decoded.content_hash(),
        snap.content_hash(),
        "round trip changed the content"
    );
    println!("encode: {encode:.3} s, decode+validate+index: {decode:.3} s");
    println!(
        "memory: {:.1} bytes/indicator ({:.1} MiB heap)  [target <= 48]",
        snap.heap_bytes() as f64 / count as f64,
        snap.heap_bytes() as f64 / 1048576.0
    );
    println!(
        "encoding: {:.1} bytes/indicator ({:.1} MiB)  [target <= 48]",
        bytes.len() as f64 / count as f64,
        bytes.len() as f64 / 1048576.0
    );

    // IPv4: random addresses, so nearly all miss, as real traffic does; then listed addresses,
    // so every lookup builds a full hit. Generated even when skipped (`cargo bench -p
    // picket-intel -- domains`), so the domain queries that follow stay the same.
    let queries: Vec<u32> = (0..IP_QUERIES).map(|_| rng.next() as u32).collect();
    let hit_queries: Vec<u32> = (0..IP_QUERIES / 4)
        .map(|_| v4_singles[rng.below(v4_singles.len() as u64) as usize])
        .collect();
    if !std::env::args().any(|a| a == "domains") {
        ipv4_rates(&snap, &queries, &hit_queries, &v4_singles);
    }

    // Domains: half are sub-names of listed names (found by the parent walk), half unlisted.
    let name_queries: Vec<String> = (0..NAME_QUERIES)
        .map(|i| {
            if i % 2 == 0 {
                let n = &names[rng.below(names.len() as u64) as usize];
                format!("www.{n}")
            } else {
                let tld = TLDS[rng.below(TLDS.len() as u64) as usize];
                format!("{}.{}.{tld}", rng.label(3), rng.label(8))
            }
        })
        .collect();
    // Queries packed into one buffer, as a DNS parser leaves a name in the packet it just read
    // (hot in cache); the lookup structures are what a lookup should pay for. The same queries as
    // separate heap strings follow, as earlier runs measured them: there each query's own bytes
    // are a cache miss too, for both matchers.
    let packed = Packed::new(&name_queries);
    let naive: HashSet<String> = names.iter().cloned().collect();
    let all: Vec<usize> = (0..NAME_QUERIES).collect();
    let ((ours, dhits), (base, naive_dhits)) = domain_rates(
        &all,
        |i| snap.match_domain(packed.get(i)).is_some(),
        |i| naive_walk(&naive, packed.get(i)),
    );
    println!(
        "domain lookups (suffix walk, {:.1}% hit): {ours:.1} M/s; naive HashSet<String> walk: {base:.1} M/s ({:.1}% hit); ratio {:.2}x  [target >= 5 M/s]",
        100.0 * dhits as f64 / NAME_QUERIES as f64,
        100.0 * naive_dhits as f64 / NAME_QUERIES as f64,
        ours / base
    );
    for (label, parity) in [("listed sub-names only", 0), ("unlisted names only", 1)] {
        let subset: Vec<usize> = (parity..NAME_QUERIES).step_by(2).collect();
        let ((ours, n), (base, _)) = domain_rates(
            &subset,
            |i| snap.match_domain(packed.get(i)).is_some(),
            |i| naive_walk(&naive, packed.get(i)),
        );
        println!(
            "domain lookups, {label} ({:.1}% hit): {ours:.1} M/s; naive: {base:.1} M/s; ratio {:.2}x",
            100.0 * n as f64 / subset.len() as f64,
            ours / base
        );
    }
    let ((ours, _), (base, _)) = domain_rates(
        &all,
        |i| snap.match_domain(&name_queries[i]).is_some(),
        |i| naive_walk(&naive, &name_queries[i]),
    );
    println!(
        "domain lookups, mixed, each query a separate heap string: {ours:.1} M/s; naive: {base:.1} M/s; ratio {:.2}x",
        ours / base
    );
}

/// Query names packed back to back in one buffer.
struct Packed {
    text: String,
    ends: Vec<usize>,
}

impl Packed {
    fn new(names: &[String]) -> Self {
        let mut text = String::with_capacity(names.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(names.len());
        for n in names {
            text.push_str(n);
            ends.push(text.len());
        }
        Packed { text, ends }
    }

    fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        black_box(&self.text[start..self.ends[i]])
    }
}

/// Best-of-`RUNS` rates (M/s) of `ours` and `naive` over the query indexes `which`, and their
/// hit counts. Runs alternate between the two, so load from other work on the machine falls on
/// both alike and the ratio stays meaningful.
fn domain_rates(
    which: &[usize],
    ours: impl Fn(usize) -> bool,
    naive: impl Fn(usize) -> bool,
) -> ((f64, usize), (f64, usize)) {
    let mut best = [f64::INFINITY; 2];
    let mut hits = [0usize; 2];
    for _ in 0..RUNS {
        for (k, f) in [&ours as &dyn Fn(usize) -> bool, &naive]
            .into_iter()
            .enumerate()
        {
            let t = Timer::start();
            hits[k] = which.iter().filter(|&&i| f(i)).count();
            best[k] = best[k].min(t.secs());
        }
    }
    (
        (rate(which.len(), best[0]), hits[0]),
        (rate(which.len(), best[1]), hits[1]),
    )
}

/// What a straightforward implementation does: lower-case a copy, try each parent.
fn naive_walk(set: &HashSet<String>, q: &str) -> bool {
    let lower = black_box(q).trim_end_matches('.').to_ascii_lowercase();
    let mut s = lower.as_str();
    loop {
        if set.contains(s) {
            return true;
        }
        match s.split_once('.') {
            Some((_, rest)) => s = rest,
            None => return false,
        }
    }
}

/// Prints IPv4 lookup rates: random addresses beside a naive set, then listed addresses.
fn ipv4_rates(snap: &Snapshot, queries: &[u32], hit_queries: &[u32], v4_singles: &[u32]) {
    let (secs, hits) = best_of(|| {
        queries
            .iter()
            .filter(|&&q| {
                snap.match_ip(IpAddr::V4(Ipv4Addr::from(black_box(q))))
                    .is_some()
            })
            .count()
    });
    let ours = rate(IP_QUERIES, secs);
    let naive: HashSet<u32> = v4_singles.iter().copied().collect();
    let (secs, naive_hits) = best_of(|| {
        queries
            .iter()
            .filter(|&&q| naive.contains(&black_box(q)))
            .count()
    });
    let base = rate(IP_QUERIES, secs);
    println!(
        "ipv4 lookups (random, {:.2}% hit): {ours:.1} M/s; naive HashSet<u32> of /32s only: {base:.1} M/s ({:.2}% hit); ratio {:.2}x  [target >= 30 M/s]",
        100.0 * hits as f64 / IP_QUERIES as f64,
        100.0 * naive_hits as f64 / IP_QUERIES as f64,
        ours / base
    );

    let (secs, found) = best_of(|| {
        hit_queries
            .iter()
            .filter(|&&q| {
                snap.match_ip(IpAddr::V4(Ipv4Addr::from(black_box(q))))
                    .is_some()
            })
            .count()
    });
    println!(
        "ipv4 lookups (listed addresses, {:.2}% threat hit): {:.1} M/s",
        100.0 * found as f64 / hit_queries.len() as f64,
        rate(hit_queries.len(), secs)
    );
}
