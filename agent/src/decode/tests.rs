//! Crafted frames for every link type and layer, including truncated and lying ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::capture::{LinkType, Packet};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    v.push(5 << 4);
    v.push(flags);
    v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    let len = u16::try_from(payload.len() + 8).expect("small payload");
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

fn icmp_echo(kind: u8, id: u16) -> Vec<u8> {
    let mut v = vec![kind, 0, 0, 0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&[0, 1, 0xaa, 0xbb]);
    v
}

fn ipv4_frag(protocol: u8, payload: &[u8], id: u16, flags_offset: u16) -> Vec<u8> {
    let total = u16::try_from(payload.len() + 20).expect("small payload");
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&flags_offset.to_be_bytes());
    v.extend_from_slice(&[64, protocol, 0, 0]);
    v.extend_from_slice(&A.octets());
    v.extend_from_slice(&B.octets());
    v.extend_from_slice(payload);
    v
}

fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_frag(protocol, payload, 7, 0x4000)
}

fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("small payload");
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&v6(1).octets());
    v.extend_from_slice(&v6(2).octets());
    v.extend_from_slice(payload);
    v
}

/// An extension header of `len8` extra 8-octet units (generic format).
fn ext(next: u8, len8: u8) -> Vec<u8> {
    let mut v = vec![next, len8];
    v.resize((usize::from(len8) + 1) * 8, 0);
    v
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn vlan(tpid: u16, id: u16, inner: u16) -> Vec<u8> {
    let mut v = tpid.to_be_bytes().to_vec();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&inner.to_be_bytes());
    v
}

fn decoded(link: LinkType, frame: &[u8]) -> Decoded<'_> {
    match decode(link, frame, false) {
        Ok(Outcome::Decoded(d)) => d,
        other => panic!("expected a decoded packet, got {other:?}"),
    }
}

