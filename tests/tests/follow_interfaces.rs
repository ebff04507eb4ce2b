//! An agent left on its default interfaces follows them (real binaries, real AF_PACKET, real
//! mTLS): an interface that comes up after start is captured on and its traffic reaches the
//! aggregator with its name; when it goes away its capture ends quietly and the agent stays
//! healthy; an address the host gains is the host's, and so are its containers' networks,
//! whose traffic is counted once, on the container's own link. The aggregator lives in
//! namespace "a", the agent in "b"; the new interface is a veth from "b" to a third namespace
//! "c", and each pod has a namespace of its own. Needs root and `ip`; without them the test prints
//! why and returns.

use std::net::UdpSocket;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use picket_aggregator::certs::LeafKind;
use picket_proto::v1::{Direction, HostStats, record};
use picket_tests::netns::{ExtraNs, add_routed_pod, in_netns, ip_in, send_datagrams};
use picket_tests::ops::{http_get, metrics_addr, value};
use picket_tests::records::{ensure_each_seen_once, flow_summaries, stored_records};
use picket_tests::{
    FAST_AGENT_CONFIG, NetnsPair, Pki, can_use_netns, sh, start_agent_cmd_in, start_aggregator_in,
};

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "i-0follow";
/// The address the agent's host gains on its first link while the agent runs.
const GAINED: &str = "10.213.16.77";
/// A pod's address, routed to its own veth on the agent's host.
const POD: &str = "10.213.78.9";
/// Another pod's, higher, so the two pods' flow is counted on the first one's link.
const POD2: &str = "10.213.78.12";
/// Two containers on a bridge the agent captures, with its ports.
const CONTAINER: &str = "172.31.88.11";
const CONTAINER2: &str = "172.31.88.12";
/// A container's address in a bridge's network on the agent's host.
const BRIDGED: &str = "172.31.77.5";

