//! A deterministic generator of realistic mixed traffic as a pcap, for the replay benchmark.
//!
//! Same seed, same bytes. The mix: TCP flows with handshakes, data and FIN teardowns (some
//! refused with RST), short UDP exchanges, DNS (query and answer; one in five names long and
//! random-looking, as tunnels and DGAs make them) making about 10% of the packets, ICMP echo,
//! and about 10% of flows over IPv6. Many flows are open at once and their packets interleave;
//! one local host talks mostly to a few hundred popular servers and sometimes to a long tail.
//! Captures keep 128 bytes per packet (a sensor's snap length), with the real length in
//! `orig_len`, except DNS, which is kept whole as the agent's live snap filter keeps it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bytes kept per packet, as a capture with `-s 128` would.
const SNAP: usize = 128;

/// xorshift64*: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A pcap being written in memory.
pub struct PcapWriter {
    pub bytes: Vec<u8>,
    pub packets: u64,
}

impl PcapWriter {
    pub fn new() -> Self {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
        bytes.extend_from_slice(&2_u16.to_le_bytes());
        bytes.extend_from_slice(&4_u16.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&u32::try_from(SNAP).expect("small").to_le_bytes());
        bytes.extend_from_slice(&1_u32.to_le_bytes()); // Ethernet
        Self { bytes, packets: 0 }
    }

    /// Appends one frame captured at `ts_us`, snapped to [`SNAP`] bytes.
    pub fn frame(&mut self, ts_us: u64, frame: &[u8]) {
        self.frame_kept(ts_us, frame, SNAP);
    }

    /// Appends one frame captured at `ts_us`, at most `snap` bytes of it.
    fn frame_kept(&mut self, ts_us: u64, frame: &[u8], snap: usize) {
        let kept = frame.len().min(snap);
        let secs = u32::try_from(ts_us / 1_000_000).expect("fits");
        let micros = u32::try_from(ts_us % 1_000_000).expect("fits");
        self.bytes.extend_from_slice(&secs.to_le_bytes());
        self.bytes.extend_from_slice(&micros.to_le_bytes());
        self.bytes
            .extend_from_slice(&u32::try_from(kept).expect("small").to_le_bytes());
        self.bytes
            .extend_from_slice(&u32::try_from(frame.len()).expect("small").to_le_bytes());
        self.bytes.extend_from_slice(&frame[..kept]);
        self.packets += 1;
    }
}

fn ipv4_sum(header: &[u8]) -> u16 {
    let mut sum = 0_u32;
    for pair in header.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying `transport` (header and payload) from `src` to `dst`.
pub fn ip_frame(src: IpAddr, dst: IpAddr, protocol: u8, transport: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total = u16::try_from(20 + transport.len()).expect("small");
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let sum = ipv4_sum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&u16::try_from(transport.len()).expect("small").to_be_bytes());
            f.extend_from_slice(&[protocol, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => unreachable!("one family per flow"),
    }
    f.extend_from_slice(transport);
    f
}

pub fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload_len: usize) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload_len);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(20 + payload_len, 0x61);
    t
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(
        &u16::try_from(8 + payload.len())
            .expect("small")
            .to_be_bytes(),
    );
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn dns_message(id: u16, name: &str, answer: Option<Ipv4Addr>) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    let flags: [u8; 2] = if answer.is_some() {
        [0x81, 0x80]
    } else {
        [0x01, 0x00]
    };
    m.extend_from_slice(&flags);
    m.extend_from_slice(&[0, 1, 0, u8::from(answer.is_some()), 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).expect("short"));
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    if let Some(a) = answer {
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        m.extend_from_slice(&a.octets());
    }
    m
}

const TCP_FLAGS_SYN: u8 = 0x02;
const TCP_FLAGS_ACK: u8 = 0x10;
const TCP_FLAGS_FIN: u8 = 0x01;
const TCP_FLAGS_RST: u8 = 0x04;
const TCP_FLAGS_PSH: u8 = 0x08;

