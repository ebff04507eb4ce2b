//! Capture → decode → flow table on real captures (see `fixtures/pcap/README.md`).

use std::net::IpAddr;
use std::path::Path;

use picket_agent::capture::{PacketSource, PcapFile};
use picket_agent::decode::{DecodeStats, FragmentPorts, Outcome, decode_packet};
use picket_agent::dns::{DnsConfig, DnsTracker, DnsTransaction, record_type_name};
use picket_agent::flow_table::{Cidr, FlowRecord, FlowTable, FlowTableConfig, LocalNets};
use picket_proto::v1::Direction;

fn replay(name: &str, local: &[&str]) -> (Vec<FlowRecord>, DecodeStats) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap")
        .join(name);
    let mut source = PcapFile::open(path).expect("fixture opens");
    let nets = LocalNets::new(local.iter().map(|n| n.parse::<Cidr>().expect("cidr")));
    let mut table = FlowTable::new(FlowTableConfig::default(), nets);
    let mut fragments = FragmentPorts::new(64);
    let mut stats = DecodeStats::default();
    let mut out = Vec::new();
    while let Some(packet) = source.next_packet().expect("fixture reads") {
        let ts = packet.ts;
        let result = decode_packet(&packet);
        stats.record(&result);
        if let Ok(Outcome::Decoded(d)) = result {
            table.observe(ts, &fragments.attribute(d), &mut out);
        }
    }
    table.flush(&mut out);
    (out, stats)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

#[test]
fn pings_to_a_replying_and_a_silent_host_give_answered_and_unanswered_flows() {
    // No local addresses configured: 192.168.0.13 is private, its peers public.
    let (records, _) = replay("suricata_iprep_input.pcap", &[]);
    let to = |addr: &str| -> Vec<&FlowRecord> {
        records
            .iter()
            .filter(|r| r.responder.addr == ip(addr))
            .collect()
    };
    let google = to("8.8.8.8");
    let silent = to("4.4.4.4");
    assert!(!google.is_empty() && !silent.is_empty(), "{records:?}");
    let packets = |rs: &[&FlowRecord]| -> (u64, u64) {
        rs.iter().fold((0, 0), |(f, r), x| {
            (f + x.forward.packets, r + x.reverse.packets)
        })
    };
    assert_eq!(packets(&google), (5, 5));
    assert_eq!(packets(&silent), (5, 0));
    assert!(
        google
            .iter()
            .all(|r| r.answered && r.direction == Direction::Egress)
    );
    assert!(
        silent
            .iter()
            .all(|r| !r.answered && r.direction == Direction::Egress)
    );
}

#[test]
fn ssh_session_is_one_flow_whose_direction_follows_the_local_address() {
    let (records, stats) = replay("zeek_ssh_single-conn.pcap", &["192.150.186.169"]);
    assert_eq!(stats.decoded, 94);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = records[0];
    assert_eq!(
        (r.initiator.addr, r.responder.port),
        (ip("192.150.186.169"), 22)
    );
    assert_eq!(r.direction, Direction::Egress);
    assert_eq!(r.forward.packets + r.reverse.packets, 94);
    assert!(r.answered);
    // Both ends are public, so without configuration the direction is not guessed.
    let (records, _) = replay("zeek_ssh_single-conn.pcap", &[]);
    assert_eq!(records[0].direction, Direction::Unspecified);
    // Configured as the server, the same flow is ingress.
    let (records, _) = replay("zeek_ssh_single-conn.pcap", &["131.159.14.0/24"]);
    assert_eq!(records[0].direction, Direction::Ingress);
}

#[test]
fn two_syns_to_different_ports_are_two_unanswered_ingress_flows() {
    let (records, _) = replay("suricata_df-distinct-dstport.pcap", &["1.1.1.1"]);
    assert_eq!(records.len(), 2);
    let mut ports: Vec<u16> = records.iter().map(|r| r.responder.port).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![80, 81]);
    for r in &records {
        assert_eq!(r.direction, Direction::Ingress);
        assert!(r.unanswered_syn());
        assert_eq!(r.initiator.addr, ip("3.3.3.3"));
    }
}

#[test]
fn sll_capture_of_one_tls_flow_to_cloudflare_is_one_egress_flow() {
    let (records, _) = replay("ndpi_dns2tcp_over_doh_linux-sll.pcap", &[]);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = records[0];
    assert_eq!((r.responder.addr, r.responder.port), (ip("1.1.1.1"), 443));
    assert_eq!(r.direction, Direction::Egress);
    assert_eq!(r.forward.packets + r.reverse.packets, 50);
}

fn dns_replay(name: &str) -> (Vec<DnsTransaction>, DnsTracker) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap")
        .join(name);
    let mut source = PcapFile::open(path).expect("fixture opens");
    let mut dns = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    while let Some(packet) = source.next_packet().expect("fixture reads") {
        if let Ok(Outcome::Decoded(d)) = decode_packet(&packet) {
            dns.observe(packet.ts, &d, &mut out);
        }
    }
    dns.flush(&mut out);
    (out, dns)
}

#[test]
fn dns_queries_in_a_pcapng_pair_with_their_responses() {
    // Checked against the bytes independently: an unmatched AAAA response for
    // www.l.google.com, AAAA www.example.com (no answers), A e7.whatsapp.net (8 answers).
    let (transactions, dns) = dns_replay("ndpi_dns.pcap");
    let mut seen: Vec<(String, &str, bool, bool)> = transactions
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                record_type_name(t.qtype),
                t.query_ts.is_some(),
                t.response_ts.is_some(),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("e7.whatsapp.net", "A", true, true),
        ("www.example.com", "AAAA", true, true),
        ("www.l.google.com", "AAAA", false, true),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(n, q, a, b)| (n.to_string(), *q, *a, *b))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(dns.stats().total_malformed(), 0);
    assert_eq!(dns.stats().unmatched_responses, 1);
    // The answers for e7.whatsapp.net name their addresses.
    let answered = transactions
        .iter()
        .find(|t| t.name == "e7.whatsapp.net")
        .expect("answered");
    assert_eq!(answered.answers.len(), 8);
    let addr = answered
        .answers
        .iter()
        .find_map(|a| a.addr())
        .expect("an address answer");
    let at = answered.response_ts.expect("response time");
    assert_eq!(dns.name_for(addr, at), Some("e7.whatsapp.net"));
    assert_eq!(answered.registered_domain(), "whatsapp.net");
}

#[test]
fn dns_over_two_interfaces_pairs_every_query() {
    let (transactions, dns) = dns_replay("zeek_pcapng-multi-interface.pcapng");
    let stats = dns.stats();
    assert_eq!((stats.messages, stats.total_malformed()), (6, 0));
    assert_eq!(stats.queries, stats.responses, "{transactions:?}");
    assert!(
        transactions
            .iter()
            .all(|t| t.query_ts.is_some() && t.response_ts.is_some())
    );
    assert!(
        transactions
            .iter()
            .all(|t| t.server.addr == ip("1.1.1.1") && t.server.port == 53)
    );
}
