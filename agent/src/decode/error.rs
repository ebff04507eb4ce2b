//! Why a packet could not be decoded, and why one was skipped on purpose.

/// The protocol layer at which decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet II / 802.3 header.
    Ethernet,
    /// An 802.1Q / 802.1ad VLAN tag.
    Vlan,
    /// PPPoE session header and PPP protocol.
    Pppoe,
    /// Linux cooked capture v1 header.
    Sll,
    /// Linux cooked capture v2 header.
    Sll2,
    /// BSD loopback (`DLT_NULL` / `DLT_LOOP`) header.
    Loopback,
    /// A raw-IP link type whose first nibble is neither 4 nor 6.
    RawIp,
    /// IPv4 header.
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// An IPv6 extension header.
    Ipv6Extension,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// ICMP header.
    Icmp,
    /// ICMPv6 header.
    Icmpv6,
}

impl Layer {
    /// Every layer, in declaration order (the order of [`DecodeStats`](super::DecodeStats) rows).
    pub const ALL: [Self; 14] = [
        Self::Ethernet,
        Self::Vlan,
        Self::Pppoe,
        Self::Sll,
        Self::Sll2,
        Self::Loopback,
        Self::RawIp,
        Self::Ipv4,
        Self::Ipv6,
        Self::Ipv6Extension,
        Self::Tcp,
        Self::Udp,
        Self::Icmp,
        Self::Icmpv6,
    ];

    /// A fixed label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ethernet => "ethernet",
            Self::Vlan => "vlan",
            Self::Pppoe => "pppoe",
            Self::Sll => "sll",
            Self::Sll2 => "sll2",
            Self::Loopback => "loopback",
            Self::RawIp => "raw_ip",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Ipv6Extension => "ipv6_extension",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
            Self::Icmpv6 => "icmpv6",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was wrong at the layer where decoding stopped, with the values that showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Occurs when fewer bytes remain than the header needs.
    #[error("truncated: needs {needed} bytes, {available} captured")]
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes left in the capture.
        available: usize,
    },
    /// Occurs when an IP header's version field does not match its link or ethertype.
    #[error("wrong IP version {0}")]
    BadVersion(u8),
    /// Occurs when a header-length field is below its protocol's minimum (IPv4 IHL < 5, TCP
    /// data offset < 5); the value is in 32-bit words.
    #[error("header length {0} words is below the minimum")]
    BadHeaderLength(u8),
    /// Occurs when a length field claims more bytes than were captured in a packet that was not
    /// cut by a snap length: the header lies.
    #[error("length {claimed} is beyond the {captured} bytes captured")]
    LengthBeyondCapture {
        /// The length the header claims.
        claimed: usize,
        /// The bytes actually there.
        captured: usize,
    },
    /// Occurs when a length field is smaller than the headers it must cover (IPv4 total length
    /// below its header length, UDP length below 8).
    #[error("length {claimed} is below the minimum {minimum}")]
    LengthTooShort {
        /// The length the header claims.
        claimed: usize,
        /// The smallest valid value.
        minimum: usize,
    },
    /// Occurs when an IPv6 packet chains more extension headers than
    /// [`MAX_EXTENSION_HEADERS`](super::ipv6::MAX_EXTENSION_HEADERS).
    #[error("more than the allowed number of IPv6 extension headers")]
    TooManyExtensionHeaders,
    /// Occurs when a frame stacks more VLAN tags than [`MAX_VLAN_TAGS`](super::ethernet::MAX_VLAN_TAGS).
    #[error("more than the allowed number of VLAN tags")]
    TooManyVlanTags,
}

impl ErrorKind {
    /// Number of kinds, the width of [`DecodeStats`](super::DecodeStats) rows.
    pub const COUNT: usize = 7;

    /// Every kind's label, in [`ErrorKind::index`] order.
    pub const LABELS: [&'static str; Self::COUNT] = [
        "truncated",
        "bad_version",
        "bad_header_length",
        "length_beyond_capture",
        "length_too_short",
        "too_many_extension_headers",
        "too_many_vlan_tags",
    ];

    /// A fixed label for metrics.
    pub fn as_str(self) -> &'static str {
        Self::LABELS.get(self.index()).copied().unwrap_or("unknown")
    }

    /// This kind's position in [`ErrorKind::LABELS`].
    pub fn index(self) -> usize {
        match self {
            Self::Truncated { .. } => 0,
            Self::BadVersion(_) => 1,
            Self::BadHeaderLength(_) => 2,
            Self::LengthBeyondCapture { .. } => 3,
            Self::LengthTooShort { .. } => 4,
            Self::TooManyExtensionHeaders => 5,
            Self::TooManyVlanTags => 6,
        }
    }
}

/// A packet that could not be decoded: which layer, and what was wrong there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{layer} header: {kind}")]
pub struct DecodeError {
    /// Where decoding stopped.
    pub layer: Layer,
    /// What was wrong.
    pub kind: ErrorKind,
}

impl DecodeError {
    /// Builds the error for a header that needs `needed` bytes where `available` remain.
    pub fn truncated(layer: Layer, needed: usize, available: usize) -> Self {
        Self {
            layer,
            kind: ErrorKind::Truncated { needed, available },
        }
    }
}

/// Why a well-formed packet was skipped: it carries nothing the flow table tracks, or another
/// capture of the host counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipKind {
    /// The capture's link type is not one the decoder reads.
    UnknownLinkType,
    /// ARP and RARP.
    Arp,
    /// An 802.3 frame with a length instead of an ethertype (LLC, STP, CDP...).
    Llc,
    /// Any other ethertype (LLDP, PPPoE discovery, MPLS...), or PPP carrying something other
    /// than IP.
    OtherEthertype,
    /// A Linux cooked header whose hardware type carries no IP (netlink, for one).
    NonIpHardware,
    /// A loopback header with an address family that is not IPv4 or IPv6.
    OtherAddressFamily,
    /// An IP protocol other than TCP, UDP, ICMP and ICMPv6 (GRE, ESP, SCTP...).
    OtherIpProtocol,
    /// An IPv6 packet whose header chain ends in "no next header" (59).
    NoNextHeader,
    /// A container's packet, counted by the capture on the container's own link (see
    /// `pipeline::vantage`), seen here on a bridge, an uplink or another container's link.
    CountedOnContainerLink,
}

impl SkipKind {
    /// Number of kinds, the width of [`DecodeStats`](super::DecodeStats)' skipped counters.
    pub const COUNT: usize = 9;

    /// Every kind, in declaration order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::UnknownLinkType,
        Self::Arp,
        Self::Llc,
        Self::OtherEthertype,
        Self::NonIpHardware,
        Self::OtherAddressFamily,
        Self::OtherIpProtocol,
        Self::NoNextHeader,
        Self::CountedOnContainerLink,
    ];

    /// A fixed label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownLinkType => "unknown_link_type",
            Self::Arp => "arp",
            Self::Llc => "llc",
            Self::OtherEthertype => "other_ethertype",
            Self::NonIpHardware => "non_ip_hardware",
            Self::OtherAddressFamily => "other_address_family",
            Self::OtherIpProtocol => "other_ip_protocol",
            Self::NoNextHeader => "no_next_header",
            Self::CountedOnContainerLink => "counted_on_container_link",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}
