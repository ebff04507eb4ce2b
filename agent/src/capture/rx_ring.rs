//! The kernel's `TPACKET_V3` receive ring on a packet socket (`PACKET_RX_RING`,
//! Documentation/networking/packet_mmap.rst): the kernel writes packets into blocks of memory
//! mapped into the agent and hands over a whole block at a time, so reading a packet costs no
//! system call and no copy. Reading one packet per `poll` + `recvfrom` (what `pnet`'s channel
//! does) cost about 2.4 µs of the capture thread's CPU per packet on a veth burst, more than
//! everything the pipeline then does with it.
//!
//! No crate fits: `af_packet` is GPL-3.0 and `netring` brings a capture framework of its own.
//! The `unsafe` here is the mapping and the reads of the kernel's block and packet headers;
//! every offset the kernel writes is checked against the block before a slice is made.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use libc::{tpacket_block_desc, tpacket3_hdr};

/// Largest block: a block must hold the largest frame (64 KiB with GRO) with its header.
const MAX_BLOCK_BYTES: usize = 256 * 1024;
/// Smallest block: one page is all the kernel accepts below this.
const MIN_BLOCK_BYTES: usize = 4096;
/// `tp_frame_size`: only checked by the kernel for V3 (frames are packed as they come).
const FRAME_BYTES: usize = 2048;
/// How long the kernel keeps a block that is not full before handing it over, so packets on a
/// quiet link are read promptly (ms).
const RETIRE_AFTER_MS: u32 = 20;
/// Offset of `block_status` in a block descriptor (after `version` and `offset_to_priv`).
const BLOCK_STATUS_OFFSET: usize = 8;

/// One packet in the ring, borrowed until the next read.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The captured bytes, from the link-layer header on.
    pub data: &'a [u8],
    /// The packet's length before any truncation to the block.
    pub len: u32,
    /// When the kernel received it: seconds and nanoseconds since the Unix epoch.
    pub sec: u32,
    /// Nanoseconds within `sec`.
    pub nsec: u32,
    /// Whether the host sent it out through the interface (`PACKET_OUTGOING`); `None` when
    /// the kernel's address record does not fit before the packet.
    pub outgoing: Option<bool>,
}

/// The block being read: its index and where its next packet is.
#[derive(Debug, Clone, Copy)]
struct Held {
    block: usize,
    /// Packets of the block not read yet.
    left: u32,
    /// Offset of the next packet's header within the block.
    next: usize,
}

/// A mapped `TPACKET_V3` ring, bound to one interface; see the module docs.
#[derive(Debug)]
pub struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    block_bytes: usize,
    blocks: usize,
    /// The block to look at next when none is held.
    current: usize,
    held: Option<Held>,
    /// Packets skipped because their block's offsets did not fit (never seen from a sane
    /// kernel; counted rather than trusted).
    skipped: u64,
}

