//! The pcap/pcapng reader and the decoder on real captures (see `fixtures/pcap/README.md`).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use picket_agent::capture::pcap_file::CorruptKind;
use picket_agent::capture::{LinkType, PacketSource, PcapFile, PcapFileError, Timestamp};
use picket_agent::decode::{DecodeStats, Outcome, SkipKind, Transport, decode_packet, protocol};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture is readable")
}

/// What a whole capture decodes to.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    packets: u64,
    by_link: BTreeMap<u32, u64>,
    by_interface: BTreeMap<u32, u64>,
    tcp: u64,
    udp: u64,
    icmp: u64,
    icmpv6: u64,
    vlan_tagged: u64,
    ipv6: u64,
    stats: DecodeStats,
    first_ts: Option<Timestamp>,
    tunneled: u64,
    inner_addrs: std::collections::BTreeSet<std::net::IpAddr>,
}

fn summarize(source: &mut PcapFile) -> Result<Summary, PcapFileError> {
    let mut s = Summary::default();
    while let Some(packet) = source.next_packet()? {
        s.packets += 1;
        *s.by_link.entry(packet.link_type.0).or_default() += 1;
        *s.by_interface.entry(packet.interface).or_default() += 1;
        s.first_ts.get_or_insert(packet.ts);
        let result = decode_packet(&packet);
        s.stats.record(&result);
        if let Ok(Outcome::Decoded(d)) = result {
            s.vlan_tagged += u64::from(d.vlan.is_some());
            s.ipv6 += u64::from(d.src.is_ipv6());
            if d.tunnel.is_some() {
                s.tunneled += 1;
                s.inner_addrs.extend([d.src, d.dst]);
            }
            match (d.transport, d.protocol) {
                (Transport::Tcp { .. }, _) => s.tcp += 1,
                (Transport::Udp { .. }, _) => s.udp += 1,
                (Transport::Icmp { .. }, protocol::ICMP) => s.icmp += 1,
                (Transport::Icmp { .. }, _) => s.icmpv6 += 1,
                (Transport::LaterFragment, _) => {}
            }
        }
    }
    Ok(s)
}

fn summarize_file(name: &str) -> Summary {
    let mut source = PcapFile::open(fixture(name)).expect("fixture opens");
    summarize(&mut source).expect("fixture reads to the end")
}

#[test]
fn sll2_capture_decodes_five_ipv4_tcp_packets() {
    let s = summarize_file("suricata_decode-sll2-01.pcap");
    assert_eq!(s.by_link, BTreeMap::from([(LinkType::LINUX_SLL2.0, 5)]));
    assert_eq!((s.tcp, s.stats.decoded, s.stats.total_errors()), (5, 5, 0));
}

#[test]
fn raw_ipv4_link_type_228_decodes_seven_tcp_packets() {
    let s = summarize_file("suricata_linktype-228_rawipv4.pcap");
    assert_eq!(s.by_link, BTreeMap::from([(LinkType::IPV4.0, 7)]));
    assert_eq!(
        (s.tcp, s.stats.total_errors(), s.stats.total_skipped()),
        (7, 0, 0)
    );
}

#[test]
fn vlan_tagged_http_download_decodes_every_packet_with_its_tag() {
    let s = summarize_file("zeek_http-vlan-0.pcap");
    assert_eq!(s.packets, 14);
    assert_eq!((s.tcp, s.vlan_tagged, s.stats.total_errors()), (14, 14, 0));
}

#[test]
fn sll_v1_captures_decode_tcp_and_skip_arp() {
    let s = summarize_file("ndpi_dns2tcp_over_doh_linux-sll.pcap");
    assert_eq!(s.by_link, BTreeMap::from([(LinkType::LINUX_SLL.0, 50)]));
    assert_eq!((s.tcp, s.stats.total_errors()), (50, 0));
    let s = summarize_file("zeek_linuxsll-arp.pcap");
    assert_eq!(s.packets, 12);
    assert_eq!((s.stats.skipped(SkipKind::Arp), s.stats.decoded), (12, 0));
}

