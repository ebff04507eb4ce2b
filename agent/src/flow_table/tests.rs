//! Flow direction, counters, timeouts and eviction on hand-made packets.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use picket_proto::v1::Direction;
use proptest::prelude::*;

use super::*;
use crate::decode::{Decoded, Fragment, TcpFlags, Transport, protocol};

const SYN: u8 = TcpFlags::SYN;
const SYN_ACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
const ACK: u8 = TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8, len: u32) -> Decoded<'static> {
    Decoded {
        vlan: None,
        src: ip(src),
        dst: ip(dst),
        protocol: protocol::TCP,
        ip_total_len: len,
        ip_payload_len: len.saturating_sub(20),
        ttl: 64,
        fragment: None,
        transport: Transport::Tcp {
            src_port: sport,
            dst_port: dport,
            flags: TcpFlags(flags),
            seq: 1,
        },
        payload: &[],
        snapped: false,
        tunnel: None,
    }
}

fn udp(src: &str, sport: u16, dst: &str, dport: u16, len: u32) -> Decoded<'static> {
    Decoded {
        protocol: protocol::UDP,
        transport: Transport::Udp {
            src_port: sport,
            dst_port: dport,
        },
        ..tcp(src, sport, dst, dport, 0, len)
    }
}

fn icmp(src: &str, dst: &str, kind: u8, id: u16) -> Decoded<'static> {
    Decoded {
        protocol: protocol::ICMP,
        transport: Transport::Icmp {
            kind,
            code: 0,
            echo_id: Some(id),
        },
        ..tcp(src, 0, dst, 0, 0, 84)
    }
}

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs_nanos(1_700_000_000 + s, 0)
}

fn config(idle: u64, active: u64, capacity: usize) -> FlowTableConfig {
    FlowTableConfig {
        idle_timeout: Duration::from_secs(idle),
        active_timeout: Duration::from_secs(active),
        capacity: NonZeroUsize::new(capacity).expect("non-zero"),
    }
}

fn local(nets: &[&str]) -> LocalNets {
    LocalNets::new(nets.iter().map(|n| n.parse::<Cidr>().expect("test cidr")))
}

fn table(nets: &[&str]) -> FlowTable {
    FlowTable::new(config(60, 600, 1024), local(nets))
}

fn flushed(mut table: FlowTable) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    table.flush(&mut out);
    out
}

#[test]
fn a_flush_orders_flows_by_start_then_key_whatever_order_they_opened_in() {
    let packets = [
        (secs(1), udp("10.0.0.5", 2000, "8.8.8.8", 53, 60)),
        (secs(1), udp("10.0.0.5", 1000, "8.8.8.8", 53, 60)),
        (secs(0), udp("10.0.0.5", 3000, "1.1.1.1", 53, 60)),
        (secs(1), udp("10.0.0.5", 1000, "1.1.1.1", 53, 60)),
    ];
    let ports = |order: &[usize]| {
        let mut t = table(&["10.0.0.5"]);
        let mut out = Vec::new();
        for i in order {
            let (ts, packet) = &packets[*i];
            t.observe(*ts, packet, &mut out);
        }
        flushed(t)
            .iter()
            .map(|r| (r.start, r.initiator.port, r.responder.addr))
            .collect::<Vec<_>>()
    };
    let forward = ports(&[0, 1, 2, 3]);
    assert_eq!(forward.first().map(|f| f.1), Some(3000), "earliest first");
    assert_eq!(forward, ports(&[3, 2, 1, 0]));
    assert_eq!(forward, ports(&[1, 3, 0, 2]));
}

