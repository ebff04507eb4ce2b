//! Live capture between two network namespaces joined by a veth pair: what the sensor reports
//! must match what was sent. Needs root (namespaces, AF_PACKET) and `ip` (iproute2); without
//! them each test prints why and returns.
//!
//! Namespace "A" is the monitored host (10.77.x.1, capture on its veth end); "B" plays the
//! servers (10.77.x.2). Sockets are created on threads that entered a namespace with setns(2)
//! and keep that namespace wherever they are used, so one test process drives both ends.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use picket_agent::capture::LiveCapture;
use picket_agent::capture::live::{LiveCaptureError, Poll, Reading};
use picket_agent::flow_table::{Cidr, LocalNets};
use picket_agent::pipeline::{Pipeline, PipelineConfig, PipelineTotals};
use picket_agent::sensor::capture_until;
use picket_proto::v1::{Direction, Record, record};

/// Why these tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root: network namespaces and AF_PACKET need it".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) not found".into()),
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces and a veth pair between them, removed on drop.
struct Lab {
    a: String,
    b: String,
    host: Ipv4Addr,
    peer: Ipv4Addr,
}

impl Lab {
    /// `subnet` keeps concurrent tests apart (10.77.<subnet>.0/24).
    fn new(tag: &str, subnet: u8) -> Self {
        let pid = std::process::id();
        let a = format!("pk{pid}{tag}a");
        let b = format!("pk{pid}{tag}b");
        let host = Ipv4Addr::new(10, 77, subnet, 1);
        let peer = Ipv4Addr::new(10, 77, subnet, 2);
        let lab = Self { a, b, host, peer };
        let (a, b) = (lab.a.as_str(), lab.b.as_str());
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        let mac_a = format!("02:77:00:00:{subnet:02x}:01");
        let mac_b = format!("02:77:00:00:{subnet:02x}:02");
        ip(&[
            "link", "add", "veth0", "address", &mac_a, "netns", a, "type", "veth", "peer", "name",
            "veth0", "address", &mac_b, "netns", b,
        ]);
        for (ns, addr, peer, peer_mac) in [
            (a, lab.host, lab.peer, &mac_b),
            (b, lab.peer, lab.host, &mac_a),
        ] {
            // No IPv6 and a fixed neighbour: nothing but the test's own packets on the link.
            let sysctl = "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6";
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "sh", "-c", sysctl])
                .output()
                .expect("sh runs");
            assert!(out.status.success(), "{out:?}");
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "veth0",
            ]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", "veth0", "up"]);
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                &peer.to_string(),
                "lladdr",
                peer_mac,
                "dev",
                "veth0",
                "nud",
                "permanent",
            ]);
        }
        lab
    }

    /// Runs `f` on a thread inside namespace `ns` and returns its result.
    fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = File::open(&path).expect("netns file");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// Starts capture on A's veth, reading as `reading` says; returns the stop flag and the
    /// thread giving the records.
    fn start_capture(
        &self,
        reading: Reading,
    ) -> (Arc<AtomicBool>, std::thread::JoinHandle<Captured>) {
        let (go_tx, go_rx) = mpsc::channel();
        go_tx.send(()).expect("go");
        self.start_capture_with(
            picket_agent::capture::live::SOCKET_BUFFER_BYTES,
            go_rx,
            reading,
        )
    }

    /// As [`Lab::start_capture`] with a socket buffer of `buffer` bytes; the socket is open
    /// (and queueing) at return, but reading starts only when `go` receives.
    fn start_capture_with(
        &self,
        buffer: usize,
        go: mpsc::Receiver<()>,
        reading: Reading,
    ) -> (Arc<AtomicBool>, std::thread::JoinHandle<Captured>) {
        let path = format!("/var/run/netns/{}", self.a);
        let host = self.host;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let (ready_tx, ready_rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let file = File::open(&path).expect("netns file");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let mut capture =
                LiveCapture::open_with("veth0", buffer, reading).expect("capture opens");
            // Not a silent fallback: the path under test is the one asked for.
            assert_eq!(capture.reading(), reading);
            let local = Cidr::new(IpAddr::V4(host), 32).expect("cidr");
            let mut pipeline = Pipeline::new(PipelineConfig {
                local: LocalNets::new([local]),
                interface: "veth0".into(),
                ..PipelineConfig::default()
            });
            ready_tx.send(()).expect("ready");
            go.recv().expect("go");
            let mut records = Vec::new();
            let cpu = thread_cpu();
            let totals = capture_until(&mut capture, &mut pipeline, &thread_stop, None, &mut |r| {
                records.push(r)
            })
            .expect("capture runs");
            let cpu = thread_cpu() - cpu;
            Captured {
                records,
                totals,
                cpu,
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("capture ready");
        (stop, handle)
    }

    /// Reads A's veth on a thread, as `reading` says, until the returned flag is set, keeping
    /// what `pick` returns for each packet; the socket is open at return.
    fn collect<R: Send + 'static>(
        &self,
        reading: Reading,
        pick: impl Fn(&picket_agent::capture::Packet<'_>) -> Option<R> + Send + 'static,
    ) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<R>>) {
        collect_on(&self.a, "veth0", reading, pick)
    }
}

