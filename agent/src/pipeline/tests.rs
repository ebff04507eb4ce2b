//! The pipeline on crafted packets: the intel seam, payload labels, direction and bounds.

use std::net::Ipv4Addr;

use picket_proto::v1::{Direction, FlowSummary, IntelHit, Record, record};

use super::*;
use crate::capture::{LinkType, Packet, Timestamp};
use crate::decode::app_protocol::client_hello;
use crate::flow_table::Cidr;
use crate::summaries::FlowSummaryLimits;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// An Ethernet/IPv4/TCP frame.
fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = u16::try_from(40 + payload.len()).expect("small");
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// An Ethernet/IPv4/UDP frame with a 4-byte payload.
fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 12, 0, 0, b'd', b'a', b't', b'a']);
    f
}

/// An Ethernet/IPv4 ICMP echo request (`kind` 8) or reply (0) with identifier `id`.
fn icmp_echo(src: [u8; 4], dst: [u8; 4], kind: u8, id: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[kind, 0, 0, 0]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f
}

const HOST: [u8; 4] = [10, 0, 0, 5];

fn config(local: [u8; 4]) -> PipelineConfig {
    let local = Cidr::new(Ipv4Addr::from(local).into(), 32).expect("cidr");
    PipelineConfig {
        local: LocalNets::new([local]),
        ..PipelineConfig::default()
    }
}

/// Runs frames (one millisecond apart) through a pipeline and finishes it.
fn run<O: Observer>(pipeline: Pipeline<O>, frames: &[Vec<u8>]) -> Vec<Record> {
    let timed: Vec<(u64, &[u8])> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (u64::try_from(i).expect("small"), f.as_slice()))
        .collect();
    run_timed(pipeline, &timed)
}

/// Runs frames at the given offsets (milliseconds) through a pipeline and finishes it.
fn run_timed<O: Observer>(pipeline: Pipeline<O>, frames: &[(u64, &[u8])]) -> Vec<Record> {
    run_counted(pipeline, frames).0
}

/// As [`run_timed`], also saying how many packets the express lane took.
fn run_counted<O: Observer>(
    mut pipeline: Pipeline<O>,
    frames: &[(u64, &[u8])],
) -> (Vec<Record>, u64) {
    let mut out = Vec::new();
    for (at, frame) in frames {
        pipeline.packet(&packet_at(frame, *at), &mut |r| out.push(r));
    }
    pipeline.finish(&mut |r| out.push(r));
    (out, pipeline.express_packets)
}

/// An Ethernet `frame` seen `at` milliseconds into the test's capture.
fn packet_at(frame: &[u8], at: u64) -> Packet<'_> {
    Packet {
        ts: Timestamp::from_millis(1_700_000_000_000 + at),
        link_type: LinkType::ETHERNET,
        data: frame,
        orig_len: u32::try_from(frame.len()).expect("small"),
        interface: 0,
        outgoing: None,
    }
}

/// As [`packet_at`], which the host sent out through the capturing link when `outgoing`.
fn packet_way(frame: &[u8], at: u64, outgoing: bool) -> Packet<'_> {
    Packet {
        outgoing: Some(outgoing),
        ..packet_at(frame, at)
    }
}

/// The first `HostStats` record among `records`.
fn stats_record(records: &[Record]) -> &HostStats {
    records
        .iter()
        .find_map(|r| match &r.record {
            Some(record::Record::HostStats(s)) => Some(s),
            _ => None,
        })
        .expect("host stats")
}

/// Packets the pipeline left to containers' links, by the first `HostStats` among `records`.
fn left_to_links(records: &[Record]) -> u64 {
    stats_record(records)
        .skipped
        .iter()
        .find(|c| c.kind == "counted_on_container_link")
        .map_or(0, |c| c.count)
}

/// The NAT check's counts in the first `HostStats` record among `records`.
fn nat_checks(records: &[Record]) -> Vec<(&str, u64)> {
    stats_record(records)
        .nat_checks
        .iter()
        .map(|c| (c.kind.as_str(), c.count))
        .collect()
}

fn flows(records: &[Record]) -> Vec<&FlowSummary> {
    records
        .iter()
        .filter_map(|r| match &r.record {
            Some(record::Record::Flow(f)) => Some(f),
            _ => None,
        })
        .collect()
}

/// Flags one remote address and one query name.
struct Flagging;

impl Observer for Flagging {
    fn on_flow(&mut self, flow: &FlowRecord, hits: &mut Vec<IntelHit>) {
        let remote = flow
            .remote()
            .map(|e| e.addr.to_string())
            .unwrap_or_default();
        if remote == "203.0.113.7" {
            hits.push(IntelHit {
                matched_value: remote.clone(),
                remote_addr: remote,
                ..IntelHit::default()
            });
        }
    }
}

fn handshake(remote: [u8; 4], port: u16) -> Vec<Vec<u8>> {
    vec![
        tcp(HOST, remote, 40_000, port, SYN, &[]),
        tcp(remote, HOST, port, 40_000, SYN | ACK, &[]),
        tcp(HOST, remote, 40_000, port, ACK, &[]),
    ]
}

#[test]
fn observer_hits_are_emitted_before_the_summaries_of_their_interval() {
    let mut frames = handshake([203, 0, 113, 7], 443);
    frames.extend(handshake([198, 51, 100, 9], 443));
    let records = run(Pipeline::with_observer(config(HOST), Flagging), &frames);
    let first = records.first().and_then(|r| r.record.as_ref());
    let Some(record::Record::IntelHit(hit)) = first else {
        panic!("first record is not a hit: {records:#?}");
    };
    assert_eq!(hit.matched_value, "203.0.113.7");
    let hits = records
        .iter()
        .filter(|r| matches!(r.record, Some(record::Record::IntelHit(_))))
        .count();
    assert_eq!(hits, 1, "only the flagged address");
    assert_eq!(flows(&records).len(), 2);
}

