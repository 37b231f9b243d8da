//! The actors of one substrate node, and the thread they live on. This is
//! the only module that knows actix: the signaling lives in the sans-IO
//! [`NodeCore`](crate::node::core::NodeCore), the kernel work in `kernel`;
//! the actors only move datagrams, API lines and kernel results between
//! them, and run the core's actions.
//!
//! A node thread runs an actix `System` (a current-thread runtime). By
//! default ([`group`]) one thread serves up to 64 nodes, entering each
//! node's network namespace before opening that node's sockets, so every
//! socket and netlink handle a node has belongs to its namespace; with
//! `VLSP_NODES_PER_THREAD=1` (and for C-mode nodes) each node has a thread
//! that enters its namespace first. A node stops alone ([`tasks`]).
//!
//! Actors, one job each, and the thread's pump:
//! - [`NodeActor`]: the node's mailbox (API calls, kernel results, route
//!   changes) over its [`NodeState`] (the sockets, the core); it hands its
//!   kernel work ([`vlink::KernelWork`]: tunnel ends, netlink or script
//!   backend, and reservation classes, the enforcer) to kernel threads
//!   started at its first such work, whose results are fed back into the
//!   core;
//! - [`pump`]: one task per thread that reads the GIST sockets of all its
//!   nodes through one epoll and fires their cores' deadlines, calling
//!   into each node's state (issue 17);
//! - [`api_server::ApiActor`]: the external program's UNIX socket;
//! - [`tcp`]: GIST messaging associations (C-mode), tasks that feed the
//!   [`NodeActor`] and write what its core sends on them.

mod api_server;
mod group;
pub mod intake;
mod kernel_thread;
mod placement;
mod pump;
mod reaper;
mod routes;
mod running;
mod tasks;
mod tcp;
mod thread;
mod vlink;

pub use group::{DEFAULT as NODES_PER_THREAD_DEFAULT, ENV as NODES_PER_THREAD_ENV};
pub use placement::{ENV as KERNEL_CPUS_ENV, signaling_cpus};
pub use reaper::DELETE_DELAY;
pub use thread::{NodeHandle, StartingNode, spawn_node, start_node};

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::kernel::sockets::GistSockets;
use crate::kernel::tunnel::TunnelEnd;
use crate::node::api::{Reply, Request};
use crate::node::core::{CoreAction, NodeCore};
use crate::proto::gist::ma::{MaAction, Via};
use crate::proto::gist::machine::Sid;
use api_server::{ApiActor, Publish};

/// Lower-case hex of a session id.
pub use crate::node::core::hex;

#[derive(Message)]
#[rtype(result = "()")]
struct ApiCall {
    req: Request,
    reply: oneshot::Sender<Reply>,
    /// When the request line was read ([A] on the node starts here).
    received_ns: u64,
}

/// An API client went away before its reply: counted; a link set up for
/// it (`undo`) is torn down again.
#[derive(Message)]
#[rtype(result = "()")]
struct Abandoned {
    undo: Option<u64>,
}

