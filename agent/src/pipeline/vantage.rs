//! Which packets a live capture leaves to another capture of the same host, so that a
//! container's traffic is counted once.
//!
//! A container's packets cross its own link (the host end of its veth), then the bridge or the
//! host's routing, then the uplink when they are not NATed (the EKS VPC CNI's pod addresses are
//! not). With every interface captured, as by default, each capture would count them, and the
//! aggregator would see each container flow two or three times: double the bytes, one scan
//! reported as two. The rule, where a hosted network's containers' links are all captured:
//!
//! - a packet with an end in such a network (an address that is not the host's own) is counted
//!   on a container's link, never on a bridge or an uplink;
//! - when both ends are such containers (two pods of one node), it is counted on the link of the
//!   lower address only, so both directions of a flow land on the same link and the flow
//!   stays whole.
//!
//! A pod's network is its route's, handed to its link when that link is captured. A bridge's
//! network says nothing of which port a container is on, so a port's capture learns its
//! container's address from what the container sends (`HostAddresses::learn`), and the address
//! is counted at its link from then on; until then the container is counted where it is seen.
//!
//! On a container's link the container is the sender of what the kernel received there and
//! the receiver of what it sent out (`PACKET_OUTGOING`). Where that cannot be told (`pnet`'s
//! channel, when the ring could not be had) the link counts every packet, as before.
//!
//! A container's traffic NATed to the host's address (Docker's masquerade and published ports,
//! the EKS VPC CNI's SNAT) cannot be told by address on the uplink, nor a pod's connection to a
//! service that kube-proxy DNATs to another pod of the node on that pod's link;
//! `pipeline::nat` asks the kernel's connection tracking for them.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::flow_table::{Cidr, LocalNets};

/// What one capture counts on a host whose containers' links are captured.
#[derive(Debug, Clone, Default)]
pub struct Vantage {
    /// The capture is on a container's own link.
    container_link: bool,
    /// The host's own addresses, never a container's even inside a container network (a
    /// bridge's own address).
    own: Vec<IpAddr>,
    /// Single-address networks counted at their links (a pod's route), looked up by hash: a
    /// node can have a hundred.
    hosts: HashSet<IpAddr, foldhash::fast::RandomState>,
    /// Wider networks counted at their links.
    nets: Vec<Cidr>,
    /// Every hosted network, counted at links or not: a bridge's, whose containers this
    /// link's capture learns by seeing them send.
    hosted: Vec<Cidr>,
}

impl Vantage {
    /// The vantage of a capture (on a container's link or not) given the host's networks.
    pub fn new(container_link: bool, local: &LocalNets) -> Self {
        let (single, wide): (Vec<Cidr>, Vec<Cidr>) = local
            .counted_at_links()
            .iter()
            .partition(|net| net.host().is_some());
        Self {
            container_link,
            own: local.host_addresses().collect(),
            hosts: single.iter().filter_map(Cidr::host).collect(),
            nets: wide,
            hosted: local.hosted().to_vec(),
        }
    }

    /// Whether a packet from `src` (`outgoing` as the kernel said) shows a container of a
    /// hosted network behind this link that is not counted at a link yet: a bridged
    /// container sending through its port.
    pub fn learns(&self, src: IpAddr, outgoing: Option<bool>) -> bool {
        // Cheapest first: on a pod's link the sender is a routed pod, found by hash, and the
        // scan of every hosted network (a hundred on a busy node) is never reached.
        self.container_link
            && outgoing == Some(false)
            && !self.at_link(src)
            && !self.own.contains(&src)
            && self.hosted.iter().any(|n| n.contains(src))
    }

    /// Whether this vantage leaves to containers' links something that `before` counted
    /// here: a container newly counted at its link, or an address no longer the host's.
    pub fn leaves_more_than(&self, before: &Self) -> bool {
        self.hosts.iter().any(|a| !before.hosts.contains(a))
            || self.nets.iter().any(|n| !before.nets.contains(n))
            || before.own.iter().any(|a| !self.own.contains(a))
    }

    /// Whether the capture is on a container's own link.
    pub fn container_link(&self) -> bool {
        self.container_link
    }

    /// Whether any container is counted at its link (the host has containers).
    pub fn has_links(&self) -> bool {
        !(self.hosts.is_empty() && self.nets.is_empty())
    }

    /// Whether `addr` is one of the host's own addresses.
    pub fn is_own(&self, addr: IpAddr) -> bool {
        self.own.contains(&addr)
    }

    /// Whether this capture counts a packet from `src` to `dst`, which the host sent out
    /// through the capturing interface when `outgoing` (as the kernel says, if it does).
    #[inline]
    pub fn counts(&self, src: IpAddr, dst: IpAddr, outgoing: Option<bool>) -> bool {
        // A host without containers (and replay) stops here.
        if !self.has_links() {
            return true;
        }
        self.counts_with_containers(src, dst, outgoing)
    }

    fn counts_with_containers(&self, src: IpAddr, dst: IpAddr, outgoing: Option<bool>) -> bool {
        let counted_at_link = match (self.at_link(src), self.at_link(dst)) {
            (false, false) => return true,
            (true, false) => src,
            (false, true) => dst,
            (true, true) => src.min(dst),
        };
        if !self.container_link {
            return false;
        }
        match outgoing {
            // The container behind this link: the receiver of what the host sent out here.
            Some(true) => dst == counted_at_link,
            Some(false) => src == counted_at_link,
            None => true,
        }
    }