#[test]
fn without_an_observer_no_hits_are_emitted() {
    let records = run(
        Pipeline::new(config(HOST)),
        &handshake([203, 0, 113, 7], 443),
    );
    assert!(
        records
            .iter()
            .all(|r| !matches!(r.record, Some(record::Record::IntelHit(_))))
    );
    assert_eq!(flows(&records).len(), 1);
}

#[test]
fn tls_and_stratum_payloads_label_their_summaries_and_others_stay_unlabelled() {
    let pool = [198, 51, 100, 20];
    let web = [198, 51, 100, 21];
    let other = [198, 51, 100, 22];
    let mut frames = handshake(web, 443);
    frames.push(tcp(
        HOST,
        web,
        40_000,
        443,
        ACK | PSH,
        &client_hello("pool.example.org"),
    ));
    frames.extend(handshake(pool, 3333));
    let subscribe = br#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5"]}"#;
    frames.push(tcp(HOST, pool, 40_000, 3333, ACK | PSH, subscribe));
    frames.extend(handshake(other, 8443));
    frames.push(tcp(
        HOST,
        other,
        40_000,
        8443,
        ACK | PSH,
        b"\x00\x07random bytes",
    ));
    let records = run(Pipeline::new(config(HOST)), &frames);
    let summaries = flows(&records);
    let by_port = |port: u32| {
        summaries
            .iter()
            .find(|f| f.service_port == port)
            .unwrap_or_else(|| panic!("no {port}: {summaries:#?}"))
    };
    let tls = by_port(443);
    assert_eq!(tls.app_protocol, "tls");
    assert_eq!(tls.tls_server_names, vec!["pool.example.org".to_owned()]);
    assert_eq!(by_port(3333).app_protocol, "stratum");
    assert_eq!(by_port(8443).app_protocol, "");
    assert!(by_port(8443).tls_server_names.is_empty());
}

/// A TLS session's opening (handshake one millisecond apart, then a ClientHello naming
/// `name` at 5 ms) as timed frames from port 40 000.
fn tls_session(remote: [u8; 4], port: u16, name: &str) -> Vec<(u64, Vec<u8>)> {
    let mut frames: Vec<(u64, Vec<u8>)> = handshake(remote, port)
        .into_iter()
        .enumerate()
        .map(|(i, f)| (u64::try_from(i).expect("small"), f))
        .collect();
    frames.push((
        5,
        tcp(HOST, remote, 40_000, port, ACK | PSH, &client_hello(name)),
    ));
    frames
}

/// Asserts that no `HostStats` among `records` reports a dropped record.
fn assert_no_drops(records: &[Record]) {
    for r in records {
        if let Some(record::Record::HostStats(h)) = &r.record {
            assert!(h.records_dropped.is_empty(), "{h:#?}");
        }
    }
}

#[test]
fn a_tls_session_open_for_many_intervals_keeps_its_name_and_reports_no_drop() {
    let resolver = [8, 8, 4, 4];
    let mut frames = tls_session(resolver, 853, "dns.google");
    // A query every 20 s for five minutes: the flow never idles out, so it reports interim
    // records interval after interval.
    for i in 1..=15_u64 {
        frames.push((
            i * 20_000,
            tcp(HOST, resolver, 40_000, 853, ACK | PSH, b"q"),
        ));
    }
    let timed: Vec<(u64, &[u8])> = frames.iter().map(|(t, f)| (*t, f.as_slice())).collect();
    let records = run_timed(Pipeline::new(config(HOST)), &timed);
    let summaries = flows(&records);
    assert!(summaries.len() >= 4, "{summaries:#?}");
    for s in &summaries {
        assert_eq!(s.tls_server_names, vec!["dns.google".to_owned()], "{s:#?}");
    }
    assert_no_drops(&records);
}

#[test]
fn a_tls_name_already_reported_is_not_a_drop_when_its_flow_idles_out_empty() {
    // As in the public `ndpi_tor` capture: the session's last packets come before an interval
    // closes, so its interim record carries the name; it then idles out with nothing new, which
    // gives no final record, while other traffic keeps intervals closing.
    let relay = [198, 51, 100, 80];
    let mut frames = tls_session(relay, 443, "relay.example");
    frames.push((30_000, tcp(HOST, relay, 40_000, 443, ACK | PSH, b"cell")));
    for i in 1..=6_u64 {
        frames.push((
            i * 60_000,
            tcp(HOST, [198, 51, 100, 81], 40_001, 80, ACK | PSH, b"x"),
        ));
    }
    let timed: Vec<(u64, &[u8])> = frames.iter().map(|(t, f)| (*t, f.as_slice())).collect();
    let records = run_timed(Pipeline::new(config(HOST)), &timed);
    let tls: Vec<&FlowSummary> = flows(&records)
        .into_iter()
        .filter(|f| f.service_port == 443)
        .collect();
    assert!(!tls.is_empty());
    for s in &tls {
        assert_eq!(
            s.tls_server_names,
            vec!["relay.example".to_owned()],
            "{s:#?}"
        );
    }
    assert_no_drops(&records);
}

#[test]
fn flows_between_two_other_hosts_are_summarised_with_unspecified_direction() {
    let (a, b) = ([198, 51, 100, 1], [203, 0, 113, 2]);
    let frames = vec![
        tcp(a, b, 50_000, 80, SYN, &[]),
        tcp(b, a, 80, 50_000, SYN | ACK, &[]),
    ];
    let records = run(Pipeline::new(config(HOST)), &frames);
    let summaries = flows(&records);
    assert_eq!(summaries.len(), 1);
    let s = summaries[0];
    assert_eq!(s.direction, Direction::Unspecified as i32);
    assert_eq!(
        (
            s.local_addr.as_str(),
            s.remote_addr.as_str(),
            s.service_port
        ),
        ("198.51.100.1", "203.0.113.2", 80)
    );
    assert_eq!((s.packets_out, s.packets_in), (1, 1));
}