// SAFETY: the mapping belongs to this value alone (nothing else holds the pointer), so moving
// it to another thread moves the only user; the kernel's side is synchronised through the
// block status words.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Sets up a ring of about `bytes` on packet socket `fd` (not yet bound) and binds it to
    /// interface `index`.
    ///
    /// # Errors
    /// The OS error of the first call that fails: an old kernel, or no memory for the ring.
    pub fn new(fd: OwnedFd, index: u32, bytes: usize) -> io::Result<Self> {
        let (block_bytes, blocks) = geometry(bytes);
        let raw = fd.as_raw_fd();
        let version = libc::c_int::try_from(libc::tpacket_versions::TPACKET_V3 as u32)
            .map_err(|_| io::Error::other("TPACKET_V3 does not fit c_int"))?;
        setsockopt(raw, libc::PACKET_VERSION, &version)?;
        let request = libc::tpacket_req3 {
            tp_block_size: to_uint(block_bytes)?,
            tp_block_nr: to_uint(blocks)?,
            tp_frame_size: to_uint(FRAME_BYTES)?,
            tp_frame_nr: to_uint(block_bytes / FRAME_BYTES * blocks)?,
            tp_retire_blk_tov: RETIRE_AFTER_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(raw, libc::PACKET_RX_RING, &request)?;
        let map_len = block_bytes * blocks;
        // SAFETY: a fresh shared mapping of the ring the kernel just allocated for `raw`, of
        // exactly its size; the kernel checks the length and offset.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // From here Drop unmaps, whatever fails next.
        let ring = Self {
            fd,
            map: map.cast::<u8>(),
            map_len,
            block_bytes,
            blocks,
            current: 0,
            held: None,
            skipped: 0,
        };
        bind(raw, index)?;
        Ok(ring)
    }

    /// The socket, for its counters and pending error.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Packets skipped so far because the kernel's offsets for them did not fit their block.
    pub fn skipped_packets(&self) -> u64 {
        self.skipped
    }

    /// Waits up to `timeout` until a packet can be [taken](RxRing::take); false when none
    /// came. Hands the block read to the end back to the kernel first.
    ///
    /// # Errors
    /// An error naming the event when `poll` reports an error or hang-up; the socket's
    /// pending error (`ENETDOWN`: the link went down or the interface away) is left for the
    /// caller to take. Else the OS error of `poll`.
    pub fn ready(&mut self, timeout: Duration) -> io::Result<bool> {
        if self.has_packet() || self.claim() {
            return Ok(true);
        }
        let mut pollfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one live pollfd and its count.
        let rc = unsafe { libc::poll(&raw mut pollfd, 1, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            };
        }
        // An error event again at once would spin the caller: each is handed up.
        if pollfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(io::Error::other(format!(
                "poll event {:#x} on the packet socket",
                pollfd.revents
            )));
        }
        Ok(self.claim())
    }

    /// Whether the held block has a packet left that [`RxRing::take`] can return; a block
    /// whose next packet cannot be found is skipped (its packets counted).
    fn has_packet(&mut self) -> bool {
        let Some(held) = self.held.filter(|h| h.left > 0) else {
            return false;
        };
        if self.locate(held).is_some() {
            return true;
        }
        self.skipped = self.skipped.saturating_add(u64::from(held.left));
        self.held = Some(Held { left: 0, ..held });
        false
    }

    /// The next packet of the held block; always one after [`RxRing::ready`] said true.
    pub fn take(&mut self) -> Option<Frame<'_>> {
        let mut held = self.held.filter(|h| h.left > 0)?;
        // `ready` found this packet, so `locate` finds it again.
        let (start, len, header) = self.locate(held)?;
        let outgoing = self.outgoing(held, &header);
        held.left -= 1;
        held.next = held
            .next
            .saturating_add(usize::try_from(header.tp_next_offset).unwrap_or(usize::MAX));
        self.held = Some(held);
        // SAFETY: `start..start + len` lies inside the held block (checked by `locate`),
        // which the kernel does not write while user space owns it; the slice borrows `self`
        // mutably, so the block cannot be handed back while it lives.
        let data = unsafe { std::slice::from_raw_parts(self.map.add(start), len) };
        Some(Frame {
            data,
            len: header.tp_len,
            sec: header.tp_sec,
            nsec: header.tp_nsec,
            outgoing,
        })
    }

    /// Whether the packet `held` points at (its header already read) went out through the
    /// interface: `sll_pkttype` of the `sockaddr_ll` the kernel writes after the aligned
    /// header, read only when that record ends before the packet's bytes begin.
    fn outgoing(&self, held: Held, header: &tpacket3_hdr) -> Option<bool> {
        const SLL_AT: usize = std::mem::size_of::<tpacket3_hdr>().next_multiple_of(16);
        const PKTTYPE_AT: usize = SLL_AT + std::mem::offset_of!(libc::sockaddr_ll, sll_pkttype);
        if PKTTYPE_AT >= usize::from(header.tp_mac) {
            return None;
        }
        let at = held.block * self.block_bytes + held.next + PKTTYPE_AT;
        // SAFETY: `locate` checked that the packet's bytes, which start `tp_mac` after the
        // header (past this byte), lie inside the held block, which user space owns.
        let pkttype = unsafe { self.map.add(at).read() };
        Some(pkttype == libc::PACKET_OUTGOING)
    }

    /// The packet `held` points at: where its bytes start in the mapping, how many there are,
    /// and its header; `None` when the kernel's offsets do not fit in the block.
    fn locate(&self, held: Held) -> Option<(usize, usize, tpacket3_hdr)> {
        let fits = |offset: usize, len: usize| {
            offset
                .checked_add(len)
                .is_some_and(|end| end <= self.block_bytes)
        };
        if !fits(held.next, std::mem::size_of::<tpacket3_hdr>()) {
            return None;
        }
        let base = held.block * self.block_bytes;
        // SAFETY: the header lies inside the held block (checked above), which the kernel
        // does not write while user space owns it; read unaligned as no alignment is promised.
        let header = unsafe {
            self.map
                .add(base + held.next)
                .cast::<tpacket3_hdr>()
                .read_unaligned()
        };
        let start = held.next.checked_add(usize::from(header.tp_mac))?;
        let len = usize::try_from(header.tp_snaplen).ok()?;
        fits(start, len).then_some((base + start, len, header))
    }

    /// Gives back the held block (if any) and takes the next one if the kernel has handed it
    /// over; says whether a packet is now ready.
    fn claim(&mut self) -> bool {
        loop {
            if let Some(held) = self.held.take() {
                self.status(held.block)
                    .store(libc::TP_STATUS_KERNEL, Ordering::Release);
                self.current = (held.block + 1) % self.blocks;
            }
            // Acquire: the packets the kernel wrote before setting the status are visible.
            if self.status(self.current).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                return false;
            }
            // SAFETY: the block descriptor is at the start of the block, inside the mapping,
            // and the block is now owned by user space.
            let desc = unsafe {
                self.map
                    .add(self.current * self.block_bytes)
                    .cast::<tpacket_block_desc>()
                    .read_unaligned()
            };
            // SAFETY: `bh1` is the union's only member, the header of every V3 block.
            let header = unsafe { desc.hdr.bh1 };
            self.held = Some(Held {
                block: self.current,
                left: header.num_pkts,
                next: usize::try_from(header.offset_to_first_pkt).unwrap_or(usize::MAX),
            });
            // A block handed over empty is given back at once (the loop's next turn).
            if self.has_packet() {
                return true;
            }
        }
    }

    /// The status word of block `block`, shared with the kernel.
    fn status(&self, block: usize) -> &AtomicU32 {
        // SAFETY: `block < self.blocks`, so the word is inside the mapping; block starts are
        // page-aligned and the word is at offset 8, so it is aligned for an AtomicU32; the
        // kernel accesses it only as a 32-bit word.
        unsafe {
            AtomicU32::from_ptr(
                self.map
                    .add(block * self.block_bytes + BLOCK_STATUS_OFFSET)
                    .cast::<u32>(),
            )
        }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of its length; nothing borrows it any more.
        unsafe {
            libc::munmap(self.map.cast::<libc::c_void>(), self.map_len);
        }
    }
}

