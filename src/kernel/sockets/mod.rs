//! GIST's datagram transport on a substrate node (RFC 5971 §5.3 and §5.4):
//! one UDP socket on port 270 for D-mode messages and for sending Q-mode
//! Queries, one more on port 270 connected to each link neighbour for the
//! D-mode messages to and from it (`neighbour`), and one raw socket that
//! intercepts Q-mode Queries passing through this node.
//!
//! Path-coupled discovery works the way the RFC intends: a Query is sent to
//! the *flow's* destination address with the IP Router Alert option; the
//! kernel of every forwarding node that has a raw socket with
//! `IP_ROUTER_ALERT` hands such datagrams to that socket instead of
//! forwarding them, and a router with no such socket (one that runs no NSIS
//! daemon) forwards them unchanged. Datagrams the node intercepts but does not
//! want (another NSLP, or not GIST at all) are sent on unchanged through a
//! raw `IPPROTO_RAW` socket, so the node stays transparent to them.
//!
//! All sockets must be opened on the node's thread, inside its namespace:
//! a socket keeps the namespace it was created in.

mod fake;
mod neighbour;
mod pumped;
mod rx;
pub mod tcp;

pub use fake::{FakeSockets, Sent};
use rx::{RxBuf, recv_raw, recv_udp};

use std::collections::VecDeque;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, bind, sendto,
    setsockopt, socket, sockopt,
};
use thiserror::Error;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::kernel::bpf::{attach, ins};
use crate::kernel::tc::SIGNALING_PRIORITY;
/// GIST's well-known port (RFC 5971 §9; NSIS-ka uses it for Q-mode and D-mode).
use crate::model::ports::GIST_PORT;
/// IPv4 Router Alert option, value 0 (RFC 2113): type 0x94, length 4.
pub const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];
const IP_ROUTER_ALERT: libc::c_int = 5;
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams one read of the UDP socket takes at most.
const SLOTS: usize = 4;
/// Receive buffer asked for each socket: a junk flood of ~80 k datagrams/s
/// overruns the default (~200 KiB) between two reads of a busy node.
pub const RCVBUF_BYTES: usize = 4 << 20;

/// A datagram received by the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// IP source and UDP source port.
    pub src: SocketAddrV4,
    /// IP destination address.
    pub dst: Ipv4Addr,
    /// IP TTL as received, when the kernel reported it.
    pub ttl: Option<u8>,
    /// True if taken off the forwarding path by the Router Alert socket.
    pub intercepted: bool,
    /// UDP payload (the GIST magic number and PDU).
    pub payload: Vec<u8>,
    /// `CLOCK_MONOTONIC` ns right after the kernel handed it over.
    pub at_ns: u64,
}

/// How a datagram leaves the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// D-mode: addressed to the peer, no Router Alert.
    Addressed,
    /// Q-mode Query: towards the flow's destination with the Router Alert
    /// option, for the next GIST node on the path to intercept.
    RouterAlert,
}

/// Why a GIST socket failed; each names the address or option at fault.
#[derive(Debug, Error)]
pub enum SocketError {
    #[error(
        "cannot open the GIST sockets ({what}): {source}; is the node in its namespace, and root?"
    )]
    Open {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot send {len} bytes to {dst} ({mode:?}): {source}")]
    Send {
        dst: SocketAddrV4,
        mode: SendMode,
        len: usize,
        #[source]
        source: io::Error,
    },
    #[error("receiving a GIST datagram failed: {source}")]
    Recv {
        #[source]
        source: io::Error,
    },
}

/// GIST's datagram transport as the node needs it: [`GistSockets`] on the
/// kernel, [`FakeSockets`] in memory for tests.
pub trait GistTransport {
    /// Sends one datagram from port 270.
    fn send(&self, d: &Datagram<'_>) -> Result<(), SocketError>;
    /// The next datagram for this node, addressed to it or intercepted;
    /// intercepted ones `keep` refuses are forwarded unchanged.
    fn recv(
        &self,
        keep: impl Fn(&[u8]) -> bool,
    ) -> impl Future<Output = Result<Incoming, SocketError>>;
}

/// One datagram to send: `payload` to `dst` with IP TTL `ttl`.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub dst: SocketAddrV4,
    pub payload: &'a [u8],
    pub ttl: u8,
    pub mode: SendMode,
}

impl Datagram<'_> {
    /// The error naming this datagram when its send failed with `source`.
    pub fn failed(&self, source: io::Error) -> SocketError {
        SocketError::Send {
            dst: self.dst,
            mode: self.mode,
            len: self.payload.len(),
            source,
        }
    }
}

/// The sockets of one node.
pub struct GistSockets {
    udp: RxFd,
    /// A socket connected to each link neighbour (`neighbour`).
    neighbours: Vec<neighbour::Neighbour>,
    ra: RxFd,
    raw_out: OwnedFd,
    local: Vec<Ipv4Addr>,
    /// The other datagrams of the last read, handed out first.
    next: Mutex<VecDeque<Incoming>>,
    /// The socket [`Self::poll_recv`] looks at first: the one after the
    /// socket the last read served, so a flooded socket does not keep the
    /// others unread (a node's turn rotates the same way, `runtime`).
    turn: AtomicUsize,
    /// The last read of a socket of `open_pumped` left it empty ([`Self::drained`]).
    drained: std::sync::atomic::AtomicBool,
    /// The last read of a socket of `open_pumped` gave up after [`PASSES`]
    /// reads of nothing for this node, the socket still readable
    /// ([`Self::unfinished`]).
    unfinished: std::sync::atomic::AtomicBool,
}

