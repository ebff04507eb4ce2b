//! Live capture: AF_PACKET on one interface, with the kernel's drop counter read from the
//! same socket.
//!
//! Packets are read from a `TPACKET_V3` ring mapped from the kernel ([`RxRing`]): no system
//! call or copy per packet, and each packet carries the kernel's receive time. Where the ring
//! cannot be set up (an old or restricted kernel), capture falls back to `pnet`'s datalink
//! channel, one `poll` and `recvfrom` per packet, stamped with the clock when read.
//!
//! Reads block with a short timeout so the capture thread can notice shutdown and drive
//! time-based expiry when traffic stops.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::{Duration, SystemTime};

use pnet_datalink::{Channel, Config, DataLinkReceiver, NetworkInterface};

use super::packet_socket;
use super::rx_ring::RxRing;
use super::snap_filter;
use super::{CaptureStats, LinkType, Packet, PacketSource, Timestamp};
use crate::flow_table::{Cidr, LocalNets};

/// Bytes read per packet: the largest frame with GRO/TSO offloads (64 KiB) plus headers, so
/// nothing is cut short.
pub const READ_BUFFER_BYTES: usize = 65_536 + 128;
/// Kernel memory for one interface's packets waiting to be read: the ring's size, or the
/// socket receive buffer asked for by the fallback. 8 MiB holds about 60 000 small packets in a
/// burst; the ring is allocated in full for as long as the capture runs, on every interface
/// captured, so it is not larger.
pub const SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// How long one read waits before giving the caller a chance to tick.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// Why live capture could not start or go on, naming the interface.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveCaptureError {
    /// Occurs when no interface has the configured name.
    #[error("sensor.interfaces: no interface named {name:?} (have: {available})")]
    NoSuchInterface {
        /// The name configured.
        name: String,
        /// The names that exist.
        available: String,
    },
    /// Occurs when the packet socket cannot be opened or bound (needs CAP_NET_RAW).
    #[error("cannot capture on {name}: {source}")]
    Open {
        /// The interface.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// Occurs when `pnet` hands back something other than an Ethernet channel.
    #[error("cannot capture on {name}: not a layer-2 channel")]
    NotLayer2 {
        /// The interface.
        name: String,
    },
    /// Occurs when the interface was removed (or replaced by a new one of the same name)
    /// while being captured on.
    #[error("capture on {name} ended: the interface is gone")]
    Gone {
        /// The interface.
        name: String,
    },
    /// Occurs when a read fails for a reason other than its timeout.
    #[error("capture on {name} failed: {source}")]
    Read {
        /// The interface.
        name: String,
        /// The OS error.
        source: io::Error,
    },
}

/// What one wait for a packet gave.
#[derive(Debug)]
pub enum Poll<'a> {
    /// A packet.
    Packet(Packet<'a>),
    /// Nothing arrived within [`READ_TIMEOUT`].
    Idle,
}

/// How a live capture reads its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The `TPACKET_V3` ring, falling back to the channel when it cannot be set up.
    Ring,
    /// `pnet`'s channel: a `poll` and a `recvfrom` per packet.
    Channel,
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reading::Ring => "packet ring",
            Reading::Channel => "one system call per packet",
        })
    }
}

enum Reader {
    Ring(RxRing),
    Channel {
        rx: Box<dyn DataLinkReceiver>,
        /// The socket `rx` reads; `pnet` owns and closes it, this copy only reads its
        /// counters and takes its errors.
        fd: RawFd,
        /// Where [`PacketSource::next_packet`] copies a packet; empty unless that path is used.
        copy: Vec<u8>,
    },
}

impl Reader {
    fn fd(&self) -> RawFd {
        match self {
            Reader::Ring(ring) => ring.fd(),
            Reader::Channel { fd, .. } => *fd,
        }
    }
}

