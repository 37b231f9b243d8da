//! The node's thread: enters the namespace, opens sockets, starts the actors.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use actix::prelude::*;
use tokio::net::UnixListener;

use super::api_server::{ApiActor, serve_api};
use super::reaper::Reaper;
use super::running::{Running, Shared, SharedThread};
use super::tasks::{Gone, NodeTasks};
use super::vlink::{KernelWork, VlinkParts};
use super::{NodeActor, NodeState, SetApi, StopNode};
use crate::kernel::sockets::GistSockets;
use crate::model::measure::Recorder;
use crate::node::config::NodeConfig;
use crate::node::core::NodeCore;

// ------------------------------------------------------------------ thread

/// How long a node may take to stop (its kernel threads finishing its
/// queued work and removing its classes included).
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running node: its thread and a way to stop it.
pub struct NodeHandle {
    pub name: String,
    pub api_socket: PathBuf,
    run: Running,
    thread: SharedThread,
    grouped: bool,
}

impl NodeHandle {
    /// Asks the node to stop without waiting (many nodes' stops then
    /// overlap; [`NodeHandle::stop`] waits). A node sharing its thread
    /// stops alone: its tasks end and its actors stop, the others go on.
    pub fn ask_stop(&self) {
        if self.grouped {
            // The thread takes no more nodes: it ends with its last one.
            super::group::close_open();
            self.run.node.do_send(StopNode);
        } else {
            self.run.system.stop();
        }
    }

    /// Stops the node and waits until its sockets are closed and its
    /// classes removed (and its thread has ended, when it was the last of it).
    pub fn stop(self) {
        self.ask_stop();
        if !self.run.gone.wait(STOP_LIMIT) {
            tracing::warn!(
                node = %self.name,
                "still not stopped after {STOP_LIMIT:?}: some of its sockets or classes may stay \
                 until the process ends"
            );
        }
        if self.grouped {
            self.thread.release();
        } else {
            self.thread.join();
        }
    }
}

/// Starts a node: a thread that enters `cfg.netns`, opens its sockets there
/// and runs the actors until stopped. Returns once the API socket listens.
pub fn spawn_node(cfg: NodeConfig, rec: Recorder) -> anyhow::Result<NodeHandle> {
    start_node(cfg, rec)?.ready()
}

/// A node whose thread is starting: [`StartingNode::ready`] waits for it.
/// Starting many before waiting for any lets their start-ups overlap
/// (a testbed of thousands of routers would otherwise wait for each).
pub struct StartingNode {
    name: String,
    api_socket: PathBuf,
    ready_rx: std::sync::mpsc::Receiver<Result<Running, String>>,
    thread: SharedThread,
    grouped: bool,
}

