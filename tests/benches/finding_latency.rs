//! End-to-end finding latency (issue 7): from the agent seeing a packet to a C&C domain to the
//! finding being returned by the findings API. Prints p50/p99 over 1,000 hits.
//!
//! Everything is real: two network namespaces joined by a veth pair; in `b` the aggregator
//! (gRPC and HTTPS on b's loopback, mTLS, sled on disk) and the agent (`picket-agent run`,
//! AF_PACKET capture on b's veth end, intel snapshot from the aggregator); in `a` a small DNS
//! responder. A sender thread in `b` sends 1,000 DNS queries, one per distinct domain on the
//! aggregator's threat list (category c2), one every 10 ms; each answer completes a DNS
//! transaction in the agent, whose intel check emits an `IntelHit` at once (priority lane),
//! which the aggregator turns into a `Backdoor:EC2/C&CActivity.B!DNS` finding.
//!
//! The clock starts immediately before the query's `send_to` in namespace `b` (the agent's
//! capture socket sees the query then, and the answer ~0.1 ms later). It stops when a
//! `ListFindings` reply holding that domain's finding arrives at a poller in `b`, which asks
//! (gRPC, administrator certificate) for findings of that type updated since the newest it has
//! seen, every 5 ms; so up to 5 ms of each figure is polling granularity.
//!
//! Run: `cargo bench -p picket-tests --bench finding_latency` (needs root for `ip netns`;
//! prints a note and exits 0 otherwise). `PICKET_BENCH_HITS` sets the hit count (default 1000).

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use picket_aggregator::certs::LeafKind;
use picket_proto::v1::{FindingFilter, ListFindingsRequest, SortCriteria};
use picket_tests::api::{enter_netns, findings_client, start_with_api};
use picket_tests::{NetnsPair, Pki, can_use_netns, path_str, start_agent_cmd_in};

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "i-0latency";
const FINDING_TYPE: &str = "Backdoor:EC2/C&CActivity.B!DNS";
const SEND_EVERY: Duration = Duration::from_millis(10);
const POLL_EVERY: Duration = Duration::from_millis(5);

fn domain(i: usize) -> String {
    format!("c2-{i:04}.latency-bench.example")
}

/// A DNS query for `name` (type A, recursion desired) with id `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(63));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The answer to `q`: the question plus one A record (`addr`), NOERROR.
fn answer(q: &[u8], addr: [u8; 4]) -> Option<Vec<u8>> {
    if q.len() < 17 {
        return None;
    }
    let mut r = q.to_vec();
    r[2] = 0x81; // QR, RD
    r[3] = 0x80; // RA, NOERROR
    r[6..8].copy_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    r.extend_from_slice(&addr);
    Some(r)
}

fn responder(ns: String, addr: String, stop: Arc<AtomicBool>) -> Result<()> {
    enter_netns(&ns)?;
    let socket = UdpSocket::bind(format!("{addr}:53"))?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let ip: std::net::Ipv4Addr = addr.parse()?;
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(r) = buf.get(..n).and_then(|q| answer(q, ip.octets())) {
            socket.send_to(&r, from)?;
        }
    }
    Ok(())
}

