//! A container's traffic NATed is counted once, on the container's link, with real binaries,
//! real AF_PACKET and the kernel's real NAT (nftables). The agent's host (namespace "b") has a
//! Docker-like bridge with a container on a port, masquerades the container's traffic out of
//! its uplink, and publishes the container's port 80 as its own 8080; the aggregator's
//! namespace ("a") plays the outside. On the uplink those packets carry the host's address,
//! so only connection tracking can tell them from the host's own. The host also has two
//! routed pods and a service address DNATed to the lower one, as kube-proxy does: the higher
//! pod's request crosses its own link as sent to the service and the lower pod's as between
//! the pods. Needs root, `ip` and `nft`; without them the test prints why and returns.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};
use picket_aggregator::certs::LeafKind;
use picket_proto::v1::{Direction, FlowSummary};
use picket_tests::netns::{ExtraNs, add_routed_pod, in_netns, ip_in, send_datagrams, send_pings};
use picket_tests::records::{ensure_each_seen_once, flow_summaries, stored_records};
use picket_tests::{
    FAST_AGENT_CONFIG, NetnsPair, Pki, can_use_netns, sh, start_agent_cmd_in, start_aggregator_in,
};

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "i-0natted";
/// The container's address on the host's bridge.
const CONTAINER: &str = "172.31.99.5";
const BRIDGE_NET: &str = "172.31.99.0/24";
/// Two pods routed to their own links, and a service address DNATed to the lower one.
const POD_LOW: &str = "10.213.79.5";
const POD_HIGH: &str = "10.213.79.9";
const SERVICE: &str = "10.96.0.10";

