//! The kernel + scheduler floor of one signaling reaction on this machine
//! (issue 17): N namespaces in a chain joined by veths, one UDP socket in
//! each, a datagram relayed hop by hop to the far end and back with nothing
//! else done per hop (receive, stamp, send). Eight ways of serving the
//! sockets, the ways a node runtime could run:
//! - `threads`: one thread per namespace, blocking `recv` → `send_to`
//!   (a thread per node: every hop is a wake-up and a thread switch);
//! - `epoll`: one thread serves all sockets through one `mio` poll (the
//!   `VLSP_NODES_PER_THREAD` analogue: no wake-up between hops);
//! - `connected`: as `epoll`, with a socket connected to each neighbour
//!   beside the unconnected one (as nodes had until 1c6f734): no route
//!   lookup on either side of a hop;
//! - `actix`: as `connected` (the same sockets), served the way a node's
//!   are (`node::runtime`): one actix `System` on one thread, an actor per
//!   namespace that polls its sockets as a stream (`ctx.add_stream`) and
//!   holds an armed timer, as a node's actor does; the difference from
//!   `connected` is what tokio's reactor and actix's context cost a
//!   reaction (issue 17); `tokio` serves them with a plain task per
//!   namespace instead of an actor, to tell the two apart; `nested`
//!   registers one epoll holding all the sockets with tokio's reactor and
//!   reads it from one task (a runtime without a waker per socket);
//! - `uring`: as `epoll`, through one io_uring instead of the poll: a
//!   receive pending on every socket, a relay's send and its re-armed
//!   receive in one `io_uring_enter` (one system call per reaction, where
//!   `epoll` makes four); `uring-ms` keeps one multishot receive per socket
//!   with provided buffers instead.
//!
//! Per hop it reports, as median / p90 over all hops of all rounds:
//! - `reaction`: the previous node's `recv` returned → this node's `recv`
//!   returned (what one signaling reaction costs at least; the paper's
//!   exchange puts five on every router of setup [A]'s path, README
//!   *Scale*);
//! - `send→recv`: the previous node's `sendmsg` entered → this `recv`
//!   returned (the kernel's delivery plus the wake-up; in the `uring`
//!   modes from when the send was queued, before its `io_uring_enter`);
//! - `rtt/hops`: a round's round trip over its 2(N−1) hops.
//!
//! Root. `cargo run --release --example relay_floor -- [N ...]` (default
//! `4 50`); `ROUNDS=R` rounds per chain (default: about 20 000 hops'
//! worth), after 20 rounds of warm-up (ARP, caches). `QOS=1` gives each
//! namespace the kernel set-up of a node's: an HTB root with its default
//! class on each veth (what `vlsp up` shapes a link with) and the Router
//! Alert raw socket with its filter, so the floor includes what every
//! signaling datagram pays for QoS enforcement and interception; the
//! relay's datagrams then take the HTB direct queue, as a node's do.
//! `QOS=htb` or `QOS=ra` sets up one of the two, to tell their costs
//! apart. Namespaces are named `rf<pid>-<i>` and removed at the end, also
//! on failure.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::RawFd;
use std::sync::{Arc, Barrier};

use anyhow::{Context, Result, bail};
use nix::time::{ClockId, clock_gettime};
use vlsp::kernel::{links, netns};

const PORT: u16 = 7099;
const WARMUP: u32 = 20;
const DOWN: u8 = 1;
const UP: u8 = 2;
const STOP: u8 = 3;
/// direction, round, previous `recv` returned, previous `sendmsg` entered.
const LEN: usize = 1 + 4 + 8 + 8;

fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// Link `i` joins node `i` (`.1`, its `dn` veth) and node `i+1` (`.2`, its
/// `up` veth).
fn link_addr(i: usize, side: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200 + (i / 256) as u8, (i % 256) as u8, side)
}

fn down_of(i: usize) -> SocketAddr {
    SocketAddrV4::new(link_addr(i, 2), PORT).into()
}

fn up_of(i: usize) -> SocketAddr {
    SocketAddrV4::new(link_addr(i - 1, 1), PORT).into()
}

#[derive(Clone, Copy)]
struct Msg {
    dir: u8,
    round: u32,
    recv_prev: u64,
    send_prev: u64,
}

impl Msg {
    fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = self.dir;
        b[1..5].copy_from_slice(&self.round.to_be_bytes());
        b[5..13].copy_from_slice(&self.recv_prev.to_be_bytes());
        b[13..21].copy_from_slice(&self.send_prev.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        (b.len() == LEN).then(|| Self {
            dir: b[0],
            round: u32::from_be_bytes(b[1..5].try_into().unwrap()),
            recv_prev: u64::from_be_bytes(b[5..13].try_into().unwrap()),
            send_prev: u64::from_be_bytes(b[13..21].try_into().unwrap()),
        })
    }
}

