//! Addresses as the text `IpAddr`'s `Display` writes, without the formatting machinery: a
//! summary carries two or three addresses, and through `to_string` they cost about a
//! thousand instructions each (an IPv6 one several), as much as the rest of the summary.
//!
//! Hand-written where std does the same: IPv4 as dotted decimal; IPv6 as std writes it
//! (RFC 5952): an IPv4-mapped address as `::ffff:a.b.c.d`, otherwise lowercase hex groups
//! without leading zeros, the first longest run of two or more zero groups written `::`.
//! The tests hold it to `to_string` on arbitrary addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `addr` as `addr.to_string()` writes it.
pub fn addr_text(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            push_v4(&mut text, v4);
            text
        }
        IpAddr::V6(v6) => {
            let mut text = String::with_capacity(39);
            push_v6(&mut text, v6);
            text
        }
    }
}

fn push_v4(text: &mut String, v4: Ipv4Addr) {
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
}

fn push_v6(text: &mut String, v6: Ipv6Addr) {
    if let Some(v4) = v6.to_ipv4_mapped() {
        text.push_str("::ffff:");
        push_v4(text, v4);
        return;
    }
    let groups = v6.segments();
    // The first longest run of zero groups: (start, length).
    let mut longest = (0, 0);
    let mut run = (0, 0);
    for (i, group) in groups.iter().enumerate() {
        if *group == 0 {
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > longest.1 {
                longest = run;
            }
        } else {
            run.1 = 0;
        }
    }
    if longest.1 > 1 {
        let (head, rest) = groups.split_at(longest.0.min(groups.len()));
        push_groups(text, head);
        text.push_str("::");
        push_groups(text, rest.get(longest.1..).unwrap_or_default());
    } else {
        push_groups(text, &groups);
    }
}

fn push_groups(text: &mut String, groups: &[u16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        // Leading zero digits are left out; the last digit is always written.
        let mut started = false;
        for shift in [12_u16, 8, 4, 0] {
            let digit = usize::from((group >> shift) & 0xf);
            if digit != 0 || started || shift == 0 {
                started = true;
                text.push(char::from(HEX[digit]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Groups that are often zero, so runs of zeros (and the IPv4-mapped and -compatible
    /// forms) are common rather than one in 2^16.
    fn group() -> impl Strategy<Value = u16> {
        prop_oneof![Just(0_u16), Just(0xffff), 0_u16..0x20, any::<u16>()]
    }

    proptest! {
        #[test]
        fn ipv4_text_is_what_to_string_writes(bits in any::<u32>()) {
            let addr = IpAddr::V4(Ipv4Addr::from(bits));
            prop_assert_eq!(addr_text(addr), addr.to_string());
        }

        #[test]
        fn ipv6_text_is_what_to_string_writes(bits in any::<u128>()) {
            let addr = IpAddr::V6(Ipv6Addr::from(bits));
            prop_assert_eq!(addr_text(addr), addr.to_string());
        }

        #[test]
        fn ipv6_with_zero_runs_is_written_as_to_string_writes_it(groups in prop::array::uniform8(group())) {
            let addr = IpAddr::V6(Ipv6Addr::from(groups));
            prop_assert_eq!(addr_text(addr), addr.to_string());
        }
    }

    #[test]
    fn addresses_at_the_edges_are_written_as_to_string_writes_them() {
        let addrs = [
            "0.0.0.0",
            "1.0.0.127",
            "10.9.99.100",
            "255.255.255.255",
            "::",
            "::1",
            "1::",
            "1:0:1:0:1:0:1:0",
            "1:0:0:1:0:0:0:1",
            "1:0:0:1:0:0:1:1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "fd00:db8::5",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        for text in addrs {
            let addr: IpAddr = text.parse().expect("address");
            assert_eq!(addr_text(addr), addr.to_string(), "{text}");
        }
    }
}