/// Reads `device` in namespace `ns` on a thread, as `reading` says, until the returned flag is
/// set, keeping what `pick` returns for each packet; the socket is open at return.
fn collect_on<R: Send + 'static>(
    ns: &str,
    device: &'static str,
    reading: Reading,
    pick: impl Fn(&picket_agent::capture::Packet<'_>) -> Option<R> + Send + 'static,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<R>>) {
    let path = format!("/var/run/netns/{ns}");
    let (opened_tx, opened_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let capture_stop = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let file = File::open(path).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut capture = LiveCapture::open_with(
            device,
            picket_agent::capture::live::SOCKET_BUFFER_BYTES,
            reading,
        )
        .expect("capture opens");
        opened_tx.send(()).expect("opened");
        let mut kept = Vec::new();
        while !capture_stop.load(Ordering::Relaxed) {
            if let Poll::Packet(p) = capture.poll().expect("poll") {
                kept.extend(pick(&p));
            }
        }
        kept
    });
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("opened");
    (stop, handle)
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

struct Captured {
    records: Vec<Record>,
    totals: PipelineTotals,
    /// The capture thread's CPU time while it captured.
    cpu: Duration,
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("thread CPU clock");
    Duration::from(t)
}

fn dns_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(u8::try_from(label.len()).expect("short label"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&dns_name(name));
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// The answer to `query` (echoing its question) giving `addr`.
fn dns_answer(query: &[u8], addr: Ipv4Addr) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    r[7] = 1; // one answer
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
    r.extend_from_slice(&addr.octets());
    r
}

#[test]
fn tcp_udp_and_dns_between_namespaces_are_reported_as_sent() {
    reported_as_sent("t", 61, Reading::Ring);
}

#[test]
fn tcp_udp_and_dns_read_through_the_fallback_channel_are_reported_as_sent() {
    reported_as_sent("tc", 65, Reading::Channel);
}

