//! Addresses as agents write them, parsed without `std`'s general parser for the common forms:
//! a dotted quad, or IPv6 hex groups with at most one `::`. `std` tries every form at every
//! step (an embedded IPv4 before each IPv6 group, for one): about 195 instructions per address
//! in the overhead bench's mix (a fifth IPv6) against about 105 here (callgrind). Anything
//! else (an IPv6 address with an embedded IPv4, stray characters) is handed to `std`, and what
//! these accept is exactly what `std` accepts, with the same value (see the tests, which
//! compare the two).
//! Hand-written: no crate parses a subset faster while deferring to `std` for the rest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `text` as an address, or `None` where `str::parse::<IpAddr>` fails.
pub fn parse(text: &str) -> Option<IpAddr> {
    let bytes = text.as_bytes();
    // An IPv6 address fails the dotted quad within its first five characters.
    dotted_quad(bytes)
        .map(IpAddr::V4)
        .or_else(|| ipv6_groups(bytes).map(IpAddr::V6))
        .or_else(|| text.parse().ok())
}

/// Four decimal octets without leading zeros (as `std` requires), read in one pass; `None`
/// for anything else, valid or not.
fn dotted_quad(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut done = 0;
    let (mut value, mut digits) = (0u16, 0u8);
    for &b in text {
        if b == b'.' {
            if digits == 0 || done == 3 {
                return None;
            }
            octets[done] = u8::try_from(value).ok()?;
            done += 1;
            (value, digits) = (0, 0);
            continue;
        }
        let digit = b.wrapping_sub(b'0');
        // A fourth digit, or a second one after a leading zero, is not std's octet.
        if digit > 9 || digits == 3 || (digits == 1 && value == 0) {
            return None;
        }
        value = value * 10 + u16::from(digit);
        digits += 1;
    }
    if done != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// A hex digit's value.
fn hex_digit(b: u8) -> Option<u16> {
    let value = match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => return None,
    };
    Some(u16::from(value))
}

/// One to four hex digits from the start of `text`: the group's value and its length.
fn hex_group(text: &[u8]) -> Option<(u16, usize)> {
    let mut value = 0u16;
    let mut len = 0;
    while len < 4 {
        let Some(digit) = text.get(len).copied().and_then(hex_digit) else {
            break;
        };
        value = (value << 4) | digit;
        len += 1;
    }
    (len > 0).then_some((value, len))
}

/// Groups separated by `:` from `text[*at..]`, as many as fit in `groups`, as `std` reads
/// them: a separator before every group but the first, a group being one to four hex digits;
/// stops before the first separator not followed by a group. Returns how many were read.
fn read_groups(text: &[u8], at: &mut usize, groups: &mut [u16]) -> usize {
    for (i, slot) in groups.iter_mut().enumerate() {
        let mut p = *at;
        if i > 0 {
            if text.get(p) != Some(&b':') {
                return i;
            }
            p += 1;
        }
        let Some((value, len)) = text.get(p..).and_then(hex_group) else {
            return i;
        };
        *slot = value;
        *at = p + len;
    }
    groups.len()
}

/// IPv6 written as hex groups with at most one `::`, parsed as `std` parses it; `None` for
/// anything else (in particular any `.`, which `std` may read as an embedded IPv4: only hex
/// digits and colons are consumed, and the whole text must be).
fn ipv6_groups(text: &[u8]) -> Option<Ipv6Addr> {
    let mut at = 0;
    let mut head = [0u16; 8];
    let head_len = read_groups(text, &mut at, &mut head);
    if head_len == 8 {
        return (at == text.len()).then_some(Ipv6Addr::from(head));
    }
    if text.get(at..at + 2) != Some(b"::") {
        return None;
    }
    at += 2;
    // `::` stands for at least one zero group, so head and tail hold seven at most.
    let mut tail = [0u16; 7];
    let tail_len = read_groups(text, &mut at, &mut tail[..7 - head_len]);
    if at != text.len() {
        return None;
    }
    head[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
    Some(Ipv6Addr::from(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_std(text: &str) {
        assert_eq!(parse(text), text.parse::<IpAddr>().ok(), "{text:?}");
    }

    #[test]
    fn common_forms_parse_as_std_parses_them() {
        for text in [
            "10.0.0.5",
            "198.51.100.7",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8:1::7",
            "fd00:ec2::253",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "FE80::aBcD",
            "0001:0db8::0000",
            "::ffff:10.0.0.1",
            "1:2:3:4:5:6:1.2.3.4",
        ] {
            same_as_std(text);
            assert!(parse(text).is_some(), "{text:?}");
        }
    }

    #[test]
    fn malformed_text_is_refused_as_std_refuses_it() {
        for text in [
            "",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "01.2.3.4",
            "256.1.1.1",
            "1.2.3.1000",
            "1..2.3",
            "+1.2.3.4",
            " 1.2.3.4",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::8",
            "1::2::3",
            ":1::2",
            "1::2:",
            ":::",
            "12345::",
            "g::1",
            "1::2%eth0",
            "[::1]",
            "not-an-ip",
        ] {
            same_as_std(text);
            assert!(parse(text).is_none(), "{text:?}");
        }
    }

    /// Every short string over the characters that matter, against `std`: whatever the fast
    /// paths accept or refuse, the answer must be `std`'s.
    #[test]
    fn every_short_string_of_digits_dots_and_colons_parses_as_std_parses_it() {
        const ALPHABET: &[u8] = b"0129af:.";
        let mut text = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..(ALPHABET.len() as u64).pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(ALPHABET[(n % ALPHABET.len() as u64) as usize]);
                    n /= ALPHABET.len() as u64;
                }
                same_as_std(std::str::from_utf8(&text).expect("ascii"));
            }
        }
    }

    /// Random longer strings built from address-like pieces, against `std`.
    #[test]
    fn random_address_like_strings_parse_as_std_parses_them() {
        const PIECES: [&str; 14] = [
            "0", "1", "00", "255", "256", "ffff", "FfFf", "12345", "db8", ":", "::", ".", "1.2",
            "10.0.0",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let mut text = String::new();
            for _ in 0..(next() % 12) {
                text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            same_as_std(&text);
        }
    }
}