/// What node `i` of `n` does with a datagram that arrived: where it goes
/// next (`None`: it ends here).
fn next_hop(i: usize, n: usize, m: &mut Msg) -> Option<SocketAddr> {
    match m.dir {
        DOWN if i + 1 == n => {
            m.dir = UP;
            Some(up_of(i))
        }
        DOWN | STOP if i + 1 < n => Some(down_of(i)),
        UP if i > 0 => Some(up_of(i)),
        _ => None,
    }
}

/// One hop's sample: (reaction, send→recv), in ns.
type Sample = (u64, u64);

/// Per-node measurements: samples of hops that ended at the node, and on
/// node 0 the rounds' round trips.
#[derive(Default)]
struct Stats {
    hops: Vec<Sample>,
    rtts: Vec<u64>,
}

/// The namespaces of one chain, removed on drop.
struct Chain {
    names: Vec<String>,
    files: Vec<File>,
    /// `QOS=1` or `ra`: each namespace's Router Alert socket, open for the run.
    _router_alert: Vec<std::os::fd::OwnedFd>,
}

/// Capacity each veth is shaped to with `QOS=1` or `htb` (far above the
/// relay's).
const SHAPE_BPS: u64 = 1_000_000_000;

impl Drop for Chain {
    fn drop(&mut self) {
        self.files.clear();
        for e in netns::netns_del_many(&self.names, netns::workers()) {
            eprintln!("relay_floor: cannot remove namespace {e}");
        }
    }
}

fn build(n: usize) -> Result<Chain> {
    if !(2..=2000).contains(&n) {
        bail!("chain length {n}: give 2..2000 namespaces");
    }
    let names: Vec<String> = (0..n)
        .map(|i| format!("rf{}-{i}", std::process::id()))
        .collect();
    netns::netns_add_many(&names, netns::workers())?;
    let mut chain = Chain {
        names,
        files: vec![],
        _router_alert: vec![],
    };
    for name in &chain.names {
        let p = netns::ns_path(name);
        chain
            .files
            .push(File::open(&p).with_context(|| format!("open {}", p.display()))?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (conn, root, _) = rtnetlink::new_connection().context("netlink socket")?;
        tokio::spawn(conn);
        let f = &chain.files;
        for i in 0..n - 1 {
            links::veth_between(&root, &f[i], "dn", &f[i + 1], "up").await?;
        }
        for (i, ns) in f.iter().enumerate() {
            let h = netns::handle_in(ns)?;
            let node = &chain.names[i];
            // The Router Alert socket binds to 127.0.0.1, as in a router.
            links::set_up(&h, "lo").await?;
            if i + 1 < n {
                links::add_address(&h, node, "dn", link_addr(i, 1), 24).await?;
            }
            if i > 0 {
                links::set_up(&h, "up").await?;
                links::add_address(&h, node, "up", link_addr(i - 1, 2), 24).await?;
            }
        }
        anyhow::Ok(())
    })?;
    let (htb, ra) = qos();
    if htb || ra {
        for (i, ns) in chain.files.iter().enumerate() {
            let sock = netns::with_netns(ns, || -> Result<_> {
                let mut tc = vlsp::kernel::tc::Tc::open()?;
                for ifname in ["dn", "up"] {
                    let here = (ifname == "dn" && i + 1 < n) || (ifname == "up" && i > 0);
                    if here && htb {
                        tc.shape(ifname, SHAPE_BPS)?;
                    }
                }
                Ok(if ra {
                    Some(vlsp::kernel::sockets::router_alert_socket()?)
                } else {
                    None
                })
            })??;
            chain._router_alert.extend(sock);
        }
    }
    Ok(chain)
}

/// `QOS`: (an HTB root on each veth, a Router Alert socket in each
/// namespace). `1` gives both; `htb` or `ra` one, to tell their costs apart.
/// Read once: every socket of every chain asks. A value it does not know
/// is refused at start (`main`), so a typo never measures the bare floor.
fn qos() -> (bool, bool) {
    static QOS: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
    *QOS.get_or_init(|| parse_qos(std::env::var("QOS").ok().as_deref()).unwrap_or_default())
}

fn parse_qos(v: Option<&str>) -> Result<(bool, bool)> {
    Ok(match v {
        None | Some("" | "0") => (false, false),
        Some("1") => (true, true),
        Some("htb") => (true, false),
        Some("ra") => (false, true),
        Some(other) => bail!("QOS={other:?}: give 1 (HTB and Router Alert), htb, ra, or 0"),
    })
}

fn bind_in(ns: &File) -> Result<UdpSocket> {
    let s = netns::with_netns(ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)))?
        .context("bind the relay's UDP socket")?;
    // A lost datagram or a failed relay must end the run (and remove the
    // namespaces), not block every other thread for ever.
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .context("set the relay socket's read timeout")?;
    direct_queue(&s)?;
    Ok(s)
}

