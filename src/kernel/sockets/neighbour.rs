//! A UDP socket on port 270 connected to one link neighbour (issue 17).
//!
//! The kernel keeps the route of a connected socket, so a D-mode message
//! to that neighbour is sent without a route lookup, and a datagram from
//! the neighbour's port 270 is matched to the socket before any route
//! lookup (UDP early demux). Route lookups were a tenth of the node
//! threads' time on a chain of 1000 routers, most of them on tables gone
//! cold. The bytes on the wire are the same (source port 270, the node's
//! address on the link, the TTL asked for) but for the IP ID, which a
//! connected socket counts per socket.
//!
//! The socket is bound to the node's address on the link, port 270, beside
//! the node's unconnected socket on every address (`SO_REUSEADDR` on
//! both): the kernel hands a datagram to the socket that matches it best,
//! so the neighbour's port-270 datagrams to that address come here and
//! everything else goes to the unconnected socket, as before. Bound to the
//! link's address, the socket cannot pick another source address (one the
//! routes gave at start, before the link had its own); a missing address
//! fails the socket, and the node's messages to that neighbour take the
//! unconnected one.
//!
//! A connected socket also hears the ICMP errors its datagrams cause (a
//! neighbour whose node is down answers "port unreachable"); they come
//! back as the error of the next read or send. A read's such error is
//! dropped ([`is_icmp_report`]), and a send that fails is sent again
//! through the unconnected socket, which reports only its own errors.

use std::cell::Cell;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, SockaddrIn, bind, connect, send, setsockopt, sockopt};

use super::{RxFd, gist_udp_socket, os};
use crate::model::ports::GIST_PORT;

/// The socket connected to one neighbour's port 270.
pub(super) struct Neighbour {
    pub addr: Ipv4Addr,
    pub sock: RxFd,
    /// The IP TTL set on the socket, `0` until its first send. A message
    /// with another TTL goes through the unconnected socket, which sets it
    /// per datagram (an IP-level control message makes the kernel look the
    /// route up again, so it is not sent here). The first message decides:
    /// in practice a neighbour gets one TTL (NSIS-ka's profile sends 103
    /// downstream and 64 upstream, so one per direction).
    ttl: Cell<u8>,
}

impl Neighbour {
    /// Opens the socket in the calling thread's namespace: bound to
    /// `local`:270 beside the node's unconnected socket, connected to
    /// `addr`:270 (`pumped`: see [`RxFd`]).
    pub fn open(local: Ipv4Addr, addr: Ipv4Addr, pumped: bool) -> io::Result<Self> {
        let fd = gist_udp_socket(&format!("GIST UDP socket to {addr}"))?;
        let here = SockaddrIn::from(SocketAddrV4::new(local, GIST_PORT));
        bind(fd.as_raw_fd(), &here).map_err(os("bind"))?;
        let to = SockaddrIn::from(SocketAddrV4::new(addr, GIST_PORT));
        connect(fd.as_raw_fd(), &to).map_err(os("connect"))?;
        Ok(Self {
            addr,
            sock: RxFd::new(fd, pumped)?,
            ttl: Cell::new(0),
        })
    }

    /// Sends `payload` with IP TTL `ttl` if this socket can: `None` when
    /// the TTL is not the socket's, or the send failed (logged at debug
    /// level), so that the caller sends it through the unconnected socket.
    pub fn try_send(&self, payload: &[u8], ttl: u8) -> Option<()> {
        let fd = self.sock.get_ref();
        match self.ttl.get() {
            0 => {
                if let Err(e) = setsockopt(fd, sockopt::Ipv4Ttl, &libc::c_int::from(ttl)) {
                    tracing::debug!("GIST UDP socket to {}: IP_TTL {ttl}: {e}", self.addr);
                    return None;
                }
                self.ttl.set(ttl);
            }
            t if t != ttl => return None,
            _ => {}
        }
        match send(fd.as_raw_fd(), payload, MsgFlags::empty()) {
            Ok(_) => Some(()),
            Err(e) => {
                tracing::debug!(
                    "GIST UDP socket to {}: {e}; sent through the unconnected socket",
                    self.addr
                );
                None
            }
        }
    }
}

