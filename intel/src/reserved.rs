//! Special-purpose address ranges that never belong on a threat list.
//!
//! Real feeds contain `127.0.0.1`, `10.x` and documentation addresses; flagging them would turn
//! every host's own traffic into findings. GuardDuty applies lists only to publicly routable
//! addresses, so Picket drops such entries when loading (with a warning) and the matcher also
//! never reports them, even when a broad CIDR on a list covers them.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One special-purpose range and why it is special.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedRange {
    /// The range itself.
    pub net: IpNet,
    /// What the range is for, e.g. `private (RFC 1918)`.
    pub name: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8, name: &'static str) -> ReservedRange {
    ReservedRange {
        net: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)),
        name,
    }
}

const fn v6(hi: u16, second: u16, len: u8, name: &'static str) -> ReservedRange {
    ReservedRange {
        net: IpNet::V6(Ipv6Net::new_assert(
            Ipv6Addr::new(hi, second, 0, 0, 0, 0, 0, 0),
            len,
        )),
        name,
    }
}

/// Every special-purpose range Picket ignores, from RFC 6890 and its IPv6 counterparts.
pub const RESERVED_RANGES: &[ReservedRange] = &[
    v4(0, 0, 0, 0, 8, "unspecified (\"this network\", RFC 1122)"),
    v4(10, 0, 0, 0, 8, "private (RFC 1918)"),
    v4(100, 64, 0, 0, 10, "carrier-grade NAT (RFC 6598)"),
    v4(127, 0, 0, 0, 8, "loopback"),
    v4(169, 254, 0, 0, 16, "link-local"),
    v4(172, 16, 0, 0, 12, "private (RFC 1918)"),
    v4(192, 0, 2, 0, 24, "documentation (RFC 5737)"),
    v4(192, 168, 0, 0, 16, "private (RFC 1918)"),
    v4(198, 51, 100, 0, 24, "documentation (RFC 5737)"),
    v4(203, 0, 113, 0, 24, "documentation (RFC 5737)"),
    v4(224, 0, 0, 0, 4, "multicast"),
    v4(240, 0, 0, 0, 4, "reserved and broadcast"),
    v6(0, 0, 128, "unspecified"),
    ReservedRange {
        net: IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
        name: "loopback",
    },
    v6(0x2001, 0x0db8, 32, "documentation (RFC 3849)"),
    v6(0xfc00, 0, 7, "unique local (RFC 4193)"),
    v6(0xfe80, 0, 10, "link-local"),
    v6(0xff00, 0, 8, "multicast"),
];

/// The special-purpose range that wholly contains `net`, if any.
pub fn containing_range(net: &IpNet) -> Option<&'static ReservedRange> {
    RESERVED_RANGES.iter().find(|r| r.net.contains(net))
}

/// The special-purpose range `ip` falls in, if any.
pub fn range_of(ip: IpAddr) -> Option<&'static ReservedRange> {
    RESERVED_RANGES.iter().find(|r| r.net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn loopback_private_documentation_and_cgnat_addresses_are_reserved() {
        for s in [
            "127.0.0.1",
            "10.170.0.16",
            "192.168.5.145",
            "172.31.255.255",
            "100.64.0.1",
            "169.254.169.254",
            "192.0.2.4",
            "198.51.100.1",
            "203.0.113.34",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.251",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(range_of(ip(s)).is_some(), "{s} should be reserved");
        }
    }

    #[test]
    fn public_addresses_are_not_reserved() {
        for s in [
            "8.8.8.8",
            "1.4.0.1",
            "172.32.0.1",
            "100.128.0.1",
            "2a06:e480::1",
        ] {
            assert_eq!(range_of(ip(s)), None, "{s} should be public");
        }
    }

    #[test]
    fn a_network_is_reserved_only_when_wholly_inside_a_range() {
        let inside: IpNet = "10.1.0.0/16".parse().expect("net");
        let covering: IpNet = "8.0.0.0/5".parse().expect("net");
        assert_eq!(
            containing_range(&inside).map(|r| r.name),
            Some("private (RFC 1918)")
        );
        assert_eq!(containing_range(&covering), None);
    }
}