/// TCP, UDP and a DNS exchange from A to B, captured on A reading as `reading` says.
fn reported_as_sent(tag: &str, subnet: u8, reading: Reading) {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    let lab = Lab::new(tag, subnet);
    let (host, peer) = (lab.host, lab.peer);
    // Servers in B: a DNS responder, a TCP echo of one connection, a UDP sink.
    let (dns, tcp, udp_sink) = Lab::run_in(&lab.b, move || {
        (
            UdpSocket::bind((peer, 53)).expect("dns bind"),
            TcpListener::bind((peer, 8080)).expect("tcp bind"),
            UdpSocket::bind((peer, 9999)).expect("udp bind"),
        )
    });
    let responder = std::thread::spawn(move || {
        let mut buf = [0_u8; 512];
        let (n, from) = dns.recv_from(&mut buf).expect("query");
        dns.send_to(&dns_answer(&buf[..n], peer), from)
            .expect("answer");
    });
    let server = std::thread::spawn(move || {
        let (mut conn, _) = tcp.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        conn.write_all(b"pong").expect("write");
        got.len()
    });

    let (stop, capture) = lab.start_capture(reading);
    // Clients in A: resolve, connect to the answer, send UDP.
    let (resolver, udp) = Lab::run_in(&lab.a, move || {
        (
            UdpSocket::bind((host, 0)).expect("bind"),
            UdpSocket::bind((host, 0)).expect("bind"),
        )
    });
    resolver
        .send_to(&dns_query(0x4242, "svc.picket.test"), (peer, 53))
        .expect("query");
    let mut buf = [0_u8; 512];
    resolver
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let n = resolver.recv(&mut buf).expect("answer");
    let answered = Ipv4Addr::new(buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]);
    assert_eq!(answered, peer);
    let mut conn = Lab::run_in(&lab.a, move || {
        TcpStream::connect(SocketAddr::from((answered, 8080))).expect("connect")
    });
    conn.write_all(&[7_u8; 3000]).expect("send");
    conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).expect("reply");
    assert_eq!(reply, b"pong");
    drop(conn);
    for _ in 0..3 {
        udp.send_to(b"hello", (peer, 9999)).expect("udp");
    }
    responder.join().expect("responder");
    assert_eq!(server.join().expect("server"), 3000);
    drop(udp_sink);

    stop.store(true, Ordering::Relaxed);
    let captured = capture.join().expect("capture thread");
    let flows: Vec<_> = captured
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Some(record::Record::Flow(f)) => Some(f.clone()),
            _ => None,
        })
        .collect();
    let find = |protocol: u32, port: u32| {
        flows
            .iter()
            .find(|f| f.protocol == protocol && f.service_port == port)
            .unwrap_or_else(|| panic!("no summary for {protocol}/{port}: {flows:#?}"))
    };
    let tcp = find(6, 8080);
    assert_eq!(tcp.direction, Direction::Egress as i32);
    assert_eq!(
        (tcp.local_addr.as_str(), tcp.remote_addr.as_str()),
        (host.to_string().as_str(), peer.to_string().as_str())
    );
    assert_eq!(tcp.connections, 1);
    assert_eq!(tcp.remote_name, "svc.picket.test");
    assert!(tcp.remote_answered && tcp.unanswered_syns == 0);
    // 3000 payload bytes out and 4 back, plus headers.
    assert!(tcp.bytes_out >= 3000 && tcp.bytes_in >= 4, "{tcp:?}");
    assert_eq!(tcp.interface, "veth0");
    let udp = find(17, 9999);
    assert_eq!((udp.packets_out, udp.packets_in), (3, 0));
    assert!(!udp.remote_answered);
    assert_eq!(udp.bytes_out, 3 * (20 + 8 + 5));
    let dns_flow = find(17, 53);
    assert_eq!((dns_flow.packets_out, dns_flow.packets_in), (1, 1));
    let dns: Vec<_> = captured
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Some(record::Record::Dns(d)) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(dns.len(), 1, "{dns:#?}");
    assert_eq!(dns[0].registered_domain, "picket.test");
    assert_eq!((dns[0].queries, dns[0].responses), (1, 1));
    assert_eq!(dns[0].answers[0].data, peer.to_string());
    // Nothing else was on the link, and nothing was lost.
    assert_eq!(captured.totals.capture.kernel_drops, 0);
    assert_eq!(captured.totals.decode.total_errors(), 0);
    assert!(
        flows.iter().all(|f| f.protocol == 6 || f.protocol == 17),
        "{flows:#?}"
    );
}

#[test]
fn capture_goes_on_after_the_link_goes_down_and_up() {
    survives_a_flap("f", 63, Reading::Ring);
}

#[test]
fn capture_through_the_fallback_channel_goes_on_after_a_flap() {
    survives_a_flap("fc", 66, Reading::Channel);
}

