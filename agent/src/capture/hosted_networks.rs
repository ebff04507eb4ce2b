//! Which networks belong to workloads this host carries: containers behind a bridge (Docker's
//! `docker0`, a bridge CNI's `cni0`) or each behind a veth with a route of its own (the EKS VPC
//! CNI's `eni*`, Calico's `cali*`).
//!
//! Why: a container's address is not one of the host's, so without this its flows (on the
//! container's link, on the bridge, and on the uplink wherever it is not NATed, as with the VPC
//! CNI's pod addresses) would have no direction, and the detectors that ask for one (outbound
//! scans, mining, denial of service, beaconing, inbound scans) would never see them.
//!
//! Read from the kernel's own files, no netlink: a bridge's networks are its addresses with
//! their prefixes; a container link is a veth (Ethernet, no device behind it, no `DEVTYPE`, no
//! `tun_flags`, and a peer: `iflink` differs from `ifindex`) without an address of its own
//! beyond link-local, and its networks are the routes without a gateway that point at it
//! (`/proc/thread-self/net/route` and `ipv6_route`, the reading thread's namespace). A veth
//! with an address is the host's link to a network it is on (the host is itself a container
//! or namespace), not a container's. Default, link-local and multicast routes never count.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::flow_table::Cidr;

/// Where the kernel lists network interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";
/// The reading thread's IPv4 main routing table.
const ROUTES_V4: &str = "/proc/thread-self/net/route";
/// The reading thread's IPv6 routes.
const ROUTES_V6: &str = "/proc/thread-self/net/ipv6_route";

/// `RTF_GATEWAY`: the route goes through a router, so what it reaches is not on this host.
const RTF_GATEWAY: u32 = 0x2;

/// A network of workloads this host carries, with the links its containers' traffic crosses
/// on the way to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedNetwork {
    /// The network.
    pub net: Cidr,
    /// The containers' own links: the veth a route points at. Empty for a bridge's network,
    /// which says nothing of which port a container is on: its containers are found by the
    /// ports' captures seeing them send (`HostAddresses::learn`).
    pub links: Vec<String>,
}

/// The hosted networks on this host now, given each interface's name and networks (address
/// and prefix). A file that cannot be read gives nothing rather than an error: hosted
/// networks only add directions, and a host without containers has none.
pub fn hosted_networks<'a>(
    interfaces: impl IntoIterator<Item = (&'a str, &'a [Cidr])>,
) -> Vec<HostedNetwork> {
    let v4 = fs::read_to_string(ROUTES_V4).unwrap_or_default();
    let v6 = fs::read_to_string(ROUTES_V6).unwrap_or_default();
    let mut routes = ipv4_routes(&v4);
    routes.extend(ipv6_routes(&v6));
    hosted_in(Path::new(SYS_CLASS_NET), interfaces, &routes)
}

/// Whether the interface `name`, with networks `nets`, is a container's link (a veth without
/// an address of its own beyond link-local): it carries one container's traffic, which the
/// bridge or the uplink carries too.
pub fn is_container_link(name: &str, nets: &[Cidr]) -> bool {
    container_link_in(Path::new(SYS_CLASS_NET), name, nets)
}

fn container_link_in(sys_class_net: &Path, name: &str, nets: &[Cidr]) -> bool {
    !nets.iter().any(|net| takeable(*net)) && kind(sys_class_net, name) == Kind::ContainerLink
}

/// As [`hosted_networks`], with the interface directory and the parsed routes given.
fn hosted_in<'a>(
    sys_class_net: &Path,
    interfaces: impl IntoIterator<Item = (&'a str, &'a [Cidr])>,
    routes: &[(String, Cidr)],
) -> Vec<HostedNetwork> {
    let interfaces: BTreeMap<&str, &[Cidr]> = interfaces.into_iter().collect();
    let mut hosted: BTreeMap<Cidr, BTreeSet<String>> = BTreeMap::new();
    for (name, nets) in &interfaces {
        if kind(sys_class_net, name) != Kind::Bridge {
            continue;
        }
        for net in nets.iter().copied().filter(|net| takeable(*net)) {
            hosted.entry(net).or_default();
        }
    }
    for (dev, net) in routes {
        // A route's link missing from the list (it came up since) has no address.
        let nets = interfaces.get(dev.as_str()).copied().unwrap_or_default();
        if takeable(*net) && container_link_in(sys_class_net, dev, nets) {
            hosted.entry(*net).or_default().insert(dev.clone());
        }
    }
    hosted
        .into_iter()
        .map(|(net, links)| HostedNetwork {
            net,
            links: links.into_iter().collect(),
        })
        .collect()
}