/// Packets from one live interface.
pub struct LiveCapture {
    name: String,
    index: u32,
    link_type: LinkType,
    reader: Reader,
    /// Kernel memory asked for waiting packets.
    buffer_bytes: usize,
    stats: CaptureStats,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("reading", &self.reading())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LiveCapture {
    /// Opens capture on the interface called `name`.
    ///
    /// # Errors
    /// [`LiveCaptureError`] when the interface does not exist or cannot be captured on.
    pub fn open(name: &str) -> Result<Self, LiveCaptureError> {
        Self::open_with_buffer(name, SOCKET_BUFFER_BYTES)
    }

    /// As [`LiveCapture::open`], with `buffer_bytes` of kernel memory for packets waiting to
    /// be read (a smaller buffer drops sooner under bursts; the drops are counted either way).
    ///
    /// # Errors
    /// [`LiveCaptureError`] when the interface does not exist or cannot be captured on.
    pub fn open_with_buffer(name: &str, buffer_bytes: usize) -> Result<Self, LiveCaptureError> {
        Self::open_with(name, buffer_bytes, Reading::Ring)
    }

    /// As [`LiveCapture::open_with_buffer`], reading the socket as `reading` says.
    ///
    /// # Errors
    /// [`LiveCaptureError`] when the interface does not exist or cannot be captured on.
    pub fn open_with(
        name: &str,
        buffer_bytes: usize,
        reading: Reading,
    ) -> Result<Self, LiveCaptureError> {
        let interfaces = pnet_datalink::interfaces();
        let Some(interface) = interfaces.iter().find(|i| i.name == name) else {
            let available = interfaces
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(LiveCaptureError::NoSuchInterface {
                name: name.to_owned(),
                available,
            });
        };
        let open_err = |source| LiveCaptureError::Open {
            name: name.to_owned(),
            source,
        };
        let ring = match reading {
            Reading::Ring => match open_ring(interface, buffer_bytes) {
                Ok(ring) => Some(ring),
                // EPERM is the same for the channel: say so rather than try it.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(open_err(e)),
                Err(e) => {
                    tracing::warn!(
                        interface = name,
                        error = %e,
                        "no packet ring; reading packets one system call at a time"
                    );
                    None
                }
            },
            Reading::Channel => None,
        };
        let reader = match ring {
            Some(ring) => Reader::Ring(ring),
            None => open_channel(interface, buffer_bytes)?,
        };
        // The socket received nothing before its bind; start its counters from there anyway.
        let _ = packet_socket::read_counters(reader.fd());
        Ok(Self {
            name: name.to_owned(),
            index: interface.index,
            link_type: link_type(interface),
            reader,
            buffer_bytes,
            stats: CaptureStats::default(),
        })
    }

    /// The kernel memory asked for packets waiting to be read (the ring, or the fallback
    /// socket's receive buffer).
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// How this capture reads its socket (the channel when the ring could not be set up).
    pub fn reading(&self) -> Reading {
        match self.reader {
            Reader::Ring(_) => Reading::Ring,
            Reader::Channel { .. } => Reading::Channel,
        }
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to [`READ_TIMEOUT`] for the next packet.
    ///
    /// # Errors
    /// [`LiveCaptureError::Read`] when the socket fails (the interface went away).
    pub fn poll(&mut self) -> Result<Poll<'_>, LiveCaptureError> {
        let (data, ts, orig_len, outgoing) = match &mut self.reader {
            Reader::Ring(ring) => {
                match ring.ready(READ_TIMEOUT) {
                    Ok(true) => {}
                    Ok(false) => return Ok(Poll::Idle),
                    Err(source) => {
                        return socket_error(ring.fd(), &self.name, self.index, source)
                            .map(|()| Poll::Idle);
                    }
                }
                let Some(frame) = ring.take() else {
                    return Ok(Poll::Idle);
                };
                let ts = Timestamp::from_secs_nanos(u64::from(frame.sec), u64::from(frame.nsec));
                (frame.data, ts, frame.len, frame.outgoing)
            }
            // `pnet`'s channel does not say which way a packet went.
            Reader::Channel { rx, fd, .. } => match rx.next() {
                Ok(data) => {
                    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    (data, now(), len, None)
                }
                Err(e) if is_timeout(&e) => return Ok(Poll::Idle),
                // The link went down: nothing to read until it is up again.
                Err(source) => {
                    return socket_error(*fd, &self.name, self.index, source).map(|()| Poll::Idle);
                }
            },
        };
        self.stats.packets = self.stats.packets.saturating_add(1);
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.stats.bytes = self.stats.bytes.saturating_add(len);
        Ok(Poll::Packet(Packet {
            ts,
            link_type: self.link_type,
            orig_len,
            data,
            interface: self.index,
            outgoing,
        }))
    }

    /// Adds the kernel's drops since the last call into the stats, and takes the ring's count
    /// of packets it could not read.
    ///
    /// # Errors
    /// The OS error of `getsockopt`, naming the interface.
    pub fn refresh_kernel_drops(&mut self) -> Result<(), LiveCaptureError> {
        let counters = packet_socket::read_counters(self.reader.fd()).map_err(|source| {
            LiveCaptureError::Read {
                name: self.name.clone(),
                source,
            }
        })?;
        self.stats.kernel_drops = self
            .stats
            .kernel_drops
            .saturating_add(u64::from(counters.drops));
        if let Reader::Ring(ring) = &self.reader {
            self.stats.internal_drops = ring.skipped_packets();
        }
        Ok(())
    }
}

impl PacketSource for LiveCapture {
    type Error = LiveCaptureError;