/// Packets before and after the link goes down and up, captured reading as `reading` says.
fn survives_a_flap(tag: &str, subnet: u8, reading: Reading) {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    let lab = Lab::new(tag, subnet);
    let (host, peer) = (lab.host, lab.peer);
    let sink = Lab::run_in(&lab.b, move || UdpSocket::bind((peer, 9999)).expect("bind"));
    let (stop, capture) = lab.start_capture(reading);
    let udp = Lab::run_in(&lab.a, move || UdpSocket::bind((host, 0)).expect("bind"));
    let send = |n: usize| {
        for _ in 0..n {
            udp.send_to(b"hello", (peer, 9999)).expect("udp");
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    send(3);
    // A flap, as an ENA device reset makes: the kernel tells the socket ENETDOWN once.
    ip(&["-n", &lab.a, "link", "set", "veth0", "down"]);
    std::thread::sleep(Duration::from_millis(500));
    ip(&["-n", &lab.a, "link", "set", "veth0", "up"]);
    std::thread::sleep(Duration::from_millis(500));
    send(4);
    drop(sink);
    stop.store(true, Ordering::Relaxed);
    let captured = capture.join().expect("capture thread");
    let udp = captured
        .records
        .iter()
        .find_map(|r| match &r.record {
            Some(record::Record::Flow(f)) if f.service_port == 9999 => Some(f.clone()),
            _ => None,
        })
        .expect("a UDP summary");
    assert_eq!(udp.packets_out, 7, "{udp:?}");
}

#[test]
fn capture_on_a_removed_interface_ends_as_gone() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    let lab = Lab::new("g", 64);
    let ns = lab.a.clone();
    let (opened_tx, opened_rx) = mpsc::channel();
    let capture = std::thread::spawn(move || {
        let file = File::open(format!("/var/run/netns/{ns}")).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut capture = LiveCapture::open("veth0").expect("capture opens");
        opened_tx.send(()).expect("opened");
        let started = std::time::Instant::now();
        loop {
            match capture.poll() {
                Ok(_) if started.elapsed() < Duration::from_secs(20) => {}
                Ok(_) => return None,
                Err(e) => return Some(e),
            }
        }
    });
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("opened");
    ip(&["-n", &lab.a, "link", "del", "veth0"]);
    let err = capture.join().expect("capture thread");
    assert!(
        matches!(err, Some(LiveCaptureError::Gone { ref name }) if name == "veth0"),
        "{err:?}"
    );
}

/// Sends `SENT` UDP packets from A to B while capture runs with `buffer` bytes for waiting
/// packets, reading only from when the burst has been sent if `late` is set. Returns the
/// packets captured, the drops, and the capture thread's CPU time per packet captured.
fn burst(
    tag: &str,
    subnet: u8,
    buffer: usize,
    late: bool,
    reading: Reading,
) -> (u64, u64, Duration) {
    const SENT: u64 = 100_000;
    let lab = Lab::new(tag, subnet);
    let (host, peer) = (lab.host, lab.peer);
    // A bound sink in B, never read: no ICMP port-unreachable replies add to the traffic.
    let sink = Lab::run_in(&lab.b, move || UdpSocket::bind((peer, 7000)).expect("bind"));
    let (go_tx, go_rx) = mpsc::channel();
    if !late {
        go_tx.send(()).expect("go");
    }
    let (stop, capture) = lab.start_capture_with(buffer, go_rx, reading);
    let sender = Lab::run_in(&lab.a, move || UdpSocket::bind((host, 0)).expect("bind"));
    let payload = [0x5a_u8; 32];
    let mut sent = 0_u64;
    while sent < SENT {
        match sender.send_to(&payload, (peer, 7000)) {
            Ok(_) => sent += 1,
            // The veth queue is full for a moment: retry, the packet was not sent.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.raw_os_error() == Some(105) => {} // ENOBUFS
            Err(e) => panic!("send: {e}"),
        }
    }
    if late {
        go_tx.send(()).expect("go");
    }
    stop.store(true, Ordering::Relaxed);
    let captured = capture.join().expect("capture thread");
    drop(sink);
    let burst: u64 = captured
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Some(record::Record::Flow(f)) if f.service_port == 7000 => Some(f.packets_out),
            _ => None,
        })
        .sum();
    let drops = captured.totals.capture.kernel_drops;
    let per_packet = captured.cpu / u32::try_from(burst.max(1)).expect("fits");
    println!(
        "{reading:?}: sent {SENT}, captured {burst}, kernel drops {drops}, all packets {}, \
         capture thread CPU {:?} ({per_packet:?} per packet)",
        captured.totals.packets, captured.cpu
    );
    assert!(burst > 0);
    assert_eq!(
        captured.totals.packets, burst,
        "only the burst was on the link"
    );
    assert_eq!(burst + drops, SENT);
    (burst, drops, per_packet)
}

#[test]
fn a_burst_of_100000_packets_is_captured_or_counted_as_dropped() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    burst(
        "b",
        62,
        picket_agent::capture::live::SOCKET_BUFFER_BYTES,
        false,
        Reading::Ring,
    );
}

/// The fallback channel accounts for a burst too. Prints what each way of reading costs the
/// capture thread per packet, and the ratio (figures only: tests never assert timings).
#[test]
fn a_burst_read_through_the_fallback_channel_is_accounted_for_and_costs_more() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    let buffer = picket_agent::capture::live::SOCKET_BUFFER_BYTES;
    let (_, _, channel) = burst("bc", 67, buffer, false, Reading::Channel);
    let (_, _, ring) = burst("br", 68, buffer, false, Reading::Ring);
    println!(
        "capture thread CPU per packet: ring {ring:?}, channel {channel:?} ({:.1}x the ring)",
        channel.as_secs_f64() / ring.as_secs_f64().max(1e-12)
    );
}

#[test]
fn a_burst_into_a_small_unread_buffer_is_mostly_dropped_and_every_drop_counted() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    // 256 KiB holds a few hundred packets; the rest must show up as kernel drops.
    let (captured, drops, _) = burst("d", 63, 256 * 1024, true, Reading::Ring);
    assert!(drops > 50_000, "captured {captured}, drops {drops}");
}