/// Errno to io::Error, naming what failed.
fn os(what: &str) -> impl FnOnce(nix::errno::Errno) -> io::Error + '_ {
    move |e| io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn new_socket(ty: SockType, proto: SockProtocol, what: &str) -> io::Result<OwnedFd> {
    socket(
        AddressFamily::Inet,
        ty,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        proto,
    )
    .map_err(os(what))
}

fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd keeps its descriptor open and unchanged for as long
    // as the AsyncFd owns it.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Who learns that a receiving socket is readable: tokio's reactor (a
/// waker per socket), or a poll of the caller's ([`GistSockets::open_pumped`]:
/// the node thread's pump keeps one epoll for all its nodes' sockets, and
/// says which is ready).
pub(super) enum RxFd {
    Tokio(AsyncFd<OwnedFd>),
    Pumped(OwnedFd),
}

impl RxFd {
    fn new(fd: OwnedFd, pumped: bool) -> io::Result<Self> {
        Ok(if pumped {
            Self::Pumped(fd)
        } else {
            Self::Tokio(register(fd)?)
        })
    }

    pub(super) fn get_ref(&self) -> &OwnedFd {
        match self {
            Self::Tokio(a) => a.get_ref(),
            Self::Pumped(f) => f,
        }
    }
}

/// A UDP socket as GIST's port 270 needs it, unbound (the node's one on
/// every address, and each neighbour's): a large receive buffer, port 270
/// shared between them (`SO_REUSEADDR`), each datagram's TTL and
/// destination address read, and signaling's priority for the filters.
fn gist_udp_socket(what: &str) -> io::Result<OwnedFd> {
    let fd = new_socket(SockType::Datagram, SockProtocol::Udp, what)?;
    enlarge_rcvbuf(&fd, what);
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(os("SO_REUSEADDR"))?;
    setsockopt(&fd, sockopt::Ipv4RecvTtl, &true).map_err(os("IP_RECVTTL"))?;
    setsockopt(&fd, sockopt::Ipv4PacketInfo, &true).map_err(os("IP_PKTINFO"))?;
    // Refused without CAP_NET_ADMIN or CAP_NET_RAW: the filters classify it.
    if let Err(e) = setsockopt(&fd, sockopt::Priority, &SIGNALING_PRIORITY) {
        tracing::debug!("{what}: SO_PRIORITY {SIGNALING_PRIORITY:#x}: {e}");
    }
    Ok(fd)
}

/// Hand-written: nix has no socket option for IP_ROUTER_ALERT.
fn set_router_alert(fd: RawFd) -> io::Result<()> {
    let v: libc::c_int = 1;
    // SAFETY: `v` outlives the call and the length matches its type.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            IP_ROUTER_ALERT,
            &v as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
    .map_err(|e| io::Error::new(e.kind(), format!("IP_ROUTER_ALERT: {e}")))
}

/// `a` as the kernel takes it in a `msghdr` (also for `examples/relay_floor`'s
/// io_uring sends).
pub fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = a.port().to_be();
    sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    sa
}

/// The raw UDP socket that intercepts Router Alert datagrams passing
/// through the calling thread's namespace, filtered as the node's is (also
/// for `examples/relay_floor`'s floor with the node's kernel set-up).
pub fn router_alert_socket() -> io::Result<OwnedFd> {
    let ra = new_socket(SockType::Raw, SockProtocol::Udp, "raw UDP socket")?;
    // Filter before IP_ROUTER_ALERT, so that almost nothing unfiltered is
    // queued: without it every UDP datagram to this host is read twice.
    attach(ra.as_raw_fd(), &ROUTER_ALERT_FILTER, "the raw UDP socket")?;
    // Bound to the loopback address, it no longer gets a copy of every UDP
    // datagram delivered here (each was cloned and filtered only to be
    // dropped), while the kernel still hands it the Router Alert datagrams
    // it forwards (`ip_call_ra_chain` looks at the protocol and device,
    // not the address). Without a loopback address it stays unbound.
    let lo = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    if let Err(e) = bind(ra.as_raw_fd(), &lo) {
        tracing::warn!(
            "raw UDP socket: bind 127.0.0.1: {e} (is lo up?); unbound, it also gets a copy \
             of every UDP datagram delivered here"
        );
    }
    enlarge_rcvbuf(&ra, "raw UDP socket");
    set_router_alert(ra.as_raw_fd())?;
    Ok(ra)
}

impl GistSockets {
    /// Opens the sockets in the calling thread's namespace. `local` are the
    /// node's substrate addresses: intercepted datagrams addressed to one of
    /// them are left to the UDP sockets, which receive them anyway.
    /// `neighbours`: (the node's address on the link, the router's at its
    /// other end) for each of the node's links, each given a socket
    /// connected to it (`neighbour`; one that cannot be opened is left out,
    /// and its messages take the unconnected socket). Needs a tokio runtime
    /// (the sockets are registered with its reactor).
    pub fn open(local: Vec<Ipv4Addr>, neighbours: &[(Ipv4Addr, Ipv4Addr)]) -> io::Result<Self> {
        Self::open_with(local, neighbours, false)
    }

