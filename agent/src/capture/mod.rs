//! Capture: where packets enter the agent.
//!
//! Every input (a pcap or pcapng file, or AF_PACKET live capture) sits behind one
//! [`PacketSource`] seam, so decode, the flow table and everything after them behave the same
//! for replayed and live traffic. A source hands out [`Packet`]s that borrow a buffer the source
//! owns and reuses, so reading a packet allocates nothing.

pub mod hosted_networks;
pub mod live;
pub mod packet_socket;
pub mod pcap_file;
pub mod rx_ring;
pub mod snap_filter;

pub use live::{LiveCapture, LiveCaptureError};
pub use pcap_file::{PcapFile, PcapFileError};

/// A link-layer header type, as the `LINKTYPE_*` number pcap and pcapng files carry.
///
/// Kept as the raw number rather than an enum so a capture with a link type the decoder does not
/// know still flows through capture and is counted (as skipped) by decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: Self = Self(0);
    /// Ethernet II (and 802.3), possibly with 802.1Q/802.1ad tags.
    pub const ETHERNET: Self = Self(1);
    /// `DLT_RAW` as some platforms wrote it before `LINKTYPE_RAW` was normalised.
    pub const RAW_LEGACY: Self = Self(12);
    /// Raw IP: the first nibble says IPv4 or IPv6.
    pub const RAW: Self = Self(101);
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    pub const LOOP: Self = Self(108);
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    pub const LINUX_SLL: Self = Self(113);
    /// Raw IPv4 with no link header.
    pub const IPV4: Self = Self(228);
    /// Raw IPv6 with no link header.
    pub const IPV6: Self = Self(229);
    /// Linux cooked capture v2 (`tcpdump -i any` since libpcap 1.10).
    pub const LINUX_SLL2: Self = Self(276);
}

/// A capture timestamp: nanoseconds since the Unix epoch.
///
/// Nanoseconds in a `u64` reach the year 2554, far past any capture; times before 1970 (possible
/// only with a hostile pcapng `if_tsoffset`) saturate to zero rather than wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from whole seconds and nanoseconds within the second, saturating.
    pub fn from_secs_nanos(secs: u64, nanos: u64) -> Self {
        Self(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// Builds a timestamp from milliseconds since the epoch, saturating.
    pub fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// Milliseconds since the epoch, the unit of Picket's wire records.
    pub fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// This time plus `nanos`, saturating at the end of representable time.
    pub fn saturating_add_nanos(self, nanos: u64) -> Self {
        Self(self.0.saturating_add(nanos))
    }
}

/// One captured packet, borrowed from the source's buffer until the next call to
/// [`PacketSource::next_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// When the packet was captured.
    pub ts: Timestamp,
    /// How to read the first bytes of `data`.
    pub link_type: LinkType,
    /// The captured bytes, possibly fewer than `orig_len` when the capture had a snap length.
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
    /// Which interface captured it: the pcapng interface id, the live interface index, or 0.
    pub interface: u32,
    /// Whether the host sent it out through the capturing interface (the kernel's
    /// `PACKET_OUTGOING`) rather than received it there; `None` when the source cannot tell.
    pub outgoing: Option<bool>,
}

impl Packet<'_> {
    /// Whether the capture kept fewer bytes than the packet had on the wire (a snap length).
    pub fn is_snapped(&self) -> bool {
        usize::try_from(self.orig_len).is_ok_and(|orig| orig > self.data.len())
    }
}

/// A source's own accounting: what it delivered and what it lost before delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureStats {
    /// Packets handed to the caller.
    pub packets: u64,
    /// Captured bytes handed to the caller.
    pub bytes: u64,
    /// Packets the kernel dropped before the source saw them (live capture only).
    pub kernel_drops: u64,
    /// Packets or records the source itself dropped (a record naming an unknown interface,
    /// a live packet larger than the buffer).
    pub internal_drops: u64,
}

/// One input of packets: a file being replayed or an interface being captured.
///
/// The source owns a buffer and fills it per packet; the packet it returns borrows that buffer,
/// which is why the next call needs the previous packet to be gone.
pub trait PacketSource {
    /// The error this source reports; it says where the input went wrong.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Returns the next packet, `Ok(None)` at the end of the input.
    ///
    /// # Errors
    ///
    /// Returns the source's error when the input is damaged or cannot be read. Packets returned
    /// before the error are good; after an error the source returns `Ok(None)`.
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Self::Error>;

    /// The source's counters so far.
    fn stats(&self) -> CaptureStats;
}
