//! DNS pairing, TCP reassembly, the name map and hostile messages.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use super::*;
use crate::decode::{Decoded, TcpFlags, Transport};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 17);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 210);

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs_nanos(1_700_000_000 + s, 0)
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_message_type(MessageType::Query);
    m.add_query(Query::query(Name::from_str(name).expect("name"), qtype));
    m.to_vec().expect("encodes")
}

fn response(id: u16, name: &str, rcode: ResponseCode, answers: &[(&str, RData, u32)]) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Response)
        .set_response_code(rcode);
    m.add_query(Query::query(
        Name::from_str(name).expect("name"),
        RecordType::A,
    ));
    for (owner, rdata, ttl) in answers {
        m.add_answer(Record::from_rdata(
            Name::from_str(owner).expect("owner"),
            *ttl,
            rdata.clone(),
        ));
    }
    m.to_vec().expect("encodes")
}

fn udp<'a>(from_client: bool, client_port: u16, payload: &'a [u8]) -> Decoded<'a> {
    let (src, dst, sp, dp) = if from_client {
        (CLIENT, RESOLVER, client_port, 53)
    } else {
        (RESOLVER, CLIENT, 53, client_port)
    };
    Decoded {
        vlan: None,
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        protocol: protocol::UDP,
        ip_total_len: 28,
        ip_payload_len: 8,
        ttl: 64,
        fragment: None,
        transport: Transport::Udp {
            src_port: sp,
            dst_port: dp,
        },
        payload,
        snapped: false,
        tunnel: None,
    }
}

fn tcp<'a>(from_client: bool, seq: u32, flags: u8, payload: &'a [u8]) -> Decoded<'a> {
    let d = udp(from_client, 40000, payload);
    let (src_port, dst_port) = d.ports().expect("ports");
    Decoded {
        protocol: protocol::TCP,
        transport: Transport::Tcp {
            src_port,
            dst_port,
            flags: TcpFlags(flags),
            seq,
        },
        ..d
    }
}

fn tracker() -> DnsTracker {
    DnsTracker::new(DnsConfig::default())
}

#[test]
fn a_query_and_its_response_make_one_transaction_and_name_the_address() {
    let mut t = tracker();
    let mut out = Vec::new();
    let q = query(0x1234, "WWW.Example.COM.", RecordType::A);
    let addr = Ipv4Addr::new(93, 184, 216, 34);
    let r = response(
        0x1234,
        "www.example.com.",
        ResponseCode::NoError,
        &[
            (
                "www.example.com.",
                RData::CNAME(CNAME(Name::from_str("edge.example.net.").expect("n"))),
                60,
            ),
            ("edge.example.net.", RData::A(A(addr)), 30),
        ],
    );
    t.observe(secs(0), &udp(true, 5555, &q), &mut out);
    assert!(out.is_empty());
    t.observe(secs(1), &udp(false, 5555, &r), &mut out);
    assert_eq!(out.len(), 1);
    let tx = &out[0];
    assert_eq!(
        (tx.name.as_str(), tx.qtype, tx.id),
        ("www.example.com", 1, 0x1234)
    );
    assert_eq!(
        (tx.query_ts, tx.response_ts, tx.rcode),
        (Some(secs(0)), Some(secs(1)), Some(0))
    );
    assert_eq!(
        tx.client,
        Endpoint {
            addr: IpAddr::V4(CLIENT),
            port: 5555
        }
    );
    assert_eq!(tx.answers.len(), 2);
    assert_eq!((tx.answers[1].rtype, tx.answers[1].ttl), (1, 30));
    assert_eq!(tx.answers[1].data.text(), "93.184.216.34");
    // The CNAME is owned by the question's name, so it holds no copy of it; the address's
    // owner is the CNAME's target.
    assert_eq!(tx.answers[0].owner, None);
    assert_eq!(tx.answers[0].name(&tx.name), "www.example.com");
    assert_eq!(tx.answers[1].name(&tx.name), "edge.example.net");
    assert_eq!(record_type_name(tx.answers[0].rtype), "CNAME");
    assert_eq!(tx.registered_domain(), "example.com");
    // The address maps to the name the host asked for, not the CNAME target.
    assert_eq!(
        t.name_for(IpAddr::V4(addr), secs(2)),
        Some("www.example.com")
    );
    assert_eq!(
        t.name_for(IpAddr::V4(addr), secs(1 + ip_names::MIN_KEEP_SECS)),
        None
    );
    let s = t.stats();
    assert_eq!(
        (s.messages, s.queries, s.responses, s.unmatched_responses),
        (2, 1, 1, 0)
    );
}

