//! The node's thread: enters the namespace, opens sockets, starts the actors.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tokio::net::UnixListener;

use super::api_server::{ApiActor, serve_api};
use super::group::SharedThread;
use super::vlink::{Reaper, VlinkActor, VlinkStart};
use super::{NodeActor, SetApi};
use crate::kernel::sockets::GistSockets;
use crate::model::measure::Recorder;
use crate::node::config::NodeConfig;
use crate::node::core::NodeCore;

// ------------------------------------------------------------------ thread

/// A running node: its thread and a way to stop it.
pub struct NodeHandle {
    pub name: String,
    pub api_socket: PathBuf,
    system: actix::System,
    thread: SharedThread,
    grouped: bool,
}

impl NodeHandle {
    /// Asks the node's actors to stop without waiting (many nodes' stops
    /// then overlap; [`NodeHandle::stop`] waits). A node sharing its
    /// thread stops with the others of that thread.
    pub fn ask_stop(&self) {
        if self.grouped {
            super::group::close_open();
        }
        self.system.stop();
    }

    /// Whether other nodes share this node's thread (`VLSP_NODES_PER_THREAD`):
    /// stopping it alone is then impossible, so a caller stopping single
    /// nodes (faults, failure tests) refuses first.
    pub fn shares_thread(&self) -> bool {
        self.grouped
    }

    /// Stops the node's actors and waits for its thread.
    pub fn stop(self) {
        self.ask_stop();
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
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
    ready_rx: std::sync::mpsc::Receiver<Result<actix::System, String>>,
    thread: SharedThread,
    grouped: bool,
}

/// Spawns the node's thread (see [`spawn_node`]) without waiting for it;
/// with `VLSP_NODES_PER_THREAD=N` (N > 1) the node joins a thread that
/// serves up to N nodes (see `group`).
pub fn start_node(cfg: NodeConfig, rec: Recorder) -> anyhow::Result<StartingNode> {
    super::placement::placement().map_err(|e| anyhow::anyhow!("node {}: {e}", cfg.name))?;
    if let Some(n) = super::group::nodes_per_thread()? {
        super::group::refuse_cmode(n, &cfg.name, cfg.cmode)?;
        let (name, api_socket, ready_rx, thread) =
            super::group::start(cfg, rec, n, |c, r| Box::pin(start_actors(c, r)))?;
        return Ok(StartingNode::grouped(name, api_socket, ready_rx, thread));
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<actix::System, String>>();
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
                match start_actors(cfg, rec).await {
                    Ok(()) => {
                        let _ = ready_tx.send(Ok(actix::System::current()));
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
    Ok(StartingNode {
        name,
        api_socket,
        ready_rx,
        thread: Arc::new(Mutex::new(Some(thread))),
        grouped: false,
    })
}

impl StartingNode {
    /// A node a shared thread starts (see `group`).
    fn grouped(
        name: String,
        api_socket: PathBuf,
        ready_rx: std::sync::mpsc::Receiver<Result<actix::System, String>>,
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
        let system = self
            .ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("node {name}: thread ended during start-up"))?
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(NodeHandle {
            name,
            api_socket: self.api_socket,
            system,
            thread: self.thread,
            grouped: self.grouped,
        })
    }
}

async fn start_actors(cfg: NodeConfig, rec: Recorder) -> Result<(), String> {
    let sockets = GistSockets::open(cfg.addrs.clone())
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
                .shaping_on_demand(cfg.links.iter().map(|l| (l.ifname.clone(), l.capacity_bps))),
        )
    } else {
        Box::new(crate::proto::rmf::NoEnforcer)
    };
    let busy = Arc::new(AtomicUsize::new(0));
    let reaper = Reaper::new(&cfg.name, rec.clone(), busy.clone());
    let sockets = Rc::new(sockets);
    let ma_addr = ma_listener.local_addr().ok();
    let rec2 = rec.clone();
    let node = NodeActor::create(move |ctx| {
        let me = ctx.address();
        let vlink = VlinkActor::new(VlinkStart {
            node_name: cfg.name.clone(),
            netns: cfg.netns.clone(),
            backend,
            script_dir,
            node: me,
            rec: rec2.clone(),
            pending: busy.clone(),
            reaper,
            enforcer,
        })
        .start();
        NodeActor {
            core: NodeCore::new(cfg, rec2, rand::random()),
            sockets,
            vlink,
            api: None,
            replies: std::collections::HashMap::new(),
            next_token: 0,
            timer: None,
            vlink_busy: busy,
            mas: Default::default(),
            intake: Rc::new(std::cell::RefCell::new(super::intake::Intake::new(
                super::QUEUE,
            ))),
            draining: Default::default(),
            drained: Default::default(),
            armed: None,
            api_abandoned: 0,
            started: std::time::Instant::now(),
            ma_listener: ma_addr,
        }
    });
    super::tcp::serve(ma_listener, node.clone());
    let api = ApiActor {
        subscribers: vec![],
    }
    .start();
    node.do_send(SetApi(api.clone()));
    serve_api(listener, node, api);
    Ok(())
}
