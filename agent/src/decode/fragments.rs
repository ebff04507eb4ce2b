//! Attribution of later IP fragments to their flow.
//!
//! Only a datagram's first fragment carries the transport header. Remembering its ports per
//! (source, destination, protocol, id) lets later fragments, which have none, count towards the
//! same flow. The memory is bounded: when full the oldest entry goes, and that is counted.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::{Decoded, Fragment, Transport};

/// Identifies one fragmented datagram (RFC 791 §3.2, RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

/// A bounded map from datagram to the ports of its first fragment.
#[derive(Debug)]
pub struct FragmentPorts {
    ports: HashMap<DatagramKey, (u16, u16), foldhash::fast::RandomState>,
    /// Insertion order, for evicting the oldest datagram first.
    order: VecDeque<DatagramKey>,
    capacity: usize,
    evicted: u64,
    unattributed: u64,
}

impl FragmentPorts {
    /// A map holding at most `capacity` datagrams (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ports: HashMap::with_capacity_and_hasher(
                capacity,
                foldhash::fast::RandomState::default(),
            ),
            order: VecDeque::with_capacity(capacity),
            capacity,
            evicted: 0,
            unattributed: 0,
        }
    }

    /// Remembers a first fragment's ports, or gives a later fragment the ports of its first
    /// fragment when they are known. Other packets pass through unchanged.
    ///
    /// A later fragment given ports becomes [`Transport::Udp`] or [`Transport::Tcp`] (with no
    /// flags, which it does not carry); its [`Decoded::fragment`] still says it is a fragment.
    #[inline]
    pub fn attribute<'a>(&mut self, packet: Decoded<'a>) -> Decoded<'a> {
        // Inlined so the common unfragmented packet is not copied in and out of a call.
        let Some(fragment) = packet.fragment else {
            return packet;
        };
        self.attribute_fragment(packet, fragment)
    }

    fn attribute_fragment<'a>(&mut self, packet: Decoded<'a>, fragment: Fragment) -> Decoded<'a> {
        let key = DatagramKey {
            src: packet.src,
            dst: packet.dst,
            protocol: packet.protocol,
            id: fragment.id,
        };
        if fragment.is_first() {
            if let Some(ports) = packet.ports() {
                self.remember(key, ports);
            }
            return packet;
        }
        let Some(&(src_port, dst_port)) = self.ports.get(&key) else {
            self.unattributed = self.unattributed.saturating_add(1);
            return packet;
        };
        let transport = match packet.protocol {
            super::protocol::TCP => Transport::Tcp {
                src_port,
                dst_port,
                flags: super::TcpFlags::default(),
                seq: 0,
            },
            _ => Transport::Udp { src_port, dst_port },
        };
        Decoded {
            transport,
            ..packet
        }
    }

    fn remember(&mut self, key: DatagramKey, ports: (u16, u16)) {
        if let Some(known) = self.ports.get_mut(&key) {
            *known = ports;
            return;
        }
        if self.ports.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.ports.remove(&oldest);
                self.evicted = self.evicted.saturating_add(1);
            }
        }
        self.ports.insert(key, ports);
        self.order.push_back(key);
    }

    /// Datagrams forgotten to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Later fragments whose first fragment was never seen (or already forgotten).
    pub fn unattributed(&self) -> u64 {
        self.unattributed
    }

    /// Datagrams remembered now.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Whether no datagram is remembered.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}