fn error(link: LinkType, frame: &[u8]) -> DecodeError {
    match decode(link, frame, false) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn skipped(link: LinkType, frame: &[u8]) -> SkipKind {
    match decode(link, frame, false) {
        Ok(Outcome::Skipped(kind)) => kind,
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[test]
fn ethernet_ipv4_tcp_syn_gives_ports_flags_and_lengths() {
    let frame = eth(0x0800, &ipv4(6, &tcp(40000, 443, TcpFlags::SYN, b"")));
    let d = decoded(LinkType::ETHERNET, &frame);
    assert_eq!((d.src, d.dst), (IpAddr::V4(A), IpAddr::V4(B)));
    assert_eq!(d.protocol, protocol::TCP);
    assert_eq!(d.ports(), Some((40000, 443)));
    assert!(d.transport.tcp_flags().is_syn_only());
    assert!(
        matches!(d.transport, Transport::Tcp { seq: 1, .. }),
        "{:?}",
        d.transport
    );
    assert_eq!((d.ip_total_len, d.ip_payload_len), (40, 20));
    assert_eq!(d.fragment, None, "DF set, no offset: not a fragment");
    assert_eq!(d.vlan, None);
}

#[test]
fn ethernet_padding_after_the_ip_total_length_is_not_payload() {
    let mut frame = eth(0x0800, &ipv4(17, &udp(5353, 53, b"abc")));
    frame.extend_from_slice(&[0; 12]);
    let d = decoded(LinkType::ETHERNET, &frame);
    assert_eq!(d.payload, b"abc");
}

#[test]
fn vlan_and_qinq_tags_are_walked_and_the_outer_id_kept() {
    for tpid in [0x8100, 0x88a8, 0x9100] {
        // Outer tag (TPID `tpid`, VID 10) announces an inner 802.1Q tag (VID 20), then IPv4.
        let mut tags = 10_u16.to_be_bytes().to_vec();
        tags.extend_from_slice(&vlan(0x8100, 20, 0x0800));
        tags.extend_from_slice(&ipv4(17, &udp(1, 2, b"")));
        let frame = eth(tpid, &tags);
        let d = decoded(LinkType::ETHERNET, &frame);
        assert_eq!(d.vlan, Some(10), "tpid {tpid:#x}");
        assert_eq!(d.ports(), Some((1, 2)));
    }
    // The priority bits are not part of the id.
    let mut tagged = (0xe000_u16 | 7).to_be_bytes().to_vec();
    tagged.extend_from_slice(&0x0800_u16.to_be_bytes());
    tagged.extend_from_slice(&ipv4(17, &udp(1, 2, b"")));
    assert_eq!(
        decoded(LinkType::ETHERNET, &eth(0x8100, &tagged)).vlan,
        Some(7)
    );
}

#[test]
fn too_many_vlan_tags_are_an_error_not_a_loop() {
    let mut payload = Vec::new();
    for _ in 0..=ethernet::MAX_VLAN_TAGS {
        payload.extend_from_slice(&[0, 1, 0x81, 0x00]);
    }
    payload.extend_from_slice(&ipv4(17, &udp(1, 2, b"")));
    let err = error(LinkType::ETHERNET, &eth(0x8100, &payload));
    assert_eq!(err.kind, ErrorKind::TooManyVlanTags);
    assert_eq!(err.kind.as_str(), "too_many_vlan_tags");
}

#[test]
fn truncated_vlan_tag_is_reported_at_the_vlan_layer() {
    let err = error(LinkType::ETHERNET, &eth(0x8100, &[0, 1]));
    assert_eq!(err, DecodeError::truncated(Layer::Vlan, 4, 2));
}

#[test]
fn arp_llc_and_unknown_ethertypes_are_skipped_by_kind() {
    assert_eq!(
        skipped(LinkType::ETHERNET, &eth(0x0806, &[0; 28])),
        SkipKind::Arp
    );
    assert_eq!(
        skipped(LinkType::ETHERNET, &eth(0x0026, &[0; 38])),
        SkipKind::Llc
    );
    assert_eq!(
        skipped(LinkType::ETHERNET, &eth(0x88cc, &[0; 30])),
        SkipKind::OtherEthertype
    );
    assert_eq!(
        skipped(LinkType(147), &[1, 2, 3]),
        SkipKind::UnknownLinkType
    );
}

#[test]
fn pppoe_sessions_carry_ipv4_and_ipv6_and_other_ppp_is_skipped() {
    let session = |ppp: u16, payload: &[u8]| {
        let mut v = vec![0x11, 0, 0, 1, 0, 0];
        v.extend_from_slice(&ppp.to_be_bytes());
        v.extend_from_slice(payload);
        eth(0x8864, &v)
    };
    let frame = session(0x0021, &ipv4(17, &udp(1, 53, b"")));
    assert_eq!(decoded(LinkType::ETHERNET, &frame).ports(), Some((1, 53)));
    let frame = session(0x0057, &ipv6(17, &udp(2, 53, b"")));
    assert_eq!(decoded(LinkType::ETHERNET, &frame).ports(), Some((2, 53)));
    let lcp = session(0xc021, &[1, 1, 0, 4]);
    assert_eq!(skipped(LinkType::ETHERNET, &lcp), SkipKind::OtherEthertype);
    let short = eth(0x8864, &[0x11, 0, 0, 1]);
    assert_eq!(
        error(LinkType::ETHERNET, &short),
        DecodeError::truncated(Layer::Pppoe, 8, 4)
    );
}

fn vxlan(flags: u8, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, 0, 0, 0];
    v.extend_from_slice(&vni.to_be_bytes()[1..]);
    v.push(0);
    v.extend_from_slice(inner);
    eth(0x0800, &ipv4(17, &udp(50000, tunnel::VXLAN_PORT, &v)))
}

fn geneve(protocol_type: u16, options: &[u8], vni: u32, inner: &[u8]) -> Vec<u8> {
    let words = u8::try_from(options.len() / 4).expect("small options");
    let mut v = vec![words, 0];
    v.extend_from_slice(&protocol_type.to_be_bytes());
    v.extend_from_slice(&vni.to_be_bytes()[1..]);
    v.push(0);
    v.extend_from_slice(options);
    v.extend_from_slice(inner);
    eth(0x0800, &ipv4(17, &udp(50000, tunnel::GENEVE_PORT, &v)))
}

#[test]
fn vxlan_and_geneve_are_unwrapped_to_the_inner_packet() {
    let inner = eth(0x86dd, &ipv6(58, &icmp_echo(128, 3)));
    let frame = vxlan(0x08, 0x00ab_cdef, &inner);
    let d = decoded(LinkType::ETHERNET, &frame);
    assert_eq!((d.src, d.protocol), (IpAddr::V6(v6(1)), protocol::ICMPV6));
    let tunnel = d.tunnel.expect("tunnel");
    assert_eq!((tunnel.kind, tunnel.vni), (TunnelKind::Vxlan, 0x00ab_cdef));
    assert_eq!(
        (tunnel.outer_src, tunnel.outer_dst),
        (IpAddr::V4(A), IpAddr::V4(B))
    );
    let frame = geneve(0x6558, &[0; 8], 42, &inner);
    let d = decoded(LinkType::ETHERNET, &frame);
    assert_eq!(d.src, IpAddr::V6(v6(1)));
    assert_eq!(
        d.tunnel.map(|t| (t.kind, t.vni)),
        Some((TunnelKind::Geneve, 42))
    );
    let arp = vxlan(0x08, 1, &eth(0x0806, &[0; 28]));
    assert_eq!(skipped(LinkType::ETHERNET, &arp), SkipKind::Arp);
}

#[test]
fn tunnel_ports_without_a_valid_tunnel_header_stay_udp() {
    let inner = eth(0x86dd, &ipv6(58, &icmp_echo(128, 3)));
    for frame in [
        vxlan(0x00, 1, &inner),
        geneve(0x0800, &[], 1, &inner),
        // Options (5 words claimed, 1 present) longer than the payload.
        {
            let mut f = geneve(0x6558, &[0; 4], 1, &[]);
            f[14 + 20 + 8] = 5;
            f
        },
    ] {
        let d = decoded(LinkType::ETHERNET, &frame);
        assert_eq!(d.tunnel, None);
        assert!(matches!(
            d.transport,
            Transport::Udp {
                dst_port: 4789 | 6081,
                ..
            }
        ));
    }
    // A valid tunnel header around a truncated frame is an error in the inner frame.
    let err = error(LinkType::ETHERNET, &vxlan(0x08, 1, &[0; 10]));
    assert_eq!(err, DecodeError::truncated(Layer::Ethernet, 14, 10));
}

#[test]
fn tunnels_nested_past_the_depth_cap_are_left_wrapped() {
    let mut frame = eth(0x0800, &ipv4(6, &tcp(1, 2, TcpFlags::SYN, b"")));
    for _ in 0..=tunnel::MAX_TUNNEL_DEPTH {
        frame = vxlan(0x08, 7, &frame);
    }
    let d = decoded(LinkType::ETHERNET, &frame);
    assert!(d.tunnel.is_some());
    assert!(
        matches!(d.transport, Transport::Udp { dst_port: 4789, .. }),
        "{:?}",
        d.transport
    );
    // Exactly at the cap, the innermost packet comes out.
    let mut frame = eth(0x0800, &ipv4(6, &tcp(1, 2, TcpFlags::SYN, b"")));
    for _ in 0..tunnel::MAX_TUNNEL_DEPTH {
        frame = vxlan(0x08, 7, &frame);
    }
    assert_eq!(decoded(LinkType::ETHERNET, &frame).ports(), Some((1, 2)));
}

#[test]
fn short_ethernet_header_is_truncated() {
    assert_eq!(
        error(LinkType::ETHERNET, &[0; 13]),
        DecodeError::truncated(Layer::Ethernet, 14, 13)
    );
    assert_eq!(
        error(LinkType::ETHERNET, &[]),
        DecodeError::truncated(Layer::Ethernet, 14, 0)
    );
}

fn sll_v1(protocol: u16, hatype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 4];
    v.extend_from_slice(&hatype.to_be_bytes());
    v.extend_from_slice(&[0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    v.extend_from_slice(&protocol.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn sll_v2(protocol: u16, hatype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = protocol.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 3]);
    v.extend_from_slice(&hatype.to_be_bytes());
    v.extend_from_slice(&[4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    v.extend_from_slice(payload);
    v
}

#[test]
fn linux_cooked_v1_and_v2_carry_ipv4_and_ipv6() {
    let v4 = ipv4(6, &tcp(1234, 80, TcpFlags::ACK, b"GET"));
    let six = ipv6(17, &udp(5000, 53, b"q"));
    let frame = sll_v1(0x0800, 1, &v4);
    let d = decoded(LinkType::LINUX_SLL, &frame);
    assert_eq!((d.ports(), d.payload), (Some((1234, 80)), &b"GET"[..]));
    let frame = sll_v2(0x86dd, 1, &six);
    let d = decoded(LinkType::LINUX_SLL2, &frame);
    assert_eq!((d.src, d.ports()), (IpAddr::V6(v6(1)), Some((5000, 53))));
    // A VLAN tag left in the payload is read too.
    let mut tagged = vlan(0x8100, 5, 0x0800)[2..].to_vec();
    tagged.extend_from_slice(&v4);
    assert_eq!(
        decoded(LinkType::LINUX_SLL, &sll_v1(0x8100, 1, &tagged)).vlan,
        Some(5)
    );
}

#[test]
fn linux_cooked_netlink_and_arp_are_skipped_and_short_headers_truncated() {
    assert_eq!(
        skipped(LinkType::LINUX_SLL, &sll_v1(0x0800, 824, &[])),
        SkipKind::NonIpHardware
    );
    assert_eq!(
        skipped(LinkType::LINUX_SLL2, &sll_v2(0x0806, 1, &[0; 28])),
        SkipKind::Arp
    );
    assert_eq!(error(LinkType::LINUX_SLL, &[0; 15]).layer, Layer::Sll);
    assert_eq!(
        error(LinkType::LINUX_SLL2, &[0; 19]),
        DecodeError::truncated(Layer::Sll2, 20, 19)
    );
}

#[test]
fn raw_ip_link_types_pick_the_version_from_the_first_nibble() {
    let v4 = ipv4(17, &udp(1, 2, b""));
    let v6 = ipv6(6, &tcp(3, 4, TcpFlags::SYN, b""));
    for link in [LinkType::RAW, LinkType::RAW_LEGACY] {
        assert_eq!(decoded(link, &v4).ports(), Some((1, 2)));
        assert_eq!(decoded(link, &v6).ports(), Some((3, 4)));
    }
    assert_eq!(decoded(LinkType::IPV4, &v4).protocol, protocol::UDP);
    assert_eq!(decoded(LinkType::IPV6, &v6).protocol, protocol::TCP);
    assert_eq!(
        error(LinkType::RAW, &[0x50; 20]).kind,
        ErrorKind::BadVersion(5)
    );
    assert_eq!(error(LinkType::RAW, &[]).layer, Layer::RawIp);
    // The link type promises IPv4; an IPv6 header there is a lie.
    assert_eq!(error(LinkType::IPV4, &v6).kind, ErrorKind::BadVersion(6));
    assert_eq!(error(LinkType::IPV6, &v4).kind, ErrorKind::BadVersion(4));
}

#[test]
fn loopback_families_in_either_byte_order_are_read() {
    let v4 = ipv4(17, &udp(1, 2, b""));
    let v6 = ipv6(17, &udp(3, 4, b""));
    let le = [&2_u32.to_le_bytes()[..], &v4].concat();
    let be = [&2_u32.to_be_bytes()[..], &v4].concat();
    let mac6 = [&30_u32.to_le_bytes()[..], &v6].concat();
    assert_eq!(decoded(LinkType::NULL, &le).ports(), Some((1, 2)));
    assert_eq!(decoded(LinkType::NULL, &be).ports(), Some((1, 2)));
    assert_eq!(decoded(LinkType::NULL, &mac6).ports(), Some((3, 4)));
    assert_eq!(decoded(LinkType::LOOP, &be).ports(), Some((1, 2)));
    let ipx = [&23_u32.to_le_bytes()[..], &v4].concat();
    assert_eq!(skipped(LinkType::NULL, &ipx), SkipKind::OtherAddressFamily);
    assert_eq!(error(LinkType::LOOP, &[0, 0]).layer, Layer::Loopback);
}

#[test]
fn ipv4_header_length_below_five_words_is_rejected() {
    let mut packet = ipv4(6, &tcp(1, 2, 0, b""));
    packet[0] = 0x44;
    let err = error(LinkType::IPV4, &packet);
    assert_eq!(
        err,
        DecodeError {
            layer: Layer::Ipv4,
            kind: ErrorKind::BadHeaderLength(4)
        }
    );
    assert_eq!(err.kind.as_str(), "bad_header_length");
}

#[test]
fn ipv4_total_length_beyond_the_capture_is_a_lie_unless_snapped() {
    let mut packet = ipv4(6, &tcp(1, 2, TcpFlags::ACK, b"data"));
    packet[2..4].copy_from_slice(&1500_u16.to_be_bytes());
    let err = error(LinkType::IPV4, &packet);
    assert_eq!(
        err.kind,
        ErrorKind::LengthBeyondCapture {
            claimed: 1500,
            captured: 44
        }
    );
    // The same bytes from a capture with a snap length are fine, with the stated length kept.
    let Ok(Outcome::Decoded(d)) = decode(LinkType::IPV4, &packet, true) else {
        panic!("snapped packet should decode");
    };
    assert_eq!(
        (d.ip_total_len, d.payload, d.snapped),
        (1500, &b"data"[..], true)
    );
}

#[test]
fn ipv4_total_length_below_the_header_and_short_headers_are_rejected() {
    let mut packet = ipv4(6, &tcp(1, 2, 0, b""));
    packet[2..4].copy_from_slice(&19_u16.to_be_bytes());
    assert_eq!(
        error(LinkType::IPV4, &packet).kind,
        ErrorKind::LengthTooShort {
            claimed: 19,
            minimum: 20
        }
    );
    assert_eq!(
        error(LinkType::IPV4, &packet[..19]),
        DecodeError::truncated(Layer::Ipv4, 20, 19)
    );
    // IHL of 15 words needs 60 bytes.
    let mut long_header = ipv4(6, &[]);
    long_header[0] = 0x4f;
    assert_eq!(
        error(LinkType::IPV4, &long_header),
        DecodeError::truncated(Layer::Ipv4, 60, 20)
    );
}

#[test]
fn ipv4_first_fragment_has_ports_and_later_fragments_do_not() {
    // First fragment: MF set, offset 0; the UDP length covers the whole datagram.
    let mut first_udp = udp(5353, 53, &[0; 16]);
    first_udp[4..6].copy_from_slice(&3000_u16.to_be_bytes());
    let first = ipv4_frag(17, &first_udp, 99, 0x2000);
    let d = decoded(LinkType::IPV4, &first);
    assert_eq!(d.ports(), Some((5353, 53)));
    assert_eq!(
        d.fragment,
        Some(Fragment {
            id: 99,
            offset: 0,
            more: true
        })
    );
    let later = ipv4_frag(17, &[0; 16], 99, 0x2000 | 3);
    let d = decoded(LinkType::IPV4, &later);
    assert_eq!(d.transport, Transport::LaterFragment);
    assert_eq!(d.ports(), None);
    assert_eq!(
        d.fragment,
        Some(Fragment {
            id: 99,
            offset: 24,
            more: true
        })
    );
}

#[test]
fn fragment_ports_attribute_later_fragments_and_evict_the_oldest_when_full() {
    let mut tracker = FragmentPorts::new(2);
    let first = |id| ipv4_frag(17, &udp(1000 + id, 53, &[0; 8]), id, 0x2000);
    let later = |id| ipv4_frag(17, &[0; 8], id, 2);
    for id in 1..=3 {
        let frame = first(id);
        let _ = tracker.attribute(decoded(LinkType::IPV4, &frame));
    }
    assert_eq!((tracker.len(), tracker.evicted()), (2, 1));
    let frame = later(3);
    let d = tracker.attribute(decoded(LinkType::IPV4, &frame));
    assert_eq!(d.ports(), Some((1003, 53)));
    assert!(d.fragment.is_some(), "still marked as a fragment");
    // Datagram 1 was evicted: its later fragment stays without ports and is counted.
    let frame = later(1);
    let d = tracker.attribute(decoded(LinkType::IPV4, &frame));
    assert_eq!(d.ports(), None);
    assert_eq!(tracker.unattributed(), 1);
}

#[test]
fn other_ip_protocols_are_skipped() {
    assert_eq!(
        skipped(LinkType::IPV4, &ipv4(47, &[0; 8])),
        SkipKind::OtherIpProtocol
    );
    assert_eq!(
        skipped(LinkType::IPV6, &ipv6(50, &[0; 8])),
        SkipKind::OtherIpProtocol
    );
}

#[test]
fn ipv6_extension_headers_are_walked_to_the_transport() {
    // Hop-by-hop → routing → destination options → AH → TCP.
    let mut chain = ext(43, 0);
    chain.extend(ext(60, 1));
    chain.extend(ext(51, 0));
    // AH: length in 4-octet units minus 2; 1 means 12 bytes.
    chain.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    chain.extend(tcp(22, 50000, TcpFlags::SYN | TcpFlags::ACK, b"x"));
    let packet = ipv6(0, &chain);
    let d = decoded(LinkType::IPV6, &packet);
    assert_eq!(d.protocol, protocol::TCP);
    assert_eq!(d.ports(), Some((22, 50000)));
    assert_eq!(d.payload, b"x");
    assert_eq!(d.ip_total_len, 40 + 8 + 16 + 8 + 12 + 21);
    assert_eq!(d.ip_payload_len, 21);
}

#[test]
fn ipv6_fragment_header_gives_first_and_later_fragments() {
    let frag = |offset_units: u16, more: bool, payload: &[u8]| {
        let field = (offset_units << 3) | u16::from(more);
        let mut v = vec![17, 0];
        v.extend_from_slice(&field.to_be_bytes());
        v.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
        v.extend_from_slice(payload);
        ipv6(44, &v)
    };
    let first = frag(0, true, &udp(4000, 53, &[0; 8]));
    let d = decoded(LinkType::IPV6, &first);
    assert_eq!(d.ports(), Some((4000, 53)));
    assert_eq!(
        d.fragment,
        Some(Fragment {
            id: 0xdead_beef,
            offset: 0,
            more: true
        })
    );
    // Later fragment data that happens to look like a header must not be parsed as one.
    let later = frag(2, false, &ext(0, 0));
    let d = decoded(LinkType::IPV6, &later);
    assert_eq!(
        (d.transport, d.protocol),
        (Transport::LaterFragment, protocol::UDP)
    );
    assert_eq!(
        d.fragment,
        Some(Fragment {
            id: 0xdead_beef,
            offset: 16,
            more: false
        })
    );
}

#[test]
fn ipv6_extension_chains_past_the_cap_are_rejected() {
    let mut chain = Vec::new();
    for _ in 0..=ipv6::MAX_EXTENSION_HEADERS {
        chain.extend(ext(60, 0));
    }
    chain.extend(udp(1, 2, b""));
    let err = error(LinkType::IPV6, &ipv6(60, &chain));
    assert_eq!(err.kind, ErrorKind::TooManyExtensionHeaders);
    // One fewer is fine.
    let mut ok = Vec::new();
    for i in 0..ipv6::MAX_EXTENSION_HEADERS {
        let next = if i + 1 == ipv6::MAX_EXTENSION_HEADERS {
            17
        } else {
            60
        };
        ok.extend(ext(next, 0));
    }
    ok.extend(udp(1, 2, b""));
    assert_eq!(
        decoded(LinkType::IPV6, &ipv6(60, &ok)).ports(),
        Some((1, 2))
    );
}

#[test]
fn ipv6_truncated_and_lying_headers_are_errors() {
    let packet = ipv6(17, &udp(1, 2, b"abc"));
    assert_eq!(
        error(LinkType::IPV6, &packet[..39]),
        DecodeError::truncated(Layer::Ipv6, 40, 39)
    );
    let mut long = packet.clone();
    long[4..6].copy_from_slice(&100_u16.to_be_bytes());
    assert_eq!(
        error(LinkType::IPV6, &long).kind,
        ErrorKind::LengthBeyondCapture {
            claimed: 100,
            captured: 11
        }
    );
    // An extension header whose length runs past the packet.
    let err = error(LinkType::IPV6, &ipv6(0, &[17, 3, 0, 0, 0, 0, 0, 0]));
    assert_eq!(err, DecodeError::truncated(Layer::Ipv6Extension, 32, 8));
    assert_eq!(
        skipped(LinkType::IPV6, &ipv6(59, &[])),
        SkipKind::NoNextHeader
    );
}

#[test]
fn tcp_data_offset_below_five_and_beyond_the_segment_are_rejected() {
    let mut segment = tcp(1, 2, 0, b"");
    segment[12] = 4 << 4;
    let err = error(LinkType::IPV4, &ipv4(6, &segment));
    assert_eq!(
        err,
        DecodeError {
            layer: Layer::Tcp,
            kind: ErrorKind::BadHeaderLength(4)
        }
    );
    segment[12] = 15 << 4;
    let err = error(LinkType::IPV4, &ipv4(6, &segment));
    assert_eq!(err, DecodeError::truncated(Layer::Tcp, 60, 20));
    let err = error(LinkType::IPV4, &ipv4(6, &segment[..19]));
    assert_eq!(err, DecodeError::truncated(Layer::Tcp, 20, 19));
}

#[test]
fn udp_lengths_below_eight_or_past_the_datagram_are_rejected() {
    let mut datagram = udp(1, 2, b"abcd");
    datagram[4..6].copy_from_slice(&7_u16.to_be_bytes());
    assert_eq!(
        error(LinkType::IPV4, &ipv4(17, &datagram)).kind,
        ErrorKind::LengthTooShort {
            claimed: 7,
            minimum: 8
        }
    );
    datagram[4..6].copy_from_slice(&13_u16.to_be_bytes());
    assert_eq!(
        error(LinkType::IPV4, &ipv4(17, &datagram)).kind,
        ErrorKind::LengthBeyondCapture {
            claimed: 13,
            captured: 12
        }
    );
    // A shorter UDP length than the IP payload bounds the payload.
    datagram[4..6].copy_from_slice(&10_u16.to_be_bytes());
    assert_eq!(decoded(LinkType::IPV4, &ipv4(17, &datagram)).payload, b"ab");
    assert_eq!(error(LinkType::IPV4, &ipv4(17, &[0; 7])).layer, Layer::Udp);
}

#[test]
fn icmp_echo_gives_type_code_and_identifier_and_short_icmp_is_truncated() {
    let transport = |link, frame: Vec<u8>| decoded(link, &frame).transport;
    assert_eq!(
        transport(LinkType::IPV4, ipv4(1, &icmp_echo(8, 0x1234))),
        Transport::Icmp {
            kind: 8,
            code: 0,
            echo_id: Some(0x1234)
        }
    );
    assert_eq!(
        transport(LinkType::IPV6, ipv6(58, &icmp_echo(129, 7))),
        Transport::Icmp {
            kind: 129,
            code: 0,
            echo_id: Some(7)
        }
    );
    // Destination unreachable carries no echo id.
    assert_eq!(
        transport(LinkType::IPV4, ipv4(1, &[3, 3, 0, 0, 0, 0, 0, 0])),
        Transport::Icmp {
            kind: 3,
            code: 3,
            echo_id: None
        }
    );
    assert_eq!(
        error(LinkType::IPV4, &ipv4(1, &[8, 0, 0])),
        DecodeError::truncated(Layer::Icmp, 4, 3)
    );
    assert_eq!(error(LinkType::IPV6, &ipv6(58, &[])).layer, Layer::Icmpv6);
}

#[test]
fn decode_stats_count_by_layer_kind_and_skip() {
    let mut stats = DecodeStats::default();
    let good = eth(0x0800, &ipv4(17, &udp(1, 2, b"")));
    let arp = eth(0x0806, &[0; 28]);
    stats.record(&decode(LinkType::ETHERNET, &good, false));
    stats.record(&decode(LinkType::ETHERNET, &arp, false));
    stats.record(&decode(LinkType::ETHERNET, &[0; 3], false));
    stats.record(&decode(LinkType::ETHERNET, &[0; 3], false));
    assert_eq!(stats.decoded, 1);
    assert_eq!(stats.skipped(SkipKind::Arp), 1);
    assert_eq!(stats.skipped(SkipKind::Llc), 0);
    let truncated = ErrorKind::Truncated {
        needed: 0,
        available: 0,
    };
    assert_eq!(stats.errors(Layer::Ethernet, truncated), 2);
    assert_eq!(stats.errors(Layer::Ipv4, truncated), 0);
    assert_eq!(
        stats.error_counts().collect::<Vec<_>>(),
        vec![("ethernet", "truncated", 2)]
    );
    assert_eq!(stats.skip_counts().collect::<Vec<_>>(), vec![("arp", 1)]);
    assert_eq!((stats.total_errors(), stats.total_skipped()), (2, 1));
}

#[test]
fn error_and_skip_labels_are_distinct() {
    let mut labels = ErrorKind::LABELS.to_vec();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), ErrorKind::COUNT);
    let mut skips: Vec<_> = SkipKind::ALL.iter().map(|k| k.as_str()).collect();
    skips.sort_unstable();
    skips.dedup();
    assert_eq!(skips.len(), SkipKind::COUNT);
    for (i, kind) in SkipKind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), i);
    }
    for (i, layer) in Layer::ALL.iter().enumerate() {
        assert_eq!(layer.index(), i);
    }
}