/// Handles a datagram at node `i`: records the hop, sends it on. Returns
/// whether the node saw a round end (node 0) or a stop.
fn relay(
    i: usize,
    n: usize,
    sock: &UdpSocket,
    buf: &[u8],
    got: u64,
    st: &mut Stats,
) -> Result<Option<Msg>> {
    let Some(mut m) = Msg::decode(buf) else {
        bail!("node {i}: a datagram of {} bytes, not ours", buf.len());
    };
    if m.dir != STOP && m.round >= WARMUP {
        st.hops.push((got - m.recv_prev, got - m.send_prev));
    }
    let dest = next_hop(i, n, &mut m);
    if let Some(d) = dest {
        m.recv_prev = got;
        m.send_prev = now_ns();
        sock.send_to(&m.encode(), d)?;
    }
    Ok((dest.is_none() || m.dir == STOP).then_some(m))
}

/// Starts round `round` (or the stop) from node 0, through `send_to`
/// (of a blocking or a `mio` socket, or queueing it for the ring).
fn originate(
    send_to: impl FnOnce(&[u8], SocketAddr) -> std::io::Result<usize>,
    dir: u8,
    round: u32,
) -> Result<u64> {
    let t = now_ns();
    let m = Msg {
        dir,
        round,
        recv_prev: t,
        send_prev: t,
    };
    send_to(&m.encode(), down_of(0))?;
    Ok(t)
}

fn run_threads(chain: &Chain, rounds: u32) -> Result<Stats> {
    let n = chain.files.len();
    let socks: Vec<UdpSocket> = chain.files.iter().map(bind_in).collect::<Result<_>>()?;
    let ready = Arc::new(Barrier::new(n));
    let mut out = Stats::default();
    std::thread::scope(|sc| -> Result<()> {
        let hs: Vec<_> = socks
            .iter()
            .enumerate()
            .map(|(i, sock)| {
                let ready = ready.clone();
                sc.spawn(move || -> Result<Stats> {
                    let mut st = Stats::default();
                    let mut buf = [0u8; 64];
                    ready.wait();
                    if i == 0 {
                        for r in 0..WARMUP + rounds {
                            let t0 = originate(|b, a| sock.send_to(b, a), DOWN, r)?;
                            let len = sock.recv(&mut buf).with_context(|| {
                                format!("node 0: no datagram back within 5 s in round {r}")
                            })?;
                            let got = now_ns();
                            relay(0, n, sock, &buf[..len], got, &mut st)?;
                            if r >= WARMUP {
                                st.rtts.push(got - t0);
                            }
                        }
                        originate(|b, a| sock.send_to(b, a), STOP, 0)?;
                        return Ok(st);
                    }
                    loop {
                        let len = sock
                            .recv(&mut buf)
                            .with_context(|| format!("node {i}: no datagram for 5 s"))?;
                        let got = now_ns();
                        if let Some(m) = relay(i, n, sock, &buf[..len], got, &mut st)?
                            && m.dir == STOP
                        {
                            return Ok(st);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            let st = h
                .join()
                .map_err(|_| anyhow::anyhow!("a relay panicked"))??;
            out.hops.extend(st.hops);
            out.rtts.extend(st.rtts);
        }
        Ok(())
    })?;
    Ok(out)
}

fn run_epoll(chain: &Chain, rounds: u32) -> Result<Stats> {
    use mio::{Events, Interest, Poll, Token};
    let n = chain.files.len();
    let socks: Vec<UdpSocket> = chain.files.iter().map(bind_in).collect::<Result<_>>()?;
    let mut poll = Poll::new()?;
    let mut msocks = Vec::with_capacity(n);
    for (i, s) in socks.into_iter().enumerate() {
        s.set_nonblocking(true)?;
        let mut m = mio::net::UdpSocket::from_std(s);
        poll.registry()
            .register(&mut m, Token(i), Interest::READABLE)?;
        msocks.push(m);
    }
    let mut events = Events::with_capacity(n);
    let mut buf = [0u8; 64];
    let send = |j: usize, b: &[u8], d: SocketAddr| msocks[j].send_to(b, d);
    let mut r = Rounds::start(rounds, send)?;
    loop {
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))?;
        if events.is_empty() {
            bail!("one thread: no datagram for 5 s in round {}", r.round);
        }
        for ev in events.iter() {
            let i = ev.token().0;
            loop {
                let len = match msocks[i].recv(&mut buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                };
                if r.handle(i, n, &buf[..len], send)? {
                    return Ok(r.st);
                }
            }
        }
    }
}

/// The rounds one thread relays (`epoll`, `connected`, `uring`,
/// `uring-ms`): its samples, and
/// where it is.
struct Rounds {
    st: Stats,
    round: u32,
    rounds: u32,
    /// When the round under way left node 0.
    t0: u64,
}

impl Rounds {
    /// Sends the first round from node 0 with `send` (node, bytes, to).
    fn start(
        rounds: u32,
        send: impl Fn(usize, &[u8], SocketAddr) -> std::io::Result<usize>,
    ) -> Result<Self> {
        Ok(Self {
            st: Stats::default(),
            round: 0,
            rounds,
            t0: originate(|b, a| send(0, b, a), DOWN, 0)?,
        })
    }

    /// Node `i` of `n` read `bytes`: records the hop and sends it on, or,
    /// back at node 0, ends the round and starts the next. True once the
    /// last round is over.
    fn handle(
        &mut self,
        i: usize,
        n: usize,
        bytes: &[u8],
        send: impl Fn(usize, &[u8], SocketAddr) -> std::io::Result<usize>,
    ) -> Result<bool> {
        let got = now_ns();
        let Some(mut m) = Msg::decode(bytes) else {
            bail!("node {i}: a datagram of {} bytes, not ours", bytes.len());
        };
        if m.round >= WARMUP {
            self.st.hops.push((got - m.recv_prev, got - m.send_prev));
        }
        if let Some(d) = next_hop(i, n, &mut m) {
            m.recv_prev = got;
            m.send_prev = now_ns();
            send(i, &m.encode(), d)?;
            return Ok(false);
        }
        if self.round >= WARMUP {
            self.st.rtts.push(got - self.t0);
        }
        self.round += 1;
        if self.round == WARMUP + self.rounds {
            return Ok(true);
        }
        self.t0 = originate(|b, a| send(0, b, a), DOWN, self.round)?;
        Ok(false)
    }
}

/// With an HTB root (`QOS=1` or `htb`), the relay's datagrams take its
/// direct queue, as a node's own signaling does (`tc::SIGNALING_PRIORITY`).
fn direct_queue(s: &UdpSocket) -> Result<()> {
    if qos().0 {
        nix::sys::socket::setsockopt(
            s,
            nix::sys::socket::sockopt::Priority,
            &vlsp::kernel::tc::SIGNALING_PRIORITY,
        )
        .context("set the relay socket's priority")?;
    }
    Ok(())
}

/// A socket of namespace `ns` on the relay's port (shared with the
/// namespace's other sockets), connected to `peer` when given.
fn shared_port_in(ns: &File, peer: Option<SocketAddr>) -> Result<UdpSocket> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, setsockopt, socket,
        sockopt::ReuseAddr,
    };
    let fd = netns::with_netns(ns, || -> nix::Result<_> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        setsockopt(&fd, ReuseAddr, &true)?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)),
        )?;
        if let Some(SocketAddr::V4(p)) = peer {
            connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(p))?;
        }
        Ok(fd)
    })?
    .context("open a connected relay socket")?;
    let s = UdpSocket::from(fd);
    direct_queue(&s)?;
    Ok(s)
}

