//! Intel end to end over live capture (issue 5): a name added to the aggregator's threat list
//! reaches a running agent, and a DNS query for a sub-name of it, sent across a veth pair the
//! agent captures on, becomes an `IntelHit` the aggregator stores and turns into a
//! `Backdoor:EC2/C&CActivity.B!DNS` finding. Then, with the aggregator down, a restarted agent
//! still matches from its cached snapshot, logs the hit locally, buffers it, and delivers it
//! once the aggregator is back.
//!
//! The aggregator lives in namespace "a" (with a tiny UDP DNS responder), the agent in
//! namespace "b", capturing on its veth end. Needs root (namespaces, AF_PACKET) and `ip`; without
//! them the test prints why and returns.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use picket_aggregator::certs::LeafKind;
use picket_aggregator::ingest::BatchStore;
use picket_proto::AgentId;
use picket_proto::v1::{IntelHit, MatchSite, record};
use picket_tests::{
    FAST_AGENT_CONFIG, Leaf, NetnsPair, Pki, Proc, bin, can_use_netns, path_str,
    start_agent_cmd_in, start_aggregator_in,
};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "i-0intellive";
/// Indicators in the built-in canary list.
const CANARIES: u64 = 6;
/// The finding type a C&C domain match raises.
const C2_DNS: &str = "Backdoor:EC2/C&CActivity.B!DNS";

/// Replaces a file the way feed downloaders do: write aside, then rename over it.
fn replace(path: &Path, text: &[u8]) -> Result<()> {
    let tmp = path.with_extension("download");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Runs `f` on a thread that entered network namespace `ns`; sockets it makes stay there.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::thread::JoinHandle<Result<T>> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| path.clone())?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
}

/// A DNS query (RFC 1035 §4.1) for the A record of `name`, with transaction id `id`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    // Recursion desired; one question.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(63));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A resolver that answers every query NXDOMAIN, until `stop` is set.
fn start_responder(ns: &str, listen: SocketAddr, stop: Arc<AtomicBool>) -> Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let _thread = in_netns(ns, move || {
        let sock = UdpSocket::bind(listen)?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let _ = ready_tx.send(());
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Some(reply) = buf.get_mut(..n).filter(|r| r.len() >= 12) else {
                continue;
            };
            // Response, recursion available, NXDOMAIN; the question is echoed back.
            reply[2] |= 0x80;
            reply[3] = 0x83;
            sock.send_to(reply, from)?;
        }
        Ok(())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the DNS responder did not start")
}

/// Asks `resolver` for `name` from inside `ns` and waits for the answer.
fn resolve(ns: &str, resolver: SocketAddr, name: &str, id: u16) -> Result<()> {
    let query = dns_query(id, name);
    in_netns(ns, move || {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        sock.set_read_timeout(Some(Duration::from_secs(3)))?;
        sock.send_to(&query, resolver)?;
        let mut buf = [0u8; 512];
        let (n, _) = sock.recv_from(&mut buf).context("no DNS answer")?;
        ensure!(
            n >= 12 && buf[..2] == id.to_be_bytes(),
            "not the answer to query {id}"
        );
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("DNS client thread panicked"))?
}

/// `picket-aggregator findings list --format json`, run inside `ns`, as the list of findings.
fn findings(ns: &str, addr: &str, pki: &Pki, admin: &Leaf) -> Result<Vec<Value>> {
    let url = format!("https://{addr}");
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("picket-aggregator"))
        .args(["findings", "list", "--format", "json", "--aggregator", &url])
        .args(["--ca", path_str(&pki.ca())?])
        .args([
            "--cert",
            path_str(&admin.cert)?,
            "--key",
            path_str(&admin.key)?,
        ])
        .output()?;
    ensure!(out.status.success(), "findings list: {out:?}");
    let body: Value = serde_json::from_slice(&out.stdout)?;
    Ok(body["findings"].as_array().cloned().unwrap_or_default())
}