#[test]
fn a_full_summary_table_counts_the_records_it_could_not_summarise() {
    let mut cfg = config(HOST);
    cfg.flow_limits = FlowSummaryLimits {
        max_summaries: 1,
        ..FlowSummaryLimits::default()
    };
    let mut frames = handshake([198, 51, 100, 30], 443);
    frames.extend(handshake([198, 51, 100, 31], 443));
    let records = run(Pipeline::new(cfg), &frames);
    assert_eq!(flows(&records).len(), 1);
    let stats = stats_record(&records);
    assert_eq!(stats.packets, 6);
    assert_eq!(stats.records_dropped.len(), 1, "{stats:?}");
    assert_eq!(
        (
            stats.records_dropped[0].kind.as_str(),
            stats.records_dropped[0].count
        ),
        ("flow_summaries_full", 1)
    );
}

/// Every record of a capture, with the express lane on or off.
fn replay_file(path: &std::path::Path, express: bool) -> (Vec<Record>, u64) {
    let mut source = crate::capture::PcapFile::open(path).expect("fixture opens");
    let mut pipeline = Pipeline::new(config(HOST));
    if !express {
        pipeline = pipeline.layered_only();
    }
    let mut out = Vec::new();
    // A damaged fixture still yields its records up to the damage.
    let _ = drive(&mut source, &mut pipeline, &mut |r| out.push(r));
    pipeline.finish(&mut |r| out.push(r));
    (out, pipeline.express_packets)
}

#[test]
fn the_express_lane_changes_no_record_of_any_fixture_capture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pcap");
    let (mut files, mut express) = (0, 0);
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        if !path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            continue;
        }
        let (layered, none) = replay_file(&path, false);
        assert!(!layered.is_empty(), "{}", path.display());
        assert_eq!(none, 0);
        let (records, counted) = replay_file(&path, true);
        assert_eq!(records, layered, "{}", path.display());
        files += 1;
        express += counted;
    }
    assert!(files >= 20, "only {files} fixture captures");
    assert!(
        express > 1000,
        "the express lane took only {express} packets"
    );
}

/// An Ethernet/IPv6/TCP frame between `src` and `dst` (the last groups of 2001:db8::).
fn tcp6(src: u16, dst: u16, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
    ];
    let len = u16::try_from(20 + payload.len()).expect("small");
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    for end in [src, dst] {
        f.extend_from_slice(&std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, end).octets());
    }
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A frame of one of a few conversations between two hosts (over IPv4 or IPv6), for the
/// random mixes below.
fn mixed_frame(pick: u8, flags: u8, payload_len: usize) -> Vec<u8> {
    let remote = [52, 1, 0, pick % 4];
    let port = [443, 80, 22, 8080][usize::from(pick / 4 % 4)];
    let payload = vec![0x61; payload_len];
    let v6_remote = u16::from(pick % 4) + 100;
    match (pick % 2 == 0, pick >= 16) {
        (true, false) => tcp(HOST, remote, 40_000, port, flags, &payload),
        (false, false) => tcp(remote, HOST, port, 40_000, flags, &payload),
        (true, true) => tcp6(5, v6_remote, 40_000, port, flags, &payload),
        (false, true) => tcp6(v6_remote, 5, port, 40_000, flags, &payload),
    }
}

proptest::proptest! {
    #[test]
    fn the_express_lane_changes_no_record_of_random_traffic(
        steps in proptest::collection::vec(
            (0_u8..32, proptest::sample::select(vec![SYN, SYN | ACK, ACK, ACK | PSH, 0x11, 0x04]),
             0_usize..40, 0_u64..100_000),
            1..300,
        ),
    ) {
        let frames: Vec<Vec<u8>> = steps
            .iter()
            .map(|(pick, flags, len, _)| mixed_frame(*pick, *flags, *len))
            .collect();
        // Mostly under a second between packets, sometimes up to 90 s, so intervals close and
        // flows expire between packets.
        let mut at = 0;
        let timed: Vec<(u64, &[u8])> = steps
            .iter()
            .zip(&frames)
            .map(|((_, _, _, gap), f)| {
                at += if *gap < 90_000 { gap / 100 } else { (gap - 90_000) * 9 };
                (at, f.as_slice())
            })
            .collect();
        let layered = run_timed(Pipeline::new(config(HOST)).layered_only(), &timed);
        let (records, taken) = run_counted(Pipeline::new(config(HOST)), &timed);
        proptest::prop_assert_eq!(records, layered);
        // Most of these packets are of flows already counted: the lane is taken.
        if timed.len() > 100 {
            proptest::prop_assert!(taken > 0);
        }
    }
}