/// Whether a connected socket's read error is the report of an ICMP error
/// its datagrams caused (which the read consumed), not a failure of the
/// socket.
pub(super) fn is_icmp_report(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::ENOPROTOOPT
                | libc::EMSGSIZE
                | libc::EPROTO
        )
    )
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::time::Duration;

    use nix::sys::socket::{
        AddressFamily, ControlMessageOwned, SockFlag, SockType, bind, recvmsg, setsockopt, socket,
    };

    use super::super::tests::{in_fresh_netns, next_payload, queue_alerts_for_others};
    use super::super::{GistSockets, GistTransport};
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

    /// Runs `nft CMD` in the calling thread's namespace.
    fn nft(cmd: &str) {
        let ok = std::process::Command::new("nft")
            .arg(cmd)
            .status()
            .expect("nft (Debian package nftables)");
        assert!(ok.success(), "nft {cmd}");
    }

    /// A socket on `addr`'s port 270 (beside the node's), reading TTLs.
    fn port_270_at(addr: Ipv4Addr) -> OwnedFd {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
        setsockopt(&fd, sockopt::Ipv4RecvTtl, &true).unwrap();
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(2, 0),
        )
        .unwrap();
        bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(addr, GIST_PORT)),
        )
        .unwrap();
        fd
    }

    fn send_from(fd: &OwnedFd, payload: &[u8], to: Ipv4Addr) {
        nix::sys::socket::sendto(
            fd.as_raw_fd(),
            payload,
            &SockaddrIn::from(SocketAddrV4::new(to, GIST_PORT)),
            MsgFlags::empty(),
        )
        .unwrap();
    }

    /// (payload, source, TTL) of the next datagram on `fd`.
    fn read(fd: &OwnedFd) -> (Vec<u8>, SocketAddrV4, u8) {
        let mut buf = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(libc::c_int);
        let m = recvmsg::<SockaddrIn>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .expect("nothing arrived");
        let ttl = m
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::Ipv4Ttl(t) => Some(t as u8),
                _ => None,
            })
            .expect("no TTL");
        let src = m
            .address
            .map(|a| SocketAddrV4::new(a.ip(), a.port()))
            .unwrap();
        let n = m.bytes;
        (buf[..n].to_vec(), src, ttl)
    }

    fn readable(fd: &impl AsFd) -> bool {
        let mut p = libc::pollfd {
            fd: fd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        unsafe { libc::poll(&mut p, 1, 500) == 1 }
    }

    /// Root: the kernel gives the neighbour's port-270 datagrams to the
    /// socket connected to it, and everything else (another address,
    /// another port) to the unconnected one; the node reads both. What the
    /// node sends the neighbour leaves from port 270 with the TTL asked for,
    /// also when a message asks for another TTL than the socket's.
    #[test]
    fn the_neighbours_datagrams_take_its_socket_and_the_rest_the_other() {
        in_fresh_netns(|rt| {
            let _in_rt = rt.enter();
            let socks =
                GistSockets::open(vec![ME], &[(ME, NEIGHBOUR), (ME, ME), (ME, NEIGHBOUR)]).unwrap();
            assert_eq!(
                socks.neighbours.len(),
                1,
                "one socket per neighbour, none to itself"
            );
            let nb = &socks.neighbours[0];
            let peer = port_270_at(NEIGHBOUR);
            let stranger = port_270_at(STRANGER);
            send_from(&peer, b"from the neighbour", ME);
            assert!(readable(nb.sock.get_ref()), "not on the connected socket");
            assert!(!readable(socks.udp.get_ref()), "on the unconnected socket");
            send_from(&stranger, b"from a stranger", ME);
            assert!(
                readable(socks.udp.get_ref()),
                "a stranger's not on the unconnected one"
            );
            let mut got: Vec<_> = rt.block_on(async {
                let mut got = vec![];
                for _ in 0..2 {
                    let inc = tokio::time::timeout(Duration::from_secs(2), socks.recv(|_| true))
                        .await
                        .expect("a datagram not handed out")
                        .unwrap();
                    assert_eq!(inc.dst, ME);
                    assert!(inc.ttl.is_some(), "TTL not read");
                    got.push((inc.payload, inc.src));
                }
                got
            });
            got.sort();
            assert_eq!(
                got,
                [
                    (
                        b"from a stranger".to_vec(),
                        SocketAddrV4::new(STRANGER, GIST_PORT)
                    ),
                    (
                        b"from the neighbour".to_vec(),
                        SocketAddrV4::new(NEIGHBOUR, GIST_PORT)
                    ),
                ]
            );
            let to = SocketAddrV4::new(NEIGHBOUR, GIST_PORT);
            socks.send_dmode(to, b"first", 64).unwrap();
            assert_eq!(nb.ttl.get(), 64, "not sent connected");
            socks.send_dmode(to, b"other ttl", 103).unwrap();
            let me = SocketAddrV4::new(ME, GIST_PORT);
            assert_eq!(read(&peer), (b"first".to_vec(), me, 64));
            assert_eq!(read(&peer), (b"other ttl".to_vec(), me, 103));
        });
    }

    /// Root: a flood of Router Alert packets the node only forwards (here
    /// to a port other than 270, each forwarded copy read again until its
    /// TTL runs out) does not keep a neighbour's datagram waiting: a read
    /// that starts at the Router Alert socket moves on after a bounded
    /// number of packets, and the neighbour's datagram comes out while the
    /// flood is still queued.
    #[test]
    fn a_router_alert_flood_does_not_hold_up_a_neighbours_datagram() {
        in_fresh_netns(|rt| {
            let _in_rt = rt.enter();
            // No local address: alerts to 127.0.0.1 count as passing through.
            let socks = GistSockets::open(vec![], &[(ME, NEIGHBOUR)]).unwrap();
            let peer = port_270_at(NEIGHBOUR);
            rt.block_on(async {
                // Served from the neighbour's socket, the next read starts
                // at the Router Alert socket.
                send_from(&peer, b"first", ME);
                assert_eq!(next_payload(&socks, "the first datagram").await, b"first");
                queue_alerts_for_others(&socks);
                send_from(&peer, b"hello", ME);
                let got = next_payload(&socks, "the neighbour's datagram behind the flood").await;
                assert_eq!(got, b"hello");
            });
            assert!(
                readable(socks.ra.get_ref()),
                "the flood was worked off before the neighbour's datagram"
            );
        });
    }

    /// Root: a neighbour flooding its socket (2000 datagrams queued) does
    /// not keep a datagram on the node's unconnected socket waiting: the
    /// read after one that served the neighbour starts at the next socket,
    /// so the stranger's datagram comes out within the first reads, while
    /// the flood is still queued.
    #[test]
    fn a_neighbours_flood_does_not_hold_up_the_unconnected_socket() {
        in_fresh_netns(|rt| {
            let _in_rt = rt.enter();
            let socks = GistSockets::open(vec![ME], &[(ME, NEIGHBOUR)]).unwrap();
            let peer = port_270_at(NEIGHBOUR);
            let stranger = port_270_at(STRANGER);
            rt.block_on(async {
                // Served from the unconnected socket, the next read starts
                // at the neighbour's.
                send_from(&stranger, b"first", ME);
                assert_eq!(next_payload(&socks, "the first datagram").await, b"first");
                for i in 0..2000u32 {
                    send_from(&peer, &i.to_be_bytes(), ME);
                }
                send_from(&stranger, b"stranger", ME);
                let mut reads = 0;
                loop {
                    let got = next_payload(&socks, "a datagram of the flood").await;
                    reads += 1;
                    if got == b"stranger" {
                        break;
                    }
                    assert!(
                        reads <= 2 * super::super::SLOTS,
                        "the stranger's datagram waited behind {reads} of the neighbour's"
                    );
                }
            });
            assert!(
                readable(socks.neighbours[0].sock.get_ref()),
                "the flood was worked off before the stranger's datagram"
            );
        });
    }

    /// Root: a neighbour whose port 270 is closed answers with ICMP "port
    /// unreachable" (here nft rejects what is sent to it), which the
    /// connected socket reports at its next read (when the next datagram
    /// wakes it: tokio does not wake a reader for an error alone) or send.
    /// Neither fails the node: the read goes on to that datagram, and the
    /// send goes out through the unconnected socket.
    #[test]
    fn icmp_errors_of_a_neighbour_fail_neither_reads_nor_sends() {
        in_fresh_netns(|rt| {
            let _in_rt = rt.enter();
            nft(
                "add table ip t; add chain ip t i { type filter hook input priority 0; }; \
                 add rule ip t i ip daddr 127.0.0.2 udp dport 270 reject",
            );
            let socks = GistSockets::open(vec![ME], &[(ME, NEIGHBOUR)]).unwrap();
            let to = SocketAddrV4::new(NEIGHBOUR, GIST_PORT);
            socks.send_dmode(to, b"lost", 64).unwrap();
            let nb = socks.neighbours[0].sock.get_ref();
            assert!(
                readable(nb),
                "no ICMP error reported on the connected socket"
            );
            let peer = port_270_at(NEIGHBOUR);
            rt.block_on(async {
                let r =
                    tokio::time::timeout(Duration::from_millis(300), socks.recv(|_| true)).await;
                assert!(r.is_err(), "the ICMP report came out of recv: {r:?}");
                send_from(&peer, b"later", ME);
                let inc = tokio::time::timeout(Duration::from_secs(2), socks.recv(|_| true))
                    .await
                    .expect("the next datagram not handed out")
                    .expect("the read failed");
                assert_eq!(inc.payload, b"later");
            });
            socks.send_dmode(to, b"lost again", 64).unwrap();
            assert!(readable(nb), "no second ICMP error");
            nft("flush ruleset");
            // The pending error fails the connected send; the message goes
            // out through the unconnected socket instead.
            let d = super::super::Datagram {
                dst: to,
                payload: b"after the error",
                ttl: 64,
                mode: super::super::SendMode::Addressed,
            };
            GistTransport::send(&socks, &d).expect("a pending ICMP error failed the send");
            let (payload, src, _) = read(&peer);
            assert_eq!(payload, b"after the error");
            assert_eq!(src, SocketAddrV4::new(ME, GIST_PORT));
        });
    }

    /// Root: the sockets of `open_pumped` (the node threads' pump polls
    /// them): each socket's datagrams come out by its number, `Pending`
    /// says it is empty; a flood of Router Alert datagrams for others
    /// gives nothing and is not read past one poll's bound (the pump's
    /// epoll reports the rest); an ICMP error on the neighbour's socket
    /// fails no read.
    #[test]
    fn pumped_sockets_are_read_by_number() {
        use std::task::Poll;
        in_fresh_netns(|_rt| {
            let socks = GistSockets::open_pumped(vec![ME], &[(ME, NEIGHBOUR)]).unwrap();
            let fds = socks.rx_fds();
            assert_eq!(fds.len(), 3, "unconnected, the neighbour's, Router Alert");
            let all = |_: &[u8]| true;
            let payload = |p: Poll<std::io::Result<super::super::Incoming>>| match p {
                Poll::Ready(Ok(inc)) => Some(inc.payload),
                Poll::Ready(Err(e)) => panic!("the read failed: {e}"),
                Poll::Pending => None,
            };
            let peer = port_270_at(NEIGHBOUR);
            let stranger = port_270_at(STRANGER);
            for k in 0..3 {
                assert_eq!(payload(socks.poll_recv_from(k, &all)), None, "socket {k}");
            }
            send_from(&stranger, b"stranger", ME);
            send_from(&peer, b"neighbour", ME);
            assert_eq!(
                payload(socks.poll_recv_from(1, &all)).as_deref(),
                Some(&b"neighbour"[..])
            );
            // One came back where more were asked for: no read that would
            // only say EAGAIN is needed.
            assert!(socks.drained() && !socks.has_queued());
            assert_eq!(payload(socks.poll_recv_from(1, &all)), None);
            assert_eq!(
                payload(socks.poll_recv_from(0, &all)).as_deref(),
                Some(&b"stranger"[..])
            );
            assert_eq!(payload(socks.poll_recv_from(0, &all)), None);
            queue_alerts_for_others(&socks);
            assert_eq!(
                payload(socks.poll_recv_from(2, &all)),
                None,
                "an alert for another"
            );
            assert!(
                readable(socks.ra.get_ref()),
                "a flood of alerts was read past one poll's bound"
            );
            // The neighbour's port 270 rejects: an ICMP error on its socket.
            nft(
                "add table ip t; add chain ip t i { type filter hook input priority 0; }; \
                 add rule ip t i ip daddr 127.0.0.2 udp dport 270 reject",
            );
            let to = SocketAddrV4::new(NEIGHBOUR, GIST_PORT);
            socks.send_dmode(to, b"lost", 64).unwrap();
            assert!(
                readable(socks.neighbours[0].sock.get_ref()),
                "no ICMP error reported on the connected socket"
            );
            assert_eq!(
                payload(socks.poll_recv_from(1, &all)),
                None,
                "the ICMP report"
            );
            send_from(&peer, b"later", ME);
            assert_eq!(
                payload(socks.poll_recv_from(1, &all)).as_deref(),
                Some(&b"later"[..])
            );
            nft("flush ruleset");
        });
    }
}