const LINK_TYPES: [LinkType; 10] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_LEGACY,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
    LinkType(9999),
];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        link in prop::sample::select(&LINK_TYPES[..]),
        data in prop::collection::vec(any::<u8>(), 0..200),
        snapped in any::<bool>(),
    ) {
        if let Ok(Outcome::Decoded(d)) = decode(link, &data, snapped) {
            // The payload is always inside the frame.
            prop_assert!(d.payload.len() <= data.len());
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic_the_decoder(
        flips in prop::collection::vec((0_usize..120, any::<u8>()), 1..6),
        cut in 0_usize..130,
    ) {
        let mut chain = ext(44, 0);
        chain.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 1]);
        chain.extend(tcp(1, 2, TcpFlags::SYN, b"payload"));
        for base in [
            eth(0x0800, &ipv4(6, &tcp(1, 2, TcpFlags::SYN, b"payload"))),
            eth(0x86dd, &ipv6(0, &chain)),
        ] {
            let mut frame = base.clone();
            for (at, byte) in &flips {
                if let Some(b) = frame.get_mut(*at) {
                    *b = *byte;
                }
            }
            frame.truncate(cut);
            let _ = decode(LinkType::ETHERNET, &frame, false);
            let _ = decode(LinkType::ETHERNET, &frame, true);
        }
    }
}

