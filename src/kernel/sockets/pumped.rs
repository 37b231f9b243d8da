//! The node threads' way of reading a node's sockets (`GistSockets::open_pumped`):
//! the thread's pump polls them in one epoll of its own and reads the ready
//! ones by number; nothing here registers with tokio's reactor.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::rx::{RxBuf, recv_raw, recv_udp};
use super::{GistSockets, Incoming, PASSES, neighbour};

impl GistSockets {
    /// [`Self::poll_udp`] on a socket of [`Self::open_pumped`]: reads
    /// until a datagram, `Pending` when the socket has none (its owner's
    /// poll says when it has).
    pub(super) fn read_udp(&self, fd: RawFd, peer: Option<Ipv4Addr>) -> Poll<io::Result<Incoming>> {
        self.unfinished.store(false, Ordering::Relaxed);
        for _ in 0..PASSES {
            let mut queued = self.queued();
            match recv_udp(fd, &mut RxBuf::take(), &mut queued) {
                Ok(full) => {
                    self.drained.store(!full, Ordering::Relaxed);
                    let first = queued.pop_front().expect("recv_udp queues one at least");
                    return Poll::Ready(Ok(first));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => match peer {
                    Some(to) if neighbour::is_icmp_report(&e) => {
                        tracing::debug!("GIST UDP socket to neighbour {to}: {e} (an ICMP error)");
                    }
                    _ => return Poll::Ready(Err(e)),
                },
            }
        }
        // Still readable: the owner's poll reports it again.
        self.unfinished.store(true, Ordering::Relaxed);
        Poll::Pending
    }

    /// [`Self::poll_ra`] on the socket of [`Self::open_pumped`].
    pub(super) fn read_ra(
        &self,
        fd: RawFd,
        keep: &impl Fn(&[u8]) -> bool,
    ) -> Poll<io::Result<Incoming>> {
        self.unfinished.store(false, Ordering::Relaxed);
        for _ in 0..PASSES {
            let mut buf = RxBuf::take();
            let (n1, n2) = match recv_raw(fd, &mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            };
            self.drained.store(n2.is_none(), Ordering::Relaxed);
            if let Some(first) = self.ours(&buf, n1, n2, keep) {
                return Poll::Ready(Ok(first));
            }
        }
        self.unfinished.store(true, Ordering::Relaxed);
        Poll::Pending
    }

    /// Whether a read left datagrams queued that no readiness will report.
    pub fn has_queued(&self) -> bool {
        !self.queued().is_empty()
    }

    /// Whether the socket [`Self::poll_recv_from`] last read from was left
    /// readable after a poll's bound of reads that gave this node nothing
    /// (alerts for others forwarded on, ICMP reports): its owner should come
    /// back after the thread's other work, as after a full burst.
    pub fn unfinished(&self) -> bool {
        self.unfinished.load(Ordering::Relaxed)
    }

    /// Whether the socket [`Self::poll_recv_from`] last read from had
    /// nothing more after that read (fewer datagrams came back than asked
    /// for): once what it queued is handed out, another read would only
    /// say EAGAIN.
    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// The receiving sockets in the order [`Self::poll_recv_from`] numbers
    /// them: the unconnected one, the neighbours', the Router Alert one.
    pub fn rx_fds(&self) -> Vec<RawFd> {
        std::iter::once(self.udp.get_ref().as_raw_fd())
            .chain(self.neighbours.iter().map(|n| n.sock.get_ref().as_raw_fd()))
            .chain(std::iter::once(self.ra.get_ref().as_raw_fd()))
            .collect()
    }

    /// The next datagram of receiving socket `k` ([`Self::rx_fds`]), after
    /// those an earlier read left queued; `Pending` once it has none. For
    /// the sockets of [`Self::open_pumped`], whose owner knows which is
    /// readable (on a socket tokio's reactor serves it would register no
    /// waker).
    pub fn poll_recv_from(
        &self,
        k: usize,
        keep: &impl Fn(&[u8]) -> bool,
    ) -> Poll<io::Result<Incoming>> {
        if let Some(inc) = self.queued().pop_front() {
            return Poll::Ready(Ok(inc));
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let n = self.neighbours.len() + 2;
        match k {
            0 => self.poll_udp(&mut cx, &self.udp, None),
            k if k == n - 1 => self.poll_ra(&mut cx, keep),
            k if k < n => {
                let nb = &self.neighbours[k - 1];
                self.poll_udp(&mut cx, &nb.sock, Some(nb.addr))
            }
            _ => Poll::Pending,
        }
    }
}
