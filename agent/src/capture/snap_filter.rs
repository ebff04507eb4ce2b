//! A classic BPF program that tells the kernel how much of each packet to hand to the agent:
//! all of a packet up to [`SNAP_BYTES`], all of any DNS packet, and the first [`SNAP_BYTES`]
//! of anything else larger.
//!
//! Why: with segmentation offloads a packet on the socket can be a 64 KiB super-packet of a
//! bulk transfer. The kernel copies what it hands over into the capture ring, so whole
//! super-packets fill the ring a few hundred at a time (dropping packets a host's own bulk
//! transfer never should) and cost a 64 KiB copy each. The pipeline reads only headers, byte
//! counts from the IP header, the first payload bytes (application protocol, a TLS
//! ClientHello's server name, which fits well inside the snap) and DNS messages (kept whole,
//! also over TCP, whose segments the DNS tracker reassembles).
//!
//! Ethernet frames and raw IP packets (tun, WireGuard: the IP header first, its version nibble
//! telling which) are judged: IPv4 (ports found past its header length; a later fragment,
//! which has no ports, is kept whole) and IPv6 with TCP or UDP as its first next header.
//! Anything else larger than the snap (VLAN tags in the frame, IPv6 extension headers, other
//! protocols) is kept whole: the filter only ever saves copying, never loses what the pipeline
//! reads.

use libc::{
    BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K,
    BPF_LD, BPF_LDX, BPF_LEN, BPF_MSH, BPF_RET, BPF_W, sock_filter,
};

/// Bytes kept of a large packet that is not DNS.
pub const SNAP_BYTES: u32 = 4096;

/// Returned to keep a whole packet (larger than any packet: the kernel keeps its length).
const WHOLE: u32 = 0x4_0000;

const DNS_PORT: u32 = 53;