/// What the layered decoder says of a frame the express lane read, or why they disagree.
fn express_agrees(frame: &[u8], orig_len: u32) -> Result<bool, String> {
    let packet = Packet {
        ts: crate::capture::Timestamp(0),
        link_type: LinkType::ETHERNET,
        data: frame,
        orig_len,
        interface: 0,
        outgoing: None,
    };
    let Some(x) = express::read(&packet) else {
        return Ok(false);
    };
    let Ok(Outcome::Decoded(d)) = decode_packet(&packet) else {
        return Err(format!("express read {x:?}, layered did not decode"));
    };
    let same = d.src == x.src
        && d.dst == x.dst
        && d.protocol == x.protocol
        && d.ports() == Some((x.src_port, x.dst_port))
        && d.transport.tcp_flags() == x.flags
        && d.ip_total_len == x.ip_total_len
        && d.payload == x.payload
        && d.fragment.is_none()
        && d.tunnel.is_none()
        && d.vlan.is_none();
    if same {
        Ok(true)
    } else {
        Err(format!("express read {x:?}, layered decoded {d:?}"))
    }
}

/// Frames of the express shape, and ones just outside it.
fn express_bases() -> Vec<Vec<u8>> {
    vec![
        eth(
            0x0800,
            &ipv4(6, &tcp(40_000, 443, TcpFlags::ACK, b"GET / HTTP/1.1")),
        ),
        eth(0x0800, &ipv4(6, &tcp(22, 50_000, TcpFlags::SYN, b""))),
        eth(0x0800, &ipv4(17, &udp(5000, 123, &[0x17; 48]))),
        eth(0x0800, &ipv4(17, &udp(5000, 4789, &[0x08; 24]))),
        eth(0x0800, &ipv4(17, &udp(5353, 53, &[1; 12]))),
        eth(
            0x0800,
            &ipv4(6, &tcp(40_000, 443, TcpFlags::ACK, &[22, 3, 1])),
        ),
        eth(0x0800, &ipv4_frag(6, &tcp(1, 2, 0, b"x"), 9, 0x2000)),
        eth(0x86dd, &ipv6(6, &tcp(40_000, 443, TcpFlags::ACK, b"data"))),
        eth(0x86dd, &ipv6(17, &udp(5000, 3478, &[0x18; 20]))),
        eth(0x86dd, &ipv6(0, &[ext(6, 0), tcp(1, 2, 0, b"x")].concat())),
    ]
}

