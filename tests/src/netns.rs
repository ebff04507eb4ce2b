//! Helpers for tests that build hosts out of network namespaces: run code or `ip` inside one,
//! send datagrams from one, and remove an extra namespace when done.

use std::fs::File;
use std::net::UdpSocket;

use anyhow::{Context, Result};

use crate::sh;

/// Runs `f` on a thread inside network namespace `ns`; sockets it returns stay there.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| path.clone())?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

/// Runs `ip -n NS ARGS...`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<()> {
    let mut full = vec!["-n", ns];
    full.extend(args);
    sh("ip", &full)
}

/// Sends `count` datagrams of `what` from `from` (any port) to `to`, inside namespace `ns`.
pub fn send_datagrams(
    ns: &str,
    from: &str,
    to: (&str, u16),
    what: &'static [u8],
    count: usize,
) -> Result<()> {
    let (from, to) = (from.to_owned(), (to.0.to_owned(), to.1));
    in_netns(ns, move || {
        let sock = UdpSocket::bind((from.as_str(), 0))?;
        for _ in 0..count {
            sock.send_to(what, (to.0.as_str(), to.1))?;
        }
        Ok(())
    })
}

/// A network namespace of the test's own, removed on drop.
pub struct ExtraNs(pub String);

impl Drop for ExtraNs {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.0]);
    }
}

/// Makes a new namespace `pod_ns` a pod of namespace `host_ns`, the way the EKS VPC CNI and
/// Calico do: a veth with its host end `link`, the pod's `addr` as a /32 on its `eth0` with a
/// default route out of it, a host route to it through `link`, and proxy ARP on the host's
/// end, answered at once (the default delays a proxied answer by up to 0.8 s).
pub fn add_routed_pod(host_ns: &str, pod_ns: &str, link: &str, addr: &str) -> Result<()> {
    sh("ip", &["netns", "add", pod_ns])?;
    let host_end = [
        vec![
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", pod_ns,
        ],
        vec!["link", "set", link, "up"],
    ];
    let pod_host = format!("{addr}/32");
    let pod_end = [
        vec!["addr", "add", &pod_host, "dev", "eth0"],
        vec!["link", "set", "eth0", "up"],
        vec!["route", "add", "default", "dev", "eth0"],
    ];
    for (ns, args) in host_end
        .iter()
        .map(|a| (host_ns, a))
        .chain(pod_end.iter().map(|a| (pod_ns, a)))
    {
        ip_in(ns, args)?;
    }
    ip_in(host_ns, &["route", "add", &pod_host, "dev", link])?;
    let proxy_arp = format!("net.ipv4.conf.{link}.proxy_arp=1");
    let proxy_delay = format!("net.ipv4.neigh.{link}.proxy_delay=0");
    for setting in [&proxy_arp, &proxy_delay] {
        sh("ip", &["netns", "exec", host_ns, "sysctl", "-qw", setting])?;
    }
    Ok(())
}

/// Sends `count` ICMP echo requests with identifier `id` to `to` inside namespace `ns`,
/// through a raw socket (root); the kernel at `to` answers them.
pub fn send_pings(ns: &str, to: &str, id: u16, count: u16) -> Result<()> {
    let to: std::net::Ipv4Addr = to.parse()?;
    in_netns(ns, move || {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        let addr = SockAddr::from(std::net::SocketAddrV4::new(to, 0));
        for seq in 0..count {
            let [id_hi, id_lo] = id.to_be_bytes();
            let [seq_hi, seq_lo] = seq.to_be_bytes();
            let mut message = [
                8, 0, 0, 0, id_hi, id_lo, seq_hi, seq_lo, b'p', b'i', b'n', b'g',
            ];
            let [sum_hi, sum_lo] = internet_checksum(&message).to_be_bytes();
            message[2] = sum_hi;
            message[3] = sum_lo;
            sock.send_to(&message, &addr)?;
        }
        Ok(())
    })
}

/// The one's complement sum of `bytes` as 16-bit words (RFC 1071), as ICMP's checksum field.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