fn has_nft() -> bool {
    Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_containers_traffic_natted_to_the_host_is_counted_once_on_its_link() -> Result<()> {
    if !can_use_netns() || !has_nft() {
        println!("skipped: needs root, iproute2 and nftables to build a NATing host and capture");
        return Ok(());
    }
    let tag = format!("pn{}", std::process::id() % 100_000);
    let net = NetnsPair::new(&tag, 17)?;
    let (agg_ns, host_ns) = (net.names.0.clone(), net.names.1.clone());
    let (outside, host_addr) = (net.addrs.0.clone(), net.addrs.1.clone());
    let pki = Pki::new()?;
    let server = pki.issue("server", LeafKind::Server(outside.clone()))?;
    let leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let listen = format!("{outside}:7443");
    let (mut agg, addr) =
        start_aggregator_in(Some(&agg_ns), &listen, &pki, &server, agg_dir.path(), &[])?;

    // The host: a bridge with one container on a port, forwarding, and Docker's NAT rules
    // (masquerade out of the uplink, port 8080 published to the container's 80).
    let container = ExtraNs(format!("{tag}c1"));
    let (port, bridge) = (format!("{tag}d1"), format!("{tag}dk"));
    sh("ip", &["netns", "add", &container.0])?;
    let with_prefix = format!("{CONTAINER}/24");
    for (ns, args) in [
        (&host_ns, vec!["link", "add", &bridge, "type", "bridge"]),
        (
            &host_ns,
            vec!["addr", "add", "172.31.99.1/24", "dev", &bridge],
        ),
        (&host_ns, vec!["link", "set", &bridge, "up"]),
        (
            &host_ns,
            vec![
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &container.0,
            ],
        ),
        (&host_ns, vec!["link", "set", &port, "master", &bridge]),
        (&host_ns, vec!["link", "set", &port, "up"]),
        (
            &container.0,
            vec!["addr", "add", &with_prefix, "dev", "eth0"],
        ),
        (&container.0, vec!["link", "set", "eth0", "up"]),
        (
            &container.0,
            vec!["route", "add", "default", "via", "172.31.99.1"],
        ),
    ] {
        ip_in(ns, &args)?;
    }
    let pods = [ExtraNs(format!("{tag}p1")), ExtraNs(format!("{tag}p2"))];
    let pod_links = [format!("{tag}pa"), format!("{tag}pb")];
    for ((pod, link), addr) in pods.iter().zip(&pod_links).zip([POD_LOW, POD_HIGH]) {
        add_routed_pod(&host_ns, &pod.0, link, addr)?;
    }
    // A route to the service range, so the host's end of a pod's link answers for it.
    ip_in(&host_ns, &["route", "add", "10.96.0.0/16", "via", &outside])?;
    let in_host = |args: &[&str]| {
        let mut full = vec!["netns", "exec", &host_ns];
        full.extend(args);
        sh("ip", &full)
    };
    in_host(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    let uplink = net.b_link.as_str();
    let masquerade = format!("oifname {uplink} ip saddr {BRIDGE_NET} masquerade");
    let publish = format!("iifname {uplink} udp dport 8080 dnat to {CONTAINER}:80");
    let service = format!("ip daddr {SERVICE} udp dport 53 dnat to {POD_LOW}:53");
    for rule in [
        "add table ip nat",
        "add chain ip nat post { type nat hook postrouting priority 100 ; }",
        "add chain ip nat pre { type nat hook prerouting priority -100 ; }",
        &format!("add rule ip nat post {masquerade}"),
        &format!("add rule ip nat pre {publish}"),
        &format!("add rule ip nat pre {service}"),
    ] {
        in_host(&["nft", rule])?;
    }

    // Every interface that is up: the uplink, the bridge, the container's port, the pods' links.
    let config = FAST_AGENT_CONFIG.replace("interfaces = []\n", "");
    let mut agent = start_agent_cmd_in(
        Some(&host_ns),
        "run",
        &[],
        &config,
        &pki,
        &leaf,
        &addr,
        agent_dir.path(),
        ACCOUNT,
        INSTANCE,
    )?;
    for link in [uplink, bridge.as_str()] {
        agent.wait_for("capturing", 1, |e| e["interface"] == link)?;
    }
    for link in pod_links.iter().chain([&port]) {
        agent.wait_for("capturing", 1, |e| {
            e["interface"] == link.as_str() && e["ring_kib"] == 1024
        })?;
    }
    std::thread::sleep(picket_agent::sensor::RESCAN + Duration::from_secs(1));
    let _outside_sinks = in_netns(&agg_ns, {
        let outside = outside.clone();
        move || {
            Ok([
                UdpSocket::bind((outside.as_str(), 9980))?,
                UdpSocket::bind((outside.as_str(), 9981))?,
                UdpSocket::bind((outside.as_str(), 9982))?,
            ])
        }
    })?;
    let _container_sink = in_netns(&container.0, || Ok(UdpSocket::bind((CONTAINER, 80))?))?;
    let _pod_sink = in_netns(&pods[0].0, || Ok(UdpSocket::bind((POD_LOW, 53))?))?;
    // The container says something first, so its port learns it; the port hands it over at
    // its next tick, and the other captures take it at theirs.
    send_datagrams(&container.0, CONTAINER, (&outside, 9980), b"hello", 1)?;
    std::thread::sleep(Duration::from_secs(3));

    // Masqueraded out, published in, and the host's own.
    send_datagrams(&container.0, CONTAINER, (&outside, 9981), b"out", 3)?;
    send_datagrams(&agg_ns, &outside, (&host_addr, 8080), b"in", 3)?;
    send_datagrams(&host_ns, &host_addr, (&outside, 9982), b"own", 3)?;
    send_datagrams(&pods[1].0, POD_HIGH, (SERVICE, 53), b"to the service", 3)?;
    send_pings(&container.0, &outside, 0x5043, 3)?;
    // To a port nobody listens on: the outside answers port unreachable, to the host's
    // address on the uplink, translated back to the container on its port.
    send_datagrams(&container.0, CONTAINER, (&outside, 9983), b"closed", 1)?;
    std::thread::sleep(Duration::from_millis(500));
    for link in pod_links.iter().chain([&port, &bridge]) {
        sh("ip", &["-n", &host_ns, "link", "del", link])?;
        agent.wait_for(
            &format!("capture on {link} ended: the interface is gone"),
            1,
            |_| true,
        )?;
    }
    ensure!(
        agent
            .events("connection tracking cannot be asked: a container's traffic NATed to the host's address is counted here too")
            .is_empty(),
        "{}",
        agent.tail(20)
    );
    agent.terminate()?;
    agg.terminate()?;

    let records = stored_records(agg_dir.path(), ACCOUNT, INSTANCE)?;
    let flows = flow_summaries(&records);
    // Each flow once: the container's on its port (as the container's), the host's own on
    // the uplink, the pod's on its own link as sent to the service. Without the NAT check
    // the uplink counts the first two again, as the host's flows to 9981 and from the
    // outside to 8080, and the lower pod's link the third, as from the higher pod to it.
    ensure_each_seen_once(
        &flows,
        &[
            (9981, port.as_str(), Direction::Egress, CONTAINER, (3, 0)),
            (9983, port.as_str(), Direction::Egress, CONTAINER, (1, 0)),
            (80, port.as_str(), Direction::Ingress, CONTAINER, (0, 3)),
            (9982, uplink, Direction::Egress, host_addr.as_str(), (3, 0)),
            (
                53,
                pod_links[1].as_str(),
                Direction::Egress,
                POD_HIGH,
                (3, 0),
            ),
        ],
    )?;
    ensure!(
        !flows.iter().any(|f| f.service_port == 8080),
        "the published port was counted as the host's: {flows:#?}"
    );
    // ICMP flows (pings, or port unreachables) found once, on the container's port, with
    // `packets` (out, in).
    let icmp_once = |unreachable: bool, packets: (u64, u64)| -> Result<()> {
        let found: Vec<&FlowSummary> = flows
            .iter()
            .copied()
            .filter(|f| f.protocol == 1 && (f.service_port == 3) == unreachable)
            .collect();
        ensure!(
            found.len() == 1
                && found[0].interface == port
                && found[0].local_addr == CONTAINER
                && (found[0].packets_out, found[0].packets_in) == packets,
            "ICMP flows (unreachable: {unreachable}): {found:#?}"
        );
        Ok(())
    };
    // The container's pings (masqueraded too) and their answers.
    icmp_once(false, (3, 3))?;
    // The port unreachable: without looking up what an ICMP error quotes, the uplink counts
    // it again, as from the outside to the host.
    icmp_once(true, (0, 1))?;
    Ok(())
}