#[test]
fn sll2_capture_with_icmp_icmpv6_and_arp_counts_each() {
    let s = summarize_file("zeek_linux_dlt_sll2.pcap");
    assert_eq!(s.packets, 6);
    assert!(s.icmp > 0 && s.icmpv6 > 0, "{s:?}");
    assert!(s.stats.skipped(SkipKind::Arp) > 0, "{s:?}");
    assert_eq!(
        s.icmp + s.icmpv6 + s.stats.skipped(SkipKind::Arp),
        6,
        "{s:?}"
    );
    assert_eq!(s.stats.total_errors(), 0);
}

#[test]
fn pcapng_with_two_interfaces_reports_packets_on_both() {
    let s = summarize_file("zeek_pcapng-multi-interface.pcapng");
    assert_eq!(s.packets, 6);
    assert_eq!(s.by_interface.len(), 2, "{:?}", s.by_interface);
    assert_eq!((s.udp, s.stats.total_errors()), (6, 0));
    // Both interfaces' timestamps, in their own resolutions, land in the same era (2020s).
    let mut source = PcapFile::open(fixture("zeek_pcapng-multi-interface.pcapng")).expect("opens");
    let mut stamps = Vec::new();
    while let Some(p) = source.next_packet().expect("reads") {
        stamps.push((p.interface, p.ts.as_millis() / 1000));
    }
    for (iface, secs) in &stamps {
        assert!(
            (1_500_000_000..2_000_000_000).contains(secs),
            "interface {iface}: {secs}"
        );
    }
}

#[test]
fn vxlan_and_geneve_captures_decode_to_their_inner_icmp() {
    let s = summarize_file("zeek_vxlan.pcap");
    assert_eq!((s.packets, s.stats.total_errors()), (10, 0));
    assert!(s.icmp > 0 && s.tunneled == s.icmp, "{s:?}");
    assert!(
        s.inner_addrs
            .iter()
            .all(|a| a.to_string().starts_with("10.0.0.")),
        "{s:?}"
    );
    let s = summarize_file("zeek_geneve.pcap");
    assert_eq!((s.packets, s.stats.total_errors()), (6, 0));
    assert!(s.icmp > 0 && s.tunneled == s.icmp, "{s:?}");
    assert!(
        s.inner_addrs
            .iter()
            .all(|a| a.to_string().starts_with("30.0.0.")),
        "{s:?}"
    );
}