/// A tunnel end to make or remove, on the node's tunnel thread.
struct VlinkWork {
    sid: Sid,
    end: TunnelEnd,
    up: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct VlinkResult {
    sid: Sid,
    err: Option<String>,
}

/// Reservation-class work for the class thread of the node's thread (see
/// `vlink`).
enum ClassWork {
    Install {
        sid: Sid,
        link: String,
        rate: crate::model::units::Rate,
        classifier: crate::proto::rmf::Classifier,
    },
    Remove {
        sid: Sid,
    },
    /// Interfaces changed (`vlsp apply`): forget cached lookups.
    ForgetInterfaces,
}

/// A class asked for by [`ClassWork::Install`] is in place (or refused).
#[derive(Message)]
#[rtype(result = "()")]
struct ClassResult {
    sid: Sid,
    err: Option<String>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct SetApi(Addr<ApiActor>);

/// Stops this node alone: its tasks end and its actors stop (the thread
/// may serve other nodes; see `tasks`).
#[derive(Message)]
#[rtype(result = "()")]
struct StopNode;

/// The namespace's routes or link states changed.
#[derive(Message)]
#[rtype(result = "()")]
struct RoutesChanged(crate::kernel::routes::RouteTable);

/// How long a burst of route and link messages may take to arrive before
/// the table is read once.
const ROUTE_SETTLE: Duration = Duration::from_millis(20);

/// A node's actor: its mailbox (API calls, kernel results, route changes,
/// messaging associations). Its state is shared with the thread's
/// [`pump`], which serves its datagrams and deadlines.
pub struct NodeActor {
    st: Rc<RefCell<NodeState>>,
    /// The node's tasks, ended when it stops alone.
    tasks: tasks::NodeTasks,
    /// Whether the node has its thread to itself (an API `shutdown` then
    /// stops the thread).
    alone: bool,
}

/// The node core, its sockets and its reservation classes.
pub struct NodeState {
    core: NodeCore,
    sockets: Rc<GistSockets>,
    vlink: vlink::KernelWork,
    /// The actions [`Self::flush`] runs after the datagrams (kept for its
    /// buffer).
    later: Vec<CoreAction>,
    api: Option<Addr<ApiActor>>,
    replies: HashMap<u64, oneshot::Sender<Reply>>,
    next_token: u64,
    /// Tunnel-end operations not finished yet (incl. deferred deletions).
    vlink_busy: Arc<AtomicUsize>,
    /// GIST messaging associations (C-mode).
    mas: tcp::MaPool,
    /// The node's actor (messaging associations report to it).
    me: Addr<NodeActor>,
    /// Received datagrams waiting for the core, and the drop counters.
    /// Between turns it is empty unless the node is on the pump's ready
    /// list (a turn that leaves some says so), so a burst that finds it
    /// non-empty only joins the queue.
    intake: intake::Intake,
    /// When a failed read was last logged.
    last_recv_err: Option<Instant>,
    /// After a failed read: no read before then (a socket that keeps
    /// failing does not spin the thread).
    read_paused_until: Option<Instant>,
    /// The socket a turn reads first: the one after the socket the last
    /// turn read from.
    next_socket: usize,
    /// API requests whose client had gone: not carried out, or undone.
    api_abandoned: u64,
    /// When the sockets were opened (`health`'s uptime).
    started: Instant,
    /// Where the messaging-association listener is bound.
    ma_listener: Option<std::net::SocketAddr>,
    /// The node's place in its thread's pump (set once registered).
    pump: Option<pump::PumpHandle>,
}

/// How many received datagrams may wait for the node: a burst beyond it is
/// shed (dropped and counted), never answered by closing the socket.
pub const QUEUE: usize = 4096;
/// The node's mailbox (API calls, kernel results, route changes).
const MAILBOX: usize = 1024;
/// Datagrams handled per turn, so API calls, kernel results and the
/// thread's other nodes interleave with a backlog.
const BATCH: usize = 32;
/// Datagrams read in one turn before the node handles any, and read
/// before the node gives the thread to its other nodes.
const READ_BURST: usize = 64;
/// How long a node waits after a failed read: a socket that keeps failing
/// does not spin the thread.
const AFTER_FAILURE: Duration = Duration::from_millis(10);

impl NodeState {
    /// Sends what the core has to send and runs its actions, until it is
    /// idle; then arms the pump for its next deadline.
    fn run(&mut self) {
        self.flush();
        self.schedule();
    }

