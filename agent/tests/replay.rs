//! Capture files through the whole sensor pipeline into records, through the library and
//! through `picket-agent replay` (see `fixtures/pcap/README.md` for the captures).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use picket_agent::capture::{LinkType, PacketSource, PcapFile, Timestamp};
use picket_agent::flow_table::{Cidr, LocalNets};
use picket_agent::pipeline::PipelineConfig;
use picket_agent::replay::{ReplayReport, replay};
use picket_proto::v1::{Direction, DnsSummary, FlowSummary, HostStats, Record, record};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap")
        .join(name)
}

fn config(local: &[&str]) -> PipelineConfig {
    PipelineConfig {
        local: LocalNets::new(local.iter().map(|n| n.parse::<Cidr>().expect("cidr"))),
        ..PipelineConfig::default()
    }
}

fn run(files: &[PathBuf], local: &[&str]) -> (Vec<Record>, ReplayReport) {
    let mut records = Vec::new();
    let report = replay(files, config(local), &mut |r| records.push(r));
    (records, report)
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

fn dns(records: &[Record]) -> Vec<&DnsSummary> {
    records
        .iter()
        .filter_map(|r| match &r.record {
            Some(record::Record::Dns(d)) => Some(d),
            _ => None,
        })
        .collect()
}

fn host_stats(records: &[Record]) -> Vec<&HostStats> {
    records
        .iter()
        .filter_map(|r| match &r.record {
            Some(record::Record::HostStats(h)) => Some(h),
            _ => None,
        })
        .collect()
}

#[test]
fn a_syn_scan_is_one_egress_summary_of_failed_attempts_to_many_ports() {
    let (records, report) = run(&[fixture("ndpi_synscan.pcap")], &["172.16.0.8"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.totals.packets, 2011);
    let to_target: Vec<_> = flows(&records)
        .into_iter()
        .filter(|f| f.remote_addr == "64.13.134.52")
        .collect();
    let failed: Vec<_> = to_target.iter().filter(|f| f.service_port == 0).collect();
    assert_eq!(failed.len(), 1, "{to_target:#?}");
    let scan = failed[0];
    assert_eq!(scan.direction, Direction::Egress as i32);
    assert_eq!(scan.local_addr, "172.16.0.8");
    assert_eq!(scan.protocol, 6);
    assert!(scan.distinct_ports >= 990, "{scan:?}");
    assert!(scan.unanswered_syns >= 1900, "{scan:?}");
    assert_eq!(scan.short_connections, scan.connections);
    // Only the lowest ports of a scan are named.
    assert_eq!(scan.failed_ports.len(), 16, "{scan:?}");
    assert!(scan.failed_ports.windows(2).all(|w| w[0] < w[1]));
    // The few open ports answered with SYN-ACK: each is a real service under its own port.
    let open: Vec<_> = to_target.iter().filter(|f| f.service_port != 0).collect();
    assert!(!open.is_empty() && open.len() < 10, "{open:#?}");
    assert!(
        open.iter()
            .all(|f| f.distinct_ports == 1 && f.unanswered_syns == 0)
    );
    let stats = host_stats(&records);
    assert_eq!(stats.iter().map(|h| h.packets).sum::<u64>(), 2011);
}

#[test]
fn failed_attempts_at_a_few_ports_name_every_port_tried() {
    // suricata's detection_filter capture: two unanswered SYNs 3.3.3.3 -> 1.1.1.1:80 and :81.
    let (records, _) = run(
        &[fixture("suricata_df-distinct-dstport.pcap")],
        &["3.3.3.3"],
    );
    let failed: Vec<_> = flows(&records)
        .into_iter()
        .filter(|f| f.service_port == 0)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].failed_ports, [80, 81]);
    assert_eq!(failed[0].distinct_ports, 2);
}

#[test]
fn an_ssh_session_is_one_summary_labelled_ssh_and_not_short() {
    let (records, _) = run(
        &[fixture("zeek_ssh_single-conn.pcap")],
        &["192.150.186.169"],
    );
    let summaries = flows(&records);
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    let s = summaries[0];
    assert_eq!(
        (s.direction, s.service_port, s.app_protocol.as_str()),
        (Direction::Egress as i32, 22, "ssh")
    );
    assert_eq!(
        (s.connections, s.short_connections, s.unanswered_syns),
        (1, 0, 0)
    );
    assert_eq!(s.packets_out + s.packets_in, 94);
}