    /// Blocks until a packet arrives; live capture has no end of input.
    ///
    /// Through the channel the packet is copied into a buffer of the capture's own (the
    /// borrow checker cannot return a packet from a retry loop over `pnet`'s buffer); the
    /// capture thread uses [`LiveCapture::poll`], which does not copy.
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, LiveCaptureError> {
        let (data, ts, orig_len, outgoing): (&[u8], _, _, _) = match &mut self.reader {
            Reader::Ring(ring) => {
                loop {
                    match ring.ready(READ_TIMEOUT) {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(source) => socket_error(ring.fd(), &self.name, self.index, source)?,
                    }
                }
                let frame = ring.take().ok_or_else(|| LiveCaptureError::Read {
                    name: self.name.clone(),
                    source: io::Error::other("the ring had no packet where it said one was"),
                })?;
                let ts = Timestamp::from_secs_nanos(u64::from(frame.sec), u64::from(frame.nsec));
                (frame.data, ts, frame.len, frame.outgoing)
            }
            Reader::Channel { rx, fd, copy } => {
                loop {
                    match rx.next() {
                        Ok(data) => {
                            copy.clear();
                            copy.extend_from_slice(data);
                            break;
                        }
                        Err(e) if is_timeout(&e) => {}
                        Err(source) => socket_error(*fd, &self.name, self.index, source)?,
                    }
                }
                let len = u32::try_from(copy.len()).unwrap_or(u32::MAX);
                (copy.as_slice(), now(), len, None)
            }
        };
        self.stats.packets = self.stats.packets.saturating_add(1);
        let bytes = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.stats.bytes = self.stats.bytes.saturating_add(bytes);
        Ok(Some(Packet {
            ts,
            link_type: self.link_type,
            orig_len,
            data,
            interface: self.index,
            outgoing,
        }))
    }