/// An address the host gains while capturing (a secondary IP, an IPv6 address that arrived
/// after start) counts as the host's once the pipeline is told: new flows from it are egress
/// and `HostStats` lists it; a flow tracked before keeps the direction it was given.
#[test]
fn addresses_given_while_capturing_count_for_new_flows() {
    const NEW: [u8; 4] = [10, 0, 0, 9];
    let host = |a: [u8; 4]| Cidr::new(Ipv4Addr::from(a).into(), 32).expect("cidr");
    let mut pipeline = Pipeline::new(config(HOST));
    let mut out = Vec::new();
    let mut feed = |pipeline: &mut Pipeline<NoIntel>, frames: Vec<Vec<u8>>, at: u64| {
        for frame in &frames {
            pipeline.packet(&packet_at(frame, at), &mut |r| out.push(r));
        }
    };
    let from_new = |remote: [u8; 4], port: u16| {
        vec![
            tcp(NEW, remote, 40_000, port, SYN, &[]),
            tcp(remote, NEW, port, 40_000, SYN | ACK, &[]),
        ]
    };
    feed(&mut pipeline, from_new([198, 51, 100, 20], 443), 0);
    pipeline.set_local(LocalNets::new([host(HOST), host(NEW)]));
    feed(&mut pipeline, from_new([198, 51, 100, 21], 80), 10);
    pipeline.finish(&mut |r| out.push(r));

    let before = flows(&out)
        .into_iter()
        .find(|f| f.service_port == 443)
        .expect("the flow from before");
    assert_eq!(before.direction(), Direction::Unspecified, "{before:?}");
    let after = flows(&out)
        .into_iter()
        .find(|f| f.service_port == 80)
        .expect("the flow from after");
    assert_eq!(after.direction(), Direction::Egress, "{after:?}");
    assert_eq!(after.local_addr, "10.0.0.9");
    assert_eq!(after.remote_addr, "198.51.100.21");
    let stats = stats_record(&out);
    assert!(stats.addresses.iter().any(|a| a == "10.0.0.9"), "{stats:?}");
}

/// On a host whose containers' links are captured, a container's packets are counted by its
/// link's capture only: the uplink leaves them (counted as skipped, never silently) and still
/// counts the host's own traffic, and the container's link counts both directions of its flow.
#[test]
fn a_containers_packets_are_counted_on_its_link_and_skipped_elsewhere() {
    const POD: [u8; 4] = [10, 0, 1, 23];
    const REMOTE: [u8; 4] = [198, 51, 100, 20];
    let cidr = |a: [u8; 4]| Cidr::new(Ipv4Addr::from(a).into(), 32).expect("cidr");
    let local = LocalNets::new([cidr(HOST)])
        .with_counted_at_links([cidr(POD)])
        .with_hosted([cidr(POD)]);
    let pod_flow = [
        (tcp(POD, REMOTE, 40_000, 443, SYN, &[]), false),
        (tcp(REMOTE, POD, 443, 40_000, SYN | ACK, &[]), true),
        (tcp(POD, REMOTE, 40_000, 443, ACK, &[]), false),
    ];
    let host_flow = [(tcp(HOST, REMOTE, 40_001, 80, SYN, &[]), true)];
    let run = |container_link: bool, frames: &[(Vec<u8>, bool)]| {
        let mut pipeline = Pipeline::new(PipelineConfig {
            local: local.clone(),
            container_link,
            ..config(HOST)
        });
        let mut out = Vec::new();
        for (at, (frame, outgoing)) in (0..).zip(frames) {
            let packet = packet_way(frame, at, *outgoing);
            pipeline.packet(&packet, &mut |r| out.push(r));
        }
        pipeline.finish(&mut |r| out.push(r));
        out
    };

    let mut both = pod_flow.to_vec();
    both.extend(host_flow.iter().cloned());
    let uplink = run(false, &both);
    let locals: Vec<&str> = flows(&uplink)
        .iter()
        .map(|f| f.local_addr.as_str())
        .collect();
    assert_eq!(
        locals,
        ["10.0.0.5"],
        "the uplink counts the host's flow only"
    );
    assert_eq!(left_to_links(&uplink), 3);

    let link = run(true, &pod_flow);
    let pod = flows(&link);
    assert_eq!(pod.len(), 1, "{pod:?}");
    assert_eq!(pod[0].direction(), Direction::Egress);
    assert_eq!(pod[0].local_addr, "10.0.1.23");
    assert_eq!((pod[0].packets_out, pod[0].packets_in), (2, 1));
    assert_eq!(left_to_links(&link), 0);
}

/// A flow the uplink tracked before its container's link was captured is ended there when
/// the link takes over (what it counted is reported once), not counted on beside the link
/// by the express lane.
#[test]
fn flows_tracked_before_a_containers_link_is_captured_are_ended_on_the_uplink() {
    const POD: [u8; 4] = [10, 0, 1, 23];
    const REMOTE: [u8; 4] = [198, 51, 100, 20];
    let cidr = |a: [u8; 4]| Cidr::new(Ipv4Addr::from(a).into(), 32).expect("cidr");
    let hosted = LocalNets::new([cidr(HOST)]).with_hosted([cidr(POD)]);
    let mut pipeline = Pipeline::new(PipelineConfig {
        local: hosted.clone(),
        ..config(HOST)
    });
    let mut out = Vec::new();
    let before = [
        tcp(POD, REMOTE, 40_000, 443, SYN, &[]),
        tcp(REMOTE, POD, 443, 40_000, SYN | ACK, &[]),
        tcp(POD, REMOTE, 40_000, 443, ACK, &[]),
    ];
    for (at, frame) in (0..).zip(&before) {
        pipeline.packet(&packet_at(frame, at), &mut |r| out.push(r));
    }
    pipeline.set_local(hosted.with_counted_at_links([cidr(POD)]));
    // Plain ACKs of a known flow: the express lane's packets.
    let after = tcp(POD, REMOTE, 40_000, 443, ACK, b"more");
    for at in 10..20 {
        pipeline.packet(&packet_at(&after, at), &mut |r| out.push(r));
    }
    pipeline.finish(&mut |r| out.push(r));
    let pod = flows(&out);
    assert_eq!(pod.len(), 1, "{pod:?}");
    assert_eq!((pod[0].packets_out, pod[0].packets_in), (2, 1), "{pod:?}");
    assert_eq!(left_to_links(&out), 10);
}