#[test]
fn host_opened_tcp_flow_is_egress_with_counters_each_way() {
    let mut t = table(&["10.0.0.5"]);
    let mut out = Vec::new();
    t.observe(
        secs(0),
        &tcp("10.0.0.5", 40000, "93.184.216.34", 443, SYN, 60),
        &mut out,
    );
    t.observe(
        secs(1),
        &tcp("93.184.216.34", 443, "10.0.0.5", 40000, SYN_ACK, 60),
        &mut out,
    );
    t.observe(
        secs(1),
        &tcp("10.0.0.5", 40000, "93.184.216.34", 443, ACK, 52),
        &mut out,
    );
    t.observe(
        secs(2),
        &tcp("10.0.0.5", 40000, "93.184.216.34", 443, ACK | 0x08, 552),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(t.len(), 1);
    let records = flushed(t);
    assert_eq!(records.len(), 1);
    let r = records[0];
    assert_eq!(r.direction, Direction::Egress);
    assert_eq!(
        r.initiator,
        Endpoint {
            addr: ip("10.0.0.5"),
            port: 40000
        }
    );
    assert_eq!(
        r.responder,
        Endpoint {
            addr: ip("93.184.216.34"),
            port: 443
        }
    );
    assert_eq!((r.forward.packets, r.forward.bytes), (3, 664));
    assert_eq!((r.reverse.packets, r.reverse.bytes), (1, 60));
    assert_eq!(r.forward.tcp_flags, SYN | ACK | 0x08);
    assert_eq!(r.reverse.tcp_flags, SYN_ACK);
    assert_eq!((r.start, r.end, r.flow_start), (secs(0), secs(2), secs(0)));
    assert!(r.answered);
    assert!(!r.unanswered_syn());
    assert_eq!(
        (r.syns, r.resets, r.reason, r.sequence),
        (1, 0, EndReason::Flushed, 0)
    );
    assert_eq!(r.local().map(|e| e.port), Some(40000));
    assert_eq!(r.remote().map(|e| e.port), Some(443));
}

#[test]
fn remote_opened_flow_is_ingress() {
    let mut t = table(&["10.0.0.0/24"]);
    let mut out = Vec::new();
    t.observe(
        secs(0),
        &tcp("198.51.100.7", 51000, "10.0.0.5", 22, SYN, 60),
        &mut out,
    );
    t.observe(
        secs(0),
        &tcp("10.0.0.5", 22, "198.51.100.7", 51000, SYN_ACK, 60),
        &mut out,
    );
    let r = flushed(t)[0];
    assert_eq!(r.direction, Direction::Ingress);
    assert_eq!(r.local().map(|e| e.port), Some(22));
    assert_eq!(r.initiator.addr, ip("198.51.100.7"));
}

#[test]
fn without_configured_addresses_the_private_side_is_local() {
    let cases = [
        ("192.168.1.10", "8.8.8.8", Direction::Egress),
        ("8.8.8.8", "192.168.1.10", Direction::Ingress),
        ("fd00::1", "2001:4860:4860::8888", Direction::Egress),
        ("10.0.0.1", "10.0.0.2", Direction::Unspecified),
        ("1.1.1.1", "8.8.4.4", Direction::Unspecified),
    ];
    for (from, to, expected) in cases {
        let mut t = table(&[]);
        t.observe(secs(0), &udp(from, 50000, to, 53, 70), &mut Vec::new());
        let r = flushed(t)[0];
        assert_eq!(r.direction, expected, "{from} -> {to}");
    }
}

#[test]
fn a_syn_ack_seen_first_makes_its_receiver_the_initiator() {
    let mut t = table(&["10.0.0.5"]);
    t.observe(
        secs(0),
        &tcp("93.184.216.34", 443, "10.0.0.5", 40000, SYN_ACK, 60),
        &mut Vec::new(),
    );
    let r = flushed(t)[0];
    assert_eq!(r.initiator.addr, ip("10.0.0.5"));
    assert_eq!(r.direction, Direction::Egress);
    assert_eq!((r.forward.packets, r.reverse.packets), (0, 1));
}

#[test]
fn a_mid_flow_packet_from_a_well_known_port_is_the_server_answering() {
    let mut t = table(&["10.0.0.5"]);
    t.observe(
        secs(0),
        &udp("8.8.8.8", 53, "10.0.0.5", 53000, 120),
        &mut Vec::new(),
    );
    let r = flushed(t)[0];
    assert_eq!((r.initiator.port, r.responder.port), (53000, 53));
    // Between two ephemeral ports the first sender is the initiator.
    let mut t = table(&["10.0.0.5"]);
    t.observe(
        secs(0),
        &udp("8.8.8.8", 3478, "10.0.0.5", 53000, 120),
        &mut Vec::new(),
    );
    assert_eq!(flushed(t)[0].initiator.port, 3478);
}

#[test]
fn unanswered_syns_expire_idle_and_say_so() {
    let mut t = table(&["10.0.0.5"]);
    let mut out = Vec::new();
    t.observe(
        secs(0),
        &tcp("10.0.0.5", 40001, "203.0.113.9", 8443, SYN, 60),
        &mut out,
    );
    t.observe(
        secs(1),
        &tcp("10.0.0.5", 40001, "203.0.113.9", 8443, SYN, 60),
        &mut out,
    );
    t.observe(
        secs(3),
        &tcp("10.0.0.5", 40001, "203.0.113.9", 8443, SYN, 60),
        &mut out,
    );
    t.expire(secs(62), &mut out);
    assert!(out.is_empty(), "idle for 59 s only: {out:?}");
    t.expire(secs(63), &mut out);
    assert_eq!(out.len(), 1);
    let r = out[0];
    assert_eq!((r.reason, r.syns, r.answered), (EndReason::Idle, 3, false));
    assert!(r.unanswered_syn());
    assert!(t.is_empty());
    assert_eq!(t.stats().expired_idle, 1);
}

#[test]
fn a_reset_answer_counts_as_answered_and_as_a_reset() {
    let mut t = table(&["10.0.0.5"]);
    let mut out = Vec::new();
    t.observe(
        secs(0),
        &tcp("10.0.0.5", 40002, "203.0.113.9", 25, SYN, 60),
        &mut out,
    );
    t.observe(
        secs(0),
        &tcp("203.0.113.9", 25, "10.0.0.5", 40002, RST | ACK, 40),
        &mut out,
    );
    let r = flushed(t)[0];
    assert_eq!((r.resets, r.answered, r.unanswered_syn()), (1, true, false));
    assert_eq!(r.reverse.tcp_flags, RST | ACK);
}

#[test]
fn a_long_flow_gives_interim_records_at_the_active_timeout_and_goes_on() {
    let mut t = table(&["10.0.0.5"]);
    let mut out = Vec::new();
    // One packet each way every 10 s for 25 minutes; idle never fires.
    let mut sent = 0_u64;
    for step in 0..150 {
        let ts = secs(step * 10);
        t.observe(
            ts,
            &tcp("10.0.0.5", 40003, "203.0.113.9", 443, ACK, 100),
            &mut out,
        );
        t.observe(
            ts,
            &tcp("203.0.113.9", 443, "10.0.0.5", 40003, ACK, 1500),
            &mut out,
        );
        sent += 2;
    }
    assert_eq!(out.len(), 2, "interim records at 600 s and 1200 s: {out:?}");
    t.flush(&mut out);
    assert_eq!(out.len(), 3);
    let reasons: Vec<_> = out.iter().map(|r| (r.reason, r.sequence)).collect();
    assert_eq!(
        reasons,
        vec![
            (EndReason::Active, 0),
            (EndReason::Active, 1),
            (EndReason::Flushed, 2)
        ]
    );
    assert_eq!((out[0].start, out[0].end), (secs(0), secs(590)));
    assert_eq!(out[1].start, secs(600));
    for r in &out {
        assert_eq!(
            (r.flow_start, r.direction, r.answered),
            (secs(0), Direction::Egress, true)
        );
    }
    let total: u64 = out
        .iter()
        .map(|r| r.forward.packets + r.reverse.packets)
        .sum();
    assert_eq!(total, sent);
    assert_eq!(t.stats().interim, 2);
}

#[test]
fn a_full_table_evicts_the_least_recently_seen_flow_and_counts_it() {
    let mut t = FlowTable::new(config(60, 600, 3), local(&["10.0.0.5"]));
    let mut out = Vec::new();
    for port in 1..=3 {
        t.observe(
            secs(u64::from(port)),
            &udp("10.0.0.5", port, "192.0.2.1", 53, 70),
            &mut out,
        );
    }
    // Flow 1 is seen again, so flow 2 is now the least recently seen.
    t.observe(secs(4), &udp("10.0.0.5", 1, "192.0.2.1", 53, 70), &mut out);
    assert!(out.is_empty());
    t.observe(secs(5), &udp("10.0.0.5", 4, "192.0.2.1", 53, 70), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].reason, out[0].initiator.port),
        (EndReason::Evicted, 2)
    );
    assert_eq!(t.len(), 3);
    assert_eq!(t.stats().evicted, 1);
    t.flush(&mut out);
    let mut ports: Vec<u16> = out.iter().map(|r| r.initiator.port).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![1, 2, 3, 4]);
}