    /// Whether `addr` is a container's, counted on its link.
    pub fn at_link(&self, addr: IpAddr) -> bool {
        (self.hosts.contains(&addr) || self.nets.iter().any(|n| n.contains(addr)))
            && !self.own.contains(&addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn cidr(text: &str) -> Cidr {
        text.parse().expect("cidr")
    }

    /// A node with an uplink address 10.0.0.5, a Docker bridge (172.17.0.1/16) and two pods
    /// routed to their own links; the bridge's and the pods' links are captured.
    fn node() -> LocalNets {
        let hosted = [
            cidr("172.17.0.0/16"),
            cidr("10.0.1.23/32"),
            cidr("10.0.1.40/32"),
            cidr("fd00::17/128"),
        ];
        LocalNets::new([cidr("10.0.0.5/32"), cidr("172.17.0.1/32")])
            .with_counted_at_links(hosted)
            .with_hosted(hosted)
    }

    /// Where a packet from `src` to `dst` is counted among an uplink, the link of `a` and the
    /// link of `b` (each seeing it as the kernel would: out to the container, in from it).
    fn counted_on(src: &str, dst: &str, a: &str, b: &str) -> Vec<&'static str> {
        let (src, dst) = (ip(src), ip(dst));
        let uplink = Vantage::new(false, &node());
        let link = Vantage::new(true, &node());
        let mut on = Vec::new();
        if uplink.counts(src, dst, Some(false)) && uplink.counts(src, dst, Some(true)) {
            on.push("uplink");
        }
        for (name, behind) in [("a", ip(a)), ("b", ip(b))] {
            // The link carries the packet only if its container is one of the ends.
            if behind != src && behind != dst {
                continue;
            }
            if link.counts(src, dst, Some(behind == dst)) {
                on.push(name);
            }
        }
        on
    }

    #[test]
    fn a_host_without_containers_counts_everything_everywhere() {
        let uplink = Vantage::new(false, &LocalNets::new([cidr("10.0.0.5/32")]));
        assert!(uplink.counts(ip("10.0.0.5"), ip("192.0.2.1"), Some(true)));
        assert!(uplink.counts(ip("10.0.1.23"), ip("192.0.2.1"), None));
        let replay = Vantage::default();
        assert!(replay.counts(ip("10.0.1.23"), ip("192.0.2.1"), None));
    }

    #[test]
    fn a_containers_traffic_is_counted_on_its_own_link_only() {
        // (source, destination, link a's container, link b's container, counted on)
        for (src, dst, a, b, on) in [
            // A pod and the internet, both ways.
            ("10.0.1.23", "192.0.2.1", "10.0.1.23", "10.0.1.40", "a"),
            ("192.0.2.1", "10.0.1.23", "10.0.1.23", "10.0.1.40", "a"),
            // A bridged container and the host's own bridge address.
            ("172.17.0.1", "172.17.0.2", "172.17.0.2", "10.0.1.40", "a"),
            ("172.17.0.2", "172.17.0.1", "172.17.0.2", "10.0.1.40", "a"),
            // An IPv6 pod.
            ("fd00::17", "2001:db8::1", "fd00::17", "10.0.1.40", "a"),
            // The host's own traffic is the uplink's.
            ("10.0.0.5", "192.0.2.1", "10.9.9.9", "10.9.9.8", "uplink"),
        ] {
            assert_eq!(counted_on(src, dst, a, b), [on], "{src} -> {dst}");
        }
    }

    #[test]
    fn two_pods_flow_is_counted_whole_on_the_lower_addresses_link() {
        for (src, dst) in [("10.0.1.23", "10.0.1.40"), ("10.0.1.40", "10.0.1.23")] {
            assert_eq!(
                counted_on(src, dst, "10.0.1.23", "10.0.1.40"),
                ["a"],
                "{src} -> {dst}"
            );
        }
        for (src, dst) in [("172.17.0.9", "172.17.0.3"), ("172.17.0.3", "172.17.0.9")] {
            assert_eq!(
                counted_on(src, dst, "172.17.0.9", "172.17.0.3"),
                ["b"],
                "{src} -> {dst}"
            );
        }
    }

    #[test]
    fn networks_whose_links_are_not_captured_are_counted_where_seen() {
        // The pod's route is hosted (direction) but its link is not captured.
        let local = LocalNets::new([cidr("10.0.0.5/32")]).with_hosted([cidr("10.0.1.23/32")]);
        let uplink = Vantage::new(false, &local);
        assert!(uplink.counts(ip("10.0.1.23"), ip("192.0.2.1"), Some(true)));
    }

    #[test]
    fn a_link_that_cannot_tell_which_way_counts_everything() {
        let link = Vantage::new(true, &node());
        assert!(link.counts(ip("10.0.1.40"), ip("10.0.1.23"), None));
        assert!(link.container_link());
    }

    #[test]
    fn only_a_container_newly_counted_at_its_link_is_left_by_a_change() {
        let before = Vantage::new(false, &node());
        let more = node().with_counted_at_links([cidr("10.0.1.99/32")]);
        assert!(Vantage::new(false, &more).leaves_more_than(&before));
        let fewer = LocalNets::new([cidr("10.0.0.5/32"), cidr("172.17.0.1/32")])
            .with_counted_at_links([cidr("10.0.1.23/32")]);
        assert!(!Vantage::new(false, &fewer).leaves_more_than(&before));
        // The bridge's gateway address no longer the host's: it is a container's now.
        let gateway_gone = LocalNets::new([cidr("10.0.0.5/32")])
            .with_counted_at_links(node().counted_at_links().to_vec());
        assert!(Vantage::new(false, &gateway_gone).leaves_more_than(&before));
    }
}