#[test]
fn an_interface_that_comes_up_after_start_is_captured_and_one_that_goes_is_let_go() -> Result<()> {
    if !can_use_netns() {
        println!("skipped: needs root and iproute2 to create network namespaces and capture");
        return Ok(());
    }
    let tag = format!("pf{}", std::process::id() % 100_000);
    let net = NetnsPair::new(&tag, 16)?;
    let (agg_ns, agent_ns) = (net.names.0.clone(), net.names.1.clone());
    let pki = Pki::new()?;
    let server = pki.issue("server", LeafKind::Server(net.addrs.0.clone()))?;
    let leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let listen = format!("{}:7443", net.addrs.0);
    let (mut agg, addr) =
        start_aggregator_in(Some(&agg_ns), &listen, &pki, &server, agg_dir.path(), &[])?;

    // No `interfaces`: the default, every interface that is up, but for the excluded.
    let excluded = format!("{tag}xb");
    let config = FAST_AGENT_CONFIG.replace(
        "interfaces = []\n",
        &format!("exclude = [{:?}]\n", format!("{tag}x*")),
    );
    let mut agent = start_agent_cmd_in(
        Some(&agent_ns),
        "run",
        &["--metrics-listen", "127.0.0.1:0"],
        &config,
        &pki,
        &leaf,
        &addr,
        agent_dir.path(),
        ACCOUNT,
        INSTANCE,
    )?;
    // The host's own link (a veth with an address) gets the full ring.
    agent.wait_for("capturing", 1, |e| {
        e["interface"] == net.b_link.as_str() && e["ring_kib"] == 8192
    })?;
    let metrics = metrics_addr(&agent)?;

    // A new link after start, as an ENI attached to a running instance.
    let c = ExtraNs(format!("{tag}c"));
    sh("ip", &["netns", "add", &c.0])?;
    let (new_b, new_c) = (format!("{tag}nb"), format!("{tag}nc"));
    sh(
        "ip",
        &[
            "link", "add", &new_b, "type", "veth", "peer", "name", &new_c,
        ],
    )?;
    sh("ip", &["link", "set", &new_b, "netns", &agent_ns])?;
    sh("ip", &["link", "set", &new_c, "netns", &c.0])?;
    for (ns, dev, addr) in [
        (&agent_ns, &new_b, "10.214.16.1"),
        (&c.0, &new_c, "10.214.16.2"),
    ] {
        sh(
            "ip",
            &["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
        )?;
        sh("ip", &["-n", ns, "link", "set", dev, "up"])?;
    }
    // And one the agent is told to leave alone (a container's link, say), up at the same time.
    sh(
        "ip",
        &[
            "-n",
            &agent_ns,
            "link",
            "add",
            &excluded,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{tag}xc"),
        ],
    )?;
    sh("ip", &["-n", &agent_ns, "link", "set", &excluded, "up"])?;
    agent.wait_for("capturing", 1, |e| e["interface"] == new_b.as_str())?;
    std::thread::sleep(picket_agent::sensor::RESCAN + Duration::from_secs(1));
    // `picket-agent status` (status.json, rewritten every second) names both captures.
    let status = picket_agent::status::read_status(agent_dir.path()).map_err(anyhow::Error::msg)?;
    let mut expected = vec![net.b_link.clone(), new_b.clone()];
    expected.sort();
    ensure!(status.capturing == expected, "status: {status:?}");
    ensure!(
        agent
            .events("capturing")
            .iter()
            .all(|e| e["interface"] != excluded.as_str()),
        "the excluded interface was captured on: {}",
        agent.tail(20)
    );

    // An address the host gains while running (a secondary IP, a late DHCP lease) is the
    // host's within a rescan, on the interfaces captured since start too: three datagrams
    // from the aggregator's namespace to it are ingress to it, not a flow without a direction.
    sh(
        "ip",
        &[
            "-n",
            &agent_ns,
            "addr",
            "add",
            &format!("{GAINED}/24"),
            "dev",
            &net.b_link,
        ],
    )?;
    agent.wait_for("host addresses changed", 1, |e| {
        e.to_string().contains(GAINED)
    })?;
    // Each capture takes a change at its next one-second tick.
    std::thread::sleep(Duration::from_millis(1500));
    let _gained_sink = in_netns(&agent_ns, || Ok(UdpSocket::bind((GAINED, 9998))?))?;
    let agg_addr = net.addrs.0.clone();
    send_datagrams(&agg_ns, &agg_addr, (GAINED, 9998), b"to the new address", 3)?;

    // Containers' networks count as the host's, and a container's traffic is counted once,
    // on its own link. Two pods, each in a namespace of its own behind its own veth and host
    // route (the EKS VPC CNI's and Calico's way: a /32, a default route out of the pod's link,
    // proxy ARP on the host's end), and a bridge's network (Docker's), excluded (named like
    // the excluded one) and without ports, so its traffic is counted where it is seen.
    let pods = [ExtraNs(format!("{tag}p1")), ExtraNs(format!("{tag}p2"))];
    let pod_links = [format!("{tag}pa"), format!("{tag}pb")];
    let bridge = format!("{tag}xbr");
    let agent_addr = net.addrs.1.clone();
    sh(
        "ip",
        &[
            "netns",
            "exec",
            &agent_ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    )?;
    for ((pod_ns, link), addr) in pods.iter().zip(&pod_links).zip([POD, POD2]) {
        add_routed_pod(&agent_ns, &pod_ns.0, link, addr)?;
    }
    for args in [
        vec!["link", "add", &bridge, "type", "bridge"],
        vec!["addr", "add", "172.31.77.1/24", "dev", &bridge],
        vec!["link", "set", &bridge, "up"],
    ] {
        ip_in(&agent_ns, &args)?;
    }
    for to in [format!("{POD}/32"), "172.31.77.0/24".to_owned()] {
        ip_in(&agg_ns, &["route", "add", &to, "via", &agent_addr])?;
    }
    for link in &pod_links {
        agent.wait_for("capturing", 1, |e| {
            e["interface"] == link.as_str() && e["ring_kib"] == 1024
        })?;
    }
    // The watcher reads them at its next rescan; each capture takes them at its next tick.
    std::thread::sleep(picket_agent::sensor::RESCAN + Duration::from_secs(2));
    // Sinks, so no ICMP error adds flows of its own.
    let _pod_sink = in_netns(&pods[0].0, || {
        Ok([UdpSocket::bind((POD, 9997))?, UdpSocket::bind((POD, 9995))?])
    })?;
    let _agg_sink = in_netns(&agg_ns, {
        let agg_addr = agg_addr.clone();
        move || Ok(UdpSocket::bind((agg_addr.as_str(), 9994))?)
    })?;
    send_datagrams(&agg_ns, &agg_addr, (POD, 9997), b"to a pod", 3)?;
    send_datagrams(
        &agg_ns,
        &agg_addr,
        (BRIDGED, 9996),
        b"to a bridged container",
        3,
    )?;
    send_datagrams(&pods[1].0, POD2, (POD, 9995), b"to the other pod", 3)?;
    send_datagrams(&pods[0].0, POD, (&agg_addr, 9994), b"from a pod", 3)?;
    std::thread::sleep(Duration::from_millis(500));
    for link in &pod_links {
        sh("ip", &["-n", &agent_ns, "link", "del", link])?;
        agent.wait_for(
            &format!("capture on {link} ended: the interface is gone"),
            1,
            |_| true,
        )?;
    }

    // Bridged containers (Docker's way): two namespaces on ports of a bridge the agent
    // captures, as it does the ports. A bridge's network does not say which port a container
    // is on: a port's capture learns it when the container sends, and from then on its traffic
    // is counted on its port only, not on the bridge or the first link.
    let containers = [ExtraNs(format!("{tag}c1")), ExtraNs(format!("{tag}c2"))];
    let ports = [format!("{tag}d1"), format!("{tag}d2")];
    let docker = format!("{tag}dk");
    for args in [
        vec!["link", "add", &docker, "type", "bridge"],
        vec!["addr", "add", "172.31.88.1/24", "dev", &docker],
        vec!["link", "set", &docker, "up"],
    ] {
        ip_in(&agent_ns, &args)?;
    }
    for ((ns, port), addr) in containers.iter().zip(&ports).zip([CONTAINER, CONTAINER2]) {
        sh("ip", &["netns", "add", &ns.0])?;
        let with_prefix = format!("{addr}/24");
        for (in_ns, args) in [
            (
                &agent_ns,
                vec![
                    "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &ns.0,
                ],
            ),
            (&agent_ns, vec!["link", "set", port, "master", &docker]),
            (&agent_ns, vec!["link", "set", port, "up"]),
            (&ns.0, vec!["addr", "add", &with_prefix, "dev", "eth0"]),
            (&ns.0, vec!["link", "set", "eth0", "up"]),
            (&ns.0, vec!["route", "add", "default", "via", "172.31.88.1"]),
        ] {
            ip_in(in_ns, &args)?;
        }
    }
    sh(
        "ip",
        &[
            "-n",
            &agg_ns,
            "route",
            "add",
            "172.31.88.0/24",
            "via",
            &agent_addr,
        ],
    )?;
    for port in &ports {
        agent.wait_for("capturing", 1, |e| {
            e["interface"] == port.as_str() && e["ring_kib"] == 1024
        })?;
    }
    agent.wait_for("capturing", 1, |e| e["interface"] == docker.as_str())?;
    std::thread::sleep(picket_agent::sensor::RESCAN + Duration::from_secs(1));
    let _bridged_sinks = in_netns(&containers[0].0, || Ok(UdpSocket::bind((CONTAINER, 9992))?))?;
    let _agg_sinks = in_netns(&agg_ns, {
        let agg_addr = net.addrs.0.clone();
        move || {
            Ok([
                UdpSocket::bind((agg_addr.as_str(), 9990))?,
                UdpSocket::bind((agg_addr.as_str(), 9993))?,
            ])
        }
    })?;
    // Each container says something first, so its port learns it; the ports hand what they
    // learned over at their next tick, and the others take it at theirs.
    for (ns, addr) in containers.iter().zip([CONTAINER, CONTAINER2]) {
        send_datagrams(&ns.0, addr, (&agg_addr, 9990), b"hello", 1)?;
    }
    std::thread::sleep(Duration::from_secs(3));
    let from_container = b"from a bridged container";
    send_datagrams(
        &containers[0].0,
        CONTAINER,
        (&agg_addr, 9993),
        from_container,
        3,
    )?;
    send_datagrams(
        &containers[1].0,
        CONTAINER2,
        (CONTAINER, 9992),
        b"to the other container",
        3,
    )?;
    std::thread::sleep(Duration::from_millis(500));
    for link in ports.iter().chain([&docker]) {
        sh("ip", &["-n", &agent_ns, "link", "del", link])?;
        agent.wait_for(
            &format!("capture on {link} ended: the interface is gone"),
            1,
            |_| true,
        )?;
    }

    // Five datagrams out of the new interface; a sink in c keeps ICMP errors away.
    let _sink = in_netns(&c.0, || Ok(UdpSocket::bind("10.214.16.2:9999")?))?;
    send_datagrams(&agent_ns, "10.214.16.1", ("10.214.16.2", 9999), b"hello", 5)?;
    std::thread::sleep(Duration::from_millis(500));

    // The interface goes away: its capture ends (its last summaries are sent), and the agent
    // is as healthy as before, with one capture expected and running.
    sh("ip", &["-n", &agent_ns, "link", "del", &new_b])?;
    let gone = format!("capture on {new_b} ended: the interface is gone");
    agent.wait_for(&gone, 1, |_| true)?;
    let (status, health) = in_netns(&agent_ns, {
        let metrics = metrics.clone();
        move || http_get(&metrics, "/healthz")
    })?;
    ensure!(
        status == 200,
        "agent unhealthy after the interface went: {health}"
    );
    let (_, text) = in_netns(&agent_ns, move || http_get(&metrics, "/metrics"))?;
    ensure!(
        value(&text, "picket_agent_capture_threads_started") == Some(1.0)
            && value(&text, "picket_agent_capture_threads_running") == Some(1.0),
        "capture threads after the interface went:\n{text}"
    );
    // The bridge's network stays hosted (the pod's route went with its link).
    let hosted = value(&text, "picket_agent_local_networks{kind=\"hosted\"}");
    let own = value(&text, "picket_agent_local_networks{kind=\"own\"}");
    ensure!(
        hosted.is_some_and(|n| n >= 1.0) && own.is_some_and(|n| n >= 3.0),
        "local networks: own {own:?}, hosted {hosted:?}:\n{text}"
    );
    let still = format!("picket_agent_capturing{{interface=\"{}\"}}", net.b_link);
    let gone_series = format!("picket_agent_capturing{{interface=\"{new_b}\"}}");
    ensure!(
        value(&text, &still) == Some(1.0) && value(&text, &gone_series).is_none(),
        "capturing series after the interface went:\n{text}"
    );
    ensure!(
        agent.events("capture stopped").is_empty(),
        "no capture failed: {}",
        agent.tail(20)
    );

    agent.terminate()?;
    agg.terminate()?;
    let records = stored_records(agg_dir.path(), ACCOUNT, INSTANCE)?;
    let flows = flow_summaries(&records);
    let host_stats: Vec<&HostStats> = records
        .iter()
        .filter_map(|r| match r {
            record::Record::HostStats(s) => Some(s),
            _ => None,
        })
        .collect();
    let udp = flows
        .iter()
        .find(|f| f.interface == new_b && f.service_port == 9999)
        .with_context(|| format!("no summary from {new_b}: {flows:#?}"))?;
    ensure!(udp.packets_out == 5, "{udp:?}");
    // The new interface's own address is the host's: the flow is egress from it.
    ensure!(udp.local_addr == "10.214.16.1", "{udp:?}");
    // The address gained while running, and the bridged container's, on the first link.
    for (port, hosted) in [(9998, GAINED), (9996, BRIDGED)] {
        let flow = flows
            .iter()
            .find(|f| f.interface == net.b_link && f.service_port == port)
            .with_context(|| format!("no summary of the datagrams to {hosted}: {flows:#?}"))?;
        ensure!(
            flow.direction() == Direction::Ingress
                && flow.local_addr == hosted
                && flow.packets_in == 3,
            "{flow:?}"
        );
    }
    // Containers' traffic, each flow once, on the first one's link. The pods': from the
    // aggregator to the pod (also seen on the first link), between the pods (also seen on the
    // second pod's link) and from the pod to the aggregator (also seen on the first link).
    // The bridged containers': to the aggregator (also seen on the bridge and the first link)
    // and between them (also seen on the second one's port).
    ensure_each_seen_once(
        &flows,
        &[
            (9997, pod_links[0].as_str(), Direction::Ingress, POD, (0, 3)),
            (9995, pod_links[0].as_str(), Direction::Egress, POD2, (3, 0)),
            (9994, pod_links[0].as_str(), Direction::Egress, POD, (3, 0)),
            (
                9993,
                ports[0].as_str(),
                Direction::Egress,
                CONTAINER,
                (3, 0),
            ),
            (
                9992,
                ports[0].as_str(),
                Direction::Egress,
                CONTAINER2,
                (3, 0),
            ),
        ],
    )?;
    let left_to_links: u64 = host_stats
        .iter()
        .flat_map(|s| &s.skipped)
        .filter(|c| c.kind == "counted_on_container_link")
        .map(|c| c.count)
        .sum();
    ensure!(
        left_to_links >= 9,
        "packets left to the pods' links: {left_to_links}"
    );
    Ok(())
}
