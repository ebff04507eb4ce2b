//! Which addresses are the host's own, to tell ingress from egress.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// An address block, such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR was rejected, with the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Occurs when the address part does not parse.
    #[error("invalid address in CIDR {0:?}")]
    Address(String),
    /// Occurs when the prefix is not a number or longer than the address (32 or 128 bits).
    #[error("invalid prefix length in CIDR {0:?}")]
    Prefix(String),
}

impl Cidr {
    /// The block of `prefix` leading bits of `addr`; host bits are cleared.
    ///
    /// # Errors
    ///
    /// Returns [`CidrError::Prefix`] when `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(CidrError::Prefix(format!("{addr}/{prefix}")));
        }
        Ok(Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// The block's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits the block fixes.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address when the block is a single host (`/32` or `/128`).
    pub fn host(&self) -> Option<IpAddr> {
        let bits = if self.network.is_ipv4() { 32 } else { 128 };
        (self.prefix == bits).then_some(self.network)
    }

    /// Whether `addr` is inside the block (never across address families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

impl std::fmt::Display for Cidr {
    /// `ADDR/PREFIX`, as [`FromStr`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `ADDR/PREFIX`, or a bare address as a single-host block.
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(text.to_owned()))?;
        let prefix = match prefix {
            Some(p) => p.parse().map_err(|_| CidrError::Prefix(text.to_owned()))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, prefix).map_err(|_| CidrError::Prefix(text.to_owned()))
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32_u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128_u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// The host's own addresses and networks.
///
/// When nothing is configured, locality is inferred per flow: a private address (RFC 1918,
/// CGNAT, loopback, link-local, IPv6 ULA and link-local) talking to a public one is the local
/// side. Two private or two public addresses give no answer, and the flow's direction stays
/// unspecified rather than guessed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNets {
    nets: Vec<Cidr>,
    /// Networks of workloads this host carries (containers behind a bridge or a veth): local
    /// for direction, but not the host's own addresses, so `HostStats` does not list them.
    hosted: Vec<Cidr>,
    /// Those of `hosted` whose containers' own links are captured, so their traffic is
    /// counted there and not again on a bridge or uplink (see `pipeline::vantage`).
    counted_at_links: Vec<Cidr>,
}

/// Which end of a flow is the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalEnd {
    /// The end that opened the flow: traffic is egress.
    Initiator,
    /// The end that was contacted: traffic is ingress.
    Responder,
}

impl LocalNets {
    /// Local networks given explicitly; an empty list means "infer from private ranges".
    pub fn new(nets: impl IntoIterator<Item = Cidr>) -> Self {
        Self {
            nets: nets.into_iter().collect(),
            hosted: Vec::new(),
            counted_at_links: Vec::new(),
        }
    }

    /// These networks, and also `hosted` (the host's containers' networks) as local.
    #[must_use]
    pub fn with_hosted(mut self, hosted: impl IntoIterator<Item = Cidr>) -> Self {
        self.hosted = hosted.into_iter().collect();
        self
    }

    /// The hosted networks (see [`LocalNets::with_hosted`]).
    pub fn hosted(&self) -> &[Cidr] {
        &self.hosted
    }

    /// These, saying that the traffic of `nets` (hosted networks) is counted on their
    /// containers' own links, which are captured.
    #[must_use]
    pub fn with_counted_at_links(mut self, nets: impl IntoIterator<Item = Cidr>) -> Self {
        self.counted_at_links = nets.into_iter().collect();
        self
    }

    /// The hosted networks whose traffic is counted on their containers' own links.
    pub fn counted_at_links(&self) -> &[Cidr] {
        &self.counted_at_links
    }

    /// The single-host entries (the host's own addresses when built from its interfaces).
    pub fn host_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.nets.iter().filter_map(Cidr::host)
    }

    /// Whether nothing is configured, so locality is inferred.
    pub fn is_inferred(&self) -> bool {
        self.nets.is_empty() && self.hosted.is_empty()
    }

    /// Whether `addr` is in a configured or hosted network (always false when inferring).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.nets
            .iter()
            .chain(&self.hosted)
            .any(|net| net.contains(addr))
    }

    /// Which end of a flow from `initiator` to `responder` is the host, if that can be told.
    ///
    /// With configured networks the initiator wins when both ends are local (the host talking
    /// to itself opened the flow).
    pub fn local_end(&self, initiator: IpAddr, responder: IpAddr) -> Option<LocalEnd> {
        if self.is_inferred() {
            return match (is_private(initiator), is_private(responder)) {
                (true, false) => Some(LocalEnd::Initiator),
                (false, true) => Some(LocalEnd::Responder),
                _ => None,
            };
        }
        if self.contains(initiator) {
            Some(LocalEnd::Initiator)
        } else if self.contains(responder) {
            Some(LocalEnd::Responder)
        } else {
            None
        }
    }
}

/// Whether an address is one a host can have without it being reachable from the internet.
pub fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            // 100.64.0.0/10 is carrier-grade NAT space (RFC 6598).
            let cgnat = u32::from(a) & 0xffc0_0000 == u32::from(Ipv4Addr::new(100, 64, 0, 0));
            a.is_private() || a.is_loopback() || a.is_link_local() || cgnat
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            a.is_loopback() || a.is_unique_local() || a.is_unicast_link_local()
        }
    }
}
