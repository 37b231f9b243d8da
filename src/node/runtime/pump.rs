//! One task per node thread serves the GIST sockets and deadlines of every
//! node on the thread (issue 17). A node's actor keeps its mailbox (API
//! calls, kernel results, route changes, messaging associations); what
//! arrives on its GIST sockets and what its core's timer asks for go to
//! the node's state straight from this task.
//!
//! The thread's GIST sockets sit in one epoll of the pump's own
//! (level-triggered), and only that epoll's descriptor is registered with
//! tokio's reactor: a datagram costs no readiness record, waker or task
//! wake-up of its own, and one node's answer to another node of the
//! thread is read in the same turn of the pump. `examples/relay_floor`
//! measured the difference on a chain of 1000 namespaces
//! (`results/scale/relay-floor-stop32.txt`): 3.9–4.2 µs a reaction with a
//! tokio task per namespace and its sockets registered with the reactor,
//! 4.1–4.4 with an actor each, 3.1–3.4 with one epoll read from one task,
//! 2.9–3.1 for a bare epoll loop.
//!
//! A pass reads the epoll once (without waiting) and serves each node it
//! reports, or that has a backlog, once: a burst read, a batch handled
//! ([`Served`]). After a pass that leaves a backlog (a flood), or after
//! [`PASSES`] passes with work (a long chain of the thread's own nodes),
//! the pump yields (after tokio's driver has run), so the thread's actors
//! run between them.
//!
//! The pump holds its nodes weakly: a node that stops (its actor dropped)
//! drops its state, sockets and all, and leaves the pump at once. A node
//! whose turn panics is taken out of the pump (logged), so the thread's
//! other nodes go on.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// What a node does when the pump serves it.
pub(super) trait Served {
    /// Reads a burst from the node's receiving sockets numbered `ready`
    /// (the epoll reports them readable) and handles a batch of what waits.
    fn serve(&mut self, ready: &[usize], now: Instant) -> Turn;
    /// A deadline the node armed ([`PumpHandle::arm`]) has come.
    fn fire(&mut self, now: Instant);
    /// The node's name (for the log).
    fn name(&self) -> String;
}

/// What a node's turn left.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Turn {
    /// More is waiting (a backlog, or a burst read full): serve it again
    /// in the next pass, after the thread's other tasks have run.
    pub more: bool,
    /// A read failed: its sockets leave the epoll until then.
    pub resume_at: Option<Instant>,
}

/// Passes of one poll of the pump before it yields.
const PASSES: usize = 16;
/// Readiness reports taken per pass.
const EVENTS: usize = 256;
/// A token's socket number takes its low bits, the node's id the rest.
const SOCKET_BITS: u32 = 16;

/// Why a deadline was armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// The node's core asked for it.
    Core,
    /// A failed read's pause is over.
    Resume,
}