#[test]
fn an_iodine_tunnel_gives_dns_summaries_with_long_random_labels() {
    let (records, _) = run(&[fixture("ndpi_dns-tunnel-iodine.pcap")], &[]);
    let tunnel: Vec<_> = dns(&records)
        .into_iter()
        .filter(|d| d.registered_domain == "pirate.sea")
        .collect();
    assert!(!tunnel.is_empty());
    assert!(tunnel.iter().all(|d| d.client_addr == "10.0.2.30"));
    let queries: u64 = tunnel.iter().map(|d| d.queries).sum();
    assert_eq!(queries, 222);
    let first = tunnel[0];
    assert_eq!(first.queries_by_type[0].qtype, "NULL");
    assert!(first.max_label_len > 100, "{first:?}");
    assert!(first.mean_label_entropy > 2.5, "{first:?}");
    assert_eq!(first.distinct_names, first.queries);
    assert_eq!(first.resolvers, vec!["10.0.2.20".to_owned()]);
    assert!(!first.example_names.is_empty() && first.example_names.len() <= 4);
}

#[test]
fn ordinary_lookups_give_short_low_entropy_dns_summaries() {
    let (records, _) = run(&[fixture("ndpi_dns.pcap")], &[]);
    let summaries = dns(&records);
    let example = summaries
        .iter()
        .find(|d| d.registered_domain == "example.com")
        .expect("example.com summary");
    assert_eq!(example.example_names, vec!["www.example.com".to_owned()]);
    assert_eq!(example.queries_by_type[0].qtype, "AAAA");
    assert_eq!((example.queries, example.responses), (1, 1));
    assert_eq!(example.max_label_len, 3);
    assert_eq!(example.mean_label_entropy, 0.0);
    let whatsapp = summaries
        .iter()
        .find(|d| d.registered_domain == "whatsapp.net")
        .expect("whatsapp.net summary");
    assert!(whatsapp.answers.iter().any(|a| a.rtype == "A"));
}

#[test]
fn intervals_follow_packet_time_so_a_long_capture_gives_several() {
    // The iodine session spans two minute-intervals (it starts shortly before a boundary).
    let (records, _) = run(&[fixture("ndpi_dns-tunnel-iodine.pcap")], &[]);
    let stats = host_stats(&records);
    assert_eq!(stats.len(), 2, "{stats:#?}");
    assert!(stats[0].interval_end_ms <= stats[1].interval_start_ms);
    assert_eq!(stats.iter().map(|h| h.packets).sum::<u64>(), 438);
}

/// The capture's packets as a little-endian pcapng with one nanosecond interface.
fn as_pcapng(path: &Path) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let len = u32::try_from(12 + padded).expect("small block");
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + padded - body.len(), 0);
        out.extend_from_slice(&len.to_le_bytes());
    }
    let mut source = PcapFile::open(path).expect("opens");
    let mut packets: Vec<(Timestamp, Vec<u8>, u32)> = Vec::new();
    let mut link = LinkType::ETHERNET;
    while let Some(p) = source.next_packet().expect("reads") {
        link = p.link_type;
        packets.push((p.ts, p.data.to_vec(), p.orig_len));
    }
    let mut out = Vec::new();
    let mut shb = 0x1a2b_3c4d_u32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = u16::try_from(link.0).expect("small").to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0, 0, 0, 4, 0]);
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    block(&mut out, 1, &idb);
    for (ts, data, orig_len) in packets {
        let mut epb = 0_u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&u32::try_from(ts.0 >> 32).expect("high").to_le_bytes());
        epb.extend_from_slice(
            &u32::try_from(ts.0 & 0xffff_ffff)
                .expect("low")
                .to_le_bytes(),
        );
        epb.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
        epb.extend_from_slice(&orig_len.to_le_bytes());
        epb.extend_from_slice(&data);
        block(&mut out, 6, &epb);
    }
    out
}

fn json_lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| serde_json::to_string(r).expect("serialises"))
        .collect()
}