/// Per namespace `i`: [towards up, towards down, unconnected], the
/// `connected` layout (the runtimes' modes serve the same sockets).
fn connected_sockets(chain: &Chain) -> Result<Vec<[Option<UdpSocket>; 3]>> {
    let n = chain.files.len();
    let mut socks = Vec::with_capacity(n);
    for (i, ns) in chain.files.iter().enumerate() {
        let peers = [(i > 0).then(|| up_of(i)), (i + 1 < n).then(|| down_of(i))];
        let mut row: [Option<UdpSocket>; 3] = [None, None, None];
        for (k, slot) in row.iter_mut().enumerate() {
            let peer = match k {
                2 => None,
                k => match peers[k] {
                    Some(p) => Some(p),
                    None => continue,
                },
            };
            *slot = Some(shared_port_in(ns, peer)?);
        }
        socks.push(row);
    }
    Ok(socks)
}

/// `socks` registered with `poll`, socket `k` of namespace `i` as token
/// 3i + k.
fn registered(
    poll: &mio::Poll,
    socks: Vec<[Option<UdpSocket>; 3]>,
) -> Result<Vec<[Option<mio::net::UdpSocket>; 3]>> {
    let mut out = Vec::with_capacity(socks.len());
    for (i, row) in socks.into_iter().enumerate() {
        let mut mrow: [Option<mio::net::UdpSocket>; 3] = [None, None, None];
        for (k, s) in row.into_iter().enumerate() {
            if let Some(s) = s {
                let mut m = mio::net::UdpSocket::from_std(s);
                poll.registry()
                    .register(&mut m, mio::Token(3 * i + k), mio::Interest::READABLE)?;
                mrow[k] = Some(m);
            }
        }
        out.push(mrow);
    }
    Ok(out)
}

/// As [`run_epoll`], but each namespace also has a socket connected to
/// each neighbour, and a relay sends on the one towards the next hop: the
/// kernel keeps the route on a connected socket, and finds it for a
/// datagram from that neighbour before any route lookup (early demux).
fn run_connected(chain: &Chain, rounds: u32) -> Result<Stats> {
    use mio::{Events, Poll};
    let n = chain.files.len();
    let mut poll = Poll::new()?;
    let socks = registered(&poll, connected_sockets(chain)?)?;
    let towards = |i: usize, d: SocketAddr| if i > 0 && d == up_of(i) { 0 } else { 1 };
    let mut events = Events::with_capacity(3 * n);
    let send = |i: usize, b: &[u8], d: SocketAddr| {
        socks[i][towards(i, d)]
            .as_ref()
            .expect("a neighbour towards the next hop")
            .send(b)
    };
    let mut r = Rounds::start(rounds, send)?;
    loop {
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))?;
        if events.is_empty() {
            bail!("connected: no datagram for 5 s in round {}", r.round);
        }
        if relay_events(&events, &socks, &mut r, send)? {
            return Ok(r.st);
        }
    }
}