/// Block size and count for a ring of about `bytes`: blocks of up to 256 KiB (room for a
/// 64 KiB frame), a power of two of pages, and at least two of them.
fn geometry(bytes: usize) -> (usize, usize) {
    let per_block = (bytes / 2).clamp(MIN_BLOCK_BYTES, MAX_BLOCK_BYTES);
    // Round down to a power of two: the kernel allocates each block as 2^n pages.
    let block = 1_usize << (usize::BITS - 1 - per_block.leading_zeros());
    (block, (bytes / block).max(2))
}

fn to_uint(n: usize) -> io::Result<libc::c_uint> {
    libc::c_uint::try_from(n).map_err(|_| io::Error::other("ring size does not fit c_uint"))
}

/// Sets a `SOL_PACKET` option to `value`.
fn setsockopt<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::other("option size does not fit socklen_t"))?;
    // SAFETY: `value` is a live `T` of `len` bytes; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            name,
            std::ptr::from_ref(value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Binds packet socket `fd` to interface `index` for every protocol.
fn bind(fd: RawFd, index: u32) -> io::Result<()> {
    let protocol = u16::try_from(libc::ETH_P_ALL)
        .map_err(|_| io::Error::other("ETH_P_ALL does not fit 16 bits"))?
        .to_be();
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::sa_family_t::try_from(libc::AF_PACKET)
        .map_err(|_| io::Error::other("AF_PACKET does not fit sa_family_t"))?;
    address.sll_protocol = protocol;
    address.sll_ifindex =
        libc::c_int::try_from(index).map_err(|_| io::Error::other("interface index too large"))?;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>())
        .map_err(|_| io::Error::other("sockaddr_ll does not fit socklen_t"))?;
    // SAFETY: `address` is a live sockaddr_ll of `len` bytes; the kernel only reads it.
    let rc = unsafe {
        libc::bind(
            fd,
            std::ptr::from_ref(&address).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_gives_power_of_two_blocks_that_hold_a_large_frame() {
        assert_eq!(geometry(8 << 20), (256 * 1024, 32));
        assert_eq!(geometry(256 * 1024), (128 * 1024, 2));
        assert_eq!(geometry(0), (4096, 2));
        assert_eq!(geometry(3 << 20), (256 * 1024, 12));
        let (block, _) = geometry(300 * 1024);
        assert!(block.is_power_of_two() && block >= 64 * 1024 + 4096);
    }
}