    /// Sends what the core has to send and runs its actions, until it is
    /// idle (the deadline is the caller's: see [`Self::schedule`]).
    fn flush(&mut self) {
        loop {
            // MAs first: the messages that follow may use them.
            while let Some(a) = self.core.poll_ma_action() {
                match a {
                    MaAction::Open(remote) => self.mas.open(remote, self.me.clone()),
                    MaAction::Close(remote) => self.mas.close(remote),
                }
            }
            // A tunnel end is handed to its kernel thread before the
            // datagrams go: sending one runs the next node's receive path
            // on this thread (veth), ~50 µs on the initiator, and the end
            // is the longest piece of the setup's kernel work, done in
            // order under the RTNL lock with the responder's end and the
            // classes (issue 17). A teardown's end (out of service) moves
            // ahead of its TEAR alike: the two never waited for each other.
            // The rest keeps its place after the datagrams.
            let mut later = std::mem::take(&mut self.later);
            let mut any = false;
            while let Some(a) = self.core.poll_action() {
                any = true;
                if matches!(
                    a,
                    CoreAction::TunnelUp { .. } | CoreAction::TunnelDown { .. }
                ) {
                    self.act(a);
                } else {
                    later.push(a);
                }
            }
            while let Some(t) = self.core.poll_transmit() {
                any = true;
                let r = if let Via::Ma(remote) = t.via {
                    self.mas.send(remote, t.bytes)
                } else if t.qmode {
                    self.sockets.send_qmode(t.dst, &t.bytes, t.ttl)
                } else {
                    self.sockets.send_dmode(t.dst, &t.bytes, t.ttl)
                };
                if let Err(e) = r {
                    let node = &self.core.config().name;
                    tracing::warn!(%node, dst = %t.dst, "send failed: {e}");
                }
            }
            for a in later.drain(..) {
                self.act(a);
            }
            self.later = later;
            if !any {
                break;
            }
        }
    }

    fn act(&mut self, a: CoreAction) {
        match a {
            CoreAction::TunnelUp { sid, end } => {
                self.vlink.tunnel(VlinkWork { sid, end, up: true });
            }
            CoreAction::TunnelDown { sid, end } => self.vlink.tunnel(VlinkWork {
                sid,
                end,
                up: false,
            }),
            CoreAction::InstallClass {
                sid,
                link,
                rate,
                classifier,
            } => {
                // On the node's kernel thread: the RESERVE (or the Query it
                // waits for) goes on at once, and this thread never waits
                // for the kernel's RTNL lock (held by tunnel ends being made
                // in any namespace); the core holds the RESPONSE until
                // `class_done` (issue 17). In order with removals.
                self.vlink.class(ClassWork::Install {
                    sid,
                    link,
                    rate,
                    classifier,
                });
            }
            CoreAction::RemoveClass { sid } => self.vlink.class(ClassWork::Remove { sid }),
            CoreAction::Reply { token, mut reply } => {
                if let Reply::Stats { stats } = &mut reply {
                    stats.vlink_pending = self.vlink_busy.load(Ordering::SeqCst);
                    let q = &self.intake;
                    stats.shed_overload = q.shed;
                    stats.junk = q.junk;
                    stats.api_abandoned = self.api_abandoned;
                }
                if let Reply::Health { health } = &mut reply {
                    let (udp, ra) = self.sockets.bound();
                    health.gist_udp = udp.map(|a| a.to_string());
                    health.router_alert = ra;
                    health.ma_listener = self.ma_listener.map(|a| a.to_string());
                    health.uptime_s = self.started.elapsed().as_secs_f64();
                }
                if let Some(tx) = self.replies.remove(&token) {
                    let _ = tx.send(reply);
                }
            }
            CoreAction::Event(ev) => {
                if let Some(api) = &self.api {
                    api.do_send(Publish(ev));
                }
            }
        }
    }

    /// Arms the pump for the core's next deadline (it keeps the earliest
    /// armed: one that comes early finds nothing due and the next is
    /// armed then).
    fn schedule(&mut self) {
        if let (Some(at), Some(pump)) = (self.core.poll_timeout(), &self.pump) {
            pump.arm(at);
        }
    }

    /// Queues one read's result: overload is shed here, datagram by
    /// datagram (reading goes on, so the node never goes deaf). False for
    /// a failed read.
    fn take(&mut self, r: std::io::Result<crate::kernel::sockets::Incoming>, now: Instant) -> bool {
        let node = &self.core.config().name;
        match r {
            Ok(inc) => {
                let q = &mut self.intake;
                if let Some((why, Some(n))) = q.push(inc, now) {
                    tracing::warn!(%node, "{}", q.log_line(why, n));
                }
                true
            }
            Err(e) => {
                // At most one line a second, like the drops.
                if self
                    .last_recv_err
                    .is_none_or(|t| now - t >= intake::LogLimit::PERIOD)
                {
                    self.last_recv_err = Some(now);
                    tracing::warn!(%node, "GIST socket receive failed: {e}");
                }
                false
            }
        }
    }