/// Reads each socket `events` reports empty, relaying what it holds
/// (`connected` and `nested`); true once the last round is over.
fn relay_events(
    events: &mio::Events,
    socks: &[[Option<mio::net::UdpSocket>; 3]],
    r: &mut Rounds,
    send: impl Fn(usize, &[u8], SocketAddr) -> std::io::Result<usize> + Copy,
) -> Result<bool> {
    let mut buf = [0u8; 64];
    for ev in events.iter() {
        let (i, k) = (ev.token().0 / 3, ev.token().0 % 3);
        loop {
            let sock = socks[i][k].as_ref().expect("a registered socket");
            let len = match sock.recv(&mut buf) {
                Ok(len) => len,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            if r.handle(i, socks.len(), &buf[..len], send)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// One namespace's relay in the `actix` mode: its sockets (as in
/// `connected`: [towards up, towards down, unconnected]) polled as one
/// stream, as a node's actor polls its own.
struct ActixRelay {
    i: usize,
    n: usize,
    socks: std::rc::Rc<Vec<[Option<ActixSocket>; 3]>>,
    rounds: std::rc::Rc<std::cell::RefCell<Option<Rounds>>>,
    done: std::rc::Rc<std::cell::RefCell<Option<Result<Stats>>>>,
}

impl actix::Actor for ActixRelay {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        use actix::AsyncContext;
        ctx.add_stream(ActixRecv {
            socks: self.socks.clone(),
            i: self.i,
            next: 0,
        });
        // A node's actor has its core's next deadline armed (GIST's
        // refreshes): an item its context polls on every wake-up.
        ctx.run_later(std::time::Duration::from_secs(3600), |_, _| {});
    }
}

/// A relay socket in the `actix` mode: read through tokio's reactor,
/// written directly (a node's `sendmsg` does not ask the reactor either;
/// tokio's `try_send` fails until the reactor has seen the socket writable).
struct ActixSocket {
    rx: tokio::net::UdpSocket,
    tx: UdpSocket,
}

/// Node `i`'s sockets as a stream of datagrams, polled round-robin (as
/// `GistSockets::poll_recv` does).
struct ActixRecv {
    socks: std::rc::Rc<Vec<[Option<ActixSocket>; 3]>>,
    i: usize,
    next: usize,
}

impl futures_util::Stream for ActixRecv {
    type Item = std::io::Result<Vec<u8>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let k = self.next;
            self.next = (k + 1) % 3;
            let Some(sock) = self.socks[self.i][k].as_ref() else {
                continue;
            };
            let mut rb = tokio::io::ReadBuf::new(&mut buf);
            match sock.rx.poll_recv(cx, &mut rb) {
                Poll::Ready(Ok(())) => return Poll::Ready(Some(Ok(rb.filled().to_vec()))),
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

impl actix::StreamHandler<std::io::Result<Vec<u8>>> for ActixRelay {
    fn handle(&mut self, item: std::io::Result<Vec<u8>>, _: &mut Self::Context) {
        relay_item(self.i, self.n, &self.socks, &self.rounds, &self.done, item);
    }
}

/// Node `i` relays what its sockets gave it (`actix` and `tokio` modes);
/// at the end of the run, or on a failure, it leaves the result in `done`
/// and stops the system. Whether it did.
fn relay_item(
    i: usize,
    n: usize,
    socks: &[[Option<ActixSocket>; 3]],
    rounds: &std::cell::RefCell<Option<Rounds>>,
    done: &std::cell::RefCell<Option<Result<Stats>>>,
    item: std::io::Result<Vec<u8>>,
) -> bool {
    let towards = |i: usize, d: SocketAddr| if i > 0 && d == up_of(i) { 0 } else { 1 };
    let send = |i: usize, b: &[u8], d: SocketAddr| {
        socks[i][towards(i, d)]
            .as_ref()
            .expect("a neighbour towards the next hop")
            .tx
            .send(b)
    };
    let step = item.map_err(anyhow::Error::from).and_then(|bytes| {
        let mut r = rounds.borrow_mut();
        let r = r.as_mut().expect("the rounds started before any datagram");
        r.handle(i, n, &bytes, send)
    });
    let end = match step {
        Ok(false) => return false,
        Ok(true) => Ok(rounds.borrow_mut().take().expect("the rounds").st),
        Err(e) => Err(e.context(format!("node {i}"))),
    };
    *done.borrow_mut() = Some(end);
    actix::System::current().stop();
    true
}

/// The `actix` mode (`actors`), or the `tokio` mode: the same sockets and
/// runtime, a plain task per namespace awaiting its sockets instead of an
/// actor (what actix's context adds beside tokio's reactor and tasks).
fn run_runtime(chain: &Chain, rounds: u32, actors: bool) -> Result<Stats> {
    use actix::Actor;
    use std::cell::RefCell;
    use std::rc::Rc;
    let n = chain.files.len();
    let std_socks = connected_sockets(chain)?;
    let done: Rc<RefCell<Option<Result<Stats>>>> = Rc::new(RefCell::new(None));
    let sys = actix::System::new();
    let d = done.clone();
    sys.block_on(async move {
        let socks = std_socks
            .into_iter()
            .map(|row| {
                row.map(|s| {
                    s.map(|s| ActixSocket {
                        tx: s.try_clone().expect("dup a relay socket"),
                        rx: tokio::net::UdpSocket::from_std(s).expect("register a relay socket"),
                    })
                })
            })
            .collect::<Vec<_>>();
        let socks = Rc::new(socks);
        let r = Rc::new(RefCell::new(None));
        for i in 0..n {
            if actors {
                ActixRelay {
                    i,
                    n,
                    socks: socks.clone(),
                    rounds: r.clone(),
                    done: d.clone(),
                }
                .start();
                continue;
            }
            let (socks, r, d) = (socks.clone(), r.clone(), d.clone());
            actix::spawn(async move {
                let mut recv = ActixRecv {
                    socks: socks.clone(),
                    i,
                    next: 0,
                };
                while let Some(item) = futures_util::StreamExt::next(&mut recv).await {
                    if relay_item(i, n, &socks, &r, &d, item) {
                        return;
                    }
                }
            });
        }
        let send = |i: usize, b: &[u8], a: SocketAddr| {
            socks[i][if i > 0 && a == up_of(i) { 0 } else { 1 }]
                .as_ref()
                .expect("a neighbour towards the next hop")
                .tx
                .send(b)
        };
        match Rounds::start(rounds, send) {
            Ok(started) => *r.borrow_mut() = Some(started),
            Err(e) => {
                *d.borrow_mut() = Some(Err(e));
                actix::System::current().stop();
                return;
            }
        }
        // A lost datagram ends the run instead of hanging it.
        let watch = r.clone();
        let wd = d.clone();
        actix::spawn(async move {
            let mut seen = None;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                let now = watch.borrow().as_ref().map(|r: &Rounds| r.round);
                if now.is_some() && now == seen {
                    *wd.borrow_mut() = Some(Err(anyhow::anyhow!(
                        "{}: no progress for 5 s in round {}",
                        if actors { "actix" } else { "tokio" },
                        now.unwrap_or_default()
                    )));
                    actix::System::current().stop();
                    return;
                }
                seen = now;
            }
        });
    });
    sys.run()?;
    done.borrow_mut().take().unwrap_or_else(|| {
        Err(anyhow::anyhow!(
            "actix: the system stopped without a result"
        ))
    })
}

/// The `nested` mode: the sockets of `connected` in one `mio` poll (an
/// epoll of their own, edge-triggered), whose descriptor alone is
/// registered with tokio's reactor (in the runtime `actix` and `tokio`
/// use): one task reads the inner poll when tokio says it is readable, so
/// a reaction pays an extra `epoll_wait` but no readiness, waker or task
/// per socket or node.
fn run_nested(chain: &Chain, rounds: u32) -> Result<Stats> {
    use mio::{Events, Poll};
    let n = chain.files.len();
    let mut poll = Poll::new()?;
    let socks = registered(&poll, connected_sockets(chain)?)?;
    let sys = actix::System::new();
    sys.block_on(async move {
        let towards = |i: usize, d: SocketAddr| if i > 0 && d == up_of(i) { 0 } else { 1 };
        let send = |i: usize, b: &[u8], d: SocketAddr| {
            socks[i][towards(i, d)]
                .as_ref()
                .expect("a neighbour towards the next hop")
                .send(b)
        };
        // SAFETY: `poll` owns the descriptor and outlives `inner`
        // (declared after it in this block, so dropped first).
        let inner = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                std::os::fd::AsRawFd::as_raw_fd(&poll),
                tokio::io::Interest::READABLE,
            )
        }?;
        let mut events = Events::with_capacity(3 * n);
        let mut r = Rounds::start(rounds, send)?;
        loop {
            let mut guard =
                tokio::time::timeout(std::time::Duration::from_secs(5), inner.readable())
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("nested: no datagram for 5 s in round {}", r.round)
                    })??;
            poll.poll(&mut events, Some(std::time::Duration::ZERO))?;
            if events.is_empty() {
                guard.clear_ready();
                continue;
            }
            if relay_events(&events, &socks, &mut r, send)? {
                return Ok(r.st);
            }
        }
    })
}