    fn stats(&self) -> CaptureStats {
        self.stats
    }
}

/// A packet socket with a ring of about `bytes`, bound to `interface`.
fn open_ring(interface: &NetworkInterface, bytes: usize) -> io::Result<RxRing> {
    let socket = packet_socket::open()?;
    snap_large_packets(socket.as_raw_fd(), interface);
    RxRing::new(socket, interface.index, bytes)
}

/// Asks the kernel to hand over only the start of large packets that are not DNS (see
/// [`snap_filter`]), on Ethernet and raw IP links; without it capture still works, copying
/// more.
/// For the ring only: its header gives each packet's length on the wire, while `pnet`'s
/// `recvfrom` returns only what was kept, so a snapped packet would look cut short.
fn snap_large_packets(fd: RawFd, interface: &NetworkInterface) {
    let program = if link_type(interface) == LinkType::ETHERNET {
        snap_filter::ethernet()
    } else {
        snap_filter::raw_ip()
    };
    if let Err(e) = packet_socket::attach_filter(fd, &program) {
        tracing::warn!(interface = %interface.name, error = %e, "large packets are captured whole");
    }
}

/// `pnet`'s channel on `interface`, over a socket of ours with a `bytes` receive buffer.
fn open_channel(interface: &NetworkInterface, bytes: usize) -> Result<Reader, LiveCaptureError> {
    let open_err = |source| LiveCaptureError::Open {
        name: interface.name.clone(),
        source,
    };
    let socket = packet_socket::open().map_err(open_err)?;
    // A smaller buffer only means earlier drops, which are counted; not worth failing for.
    if let Err(e) = packet_socket::set_receive_buffer(socket.as_raw_fd(), bytes) {
        tracing::warn!(interface = %interface.name, error = %e, "socket receive buffer not enlarged");
    }
    // `pnet` owns the socket from here and closes it.
    let fd = socket.into_raw_fd();
    let config = Config {
        read_buffer_size: READ_BUFFER_BYTES,
        read_timeout: Some(READ_TIMEOUT),
        promiscuous: false,
        socket_fd: Some(fd),
        ..Config::default()
    };
    match pnet_datalink::channel(interface, config) {
        Ok(Channel::Ethernet(_tx, rx)) => Ok(Reader::Channel {
            rx,
            fd,
            copy: Vec::new(),
        }),
        Ok(_) => Err(LiveCaptureError::NotLayer2 {
            name: interface.name.clone(),
        }),
        Err(e) => Err(open_err(e)),
    }
}

/// Judges a failed read on the socket of interface `name` (index `index`): `Ok` when the
/// link merely went down, so capture goes on (the kernel re-attaches the socket when the link
/// comes up, and packets resume), else why capture cannot go on.
///
/// The kernel reports a link going down, and an interface going away, by setting `ENETDOWN`
/// on the socket; `pnet` returns that as an "unexpected poll event" and leaves the error set.
/// Taking it here is what lets the next poll wait again instead of failing forever.
fn socket_error(
    fd: RawFd,
    name: &str,
    index: u32,
    source: io::Error,
) -> Result<(), LiveCaptureError> {
    let pending = packet_socket::take_error(fd).ok().flatten();
    let down = pending
        .as_ref()
        .or(Some(&source))
        .and_then(io::Error::raw_os_error)
        == Some(libc::ENETDOWN);
    if !down {
        return Err(LiveCaptureError::Read {
            name: name.to_owned(),
            source: pending.unwrap_or(source),
        });
    }
    // Same name and index: the same interface, down for now. Otherwise it was removed (the
    // socket stays bound to the old index, so a new interface of that name needs a new one).
    let same = pnet_datalink::interfaces()
        .iter()
        .any(|i| i.name == name && i.index == index);
    if !same {
        return Err(LiveCaptureError::Gone {
            name: name.to_owned(),
        });
    }
    tracing::warn!(
        interface = name,
        "link went down; capture goes on when it comes back up"
    );
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The clock as a capture timestamp.
pub fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(since.as_secs(), u64::from(since.subsec_nanos()))
}

/// Interfaces without a link-layer header (tun, WireGuard) deliver raw IP.
fn link_type(interface: &NetworkInterface) -> LinkType {
    if interface.mac.is_none() || interface.is_point_to_point() {
        LinkType::RAW
    } else {
        LinkType::ETHERNET
    }
}

/// The interfaces to capture on by default: every one that is up, loopback excluded.
pub fn default_interfaces() -> Vec<String> {
    pnet_datalink::interfaces()
        .into_iter()
        .filter(|i| i.is_up() && !i.is_loopback())
        .map(|i| i.name)
        .collect()
}

/// Every address of every interface, each as a single-host block: the host's own addresses,
/// which tell ingress from egress.
pub fn host_addresses() -> Vec<Cidr> {
    own_addresses(&pnet_datalink::interfaces())
}

fn own_addresses(interfaces: &[NetworkInterface]) -> Vec<Cidr> {
    interfaces
        .iter()
        .flat_map(|i| i.ips.iter().map(|net| net.ip()))
        .filter_map(|ip: IpAddr| {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            Cidr::new(ip, bits).ok()
        })
        .collect()
}

/// Whether the interface `name` is a container's link (see
/// [`super::hosted_networks::is_container_link`]); false when there is no such interface.
pub fn is_container_link(name: &str) -> bool {
    pnet_datalink::interfaces()
        .iter()
        .find(|i| i.name == name)
        .is_some_and(|i| {
            let nets: Vec<Cidr> = i
                .ips
                .iter()
                .filter_map(|n| Cidr::new(n.ip(), n.prefix()).ok())
                .collect();
            super::hosted_networks::is_container_link(name, &nets)
        })
}

/// What live capture tells direction by: the host's own addresses ([`host_addresses`]) and
/// the networks of the containers it carries ([`super::hosted_networks`]); of those, the ones
/// whose every container link `captured` says is captured on are counted there.
pub fn local_nets(captured: impl Fn(&str) -> bool) -> LocalNets {
    let interfaces = pnet_datalink::interfaces();
    let networks: Vec<(&str, Vec<Cidr>)> = interfaces
        .iter()
        .map(|i| {
            let nets = i.ips.iter();
            let nets = nets.filter_map(|n| Cidr::new(n.ip(), n.prefix()).ok());
            (i.name.as_str(), nets.collect())
        })
        .collect();
    let hosted = super::hosted_networks::hosted_networks(
        networks.iter().map(|(name, nets)| (*name, nets.as_slice())),
    );
    let at_links = hosted
        .iter()
        .filter(|h| !h.links.is_empty() && h.links.iter().all(|l| captured(l)))
        .map(|h| h.net);
    LocalNets::new(own_addresses(&interfaces))
        .with_counted_at_links(at_links.collect::<Vec<_>>())
        .with_hosted(hosted.iter().map(|h| h.net))
}