/// What an interface is, as far as hosting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bridge,
    /// A veth: one end of a container's link.
    ContainerLink,
    Other,
}

fn kind(sys_class_net: &Path, name: &str) -> Kind {
    // A name from a route or from the interface list, never a path of its own.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Kind::Other;
    }
    let dir = sys_class_net.join(name);
    let read = |file: &str| fs::read_to_string(dir.join(file)).unwrap_or_default();
    let uevent = read("uevent");
    if uevent.lines().any(|l| l == "DEVTYPE=bridge") {
        return Kind::Bridge;
    }
    let ethernet = read("type").trim() == "1";
    let virtual_ = !dir.join("device").exists();
    let plain = !uevent.lines().any(|l| l.starts_with("DEVTYPE="));
    let tap = dir.join("tun_flags").exists();
    let (iflink, ifindex) = (read("iflink"), read("ifindex"));
    let peered = !iflink.trim().is_empty() && iflink.trim() != ifindex.trim();
    if ethernet && virtual_ && plain && !tap && peered {
        Kind::ContainerLink
    } else {
        Kind::Other
    }
}

/// Whether a network can be a hosted one: not everything (a default route), not link-local
/// or multicast (every link has those).
fn takeable(net: Cidr) -> bool {
    if net.prefix() == 0 {
        return false;
    }
    match net.network() {
        IpAddr::V4(a) => !a.is_link_local() && !a.is_multicast() && !a.is_loopback(),
        IpAddr::V6(a) => !a.is_unicast_link_local() && !a.is_multicast() && !a.is_loopback(),
    }
}

/// Routes without a gateway from `/proc/net/route`: (device, destination). Lines that do not
/// parse are skipped.
fn ipv4_routes(text: &str) -> Vec<(String, Cidr)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dev, dest, gateway, flags, mask) =
                (f.first()?, f.get(1)?, f.get(2)?, f.get(3)?, f.get(7)?);
            let hex = |s: &str| u32::from_str_radix(s, 16).ok();
            if hex(flags)? & RTF_GATEWAY != 0 || hex(gateway)? != 0 {
                return None;
            }
            // The kernel prints each address as the integer its network-order bytes make.
            let dest = Ipv4Addr::from(hex(dest)?.to_ne_bytes());
            let mask = hex(mask)?.to_ne_bytes();
            let prefix = u8::try_from(u32::from_be_bytes(mask).leading_ones()).ok()?;
            Some(((*dev).to_owned(), Cidr::new(IpAddr::V4(dest), prefix).ok()?))
        })
        .collect()
}