/// Polls the API until every domain is seen or `deadline`; returns when each was first seen.
fn poller(
    ns: String,
    grpc: String,
    ca: std::path::PathBuf,
    admin: picket_tests::Leaf,
    want: usize,
    deadline: Instant,
) -> Result<HashMap<String, Instant>> {
    enter_netns(&ns)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut client = findings_client(&grpc, &ca, &admin).await?;
        let mut seen: HashMap<String, Instant> = HashMap::new();
        let mut since: i64 = 0;
        while seen.len() < want && Instant::now() < deadline {
            let mut token = String::new();
            let mut newest = since;
            loop {
                let reply = client
                    .list_findings(ListFindingsRequest {
                        filter: Some(FindingFilter {
                            criteria_json: String::new(),
                            conditions: vec![
                                format!("type={FINDING_TYPE}"),
                                format!("updatedAt>={since}"),
                            ],
                        }),
                        sort_criteria: Some(SortCriteria::default()),
                        max_results: 1000,
                        next_token: token,
                    })
                    .await?
                    .into_inner();
                let at = Instant::now();
                for j in &reply.findings_json {
                    let f: serde_json::Value = serde_json::from_str(j)?;
                    let Some(d) = f["service"]["action"]["dnsRequestAction"]["domain"].as_str()
                    else {
                        continue;
                    };
                    seen.entry(d.to_owned()).or_insert(at);
                    if let Some(u) = f["updatedAt"]
                        .as_str()
                        .and_then(|u| picket_aggregator::findings::Timestamp::parse(u).ok())
                    {
                        newest = newest.max(u.0);
                    }
                }
                if reply.next_token.is_empty() {
                    break;
                }
                token = reply.next_token;
            }
            // The detection task writes a drain's findings together, after every finding of
            // the previous drain; 100 ms of slack covers wall-clock steps.
            since = since.max(newest - 100);
            tokio::time::sleep(POLL_EVERY).await;
        }
        anyhow::Ok(seen)
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() -> Result<()> {
    if !can_use_netns() {
        println!("finding_latency: skipped (needs root and `ip netns` for the veth capture)");
        return Ok(());
    }
    let hits: usize = std::env::var("PICKET_BENCH_HITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let net = NetnsPair::new(&format!("pl{}", std::process::id() % 100_000), 231)?;
    let (ns_a, ns_b) = net.names.clone();
    let pki = Pki::new()?;
    let server = pki.server()?;
    let agent_leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let admin = pki.issue("admin", LeafKind::Admin("bench".into()))?;
    let work = tempfile::tempdir()?;
    let list = work.path().join("c2.txt");
    let names: Vec<String> = (0..hits).map(domain).collect();
    std::fs::write(&list, names.join("\n") + "\n")?;
    let config = work.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[intel]\n[[intel.sources]]\npath = {:?}\nkind = \"threat\"\ncategory = \"c2\"\n",
            path_str(&list)?
        ),
    )?;
    let agg_dir = work.path().join("aggregator");
    std::fs::create_dir_all(&agg_dir)?;
    let agg = start_with_api(
        Some(&ns_b),
        &pki,
        &server,
        &agg_dir,
        &["--config", path_str(&config)?],
    )?;
    let agent_dir = work.path().join("agent");
    let agent_config = format!(
        "[agent]\nheartbeat_interval_secs = 1\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[sensor]\ninterfaces = [{:?}]\n",
        net.b_link
    );
    let agent = start_agent_cmd_in(
        Some(&ns_b),
        "run",
        &[],
        &agent_config,
        &pki,
        &agent_leaf,
        &agg.grpc,
        &agent_dir,
        ACCOUNT,
        INSTANCE,
    )?;
    agent.wait_for("capturing", 1, |_| true)?;
    agent.wait_for("intel snapshot applied", 1, |e| {
        e["indicators"].as_u64().is_some_and(|n| n >= hits as u64)
    })?;

    let stop = Arc::new(AtomicBool::new(false));
    let responder = {
        let (ns, addr, stop) = (ns_a.clone(), net.addrs.0.clone(), Arc::clone(&stop));
        std::thread::spawn(move || responder(ns, addr, stop))
    };
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let deadline = Instant::now() + SEND_EVERY * hits as u32 + Duration::from_secs(60);
    let poll = {
        let (ns, grpc, dir, admin) = (ns_b.clone(), agg.grpc.clone(), pki.ca(), admin.clone());
        std::thread::spawn(move || poller(ns, grpc, dir, admin, hits, deadline))
    };
    let sender = {
        let (ns, to, sent, names) = (
            ns_b.clone(),
            format!("{}:53", net.addrs.0),
            Arc::clone(&sent),
            names.clone(),
        );
        std::thread::spawn(move || -> Result<()> {
            enter_netns(&ns)?;
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            let start = Instant::now();
            for (i, name) in names.iter().enumerate() {
                let q = query(u16::try_from(i % 65_536).unwrap_or(0), name);
                // Pace against the start so a slow send does not stretch the run.
                let due = start + SEND_EVERY * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let now = Instant::now();
                socket.send_to(&q, &to)?;
                sent.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone(), now);
            }
            Ok(())
        })
    };
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let seen = poll
        .join()
        .map_err(|_| anyhow::anyhow!("poller panicked"))??;
    stop.store(true, Ordering::Relaxed);
    responder
        .join()
        .map_err(|_| anyhow::anyhow!("responder panicked"))??;

    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(d, t0)| seen.get(d).map(|t1| t1.saturating_duration_since(*t0)))
        .collect();
    if latencies.is_empty() {
        bail!(
            "no finding reached the API; agent log:\n{}\naggregator log:\n{}",
            agent.tail(20),
            agg.proc.tail(20)
        );
    }
    latencies.sort_unstable();
    let n = latencies.len();
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(n).context("count")?;
    println!(
        "finding latency, packet seen by the agent -> finding returned by the API (gRPC ListFindings), {} C&C domains sent {} ms apart:",
        sent.len(),
        SEND_EVERY.as_millis()
    );
    println!(
        "  returned {n}/{} | p50 {:.1} ms | p99 {:.1} ms | mean {:.1} ms | min {:.1} ms | max {:.1} ms (poll every {} ms)",
        sent.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        latencies[0].as_secs_f64() * 1e3,
        latencies[n - 1].as_secs_f64() * 1e3,
        POLL_EVERY.as_millis(),
    );
    if n < sent.len() {
        println!(
            "  {} findings did not reach the API within the deadline",
            sent.len() - n
        );
    }
    drop(agent);
    drop(agg);
    drop(net);
    Ok(())
}