    /// Handles up to a batch of queued datagrams; what is left waits for
    /// the node's next turn, so API calls, kernel results and the thread's
    /// other nodes interleave with a backlog.
    fn drain(&mut self) {
        for _ in 0..BATCH {
            let Some(inc) = self.intake.pop() else {
                break;
            };
            self.core.handle_datagram(inc, Instant::now());
            self.flush();
        }
        // Once per batch, after its datagrams went out.
        self.schedule();
    }
}

impl pump::Served for NodeState {
    /// Reads a burst (what the ready sockets hold, up to [`READ_BURST`])
    /// into the intake before any of it is handled, then handles a batch.
    fn serve(&mut self, ready: &[usize], now: Instant) -> pump::Turn {
        let mut turn = pump::Turn::default();
        if self.read_paused_until.is_none_or(|t| now >= t) {
            self.read_paused_until = None;
            let nslpid = crate::wire::gist::NSLPID_QOS;
            let keep = |p: &[u8]| crate::proto::gist::codec::is_gist_for(p, nslpid);
            let sockets = self.sockets.clone();
            let mut read = 0;
            // What an earlier read queued first (no readiness reports it),
            // then the ready sockets from the one after the socket the last
            // turn read (a flooded socket does not keep the others unread).
            let start = ready.partition_point(|&k| k < self.next_socket);
            let order = std::iter::once(usize::MAX)
                .chain(ready[start..].iter().copied())
                .chain(ready[..start].iter().copied());
            'sockets: for k in order {
                while read < READ_BURST {
                    let std::task::Poll::Ready(r) = sockets.poll_recv_from(k, &keep) else {
                        break;
                    };
                    read += 1;
                    if k != usize::MAX {
                        self.next_socket = k + 1;
                    }
                    if !self.take(r, now) {
                        let at = now + AFTER_FAILURE;
                        self.read_paused_until = Some(at);
                        turn.resume_at = Some(at);
                        break 'sockets;
                    }
                    // Empty after that read: no read that would only say
                    // EAGAIN (the epoll reports what comes next).
                    if sockets.drained() && !sockets.has_queued() {
                        break;
                    }
                }
                // Left readable after reads that gave this node nothing.
                turn.more |= k != usize::MAX && sockets.unfinished();
            }
            // A full burst (a flood), or what a read queued beyond it (no
            // readiness reports that).
            turn.more |= read == READ_BURST || sockets.has_queued();
        }
        self.drain();
        turn.more |= !self.intake.is_empty();
        turn
    }

    fn fire(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.run();
    }

