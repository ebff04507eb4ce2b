//! The kernel's connection tracking, asked over netlink (ctnetlink) which connection a packet
//! belongs to, so that a container's traffic NATed to the host's address can be told on the
//! uplink (see `pipeline::nat`).
//!
//! One question per flow at most: a `GET` with the packet's tuple, which the kernel finds in
//! its table whichever direction of the connection the tuple is (both are hashed). The answer
//! holds the connection's original and reply tuples; before NAT and after it they differ.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    DefaultNla, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::flow_table::Endpoint;
use crate::pipeline::{NatTable, Tracked};

/// Longest wait for the kernel's answer: it answers within microseconds, so a wait this long
/// means the socket is wedged, and the capture thread must not be held up longer.
const ANSWER_WAIT_MICROS: i64 = 10_000;
/// Answers read past ones to earlier questions (which timed out) before giving up.
const STALE_ANSWERS_AT_MOST: usize = 8;
/// "No such connection".
const ENOENT: i32 = 2;
/// ICMP's and ICMPv6's tuple attributes (`CTA_PROTO_ICMP_ID`... in
/// `linux/netfilter/nfnetlink_conntrack.h`), which `netlink-packet-netfilter` has no names for.
const CTA_PROTO_ICMP: [u16; 3] = [4, 5, 6];
const CTA_PROTO_ICMPV6: [u16; 3] = [7, 8, 9];
/// Echo reply's type in ICMP and in ICMPv6.
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// A netlink socket to the connection tracking of the agent's network namespace.
#[derive(Debug)]
pub struct Conntrack {
    socket: Socket,
    sequence: u32,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl Conntrack {
    /// Opens the socket.
    ///
    /// # Errors
    /// When netlink's netfilter family cannot be opened (no connection tracking, or no
    /// `CAP_NET_ADMIN`).
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let wait = TimeVal::new(0, ANSWER_WAIT_MICROS);
        setsockopt(&socket, sockopt::ReceiveTimeout, &wait).map_err(io::Error::from)?;
        Ok(Self {
            socket,
            sequence: 0,
            request: Vec::new(),
            answer: vec![0; 8192],
        })
    }

    /// Sends the `GET` for `protocol` from `from` to `to` as the next question.
    fn ask(&mut self, protocol: u8, from: Endpoint, to: Endpoint) -> io::Result<()> {
        let family = match (from.addr, to.addr) {
            (IpAddr::V4(_), IpAddr::V4(_)) => NetfilterProtoFamily::IPv4,
            _ => NetfilterProtoFamily::IPv6,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = self.sequence;
        let ids = match protocol {
            1 | 58 => {
                let ([id, kind, code], reply) = if protocol == 1 {
                    (CTA_PROTO_ICMP, ICMP_ECHO_REPLY)
                } else {
                    (CTA_PROTO_ICMPV6, ICMPV6_ECHO_REPLY)
                };
                vec![
                    ProtoTuple::Protocol(Protocol::from(protocol)),
                    ProtoTuple::Other(DefaultNla::new(id, from.port.to_be_bytes().to_vec())),
                    ProtoTuple::Other(DefaultNla::new(kind, vec![reply])),
                    ProtoTuple::Other(DefaultNla::new(code, vec![0])),
                ]
            }
            _ => vec![
                ProtoTuple::Protocol(Protocol::from(protocol)),
                ProtoTuple::SourcePort(from.port),
                ProtoTuple::DestinationPort(to.port),
            ],
        };
        let tuple = vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress(from.addr),
                IPTuple::DestinationAddress(to.addr),
            ]),
            Tuple::Proto(ids),
        ];
        let mut message = NetlinkMessage::new(
            header,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(family, 0, 0),
                ConntrackMessage::Get(vec![ConntrackAttribute::CtaTupleOrig(tuple)]),
            )),
        );
        message.finalize();
        // Sized by the message itself, which `serialize` requires.
        self.request.clear();
        self.request.resize(message.buffer_len(), 0);
        message.serialize(&mut self.request);
        self.socket.send(&self.request, 0)?;
        Ok(())
    }
}

impl NatTable for Conntrack {
    fn lookup(
        &mut self,
        protocol: u8,
        from: Endpoint,
        to: Endpoint,
    ) -> io::Result<Option<Tracked>> {
        if from.addr.is_ipv4() != to.addr.is_ipv4() {
            return Ok(None);
        }
        self.ask(protocol, from, to)?;
        for _ in 0..=STALE_ANSWERS_AT_MOST {
            let len = self.socket.recv(&mut &mut self.answer[..], 0)?;
            let bytes = self.answer.get(..len).unwrap_or_default();
            let answer = NetlinkMessage::<NetfilterMessage>::deserialize(bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if answer.header.sequence_number != self.sequence {
                continue;
            }
            return match answer.payload {
                NetlinkPayload::Error(e) => match e.code {
                    Some(code) if code.get() == -ENOENT => Ok(None),
                    Some(_) => Err(e.to_io()),
                    None => Ok(None),
                },
                NetlinkPayload::InnerMessage(message) => Ok(tracked(&message)),
                _ => Ok(None),
            };
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "connection tracking answered other questions only",
        ))
    }
}

/// The original and reply addresses of a connection the kernel described.
fn tracked(message: &NetfilterMessage) -> Option<Tracked> {
    let NetfilterMessageInner::Conntrack(
        ConntrackMessage::New(attributes) | ConntrackMessage::Get(attributes),
    ) = &message.inner
    else {
        return None;
    };
    let (mut original, mut reply) = (None, None);
    for attribute in attributes {
        match attribute {
            ConntrackAttribute::CtaTupleOrig(tuple) => original = addresses(tuple),
            ConntrackAttribute::CtaTupleReply(tuple) => reply = addresses(tuple),
            _ => {}
        }
    }
    Some(Tracked {
        original: original?,
        reply: reply?,
    })
}

/// A tuple's (source, destination) addresses.
fn addresses(tuple: &[Tuple]) -> Option<(IpAddr, IpAddr)> {
    let (mut src, mut dst) = (None, None);
    for part in tuple {
        if let Tuple::Ip(ips) = part {
            for ip in ips {
                match ip {
                    IPTuple::SourceAddress(a) => src = Some(*a),
                    IPTuple::DestinationAddress(a) => dst = Some(*a),
                    _ => {}
                }
            }
        }
    }
    Some((src?, dst?))
}