/// Spawns the node's thread (see [`spawn_node`]) without waiting for it. By
/// default the node joins a thread serving up to
/// [`group::DEFAULT`](super::group::DEFAULT) nodes; with
/// `VLSP_NODES_PER_THREAD=1`, and for a C-mode node, it gets a thread of
/// its own (see `group`).
pub fn start_node(cfg: NodeConfig, rec: Recorder) -> anyhow::Result<StartingNode> {
    // Grouping first: a value it refuses must not decide the placement.
    let per_thread = super::group::per_thread(&cfg.name, cfg.cmode)?;
    super::placement::placement(per_thread.is_some())
        .map_err(|e| anyhow::anyhow!("node {}: {e}", cfg.name))?;
    if let Some(n) = per_thread {
        let (name, api_socket, ready_rx, thread) =
            super::group::start(cfg, rec, n, |c, r| Box::pin(start_actors(c, r, false)))?;
        return Ok(StartingNode::grouped(name, api_socket, ready_rx, thread));
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Running, String>>();
    let name = cfg.name.clone();
    let api_socket = cfg.api_socket.clone();
    let thread = std::thread::Builder::new()
        .name(format!("node-{name}"))
        .spawn(move || {
            super::placement::pin_current(super::placement::Role::Signaling);
            if let Err(e) = crate::kernel::substrate::enter(&cfg.netns) {
                let _ = ready_tx.send(Err(format!(
                    "node {}: cannot enter namespace {}: {e}",
                    cfg.name,
                    cfg.netns.display()
                )));
                return;
            }
            let sys = actix::System::new();
            sys.block_on(async move {
                match start_actors(cfg, rec, true).await {
                    Ok((node, gone)) => {
                        let system = actix::System::current();
                        let _ = ready_tx.send(Ok(Running { system, node, gone }));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        actix::System::current().stop();
                    }
                }
            });
            let _ = sys.run();
        })
        .map_err(|e| anyhow::anyhow!("node {name}: cannot start its thread: {e}"))?;
    let thread = Shared::new(thread);
    thread.hand();
    Ok(StartingNode {
        name,
        api_socket,
        ready_rx,
        thread,
        grouped: false,
    })
}

impl StartingNode {
    /// A node a shared thread starts (see `group`).
    fn grouped(
        name: String,
        api_socket: PathBuf,
        ready_rx: std::sync::mpsc::Receiver<Result<Running, String>>,
        thread: SharedThread,
    ) -> Self {
        Self {
            name,
            api_socket,
            ready_rx,
            thread,
            grouped: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the node's API socket listens (or its start failed).
    pub fn ready(self) -> anyhow::Result<NodeHandle> {
        let name = self.name;
        let started = self
            .ready_rx
            .recv()
            .map_err(|_| format!("node {name}: thread ended during start-up"))
            .and_then(|r| r);
        let run = match started {
            Ok(run) => run,
            Err(e) => {
                if self.grouped {
                    // No node joins a thread after one of its starts failed.
                    super::group::close_open();
                }
                self.thread.release();
                anyhow::bail!(e)
            }
        };
        Ok(NodeHandle {
            name,
            api_socket: self.api_socket,
            run,
            thread: self.thread,
            grouped: self.grouped,
        })
    }
}

/// Opens the node's sockets in the thread's current namespace and starts
/// its actors; `alone`: the node has its thread to itself, so an API
/// `shutdown` may stop the thread.
pub(super) async fn start_actors(
    cfg: NodeConfig,
    rec: Recorder,
    alone: bool,
) -> Result<(Addr<NodeActor>, Gone), String> {
    // Out of tokio's reactor: the thread's pump polls them (`pump`).
    let sockets = GistSockets::open_pumped(cfg.addrs.clone(), &cfg.neighbours())
        .map_err(|e| format!("node {}: GIST sockets: {e}", cfg.name))?;
    let ma_listener = crate::kernel::sockets::tcp::listen(cfg.ma_config().port)
        .await
        .map_err(|e| format!("node {}: {e}", cfg.name))?;
    // Tunnel ends get a thread and netlink socket of their own, at the
    // node's first tunnel work (see `vlink`).
    let (backend, script_dir) = (cfg.backend, cfg.script_dir.clone());
    let _ = std::fs::remove_file(&cfg.api_socket);
    if let Some(d) = cfg.api_socket.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let listener = UnixListener::bind(&cfg.api_socket).map_err(|e| {
        format!(
            "node {}: API socket {}: {e}",
            cfg.name,
            cfg.api_socket.display()
        )
    })?;
    // The enforcer's netlink socket is opened here, on the node's thread,
    // so that it lives in the node's namespace.
    let enforcer: Box<dyn crate::proto::rmf::Enforcer> = if cfg.qos_enforce {
        Box::new(
            crate::kernel::tc::HtbEnforcer::open(rec.clone())
                .map_err(|e| format!("node {}: QoS enforcement: {e}", cfg.name))?
                .shaping_on_demand(cfg.links.iter().map(|l| (l.ifname.clone(), l.capacity_bps)))
                .sweeping(cfg.links.iter().map(|l| l.ifname.clone())),
        )
    } else {
        Box::new(crate::proto::rmf::NoEnforcer)
    };
    let busy = Arc::new(AtomicUsize::new(0));
    let (tasks, gone) = NodeTasks::new();
    let reaper = Reaper::new(&cfg.name, rec.clone(), busy.clone());
    let sockets = Rc::new(sockets);
    let ma_addr = ma_listener.local_addr().ok();
    let rec2 = rec.clone();
    let node_tasks = tasks.clone();
    let name = cfg.name.clone();
    let ctx = Context::<NodeActor>::new();
    let me = ctx.address();
    let node = {
        let vlink = KernelWork::new(VlinkParts {
            node_name: cfg.name.clone(),
            netns: cfg.netns.clone(),
            backend,
            script_dir,
            node: me.clone(),
            rec: rec2.clone(),
            pending: busy.clone(),
            reaper,
            enforcer,
            keep: node_tasks.keep(),
        });
        let st = NodeState {
            core: NodeCore::new(cfg, rec2, rand::random()),
            sockets,
            vlink,
            later: Vec::new(),
            api: None,
            replies: std::collections::HashMap::new(),
            next_token: 0,
            vlink_busy: busy,
            mas: Default::default(),
            me,
            intake: super::intake::Intake::new(super::QUEUE),
            last_recv_err: None,
            read_paused_until: None,
            next_socket: 0,
            api_abandoned: 0,
            started: std::time::Instant::now(),
            ma_listener: ma_addr,
            pump: None,
        };
        let actor = NodeActor::new(st, node_tasks, alone)
            .map_err(|e| format!("node {name}: the node thread's GIST socket poll: {e}"))?;
        ctx.run(actor)
    };
    super::tcp::serve(ma_listener, node.clone(), &tasks);
    let api = ApiActor {
        subscribers: vec![],
    }
    .start();
    node.do_send(SetApi(api.clone()));
    serve_api(listener, node.clone(), api, tasks);
    Ok((node, gone))
}
