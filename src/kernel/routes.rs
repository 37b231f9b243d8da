//! The routes and link states of the calling thread's namespace, read by
//! rtnetlink, and a watch that reports them again whenever the kernel
//! announces a route or link change (RTM_NEWROUTE/DELROUTE, RTM_NEWLINK).
//! The signaling core takes [`RouteTable`]s as plain input, so its reaction
//! to route changes is tested with tables made by hand.

use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_LINK};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, RouteMessageBuilder};

/// One IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelRoute {
    pub dest: Ipv4Addr,
    pub prefix_len: u8,
    /// The next router; `None` for a route to an attached subnet.
    pub via: Option<Ipv4Addr>,
    pub ifname: String,
}

/// The namespace's routes and the interfaces that are down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Sorted, so two reads of the same state compare equal.
    pub routes: Vec<KernelRoute>,
    /// Interfaces administratively down or without carrier.
    pub down: Vec<String>,
}

/// Reads the main IPv4 table and the link states over `handle`.
pub async fn read(handle: &Handle) -> Result<RouteTable, rtnetlink::Error> {
    let mut names = std::collections::HashMap::new();
    let mut down = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await? {
        let name = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name {
            let up = l.header.flags.contains(LinkFlags::Up)
                && l.header.flags.contains(LinkFlags::LowerUp);
            if !up && name != "lo" && !is_plumbing(&l) {
                down.push(name.clone());
            }
            names.insert(l.header.index, name);
        }
    }
    let mut routes = Vec::new();
    let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut stream = handle.route().get(req).execute();
    while let Some(r) = stream.try_next().await? {
        if r.header.table != RouteHeader::RT_TABLE_MAIN {
            continue;
        }
        let (mut dest, mut via, mut oif) = (Ipv4Addr::UNSPECIFIED, None, None);
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dest = *d,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(*g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        let Some(ifname) = oif.and_then(|i| names.get(&i)).cloned() else {
            continue;
        };
        routes.push(KernelRoute {
            dest,
            prefix_len: r.header.destination_prefix_length,
            via,
            ifname,
        });
    }
    routes.sort();
    down.sort();
    Ok(RouteTable { routes, down })
}

/// Whether a link belongs to the virtual links' plumbing rather than the
/// substrate: a tunnel end, a virtual interface's bridge, a port of one
/// (or a bridge-port notification). Its state says nothing about routes,
/// and a burst of setups changes hundreds of them: rereading every link
/// and route after each (a dump growing with the links up) took a third
/// of a node's time at 64 concurrent setups.
fn is_plumbing(l: &LinkMessage) -> bool {
    l.header.interface_family == AddressFamily::Bridge
        || l.attributes.iter().any(|a| match a {
            LinkAttribute::Controller(_) => true,
            LinkAttribute::IfName(n) => {
                crate::kernel::tunnel::TunnelEnd::is_end_name(n)
                    || n == crate::kernel::tunnel::SOCKET_KEEPER
            }
            LinkAttribute::LinkInfo(i) => i
                .iter()
                .any(|x| matches!(x, LinkInfo::Kind(InfoKind::Bridge))),
            _ => false,
        })
}

/// Whether a kernel announcement may change the [`RouteTable`]: route
/// changes, and link changes outside the plumbing.
fn relevant(p: &NetlinkPayload<RouteNetlinkMessage>) -> bool {
    match p {
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l),
        ) => !is_plumbing(l),
        _ => true,
    }
}