/// Large packets (segmentation offload makes 64 KiB ones on a veth) are handed over only up
/// to the snap through the ring, unless they are DNS: a 40 KB write to TCP port 8080 and one
/// to TCP port 53 (DNS over TCP) each cross the link as a few super-packets. The fallback
/// channel keeps them whole (it could not tell a snapped packet's length on the wire).
#[test]
fn large_packets_are_snapped_unless_they_are_dns() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    const SNAP: usize = picket_agent::capture::snap_filter::SNAP_BYTES as usize;
    for reading in [Reading::Ring, Reading::Channel] {
        let lab = Lab::new(if reading == Reading::Ring { "sr" } else { "sc" }, 69);
        let peer = lab.peer;
        let listeners = Lab::run_in(&lab.b, move || {
            [53, 8080].map(|port| TcpListener::bind((peer, port)).expect("bind"))
        });
        let servers = listeners.map(|l| {
            std::thread::spawn(move || {
                let (mut c, _) = l.accept().expect("accept");
                let mut got = Vec::new();
                c.read_to_end(&mut got).expect("read");
                got.len()
            })
        });
        // (destination port, captured bytes, length on the wire) of each packet over the snap.
        let (stop, capture) = lab.collect(reading, |p| {
            let wire = usize::try_from(p.orig_len).expect("fits");
            // Ethernet, IPv4 without options, then the TCP destination port.
            (wire > SNAP && p.data.len() >= 38).then(|| {
                let port = u16::from_be_bytes([p.data[36], p.data[37]]);
                (port, p.data.len(), wire)
            })
        });
        for port in [53, 8080] {
            let mut conn = Lab::run_in(&lab.a, move || {
                TcpStream::connect(SocketAddr::from((peer, port))).expect("connect")
            });
            conn.write_all(&[9_u8; 40_000]).expect("send");
        }
        for server in servers {
            assert_eq!(server.join().expect("server"), 40_000);
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let large = capture.join().expect("capture thread");
        println!("{reading:?}: packets over {SNAP} bytes (port, captured, wire): {large:?}");
        let dns: Vec<_> = large.iter().filter(|l| l.0 == 53).collect();
        let other: Vec<_> = large.iter().filter(|l| l.0 == 8080).collect();
        assert!(!dns.is_empty() && !other.is_empty(), "{large:?}");
        assert!(dns.iter().all(|&&(_, got, wire)| got == wire), "{dns:?}");
        if reading == Reading::Ring {
            assert!(other.iter().all(|&&(_, got, _)| got == SNAP), "{other:?}");
        } else {
            assert!(
                other.iter().all(|&&(_, got, wire)| got == wire),
                "{other:?}"
            );
        }
    }
}

/// A bulk TCP transfer, which crosses a veth as super-packets of up to 64 KiB, is counted in
/// full (every byte on the wire, from the IP headers) though the ring keeps only the start of
/// each large packet. Prints the capture thread's CPU for it.
#[test]
fn a_bulk_transfer_through_the_ring_is_counted_in_full() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    const MIB: usize = 1 << 20;
    const SENT_MIB: usize = 512;
    let lab = Lab::new("bk", 70);
    let peer = lab.peer;
    let listener = Lab::run_in(&lab.b, move || {
        TcpListener::bind((peer, 8080)).expect("bind")
    });
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        std::io::copy(&mut c, &mut std::io::sink()).expect("read")
    });
    let (stop, capture) = lab.start_capture(Reading::Ring);
    let mut conn = Lab::run_in(&lab.a, move || {
        TcpStream::connect(SocketAddr::from((peer, 8080))).expect("connect")
    });
    let chunk = vec![7_u8; MIB];
    for _ in 0..SENT_MIB {
        conn.write_all(&chunk).expect("send");
    }
    drop(conn);
    let received = server.join().expect("server");
    assert_eq!(received, u64::try_from(SENT_MIB * MIB).expect("fits"));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let captured = capture.join().expect("capture thread");
    let (packets, bytes) = captured
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Some(record::Record::Flow(f)) if f.service_port == 8080 => {
                Some((f.packets_out, f.bytes_out))
            }
            _ => None,
        })
        .fold((0, 0), |(p, b), (fp, fb)| (p + fp, b + fb));
    let drops = captured.totals.capture.kernel_drops;
    println!(
        "Ring, {SENT_MIB} MiB over TCP: {packets} packets out ({} bytes each on average), \
         {bytes} bytes counted, kernel drops {drops}, capture thread CPU {:?}",
        bytes / packets.max(1),
        captured.cpu
    );
    assert!(packets > 0);
    // A dropped packet's bytes cannot be counted; without drops, every byte is.
    if drops == 0 {
        assert!(
            bytes >= received,
            "{bytes} bytes counted of {received} sent"
        );
    }
}

