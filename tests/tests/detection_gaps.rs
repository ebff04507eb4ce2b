//! Detection held to captures with the real binaries (`picket-agent replay`, then
//! `picket-aggregator analyze`): benign captures give nothing above Low (Android's DNS over
//! TLS to dns.google included), short DNS tunnels are caught, and a SYN scan of the instance
//! from an unlisted address is named.
//!
//! Real captures come from agent/tests/fixtures/pcap (sources and licences in its README). The
//! dnscat2 and iodine sessions are written here instead of copied: the public captures of them
//! (dmachard/datasets-malicious-dns) state no licence. They follow those captures' shape: a
//! client asking its resolver a dozen tunnel-type queries for encoded labels under one domain.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use picket_tests::bin;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/tests/fixtures/pcap")
        .join(name)
}

/// Replays `pcap` (with `local_ips` as the capturing host's addresses, if any) and returns the
/// findings `analyze` prints.
fn findings(pcap: &Path, local_ips: &[&str]) -> Result<Vec<Value>> {
    let dir = tempfile::tempdir()?;
    let records = dir.path().join("records.jsonl");
    let mut replay = std::process::Command::new(bin("picket-agent"));
    replay.args(["replay", "--pcap"]).arg(pcap);
    for ip in local_ips {
        replay.args(["--local-ip", ip]);
    }
    let out = replay.arg("--out").arg(&records).output()?;
    ensure!(
        out.status.success(),
        "replay of {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(bin("picket-aggregator"))
        .args(["analyze", "--agent-records"])
        .arg(&records)
        .output()?;
    ensure!(
        out.status.success(),
        "analyze of {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

fn severity(f: &Value) -> f64 {
    f["severity"].as_f64().unwrap_or(f64::NAN)
}

fn of_type<'a>(findings: &'a [Value], t: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["type"] == t).collect()
}

#[test]
fn benign_captures_give_nothing_above_low() -> Result<()> {
    for name in [
        "ndpi_googledns_android10.pcap",
        "ndpi_android.pcap",
        "ndpi_ssh.pcap",
        "ndpi_dns.pcap",
        "ndpi_dns_long_domainname.pcap",
        "zeek_wikipedia.pcap",
        "zeek_ssh_single-conn.pcap",
        "chrissanders_http_google.pcapng",
    ] {
        let found = findings(&fixture(name), &[])?;
        for f in &found {
            assert!(
                severity(f) < 4.0,
                "{name}: {} at {}",
                f["type"],
                f["severity"]
            );
        }
    }
    Ok(())
}

#[test]
fn private_dns_over_tls_to_dns_google_is_reported_low_not_medium() -> Result<()> {
    let found = findings(&fixture("ndpi_googledns_android10.pcap"), &[])?;
    let dot = of_type(&found, "DefenseEvasion:EC2/UnusualDoTActivity");
    assert!(!dot.is_empty(), "{found:#?}");
    for f in dot {
        assert!(severity(f) < 4.0, "{f:#}");
        let remote =
            &f["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]["ipAddressV4"];
        assert!(
            remote == "8.8.8.8" || remote == "8.8.4.4",
            "DoT to {remote}"
        );
    }
    Ok(())
}

// ---- crafted captures ----

/// A classic pcap (little-endian, microseconds, Ethernet) of `packets` (seconds, frame).
fn pcap(packets: &[(f64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    // Magic, version 2.4 (two LE u16s), zone, accuracy, snap length, Ethernet.
    for v in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 65_535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (t, frame) in packets {
        let secs = t.trunc() as u32;
        let micros = ((t - t.trunc()) * 1e6).round() as u32;
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        for v in [secs, micros, len, len] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(frame);
    }
    out
}

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        for pair in part.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u32::from);
            sum = sum.wrapping_add(hi | lo);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying `payload` of IP protocol `proto` from `src` to `dst`, with the
/// transport checksum at `csum_at` (bytes into `payload`) filled in.
fn ip_frame(src: IpAddr, dst: IpAddr, proto: u8, mut payload: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let len = payload.len();
    let pseudo: Vec<u8> = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => [
            &s.octets()[..],
            &d.octets(),
            &[0, proto],
            &(len as u16).to_be_bytes(),
        ]
        .concat(),
        (IpAddr::V6(s), IpAddr::V6(d)) => [
            &s.octets()[..],
            &d.octets(),
            &(len as u32).to_be_bytes(),
            &[0, 0, 0, proto],
        ]
        .concat(),
        _ => panic!("mixed address families"),
    };
    let c = checksum(&[&pseudo, &payload]);
    payload[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + len) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = checksum(&[&ip]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            frame.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
            frame.extend_from_slice(&[proto, 64]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed address families"),
    }
    frame.extend_from_slice(&payload);
    frame
}

fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(body);
    ip_frame(src, dst, 17, p, 6)
}

fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8, seq: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(if flags & 0x10 != 0 { 1u32 } else { 0 }).to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 0x04, 0x00, 0, 0, 0, 0]);
    ip_frame(src, dst, 6, p, 16)
}