#[test]
fn answers_to_a_different_question_than_the_query_asked_keep_their_own_owner() {
    // A response paired by id whose question is not the query's: the transaction is named by
    // the query, and the answers still say which name they were for.
    let mut t = tracker();
    let mut out = Vec::new();
    let addr = Ipv4Addr::new(198, 51, 100, 7);
    let q = query(0x0101, "asked.example.com.", RecordType::A);
    let r = response(
        0x0101,
        "other.example.org.",
        ResponseCode::NoError,
        &[("other.example.org.", RData::A(A(addr)), 30)],
    );
    t.observe(secs(0), &udp(true, 5555, &q), &mut out);
    t.observe(secs(1), &udp(false, 5555, &r), &mut out);
    assert_eq!(out.len(), 1);
    let tx = &out[0];
    assert_eq!(tx.name, "asked.example.com");
    assert_eq!(tx.answers[0].owner.as_deref(), Some("other.example.org"));
    assert_eq!(tx.answers[0].name(&tx.name), "other.example.org");
    assert_eq!(tx.answers[0].addr(), Some(IpAddr::V4(addr)));
}

#[test]
fn a_response_from_another_port_or_id_does_not_pair() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.observe(
        secs(0),
        &udp(true, 5555, &query(7, "a.example.", RecordType::A)),
        &mut out,
    );
    let other_id = response(8, "a.example.", ResponseCode::NoError, &[]);
    t.observe(secs(0), &udp(false, 5555, &other_id), &mut out);
    let other_port = response(7, "a.example.", ResponseCode::NoError, &[]);
    t.observe(secs(0), &udp(false, 6666, &other_port), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|tx| tx.query_ts.is_none()));
    assert_eq!(t.stats().unmatched_responses, 2);
}

#[test]
fn an_unanswered_query_times_out_and_nxdomain_is_flagged() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.observe(
        secs(0),
        &udp(true, 1, &query(1, "gone.example.", RecordType::TXT)),
        &mut out,
    );
    t.observe(
        secs(0),
        &udp(true, 2, &query(2, "nx.example.", RecordType::A)),
        &mut out,
    );
    t.observe(
        secs(1),
        &udp(
            false,
            2,
            &response(2, "nx.example.", ResponseCode::NXDomain, &[]),
        ),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].is_nxdomain() && !out[0].is_unanswered());
    t.expire(secs(4), &mut out);
    assert_eq!(out.len(), 1, "not yet timed out");
    t.expire(secs(5), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out[1].is_unanswered());
    assert_eq!(
        (out[1].name.as_str(), record_type_name(out[1].qtype)),
        ("gone.example", "TXT")
    );
    assert_eq!(t.stats().unanswered, 1);
}

#[test]
fn the_pending_table_is_bounded_and_gives_up_on_the_oldest() {
    let config = DnsConfig {
        max_pending: 2,
        ..DnsConfig::default()
    };
    let mut t = DnsTracker::new(config);
    let mut out = Vec::new();
    for id in 1..=3 {
        t.observe(
            secs(0),
            &udp(true, id, &query(id, "x.example.", RecordType::A)),
            &mut out,
        );
    }
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].id, out[0].is_unanswered()), (1, true));
    assert_eq!(t.stats().pending_evicted, 1);
    t.flush(&mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(t.stats().unanswered, 3);
}

#[test]
fn the_name_map_is_bounded_and_forgets_the_oldest_address() {
    let mut names = IpNames::new(2);
    let ip = |n| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    names.insert(secs(0), ip(1), "one.example", 60);
    names.insert(secs(0), ip(2), "two.example", 60);
    names.insert(secs(0), ip(1), "uno.example", 60);
    assert_eq!(
        (names.len(), names.evicted()),
        (2, 0),
        "a replacement is not an eviction"
    );
    names.insert(secs(0), ip(3), "three.example", 60);
    assert_eq!((names.len(), names.evicted()), (2, 1));
    assert_eq!(names.get(ip(1), secs(1)), Some("uno.example"));
    assert_eq!(names.get(ip(2), secs(1)), None);
    assert_eq!(names.get(ip(3), secs(1)), Some("three.example"));
}

