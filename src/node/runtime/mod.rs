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
//! Actors, one job each:
//! - [`NodeActor`]: the sockets, the core and its timer; it hands its
//!   kernel work ([`vlink::KernelWork`]: tunnel ends, netlink or script
//!   backend, and reservation classes, the enforcer) to kernel threads
//!   started at its first such work, whose results are fed back into the
//!   core;
//! - [`api_server::ApiActor`]: the external program's UNIX socket;
//! - [`tcp`]: GIST messaging associations (C-mode), tasks that feed the
//!   [`NodeActor`] and write what its core sends on them.

mod api_server;
mod datagrams;
mod group;
pub mod intake;
mod kernel_thread;
mod placement;
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

/// Datagrams wait in the node's [`intake::Intake`]; this asks the actor to
/// take more of a backlog (at most one is in the mailbox at a time).
#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

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

/// The node core, its sockets and its reservation classes.
pub struct NodeActor {
    core: NodeCore,
    sockets: Rc<GistSockets>,
    vlink: vlink::KernelWork,
    api: Option<Addr<ApiActor>>,
    replies: HashMap<u64, oneshot::Sender<Reply>>,
    next_token: u64,
    timer: Option<SpawnHandle>,
    /// Tunnel-end operations not finished yet (incl. deferred deletions).
    vlink_busy: Arc<AtomicUsize>,
    /// GIST messaging associations (C-mode).
    mas: tcp::MaPool,
    /// Received datagrams waiting for the core, and the drop counters.
    /// Between messages it is empty unless a [`Drain`] is in the mailbox
    /// (`drain` sends one for what it leaves), so a burst that finds it
    /// non-empty only joins the queue.
    intake: intake::Intake,
    /// When a failed read was last logged.
    last_recv_err: Option<Instant>,
    /// The deadline the timer is armed for.
    armed: Option<Instant>,
    /// API requests whose client had gone: not carried out, or undone.
    api_abandoned: u64,
    /// When the sockets were opened (`health`'s uptime).
    started: Instant,
    /// Where the messaging-association listener is bound.
    ma_listener: Option<std::net::SocketAddr>,
    /// The node's tasks, ended when it stops alone.
    tasks: tasks::NodeTasks,
    /// Whether the node has its thread to itself (an API `shutdown` then
    /// stops the thread).
    alone: bool,
}

/// How many received datagrams may wait for the node: a burst beyond it is
/// shed (dropped and counted), never answered by closing the socket.
pub const QUEUE: usize = 4096;
/// The node's mailbox (API calls, kernel results, [`Drain`]).
const MAILBOX: usize = 1024;
/// Datagrams handled per [`Drain`], so API calls and kernel results
/// interleave with a backlog.
const BATCH: usize = 32;

impl NodeActor {
    /// Sends what the core has to send and runs its actions, until it is
    /// idle; then sets the timer for its next deadline.
    fn run(&mut self, ctx: &mut Context<Self>) {
        self.flush(ctx);
        self.schedule(ctx);
    }

    /// Sends what the core has to send and runs its actions, until it is
    /// idle (the timer is the caller's: see [`Self::schedule`]).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        loop {
            // MAs first: the messages that follow may use them.
            while let Some(a) = self.core.poll_ma_action() {
                match a {
                    MaAction::Open(remote) => self.mas.open(remote, ctx.address()),
                    MaAction::Close(remote) => self.mas.close(remote),
                }
            }
            while let Some(t) = self.core.poll_transmit() {
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
            let Some(a) = self.core.poll_action() else {
                break;
            };
            self.act(a);
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

    /// Arms the timer for the core's next deadline, only when that is
    /// earlier than the armed one (or none is armed): a timer that fires
    /// early finds nothing due and re-arms. Re-arming after every message
    /// cost tokio a wake-up of its own thread (an eventfd write and an
    /// extra epoll_wait) each time the new deadline preceded its park's.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.core.poll_timeout() else {
            return;
        };
        if self.timer.is_some() && self.armed.is_some_and(|a| a <= at) {
            return;
        }
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        self.armed = Some(at);
        let d = at.saturating_duration_since(Instant::now());
        self.timer = Some(ctx.run_later(d, |act, ctx| {
            act.timer = None;
            act.armed = None;
            act.core.handle_timeout(Instant::now());
            act.run(ctx);
        }));
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        let node = self.core.config().name.clone();
        // Route and link changes in the namespace (rtnetlink), so GIST
        // re-queries at once instead of at its next refresh.
        let netns = self.core.config().netns.clone();
        self.tasks
            .spawn(routes::monitor(netns, node, ctx.address()));
        let nslpid = crate::wire::gist::NSLPID_QOS;
        // The actor polls its sockets itself (issue 17): a datagram that
        // finds the node idle is handled in the turn that read it, with no
        // receive task, mailbox message or wake-up in between. Each item is
        // a burst, what the sockets hold at once (up to READ_BURST), queued
        // in the intake before any of it is handled. Every READ_BURST reads
        // the stream yields the thread (after tokio's driver has run), so
        // the other nodes of the thread run between the bursts of a flooded
        // one. A failed read is reported, then the next waits a little: a
        // socket that keeps failing does not spin the thread (`datagrams`).
        let datagrams = datagrams::Datagrams::new(self.sockets.clone(), nslpid);
        ctx.add_stream(datagrams);
    }
}