/// A DNS message: a query (or its empty NOERROR response) for the raw labels of `name`.
fn dns(id: u16, response: bool, name: &[&[u8]], qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name {
        m.push(label.len() as u8);
        m.extend_from_slice(label);
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// Query/response pairs between `client` and `resolver`, one every `gap` seconds.
fn dns_session(
    client: IpAddr,
    resolver: IpAddr,
    queries: &[(Vec<Vec<u8>>, u16)],
    gap: f64,
) -> Vec<u8> {
    let t0 = 1_688_392_299.0;
    let mut packets = Vec::new();
    for (i, (labels, qtype)) in queries.iter().enumerate() {
        let name: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let id = 0x4000 + i as u16;
        let sport = 40_000 + i as u16;
        let t = t0 + gap * i as f64;
        packets.push((
            t,
            udp(client, sport, resolver, 53, &dns(id, false, &name, *qtype)),
        ));
        packets.push((
            t + 0.003,
            udp(resolver, 53, client, sport, &dns(id, true, &name, *qtype)),
        ));
    }
    pcap(&packets)
}

/// SplitMix64, so crafted labels are random-looking but the same on every run.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random_label(state: &mut u64, alphabet: &[u8], len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| alphabet[(next(state) % alphabet.len() as u64) as usize])
        .collect()
}

/// dnscat2's shape: `n` queries, MX/TXT/CNAME, each a 34-character hex label (session id,
/// sequence numbers and data) directly under the domain.
fn dnscat2(n: usize) -> Vec<(Vec<Vec<u8>>, u16)> {
    let mut state = 2;
    (0..n)
        .map(|i| {
            let qtype = match i % 12 {
                10 => 5,
                i if i % 2 == 0 => 15,
                _ => 16,
            };
            let label = random_label(&mut state, b"0123456789abcdef", 34);
            (vec![label, b"biillpi".to_vec(), b"com".to_vec()], qtype)
        })
        .collect()
}

/// iodine's handshake shape: NULL queries under `t1.<domain>`: short base32 probes, a login
/// chunk, then the raw-label probes (upper case, then bytes above 0x7f).
fn iodine() -> Vec<(Vec<Vec<u8>>, u16)> {
    let mut state = 3;
    let b32 = b"abcdefghijklmnopqrstuvwxyz012345";
    let mut labels: Vec<Vec<u8>> = vec![
        random_label(&mut state, b32, 6),
        random_label(&mut state, b32, 11),
        random_label(&mut state, b32, 32),
        random_label(&mut state, b32, 6),
    ];
    let mut upper = b"z0pkaA".to_vec();
    upper.extend(b"aBcDeFgHiJkLmNoPqRsTuVwXyZ".iter());
    labels.push(upper);
    for start in [0xbcu8, 0xd0] {
        let mut raw = b"z0plaA0123456789".to_vec();
        raw.extend(start..start.saturating_add(44));
        labels.push(raw);
    }
    for _ in 0..5 {
        labels.push(random_label(&mut state, b32, 6));
    }
    labels
        .into_iter()
        .map(|l| {
            (
                vec![l, b"t1".to_vec(), b"biillpi".to_vec(), b"com".to_vec()],
                10,
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[test]
fn short_dnscat2_and_iodine_sessions_are_dns_exfiltration_at_medium_over_ipv4_and_ipv6()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let pairs: [(IpAddr, IpAddr); 2] = [
        ("192.168.1.17".parse()?, "192.168.1.210".parse()?),
        ("2001:db8:1::17".parse()?, "2001:db8:1::210".parse()?),
    ];
    for (client, resolver) in pairs {
        for (tool, queries) in [("dnscat2", dnscat2(12)), ("iodine", iodine())] {
            let pcap = write(
                dir.path(),
                &format!("{tool}.pcap"),
                &dns_session(client, resolver, &queries, 1.0),
            )?;
            let found = findings(&pcap, &[])?;
            let exfil = of_type(&found, "Trojan:EC2/DNSDataExfiltration");
            assert_eq!(exfil.len(), 1, "{tool} from {client}: {found:#?}");
            let f = exfil[0];
            assert!(
                (4.0..7.0).contains(&severity(f)),
                "{tool}: a dozen queries is small evidence: {}",
                f["severity"]
            );
            assert_eq!(
                f["service"]["action"]["dnsRequestAction"]["domain"], "biillpi.com",
                "{f:#}"
            );
            for other in &found {
                assert!(
                    other["type"] == "Trojan:EC2/DNSDataExfiltration" || severity(other) < 4.0,
                    "{tool}: {other:#}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_handful_of_tunnel_queries_is_not_enough() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pcap = write(
        dir.path(),
        "dnscat2-short.pcap",
        &dns_session(
            "192.168.1.17".parse()?,
            "192.168.1.210".parse()?,
            &dnscat2(6),
            1.0,
        ),
    )?;
    let found = findings(&pcap, &[])?;
    assert!(
        of_type(&found, "Trojan:EC2/DNSDataExfiltration").is_empty(),
        "{found:#?}"
    );
    Ok(())
}

/// A SYN scan of `target`'s ports `ports` from `scanner`: closed ports answer with a reset,
/// the open ones (22, 80) with SYN-ACK, which the scanner resets.
fn syn_scan(scanner: IpAddr, target: IpAddr, ports: std::ops::Range<u16>) -> Vec<u8> {
    let t0 = 1_700_000_000.0;
    let mut packets = Vec::new();
    for (i, port) in ports.enumerate() {
        let t = t0 + 0.01 * i as f64;
        packets.push((t, tcp(scanner, 50_000, target, port, 0x02, 7)));
        if matches!(port, 22 | 80) {
            packets.push((t + 0.001, tcp(target, port, scanner, 50_000, 0x12, 9)));
            packets.push((t + 0.002, tcp(scanner, 50_000, target, port, 0x04, 8)));
        } else {
            packets.push((t + 0.001, tcp(target, port, scanner, 50_000, 0x14, 0)));
        }
    }
    pcap(&packets)
}

#[test]
fn a_syn_scan_of_the_instance_from_an_unlisted_address_is_a_low_inbound_portscan() -> Result<()> {
    // nmap's scan of scanme.nmap.org, replayed as scanme: 1,000 ports from 172.16.0.8.
    let found = findings(&fixture("ndpi_synscan.pcap"), &["64.13.134.52"])?;
    let scans = of_type(&found, "Recon:EC2/InboundPortscan");
    assert_eq!(scans.len(), 1, "{found:#?}");
    assert!(severity(scans[0]) < 4.0);
    assert_eq!(
        scans[0]["service"]["action"]["portProbeAction"]["portProbeDetails"][0]["remoteIpDetails"]
            ["ipAddressV4"],
        "172.16.0.8",
        "{:#}",
        scans[0]
    );
    assert_eq!(
        scans[0]["resource"]["instanceDetails"]["networkInterfaces"][0]["privateIpAddress"],
        "64.13.134.52"
    );

    // IPv6: 80 ports of 2001:db8:1::52 from 2001:db8:bad::8.
    let dir = tempfile::tempdir()?;
    let pcap = write(
        dir.path(),
        "scan6.pcap",
        &syn_scan("2001:db8:bad::8".parse()?, "2001:db8:1::52".parse()?, 1..81),
    )?;
    let found = findings(&pcap, &["2001:db8:1::52"])?;
    let scans = of_type(&found, "Recon:EC2/InboundPortscan");
    assert_eq!(scans.len(), 1, "{found:#?}");
    assert_eq!(
        scans[0]["service"]["action"]["portProbeAction"]["portProbeDetails"][0]["remoteIpDetails"]
            ["ipAddressV6"],
        "2001:db8:bad::8",
        "{:#}",
        scans[0]
    );
    Ok(())
}

#[test]
fn two_syns_or_a_few_ports_are_not_an_inbound_portscan() -> Result<()> {
    // suricata's detection_filter capture: 3.3.3.3 -> 1.1.1.1 ports 80 and 81.
    let found = findings(&fixture("suricata_df-distinct-dstport.pcap"), &["1.1.1.1"])?;
    assert!(
        of_type(&found, "Recon:EC2/InboundPortscan").is_empty(),
        "{found:#?}"
    );
    let dir = tempfile::tempdir()?;
    let pcap = write(
        dir.path(),
        "probe4.pcap",
        &syn_scan("198.51.100.8".parse()?, "10.0.0.52".parse()?, 1..40),
    )?;
    let found = findings(&pcap, &["10.0.0.52"])?;
    assert!(
        of_type(&found, "Recon:EC2/InboundPortscan").is_empty(),
        "{found:#?}"
    );
    Ok(())
}