/// A container's link learns the bridged container behind it from what it sends: the
/// sender's address in a bridge's network, once, and never what it receives or the host's.
#[test]
fn a_containers_link_learns_the_bridged_container_behind_it() {
    const CONTAINER: [u8; 4] = [172, 17, 0, 2];
    const GATEWAY: [u8; 4] = [172, 17, 0, 1];
    const REMOTE: [u8; 4] = [198, 51, 100, 20];
    let bridge: Cidr = "172.17.0.0/16".parse().expect("cidr");
    let host = |a: [u8; 4]| Cidr::new(Ipv4Addr::from(a).into(), 32).expect("cidr");
    let local = LocalNets::new([host(HOST), host(GATEWAY)]).with_hosted([bridge]);
    let mut pipeline = Pipeline::new(PipelineConfig {
        local: local.clone(),
        container_link: true,
        ..config(HOST)
    });
    let frames = [
        (tcp(REMOTE, CONTAINER, 443, 40_000, SYN, &[]), true),
        (tcp(GATEWAY, CONTAINER, 53, 40_001, ACK, &[]), true),
        (tcp(CONTAINER, REMOTE, 40_002, 443, SYN, &[]), false),
        (tcp(CONTAINER, REMOTE, 40_003, 443, SYN, &[]), false),
    ];
    for (at, (frame, outgoing)) in (0..).zip(&frames) {
        let packet = packet_way(frame, at, *outgoing);
        pipeline.packet(&packet, &mut |_| {});
    }
    assert_eq!(pipeline.take_learned(), [Ipv4Addr::from(CONTAINER)]);
    assert!(pipeline.take_learned().is_empty());
    // Once counted at this link, nothing more to learn.
    pipeline.set_local(local.with_counted_at_links([host(CONTAINER)]));
    let again = tcp(CONTAINER, REMOTE, 40_004, 443, SYN, &[]);
    let packet = packet_way(&again, 10, false);
    pipeline.packet(&packet, &mut |_| {});
    assert!(pipeline.take_learned().is_empty());
}

/// On a container's link too: a flow between two pods, counted on the higher one's link while
/// the lower one's link was not captured, is ended there once the lower one's link takes it.
#[test]
fn two_pods_flow_is_handed_to_the_lower_pods_link_when_that_link_is_captured() {
    const LOW: [u8; 4] = [10, 0, 1, 23];
    const HIGH: [u8; 4] = [10, 0, 1, 40];
    let cidr = |a: [u8; 4]| Cidr::new(Ipv4Addr::from(a).into(), 32).expect("cidr");
    let local = LocalNets::new([cidr(HOST)]).with_hosted([cidr(LOW), cidr(HIGH)]);
    // The higher pod's link: its pod sends (received here), the lower pod answers (sent out).
    let mut pipeline = Pipeline::new(PipelineConfig {
        local: local.clone().with_counted_at_links([cidr(HIGH)]),
        container_link: true,
        ..config(HOST)
    });
    let mut out = Vec::new();
    let mut feed = |pipeline: &mut Pipeline<NoIntel>, at: u64| {
        for (frame, outgoing) in [
            (tcp(HIGH, LOW, 40_000, 5432, ACK, b"query"), false),
            (tcp(LOW, HIGH, 5432, 40_000, ACK, b"rows"), true),
        ] {
            let packet = packet_way(&frame, at, outgoing);
            pipeline.packet(&packet, &mut |r| out.push(r));
        }
    };
    let handshake = [
        (tcp(HIGH, LOW, 40_000, 5432, SYN, &[]), false),
        (tcp(LOW, HIGH, 5432, 40_000, SYN | ACK, &[]), true),
    ];
    for (at, (frame, outgoing)) in (0..).zip(&handshake) {
        let packet = packet_way(frame, at, *outgoing);
        pipeline.packet(&packet, &mut |_| {});
    }
    feed(&mut pipeline, 5);
    pipeline.set_local(local.with_counted_at_links([cidr(HIGH), cidr(LOW)]));
    for at in 10..15 {
        feed(&mut pipeline, at);
    }
    pipeline.finish(&mut |r| out.push(r));
    let pods = flows(&out);
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(
        (pods[0].packets_out, pods[0].packets_in),
        (2, 2),
        "{pods:?}"
    );
    assert_eq!(left_to_links(&out), 10);
}

/// One tracked connection: its protocol, original tuple and reply tuple (source, then
/// destination; ICMP echoes with their id as both ports, the reply tuple an echo reply's).
type Connection = (u8, (Endpoint, Endpoint), (Endpoint, Endpoint));

/// Connection tracking as a table the test fills, found as the kernel finds a connection: by
/// its original or its reply tuple exactly (not their inverses).
#[derive(Debug, Default)]
struct FakeConntrack {
    connections: Vec<Connection>,
    failing: bool,
}

impl NatTable for FakeConntrack {
    fn lookup(
        &mut self,
        protocol: u8,
        from: Endpoint,
        to: Endpoint,
    ) -> std::io::Result<Option<Tracked>> {
        if self.failing {
            return Err(std::io::Error::other("wedged"));
        }
        let addrs = |(a, b): (Endpoint, Endpoint)| (a.addr, b.addr);
        Ok(self
            .connections
            .iter()
            .find(|(p, original, reply)| {
                *p == protocol && (*original == (from, to) || *reply == (from, to))
            })
            .map(|&(_, original, reply)| Tracked {
                original: addrs(original),
                reply: addrs(reply),
            }))
    }
}