#[test]
fn express_lane_reads_plain_tcp_and_udp_and_leaves_the_rest() {
    let accepted: Vec<bool> = express_bases()
        .iter()
        .map(|f| {
            let len = u32::try_from(f.len()).expect("small");
            express_agrees(f, len).expect("agrees")
        })
        .collect();
    // IPv4 TCP, TCP, UDP accepted; a VXLAN port, DNS, a TLS record and a fragment are not;
    // IPv6 TCP and UDP accepted, but not behind an extension header.
    assert_eq!(
        accepted,
        [
            true, true, true, false, false, false, false, true, true, false
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn express_lane_agrees_with_the_layered_decoder(
        base in 0_usize..10,
        flips in prop::collection::vec((0_usize..80, any::<u8>()), 0..5),
        cut in 0_usize..100,
        snap in 0_u32..40,
    ) {
        let mut frame = express_bases().swap_remove(base);
        for (at, byte) in &flips {
            if let Some(b) = frame.get_mut(*at) {
                *b = *byte;
            }
        }
        frame.truncate(cut);
        // orig_len beyond the captured bytes makes the frame snapped.
        let orig = u32::try_from(frame.len()).expect("small") + snap;
        prop_assert!(express_agrees(&frame, orig).is_ok(), "{:?}", express_agrees(&frame, orig));
    }

    #[test]
    fn express_lane_agrees_on_arbitrary_bytes(
        data in prop::collection::vec(any::<u8>(), 0..120),
        snapped in any::<bool>(),
    ) {
        let orig = u32::try_from(data.len()).expect("small") + u32::from(snapped);
        prop_assert!(express_agrees(&data, orig).is_ok(), "{:?}", express_agrees(&data, orig));
    }
}
