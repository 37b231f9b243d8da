//! Reading the node's sockets: the thread's receive buffer, and the reads
//! that fill it several datagrams at a time.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg};

use super::{Incoming, MAX_DATAGRAM, SLOTS};

thread_local! {
    /// The receive buffer of the nodes a thread serves, of [`SLOTS`] slots
    /// that one read fills at once ([`recv_udp`]). Reused for every read: a
    /// fresh zeroed 64 KiB per datagram cost more than the read itself
    /// under a flood. One per thread, not per node: a node's reads never
    /// overlap another's on its thread, and on a long chain a buffer per
    /// node was a cold page and cold lines at every read (issue 17).
    static RX: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The thread's receive buffer, lent for one read and given back on drop.
pub(super) struct RxBuf(Vec<u8>);

impl RxBuf {
    pub(super) fn take() -> Self {
        let b = RX.try_with(|c| c.take()).unwrap_or_default();
        if b.len() < SLOTS * MAX_DATAGRAM {
            return Self(vec![0u8; SLOTS * MAX_DATAGRAM]);
        }
        Self(b)
    }
}

impl Drop for RxBuf {
    fn drop(&mut self) {
        let b = std::mem::take(&mut self.0);
        let _ = RX.try_with(|c| c.set(b));
    }
}

impl std::ops::Deref for RxBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for RxBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// What a read tells of one datagram besides its bytes: length, source,
/// destination, TTL.
type Header = (usize, SocketAddrV4, Ipv4Addr, Option<u8>);

/// Up to [`SLOTS`] datagrams in one `recvmmsg`, one per `MAX_DATAGRAM`
/// slot of `buf`, appended to `out` (no allocation of its own but the
/// payloads'); whether every slot was filled. Fewer means the queue
/// was empty after them (or that an error follows, which the next read
/// reports), so the caller clears the socket's readiness instead of reading
/// again for an EAGAIN: one system call a burst instead of two (a call
/// costs 1.4-2.2 µs in this nested VM; issue 17). Four slots take a
/// querier's Confirm and the Data behind it in one read that also tells
/// the queue is empty. A datagram that cannot be read is dropped, not the
/// others with it; the read fails only when none could be read.
pub(super) fn recv_udp(
    fd: RawFd,
    buf: &mut [u8],
    out: &mut VecDeque<Incoming>,
) -> io::Result<bool> {
    // Each slot holds the largest datagram: none is cut short.
    assert!(
        buf.len() >= SLOTS * MAX_DATAGRAM,
        "receive buffer too small"
    );
    let mut slots = buf.chunks_mut(MAX_DATAGRAM);
    let mut iovs: [[IoSliceMut<'_>; 1]; SLOTS] =
        std::array::from_fn(|_| [IoSliceMut::new(slots.next().expect("checked above"))]);
    let mut hdrs = MultiHeaders::<SockaddrIn>::preallocate(
        SLOTS,
        Some(nix::cmsg_space!(libc::c_int, libc::in_pktinfo)),
    );
    // Per slot, read before the buffers.
    let mut got: [Option<Header>; SLOTS] = [None; SLOTS];
    let mut read = 0;
    // A datagram that cannot be read is dropped, not the others with it.
    let mut failed = None;
    for (slot, msg) in
        recvmmsg(fd, &mut hdrs, iovs.iter_mut(), MsgFlags::empty(), None)?.enumerate()
    {
        read += 1;
        let one = (|| {
            let mut ttl = None;
            let mut dst = Ipv4Addr::UNSPECIFIED;
            for c in msg.cmsgs()? {
                match c {
                    ControlMessageOwned::Ipv4Ttl(t) => ttl = Some(t as u8),
                    ControlMessageOwned::Ipv4PacketInfo(pi) => {
                        dst = Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr))
                    }
                    _ => {}
                }
            }
            let src = msg
                .address
                .map(|a| SocketAddrV4::new(a.ip(), a.port()))
                .ok_or_else(|| io::Error::other("datagram without a source address"))?;
            Ok::<_, io::Error>((msg.bytes, src, dst, ttl))
        })();
        match one {
            Ok(m) => got[slot] = Some(m),
            Err(e) => failed = Some(e),
        }
    }
    if got.iter().all(Option::is_none) {
        return Err(failed.unwrap_or_else(|| io::Error::from(io::ErrorKind::WouldBlock)));
    }
    if let Some(e) = failed {
        tracing::warn!("GIST socket: a datagram of a read dropped: {e}");
    }
    let at_ns = crate::model::measure::now_ns();
    for (slot, (n, src, dst, ttl)) in got
        .into_iter()
        .enumerate()
        .filter_map(|(slot, m)| Some((slot, m?)))
    {
        let at = slot * MAX_DATAGRAM;
        out.push_back(Incoming {
            src,
            dst,
            ttl,
            intercepted: false,
            payload: buf[at..at + n].to_vec(),
            at_ns,
        });
    }
    Ok(read == SLOTS)
}

/// Up to two packets of the Router Alert socket in one `recvmmsg`, into
/// the first two slots of `buf`: their lengths. One back means the queue
/// was empty after it (see [`recv_udp`]).
pub(super) fn recv_raw(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
    debug_assert!(buf.len() >= 2 * MAX_DATAGRAM);
    let (a, b) = buf.split_at_mut(MAX_DATAGRAM);
    let mut iovs = [
        [IoSliceMut::new(a)],
        [IoSliceMut::new(&mut b[..MAX_DATAGRAM])],
    ];
    let mut hdrs = MultiHeaders::<SockaddrIn>::preallocate(2, None);
    let mut lens =
        recvmmsg(fd, &mut hdrs, iovs.iter_mut(), MsgFlags::empty(), None)?.map(|m| m.bytes);
    let first = lens
        .next()
        .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
    Ok((first, lens.next()))
}