/// Polls the findings until one of `finding_type` mentions `name`; returns it.
fn wait_for_finding(ns: &str, addr: &str, pki: &Pki, admin: &Leaf, name: &str) -> Result<Value> {
    let deadline = Instant::now() + picket_tests::WAIT;
    loop {
        let all = findings(ns, addr, pki, admin)?;
        if let Some(f) = all
            .iter()
            .find(|f| f["type"] == C2_DNS && f.to_string().contains(name))
        {
            return Ok(f.clone());
        }
        if Instant::now() > deadline {
            bail!("no {C2_DNS} finding naming {name}; findings: {all:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The intel hits the aggregator stored for the agent (read with the aggregator stopped).
fn stored_hits(data_dir: &Path) -> Result<Vec<IntelHit>> {
    let store = BatchStore::open(data_dir)?;
    let (batches, bad) = store.batches_of(&AgentId::new(ACCOUNT, INSTANCE)?)?;
    ensure!(bad == 0, "{bad} undecodable batches");
    Ok(batches
        .into_iter()
        .flat_map(|b| b.records)
        .filter_map(|r| match r.record {
            Some(record::Record::IntelHit(h)) => Some(h),
            _ => None,
        })
        .collect())
}

fn assert_dns_hit(hits: &[IntelHit], query: &str) {
    let hit = hits.iter().find(|h| h.dns_query_name == query);
    let Some(hit) = hit else {
        panic!("no stored intel hit for {query}: {hits:?}");
    };
    assert_eq!(hit.indicator, "badhost.example", "{hit:?}");
    assert_eq!(hit.category, "c2", "{hit:?}");
    assert_eq!(hit.site, MatchSite::DnsQuery as i32, "{hit:?}");
    assert!(hit.list_name.contains("threat"), "{hit:?}");
}

#[test]
fn a_listed_name_queried_across_a_veth_becomes_a_finding_online_and_after_an_offline_restart()
-> Result<()> {
    if !can_use_netns() {
        println!("skipped: needs root and iproute2 to create network namespaces and capture");
        return Ok(());
    }
    let net = NetnsPair::new(&format!("pi{}", std::process::id() % 100_000), 15)?;
    let (agg_ns, agent_ns) = (net.names.0.clone(), net.names.1.clone());
    let pki = Pki::new()?;
    let server = pki.issue("server", LeafKind::Server(net.addrs.0.clone()))?;
    let leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let admin = pki.issue("admin", LeafKind::Admin("ops".into()))?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let intel_dir = tempfile::tempdir()?;
    let list = intel_dir.path().join("threat.txt");
    std::fs::write(&list, "evil.example\n")?;
    let config = intel_dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[intel]\n[[intel.sources]]\npath = {:?}\nkind = \"threat\"\ncategory = \"c2\"\n",
            path_str(&list)?
        ),
    )?;
    let listen = format!("{}:7443", net.addrs.0);
    let start_agg = || -> Result<(Proc, String)> {
        start_aggregator_in(
            Some(&agg_ns),
            &listen,
            &pki,
            &server,
            agg_dir.path(),
            &["--config", path_str(&config)?],
        )
    };
    let (mut agg, addr) = start_agg()?;
    agg.wait_for("intel snapshot published", 1, |e| {
        e["indicators"].as_u64() == Some(1 + CANARIES)
    })?;

    let agent_config = FAST_AGENT_CONFIG.replace(
        "interfaces = []",
        &format!("interfaces = [{:?}]", net.b_link),
    );
    let start_agent = || -> Result<Proc> {
        start_agent_cmd_in(
            Some(&agent_ns),
            "run",
            &[],
            &agent_config,
            &pki,
            &leaf,
            &addr,
            agent_dir.path(),
            ACCOUNT,
            INSTANCE,
        )
    };
    let mut agent = start_agent()?;
    agent.wait_for("capturing", 1, |e| e["interface"] == net.b_link.as_str())?;
    agent.wait_for("intel snapshot applied", 1, |e| {
        e["indicators"].as_u64() == Some(1 + CANARIES)
    })?;

    let stop = Arc::new(AtomicBool::new(false));
    let resolver: SocketAddr = format!("{}:53", net.addrs.0).parse()?;
    start_responder(&agg_ns, resolver, Arc::clone(&stop))?;
    // Before the list names it, the name is nobody's business.
    resolve(&agent_ns, resolver, "c2.badhost.example", 1)?;

    // The feed gains the name; the running agent is sent the new snapshot unasked.
    replace(&list, b"evil.example\nbadhost.example\n")?;
    agg.wait_for("intel snapshot published", 1, |e| {
        e["indicators"].as_u64() == Some(2 + CANARIES)
    })?;
    agent.wait_for("intel snapshot applied", 1, |e| {
        e["indicators"].as_u64() == Some(2 + CANARIES)
    })?;

    // A sub-name of the listed name, asked across the captured link, is a finding.
    resolve(&agent_ns, resolver, "beacon.badhost.example", 2)?;
    let finding = wait_for_finding(&agg_ns, &addr, &pki, &admin, "beacon.badhost.example")?;
    assert_eq!(finding["accountId"], ACCOUNT, "{finding}");
    assert!(finding.to_string().contains(INSTANCE), "{finding}");
    // The aggregator goes away abruptly (a graceful stop would wait for the agent's stream).
    agg.kill();
    let hits = stored_hits(agg_dir.path())?;
    assert_dns_hit(&hits, "beacon.badhost.example");
    assert!(
        !hits
            .iter()
            .any(|h| h.dns_query_name == "c2.badhost.example"),
        "a query made before the name was listed matched: {hits:?}"
    );

    // The agent restarts with no aggregator: it matches from its cache, says so locally and
    // buffers the hit.
    agent.terminate()?;
    let agent = start_agent()?;
    agent.wait_for("intel snapshot loaded from cache", 1, |e| {
        e["indicators"].as_u64() == Some(2 + CANARIES)
    })?;
    agent.wait_for("capturing", 1, |e| e["interface"] == net.b_link.as_str())?;
    resolve(&agent_ns, resolver, "again.badhost.example", 3)?;
    let logged = agent.wait_for("intel hit (aggregator unreachable; buffered)", 1, |e| {
        e["query"] == "again.badhost.example"
    })?;
    assert_eq!(logged[0]["indicator"], "badhost.example", "{}", logged[0]);
    assert_eq!(logged[0]["category"], "c2", "{}", logged[0]);

    // The aggregator comes back; the buffered hit arrives and is a finding too.
    let (mut agg, addr) = start_agg()?;
    wait_for_finding(&agg_ns, &addr, &pki, &admin, "again.badhost.example")?;
    let mut agent = agent;
    agent.terminate()?;
    let status = agg.terminate()?;
    ensure!(status.success(), "aggregator stopped with {status}");
    stop.store(true, Ordering::Relaxed);
    let hits = stored_hits(agg_dir.path())?;
    assert_dns_hit(&hits, "again.badhost.example");
    assert_eq!(
        hits.iter()
            .filter(|h| h.dns_query_name == "again.badhost.example")
            .count(),
        1,
        "the buffered hit was delivered more than once: {hits:?}"
    );
    Ok(())
}