#[test]
fn pcap_and_pcapng_of_the_same_traffic_give_identical_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "zeek_ssh_single-conn.pcap",
        "ndpi_dns-tunnel-iodine.pcap",
        "ndpi_synscan.pcap",
    ] {
        let ng_path = dir.path().join(format!("{name}.pcapng"));
        std::fs::write(&ng_path, as_pcapng(&fixture(name))).expect("writes");
        let (from_pcap, _) = run(&[fixture(name)], &[]);
        let (from_ng, report) = run(&[ng_path], &[]);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(from_pcap.len() > 1, "{name}");
        assert_eq!(json_lines(&from_pcap), json_lines(&from_ng), "{name}");
    }
}

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_picket-agent"))
}

#[test]
fn replay_cli_writes_the_pipeline_records_then_a_stats_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("records.jsonl");
    let status = agent()
        .args(["replay", "--pcap"])
        .arg(fixture("ndpi_synscan.pcap"))
        .args(["--local-ip", "172.16.0.8", "--out"])
        .arg(&out)
        .status()
        .expect("runs");
    assert!(status.success());
    let text = std::fs::read_to_string(&out).expect("output");
    let lines: Vec<&str> = text.lines().collect();
    let (last, records) = lines.split_last().expect("lines");
    let stats: serde_json::Value = serde_json::from_str(last).expect("stats json");
    assert_eq!(stats["stats"]["packets"], 2011);
    assert_eq!(stats["stats"]["flows"], 1994);
    assert_eq!(stats["stats"]["evictions"], 0);
    let parsed: Vec<Record> = records
        .iter()
        .map(|l| serde_json::from_str(l).expect("record json"))
        .collect();
    let (expected, _) = run(&[fixture("ndpi_synscan.pcap")], &["172.16.0.8"]);
    assert_eq!(parsed, expected);
    assert_eq!(stats["stats"]["records"], expected.len());
}

#[test]
fn replay_cli_reports_damage_with_its_offset_and_keeps_earlier_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cut = dir.path().join("cut.pcap");
    let whole = std::fs::read(fixture("zeek_ssh_single-conn.pcap")).expect("fixture");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("writes");
    let (stderr, stdout) = replay_damaged(&cut);
    assert!(stderr.contains("byte offset"), "{stderr}");
    assert!(stderr.contains("cut.pcap: "), "the file is named: {stderr}");
    assert!(stdout.contains("\"Flow\""), "{stdout}");
}

/// Replays `path`, a copy of the 94-packet SSH capture cut in its middle: the command
/// succeeds, counts some packets but not all, and names one damaged file. Returns what it
/// wrote on standard error and standard output.
fn replay_damaged(path: &Path) -> (String, String) {
    let output = agent()
        .args(["replay", "--pcap"])
        .arg(path)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stats: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("stats line")).expect("json");
    let packets = stats["stats"]["packets"].as_u64().expect("count");
    assert!(packets > 0 && packets < 94, "{packets}");
    assert_eq!(stats["stats"]["files_damaged"], 1);
    (stderr, stdout)
}

#[test]
fn replay_cli_fails_when_a_file_gives_no_packets_but_still_writes_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.txt");
    std::fs::File::create(&text)
        .and_then(|mut f| f.write_all(b"not a capture at all\n"))
        .expect("writes");
    let output = agent()
        .args(["replay", "--pcap"])
        .arg(fixture("zeek_ssh_single-conn.pcap"))
        .arg(&text)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("notes.txt"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("\"app_protocol\":\"ssh\""), "{stdout}");

    // A file that is not there is named once, with why.
    let absent = dir.path().join("absent.pcap");
    let output = agent()
        .args(["replay", "--pcap"])
        .arg(&absent)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // One file, one line: no tally repeating what the line said, no "0 packets before it".
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("absent.pcap").count(), 1, "{stderr}");
    assert!(stderr.contains("os error 2"), "{stderr}");
    assert!(!stderr.contains("packets before"), "{stderr}");
}