/// One open conversation: its packets still to come, in order.
struct Conversation {
    packets: Vec<(usize, Vec<u8>)>, // (bytes kept, frame)
    next: usize,
}

/// Percent of new conversations that are a DNS lookup. A lookup is 2 packets and the other
/// conversations about 18.5 on average, so half of them makes DNS about 10% of the packets
/// (the share the issue names), as a host that resolves a name for each connection it opens.
const DNS_PERCENT: u64 = 50;

/// The monitored host has one IPv4 and one IPv6 address (one agent, one host); remote ends
/// follow a popular-services pattern: most flows go to a few hundred busy servers (APIs,
/// CDNs, package mirrors), the rest to a long tail of one-off addresses.
fn host(rng: &mut Rng, v6: bool, local: bool) -> IpAddr {
    const POPULAR: u64 = 500;
    if local {
        return if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0xdb8, 0, 0, 0, 0, 0, 5))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))
        };
    }
    let x = if rng.below(100) < 85 {
        rng.below(POPULAR) as u32
    } else {
        rng.below(1 << 24) as u32
    };
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            (x >> 16) as u16,
            x as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(52, (x >> 16) as u8, (x >> 8) as u8, x as u8))
    }
}

fn random_label(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn new_conversation(rng: &mut Rng) -> Conversation {
    // 0..10 is DNS; the other kinds keep their shares of what is not DNS.
    let kind = if rng.below(100) < DNS_PERCENT {
        0
    } else {
        10 + rng.below(90)
    };
    let v6 = rng.below(10) == 0;
    let client = host(rng, v6, true);
    let server = host(rng, v6, false);
    let cport = 32768 + rng.below(28000) as u16;
    let mut packets = Vec::new();
    let mut push = |from_client: bool, protocol: u8, transport: Vec<u8>| {
        let (s, d) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        packets.push((SNAP, ip_frame(s, d, protocol, &transport)));
    };
    if kind < 10 {
        // DNS: one query and its answer; a fifth of names are long and random-looking.
        let resolver = if v6 {
            host(rng, true, true)
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
        };
        let name = if rng.below(5) == 0 {
            format!(
                "{}.{}.t.example.net",
                random_label(rng, 40),
                random_label(rng, 20)
            )
        } else {
            format!("www.site{}.com", rng.below(5000))
        };
        let id = rng.below(65536) as u16;
        let answer = Ipv4Addr::new(52, 1, (id >> 8) as u8, id as u8);
        let q = udp(cport, 53, &dns_message(id, &name, None));
        let r = udp(53, cport, &dns_message(id, &name, Some(answer)));
        packets.push((usize::MAX, ip_frame(client, resolver, 17, &q)));
        packets.push((usize::MAX, ip_frame(resolver, client, 17, &r)));
    } else if kind < 20 {
        // UDP request/response (NTP-like or a game/VoIP burst).
        let port = [123_u16, 443, 3478, 5000][rng.below(4) as usize];
        for _ in 0..(1 + rng.below(4)) {
            push(true, 17, udp(cport, port, &[0x17; 48]));
            push(false, 17, udp(port, cport, &[0x18; 48]));
        }
    } else if kind < 24 {
        // ICMP echo.
        let id = rng.below(65536) as u16;
        let (proto, req, rep) = if v6 { (58, 128, 129) } else { (1, 8, 0) };
        for seq in 0..3_u16 {
            let mut m = vec![req, 0, 0, 0];
            m.extend_from_slice(&id.to_be_bytes());
            m.extend_from_slice(&seq.to_be_bytes());
            m.resize(64, 0);
            push(true, proto, m.clone());
            m[0] = rep;
            push(false, proto, m);
        }
    } else if kind < 28 {
        // Refused connection.
        let port = 1 + rng.below(1024) as u16;
        push(true, 6, tcp(cport, port, 1, TCP_FLAGS_SYN, 0));
        push(
            false,
            6,
            tcp(port, cport, 0, TCP_FLAGS_RST | TCP_FLAGS_ACK, 0),
        );
    } else {
        // A TCP connection: handshake, data both ways, FIN teardown.
        let port = [443_u16, 443, 443, 80, 22, 5432][rng.below(6) as usize];
        let mut cseq = 1_000_u32;
        let mut sseq = 9_000_u32;
        push(true, 6, tcp(cport, port, cseq, TCP_FLAGS_SYN, 0));
        push(
            false,
            6,
            tcp(port, cport, sseq, TCP_FLAGS_SYN | TCP_FLAGS_ACK, 0),
        );
        push(true, 6, tcp(cport, port, cseq, TCP_FLAGS_ACK, 0));
        for _ in 0..(2 + rng.below(12)) {
            let up = 100 + rng.below(400) as usize;
            push(
                true,
                6,
                tcp(cport, port, cseq, TCP_FLAGS_ACK | TCP_FLAGS_PSH, up),
            );
            cseq = cseq.wrapping_add(up as u32);
            let down = 200 + rng.below(1200) as usize;
            push(
                false,
                6,
                tcp(port, cport, sseq, TCP_FLAGS_ACK | TCP_FLAGS_PSH, down),
            );
            sseq = sseq.wrapping_add(down as u32);
        }
        push(
            true,
            6,
            tcp(cport, port, cseq, TCP_FLAGS_FIN | TCP_FLAGS_ACK, 0),
        );
        push(
            false,
            6,
            tcp(port, cport, sseq, TCP_FLAGS_FIN | TCP_FLAGS_ACK, 0),
        );
        push(true, 6, tcp(cport, port, cseq, TCP_FLAGS_ACK, 0));
    }
    Conversation { packets, next: 0 }
}

/// About `packets` packets of the mix, `concurrent` conversations interleaved, one packet
/// every `step_us` microseconds from `start_us`.
pub fn mixed(
    seed: u64,
    packets: u64,
    concurrent: usize,
    start_us: u64,
    step_us: u64,
) -> PcapWriter {
    let mut rng = Rng::new(seed);
    let mut out = PcapWriter::new();
    let mut open: Vec<Conversation> = (0..concurrent)
        .map(|_| new_conversation(&mut rng))
        .collect();
    let mut ts = start_us;
    while out.packets < packets {
        let i = rng.below(open.len() as u64) as usize;
        let conv = &mut open[i];
        let (snap, frame) = &conv.packets[conv.next];
        out.frame_kept(ts, frame, *snap);
        ts += step_us;
        conv.next += 1;
        if conv.next == conv.packets.len() {
            open[i] = new_conversation(&mut rng);
        }
    }
    out
}

/// `flows` distinct TCP connections, each opened by one SYN (all held open at once), then
/// `data_rounds` rounds of one ACK-only packet on each: a steady path with no new flows.
pub fn many_open_flows(flows: u32, data_rounds: u32) -> (PcapWriter, u64) {
    let mut out = PcapWriter::new();
    let mut ts = 1_700_000_000_000_000_u64;
    let endpoint = |i: u32| {
        let client = IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 16) as u8, (i >> 8) as u8));
        let server = IpAddr::V4(Ipv4Addr::new(52, 9, (i >> 8) as u8, i as u8));
        (client, server, 1024 + (i % 60000) as u16)
    };
    for i in 0..flows {
        let (c, s, port) = endpoint(i);
        out.frame(ts, &ip_frame(c, s, 6, &tcp(port, 443, 1, TCP_FLAGS_SYN, 0)));
        ts += 1;
    }
    let opened = out.packets;
    for _ in 0..data_rounds {
        for i in 0..flows {
            let (c, s, port) = endpoint(i);
            out.frame(ts, &ip_frame(c, s, 6, &tcp(port, 443, 2, TCP_FLAGS_ACK, 0)));
            ts += 1;
        }
    }
    (out, opened)
}
