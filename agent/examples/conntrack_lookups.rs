//! Times the NAT check's question to the kernel's connection tracking, for sizing.
//!
//! `cargo run --release -p picket-agent --example conntrack_lookups -- [PROTO SRC SPORT DST DPORT] [N]`
//!
//! Asks N times (default 100 000) for the connection of the given tuple (default one that is
//! not tracked, the answer for most new flows of a host without NAT) and prints the time per
//! question and what the kernel answered. Needs `CAP_NET_ADMIN`; run it inside a namespace
//! (`ip netns exec`) to ask that namespace's table.

use std::time::Instant;

use picket_agent::conntrack::Conntrack;
use picket_agent::flow_table::Endpoint;
use picket_agent::pipeline::NatTable;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (protocol, from, to, rest) = if args.len() >= 5 {
        let end = |addr: &str, port: &str| -> Result<Endpoint, Box<dyn std::error::Error>> {
            Ok(Endpoint {
                addr: addr.parse()?,
                port: port.parse()?,
            })
        };
        (
            args[0].parse::<u8>()?,
            end(&args[1], &args[2])?,
            end(&args[3], &args[4])?,
            &args[5..],
        )
    } else {
        let end = |addr: [u8; 4], port| Endpoint {
            addr: addr.into(),
            port,
        };
        (
            17,
            end([192, 0, 2, 1], 1),
            end([192, 0, 2, 2], 2),
            &args[..],
        )
    };
    let n: u32 = rest
        .first()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    let mut table = Conntrack::open()?;
    let answer = table.lookup(protocol, from, to)?;
    let start = Instant::now();
    for _ in 0..n {
        table.lookup(protocol, from, to)?;
    }
    let per = start.elapsed() / n;
    println!("{n} questions, {per:?} each; the answer: {answer:?}");
    Ok(())
}
