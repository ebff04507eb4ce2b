//! The few AF_PACKET socket calls `pnet` does not wrap: opening the socket ourselves (so we
//! keep its descriptor), enlarging its receive buffer, reading the kernel's
//! `PACKET_STATISTICS` drop counter and taking the socket's pending error. With `rx_ring.rs`,
//! the crate's only `unsafe` code: plain FFI calls whose arguments are owned locals of the
//! types the kernel expects.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The kernel's per-socket counters since the last read (reading resets them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelCounters {
    /// Packets that reached the socket, including the dropped ones.
    pub packets: u32,
    /// Packets dropped because the socket's buffer was full.
    pub drops: u32,
}

/// Opens a raw AF_PACKET socket that receives nothing until it is bound (to an interface,
/// for every protocol).
///
/// Protocol 0 rather than `ETH_P_ALL`: a socket opened for every protocol receives from
/// every interface at once, and the packets of other interfaces queued before the bind would
/// be read as the bound one's.
///
/// # Errors
/// The OS error (EPERM without CAP_NET_RAW).
pub fn open() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes three integers and returns a new descriptor or -1; no memory
    // is shared with the kernel.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is the new descriptor socket(2) just returned; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Asks for a receive buffer of `bytes`, past `net.core.rmem_max` when privileged
/// (`SO_RCVBUFFORCE`), else up to that limit; bursts are absorbed here instead of dropped.
///
/// # Errors
/// The OS error when neither option is accepted.
pub fn set_receive_buffer(fd: RawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = socklen::<libc::c_int>()?;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `value` is a live c_int and `len` its exact size; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&value).cast::<libc::c_void>(),
                len,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    Err(io::Error::last_os_error())
}

/// Reads and resets the socket's `PACKET_STATISTICS`.
///
/// # Errors
/// The OS error, e.g. when `fd` is not a packet socket.
pub fn read_counters(fd: RawFd) -> io::Result<KernelCounters> {
    let empty = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let stats = getsockopt(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS, empty)?;
    Ok(KernelCounters {
        packets: stats.tp_packets,
        drops: stats.tp_drops,
    })
}

/// Takes the socket's pending error (`SO_ERROR`, which reading clears), if any.
///
/// The kernel sets `ENETDOWN` on a packet socket when its interface goes down or away; `pnet`
/// sees only the poll event and leaves the error set, so every later poll would report it
/// again unless it is taken here.
///
/// # Errors
/// The OS error of `getsockopt`.
pub fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let value: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, 0)?;
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}

/// Reads option `name` at `level` into `value` (a plain C struct or integer the kernel fills).
fn getsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    mut value: T,
) -> io::Result<T> {
    let mut len = socklen::<T>()?;
    // SAFETY: `value` is a live, initialised `T` and `len` holds its size; the kernel writes
    // at most `len` bytes into it and stores the written length back into `len`. Callers
    // pass only the C types the option is defined with (plain data, valid for any bytes).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            std::ptr::from_mut(&mut value).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

fn socklen<T>() -> io::Result<libc::socklen_t> {
    libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::other("option size does not fit socklen_t"))
}

/// Attaches a classic BPF `program` to the socket (`SO_ATTACH_FILTER`): the kernel runs it on
/// each packet and hands over as many bytes as it returns.
///
/// # Errors
/// The OS error, e.g. when the kernel's checker refuses the program.
pub fn attach_filter(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let program_len = libc::c_ushort::try_from(program.len())
        .map_err(|_| io::Error::other("filter program too long"))?;
    let fprog = libc::sock_fprog {
        len: program_len,
        // The kernel copies the program and never writes through this pointer.
        filter: program.as_ptr().cast_mut(),
    };
    let len = socklen::<libc::sock_fprog>()?;
    // SAFETY: `fprog` is live and points at `program.len()` live instructions; the kernel
    // only reads both.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&fprog).cast::<libc::c_void>(),
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