/// On a host with containers, the uplink leaves a container's flows NATed to the host's
/// address (masqueraded out, published in) to the container's link, asking connection
/// tracking once per flow, and counts the host's own flows, NATed or not.
#[test]
fn a_containers_flows_natted_to_the_host_are_left_to_its_link() {
    const CONTAINER: [u8; 4] = [172, 17, 0, 2];
    const REMOTE: [u8; 4] = [198, 51, 100, 20];
    let ip = |a: [u8; 4]| std::net::IpAddr::from(a);
    let end = |a: [u8; 4], port| Endpoint { addr: ip(a), port };
    let cidr = |a: [u8; 4]| Cidr::new(ip(a), 32).expect("cidr");
    let local = LocalNets::new([cidr(HOST)])
        .with_counted_at_links([cidr(CONTAINER)])
        .with_hosted([Cidr::new(ip([172, 17, 0, 0]), 16).expect("cidr")]);
    let (container, remote, host) = (end(CONTAINER, 41_000), end(REMOTE, 443), end(HOST, 50_000));
    let (client, published, forwarded) = (end(REMOTE, 33_000), end(HOST, 8080), end(CONTAINER, 80));
    let (own, server) = (end(HOST, 40_001), end(REMOTE, 80));
    let table = FakeConntrack {
        connections: vec![
            // Masqueraded: the container's 41000 left as the host's 50000.
            (6, (container, remote), (remote, host)),
            // Published: the host's 8080 forwarded to the container's 80.
            (6, (client, published), (forwarded, client)),
            (6, (own, server), (server, own)),
            // A masqueraded ping: the container's id 3 left as the host's 7.
            (
                1,
                (end(CONTAINER, 3), end(REMOTE, 3)),
                (end(REMOTE, 7), end(HOST, 7)),
            ),
        ],
        failing: false,
    };
    let mut frames = vec![
        (tcp(HOST, REMOTE, 50_000, 443, SYN, &[]), true),
        (tcp(REMOTE, HOST, 443, 50_000, SYN | ACK, &[]), false),
        (tcp(REMOTE, HOST, 33_000, 8080, SYN, &[]), false),
        (tcp(HOST, REMOTE, 8080, 33_000, SYN | ACK, &[]), true),
        (tcp(HOST, REMOTE, 40_001, 80, SYN, &[]), true),
        (tcp(REMOTE, HOST, 80, 40_001, SYN | ACK, &[]), false),
        // Not tracked at all (connection tracking off for it): the host's.
        (tcp(HOST, REMOTE, 40_002, 22, SYN, &[]), true),
        (icmp_echo(HOST, REMOTE, 8, 7), true),
        (icmp_echo(REMOTE, HOST, 0, 7), false),
    ];
    for _ in 0..4 {
        frames.push((tcp(HOST, REMOTE, 50_000, 443, ACK | PSH, b"data"), true));
        frames.push((tcp(HOST, REMOTE, 40_001, 80, ACK | PSH, b"data"), true));
    }
    let run = |table: FakeConntrack| {
        let mut pipeline = Pipeline::new(PipelineConfig {
            local: local.clone(),
            ..config(HOST)
        });
        pipeline.set_nat_table(Box::new(table));
        let mut out = Vec::new();
        for (at, (frame, outgoing)) in (0..).zip(&frames) {
            pipeline.packet(&packet_way(frame, at, *outgoing), &mut |r| out.push(r));
        }
        pipeline.finish(&mut |r| out.push(r));
        (out, pipeline.totals().nat)
    };

    // A flow's port: its service port, or the port an unanswered SYN tried.
    let ports = |out: &[Record]| {
        let mut ports: Vec<u32> = flows(out)
            .iter()
            .flat_map(|f| {
                let tried = f.failed_ports.iter().copied();
                (f.service_port != 0)
                    .then_some(f.service_port)
                    .into_iter()
                    .chain(tried)
            })
            .collect();
        ports.sort_unstable();
        ports
    };
    let (out, nat) = run(table);
    assert_eq!(
        ports(&out),
        [22, 80],
        "the host's own flows only: {:?}",
        flows(&out)
    );
    assert!(
        !flows(&out).iter().any(|f| f.protocol == 1),
        "{:?}",
        flows(&out)
    );
    assert_eq!(
        left_to_links(&out),
        10,
        "2 + 4 masqueraded, 2 published, 2 pinged"
    );
    assert_eq!(
        nat,
        NatStats {
            lookups: 5,
            left_to_links: 3,
            errors: 0,
            unchecked: 0,
        },
        "one question per flow"
    );
    assert_eq!(nat_checks(&out), [("asked", 5), ("left_to_link", 3)]);

    // When connection tracking cannot be asked, every flow is counted here (twice, rather
    // than lost), and each failure is counted.
    let (out, nat) = run(FakeConntrack {
        failing: true,
        ..FakeConntrack::default()
    });
    assert_eq!(
        ports(&out),
        [8, 22, 80, 443, 8080],
        "the ping's type is its port"
    );
    assert_eq!(left_to_links(&out), 0);
    assert_eq!((nat.lookups, nat.errors, nat.left_to_links), (5, 5, 0));
    // And so the aggregator and `/metrics` hear of it.
    assert_eq!(nat_checks(&out), [("asked", 5), ("failed", 5)]);
}

/// A UDP datagram from `src`:`sport` to `dst`:`dport` as two Ethernet/IPv4 fragments: the
/// first with the UDP header and 16 bytes, the second with the last 8.
fn udp_fragments(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> [Vec<u8>; 2] {
    let fragment = |flags_offset: u16, payload: &[u8]| {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = u16::try_from(20 + payload.len()).expect("small");
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 99]);
        f.extend_from_slice(&flags_offset.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(payload);
        f
    };
    let mut first = Vec::new();
    first.extend_from_slice(&sport.to_be_bytes());
    first.extend_from_slice(&dport.to_be_bytes());
    first.extend_from_slice(&[0, 32, 0, 0]);
    first.extend_from_slice(&[7; 16]);
    // More fragments; then the second at offset 3 (24 bytes).
    [fragment(0x2000, &first), fragment(3, &[7; 8])]
}