#[test]
fn dns_over_tcp_split_across_segments_is_reassembled() {
    let mut t = tracker();
    let mut out = Vec::new();
    let q = query(9, "split.example.", RecordType::AAAA);
    let mut framed = u16::try_from(q.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&q);
    t.observe(secs(0), &tcp(true, 1000, TcpFlags::SYN, &[]), &mut out);
    // One byte of the length prefix, then the rest in two pieces, one sent twice.
    t.observe(
        secs(0),
        &tcp(true, 1001, TcpFlags::ACK, &framed[..1]),
        &mut out,
    );
    t.observe(
        secs(0),
        &tcp(true, 1002, TcpFlags::ACK, &framed[1..10]),
        &mut out,
    );
    t.observe(
        secs(0),
        &tcp(true, 1002, TcpFlags::ACK, &framed[1..10]),
        &mut out,
    );
    assert_eq!(t.stats().queries, 0, "not complete yet");
    t.observe(
        secs(0),
        &tcp(true, 1011, TcpFlags::ACK, &framed[10..]),
        &mut out,
    );
    assert_eq!(t.stats().queries, 1);
    // Two responses in one segment.
    let r = response(9, "split.example.", ResponseCode::NoError, &[]);
    let mut two = Vec::new();
    for _ in 0..2 {
        two.extend_from_slice(&u16::try_from(r.len()).expect("small").to_be_bytes());
        two.extend_from_slice(&r);
    }
    t.observe(secs(1), &tcp(false, 5000, TcpFlags::ACK, &two), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].protocol, out[0].query_ts),
        (protocol::TCP, Some(secs(0)))
    );
    assert_eq!(
        out[1].query_ts, None,
        "the second response has no query left"
    );
    assert_eq!(t.stats().total_malformed(), 0);
}

#[test]
fn a_lost_tcp_segment_drops_the_stream_and_is_counted() {
    let mut t = tracker();
    let mut out = Vec::new();
    let q = query(9, "lost.example.", RecordType::A);
    let mut framed = u16::try_from(q.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&q);
    t.observe(secs(0), &tcp(true, 1000, TcpFlags::SYN, &[]), &mut out);
    t.observe(
        secs(0),
        &tcp(true, 1001, TcpFlags::ACK, &framed[..5]),
        &mut out,
    );
    t.observe(
        secs(0),
        &tcp(true, 1010, TcpFlags::ACK, &framed[9..]),
        &mut out,
    );
    assert_eq!((t.stats().queries, t.stats().tcp_gaps), (0, 1));
}

#[test]
fn tcp_streams_are_bounded() {
    let mut streams = TcpStreams::new(2);
    for port in 1..=3 {
        let src = Endpoint {
            addr: IpAddr::V4(CLIENT),
            port,
        };
        let dst = Endpoint {
            addr: IpAddr::V4(RESOLVER),
            port: 53,
        };
        streams.push(src, dst, 0, TcpFlags(TcpFlags::SYN), &[], |_| {});
    }
    assert_eq!((streams.len(), streams.stats().evicted), (2, 1));
}

/// A response whose question name is a compression pointer to itself.
fn self_pointer() -> Vec<u8> {
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    m
}

/// Found by the `dns` fuzz target: hickory parses this message (three questions, one answer),
/// but printing its answer's record data fails, which `to_string` turned into a panic.
const UNPRINTABLE_RDATA: [u8; 61] = [
    0x00, 0x01, 0x01, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0d,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x04, 0x00,
    0x00, 0x0c, 0x2f, 0x00, 0x00, 0x0c, 0x2f, 0x00, 0x00, 0x00, 0x00, 0xbd, 0x00, 0x00, 0x00, 0x41,
    0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn hostile_messages_are_counted_by_kind_and_never_fatal() {
    let mut t = tracker();
    let mut out = Vec::new();
    let mut bad_counts = query(1, "a.example.", RecordType::A);
    bad_counts[6..8].copy_from_slice(&0xffff_u16.to_be_bytes());
    let mut bad_rdlength = response(
        2,
        "b.example.",
        ResponseCode::NoError,
        &[("b.example.", RData::A(A(Ipv4Addr::LOCALHOST)), 5)],
    );
    let len = bad_rdlength.len();
    bad_rdlength[len - 6..len - 4].copy_from_slice(&200_u16.to_be_bytes());
    let no_question = {
        let mut m = Message::new();
        m.set_id(3);
        m.to_vec().expect("encodes")
    };
    for payload in [
        &[0_u8; 5][..],
        &bad_counts,
        &self_pointer(),
        &bad_rdlength,
        &no_question,
        &UNPRINTABLE_RDATA,
    ] {
        t.observe(secs(0), &udp(true, 1, payload), &mut out);
    }
    let s = t.stats();
    assert_eq!(s.malformed(DnsErrorKind::TooShort), 1);
    assert_eq!(s.malformed(DnsErrorKind::BadCounts), 1);
    assert_eq!(
        s.malformed(DnsErrorKind::Malformed),
        3,
        "pointer loop, rdata length and unprintable rdata"
    );
    assert_eq!(s.malformed(DnsErrorKind::NoQuestion), 1);
    assert_eq!((s.total_malformed(), s.messages), (6, 0));
    assert!(out.is_empty());
    // A good message afterwards still counts.
    t.observe(
        secs(0),
        &udp(true, 1, &query(4, "ok.example.", RecordType::A)),
        &mut out,
    );
    assert_eq!(t.stats().queries, 1);
}

#[test]
fn packets_not_on_port_53_are_ignored() {
    let mut t = tracker();
    let q = query(1, "a.example.", RecordType::A);
    let mut d = udp(true, 5555, &q);
    d.transport = Transport::Udp {
        src_port: 5555,
        dst_port: 5353,
    };
    t.observe(secs(0), &d, &mut Vec::new());
    assert_eq!(t.stats().messages, 0);
}

#[test]
fn error_kind_labels_are_distinct() {
    let mut labels: Vec<_> = DnsErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), DnsErrorKind::COUNT);
    for (i, kind) in DnsErrorKind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), i);
    }
}