/// A send of one node in flight in the ring: the kernel reads its bytes,
/// address and header until it completes (a round is one datagram, so a
/// node has at most one).
struct Outgoing {
    bytes: [u8; LEN],
    to: libc::sockaddr_in,
    iov: libc::iovec,
    hdr: libc::msghdr,
}

/// The ring with the memory its requests point into. Dropping it cancels
/// every request still pending and waits for that before the ring and the
/// buffers go (closing a ring only schedules the cancellation), so the
/// kernel neither writes into freed buffers nor keeps the sockets open past
/// the run; should the cancellation fail, the buffers are leaked instead.
struct Ring {
    ring: io_uring::IoUring,
    /// Single-shot receives, one buffer a node; multishot, 2n [`SLOT`]s.
    rx: Vec<[u8; 64]>,
    pool: Vec<u8>,
    tx: Vec<Outgoing>,
}

const SLOT: usize = 64;
/// `user_data` of a send (with its node) and of a buffer handed back.
const SEND: u64 = 1 << 63;
const PROVIDE: u64 = 1 << 62;

impl Drop for Ring {
    fn drop(&mut self) {
        let any = io_uring::types::CancelBuilder::any();
        match self.ring.submitter().register_sync_cancel(None, any) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                eprintln!("uring: pending requests not cancelled ({e}): their buffers are leaked");
                std::mem::forget(std::mem::take(&mut self.rx));
                std::mem::forget(std::mem::take(&mut self.pool));
                std::mem::forget(std::mem::take(&mut self.tx));
            }
        }
    }
}