/// Calls `changed` with the table whenever the routes or link states of
/// the calling thread's namespace change (bursts of kernel messages within
/// `settle` give one call; the first call comes at the first change, even
/// one back to the state at start). Runs until `changed` returns false or
/// the netlink socket fails.
pub async fn watch(
    settle: Duration,
    mut changed: impl FnMut(RouteTable) -> bool,
) -> Result<(), std::io::Error> {
    let (mut conn, handle, mut messages) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE;
    conn.socket_mut()
        .socket_mut()
        .bind(&rtnetlink::sys::SocketAddr::new(0, groups))?;
    // No filter here: this socket also carries `read`'s dump replies, and
    // a dump's last link, alone in its datagram, could be dropped.
    tokio::task::spawn_local(conn);
    // Not read before the first change: at start the caller knows the
    // routes it configured, and a chain of N routers has N routes in each
    // of N namespaces (10 000 routers: 10^8 routes read and kept for
    // nothing). The first table goes to `changed`, which compares.
    let burst = async || {
        loop {
            match messages.next().await {
                None => return false,
                Some((m, _)) if relevant(&m.payload) => break,
                Some(_) => {}
            }
        }
        // Let the rest of a burst (a link going down removes many routes)
        // arrive, then read the state once.
        tokio::time::sleep(settle).await;
        while let Some(Some(_)) = messages.next().now_or_never() {}
        true
    };
    follow(handle, burst, &mut changed).await
}

// ------------------------------------------------ one monitor, all namespaces

/// `SOL_NETLINK` and its `NETLINK_LISTEN_ALL_NSID` option and control
/// message (linux/netlink.h; not in the libc crate for every target).
const SOL_NETLINK: i32 = 270;
const NETLINK_LISTEN_ALL_NSID: i32 = 8;
/// Receive buffer asked for (root may pass `rmem_max`): thousands of
/// namespaces' announcements share this one socket.
const MONITOR_RCVBUF: usize = 32 << 20;

/// What [`AllNamespaces::listen`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The routes or link states of the namespace with this id (in the
    /// monitor's namespace) may have changed; a burst within the settle
    /// time is reported once, at its end.
    Changed(i32),
    /// The socket's buffer overflowed: announcements were lost, any
    /// namespace may have changed.
    Overrun,
}

/// One rtnetlink socket that hears the route and link changes of every
/// namespace that has an id in its own (`NETLINK_LISTEN_ALL_NSID`), in
/// place of one subscribed socket per namespace: the kernel keeps all
/// subscribed netlink sockets of all namespaces on one list, walks it for
/// every announcement in any namespace, and again under its table lock for
/// every subscribed socket closed, so 10 000 of them made both quadratic
/// (issue 17).
pub struct AllNamespaces {
    listener: rtnetlink::sys::Socket,
    /// Separate from the listener, so replies never queue behind
    /// announcements; one request at a time.
    requests: std::sync::Mutex<(rtnetlink::sys::Socket, u32)>,
}

/// Why the all-namespace monitor is not available.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot open or subscribe the all-namespace route monitor's netlink socket: {0}")]
    Socket(std::io::Error),
    #[error(
        "the kernel refused NETLINK_LISTEN_ALL_NSID (needs CAP_NET_BROADCAST and Linux 4.6): {0}"
    )]
    ListenAll(std::io::Error),
    #[error("no namespace id for {ns} in the monitor's namespace: {err}")]
    Nsid { ns: String, err: std::io::Error },
    #[error("{ns} is the monitor's own namespace, whose announcements carry no id")]
    Own { ns: String },
}

impl AllNamespaces {
    /// Opens the monitor in the calling thread's namespace (the one whose
    /// ids [`Self::nsid_of`] assigns).
    pub fn open() -> Result<Self, MonitorError> {
        use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
        let mut listener = Socket::new(NETLINK_ROUTE).map_err(MonitorError::Socket)?;
        listener
            .set_listen_all_namespaces(true)
            .map_err(MonitorError::ListenAll)?;
        listener
            .bind(&SocketAddr::new(0, RTMGRP_LINK | RTMGRP_IPV4_ROUTE))
            .map_err(MonitorError::Socket)?;
        filter_plumbing(std::os::fd::AsRawFd::as_raw_fd(&listener));
        force_rcvbuf(&listener, MONITOR_RCVBUF);
        let mut requests = Socket::new(NETLINK_ROUTE).map_err(MonitorError::Socket)?;
        requests.bind_auto().map_err(MonitorError::Socket)?;
        Ok(Self {
            listener,
            requests: std::sync::Mutex::new((requests, 0)),
        })
    }