/// A level-triggered epoll (a socket not read empty is reported again).
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Self> {
        // SAFETY: plain system call; a non-negative result is a descriptor
        // we now own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is ours.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds `fd`, readable, reported as `token`.
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes `fd` out (no report at all, errors included, until it is
    /// added again); an fd already closed has left on its own.
    fn del(&self, fd: RawFd) {
        // SAFETY: plain system call; the event argument may be null for DEL.
        unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    /// What is ready now (no wait), into `buf`.
    fn ready(&self, buf: &mut Vec<libc::epoll_event>) -> io::Result<()> {
        buf.clear();
        // SAFETY: the kernel writes at most `capacity` events into the
        // vector's spare room; `set_len` then covers exactly those.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.capacity() as libc::c_int,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: epoll_wait initialised the first `n` events.
        unsafe { buf.set_len(n as usize) };
        Ok(())
    }
}

struct Slot {
    node: Weak<RefCell<dyn Served>>,
    /// Its receiving sockets, by number.
    fds: Vec<RawFd>,
    /// The core deadline armed for the node (an earlier one replaces it;
    /// an entry of the heap that is not this one is stale).
    armed: Option<Instant>,
    /// Its sockets are out of the epoll until then (a failed read); a
    /// resume entry of the heap that is not this one is stale.
    paused: Option<Instant>,
}

struct State {
    epoll: Rc<Epoll>,
    /// By id; a stopped node's slot stays empty (ids are not reused, so a
    /// stale report or deadline never reaches another node).
    slots: Vec<Option<Slot>>,
    timers: BinaryHeap<Reverse<(Instant, usize, Due)>>,
    /// Nodes with a backlog, served in the next pass.
    again: Vec<usize>,
}

/// The pump of the current thread.
#[derive(Clone)]
pub(super) struct Pump {
    state: Rc<RefCell<State>>,
    /// Wakes the pump's task (a deadline armed earlier than its sleep).
    waker: Rc<RefCell<Option<std::task::Waker>>>,
    /// False once the pump's task is gone (its runtime stopped).
    alive: Rc<Cell<bool>>,
}

thread_local! {
    static PUMP: RefCell<Option<Pump>> = const { RefCell::new(None) };
}

/// Marks the pump dead when its task is dropped.
struct Alive(Rc<Cell<bool>>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Pump {
    /// The current thread's pump, started on first use (inside the
    /// thread's runtime); a runtime that stopped took its pump along, and
    /// the next use starts another.
    pub(super) fn current() -> io::Result<Self> {
        PUMP.with(|p| {
            let mut p = p.borrow_mut();
            if let Some(pump) = p.as_ref().filter(|pump| pump.alive.get()) {
                return Ok(pump.clone());
            }
            let epoll = Rc::new(Epoll::new()?);
            // SAFETY: the epoll's descriptor stays open while the task
            // (which holds `epoll` through the state) holds this.
            let outer = unsafe {
                AsyncFd::register_with_interest(epoll.0.as_raw_fd(), Interest::READABLE)
            }?;
            let pump = Self {
                state: Rc::new(RefCell::new(State {
                    epoll,
                    slots: Vec::new(),
                    timers: BinaryHeap::new(),
                    again: Vec::new(),
                })),
                waker: Rc::default(),
                alive: Rc::new(Cell::new(true)),
            };
            let task = Task {
                pump: pump.clone(),
                outer,
                events: Vec::with_capacity(EVENTS),
                serving: Vec::new(),
                ks: Vec::new(),
                sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
                sleep_at: None,
                yielding: None,
                _alive: Alive(pump.alive.clone()),
            };
            actix::spawn(task);
            *p = Some(pump.clone());
            Ok(pump)
        })
    }

    /// Adds a node with its receiving sockets (numbered in `fds`' order).
    pub(super) fn register(
        &self,
        node: Weak<RefCell<dyn Served>>,
        fds: Vec<RawFd>,
    ) -> io::Result<PumpHandle> {
        let mut st = self.state.borrow_mut();
        let id = st.slots.len();
        for (k, &fd) in fds.iter().enumerate() {
            if let Err(e) = st.epoll.add(fd, token(id, k)) {
                for &added in &fds[..k] {
                    st.epoll.del(added);
                }
                return Err(e);
            }
        }
        st.slots.push(Some(Slot {
            node,
            fds,
            armed: None,
            paused: None,
        }));
        Ok(PumpHandle {
            pump: self.clone(),
            id,
        })
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }
}

fn token(id: usize, k: usize) -> u64 {
    ((id as u64) << SOCKET_BITS) | k as u64
}

/// A node's place in its thread's pump; dropping it takes the node out.
pub(super) struct PumpHandle {
    pump: Pump,
    id: usize,
}

impl PumpHandle {
    /// Asks for [`Served::fire`] at `at`, unless an earlier deadline is
    /// armed (a deadline that comes early finds nothing due, and the node
    /// arms its next one).
    pub(super) fn arm(&self, at: Instant) {
        let mut st = self.pump.state.borrow_mut();
        let Some(slot) = st.slots.get_mut(self.id).and_then(Option::as_mut) else {
            return;
        };
        if slot.armed.is_some_and(|a| a <= at) {
            return;
        }
        slot.armed = Some(at);
        let earliest = st.timers.peek().is_none_or(|Reverse(t)| at < t.0);
        st.timers.push(Reverse((at, self.id, Due::Core)));
        drop(st);
        if earliest {
            // The pump's sleep is set for a later deadline, or none.
            self.pump.wake();
        }
    }
}

impl Drop for PumpHandle {
    fn drop(&mut self) {
        if let Ok(mut st) = self.pump.state.try_borrow_mut() {
            st.remove(self.id);
        }
        // Borrowed (the node dropped inside the pump's own pass): its weak
        // reference no longer upgrades, and the pump skips it; its sockets
        // left the epoll as they closed.
    }
}

/// The pump's task.
struct Task {
    pump: Pump,
    /// The epoll's descriptor as tokio's reactor knows it.
    outer: AsyncFd<RawFd>,
    events: Vec<libc::epoll_event>,
    /// (node, socket) of a pass, sorted so each node's are together.
    serving: Vec<(usize, usize)>,
    /// One node's ready sockets.
    ks: Vec<usize>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    sleep_at: Option<Instant>,
    /// The yield after [`PASSES`] passes with work (woken after tokio's
    /// driver has run, as `tokio::task::yield_now` is).
    yielding: Option<Pin<Box<dyn Future<Output = ()>>>>,
    _alive: Alive,
}

impl Task {
    /// Reads the epoll and serves each node it reports, or that has a
    /// backlog, once. Whether there was anything to serve, and whether a
    /// node was left with a backlog.
    fn pass(&mut self, now: Instant) -> (bool, bool) {
        let epoll = self.pump.state.borrow().epoll.clone();
        if let Err(e) = epoll.ready(&mut self.events) {
            tracing::error!("node thread: reading its GIST sockets' epoll failed: {e}");
        }
        self.serving.clear();
        self.serving.extend(self.events.iter().map(|ev| {
            let t = ev.u64;
            (
                (t >> SOCKET_BITS) as usize,
                (t & ((1 << SOCKET_BITS) - 1)) as usize,
            )
        }));
        {
            let mut st = self.pump.state.borrow_mut();
            // A backlog with no socket ready: served with none.
            self.serving
                .extend(st.again.drain(..).map(|id| (id, usize::MAX)));
        }
        if self.serving.is_empty() {
            return (false, false);
        }
        self.serving.sort_unstable();
        let mut served = false;
        let mut i = 0;
        while i < self.serving.len() {
            let id = self.serving[i].0;
            self.ks.clear();
            while i < self.serving.len() && self.serving[i].0 == id {
                let k = self.serving[i].1;
                if k != usize::MAX {
                    self.ks.push(k);
                }
                i += 1;
            }
            let node = {
                let st = self.pump.state.borrow();
                st.slots
                    .get(id)
                    .and_then(Option::as_ref)
                    .and_then(|s| s.node.upgrade())
            };
            let Some(node) = node else {
                continue;
            };
            served = true;
            let ks = &self.ks;
            let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                node.borrow_mut().serve(ks, now)
            }));
            let Ok(turn) = turn else {
                let name = node.try_borrow().map(|n| n.name()).unwrap_or_default();
                drop(node);
                self.pump.state.borrow_mut().panicked(id, &name);
                continue;
            };
            drop(node);
            let mut st = self.pump.state.borrow_mut();
            if turn.more {
                st.again.push(id);
            }
            if let Some(at) = turn.resume_at {
                st.timers.push(Reverse((at, id, Due::Resume)));
                st.pause(id, at);
            }
        }
        (served, !self.pump.state.borrow().again.is_empty())
    }

    /// Fires the deadlines that have come.
    fn deadlines(&mut self, now: Instant) {
        loop {
            let (id, node) = {
                let mut st = self.pump.state.borrow_mut();
                match st.timers.peek() {
                    Some(Reverse((at, ..))) if *at <= now => {}
                    _ => return,
                }
                let Some(Reverse((at, id, due))) = st.timers.pop() else {
                    return;
                };
                let Some(slot) = st.slots.get_mut(id).and_then(Option::as_mut) else {
                    continue;
                };
                match due {
                    Due::Core if slot.armed != Some(at) => continue,
                    Due::Core => slot.armed = None,
                    Due::Resume => {
                        if slot.paused == Some(at) {
                            st.resume(id);
                        }
                        continue;
                    }
                }
                (id, slot.node.upgrade())
            };
            if let Some(node) = node {
                let fired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    node.borrow_mut().fire(now)
                }));
                if fired.is_err() {
                    let name = node.try_borrow().map(|n| n.name()).unwrap_or_default();
                    drop(node);
                    self.pump.state.borrow_mut().panicked(id, &name);
                }
            }
        }
    }
}