impl Ring {
    fn push(&mut self, e: &io_uring::squeue::Entry) -> Result<()> {
        // SAFETY: every entry points into `self`'s buffers (or a socket of
        // the run), which stay put until it completes or is cancelled on
        // drop; a node's buffer is read only after its receive completed.
        unsafe { self.ring.submission().push(e) }
            .map_err(|_| anyhow::anyhow!("io_uring submission queue full"))
    }

    /// A receive on node `i`'s socket: into `rx[i]`, or multishot into the
    /// pool.
    fn recv(&mut self, i: usize, fd: RawFd, multishot: bool) -> Result<()> {
        use io_uring::{opcode, types};
        let e = if multishot {
            opcode::RecvMulti::new(types::Fd(fd), 0).build()
        } else {
            opcode::Recv::new(types::Fd(fd), self.rx[i].as_mut_ptr(), 64).build()
        };
        self.push(&e.user_data(i as u64))
    }

    /// Hands pool slot `bid` back to buffer group 0 (`n` slots from it).
    fn provide(&mut self, bid: u16, n: u16) -> Result<()> {
        let at = bid as usize * SLOT;
        let slots = &mut self.pool[at..at + n as usize * SLOT];
        let e = io_uring::opcode::ProvideBuffers::new(slots.as_mut_ptr(), SLOT as i32, n, 0, bid)
            .build()
            .user_data(PROVIDE);
        self.push(&e)
    }

    /// Node `i` sends `b` to `d` (at most one send of a node in flight).
    fn send(&mut self, i: usize, fd: RawFd, b: &[u8], d: SocketAddrV4) -> Result<()> {
        let o = &mut self.tx[i];
        o.bytes[..b.len()].copy_from_slice(b);
        o.to = vlsp::kernel::sockets::sockaddr_in(d);
        o.iov = libc::iovec {
            iov_base: o.bytes.as_mut_ptr().cast(),
            iov_len: b.len(),
        };
        o.hdr.msg_name = (&mut o.to as *mut libc::sockaddr_in).cast();
        o.hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        o.hdr.msg_iov = &mut o.iov;
        o.hdr.msg_iovlen = 1;
        let e = io_uring::opcode::SendMsg::new(io_uring::types::Fd(fd), &o.hdr)
            .build()
            .user_data(SEND | i as u64);
        self.push(&e)
    }
}