    /// The id of namespace `ns` (an open namespace file) in the monitor's
    /// namespace, assigned by the kernel when it has none yet.
    pub fn nsid_of(&self, ns: &std::fs::File, name: &str) -> Result<i32, MonitorError> {
        use std::os::fd::AsRawFd;
        let err = |err| MonitorError::Nsid {
            ns: name.to_string(),
            err,
        };
        let fd = ns.as_raw_fd() as u32;
        let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let (sock, seq) = &mut *r;
        if let Some(id) = nsid_request(sock, seq, false, fd).map_err(err)? {
            return Ok(id);
        }
        // Another thread may assign it in between: EEXIST is then fine.
        match nsid_request(sock, seq, true, fd) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        match nsid_request(sock, seq, false, fd).map_err(err)? {
            Some(id) => Ok(id),
            None => Err(MonitorError::Own {
                ns: name.to_string(),
            }),
        }
    }

    /// Reads announcements until the socket fails, reporting each
    /// namespace whose routes or link states may have changed once per
    /// burst (`settle` after its first relevant message); `wanted` says
    /// which ids anyone listens to (the rest are not parsed).
    pub fn listen(
        &self,
        settle: Duration,
        wanted: impl Fn(i32) -> bool,
        mut heard: impl FnMut(Heard),
    ) -> std::io::Error {
        use std::os::fd::AsRawFd;
        let fd = self.listener.as_raw_fd();
        let mut data = vec![0u8; 64 << 10];
        let mut control = [0u8; 64];
        let mut due: std::collections::HashMap<i32, std::time::Instant> = Default::default();
        loop {
            let now = std::time::Instant::now();
            due.retain(|&id, at| {
                if *at <= now {
                    heard(Heard::Changed(id));
                    false
                } else {
                    true
                }
            });
            let timeout = due.values().min().map_or(-1, |at| {
                at.saturating_duration_since(now).as_millis() as i32 + 1
            });
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, timeout) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return e;
            }
            if n == 0 {
                continue;
            }
            // What is queued, without blocking; at most a batch, so that
            // under a flood of announcements the settle timers still fire.
            for _ in 0..256 {
                match recv_with_control(fd, &mut data, &mut control) {
                    Ok((len, clen)) => {
                        let Some(id) = cmsg_nsid(&control[..clen]) else {
                            continue; // the monitor's own namespace
                        };
                        if due.contains_key(&id) || !wanted(id) {
                            continue;
                        }
                        if announces_change(&data[..len]) {
                            due.insert(id, std::time::Instant::now() + settle);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => heard(Heard::Overrun),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return e,
                }
            }
        }
    }
}

/// Keeps the plumbing's link announcements out of a monitor's socket
/// ([`super::announce_filter`]). Without the filter every announcement
/// still reaches [`announces_change`], which tells the same apart: slower,
/// not wrong, so a refusal is logged and the monitor goes on.
fn filter_plumbing(fd: std::os::fd::RawFd) {
    if let Err(e) = super::announce_filter::attach(fd) {
        tracing::warn!("{e}: every tunnel end's announcements wake the route monitor");
    }
}