impl State {
    /// Leaves node `id`'s sockets out of the epoll until `at`.
    fn pause(&mut self, id: usize, at: Instant) {
        let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if slot.paused.is_none() {
            for &fd in &slot.fds {
                self.epoll.del(fd);
            }
        }
        slot.paused = Some(at);
    }

    /// Puts node `id`'s sockets back in the epoll.
    fn resume(&mut self, id: usize) {
        let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        slot.paused = None;
        for (k, &fd) in slot.fds.iter().enumerate() {
            if let Err(e) = self.epoll.add(fd, token(id, k)) {
                tracing::warn!("node thread: a GIST socket back into its poll: {e}");
            }
        }
    }

    /// Takes node `id` out of the pump.
    fn remove(&mut self, id: usize) {
        if let Some(slot) = self.slots.get_mut(id).and_then(Option::take)
            && slot.paused.is_none()
        {
            for &fd in &slot.fds {
                self.epoll.del(fd);
            }
        }
    }

    /// Node `id`'s turn panicked: its state may be half-changed, so it is
    /// served no more; the thread's other nodes go on.
    fn panicked(&mut self, id: usize, node: &str) {
        tracing::error!(
            %node,
            "the node's turn panicked: it is taken out of its thread's GIST socket poll and \
             receives nothing more (restart it: `vlsp fault --topology T node-stop {node}`, then \
             `node-start {node}`)"
        );
        self.remove(id);
    }
}