#[test]
fn pcapng_named_pcap_is_read_by_its_magic_bytes() {
    assert_eq!(&bytes("ndpi_dns.pcap")[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
    let s = summarize_file("ndpi_dns.pcap");
    // Two of the five ride in PPPoE inside QinQ.
    assert_eq!((s.packets, s.udp, s.vlan_tagged), (5, 5, 2));
}

#[test]
fn a_text_file_is_not_a_capture() {
    let err = PcapFile::from_reader(Cursor::new(b"hello world".to_vec())).expect_err("text");
    assert!(
        matches!(err, PcapFileError::NotACapture { ref magic } if magic == b"hell"),
        "{err}"
    );
    let err = PcapFile::from_reader(Cursor::new(vec![0xd4])).expect_err("one byte");
    assert!(matches!(err, PcapFileError::NotACapture { .. }), "{err}");
    let err = PcapFile::open(fixture("no-such-file.pcap")).expect_err("missing");
    assert!(err.to_string().contains("no-such-file.pcap"), "{err}");
    let err = PcapFile::from_reader(Cursor::new(Vec::new())).expect_err("empty");
    assert_eq!(
        err.to_string(),
        "the file is empty, not a pcap or pcapng file"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("compresses");
    encoder.finish().expect("compresses")
}

#[test]
fn gzipped_pcap_and_pcapng_read_as_the_plain_files() {
    for name in [
        "zeek_ssh_single-conn.pcap",
        "zeek_pcapng-multi-interface.pcapng",
    ] {
        let mut plain = PcapFile::open(fixture(name)).expect("opens");
        let mut packed =
            PcapFile::from_reader(Cursor::new(gzip(&bytes(name)))).expect("gzip opens");
        assert!(packed.is_gzip() && !plain.is_gzip());
        let expected = summarize(&mut plain).expect("reads");
        assert!(expected.packets > 0, "{name}");
        assert_eq!(summarize(&mut packed).expect("reads"), expected, "{name}");
    }
    // Members written one after another (`cat a.gz b.gz`) are one stream, as gzip reads them.
    let data = bytes("zeek_ssh_single-conn.pcap");
    let (head, tail) = data.split_at(5000);
    let mut two = gzip(head);
    two.extend(gzip(tail));
    let mut source = PcapFile::from_reader(Cursor::new(two)).expect("opens");
    assert_eq!(summarize(&mut source).expect("reads").packets, 94);
}

#[test]
fn a_cut_gzip_stream_yields_the_packets_before_and_says_why() {
    let packed = gzip(&bytes("zeek_ssh_single-conn.pcap"));
    let cut = packed[..packed.len() / 2].to_vec();
    let mut source = PcapFile::from_reader(Cursor::new(cut)).expect("header is intact");
    let mut packets = 0;
    let err = loop {
        match source.next_packet() {
            Ok(Some(_)) => packets += 1,
            Ok(None) => panic!("a cut stream must not end cleanly"),
            Err(e) => break e,
        }
    };
    assert!(packets > 10 && packets < 94, "{packets}");
    let PcapFileError::Gzip { source: inner } = &err else {
        panic!("not wrapped as gzip: {err}");
    };
    // Either the decompressor's complaint or a record cut at the stream's end.
    assert!(
        matches!(
            **inner,
            PcapFileError::Read { .. } | PcapFileError::Truncated { .. }
        ),
        "{err}"
    );
    assert!(err.offset().is_some(), "{err}");
    assert!(
        err.to_string()
            .starts_with("gzip-compressed (offsets are in the decompressed data): "),
        "{err}"
    );
    assert_eq!(source.next_packet().expect("finished"), None);
}

#[test]
fn compressed_non_captures_and_other_compressions_are_named() {
    let err = PcapFile::from_reader(Cursor::new(gzip(b"hello world"))).expect_err("text");
    assert!(
        matches!(&err, PcapFileError::Gzip { source } if matches!(**source, PcapFileError::NotACapture { .. })),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "gzip-compressed: not a pcap or pcapng file: it starts with [68, 65, 6c, 6c]"
    );
    let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00];
    let err = PcapFile::from_reader(Cursor::new(zstd.to_vec())).expect_err("zstd");
    assert!(
        matches!(err, PcapFileError::Compressed { format: "zstd" }),
        "{err}"
    );
    assert!(err.to_string().contains("decompress it first"), "{err}");
}

/// Byte offsets of each record in a little-endian microsecond pcap, walked independently of
/// the reader: a 24-byte file header, then 16-byte record headers each followed by caplen bytes.
fn pcap_record_offsets(data: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 24;
    while let Some(header) = data.get(at..at + 16) {
        offsets.push(at);
        let caplen = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        at += 16 + usize::try_from(caplen).expect("fits");
    }
    offsets
}

#[test]
fn truncated_pcap_reports_the_offset_and_still_yields_earlier_packets() {
    let data = bytes("zeek_ssh_single-conn.pcap");
    let offsets = pcap_record_offsets(&data);
    assert_eq!(offsets.len(), 94);
    let last = offsets[93];
    let cut = data[..data.len() - 10].to_vec();
    let mut source = PcapFile::from_reader(Cursor::new(cut)).expect("header is intact");
    let mut packets = 0;
    let err = loop {
        match source.next_packet() {
            Ok(Some(_)) => packets += 1,
            Ok(None) => panic!("a truncated file must not end cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(packets, 93);
    assert!(matches!(err, PcapFileError::Truncated { .. }), "{err}");
    assert_eq!(err.offset(), Some(u64::try_from(last).expect("fits")));
    assert!(err.to_string().contains(&last.to_string()), "{err}");
    // After the error the source is finished, not stuck.
    assert_eq!(source.next_packet().expect("finished"), None);
    assert_eq!(source.stats().packets, 93);
}

#[test]
fn a_cut_inside_a_record_header_is_also_truncation() {
    let data = bytes("suricata_df-distinct-dstport.pcap");
    let offsets = pcap_record_offsets(&data);
    assert_eq!(offsets.len(), 2);
    let cut = data[..offsets[1] + 7].to_vec();
    let mut source = PcapFile::from_reader(Cursor::new(cut)).expect("header is intact");
    assert!(source.next_packet().expect("first record").is_some());
    let err = source.next_packet().expect_err("second record is cut");
    assert_eq!(err.offset(), Some(u64::try_from(offsets[1]).expect("fits")));
    // A file cut exactly between records ends cleanly.
    let clean = data[..offsets[1]].to_vec();
    let mut source = PcapFile::from_reader(Cursor::new(clean)).expect("header is intact");
    assert!(source.next_packet().expect("first record").is_some());
    assert_eq!(source.next_packet().expect("clean end"), None);
}

#[test]
fn a_record_claiming_a_huge_length_is_corrupt_at_its_offset() {
    let mut data = bytes("suricata_df-distinct-dstport.pcap");
    let offsets = pcap_record_offsets(&data);
    let second = offsets[1];
    data[second + 8..second + 12].copy_from_slice(&0x7fff_ffff_u32.to_le_bytes());
    let mut source = PcapFile::from_reader(Cursor::new(data)).expect("header is intact");
    assert!(source.next_packet().expect("first record").is_some());
    let err = source.next_packet().expect_err("second record lies");
    assert_eq!(
        err.offset(),
        Some(u64::try_from(second).expect("fits")),
        "{err}"
    );
    assert!(
        matches!(
            err,
            PcapFileError::Corrupt {
                kind: CorruptKind::RecordTooLarge,
                ..
            }
        ),
        "{err}"
    );
}

/// Offsets of each block in a pcapng file (little-endian sections only).
fn pcapng_block_offsets(data: &[u8]) -> Vec<(usize, u32)> {
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(header) = data.get(at..at + 8) {
        let kind = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        blocks.push((at, kind));
        at += usize::try_from(len).expect("fits");
    }
    blocks
}

#[test]
fn corrupt_pcapng_block_is_reported_at_its_offset_after_earlier_packets() {
    let mut data = bytes("zeek_pcapng-multi-interface.pcapng");
    let blocks = pcapng_block_offsets(&data);
    let epbs: Vec<usize> = blocks
        .iter()
        .filter(|(_, k)| *k == 6)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(epbs.len(), 6);
    // Break the fourth packet block's trailing length so it no longer matches the leading one.
    let fourth = epbs[3];
    let len = u32::from_le_bytes(data[fourth + 4..fourth + 8].try_into().expect("4 bytes"));
    let trailer = fourth + usize::try_from(len).expect("fits") - 4;
    data[trailer] ^= 0xff;
    let mut source = PcapFile::from_reader(Cursor::new(data)).expect("section header is intact");
    let mut packets = 0;
    let err = loop {
        match source.next_packet() {
            Ok(Some(_)) => packets += 1,
            Ok(None) => panic!("corruption must be reported"),
            Err(e) => break e,
        }
    };
    assert_eq!(packets, 3);
    assert_eq!(
        err.offset(),
        Some(u64::try_from(fourth).expect("fits")),
        "{err}"
    );
}

/// Writes the packets of a pcap as a little-endian pcapng with one interface, nanosecond
/// timestamps (if_tsresol = 9) and the given link type: the same traffic in the other format.
fn pcapng_from(packets: &[(Timestamp, Vec<u8>, u32)], link: LinkType) -> Vec<u8> {
    pcapng_with(packets, link, 0)
}

/// As [`pcapng_from`], with every packet block naming interface `if_id`.
fn pcapng_with(packets: &[(Timestamp, Vec<u8>, u32)], link: LinkType, if_id: u32) -> Vec<u8> {
    let mut out = pcapng_header(link);
    for (ts, data, orig_len) in packets {
        let mut epb = if_id.to_le_bytes().to_vec();
        epb.extend_from_slice(&u32::try_from(ts.0 >> 32).expect("high").to_le_bytes());
        epb.extend_from_slice(
            &u32::try_from(ts.0 & 0xffff_ffff)
                .expect("low")
                .to_le_bytes(),
        );
        epb.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
        epb.extend_from_slice(&orig_len.to_le_bytes());
        epb.extend_from_slice(data);
        pcapng_block(&mut out, 6, &epb);
    }
    out
}

/// Appends one little-endian pcapng block with its padding and trailing length.
fn pcapng_block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().div_ceil(4) * 4;
    let len = u32::try_from(12 + padded).expect("small block");
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend_from_slice(&len.to_le_bytes());
}

/// A section header and one interface of `link` with nanosecond timestamps.
fn pcapng_header(link: LinkType) -> Vec<u8> {
    let block = pcapng_block;
    let mut out = Vec::new();
    let mut shb = 0x1a2b_3c4d_u32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = u16::try_from(link.0)
        .expect("small link type")
        .to_le_bytes()
        .to_vec();
    idb.extend_from_slice(&[0, 0, 0, 0, 4, 0]);
    // Option if_tsresol (9) = 9: nanoseconds; then end of options.
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    block(&mut out, 1, &idb);
    out
}

#[test]
fn pcap_and_pcapng_of_the_same_traffic_decode_identically() {
    for name in ["zeek_ssh_single-conn.pcap", "suricata_decode-sll2-01.pcap"] {
        let mut source = PcapFile::open(fixture(name)).expect("opens");
        let mut packets = Vec::new();
        let mut link = LinkType::ETHERNET;
        while let Some(p) = source.next_packet().expect("reads") {
            link = p.link_type;
            packets.push((p.ts, p.data.to_vec(), p.orig_len));
        }
        assert!(!packets.is_empty());
        let ng = pcapng_from(&packets, link);
        assert_eq!(&ng[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        let mut from_ng = PcapFile::from_reader(Cursor::new(ng)).expect("pcapng opens");
        let mut count = 0;
        let mut source = PcapFile::open(fixture(name)).expect("opens");
        while let Some(p) = source.next_packet().expect("reads") {
            let (ts, data, orig_len, pl) = (p.ts, p.data.to_vec(), p.orig_len, p.link_type);
            let expected = decode_packet(&p).map(|o| format!("{o:?}"));
            let q = from_ng
                .next_packet()
                .expect("pcapng reads")
                .expect("same count");
            assert_eq!(
                (q.ts, q.data, q.orig_len, q.link_type),
                (ts, &data[..], orig_len, pl)
            );
            assert_eq!(decode_packet(&q).map(|o| format!("{o:?}")), expected);
            count += 1;
        }
        assert_eq!(from_ng.next_packet().expect("pcapng ends"), None);
        assert_eq!(count, packets.len(), "{name}");
    }
}

#[test]
fn big_endian_and_nanosecond_pcaps_read_the_same_packets() {
    let le = bytes("suricata_df-distinct-dstport.pcap");
    let mut source = PcapFile::from_reader(Cursor::new(le.clone())).expect("opens");
    let mut expected = Vec::new();
    while let Some(p) = source.next_packet().expect("reads") {
        expected.push((p.ts, p.data.to_vec(), p.orig_len, p.link_type));
    }
    assert_eq!(expected.len(), 2);
    // Rewrite as big-endian with nanosecond magic, scaling microseconds to nanoseconds.
    let swap = |b: &[u8]| -> Vec<u8> { b.iter().rev().copied().collect() };
    let mut be = vec![0xa1, 0xb2, 0x3c, 0x4d];
    be.extend(swap(&le[4..6]));
    be.extend(swap(&le[6..8]));
    for field in le[8..24].chunks(4) {
        be.extend(swap(field));
    }
    for at in pcap_record_offsets(&le) {
        let header = &le[at..at + 16];
        let usec = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        be.extend(swap(&header[0..4]));
        be.extend((usec * 1000).to_be_bytes());
        be.extend(swap(&header[8..12]));
        be.extend(swap(&header[12..16]));
        let caplen = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        be.extend_from_slice(&le[at + 16..at + 16 + usize::try_from(caplen).expect("fits")]);
    }
    let mut source = PcapFile::from_reader(Cursor::new(be)).expect("big-endian opens");
    let mut got = Vec::new();
    while let Some(p) = source.next_packet().expect("reads") {
        got.push((p.ts, p.data.to_vec(), p.orig_len, p.link_type));
    }
    assert_eq!(got, expected);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_pcap_reader(
        pcapng in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut data = if pcapng {
            bytes("zeek_pcapng-multi-interface.pcapng")[..28].to_vec()
        } else {
            bytes("suricata_df-distinct-dstport.pcap")[..24].to_vec()
        };
        data.extend_from_slice(&body);
        if let Ok(mut source) = PcapFile::from_reader(Cursor::new(data)) {
            for _ in 0..1000 {
                match source.next_packet() {
                    Ok(Some(p)) => { let _ = decode_packet(&p); }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn mutated_fixtures_never_panic_the_pcap_reader(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        pcapng in any::<bool>(),
    ) {
        let mut data = if pcapng {
            bytes("zeek_pcapng-multi-interface.pcapng")
        } else {
            bytes("suricata_decode-sll2-01.pcap")
        };
        for (at, byte) in &flips {
            let i = at.index(data.len());
            data[i] = *byte;
        }
        if let Ok(mut source) = PcapFile::from_reader(Cursor::new(data)) {
            for _ in 0..1000 {
                match source.next_packet() {
                    Ok(Some(p)) => { let _ = decode_packet(&p); }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

fn one_packet() -> (Timestamp, Vec<u8>, u32) {
    let mut source = PcapFile::open(fixture("suricata_df-distinct-dstport.pcap")).expect("opens");
    let p = source.next_packet().expect("reads").expect("a packet");
    (p.ts, p.data.to_vec(), p.orig_len)
}

#[test]
fn pcapng_packets_naming_an_undeclared_interface_are_skipped_and_counted() {
    let packet = one_packet();
    let mut data = pcapng_with(std::slice::from_ref(&packet), LinkType::ETHERNET, 3);
    // A good packet after the bad one is still read.
    let good = pcapng_with(std::slice::from_ref(&packet), LinkType::ETHERNET, 0);
    let header_len = pcapng_header(LinkType::ETHERNET).len();
    data.extend_from_slice(&good[header_len..]);
    let mut source = PcapFile::from_reader(Cursor::new(data)).expect("opens");
    let p = source
        .next_packet()
        .expect("reads")
        .expect("the good packet");
    assert_eq!((p.interface, p.data), (0, &packet.1[..]));
    assert_eq!(source.next_packet().expect("ends"), None);
    assert_eq!(
        (source.skipped_records(), source.stats().internal_drops),
        (1, 1)
    );
    assert_eq!(source.stats().packets, 1);
}

#[test]
fn simple_packet_blocks_belong_to_the_first_interface() {
    let (_, data, orig_len) = one_packet();
    let mut file = pcapng_header(LinkType::ETHERNET);
    let mut spb = orig_len.to_le_bytes().to_vec();
    spb.extend_from_slice(&data);
    pcapng_block(&mut file, 3, &spb);
    let mut source = PcapFile::from_reader(Cursor::new(file)).expect("opens");
    let p = source.next_packet().expect("reads").expect("a packet");
    assert_eq!(
        (p.link_type, p.data, p.interface),
        (LinkType::ETHERNET, &data[..], 0)
    );
    assert!(matches!(decode_packet(&p), Ok(Outcome::Decoded(_))));
    // Without an interface block a simple packet has no link type: skipped and counted.
    let mut lone = pcapng_header(LinkType::ETHERNET);
    lone.truncate(28);
    pcapng_block(&mut lone, 3, &spb);
    let mut source = PcapFile::from_reader(Cursor::new(lone)).expect("opens");
    assert_eq!(source.next_packet().expect("reads"), None);
    assert_eq!(source.skipped_records(), 1);
}

#[test]
fn a_pcapng_block_shorter_than_its_frame_is_corrupt_at_its_offset() {
    // A process information block (type 0x80000001) claiming 6 bytes: pcap-parser subtracts
    // the 12-byte frame from it unchecked, which the `pcap_file` fuzz target found overflowing.
    // Another type claiming 8, in a big-endian section too.
    for (kind, length, big_endian) in [
        (0x8000_0001_u32, 6_u32, false),
        (0x0000_0bad, 8, false),
        (0x8000_0001, 6, true),
    ] {
        let mut data = pcapng_from(&[one_packet()], LinkType::ETHERNET);
        if big_endian {
            data = to_big_endian_pcapng(&data);
        }
        let at = data.len();
        let word = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        data.extend_from_slice(&word(kind));
        data.extend_from_slice(&word(length));
        data.extend_from_slice(&[0; 16]);
        let mut source = PcapFile::from_reader(Cursor::new(data)).expect("header is intact");
        assert!(source.next_packet().expect("the packet").is_some());
        let err = source.next_packet().expect_err("the short block is damage");
        assert_eq!(
            err.offset(),
            Some(u64::try_from(at).expect("fits")),
            "{err}"
        );
        assert!(
            matches!(
                err,
                PcapFileError::Corrupt {
                    kind: CorruptKind::Unparsable,
                    ..
                }
            ),
            "{err}"
        );
    }
}

/// A little-endian pcapng from [`pcapng_from`] with every block's type and lengths, the section
/// header's byte-order magic and the fields of its interface and packet blocks byte-swapped.
fn to_big_endian_pcapng(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for (at, kind) in pcapng_block_offsets(data) {
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + usize::try_from(len).expect("fits");
        // Type, leading length and trailing length.
        for field in [at, at + 4, end - 4] {
            out[field..field + 4].reverse();
        }
        let body = at + 8;
        match kind {
            // Byte-order magic and version (two u16s); the section length (u64).
            0x0a0d_0d0a => {
                out[body..body + 4].reverse();
                out[body + 4..body + 6].reverse();
                out[body + 6..body + 8].reverse();
                out[body + 8..body + 16].reverse();
            }
            // Link type (u16), reserved, snap length (u32), options of (u16, u16, value).
            1 => {
                out[body..body + 2].reverse();
                out[body + 4..body + 8].reverse();
                let mut opt = body + 8;
                while opt + 4 <= end - 4 {
                    let code = u16::from_le_bytes([data[opt], data[opt + 1]]);
                    let olen = usize::from(u16::from_le_bytes([data[opt + 2], data[opt + 3]]));
                    out[opt..opt + 2].reverse();
                    out[opt + 2..opt + 4].reverse();
                    if code == 0 {
                        break;
                    }
                    opt += 4 + olen.div_ceil(4) * 4;
                }
            }
            // Interface id, timestamp high and low, captured and original lengths.
            6 => {
                for field in 0..5 {
                    let f = body + 4 * field;
                    out[f..f + 4].reverse();
                }
            }
            _ => {}
        }
    }
    out
}
