//! The agent's `HostStats` carry the instance's public IPv4 from instance metadata (issue 9):
//! on EC2 the interfaces hold only the private address (the VPC NATs the public one), and the
//! aggregator's cross-source join needs the public one to tell an instance's own calls from
//! stolen credentials. The metadata service is the loopback IMDSv2 stand-in; everything else
//! (agent `run`, mTLS, the aggregator's sled store) is real.

use std::time::Duration;

use anyhow::Result;
use picket_aggregator::ingest::BatchStore;
use picket_proto::AgentId;
use picket_proto::v1::record;
use picket_tests::enroll::{ImdsMode, ImdsServer, identity_document};
use picket_tests::{FAST_AGENT_CONFIG, Pki, start_agent_cmd, start_aggregator};

const ACCOUNT: &str = "123456789012";

/// Runs an agent against `imds_endpoint` for a few summary intervals after `ready` is logged,
/// and returns the addresses and `public_ip` of every `HostStats` the aggregator stored (one
/// string each), with the agent's log lines.
fn public_ips_reported(
    instance: &str,
    imds_endpoint: &str,
    ready: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, instance)?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let (mut agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let config =
        format!("{FAST_AGENT_CONFIG}\n[imds]\nendpoint = \"{imds_endpoint}\"\ntimeout_ms = 500\n");
    let mut agent = start_agent_cmd(
        "run",
        &[],
        &config,
        &pki,
        &leaf,
        &addr,
        agent_dir.path(),
        ACCOUNT,
        instance,
    )?;
    agent.wait_for(ready, 1, |_| true)?;
    // Summaries every second: a few HostStats after the metadata answer.
    std::thread::sleep(Duration::from_secs(4));
    assert!(agent.terminate()?.success(), "{}", agent.tail(20));
    let log = agent.lines();
    assert!(agg.terminate()?.success());
    let store = BatchStore::open(agg_dir.path())?;
    let (batches, bad) = store.batches_of(&AgentId::new(ACCOUNT, instance)?)?;
    assert_eq!(bad, 0);
    let ips = batches
        .into_iter()
        .flat_map(|b| b.records)
        .filter_map(|r| match r.record {
            // Where the metadata's address goes depends on whether the test host's own
            // interfaces have a public address: `public_ip` if not, `addresses` if so.
            Some(record::Record::HostStats(h)) => {
                let mut all = h.addresses;
                all.push(h.public_ip);
                Some(all.join(" "))
            }
            _ => None,
        })
        .collect();
    Ok((ips, log))
}

#[test]
fn host_stats_carry_the_public_ipv4_instance_metadata_gives() -> Result<()> {
    let imds = ImdsServer::start(
        ImdsMode::Normal,
        identity_document(ACCOUNT, "i-0pub", "us-east-1"),
        "c2ln".into(),
    )?;
    let (ips, log) = public_ips_reported(
        "i-0pub",
        &imds.endpoint,
        "public IPv4 from instance metadata",
    )?;
    assert!(
        ips.iter()
            .any(|a| a.split(' ').any(|ip| ip == "203.0.113.7")),
        "no HostStats with the metadata's public IPv4: {ips:?}\n{}",
        log.join("\n")
    );
    // Asked with a session token, as IMDSv2 requires.
    assert!(
        imds.requests()
            .iter()
            .any(|r| r.path == "/latest/meta-data/public-ipv4" && r.with_token && r.status == 200),
        "{:?}",
        imds.requests()
    );
    Ok(())
}

#[test]
fn without_a_public_ipv4_or_without_metadata_host_stats_have_none_and_one_line_says_so()
-> Result<()> {
    // An instance with no public IPv4: metadata answers 404.
    let private = ImdsServer::start(
        ImdsMode::NoPublicIp,
        identity_document(ACCOUNT, "i-0priv", "us-east-1"),
        "c2ln".into(),
    )?;
    let (ips, _) = public_ips_reported(
        "i-0priv",
        &private.endpoint,
        "public IPv4 from instance metadata",
    )?;
    assert!(!ips.is_empty(), "no HostStats stored");
    assert!(ips.iter().all(|a| !a.contains("203.0.113.7")), "{ips:?}");

    // No metadata service at all (a closed port): HostStats still flow, and the agent says
    // once that it has no public IPv4 instead of logging every attempt.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", closed.local_addr()?);
    drop(closed);
    let (ips, log) = public_ips_reported(
        "i-0off",
        &endpoint,
        "instance metadata gives no public IPv4; HostStats report interface addresses only",
    )?;
    assert!(!ips.is_empty(), "no HostStats stored");
    assert!(ips.iter().all(|a| !a.contains("203.0.113.7")), "{ips:?}");
    let complaints = log
        .iter()
        .filter(|l| l.contains("instance metadata gives no public IPv4"))
        .count();
    assert_eq!(complaints, 1, "{}", log.join("\n"));
    Ok(())
}