impl Future for Task {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this
            .pump
            .waker
            .borrow()
            .as_ref()
            .is_none_or(|w| !w.will_wake(cx.waker()))
        {
            *this.pump.waker.borrow_mut() = Some(cx.waker().clone());
        }
        if let Some(y) = this.yielding.as_mut() {
            if y.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.yielding = None;
        }
        let mut passes = 0;
        loop {
            let now = Instant::now();
            let (served, backlog) = this.pass(now);
            this.deadlines(now);
            if served {
                passes += 1;
                // A chain of the thread's own nodes goes on; a backlog
                // (a flood) gives the thread up after each pass.
                if !backlog && passes < PASSES {
                    continue;
                }
                let mut y: Pin<Box<dyn Future<Output = ()>>> = Box::pin(tokio::task::yield_now());
                if y.as_mut().poll(cx).is_pending() {
                    this.yielding = Some(y);
                    return Poll::Pending;
                }
                passes = 0;
                continue;
            }
            // Nothing ready: wait for the reactor to report the epoll
            // readable again (clearing a report already used up first).
            match this.outer.poll_read_ready(cx) {
                Poll::Ready(Ok(mut g)) => {
                    g.clear_ready();
                    continue;
                }
                Poll::Ready(Err(e)) => {
                    tracing::error!("node thread: its GIST sockets' epoll failed: {e}");
                }
                Poll::Pending => {}
            }
            let next = this.pump.state.borrow().timers.peek().map(|Reverse(t)| t.0);
            if let Some(at) = next {
                if this.sleep_at != Some(at) {
                    this.sleep.as_mut().reset(at.into());
                    this.sleep_at = Some(at);
                }
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.sleep_at = None;
                    continue;
                }
            }
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Duration;

    use super::*;

    /// A node that reads up to a burst from its one socket and logs it.
    struct Fake {
        name: &'static str,
        sock: UdpSocket,
        log: Rc<RefCell<Vec<(&'static str, usize)>>>,
        fired: Rc<RefCell<Vec<Instant>>>,
        /// Pause reading until then, once.
        fail_once: Option<Duration>,
        /// Panic in the next turn.
        panic: bool,
    }

    impl Served for Fake {
        fn serve(&mut self, ready: &[usize], now: Instant) -> Turn {
            assert!(!self.panic, "a turn that panics");
            if let Some(d) = self.fail_once.take() {
                return Turn {
                    more: false,
                    resume_at: Some(now + d),
                };
            }
            let mut buf = [0u8; 64];
            let mut n = 0;
            if !ready.is_empty() {
                while n < 64 && self.sock.recv(&mut buf).is_ok() {
                    n += 1;
                }
            }
            self.log.borrow_mut().push((self.name, n));
            Turn {
                more: n == 64,
                resume_at: None,
            }
        }

        fn fire(&mut self, now: Instant) {
            self.fired.borrow_mut().push(now);
        }

        fn name(&self) -> String {
            self.name.to_string()
        }
    }

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    struct Node {
        fake: Rc<RefCell<Fake>>,
        _handle: PumpHandle,
    }

    fn node(name: &'static str, log: &Rc<RefCell<Vec<(&'static str, usize)>>>) -> Node {
        let fake = Rc::new(RefCell::new(Fake {
            name,
            sock: socket(),
            log: log.clone(),
            fired: Rc::default(),
            fail_once: None,
            panic: false,
        }));
        let fd = fake.borrow().sock.as_raw_fd();
        let served: Rc<RefCell<dyn Served>> = fake.clone();
        let handle = Pump::current()
            .unwrap()
            .register(Rc::downgrade(&served), vec![fd])
            .unwrap();
        Node {
            fake,
            _handle: handle,
        }
    }

    fn addr(n: &Node) -> std::net::SocketAddr {
        n.fake.borrow().sock.local_addr().unwrap()
    }