/// Label bytes the generated names draw from: plain ones and every kind hickory escapes.
const LABEL_BYTES: &[u8] = b"abcXYZ019-_*.\\\" \x00\x7f\x80\xff";

/// A generated DNS message: header bytes, a question name of labels (or a pointer), type and
/// class, answers (owner pointer, type, class, data) and trailing bytes, mostly plain.
fn generated_message(
    flags: (u8, u8),
    counts: (u16, u16, u16),
    labels: &[Vec<u8>],
    question: (u16, u16),
    answers: &[(u16, u16, u16, Vec<u8>)],
    trailing: &[u8],
) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, flags.0, flags.1, 0, 1];
    m.extend_from_slice(&counts.0.to_be_bytes());
    m.extend_from_slice(&counts.1.to_be_bytes());
    m.extend_from_slice(&counts.2.to_be_bytes());
    for label in labels {
        m.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        m.extend_from_slice(label);
    }
    m.push(0);
    m.extend_from_slice(&question.0.to_be_bytes());
    m.extend_from_slice(&question.1.to_be_bytes());
    for (owner, rtype, class, data) in answers {
        m.extend_from_slice(&owner.to_be_bytes());
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&class.to_be_bytes());
        m.extend_from_slice(&300_u32.to_be_bytes());
        m.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
        m.extend_from_slice(data);
    }
    m.extend_from_slice(trailing);
    m
}