/// Routes without a gateway from `/proc/net/ipv6_route`: (device, destination).
fn ipv6_routes(text: &str) -> Vec<(String, Cidr)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, prefix, flags, dev) = (f.first()?, f.get(1)?, f.get(8)?, f.get(9)?);
            if u32::from_str_radix(flags, 16).ok()? & RTF_GATEWAY != 0 {
                return None;
            }
            let dest = Ipv6Addr::from(u128::from_str_radix(dest, 16).ok()?);
            let prefix = u8::from_str_radix(prefix, 16).ok()?;
            Some(((*dev).to_owned(), Cidr::new(IpAddr::V6(dest), prefix).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/sys/class/net` entry: `uevent` lines, `type`, `ifindex`, `iflink`, and whether it
    /// has a device or `tun_flags`.
    fn link(root: &Path, name: &str, devtype: Option<&str>, index: u32, peer: u32, device: bool) {
        let dir = root.join(name);
        fs::create_dir_all(&dir).expect("dir");
        let uevent = match devtype {
            Some(t) => format!("DEVTYPE={t}\nINTERFACE={name}\nIFINDEX={index}\n"),
            None => format!("INTERFACE={name}\nIFINDEX={index}\n"),
        };
        fs::write(dir.join("uevent"), uevent).expect("uevent");
        fs::write(dir.join("type"), "1\n").expect("type");
        fs::write(dir.join("ifindex"), format!("{index}\n")).expect("ifindex");
        fs::write(dir.join("iflink"), format!("{peer}\n")).expect("iflink");
        if device {
            fs::create_dir_all(dir.join("device")).expect("device");
        }
    }

    fn cidr(text: &str) -> Cidr {
        text.parse().expect("cidr")
    }

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eni1a2b\t1701000A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wg0\t0000080A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eni1a2b\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
garbage line
";

    const ROUTE6: &str = "\
fd000000000000000000000000000017 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001  eni1a2b
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001  eni1a2b
20010db8000000000000000000000000 40 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003  eni1a2b
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn routes_parse_to_their_destinations_and_gateways_are_left_out() {
        let v4 = ipv4_routes(ROUTE);
        assert_eq!(
            v4,
            vec![
                ("eth0".to_owned(), cidr("10.0.0.0/24")),
                ("eni1a2b".to_owned(), cidr("10.0.1.23/32")),
                ("docker0".to_owned(), cidr("172.17.0.0/16")),
                ("wg0".to_owned(), cidr("10.8.0.0/24")),
                ("eni1a2b".to_owned(), cidr("0.0.0.0/0")),
            ]
        );
        let v6 = ipv6_routes(ROUTE6);
        assert_eq!(
            v6,
            vec![
                ("eni1a2b".to_owned(), cidr("fd00::17/128")),
                ("eni1a2b".to_owned(), cidr("fe80::/64")),
                ("lo".to_owned(), cidr("::/0")),
            ]
        );
    }

    #[test]
    fn bridges_and_routes_to_veths_are_hosted_and_nothing_else_is() {
        let root = tempfile::tempdir().expect("tempdir");
        let root = root.path();
        link(root, "eth0", None, 2, 2, true);
        link(root, "docker0", Some("bridge"), 3, 3, false);
        link(root, "eni1a2b", None, 7, 6, false);
        link(root, "wg0", Some("wireguard"), 8, 8, false);
        link(root, "dummy0", None, 9, 9, false);
        link(root, "tap0", None, 10, 10, false);
        fs::write(root.join("tap0").join("tun_flags"), "0x1002\n").expect("tun_flags");
        link(root, "vlan5", Some("vlan"), 11, 2, false);
        // The host's own uplink is a veth with an address (the host is a namespace).
        link(root, "uplink", None, 12, 40, false);
        let mut routes = ipv4_routes(ROUTE);
        routes.extend(ipv6_routes(ROUTE6));
        routes.push(("dummy0".to_owned(), cidr("192.0.2.0/24")));
        routes.push(("tap0".to_owned(), cidr("192.0.2.128/25")));
        routes.push(("vlan5".to_owned(), cidr("198.51.100.0/24")));
        routes.push(("../eth0".to_owned(), cidr("203.0.113.0/24")));
        routes.push(("uplink".to_owned(), cidr("100.64.0.0/24")));
        let eth0 = [cidr("10.0.0.5/24")];
        let docker0 = [cidr("172.17.0.1/16"), cidr("fe80::1/64")];
        let uplink = [cidr("100.64.0.2/24")];
        // Link-local only: still a container's link.
        let eni = [cidr("fe80::2/64")];
        let interfaces = [
            ("eth0", &eth0[..]),
            ("docker0", &docker0[..]),
            ("uplink", &uplink[..]),
            ("eni1a2b", &eni[..]),
        ];
        let hosted = |net: &str, links: &[&str]| HostedNetwork {
            net: cidr(net),
            links: links.iter().map(|l| (*l).to_owned()).collect(),
        };
        assert_eq!(
            hosted_in(root, interfaces, &routes),
            vec![
                hosted("10.0.1.23/32", &["eni1a2b"]),
                hosted("172.17.0.0/16", &[]),
                hosted("fd00::17/128", &["eni1a2b"]),
            ]
        );
    }

    #[test]
    fn a_container_link_is_a_veth_without_an_address_of_its_own() {
        let root = tempfile::tempdir().expect("tempdir");
        let root = root.path();
        link(root, "eth0", None, 2, 2, true);
        link(root, "eni1a2b", None, 7, 6, false);
        link(root, "docker0", Some("bridge"), 3, 3, false);
        assert!(container_link_in(root, "eni1a2b", &[cidr("fe80::2/64")]));
        assert!(container_link_in(root, "eni1a2b", &[]));
        assert!(!container_link_in(root, "eni1a2b", &[cidr("10.9.0.1/24")]));
        assert!(!container_link_in(root, "eth0", &[]));
        assert!(!container_link_in(root, "docker0", &[]));
        assert!(!container_link_in(root, "gone", &[]));
    }

    #[test]
    fn a_host_without_the_kernel_files_hosts_nothing() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(hosted_in(root.path(), [], &ipv4_routes(ROUTE)).is_empty());
    }
}