/// A masqueraded datagram's later fragment, which has no ports of its own, is left to the
/// container's link with its first, not counted here into a flow of its own.
#[test]
fn a_masqueraded_datagrams_later_fragments_are_left_with_its_first() {
    let end = |a: [u8; 4], port| Endpoint {
        addr: std::net::IpAddr::from(a),
        port,
    };
    let (container, remote, host) = (
        end(NAT_CONTAINER, 41_000),
        end(NAT_REMOTE, 443),
        end(HOST, 50_000),
    );
    let mut pipeline = container_host_uplink(FakeConntrack {
        connections: vec![(17, (container, remote), (remote, host))],
        failing: false,
    });
    let mut out = Vec::new();
    for (at, frame) in (0..).zip(udp_fragments(HOST, NAT_REMOTE, 50_000, 443)) {
        pipeline.packet(&packet_way(&frame, at, true), &mut |r| out.push(r));
    }
    pipeline.finish(&mut |r| out.push(r));
    assert!(flows(&out).is_empty(), "{:?}", flows(&out));
    assert_eq!(left_to_links(&out), 2);
}

/// The container and the remote host of the NAT tests on a container host's uplink.
const NAT_CONTAINER: [u8; 4] = [172, 17, 0, 2];
const NAT_REMOTE: [u8; 4] = [198, 51, 100, 20];

/// A pipeline on the uplink of a host with one container ([`NAT_CONTAINER`]) counted at its
/// link, asking `table`.
fn container_host_uplink(table: FakeConntrack) -> Pipeline {
    let cidr = |a: [u8; 4]| Cidr::new(std::net::IpAddr::from(a), 32).expect("cidr");
    let mut pipeline = Pipeline::new(PipelineConfig {
        local: LocalNets::new([cidr(HOST)])
            .with_counted_at_links([cidr(NAT_CONTAINER)])
            .with_hosted([cidr(NAT_CONTAINER)]),
        ..config(HOST)
    });
    pipeline.set_nat_table(Box::new(table));
    pipeline
}

/// [`container_host_uplink`] after a SYN from [`NAT_REMOTE`] to the host's port 80 from each
/// (port offset, milliseconds) of `syns`, from port 1024 plus the offset.
fn syns_at_a_container_host(
    table: FakeConntrack,
    syns: impl Iterator<Item = (u16, u64)>,
) -> Pipeline {
    let mut pipeline = container_host_uplink(table);
    for (offset, at) in syns {
        let frame = tcp(NAT_REMOTE, HOST, 1024 + offset, 80, SYN, &[]);
        pipeline.packet(&packet_way(&frame, at, false), &mut |_| {});
    }
    pipeline
}

/// A table that fails 16 questions in a row is not asked for a minute (of packet time):
/// new flows are counted here meanwhile, as unchecked.
#[test]
fn a_table_that_keeps_failing_is_not_asked_for_a_minute() {
    // 100 new flows, then 10 more 59 s later, then 10 more 61 s later.
    let flows_at = (0..100)
        .map(|i| (i, 0))
        .chain((100..110).map(|i| (i, 59_000)));
    let pipeline = syns_at_a_container_host(
        FakeConntrack {
            failing: true,
            ..FakeConntrack::default()
        },
        flows_at.chain((110..120).map(|i| (i, 61_000))),
    );
    let nat = pipeline.totals().nat;
    assert_eq!(
        (nat.lookups, nat.errors, nat.unchecked),
        (26, 26, 94),
        "{nat:?}"
    );
    assert_eq!(pipeline.totals().decode.decoded, 120);
}

/// A flood of new flows at the host's address is looked up at most 10 000 times a second;
/// the rest are counted where they are seen (and counted as unchecked), and the next second
/// asks again.
#[test]
fn a_flood_of_new_flows_asks_connection_tracking_a_bounded_number_of_times() {
    // 12 000 SYNs from distinct ports in the first second, 10 in the next.
    let flows_at = (0..12_010).map(|i| (i, if i < 12_000 { 0 } else { 1_000 }));
    let mut pipeline = syns_at_a_container_host(FakeConntrack::default(), flows_at);
    let nat = pipeline.totals().nat;
    assert_eq!((nat.lookups, nat.unchecked), (10_010, 2_000), "{nat:?}");
    assert_eq!(pipeline.totals().decode.decoded, 12_010);
    let mut out = Vec::new();
    pipeline.finish(&mut |r| out.push(r));
    assert_eq!(nat_checks(&out), [("asked", 10_010), ("unchecked", 2_000)]);
}