impl StreamHandler<Vec<std::io::Result<crate::kernel::sockets::Incoming>>> for NodeActor {
    /// Queues a burst of datagrams (overload is shed here, datagram by
    /// datagram; reading goes on, so the node never goes deaf), then, if
    /// no backlog is being worked off, handles a batch at once.
    fn handle(
        &mut self,
        burst: Vec<std::io::Result<crate::kernel::sockets::Incoming>>,
        ctx: &mut Context<Self>,
    ) {
        let node = &self.core.config().name;
        let backlog = !self.intake.is_empty();
        for r in burst {
            match r {
                Ok(inc) => {
                    let q = &mut self.intake;
                    if let Some((why, Some(n))) = q.push(inc, Instant::now()) {
                        tracing::warn!(%node, "{}", q.log_line(why, n));
                    }
                }
                Err(e) => {
                    // At most one line a second, like the drops.
                    let now = Instant::now();
                    if self
                        .last_recv_err
                        .is_none_or(|t| now - t >= intake::LogLimit::PERIOD)
                    {
                        self.last_recv_err = Some(now);
                        tracing::warn!(%node, "GIST socket receive failed: {e}");
                    }
                }
            }
        }
        if !backlog && !self.intake.is_empty() {
            self.drain(ctx);
        }
    }

    /// The datagram stream never ends (the actor stops for other reasons,
    /// and the stream with it); if it did, the node would be deaf.
    fn finished(&mut self, _: &mut Context<Self>) {
        let node = &self.core.config().name;
        tracing::error!(%node, "the GIST sockets' stream ended: the node receives nothing more");
    }
}

impl NodeActor {
    /// Handles up to a batch of queued datagrams; what is left waits behind
    /// the mailbox (a [`Drain`] message), so API calls and kernel results
    /// interleave with a backlog.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        for _ in 0..BATCH {
            let Some(inc) = self.intake.pop() else {
                break;
            };
            self.core.handle_datagram(inc, Instant::now());
            self.flush(ctx);
        }
        // Once per batch, after its datagrams went out: arming a timer can
        // cost a syscall (see `schedule`).
        self.schedule(ctx);
        if !self.intake.is_empty() {
            ctx.address().do_send(Drain);
        }
    }
}

impl Handler<Drain> for NodeActor {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

impl Handler<tcp::MaMessage> for NodeActor {
    type Result = ();
    fn handle(&mut self, tcp::MaMessage(inc): tcp::MaMessage, ctx: &mut Context<Self>) {
        self.core.handle_ma_message(inc, Instant::now());
        self.run(ctx);
    }
}

impl Handler<tcp::MaAccepted> for NodeActor {
    type Result = ();
    fn handle(&mut self, m: tcp::MaAccepted, ctx: &mut Context<Self>) {
        self.mas.accepted(m.stream, m.remote, ctx.address());
    }
}

impl Handler<tcp::MaClosed> for NodeActor {
    type Result = ();
    fn handle(&mut self, m: tcp::MaClosed, ctx: &mut Context<Self>) {
        if self.mas.ended(&m) {
            self.core.ma_closed(m.remote);
            self.run(ctx);
        }
    }
}

impl Handler<ApiCall> for NodeActor {
    type Result = ();
    fn handle(&mut self, call: ApiCall, ctx: &mut Context<Self>) {
        self.next_token += 1;
        let token = self.next_token;
        self.replies.insert(token, call.reply);
        let shutdown = matches!(call.req, Request::Shutdown);
        if matches!(call.req, Request::Reconfigure { .. }) {
            self.vlink.class(ClassWork::ForgetInterfaces);
        }
        self.core
            .handle_api(token, call.req, call.received_ns, Instant::now());
        self.run(ctx);
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
    fn handle(&mut self, a: Abandoned, ctx: &mut Context<Self>) {
        self.api_abandoned += 1;
        let Some(vlink_id) = a.undo else {
            return;
        };
        let node = &self.core.config().name;
        tracing::warn!(
            %node,
            "the API client of virtual link {vlink_id} left before its reply: tearing the link down"
        );
        // No reply channel is registered for this token: the reply is dropped.
        self.next_token += 1;
        let req = Request::Teardown { vlink_id };
        let now_ns = crate::model::measure::now_ns();
        self.core
            .handle_api(self.next_token, req, now_ns, Instant::now());
        self.run(ctx);
    }
}

impl Handler<VlinkResult> for NodeActor {
    type Result = ();
    fn handle(&mut self, r: VlinkResult, ctx: &mut Context<Self>) {
        self.core.tunnel_done(r.sid, r.err, Instant::now());
        self.run(ctx);
    }
}

impl Handler<ClassResult> for NodeActor {
    type Result = ();
    fn handle(&mut self, r: ClassResult, ctx: &mut Context<Self>) {
        self.core.class_done(r.sid, r.err, Instant::now());
        self.run(ctx);
    }
}

impl Handler<RoutesChanged> for NodeActor {
    type Result = ();
    fn handle(&mut self, RoutesChanged(t): RoutesChanged, ctx: &mut Context<Self>) {
        self.core.routes_changed(t, Instant::now());
        self.run(ctx);
    }
}

impl NodeActor {
    /// Ends the node's tasks (its sockets close as they drop) and stops its
    /// actors; its kernel thread removes its classes as the actors drop.
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
        self.api = Some(a);
    }
}