    /// [`Self::open`], with the receiving sockets left out of tokio's
    /// reactor: their owner polls [`Self::rx_fds`] itself and reads the
    /// ready ones with [`Self::poll_recv_from`] (the node threads' pump).
    pub fn open_pumped(
        local: Vec<Ipv4Addr>,
        neighbours: &[(Ipv4Addr, Ipv4Addr)],
    ) -> io::Result<Self> {
        Self::open_with(local, neighbours, true)
    }

    fn open_with(
        local: Vec<Ipv4Addr>,
        neighbours: &[(Ipv4Addr, Ipv4Addr)],
        pumped: bool,
    ) -> io::Result<Self> {
        let udp = gist_udp_socket("GIST UDP socket")?;
        let port = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, GIST_PORT));
        bind(udp.as_raw_fd(), &port).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("bind UDP port {GIST_PORT}: {e}"),
            )
        })?;
        let ra = router_alert_socket()?;
        let raw_out = new_socket(SockType::Raw, SockProtocol::Raw, "raw IP socket")?;
        let udp = RxFd::new(udp, pumped)?;
        let mut connected: Vec<neighbour::Neighbour> = vec![];
        for &(here, addr) in neighbours {
            if local.contains(&addr) || connected.iter().any(|n| n.addr == addr) {
                continue;
            }
            match neighbour::Neighbour::open(here, addr, pumped) {
                Ok(n) => connected.push(n),
                // The link's address or route is not there (yet): only
                // the shortcut is lost.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EADDRNOTAVAIL | libc::ENETUNREACH | libc::EHOSTUNREACH)
                    ) =>
                {
                    tracing::debug!(
                        "GIST UDP socket {here} to neighbour {addr}: {e}; its messages take the \
                     unconnected socket"
                    )
                }
                Err(e) => tracing::warn!(
                    "GIST UDP socket {here} to neighbour {addr}: {e}; its messages take the \
                     unconnected socket"
                ),
            }
        }
        Ok(Self {
            udp,
            neighbours: connected,
            ra: RxFd::new(ra, pumped)?,
            raw_out,
            local,
            next: Mutex::new(VecDeque::new()),
            turn: AtomicUsize::new(0),
            drained: std::sync::atomic::AtomicBool::new(false),
            unfinished: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Waits for the next GIST datagram, from any of the node's sockets. Intercepted
    /// datagrams that are not GIST (or not for this node to handle) are
    /// forwarded on unchanged by `keep`'s refusal: pass a predicate that says
    /// whether the node handles a payload (e.g. magic number and NSLPID match).
    pub async fn recv(&self, keep: impl Fn(&[u8]) -> bool) -> io::Result<Incoming> {
        std::future::poll_fn(|cx| self.poll_recv(cx, &keep)).await
    }

    /// [`Self::recv`] as a poll, on sockets of [`Self::open`] (tokio's
    /// reactor wakes the caller); the nodes read theirs with
    /// [`Self::poll_recv_from`].
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        keep: &impl Fn(&[u8]) -> bool,
    ) -> Poll<io::Result<Incoming>> {
        if let Some(inc) = self.queued().pop_front() {
            return Poll::Ready(Ok(inc));
        }
        // The unconnected socket, the neighbours', the Router Alert socket,
        // in turn: the next read starts after the socket this one served.
        let n = self.neighbours.len() + 2;
        let first = self.turn.load(Ordering::Relaxed);
        for k in (0..n).map(|i| (first + i) % n) {
            let polled = match k {
                0 => self.poll_udp(cx, &self.udp, None),
                k if k == n - 1 => self.poll_ra(cx, keep),
                k => {
                    let nb = &self.neighbours[k - 1];
                    self.poll_udp(cx, &nb.sock, Some(nb.addr))
                }
            };
            if let Poll::Ready(r) = polled {
                self.turn.store(k + 1, Ordering::Relaxed);
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    }

    /// The next datagram of one UDP socket, `Pending` once it has none
    /// (its readiness then wakes the caller). `peer`: the socket is the one
    /// connected to that neighbour, whose reported ICMP errors are dropped,
    /// [`PASSES`] at most per poll.
    fn poll_udp(
        &self,
        cx: &mut Context<'_>,
        fd: &RxFd,
        peer: Option<Ipv4Addr>,
    ) -> Poll<io::Result<Incoming>> {
        let fd = match fd {
            RxFd::Tokio(fd) => fd,
            RxFd::Pumped(fd) => return self.read_udp(fd.as_raw_fd(), peer),
        };
        for _ in 0..PASSES {
            let mut g = ready!(fd.poll_read_ready(cx))?;
            let mut queued = self.queued();
            match g.try_io(|fd| recv_udp(fd.as_raw_fd(), &mut RxBuf::take(), &mut queued)) {
                Ok(Ok(full)) => {
                    if !full {
                        // The queue was empty after it: no read that
                        // would only say EAGAIN before the next wake-up.
                        g.clear_ready();
                    }
                    let first = queued.pop_front().expect("recv_udp queues one at least");
                    return Poll::Ready(Ok(first));
                }
                Ok(Err(e)) => match peer {
                    Some(to) if neighbour::is_icmp_report(&e) => {
                        tracing::debug!("GIST UDP socket to neighbour {to}: {e} (an ICMP error)");
                    }
                    _ => return Poll::Ready(Err(e)),
                },
                Err(_would_block) => {}
            }
        }
        again(cx)
    }

    /// The next intercepted GIST datagram of the Router Alert socket;
    /// what `keep` refuses is forwarded on, [`PASSES`] reads at most per
    /// poll: a flood of alerts for others does not keep the node's other
    /// sockets unread.
    fn poll_ra(
        &self,
        cx: &mut Context<'_>,
        keep: &impl Fn(&[u8]) -> bool,
    ) -> Poll<io::Result<Incoming>> {
        let ra = match &self.ra {
            RxFd::Tokio(fd) => fd,
            RxFd::Pumped(fd) => return self.read_ra(fd.as_raw_fd(), keep),
        };
        for _ in 0..PASSES {
            let mut g = ready!(ra.poll_read_ready(cx))?;
            let mut buf = RxBuf::take();
            let (n1, n2) = match g.try_io(|fd| recv_raw(fd.as_raw_fd(), &mut buf)) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            };
            if n2.is_none() {
                // As for UDP: the queue was empty after it.
                g.clear_ready();
            }
            if let Some(first) = self.ours(&buf, n1, n2, keep) {
                return Poll::Ready(Ok(first));
            }
        }
        again(cx)
    }

    /// Of the (one or two) packets a Router Alert read put in `buf`, the
    /// first this node handles; the other is queued, what it does not
    /// handle forwarded on. A packet that cannot be forwarded on is the
    /// kernel's usual loss, not a failure of this socket: the other
    /// packet of the read still counts.
    fn ours(
        &self,
        buf: &[u8],
        n1: usize,
        n2: Option<usize>,
        keep: &impl Fn(&[u8]) -> bool,
    ) -> Option<Incoming> {
        let slots = [Some((0, n1)), n2.map(|n| (MAX_DATAGRAM, n))];
        let mut ours = slots.into_iter().flatten().filter_map(|(at, n)| {
            self.classify(&buf[at..at + n], keep)
                .unwrap_or_else(not_forwarded)
        });
        let first = ours.next()?;
        self.queued().extend(ours);
        Some(first)
    }

    /// The UDP socket's local address and whether the Router Alert socket
    /// is still open, as the kernel reports them (for `health`).
    pub fn bound(&self) -> (Option<SocketAddrV4>, bool) {
        let name = |fd: RawFd| nix::sys::socket::getsockname::<SockaddrIn>(fd).ok();
        let udp = name(self.udp.get_ref().as_raw_fd()).map(|a| SocketAddrV4::new(a.ip(), a.port()));
        (udp, name(self.ra.get_ref().as_raw_fd()).is_some())
    }

    /// Datagrams read and not handed out yet.
    fn queued(&self) -> std::sync::MutexGuard<'_, VecDeque<Incoming>> {
        self.next.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides what to do with a packet the Router Alert socket delivered.
    fn classify(&self, pkt: &[u8], keep: &impl Fn(&[u8]) -> bool) -> io::Result<Option<Incoming>> {
        let Some(p) = parse_ipv4_udp(pkt) else {
            return Ok(None);
        };
        // The raw socket also sees a copy of every UDP datagram addressed to
        // this node; those reach the UDP socket too.
        if self.local.contains(&p.dst) {
            return Ok(None);
        }
        if !p.router_alert {
            return Ok(None);
        }
        if p.dst_port != GIST_PORT || !keep(p.payload) {
            self.forward(pkt)?;
            return Ok(None);
        }
        Ok(Some(Incoming {
            src: SocketAddrV4::new(p.src, p.src_port),
            dst: p.dst,
            ttl: Some(p.ttl),
            intercepted: true,
            payload: p.payload.to_vec(),
            at_ns: crate::model::measure::now_ns(),
        }))
    }

    /// Sends an intercepted packet on, as the kernel would have: TTL − 1.
    fn forward(&self, pkt: &[u8]) -> io::Result<()> {
        let mut copy = pkt.to_vec();
        if copy[8] <= 1 {
            return Ok(()); // TTL expired: the kernel would have dropped it too
        }
        copy[8] -= 1;
        let ihl = ((copy[0] & 0x0f) as usize) * 4;
        copy[10] = 0;
        copy[11] = 0;
        let sum = ipv4_checksum(&copy[..ihl]);
        copy[10..12].copy_from_slice(&sum.to_be_bytes());
        let dst = Ipv4Addr::new(copy[16], copy[17], copy[18], copy[19]);
        let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
        sendto(self.raw_out.as_raw_fd(), &copy, &to, MsgFlags::empty())
            .map(|_| ())
            .map_err(os("forwarding an intercepted packet"))
    }

    /// Sends a D-mode message (no Router Alert) from port 270.
    pub fn send_dmode(&self, dst: SocketAddrV4, payload: &[u8], ttl: u8) -> io::Result<()> {
        self.sendmsg(dst, payload, ttl, false)
    }

    /// Sends a Q-mode Query: to the flow's destination, with the Router Alert
    /// option, so the next GIST node on the path intercepts it.
    pub fn send_qmode(&self, dst: SocketAddrV4, payload: &[u8], ttl: u8) -> io::Result<()> {
        self.sendmsg(dst, payload, ttl, true)
    }

    fn sendmsg(&self, dst: SocketAddrV4, payload: &[u8], ttl: u8, rao: bool) -> io::Result<()> {
        let fd = self.udp.get_ref().as_raw_fd();
        if !rao && dst.port() == GIST_PORT {
            let to = self.neighbours.iter().find(|n| n.addr == *dst.ip());
            if to.and_then(|n| n.try_send(payload, ttl)).is_some() {
                return Ok(());
            }
        }
        // Hand-written: nix's ControlMessage has no IP_RETOPTS (the IP
        // options of one datagram), which carries the Router Alert, and
        // nix's sendmsg allocates the control buffer at every send.
        let mut sa = sockaddr_in(dst);
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        // Room for IP_TTL (int) and IP_RETOPTS (4 bytes of options).
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr is POD; every pointer set below stays valid for the
        // sendmsg call, and the cmsg walk stays inside `cbuf`.
        unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = &mut sa as *mut _ as *mut libc::c_void;
            msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            let ttl_space = libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as usize;
            let opt_space = libc::CMSG_SPACE(ROUTER_ALERT.len() as u32) as usize;
            msg.msg_controllen = ttl_space + if rao { opt_space } else { 0 };
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::IPPROTO_IP;
            (*c).cmsg_type = libc::IP_TTL;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, ttl as libc::c_int);
            if rao {
                let c2 = libc::CMSG_NXTHDR(&msg, c);
                (*c2).cmsg_level = libc::IPPROTO_IP;
                (*c2).cmsg_type = libc::IP_RETOPTS;
                (*c2).cmsg_len = libc::CMSG_LEN(ROUTER_ALERT.len() as u32) as usize;
                std::ptr::copy_nonoverlapping(
                    ROUTER_ALERT.as_ptr(),
                    libc::CMSG_DATA(c2),
                    ROUTER_ALERT.len(),
                );
            }
            cvt(libc::sendmsg(fd, &msg, 0) as libc::c_int).map(|_| ())
        }
    }

    /// The source address the kernel would use to reach `dst` (the NLI's
    /// interface address for messages towards it).
    pub fn local_addr_for(dst: Ipv4Addr) -> io::Result<Ipv4Addr> {
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        s.connect((dst, GIST_PORT))?;
        match s.local_addr()? {
            std::net::SocketAddr::V4(a) => Ok(*a.ip()),
            std::net::SocketAddr::V6(_) => {
                Err(io::Error::other("IPv6 source for IPv4 destination"))
            }
        }
    }
}