/// The ring says which way each packet crossed the interface (the kernel's packet type), as
/// a container's link needs to know which end is its container; the fallback channel cannot.
#[test]
fn the_ring_says_which_way_each_packet_went() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    for reading in [Reading::Ring, Reading::Channel] {
        let lab = Lab::new(if reading == Reading::Ring { "wr" } else { "wc" }, 71);
        let (host, peer) = (lab.host, lab.peer);
        // (UDP destination port, outgoing) of each datagram of the test's ports.
        let (stop, capture) = lab.collect(reading, |p| {
            // Ethernet, IPv4 without options, UDP: the destination port.
            let port = (p.data.len() >= 38 && p.data[23] == 17)
                .then(|| u16::from_be_bytes([p.data[36], p.data[37]]))?;
            (port == 7001 || port == 7002).then_some((port, p.outgoing))
        });
        let sinks = [
            Lab::run_in(&lab.b, move || UdpSocket::bind((peer, 7001)).expect("bind")),
            Lab::run_in(&lab.a, move || UdpSocket::bind((host, 7002)).expect("bind")),
        ];
        Lab::run_in(&lab.a, move || {
            let sock = UdpSocket::bind((host, 0)).expect("bind");
            sock.send_to(b"out", (peer, 7001)).expect("send");
        });
        Lab::run_in(&lab.b, move || {
            let sock = UdpSocket::bind((peer, 0)).expect("bind");
            sock.send_to(b"in", (host, 7002)).expect("send");
        });
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let seen = capture.join().expect("capture thread");
        drop(sinks);
        let expected = if reading == Reading::Ring {
            vec![(7001, Some(true)), (7002, Some(false))]
        } else {
            vec![(7001, None), (7002, None)]
        };
        assert_eq!(seen, expected, "{reading:?}");
    }
}

/// On a raw IP link (a tun device, as WireGuard or Tailscale make) the ring too keeps only the
/// start of a large packet that is not DNS.
#[test]
fn large_packets_on_a_raw_ip_link_are_snapped_unless_they_are_dns() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    const SNAP: usize = picket_agent::capture::snap_filter::SNAP_BYTES as usize;
    let ns = format!("pk{}tun", std::process::id());
    ip(&["netns", "add", &ns]);
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _remove = Remove(ns.clone());
    // The device lives (with carrier) while this descriptor is open.
    let Ok(_tun) = Lab::run_in(&ns, open_tun) else {
        println!("skipped: no /dev/net/tun");
        return;
    };
    ip(&["-n", &ns, "link", "set", "tun0", "mtu", "16000", "up"]);
    ip(&["-n", &ns, "addr", "add", "10.78.0.1/24", "dev", "tun0"]);
    // (UDP destination port, captured bytes, length on the wire) of each large packet.
    let (stop, capture) = collect_on(&ns, "tun0", Reading::Ring, |p| {
        let wire = usize::try_from(p.orig_len).expect("fits");
        // IPv4 without options, then the UDP destination port.
        (wire > SNAP && p.data.len() >= 24).then(|| {
            let port = u16::from_be_bytes([p.data[22], p.data[23]]);
            (port, p.data.len(), wire)
        })
    });
    Lab::run_in(&ns, || {
        let sock = UdpSocket::bind("10.78.0.1:0").expect("bind");
        for port in [53, 8080] {
            sock.send_to(&[7_u8; 9000], ("10.78.0.2", port))
                .expect("send");
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let large = capture.join().expect("capture thread");
    assert_eq!(large, [(53, 9028, 9028), (8080, SNAP, 9028)]);
}

/// Opens `/dev/net/tun` as a tun device named `tun0` (IP packets, no packet information
/// header) in the calling thread's namespace.
fn open_tun() -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // struct ifreq: the name, then the flags (a short) in the union.
    let mut ifreq = [0_u8; 40];
    ifreq[..4].copy_from_slice(b"tun0");
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as i16;
    ifreq[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which the buffer is as large as.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, ifreq.as_mut_ptr()) };
    assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    Ok(file)
}