/// Asks for a bigger receive buffer than `rmem_max` allows (root only;
/// without it the default stays, and an overflow is reported as such).
fn force_rcvbuf(s: &rtnetlink::sys::Socket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: an int option of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One `recvmsg` that keeps the control data (`MSG_DONTWAIT`): the lengths
/// of datagram and control data.
fn recv_with_control(
    fd: i32,
    data: &mut [u8],
    control: &mut [u8],
) -> std::io::Result<(usize, usize)> {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: zeroed msghdr is valid; the pointers outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: as above.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((n as usize, (msg.msg_controllen as usize).min(control.len())))
}

/// The namespace id a `NETLINK_LISTEN_ALL_NSID` control message carries
/// (none for the socket's own namespace).
pub fn cmsg_nsid(control: &[u8]) -> Option<i32> {
    // struct cmsghdr { size_t len; int level; int type; } then the data,
    // aligned to size_t.
    const W: usize = std::mem::size_of::<usize>();
    let head = W + 8;
    let mut off = 0;
    while control.len() >= off + head {
        let len = usize::from_ne_bytes(control[off..off + W].try_into().ok()?);
        let level = i32::from_ne_bytes(control[off + W..off + W + 4].try_into().ok()?);
        let ty = i32::from_ne_bytes(control[off + W + 4..off + head].try_into().ok()?);
        if len < head || off + len > control.len() {
            return None;
        }
        let data_at = off + head.next_multiple_of(W);
        if level == SOL_NETLINK && ty == NETLINK_LISTEN_ALL_NSID && off + len >= data_at + 4 {
            return Some(i32::from_ne_bytes(
                control[data_at..data_at + 4].try_into().ok()?,
            ));
        }
        off += len.next_multiple_of(W);
    }
    None
}

/// Whether a datagram of announcements may change a [`RouteTable`] (see
/// [`relevant`]); one that does not parse counts as a change.
pub fn announces_change(datagram: &[u8]) -> bool {
    use rtnetlink::packet_core::NetlinkMessage;
    let mut off = 0;
    while datagram.len() >= off + 16 {
        let len = u32::from_ne_bytes(datagram[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || off + len > datagram.len() {
            return true;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[off..off + len]) {
            Ok(m) if !relevant(&m.payload) => {}
            _ => return true,
        }
        off += len.next_multiple_of(4);
    }
    false
}

/// One RTM_GETNSID (`Ok(None)`: no id) or RTM_NEWNSID (auto id) for the
/// namespace file `fd`, and its answer.
fn nsid_request(
    sock: &rtnetlink::sys::Socket,
    seq: &mut u32,
    assign: bool,
    fd: u32,
) -> std::io::Result<Option<i32>> {
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage};
    use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
    let mut m = NsidMessage::default();
    m.attributes.push(NsidAttribute::Fd(fd));
    let inner = if assign {
        m.attributes.push(NsidAttribute::Id(-1));
        RouteNetlinkMessage::NewNsId(m)
    } else {
        RouteNetlinkMessage::GetNsId(m)
    };
    *seq = seq.wrapping_add(1);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | if assign { NLM_F_ACK } else { 0 };
    header.sequence_number = *seq;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(inner));
    req.finalize();
    let mut buf = vec![0; req.buffer_len()];
    req.serialize(&mut buf);
    sock.send(&buf, 0)?;
    loop {
        let (reply, _) = sock.recv_from_full()?;
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
            .map_err(std::io::Error::other)?;
        if m.header.sequence_number != *seq {
            continue; // an earlier request's late answer
        }
        return match m.payload {
            NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
            NetlinkPayload::Error(_) => Ok(None),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(r)) => {
                Ok(r.attributes.iter().find_map(|a| match a {
                    rtnetlink::packet_route::nsid::NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                    _ => None,
                }))
            }
            other => Err(std::io::Error::other(format!(
                "unexpected answer to an nsid request: {other:?}"
            ))),
        };
    }
}