/// On one node, a pod's connection to a service address that kube-proxy DNATs to a lower pod
/// is counted on the sender's link (as sent to the service), and the receiver's link leaves
/// it; a direct connection between the two pods stays on the lower pod's link.
#[test]
fn a_pods_flow_to_a_service_dnatted_to_a_lower_pod_is_left_to_the_senders_link() {
    const LOW: [u8; 4] = [10, 0, 1, 5];
    const HIGH: [u8; 4] = [10, 0, 1, 9];
    const SERVICE: [u8; 4] = [172, 20, 0, 10];
    let ip = |a: [u8; 4]| std::net::IpAddr::from(a);
    let end = |a: [u8; 4], port| Endpoint { addr: ip(a), port };
    let cidr = |a: [u8; 4]| Cidr::new(ip(a), 32).expect("cidr");
    let pods = [cidr(LOW), cidr(HIGH)];
    let (sender, service, receiver) = (end(HIGH, 40_000), end(SERVICE, 53), end(LOW, 53));
    let (direct, low_80) = (end(HIGH, 40_001), end(LOW, 80));
    let table = || FakeConntrack {
        connections: vec![
            // Sent to the service, DNATed to the low pod.
            (17, (sender, service), (receiver, sender)),
            (17, (direct, low_80), (low_80, direct)),
        ],
        failing: false,
    };
    let run = |frames: &[(Vec<u8>, bool)]| {
        let mut pipeline = Pipeline::new(PipelineConfig {
            local: LocalNets::new([cidr(HOST)])
                .with_counted_at_links(pods)
                .with_hosted(pods),
            container_link: true,
            ..config(HOST)
        });
        pipeline.set_nat_table(Box::new(table()));
        let mut out = Vec::new();
        for (at, (frame, outgoing)) in (0..).zip(frames) {
            pipeline.packet(&packet_way(frame, at, *outgoing), &mut |r| out.push(r));
        }
        pipeline.finish(&mut |r| out.push(r));
        let nat = pipeline.totals().nat;
        (out, nat)
    };
    // The low pod's link: the DNATed request and its answer, then a direct flow.
    let (out, nat) = run(&[
        (udp(HIGH, LOW, 40_000, 53), true),
        (udp(LOW, HIGH, 53, 40_000), false),
        (udp(HIGH, LOW, 40_001, 80), true),
    ]);
    let seen: Vec<u32> = flows(&out).iter().map(|f| f.service_port).collect();
    assert_eq!(seen, [80], "{:?}", flows(&out));
    assert_eq!(left_to_links(&out), 2);
    assert_eq!((nat.lookups, nat.left_to_links), (2, 1), "{nat:?}");
    // The high pod's link counts its request as sent to the service, and asks nothing.
    let (out, nat) = run(&[(udp(HIGH, SERVICE, 40_000, 53), false)]);
    let sent = flows(&out);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].local_addr.as_str(), sent[0].remote_addr.as_str()),
        ("10.0.1.9", "172.20.0.10")
    );
    assert_eq!(nat.lookups, 0);
}

/// An Ethernet/IPv4 ICMP error (`kind`, `code`) quoting the IP packet of `quoted` (an
/// Ethernet frame), its IP header and first 8 bytes, as routers and hosts send them.
fn icmp_error(src: [u8; 4], dst: [u8; 4], kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let quote = quoted.get(14..14 + 28).unwrap_or(&quoted[14..]);
    let total = u16::try_from(28 + quote.len()).expect("small");
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0];
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[kind, code, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(quote);
    f
}

/// ICMP errors about a container's NATed connections reach the uplink NATed too, between the
/// host and the remote end: each is looked up by the connection it quotes, and left to the
/// container's link (which sees it translated back) when that connection holds the
/// container. Errors about the host's own connections are counted here.
#[test]
fn icmp_errors_about_a_containers_natted_connections_are_left_to_its_link() {
    const ROUTER: [u8; 4] = [203, 0, 113, 1];
    let end = |a: [u8; 4], port| Endpoint {
        addr: std::net::IpAddr::from(a),
        port,
    };
    let (container, remote, host) = (
        end(NAT_CONTAINER, 41_000),
        end(NAT_REMOTE, 53),
        end(HOST, 50_000),
    );
    let (client, published, forwarded) = (
        end(NAT_REMOTE, 33_000),
        end(HOST, 8080),
        end(NAT_CONTAINER, 80),
    );
    let (own, discard) = (end(HOST, 40_000), end(NAT_REMOTE, 9));
    let table = FakeConntrack {
        connections: vec![
            (17, (container, remote), (remote, host)),
            (17, (client, published), (forwarded, client)),
            (17, (own, discard), (discard, own)),
            (
                1,
                (end(NAT_CONTAINER, 3), end(NAT_REMOTE, 3)),
                (end(NAT_REMOTE, 7), end(HOST, 7)),
            ),
        ],
        failing: false,
    };
    let masqueraded = udp(HOST, NAT_REMOTE, 50_000, 53);
    let frames = [
        // Port unreachable from the remote end, and time exceeded from a router on the way.
        (icmp_error(NAT_REMOTE, HOST, 3, 3, &masqueraded), false),
        (icmp_error(ROUTER, HOST, 11, 0, &masqueraded), false),
        // The container's closed port behind a published one, answered through the host.
        (
            icmp_error(HOST, NAT_REMOTE, 3, 3, &udp(NAT_REMOTE, HOST, 33_000, 8080)),
            true,
        ),
        // A masqueraded ping to an unreachable host.
        (
            icmp_error(ROUTER, HOST, 3, 1, &icmp_echo(HOST, NAT_REMOTE, 8, 7)),
            false,
        ),
        // The host's own datagram to a closed port: counted here.
        (
            icmp_error(NAT_REMOTE, HOST, 3, 3, &udp(HOST, NAT_REMOTE, 40_000, 9)),
            false,
        ),
        // A quote cut before its ports: not looked up, counted here.
        (
            icmp_error(NAT_REMOTE, HOST, 3, 3, &masqueraded[..14 + 22]),
            false,
        ),
    ];
    let mut pipeline = container_host_uplink(table);
    let mut out = Vec::new();
    for (at, (frame, outgoing)) in (0..).zip(&frames) {
        pipeline.packet(&packet_way(frame, at, *outgoing), &mut |r| out.push(r));
    }
    pipeline.finish(&mut |r| out.push(r));
    let icmp_packets: u64 = flows(&out)
        .iter()
        .filter(|f| f.protocol == 1)
        .map(|f| f.packets_in + f.packets_out)
        .sum();
    assert_eq!(icmp_packets, 2, "{:?}", flows(&out));
    assert_eq!(left_to_links(&out), 4);
    let nat = pipeline.totals().nat;
    assert_eq!((nat.lookups, nat.left_to_links), (5, 4));
}