#[test]
fn echo_request_and_reply_are_one_flow_opened_by_the_requester() {
    let mut t = table(&[]);
    let mut out = Vec::new();
    t.observe(secs(0), &icmp("192.168.0.13", "8.8.8.8", 8, 7), &mut out);
    t.observe(secs(0), &icmp("8.8.8.8", "192.168.0.13", 0, 7), &mut out);
    // A different identifier is a different ping session.
    t.observe(secs(1), &icmp("192.168.0.13", "8.8.8.8", 8, 8), &mut out);
    let records = flushed(t);
    assert_eq!(records.len(), 2);
    let r = records[0];
    assert_eq!(
        (r.forward.packets, r.reverse.packets, r.answered),
        (1, 1, true)
    );
    assert_eq!((r.icmp, r.direction), (Some((8, 0)), Direction::Egress));
    assert!(!records[1].answered);
    // A reply seen first still makes the requester the initiator.
    let mut t = table(&[]);
    t.observe(
        secs(0),
        &icmp("8.8.8.8", "192.168.0.13", 0, 9),
        &mut Vec::new(),
    );
    assert_eq!(flushed(t)[0].initiator.addr, ip("192.168.0.13"));
}

#[test]
fn later_fragments_without_ports_are_counted_not_tracked() {
    let mut t = table(&[]);
    let fragment = Decoded {
        transport: Transport::LaterFragment,
        fragment: Some(Fragment {
            id: 1,
            offset: 1480,
            more: false,
        }),
        ..udp("10.0.0.1", 0, "8.8.8.8", 0, 500)
    };
    t.observe(secs(0), &fragment, &mut Vec::new());
    assert!(t.is_empty());
    assert_eq!(t.stats().fragments_without_ports, 1);
}