impl GistTransport for GistSockets {
    fn send(&self, d: &Datagram<'_>) -> Result<(), SocketError> {
        self.sendmsg(d.dst, d.payload, d.ttl, d.mode == SendMode::RouterAlert)
            .map_err(|source| d.failed(source))
    }

    async fn recv(&self, keep: impl Fn(&[u8]) -> bool) -> Result<Incoming, SocketError> {
        GistSockets::recv(self, keep)
            .await
            .map_err(|source| SocketError::Recv { source })
    }
}

/// Reads of one socket in one poll that give the node nothing (alerts it
/// forwards, reported ICMP errors) before the poll moves on.
const PASSES: usize = 64;

/// A socket still ready after [`PASSES`] reads that gave nothing (alerts
/// forwarded, ICMP errors reported): the caller polls again (after the
/// thread's other tasks), having looked at the node's other sockets first.
fn again<T>(cx: &mut Context<'_>) -> Poll<T> {
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// An intercepted packet that was not ours and could not be sent on: as
/// the kernel would, dropped (at debug level: a sender can cause it at
/// will).
fn not_forwarded(e: io::Error) -> Option<Incoming> {
    tracing::debug!("Router Alert packet not forwarded: {e}");
    None
}

/// Raises a socket's receive buffer to [`RCVBUF_BYTES`]: SO_RCVBUFFORCE
/// (root, ignores `net.core.rmem_max`), else SO_RCVBUF (capped by rmem_max).
/// A smaller buffer only costs drops under a flood, so refusal is logged,
/// not fatal.
fn enlarge_rcvbuf(fd: &OwnedFd, what: &str) {
    if let Err(e) = setsockopt(fd, sockopt::RcvBufForce, &RCVBUF_BYTES) {
        let fallback = setsockopt(fd, sockopt::RcvBuf, &RCVBUF_BYTES);
        let got = nix::sys::socket::getsockopt(fd, sockopt::RcvBuf).unwrap_or(0);
        tracing::warn!(
            "{what}: SO_RCVBUFFORCE {RCVBUF_BYTES} refused ({e}); SO_RCVBUF {}: \
             receive buffer is {got} bytes, so a flood drops more; run as root or raise \
             net.core.rmem_max",
            match fallback {
                Ok(()) => "accepted".to_string(),
                Err(e) => format!("refused too ({e})"),
            }
        );
    }
}

/// Classic BPF for the Router Alert socket. A raw IPPROTO_UDP socket gets
/// a copy of every UDP datagram to this host; this keeps only packets with
/// IP options (IHL > 5) whose first option is Router Alert (0x94 0x04) —
/// how Linux (IP_RETOPTS) and NSIS-ka send Queries — or is another option,
/// left to [`parse_ipv4_udp`] to walk: dropping those here would lose
/// intercepted packets, since the kernel no longer forwards them. A
/// packet's offset 0 is its IP header on a raw socket.
const ROUTER_ALERT_FILTER: [libc::sock_filter; 10] = [
    ins(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 0), // A = version/IHL byte
    ins(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0, 0, 0x0f), // A = IHL
    ins(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, 0, 6, 5), // no options: drop
    ins(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 20), // A = first option type
    ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 4, 0, 0), // end of options: drop
    ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 2, 0x94), // another option: accept
    ins(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 21), // A = its length
    ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 4), // Router Alert: accept
    ins(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),         // accept whole packet
    ins(libc::BPF_RET | libc::BPF_K, 0, 0, 0),                // drop
];