#[test]
fn replay_cli_reads_a_gzipped_capture_as_the_plain_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = std::fs::read(fixture("zeek_ssh_single-conn.pcap")).expect("fixture");
    let gz = dir.path().join("ssh.pcap.gz");
    std::fs::write(&gz, gzip(&whole)).expect("writes");
    let plain = agent()
        .args(["replay", "--pcap"])
        .arg(fixture("zeek_ssh_single-conn.pcap"))
        .output()
        .expect("runs");
    let packed = agent()
        .args(["replay", "--pcap"])
        .arg(&gz)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&packed.stderr);
    assert!(packed.status.success(), "{stderr}");
    assert!(plain.stdout.len() > 1000);
    assert_eq!(packed.stdout, plain.stdout);

    // Cut short, the packets before the cut still count and the damage names the file.
    let cut = dir.path().join("cut.pcap.gz");
    let packed = gzip(&whole);
    std::fs::write(&cut, &packed[..packed.len() / 2]).expect("writes");
    let (stderr, _) = replay_damaged(&cut);
    assert!(stderr.starts_with("picket-agent: "), "{stderr}");
    assert!(stderr.contains("cut.pcap.gz: gzip-compressed"), "{stderr}");
    assert!(stderr.contains("packets before it were used"), "{stderr}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("compresses");
    encoder.finish().expect("compresses")
}

/// `picket-agent replay --pcap -` started with every stream piped; its standard input apart.
fn spawn_replay_stdin() -> (std::process::Child, std::process::ChildStdin) {
    use std::process::Stdio;
    let mut child = agent()
        .args(["replay", "--pcap", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stdin = child.stdin.take().expect("stdin");
    (child, stdin)
}

/// `picket-agent replay --pcap -` fed `input` from another thread (as a pipe from tcpdump
/// would be) while its output is read.
fn replay_stdin(input: Vec<u8>) -> std::process::Output {
    let (child, mut stdin) = spawn_replay_stdin();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("runs");
    feeder.join().expect("joins").expect("fed");
    output
}

#[test]
fn replay_cli_reads_a_capture_from_standard_input() {
    use std::process::Stdio;
    let whole = std::fs::read(fixture("zeek_ssh_single-conn.pcap")).expect("fixture");
    let from_file = agent()
        .args(["replay", "--pcap"])
        .arg(fixture("zeek_ssh_single-conn.pcap"))
        .output()
        .expect("runs");
    let output = replay_stdin(gzip(&whole));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(from_file.stdout.len() > 1000);
    assert_eq!(output.stdout, from_file.stdout);

    // Damage on standard input is named as such.
    let output = replay_stdin(b"not a capture".to_vec());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("picket-agent: standard input: not a pcap or pcapng file"),
        "{stderr}"
    );

    // A pipe cannot be staged for a resumable upload, nor read twice.
    for args in [
        &["--pcap", "-", "--aggregator", "https://127.0.0.1:9"][..],
        &["--pcap", "-", "-"][..],
    ] {
        let output = agent()
            .arg("replay")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("--pcap -"), "{stderr}");
    }
}

/// A little-endian microsecond pcap header for Ethernet.
fn pcap_header() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    h.extend_from_slice(&2_u16.to_le_bytes());
    h.extend_from_slice(&4_u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65_535_u32.to_le_bytes());
    h.extend_from_slice(&1_u32.to_le_bytes());
    h
}

/// `n` pcap records of one UDP datagram each, 10.0.0.1 to 10.0.0.2, from second `start`.
fn udp_records(start: u32, n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        // IPv4, 32 bytes in all, UDP; checksum left 0 (not checked).
        frame.extend_from_slice(&[
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        frame.extend_from_slice(&[0x9c, 0x40, 0x23, 0x28, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
        let len = u32::try_from(frame.len()).expect("fits");
        out.extend_from_slice(&(start + i / 1000).to_le_bytes());
        out.extend_from_slice(&((i % 1000) * 1000).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn replay_cli_stops_on_ctrl_c_and_writes_what_it_read() {
    let (mut child, mut stdin) = spawn_replay_stdin();
    let mut first = pcap_header();
    first.extend(udp_records(1_700_000_000, 5000));
    stdin.write_all(&first).expect("fed");
    stdin.flush().expect("fed");
    std::thread::sleep(Duration::from_millis(500));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("signalled");
    // More packets, and the pipe left open: the replay must stop by itself, not at the end
    // of its input. (It may already have stopped, so the write may fail.)
    let _ = stdin.write_all(&udp_records(1_700_000_005, 5000));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "replay did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stats: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("stats line")).expect("json");
    assert_eq!(stats["stats"]["interrupted"], true, "{stdout}");
    let packets = stats["stats"]["packets"].as_u64().expect("count");
    assert!((5000..10_000).contains(&packets), "{packets}");
    // What was read is summarised: the one UDP conversation.
    assert!(stdout.contains("\"Flow\""), "{stdout}");
}