#[test]
fn flow_entry_fits_the_memory_budget() {
    let slot = store::Store::<FlowEntry>::SLOT_BYTES;
    let heap = std::mem::size_of::<Due>();
    // Worst cases: the index (8 bytes per entry) just after it doubled is a quarter full; the
    // expiry heap's vector just after it doubled is half full.
    let index = 8 * 4;
    let worst = slot + index + 2 * heap;
    // Printed for the record: `cargo test -p picket-agent flow_entry -- --nocapture`.
    println!(
        "flow slot {slot} bytes + index {index} + expiry heap {heap} (x2) = {worst} worst case"
    );
    assert!(worst <= 256, "{slot} + {index} + 2 x {heap}");
}

#[test]
fn cidrs_parse_and_match_only_their_block() {
    let net: Cidr = "10.1.0.0/16".parse().expect("valid");
    assert!(net.contains(ip("10.1.255.3")));
    assert!(!net.contains(ip("10.2.0.1")));
    assert!(!net.contains(ip("::ffff:10.1.0.1")), "families do not mix");
    let host: Cidr = "2001:db8::5".parse().expect("valid");
    assert!(host.contains(ip("2001:db8::5")) && !host.contains(ip("2001:db8::6")));
    let all: Cidr = "0.0.0.0/0".parse().expect("valid");
    assert!(all.contains(ip("203.0.113.1")));
    assert!(matches!(
        "10.0.0.0/33".parse::<Cidr>(),
        Err(CidrError::Prefix(_))
    ));
    assert!(matches!(
        "10.0.0/8".parse::<Cidr>(),
        Err(CidrError::Address(_))
    ));
    assert!(matches!(
        "10.0.0.0/x".parse::<Cidr>(),
        Err(CidrError::Prefix(_))
    ));
}