/// The fields of an IPv4/UDP packet that interception needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Udp<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub router_alert: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Parses an IPv4 packet carrying UDP; `None` for anything else or malformed.
pub fn parse_ipv4_udp(pkt: &[u8]) -> Option<Ipv4Udp<'_>> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != libc::IPPROTO_UDP as u8 {
        return None;
    }
    let ihl = ((pkt[0] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
    if ihl < 20 || total < ihl + 8 || total > pkt.len() {
        return None;
    }
    // Fragments other than the first carry no UDP header.
    if u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff != 0 {
        return None;
    }
    let mut router_alert = false;
    let mut opts = &pkt[20..ihl];
    while let Some(&t) = opts.first() {
        match t {
            0 => break,
            1 => opts = &opts[1..],
            _ => {
                let l = *opts.get(1)? as usize;
                if l < 2 || l > opts.len() {
                    return None;
                }
                if t == 0x94 && l == 4 {
                    router_alert = true;
                }
                opts = &opts[l..];
            }
        }
    }
    let udp = &pkt[ihl..total];
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if ulen < 8 || ulen > udp.len() {
        return None;
    }
    Some(Ipv4Udp {
        src: Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]),
        dst: Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]),
        ttl: pkt[8],
        router_alert,
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload: &udp[8..ulen],
    })
}