fn op(code: u32, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter {
        // Every classic BPF opcode fits 16 bits.
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The program for Ethernet interfaces; see the module docs.
pub fn ethernet() -> Vec<sock_filter> {
    program(Link::Ethernet)
}

/// The program for links whose packets begin with the IP header (tun, WireGuard).
pub fn raw_ip() -> Vec<sock_filter> {
    program(Link::RawIp)
}

/// How a link's packets begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// An Ethernet header: the ethertype says IPv4 or IPv6, the IP header starts at 14.
    Ethernet,
    /// The IP header itself: its version nibble says which.
    RawIp,
}

/// The program for `link`. Both share one layout after a head that leaves in A what tells
/// IPv4 from IPv6, so every jump but the first is the same. Jump offsets count the
/// instructions skipped, as classic BPF does.
fn program(link: Link) -> Vec<sock_filter> {
    const TCP: u32 = 6;
    const UDP: u32 = 17;
    let ldh = |at: u32| op(BPF_LD | BPF_H | BPF_ABS, 0, 0, at);
    let ldb = |at: u32| op(BPF_LD | BPF_B | BPF_ABS, 0, 0, at);
    let jeq = |k: u32, jt: u8, jf: u8| op(BPF_JMP | BPF_JEQ | BPF_K, jt, jf, k);
    let (ip, head, v4, v6) = match link {
        Link::Ethernet => (14, vec![ldh(12)], 0x0800, 0x86dd),
        Link::RawIp => (
            0,
            vec![ldb(0), op(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0xf0)],
            0x40,
            0x60,
        ),
    };
    let mut program = vec![
        op(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0), // A = packet length
        op(BPF_JMP | BPF_JGT | BPF_K, 0, 0, SNAP_BYTES), // small -> whole (set below)
    ];
    program.extend(head);
    // Numbered from the IPv4 test; `snap` is 20, `whole` 21.
    program.extend([
        jeq(v4, 0, 10),                                // 0: not IPv4 -> 11
        ldb(ip + 9),                                   // 1: IPv4 protocol
        jeq(TCP, 1, 0),                                // 2: TCP -> 4
        jeq(UDP, 0, 16),                               // 3: neither -> whole
        ldh(ip + 6),                                   // 4: flags and fragment offset
        op(BPF_JMP | BPF_JSET | BPF_K, 14, 0, 0x1fff), // 5: later fragment -> whole
        op(BPF_LDX | BPF_B | BPF_MSH, 0, 0, ip),       // 6: X = IPv4 header length
        op(BPF_LD | BPF_H | BPF_IND, 0, 0, ip),        // 7: source port
        jeq(DNS_PORT, 11, 0),                          // 8: DNS -> whole
        op(BPF_LD | BPF_H | BPF_IND, 0, 0, ip + 2),    // 9: destination port
        jeq(DNS_PORT, 9, 8),                           // 10: DNS -> whole, else snap
        jeq(v6, 0, 8),                                 // 11: not IPv6 -> whole
        ldb(ip + 6),                                   // 12: IPv6 next header
        jeq(TCP, 1, 0),                                // 13: TCP -> 15
        jeq(UDP, 0, 5),                                // 14: neither -> whole
        ldh(ip + 40),                                  // 15: source port
        jeq(DNS_PORT, 3, 0),                           // 16: DNS -> whole
        ldh(ip + 42),                                  // 17: destination port
        jeq(DNS_PORT, 1, 0),                           // 18: DNS -> whole
        op(BPF_RET | BPF_K, 0, 0, SNAP_BYTES),         // 19: snap
        op(BPF_RET | BPF_K, 0, 0, WHOLE),              // 20: whole
    ]);
    // From instruction 1 to the last; the program is a few dozen instructions.
    program[1].jf = u8::try_from(program.len() - 3).unwrap_or(u8::MAX);
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `program` on `packet` the way the kernel does for the instructions it uses; an
    /// out-of-bounds load drops the packet (0), as in the kernel.
    fn run(program: &[sock_filter], packet: &[u8]) -> u32 {
        let byte = |at: usize| packet.get(at).map(|&b| u32::from(b));
        let half = |at: usize| Some((byte(at)? << 8) | byte(at + 1)?);
        let (mut a, mut x, mut pc) = (0_u32, 0_u32, 0_usize);
        loop {
            let ins = program[pc];
            let code = u32::from(ins.code);
            let k = ins.k as usize;
            pc += 1;
            let loaded = match code {
                c if c == BPF_LD | BPF_W | BPF_LEN => Some(packet.len() as u32),
                c if c == BPF_LD | BPF_H | BPF_ABS => half(k),
                c if c == BPF_LD | BPF_B | BPF_ABS => byte(k),
                c if c == BPF_LD | BPF_H | BPF_IND => half(k + x as usize),
                c if c == BPF_LDX | BPF_B | BPF_MSH => {
                    x = (byte(k).unwrap_or(0) & 0xf) * 4;
                    continue;
                }
                c if c == BPF_RET | BPF_K => return ins.k,
                c if c == BPF_ALU | BPF_AND | BPF_K => Some(a & ins.k),
                c if c & 0x07 == BPF_JMP => {
                    let taken = match code & 0xf0 {
                        op if op == BPF_JGT => a > ins.k,
                        op if op == BPF_JEQ => a == ins.k,
                        op if op == BPF_JSET => a & ins.k != 0,
                        op => panic!("jump {op:#x} not modelled"),
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                    continue;
                }
                c => panic!("instruction {c:#x} not modelled"),
            };
            match loaded {
                Some(v) => a = v,
                None => return 0,
            }
        }
    }

    /// An Ethernet frame of `len` bytes: IPv4 (header of `ihl` words, fragment offset
    /// `fragment`) or IPv6 carrying `protocol` between ports 40000 and `port`.
    fn frame(ipv6: bool, ihl: u8, fragment: u16, protocol: u8, port: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0_u8; len];
        let l4 = if ipv6 {
            f[12..14].copy_from_slice(&0x86dd_u16.to_be_bytes());
            f[14] = 0x60;
            f[20] = protocol;
            54
        } else {
            f[12..14].copy_from_slice(&0x0800_u16.to_be_bytes());
            f[14] = 0x40 | ihl;
            f[20..22].copy_from_slice(&fragment.to_be_bytes());
            f[23] = protocol;
            14 + usize::from(ihl) * 4
        };
        f[l4..l4 + 2].copy_from_slice(&40000_u16.to_be_bytes());
        f[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
        f
    }

    #[test]
    fn large_packets_are_snapped_unless_dns_or_not_understood() {
        let p = ethernet();
        let big = 9000;
        let snap = SNAP_BYTES;
        let cases = [
            ("small TCP", frame(false, 5, 0, 6, 443, 1500), WHOLE),
            ("large TCP", frame(false, 5, 0, 6, 443, big), snap),
            ("large UDP", frame(false, 5, 0, 17, 4789, big), snap),
            ("TCP DNS", frame(false, 5, 0, 6, 53, big), WHOLE),
            ("UDP DNS", frame(false, 5, 0, 17, 53, big), WHOLE),
            ("options, DNS", frame(false, 8, 0, 17, 53, big), WHOLE),
            ("options, other", frame(false, 8, 0, 17, 123, big), snap),
            ("first fragment", frame(false, 5, 0x2000, 17, 80, big), snap),
            (
                "later fragment",
                frame(false, 5, 0x2010, 17, 80, big),
                WHOLE,
            ),
            ("IPv4 ESP", frame(false, 5, 0, 50, 0, big), WHOLE),
            ("IPv6 TCP", frame(true, 0, 0, 6, 443, big), snap),
            ("IPv6 UDP DNS", frame(true, 0, 0, 17, 53, big), WHOLE),
            ("IPv6 TCP DNS", frame(true, 0, 0, 6, 53, big), WHOLE),
            ("IPv6 hop-by-hop", frame(true, 0, 0, 0, 443, big), WHOLE),
        ];
        let raw = raw_ip();
        for (what, packet, kept) in cases {
            assert_eq!(run(&p, &packet), kept, "{what}");
            // The same packet on a raw IP link: without its Ethernet header.
            assert_eq!(run(&raw, &packet[14..]), kept, "{what}, raw IP");
        }
        let mut not_ip = frame(false, 5, 0, 6, 443, big);
        not_ip[14] = 0x25;
        assert_eq!(run(&raw, &not_ip[14..]), WHOLE, "raw, not IP");
        let mut vlan = frame(false, 5, 0, 6, 443, big);
        vlan[12..14].copy_from_slice(&0x8100_u16.to_be_bytes());
        assert_eq!(run(&p, &vlan), WHOLE, "VLAN tagged");
        let mut source_dns = frame(true, 0, 0, 17, 443, big);
        source_dns[54..56].copy_from_slice(&53_u16.to_be_bytes());
        assert_eq!(run(&p, &source_dns), WHOLE, "answer from port 53");
    }

    /// Every jump lands inside the program and every path ends in a return: what the kernel
    /// checks when the filter is attached, checked here without one.
    #[test]
    fn every_jump_lands_inside_the_program_and_paths_end_in_returns() {
        for program in [ethernet(), raw_ip()] {
            jumps_land_inside(&program);
        }
    }

    fn jumps_land_inside(program: &[sock_filter]) {
        let last = program.len() - 1;
        for (i, ins) in program.iter().enumerate() {
            let class = u32::from(ins.code) & 0x07;
            if class == BPF_JMP {
                assert!(i + 1 + usize::from(ins.jt) <= last, "{i}: jt");
                assert!(i + 1 + usize::from(ins.jf) <= last, "{i}: jf");
            }
        }
        let returns: Vec<_> = program
            .iter()
            .filter(|i| u32::from(i.code) == BPF_RET | BPF_K)
            .map(|i| i.k)
            .collect();
        assert_eq!(returns, [SNAP_BYTES, WHOLE]);
        assert_eq!(u32::from(program[last].code), BPF_RET | BPF_K);
    }
}
