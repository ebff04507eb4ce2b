//! Reading `sourceIPAddress`, which real trails fill with more than addresses: dotted quads with
//! leading zeros (`08.1.250.216`), AWS service names (`ec2.amazonaws.com`), `AWS Internal`,
//! and lists (`81.2.69.142, 192.168.10.10`).

use std::net::{IpAddr, Ipv4Addr};

use super::event::CallerAddress;

/// A dotted quad whose octets may carry leading zeros, read as decimal (`08` is 8, not an
/// octal error): CloudTrail writes such addresses and they name real callers.
pub fn parse_lenient_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse::<u8>().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// One address, strict first, then the lenient IPv4 form.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    // `[2001:db8::1]` appears in some exports.
    let s = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| parse_lenient_ipv4(s).map(IpAddr::V4))
}

/// Whether a non-address value names AWS itself as the caller.
fn is_aws_service(s: &str) -> bool {
    s == "AWS Internal" || s.ends_with(".amazonaws.com") || s.ends_with(".amazonaws.com.cn")
}

/// Classifies a `sourceIPAddress` value; nothing is dropped (unknown text is kept verbatim).
pub fn caller_address(raw: &str) -> CallerAddress {
    let s = raw.trim();
    if s.is_empty() {
        return CallerAddress::Missing;
    }
    if let Some(ip) = parse_ip(s) {
        return CallerAddress::Ip(ip);
    }
    if is_aws_service(s) {
        return CallerAddress::AwsService(s.to_owned());
    }
    CallerAddress::Other {
        raw: s.to_owned(),
        first_ip: s.split([',', ' ']).find_map(|part| {
            let part = part.trim();
            (!part.is_empty()).then(|| parse_ip(part)).flatten()
        }),
    }
}

/// Whether an address can name an outside caller: not loopback, private, link-local,
/// documentation, shared, multicast or unspecified. Threat lists sometimes list such
/// addresses; a caller from one of them is never "malicious".
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [o0, o1, o2, _] = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o0 == 0
                || (o0 == 100 && (64..128).contains(&o1))
                || (o0 == 192 && o1 == 0 && o2 == 0)
                || (o0 == 198 && (o1 == 18 || o1 == 19))
                || o0 >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg0 = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00
                || (seg0 & 0xffc0) == 0xfe80
                || (seg0 == 0x2001 && a.segments()[1] == 0x0db8))
        }
    }
}

/// The network an address belongs to for "distinct networks" counts: the /24 of an IPv4
/// address, the /48 of an IPv6 one.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let [o0, o1, o2, _] = a.octets();
            IpAddr::V4(Ipv4Addr::new(o0, o1, o2, 0))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_read_as_decimal() {
        assert_eq!(
            caller_address("08.1.250.216"),
            CallerAddress::Ip("8.1.250.216".parse().expect("ip"))
        );
        assert_eq!(
            parse_lenient_ipv4("010.001.002.003"),
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(parse_lenient_ipv4("256.1.1.1"), None);
        assert_eq!(parse_lenient_ipv4("1.2.3"), None);
        assert_eq!(parse_lenient_ipv4("1.2.3.4.5"), None);
        assert_eq!(parse_lenient_ipv4("1.2.3.0004"), None);
    }

    #[test]
    fn service_names_and_aws_internal_are_aws_callers() {
        assert_eq!(
            caller_address("ec2.amazonaws.com"),
            CallerAddress::AwsService("ec2.amazonaws.com".into())
        );
        assert_eq!(
            caller_address("AWS Internal"),
            CallerAddress::AwsService("AWS Internal".into())
        );
        assert_eq!(caller_address(""), CallerAddress::Missing);
    }

    #[test]
    fn a_comma_joined_pair_keeps_the_text_and_the_first_address() {
        let a = caller_address("81.2.69.142, 192.168.10.10");
        assert_eq!(a.ip(), Some("81.2.69.142".parse().expect("ip")));
        assert!(
            matches!(a, CallerAddress::Other { ref raw, .. } if raw == "81.2.69.142, 192.168.10.10")
        );
        let redacted = caller_address("redacted");
        assert_eq!(redacted.ip(), None);
    }

    #[test]
    fn private_loopback_and_documentation_addresses_are_not_public() {
        for s in [
            "10.1.2.3",
            "127.0.0.1",
            "192.168.1.1",
            "198.51.100.7",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(s.parse().expect("ip")), "{s}");
        }
        for s in ["8.8.8.8", "81.2.69.142", "2a00:1450::1"] {
            assert!(is_public(s.parse().expect("ip")), "{s}");
        }
    }
}