    fn name(&self) -> String {
        self.core.config().name.clone()
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        let st = self.st.borrow();
        let node = st.core.config().name.clone();
        // Route and link changes in the namespace (rtnetlink), so GIST
        // re-queries at once instead of at its next refresh.
        let netns = st.core.config().netns.clone();
        self.tasks
            .spawn(routes::monitor(netns, node, ctx.address()));
    }
}

impl Handler<tcp::MaMessage> for NodeActor {
    type Result = ();
    fn handle(&mut self, tcp::MaMessage(inc): tcp::MaMessage, _: &mut Context<Self>) {
        let mut st = self.st.borrow_mut();
        st.core.handle_ma_message(inc, Instant::now());
        st.run();
    }
}

impl Handler<tcp::MaAccepted> for NodeActor {
    type Result = ();
    fn handle(&mut self, m: tcp::MaAccepted, ctx: &mut Context<Self>) {
        self.st
            .borrow_mut()
            .mas
            .accepted(m.stream, m.remote, ctx.address());
    }
}

impl Handler<tcp::MaClosed> for NodeActor {
    type Result = ();
    fn handle(&mut self, m: tcp::MaClosed, _: &mut Context<Self>) {
        let mut st = self.st.borrow_mut();
        if st.mas.ended(&m) {
            st.core.ma_closed(m.remote);
            st.run();
        }
    }
}

impl Handler<ApiCall> for NodeActor {
    type Result = ();
    fn handle(&mut self, call: ApiCall, ctx: &mut Context<Self>) {
        let shutdown = matches!(call.req, Request::Shutdown);
        {
            let mut st = self.st.borrow_mut();
            st.next_token += 1;
            let token = st.next_token;
            st.replies.insert(token, call.reply);
            if matches!(call.req, Request::Reconfigure { .. }) {
                st.vlink.class(ClassWork::ForgetInterfaces);
            }
            if matches!(call.req, Request::Setup { .. }) {
                // The initiator's tunnel end is handed over at the end of
                // this turn, after admission and the setup's state: the
                // tunnel thread's CPU wakes meanwhile.
                st.vlink.warm_tunnels();
            }
            st.core
                .handle_api(token, call.req, call.received_ns, Instant::now());
            st.run();
        }
        if shutdown {
            // `vlsp apply` stops this node: after its reply has gone out.
            ctx.run_later(std::time::Duration::from_millis(200), |act, ctx| {
                if act.alone {
                    actix::System::current().stop()
                } else {
                    act.stop_alone(ctx)
                }
            });
        }
    }
}

impl Handler<Abandoned> for NodeActor {
    type Result = ();
    fn handle(&mut self, a: Abandoned, _: &mut Context<Self>) {
        let mut st = self.st.borrow_mut();
        st.api_abandoned += 1;
        let Some(vlink_id) = a.undo else {
            return;
        };
        let node = &st.core.config().name;
        tracing::warn!(
            %node,
            "the API client of virtual link {vlink_id} left before its reply: tearing the link down"
        );
        // No reply channel is registered for this token: the reply is dropped.
        st.next_token += 1;
        let token = st.next_token;
        let req = Request::Teardown { vlink_id };
        let now_ns = crate::model::measure::now_ns();
        st.core.handle_api(token, req, now_ns, Instant::now());
        st.run();
    }
}

impl Handler<VlinkResult> for NodeActor {
    type Result = ();
    fn handle(&mut self, r: VlinkResult, _: &mut Context<Self>) {
        let mut st = self.st.borrow_mut();
        st.core.tunnel_done(r.sid, r.err, Instant::now());
        st.run();
    }
}

impl Handler<ClassResult> for NodeActor {
    type Result = ();
    fn handle(&mut self, r: ClassResult, _: &mut Context<Self>) {
        let mut st = self.st.borrow_mut();
        st.core.class_done(r.sid, r.err, Instant::now());
        st.run();
    }
}

impl Handler<RoutesChanged> for NodeActor {
    type Result = ();
    fn handle(&mut self, RoutesChanged(t): RoutesChanged, _: &mut Context<Self>) {
        let mut st = self.st.borrow_mut();
        st.core.routes_changed(t, Instant::now());
        st.run();
    }
}

impl NodeActor {
    /// The actor over `st`, whose sockets it registers with the thread's
    /// pump (so its datagrams and deadlines are served from then on).
    fn new(st: NodeState, tasks: tasks::NodeTasks, alone: bool) -> std::io::Result<Self> {
        let fds = st.sockets.rx_fds();
        let st = Rc::new(RefCell::new(st));
        let served: Rc<RefCell<dyn pump::Served>> = st.clone();
        let handle = pump::Pump::current()?.register(Rc::downgrade(&served), fds)?;
        st.borrow_mut().pump = Some(handle);
        Ok(Self { st, tasks, alone })
    }

    /// Ends the node's tasks and stops its actors; its state (sockets and
    /// all) goes with the actor, and with it its place in the pump; its
    /// kernel thread removes its classes as the state drops.
    fn stop_alone(&mut self, ctx: &mut Context<Self>) {
        self.tasks.abort_all();
        ctx.stop();
    }
}

impl Handler<StopNode> for NodeActor {
    type Result = ();
    fn handle(&mut self, _: StopNode, ctx: &mut Context<Self>) {
        self.stop_alone(ctx);
    }
}

impl Handler<SetApi> for NodeActor {
    type Result = ();
    fn handle(&mut self, SetApi(a): SetApi, _: &mut Context<Self>) {
        self.st.borrow_mut().api = Some(a);
    }
}