#[test]
fn private_ranges_are_recognised() {
    for private in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.9.9",
        "100.64.0.1",
        "127.0.0.1",
        "fd12::1",
        "fe80::1",
        "::1",
        "::ffff:192.168.0.1",
    ] {
        assert!(is_private(ip(private)), "{private}");
    }
    for public in [
        "8.8.8.8",
        "172.32.0.1",
        "100.128.0.1",
        "2001:4860::1",
        "::ffff:8.8.8.8",
    ] {
        assert!(!is_private(ip(public)), "{public}");
    }
}

proptest! {
    /// Whatever the traffic, capacity and timing, every packet counted into a flow comes out
    /// in exactly one record: nothing is lost to eviction or expiry.
    #[test]
    fn every_packet_is_reported_exactly_once(
        packets in prop::collection::vec((0_u16..40, any::<bool>(), 0_u64..5, 0_u8..3), 1..300),
        capacity in 1_usize..16,
    ) {
        let mut t = FlowTable::new(config(10, 30, capacity), local(&["10.0.0.5"]));
        let mut out = Vec::new();
        let mut now = 0;
        for (port, outbound, gap, kind) in &packets {
            now += gap;
            let packet = match (kind, outbound) {
                (0, true) => udp("10.0.0.5", 1000 + port, "192.0.2.1", 53, 100),
                (0, false) => udp("192.0.2.1", 53, "10.0.0.5", 1000 + port, 100),
                (1, true) => tcp("10.0.0.5", 1000 + port, "192.0.2.1", 443, SYN, 60),
                (1, false) => tcp("192.0.2.1", 443, "10.0.0.5", 1000 + port, SYN_ACK, 60),
                _ => icmp("10.0.0.5", "192.0.2.1", 8, *port),
            };
            t.observe(secs(now), &packet, &mut out);
            prop_assert!(t.len() <= capacity);
        }
        t.flush(&mut out);
        let total: u64 = out.iter().map(|r| r.forward.packets + r.reverse.packets).sum();
        prop_assert_eq!(total, u64::try_from(packets.len()).expect("fits"));
        prop_assert!(t.is_empty());
        let stats = t.stats();
        prop_assert_eq!(stats.packets, u64::try_from(packets.len()).expect("fits"));
    }
}

proptest! {
    /// Flushing in batches gives the same records, in the same order, as one flush, and
    /// never hands `drain` more than a batch.
    #[test]
    fn flushing_in_batches_gives_the_same_records_as_one_flush(
        ports in prop::collection::vec((0_u16..200, any::<bool>(), 0_u64..3), 1..200),
        batch in 1_usize..9,
    ) {
        let fill = || {
            let mut t = table(&["10.0.0.5"]);
            let mut out = Vec::new();
            let mut now = 0;
            for (port, tcp_flow, gap) in &ports {
                now += gap;
                let packet = if *tcp_flow {
                    tcp("10.0.0.5", 1000 + port, "192.0.2.1", 443, SYN, 60)
                } else {
                    udp("10.0.0.5", 1000 + port, "192.0.2.1", 53, 100)
                };
                t.observe(secs(now), &packet, &mut out);
            }
            (t, out)
        };
        let (mut whole, mut expected) = fill();
        whole.flush(&mut expected);
        let (mut batched, mut out) = fill();
        let mut got = std::mem::take(&mut out);
        let mut largest = 0;
        batched.flush_in_batches(batch, &mut out, |part| {
            largest = largest.max(part.len());
            got.append(part);
        });
        prop_assert_eq!(got, expected);
        prop_assert!(largest <= batch);
        prop_assert!(out.is_empty() && batched.is_empty());
        prop_assert_eq!(batched.stats(), whole.stats());
    }
}