/// RFC 1071 checksum of an IPv4 header (checksum field zeroed by the caller).
pub fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for ch in hdr.chunks(2) {
        let w = if ch.len() == 2 {
            u16::from_be_bytes([ch[0], ch[1]])
        } else {
            u16::from_be_bytes([ch[0], 0])
        };
        sum += w as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4 header with the Router Alert option (IHL 6), UDP 270→270,
    /// 4 bytes of payload: what a GIST Query looks like on the wire.
    static QUERY_PKT: [u8; 36] = [
        0x46, 0x00, 0x00, 0x24, // version 4, IHL 6; TOS; total length 36
        0x00, 0x01, 0x00, 0x00, // id 1; no fragment
        0x67, 0x11, 0x00, 0x00, // TTL 103; protocol UDP; checksum (not checked)
        172, 1, 2, 1, // source tb1
        172, 3, 4, 4, // destination tb4
        0x94, 0x04, 0x00, 0x00, // Router Alert, value 0
        0x01, 0x0e, 0x01, 0x0e, // UDP 270 -> 270
        0x00, 0x0c, 0x00, 0x00, // UDP length 12; checksum 0
        0x4e, 0x04, 0xbd, 0xa5, // GIST magic number
    ];

    #[test]
    fn parses_router_alert_query() {
        let p = parse_ipv4_udp(&QUERY_PKT).unwrap();
        assert_eq!(p.src, Ipv4Addr::new(172, 1, 2, 1));
        assert_eq!(p.dst, Ipv4Addr::new(172, 3, 4, 4));
        assert_eq!(p.ttl, 103);
        assert!(p.router_alert);
        assert_eq!((p.src_port, p.dst_port), (270, 270));
        assert_eq!(p.payload, &[0x4e, 0x04, 0xbd, 0xa5]);
    }

    #[test]
    fn rejects_malformed_packets() {
        for n in 0..QUERY_PKT.len() {
            assert!(parse_ipv4_udp(&QUERY_PKT[..n]).is_none(), "prefix {n}");
        }
        let mut bad = QUERY_PKT;
        bad[21] = 0x40; // option length overruns the header
        assert!(parse_ipv4_udp(&bad).is_none());
        let mut frag = QUERY_PKT;
        frag[7] = 0x10; // fragment offset != 0
        assert!(parse_ipv4_udp(&frag).is_none());
    }

    /// `poll` of one socket for input, waiting up to `ms`: 1 if it has some.
    fn readable(fd: RawFd, ms: libc::c_int) -> libc::c_int {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        unsafe { libc::poll(&mut pfd, 1, ms) }
    }

    /// Runs `test` on a thread of its own in a fresh network namespace with
    /// `lo` up, with a current-thread runtime. Not root: skipped, but a
    /// failure under CI.
    /// The payload of the next datagram `socks` hands out, within 2 s;
    /// `what` names the datagram when none comes.
    pub(super) async fn next_payload(socks: &GistSockets, what: &str) -> Vec<u8> {
        let wait = std::time::Duration::from_secs(2);
        tokio::time::timeout(wait, socks.recv(|_| true))
            .await
            .unwrap_or_else(|_| panic!("{what} was not handed out"))
            .unwrap()
            .payload
    }

    /// Queues a flood of Router Alert packets `socks` only forwards: 2000
    /// to 127.0.0.1's port 271, each forwarded copy read again until its
    /// TTL runs out.
    pub(super) fn queue_alerts_for_others(socks: &GistSockets) {
        let other_port = SocketAddrV4::new(Ipv4Addr::LOCALHOST, GIST_PORT + 1);
        for _ in 0..2000 {
            socks.send_qmode(other_port, b"not ours", 64).unwrap();
        }
    }

    pub(crate) fn in_fresh_netns(test: impl FnOnce(tokio::runtime::Runtime) + Send + 'static) {
        std::thread::spawn(|| {
            if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
                let why = format!("cannot unshare a network namespace ({e}); run as root");
                assert!(std::env::var("CI").is_err(), "{why}");
                eprintln!("skipped: {why}");
                return;
            }
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .unwrap();
            assert!(up.success(), "ip link set lo up");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            test(rt);
        })
        .join()
        .unwrap();
    }

    /// Root: in a fresh network namespace (this test's thread only), the
    /// Router Alert socket no longer sees a plain UDP datagram to a local
    /// address, but still sees those carrying Router Alert, two in one read.
    #[test]
    fn router_alert_socket_filters_plain_udp() {
        in_fresh_netns(|rt| {
            let _in_rt = rt.enter();
            let lo = Ipv4Addr::LOCALHOST;
            let socks = GistSockets::open(vec![lo], &[]).unwrap();
            let to = SocketAddrV4::new(lo, GIST_PORT);
            let plain = std::net::UdpSocket::bind((lo, 0)).unwrap();
            plain.send_to(b"plain", to).unwrap();
            socks.send_qmode(to, b"alert", 64).unwrap();
            socks.send_qmode(to, b"again", 64).unwrap();
            let ra = socks.ra.get_ref().as_raw_fd();
            assert_eq!(readable(ra, 2000), 1, "nothing on the RA socket");
            let mut buf = vec![0u8; SLOTS * MAX_DATAGRAM];
            // Both alerts in one read, in their slots.
            let (n, more) = recv_raw(ra, &mut buf).unwrap();
            let p = parse_ipv4_udp(&buf[..n]).unwrap();
            assert!(p.router_alert);
            assert_eq!(p.payload, b"alert");
            let m = more.expect("the second alert not read with the first");
            let p = parse_ipv4_udp(&buf[MAX_DATAGRAM..MAX_DATAGRAM + m]).unwrap();
            assert_eq!(p.payload, b"again");
            // The plain datagram was sent first, so it would be queued already.
            let e = recv_raw(ra, &mut buf).unwrap_err();
            assert_eq!(
                e.kind(),
                io::ErrorKind::WouldBlock,
                "plain UDP reached the RA socket"
            );
            // The UDP socket still gets all three, in one read, in order; the
            // next read finds the queue empty.
            let udp = socks.udp.get_ref().as_raw_fd();
            let mut got = VecDeque::new();
            let full = recv_udp(udp, &mut buf, &mut got).unwrap();
            let payloads: Vec<_> = got.iter().map(|i| &i.payload[..]).collect();
            assert_eq!(payloads, [&b"plain"[..], &b"alert"[..], &b"again"[..]]);
            assert!(!full, "three datagrams filled {SLOTS} slots");
            let e = recv_udp(udp, &mut buf, &mut got).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        });
    }

    /// Root: an intercepted packet that cannot be forwarded on (here nft
    /// refuses the forwarded copy: TTL 63) is dropped alone; the GIST
    /// Query read with it in the same read is still handed out, and `recv`
    /// reports no failure of the socket.
    #[test]
    fn a_packet_that_cannot_be_forwarded_costs_only_itself() {
        in_fresh_netns(|rt| {
            let nft = std::process::Command::new("nft")
                .arg("add table ip t; add chain ip t o { type filter hook output priority 0; }; add rule ip t o ip ttl 63 drop")
                .status()
                .expect("nft (Debian package nftables)");
            assert!(nft.success(), "nft rule");
            rt.block_on(async {
                // No local address: alerts to 127.0.0.1 count as intercepted.
                let socks = GistSockets::open(vec![], &[]).unwrap();
                let lo = Ipv4Addr::LOCALHOST;
                socks
                    .send_qmode(SocketAddrV4::new(lo, GIST_PORT + 1), b"not ours", 64)
                    .unwrap();
                socks
                    .send_qmode(SocketAddrV4::new(lo, GIST_PORT), b"query", 64)
                    .unwrap();
                let wait = std::time::Duration::from_secs(2);
                // The UDP socket also gets the Query (it is addressed to
                // port 270 here): whichever is read first, no read fails
                // and the intercepted copy comes out.
                let mut intercepted = false;
                for _ in 0..2 {
                    let inc = tokio::time::timeout(wait, socks.recv(|_| true))
                        .await
                        .expect("the Query was not handed out")
                        .expect("a packet that could not be forwarded failed the read");
                    assert_eq!(inc.payload, b"query");
                    intercepted |= inc.intercepted;
                }
                assert!(intercepted, "the intercepted Query was lost");
            });
        });
    }

    /// Root: a D-mode send (the hand-written `sendmsg`, one control
    /// message) leaves with the TTL asked for and no Router Alert: the UDP
    /// socket reads it with that TTL, the Router Alert socket nothing.
    #[test]
    fn a_dmode_send_carries_its_ttl_and_no_router_alert() {
        in_fresh_netns(|rt| {
            rt.block_on(async {
                let lo = Ipv4Addr::LOCALHOST;
                let socks = GistSockets::open(vec![lo], &[]).unwrap();
                let to = SocketAddrV4::new(lo, GIST_PORT);
                socks.send_dmode(to, b"dmode", 7).unwrap();
                let wait = std::time::Duration::from_secs(2);
                let inc = tokio::time::timeout(wait, socks.recv(|_| true))
                    .await
                    .expect("the D-mode datagram did not arrive")
                    .unwrap();
                assert_eq!(inc.payload, b"dmode");
                assert_eq!(inc.ttl, Some(7), "TTL not as sent");
                assert!(!inc.intercepted, "taken as a Router Alert packet");
                let ready = readable(socks.ra.get_ref().as_raw_fd(), 0);
                assert_eq!(ready, 0, "the Router Alert socket got a D-mode datagram");
            });
        });
    }

    /// Root: a flood of Router Alert packets the node only forwards (here
    /// to a port other than 270, each forwarded copy read again until its
    /// TTL runs out) does not keep a datagram on the UDP socket waiting: a
    /// read that starts at the Router Alert socket moves on after
    /// [`PASSES`] packets, and the datagram comes out while the flood is
    /// still queued.
    #[test]
    fn a_router_alert_flood_does_not_hold_up_the_udp_socket() {
        in_fresh_netns(|rt| {
            let _in_rt = rt.enter();
            // No local address: alerts to 127.0.0.1 count as passing through.
            let socks = GistSockets::open(vec![], &[]).unwrap();
            let lo = Ipv4Addr::LOCALHOST;
            let to = SocketAddrV4::new(lo, GIST_PORT);
            let peer = std::net::UdpSocket::bind((lo, 0)).unwrap();
            rt.block_on(async {
                // Served from the UDP socket, the next read starts at the
                // Router Alert socket.
                peer.send_to(b"first", to).unwrap();
                assert_eq!(next_payload(&socks, "the first datagram").await, b"first");
                queue_alerts_for_others(&socks);
                peer.send_to(b"hello", to).unwrap();
                let got = next_payload(&socks, "the datagram behind the flood").await;
                assert_eq!(got, b"hello");
            });
            assert_eq!(
                readable(socks.ra.get_ref().as_raw_fd(), 0),
                1,
                "the flood was worked off before the UDP socket's datagram"
            );
        });
    }

    /// Root: `recv` hands out queued datagrams in order, [`SLOTS`] per
    /// read, and a datagram sent after the queue ran dry (readiness cleared
    /// without an EAGAIN read) still wakes it.
    #[test]
    fn recv_reads_a_burst_at_once_and_still_wakes_after_clearing() {
        in_fresh_netns(|rt| {
            rt.block_on(async {
                let lo = Ipv4Addr::LOCALHOST;
                let socks = GistSockets::open(vec![lo], &[]).unwrap();
                let to = SocketAddrV4::new(lo, GIST_PORT);
                let peer = std::net::UdpSocket::bind((lo, 0)).unwrap();
                let all = |_: &[u8]| true;
                let wait = std::time::Duration::from_secs(2);
                let sent = [&b"one"[..], b"two", b"three", b"four", b"five"];
                assert_eq!(sent.len(), SLOTS + 1);
                for p in sent {
                    peer.send_to(p, to).unwrap();
                }
                let mut got = vec![];
                for i in 0..sent.len() {
                    let inc = tokio::time::timeout(wait, socks.recv(all))
                        .await
                        .expect("queued datagram not handed out")
                        .unwrap();
                    assert!(inc.ttl.is_some(), "TTL not read");
                    // The first read took "one" to "four" at once.
                    let left = socks.queued().len();
                    assert_eq!(left, (SLOTS - 1).saturating_sub(i), "after {i}");
                    got.push(inc.payload);
                }
                assert_eq!(got, sent);
                // "five" came alone: readiness is cleared, with no read left
                // that would only say EAGAIN.
                let RxFd::Tokio(udp) = &socks.udp else {
                    panic!("GistSockets::open serves its sockets with tokio's reactor")
                };
                let ready = tokio::time::timeout(std::time::Duration::ZERO, udp.readable());
                assert!(ready.await.is_err(), "readiness not cleared");
                // "five" came alone, so readiness was cleared: a new one must
                // still be seen, and its source and destination read.
                let late = tokio::spawn(async move {
                    peer.send_to(b"late", to).unwrap();
                    peer
                });
                let inc = tokio::time::timeout(wait, socks.recv(all))
                    .await
                    .expect("a datagram after the queue ran dry was not seen")
                    .unwrap();
                let peer = late.await.unwrap();
                assert_eq!(inc.payload, b"late");
                assert_eq!(inc.src.port(), peer.local_addr().unwrap().port());
                assert_eq!(inc.dst, lo);
            });
        });
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // Header from RFC 1071-style worked example (Wikipedia IPv4 header checksum).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&h), 0xb861);
    }
}