#[test]
fn common_messages_take_the_plain_reader_and_read_as_hickory_reads_them() {
    let a = RData::A(A::new(52, 1, 2, 3));
    let aaaa = RData::AAAA(hickory_proto::rr::rdata::AAAA::new(
        0x2001, 0xdb8, 0, 0, 0, 0, 0, 1,
    ));
    let cases = [
        query(7, "www.Example.com.", RecordType::A),
        query(8, "x-1_y.t.example.net.", RecordType::AAAA),
        query(9, ".", RecordType::NS),
        response(
            7,
            "www.example.com.",
            ResponseCode::NoError,
            &[
                ("www.example.com.", a.clone(), 60),
                ("www.example.com.", aaaa, 0),
            ],
        ),
        response(10, "a.b.", ResponseCode::ServFail, &[]),
    ];
    for bytes in cases {
        let plain = message::parse_plain(&bytes);
        assert!(matches!(plain, Some(Ok(_))), "{bytes:?} is plain");
        assert_eq!(plain, Some(message::parse_with_hickory(&bytes)));
        // Cut short anywhere past the header (a snap length), it is malformed either way.
        for end in 12..bytes.len() {
            let cut = bytes.get(..end).unwrap_or_default();
            assert_eq!(
                message::parse_plain(cut),
                Some(Err(DnsErrorKind::Malformed)),
                "cut at {end}"
            );
            assert_eq!(
                message::parse_with_hickory(cut),
                Err(DnsErrorKind::Malformed)
            );
        }
    }
    // Not plain: a CNAME answer, an escaped label, a name for an owner.
    let cname = RData::CNAME(CNAME(Name::from_str("c.example.com.").expect("name")));
    for bytes in [
        response(
            1,
            "www.example.com.",
            ResponseCode::NoError,
            &[("www.example.com.", cname, 5)],
        ),
        query(2, r"a\.b.example.com.", RecordType::A),
        response(
            3,
            "www.example.com.",
            ResponseCode::NoError,
            &[("other.example.com.", a, 5)],
        ),
    ] {
        assert_eq!(message::parse_plain(&bytes), None);
        assert!(parse(&bytes).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Wherever the plain reader answers, hickory reads the same message, or finds it malformed
    /// as well. Each part of a generated message is plain four times in five, so about a third
    /// of the messages are plain throughout and the rest are one or two details away,
    /// exercising the refusals; a quarter are cut short somewhere.
    #[test]
    fn the_plain_reader_agrees_with_hickory(
        flags in (prop_oneof![2 => Just(0x01_u8), 2 => Just(0x81), 1 => any::<u8>()], prop_oneof![2 => Just(0x80_u8), 2 => Just(0x83), 1 => any::<u8>()]),
        counts in prop_oneof![8 => Just(None), 1 => (0_u16..3, 0_u16..3, 0_u16..3).prop_map(Some)],
        labels in prop::collection::vec(
            prop_oneof![
                12 => prop::collection::vec(prop::sample::select(&b"abzAZ09-_"[..]), 1..12),
                1 => prop::collection::vec(prop::sample::select(LABEL_BYTES), 0..70),
            ],
            0..5,
        ),
        question in (prop_oneof![2 => Just(1_u16), 2 => Just(28), 1 => any::<u16>()], prop_oneof![4 => Just(1_u16), 1 => any::<u16>()]),
        answers in prop::collection::vec(
            (
                prop_oneof![8 => Just(0xc00c_u16), 1 => any::<u16>()],
                prop_oneof![
                    4 => prop::collection::vec(any::<u8>(), 4).prop_map(|d| (1_u16, d)),
                    4 => prop::collection::vec(any::<u8>(), 16).prop_map(|d| (28_u16, d)),
                    1 => (prop_oneof![Just(1_u16), Just(28), Just(5), any::<u16>()], prop::collection::vec(any::<u8>(), 0..20)),
                ],
                prop_oneof![8 => Just(1_u16), 1 => any::<u16>()],
            ),
            0..4,
        ),
        trailing in prop::collection::vec(any::<u8>(), 0..4),
        cut in prop_oneof![3 => Just(None), 1 => (0_usize..200).prop_map(Some)],
    ) {
        let answer_count = u16::try_from(answers.len()).unwrap_or(0);
        let counts = counts.unwrap_or((answer_count, 0, 0));
        let answers: Vec<(u16, u16, u16, Vec<u8>)> = answers
            .into_iter()
            .map(|(owner, (rtype, data), class)| (owner, rtype, class, data))
            .collect();
        let mut bytes = generated_message(flags, counts, &labels, question, &answers, &trailing);
        if let Some(end) = cut {
            bytes.truncate(end);
        }
        if let Some(plain) = message::parse_plain(&bytes) {
            prop_assert_eq!(plain, message::parse_with_hickory(&bytes));
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_dns_parser(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse(&data);
    }

    #[test]
    fn arbitrary_tcp_segments_never_panic_reassembly(
        segments in prop::collection::vec((any::<u32>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..80)), 1..20),
    ) {
        let mut t = tracker();
        let mut out = Vec::new();
        for (seq, flags, payload) in &segments {
            t.observe(secs(0), &tcp(true, *seq, *flags, payload), &mut out);
        }
        prop_assert!(t.streams.len() <= DnsConfig::default().max_tcp_streams);
    }
}

#[test]
fn parsing_into_a_used_message_gives_what_parsing_afresh_does() {
    // The tracker parses every UDP message into one `DnsMessage`: nothing of a message may
    // show through in the next, whichever reader (plain or hickory) read either.
    let addr = Ipv4Addr::new(198, 51, 100, 9);
    let long = "a-rather-long-label-for-a-name.and-another-one.example.com.";
    let messages = [
        response(
            1,
            long,
            ResponseCode::NoError,
            &[(long, RData::A(A(addr)), 60)],
        ),
        query(2, "b.example.org.", RecordType::AAAA),
        response(
            3,
            "c.example.net.",
            ResponseCode::NoError,
            &[(
                "c.example.net.",
                RData::CNAME(CNAME(Name::from_str("d.example.net.").expect("n"))),
                5,
            )],
        ),
        vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'x'],
        response(4, "e.example.com.", ResponseCode::NXDomain, &[]),
        query(5, "f.example.com.", RecordType::A),
    ];
    let mut scratch = DnsMessage::default();
    for bytes in &messages {
        let fresh = parse(bytes);
        let reused = parse_into(bytes, &mut scratch).map(|()| scratch.clone());
        assert_eq!(reused, fresh);
    }
    assert_eq!(scratch.name, "f.example.com");
}