/// As [`run_epoll`], through one io_uring in place of the poll: a receive
/// stays pending on every socket, and a relay's send goes to the kernel
/// with its re-armed receive in one `io_uring_enter`, within which the
/// veth hands the datagram to the next namespace and its pending receive
/// completes. One system call per reaction where `epoll` makes four
/// (`epoll_wait`, the `recv`, the `recv` that finds the socket empty,
/// `send_to`): what the node runtime would gain from a ring (issue 17).
/// `multishot`: one receive per socket for the whole run, taking a pool
/// slot per datagram, which goes back to the pool once copied out.
fn run_uring(chain: &Chain, rounds: u32, multishot: bool) -> Result<Stats> {
    use io_uring::types;
    use std::os::fd::AsRawFd;
    let n = chain.files.len();
    let socks: Vec<UdpSocket> = chain.files.iter().map(bind_in).collect::<Result<_>>()?;
    let fds: Vec<RawFd> = socks.iter().map(|s| s.as_raw_fd()).collect();
    let ring = io_uring::IoUring::new((2 * n as u32 + 8).next_power_of_two())
        .context("io_uring_setup (is kernel.io_uring_disabled set?)")?;
    // Declared after `socks`, so dropped (and its requests cancelled)
    // before the sockets close.
    let mut r = Ring {
        ring,
        rx: vec![[0u8; 64]; n],
        pool: vec![0u8; 2 * n * SLOT],
        // SAFETY: plain C structs and bytes; all-zero is a valid value.
        tx: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
    };
    if multishot {
        r.provide(0, (2 * n) as u16)?;
    }
    for (i, &fd) in fds.iter().enumerate() {
        r.recv(i, fd, multishot)?;
    }
    // Sends wait here for the ring, by value: no allocation per reaction.
    let pending = std::cell::RefCell::new(Vec::<(usize, [u8; LEN], SocketAddr)>::new());
    let send = |i: usize, b: &[u8], d: SocketAddr| {
        let mut bytes = [0u8; LEN];
        bytes.copy_from_slice(b);
        pending.borrow_mut().push((i, bytes, d));
        Ok(b.len())
    };
    let mut rounds = Rounds::start(rounds, send)?;
    let ts = types::Timespec::new().sec(5);
    let mut buf = [0u8; 64];
    // The completions of one `io_uring_enter`, copied out of the queue
    // (handling them queues more): kept across rounds, no allocation each.
    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(2 * n + 8);
    loop {
        for (i, b, d) in pending.borrow_mut().drain(..) {
            let SocketAddr::V4(d) = d else {
                bail!("node {i}: an IPv6 next hop")
            };
            r.send(i, fds[i], &b, d)?;
        }
        match r
            .ring
            .submitter()
            .submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
        {
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {
                bail!("uring: no datagram for 5 s in round {}", rounds.round)
            }
            other => other.context("io_uring_enter")?,
        };
        done.clear();
        done.extend(
            r.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(ud, res, flags) in &done {
            let i = (ud & !(SEND | PROVIDE)) as usize;
            if res < 0 {
                let e = std::io::Error::from_raw_os_error(-res);
                match ud {
                    PROVIDE => bail!("uring: handing buffers back: {e}"),
                    _ if ud & SEND != 0 => bail!("node {i}: send: {e}"),
                    _ => bail!("node {i}: recv: {e}"),
                }
            }
            if ud & (SEND | PROVIDE) != 0 {
                continue;
            }
            let len = res as usize;
            match (multishot, io_uring::cqueue::buffer_select(flags)) {
                (true, Some(bid)) => {
                    let at = bid as usize * SLOT;
                    buf[..len].copy_from_slice(&r.pool[at..at + len]);
                    r.provide(bid, 1)?;
                }
                (true, None) => bail!("node {i}: a multishot receive without a buffer"),
                (false, _) => buf[..len].copy_from_slice(&r.rx[i][..len]),
            }
            if !multishot || !io_uring::cqueue::more(flags) {
                r.recv(i, fds[i], multishot)?;
            }
            if rounds.handle(i, n, &buf[..len], send)? {
                return Ok(rounds.st);
            }
        }
    }
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    let k = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[k] as f64 / 1000.0
}

fn report(n: usize, mode: &str, st: Stats) {
    let mut react: Vec<u64> = st.hops.iter().map(|h| h.0).collect();
    let mut wire: Vec<u64> = st.hops.iter().map(|h| h.1).collect();
    let hops = 2 * (n as u64 - 1);
    let mut per: Vec<u64> = st.rtts.iter().map(|r| r / hops).collect();
    println!(
        "N={n:<4} {mode:<7} hops={:<6} reaction µs median {:6.1} p90 {:6.1} | send→recv {:6.1} / {:6.1} | rtt/hops {:6.1} / {:6.1}",
        react.len(),
        pct(&mut react, 0.5),
        pct(&mut react, 0.9),
        pct(&mut wire, 0.5),
        pct(&mut wire, 0.9),
        pct(&mut per, 0.5),
        pct(&mut per, 0.9),
    );
}

fn main() -> Result<()> {
    netns::require_root()?;
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .with_context(|| format!("chain length {a:?}: give a number"))
        })
        .collect::<Result<_>>()?;
    let sizes = if sizes.is_empty() { vec![4, 50] } else { sizes };
    parse_qos(std::env::var("QOS").ok().as_deref())?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    match qos() {
        (true, true) => {
            println!("QOS=1: HTB root on each veth, a Router Alert socket in each namespace")
        }
        (true, false) => println!("QOS=htb: HTB root on each veth"),
        (false, true) => println!("QOS=ra: a Router Alert socket in each namespace"),
        (false, false) => {}
    }
    for n in sizes {
        let rounds = match std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()) {
            Some(0) => bail!("ROUNDS=0: at least one round is needed"),
            Some(r) => r,
            None => (20_000 / (2 * (n as u32 - 1).max(1))).max(50),
        };
        let chain = build(n)?;
        report(n, "threads", run_threads(&chain, rounds)?);
        report(n, "epoll", run_epoll(&chain, rounds)?);
        report(n, "connected", run_connected(&chain, rounds)?);
        report(n, "nested", run_nested(&chain, rounds)?);
        report(n, "tokio", run_runtime(&chain, rounds, false)?);
        report(n, "actix", run_runtime(&chain, rounds, true)?);
        report(n, "uring", run_uring(&chain, rounds, false)?);
        report(n, "uring-ms", run_uring(&chain, rounds, true)?);
    }
    Ok(())
}