/// [`watch`]'s reaction for a node heard by an [`AllNamespaces`] monitor:
/// at each `nudge` (the monitor's [`Heard`] for its namespace) reads the
/// table over `handle` (a socket of the node's namespace, subscribed to
/// nothing) and calls `changed` when it differs from the last one. Runs
/// until `changed` returns false, the nudges end or the read fails.
pub async fn follow(
    handle: Handle,
    mut nudge: impl AsyncFnMut() -> bool,
    mut changed: impl FnMut(RouteTable) -> bool,
) -> Result<(), std::io::Error> {
    let mut last: Option<RouteTable> = None;
    while nudge().await {
        let now = read(&handle).await.map_err(std::io::Error::other)?;
        if last.as_ref() != Some(&now) {
            last = Some(now.clone());
            if !changed(now) {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, extra: Vec<LinkAttribute>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l.attributes.extend(extra);
        l
    }

    fn new_link(l: LinkMessage) -> NetlinkPayload<RouteNetlinkMessage> {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
    }

    #[test]
    fn plumbing_changes_do_not_reread_the_table() {
        // A substrate interface going down matters.
        assert!(relevant(&new_link(link("eth1", vec![]))));
        // Tunnel ends, bridge ports, bridges and port notifications do not.
        assert!(!relevant(&new_link(link("vl00a1ff", vec![]))));
        assert!(!relevant(&new_link(link(
            "vn0v7",
            vec![LinkAttribute::Controller(4)]
        ))));
        let bridge = link(
            "br0v7",
            vec![LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )])],
        );
        assert!(!relevant(&new_link(bridge)));
        let mut port = link("eth9", vec![]);
        port.header.interface_family = AddressFamily::Bridge;
        assert!(!relevant(&new_link(port)));
        // Route changes always do.
        let r = rtnetlink::packet_route::route::RouteMessage::default();
        assert!(relevant(&NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewRoute(r)
        )));
    }
    /// The control buffer as the kernel lays out one message (`struct
    /// cmsghdr`, then the data, padded to `size_t`).
    fn control(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        const W: usize = std::mem::size_of::<usize>();
        let mut c = (W + 8 + data.len()).to_ne_bytes().to_vec();
        c.extend(level.to_ne_bytes());
        c.extend(ty.to_ne_bytes());
        c.extend(data);
        c.resize(c.len().next_multiple_of(W), 0);
        c
    }

    fn unhex(s: &str) -> Vec<u8> {
        crate::model::unhex(s).expect("hex")
    }

    #[test]
    fn captured_announcements_name_their_namespace_and_whether_they_matter() {
        let capture = include_str!("../../tests/data/netlink/all-nsid-announcements.txt");
        let heard: Vec<(Option<i32>, bool)> = capture
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let c = control(f[0].parse().unwrap(), f[1].parse().unwrap(), &unhex(f[2]));
                (cmsg_nsid(&c), announces_change(&unhex(f[3])))
            })
            .collect();
        // The route matters; the tunnel end pair (vl00a1ff and its peer) does not.
        assert_eq!(
            heard,
            vec![(Some(4242), true), (Some(4242), false), (Some(4242), false)]
        );
    }

    #[test]
    fn control_data_without_a_namespace_id_names_none() {
        // The monitor's own namespace: no control message at all.
        assert_eq!(cmsg_nsid(&[]), None);
        // Another level or type, a truncated header, a length past the end.
        let id = 7i32.to_ne_bytes();
        assert_eq!(cmsg_nsid(&control(libc::SOL_SOCKET, 8, &id)), None);
        assert_eq!(cmsg_nsid(&control(SOL_NETLINK, 3, &id)), None);
        let c = control(SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, &id);
        assert_eq!(cmsg_nsid(&c), Some(7));
        assert_eq!(cmsg_nsid(&c[..10]), None);
        let mut long = c.clone();
        long[0] = 200;
        assert_eq!(cmsg_nsid(&long), None);
        // Behind another message.
        let mut two = control(libc::SOL_SOCKET, 1, &[1, 2, 3, 4, 5]);
        two.extend(&c);
        assert_eq!(cmsg_nsid(&two), Some(7));
        // Garbage is a change (read the table rather than miss one).
        assert!(announces_change(&[0xff; 20]));
        assert!(!announces_change(&[]));
    }
}