    /// A flood on one node of the thread does not hold up another: the
    /// pass that reads the flood's first burst serves the other node too,
    /// and the thread's other tasks run between the flood's bursts.
    #[test]
    fn a_flooded_node_shares_the_thread_pass_by_pass() {
        const FLOOD: usize = 200;
        actix::System::new().block_on(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let a = node("a", &log);
            let b = node("b", &log);
            let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            // What a socket's default buffer holds of small datagrams.
            for _ in 0..FLOOD {
                tx.send_to(b"flood", addr(&a)).unwrap();
            }
            tx.send_to(b"one", addr(&b)).unwrap();
            // The other tasks of the thread: how often they ran meanwhile.
            let ticks = Rc::new(Cell::new(0usize));
            let t = ticks.clone();
            actix::spawn(async move {
                loop {
                    t.set(t.get() + 1);
                    tokio::task::yield_now().await;
                }
            });
            let until = Instant::now() + Duration::from_secs(5);
            while log
                .borrow()
                .iter()
                .filter(|(n, _)| *n == "a")
                .map(|e| e.1)
                .sum::<usize>()
                < FLOOD
            {
                assert!(
                    Instant::now() < until,
                    "the flood was not read: {:?}",
                    log.borrow()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let log = log.borrow();
            let first_b = log.iter().position(|(n, k)| *n == "b" && *k == 1);
            let first_b = first_b.expect("b's datagram was never read");
            let a_before: usize = log[..first_b]
                .iter()
                .filter(|(n, _)| *n == "a")
                .map(|e| e.1)
                .sum();
            assert!(a_before <= 64, "b waited behind {a_before} of a's flood");
            assert!(
                log.iter().all(|(_, k)| *k <= 64),
                "a turn read more than a burst: {log:?}"
            );
            // A yield after each full burst.
            let bursts = FLOOD / 64;
            assert!(
                ticks.get() >= bursts,
                "the thread's other tasks ran {} times during {bursts} full bursts",
                ticks.get()
            );
        });
    }

    /// The earliest deadline armed fires, once; a later one armed before it
    /// is not fired on its own; a node that stopped is no longer served.
    #[test]
    fn the_earliest_deadline_fires_and_a_stopped_node_is_left_out() {
        actix::System::new().block_on(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let a = node("a", &log);
            let b = node("b", &log);
            let t0 = Instant::now();
            a._handle.arm(t0 + Duration::from_millis(60));
            a._handle.arm(t0 + Duration::from_millis(20));
            a._handle.arm(t0 + Duration::from_millis(40));
            tokio::time::sleep(Duration::from_millis(120)).await;
            let fired = a.fake.borrow().fired.borrow().clone();
            assert_eq!(fired.len(), 1, "fired at {fired:?}");
            assert!(fired[0] >= t0 + Duration::from_millis(20));
            // b stops: its datagram is never read, a's still is.
            let to_b = addr(&b);
            drop(b);
            let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let _ = tx.send_to(b"late", to_b);
            tx.send_to(b"x", addr(&a)).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let log = log.borrow();
            assert!(log.iter().any(|(n, k)| *n == "a" && *k == 1), "{log:?}");
            assert!(log.iter().all(|(n, _)| *n != "b"), "{log:?}");
        });
    }

    /// A node whose read failed is left out of the poll until its pause is
    /// over, then served again (its datagram still waiting), not spun on.
    #[test]
    fn a_failed_read_pauses_the_node_without_spinning() {
        actix::System::new().block_on(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let a = node("a", &log);
            a.fake.borrow_mut().fail_once = Some(Duration::from_millis(40));
            let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let t0 = Instant::now();
            tx.send_to(b"x", addr(&a)).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                log.borrow().is_empty(),
                "served while paused: {:?}",
                log.borrow()
            );
            tokio::time::sleep(Duration::from_millis(60)).await;
            assert_eq!(*log.borrow(), vec![("a", 1)]);
            assert!(t0.elapsed() >= Duration::from_millis(40));
        });
    }

    /// A node whose turn panics is taken out of the pump; the thread's
    /// other nodes are still served (the panic does not end the pump).
    #[test]
    fn a_node_whose_turn_panics_is_left_out_and_the_others_go_on() {
        actix::System::new().block_on(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let a = node("a", &log);
            let b = node("b", &log);
            a.fake.borrow_mut().panic = true;
            let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            tx.send_to(b"boom", addr(&a)).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            a.fake.borrow_mut().panic = false;
            tx.send_to(b"again", addr(&a)).unwrap();
            tx.send_to(b"x", addr(&b)).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let log = log.borrow();
            assert!(log.iter().any(|(n, k)| *n == "b" && *k == 1), "{log:?}");
            assert!(
                log.iter().all(|(n, _)| *n != "a"),
                "a served after its panic: {log:?}"
            );
        });
    }
}
