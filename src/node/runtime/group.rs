//! Several nodes on one thread (`VLSP_NODES_PER_THREAD=N`, off by default;
//! issue 17). A node's reaction to a datagram is ~10 µs of its own work but
//! ~45 µs in all on a chain: the sender's `sendmsg` wakes the receiver's
//! thread, a context switch and an `epoll_wait` round on every message.
//! Nodes sharing a thread hand a datagram to the next one's socket and
//! serve it in the same event loop, without a switch.
//!
//! A socket keeps the namespace it was created in, so the shared thread
//! enters each node's namespace before opening that node's sockets and lets
//! the node's actors start (their route monitor opens its netlink socket at
//! its first poll) before it enters the next one. What a node opens later
//! must not depend on the thread's namespace: the kernel thread enters the
//! node's namespace itself (`vlink`). Not for C-mode (a messaging
//! association's TCP socket is opened when needed, in whatever namespace
//! the thread is in last) nor for `vlsp apply` stopping single nodes (a
//! node's stop stops its thread's other nodes too).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::model::measure::Recorder;
use crate::node::config::NodeConfig;

/// A node thread, shared by the handles of the nodes it serves (one, or
/// several here): the first stop joins it.
pub(super) type SharedThread = Arc<Mutex<Option<std::thread::JoinHandle<()>>>>;

/// Opens a node's sockets and starts its actors (the thread's caller
/// passes it, so this file needs nothing of `thread`).
pub(super) type StartActors =
    fn(NodeConfig, Recorder) -> Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// What a caller needs of a node handed to a shared thread.
pub(super) type Handed = (
    String,
    PathBuf,
    std::sync::mpsc::Receiver<Result<actix::System, String>>,
    SharedThread,
);

/// The environment variable that turns grouping on.
pub const ENV: &str = "VLSP_NODES_PER_THREAD";

/// `Some(N)` when `VLSP_NODES_PER_THREAD` asks for N > 1 nodes per thread;
/// a value that is not a number is refused rather than silently ignored,
/// so a run never measures the other mode than the one asked for.
pub fn nodes_per_thread() -> anyhow::Result<Option<usize>> {
    parse(std::env::var(ENV).ok().as_deref()).map_err(|e| anyhow::anyhow!(e))
}

fn parse(v: Option<&str>) -> Result<Option<usize>, String> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match v.parse::<usize>() {
        Ok(n) => Ok(Some(n).filter(|n| *n > 1)),
        Err(_) => Err(format!(
            "{ENV}={v:?} is not a number of nodes per thread: set it to 2 or more to group \
             nodes, to 1 (or unset it) for a thread per node"
        )),
    }
}

/// A C-mode node cannot share a thread: a messaging association's TCP
/// socket is opened when needed, in whatever namespace the thread is in.
pub(super) fn refuse_cmode(per_thread: usize, node: &str, cmode: bool) -> anyhow::Result<()> {
    if cmode {
        anyhow::bail!(
            "node {node}: {ENV}={per_thread} cannot run a C-mode node (gist_mode = \"c\"): a \
             messaging association's TCP socket would open in another node's namespace; unset \
             {ENV} or use D-mode"
        );
    }
    Ok(())
}

type Ready = std::sync::mpsc::Sender<Result<actix::System, String>>;

struct Job {
    cfg: NodeConfig,
    rec: Recorder,
    ready: Ready,
}

/// The thread taking new nodes, and how many more it takes.
struct Open {
    tx: mpsc::UnboundedSender<Job>,
    left: usize,
    thread: SharedThread,
}

static OPEN: Mutex<Option<Open>> = Mutex::new(None);

/// Hands `cfg` to the thread taking nodes (a new one when there is none or
/// it is full).
pub(super) fn start(
    cfg: NodeConfig,
    rec: Recorder,
    per_thread: usize,
    start_actors: StartActors,
) -> anyhow::Result<Handed> {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    if open.as_ref().is_none_or(|o| o.left == 0) {
        *open = Some(spawn_thread(&cfg.name, per_thread, start_actors)?);
    }
    let o = open.as_mut().expect("set above");
    let (ready, ready_rx) = std::sync::mpsc::channel();
    let name = cfg.name.clone();
    let api_socket = cfg.api_socket.clone();
    let thread = o.thread.clone();
    o.tx.send(Job { cfg, rec, ready })
        .map_err(|_| anyhow::anyhow!("node {name}: its shared node thread has ended"))?;
    o.left -= 1;
    if o.left == 0 {
        // Full: its start loop ends and its actors run until stopped.
        *open = None;
    }
    Ok((name, api_socket, ready_rx, thread))
}

/// No more nodes join the thread now taking them (a stop is coming): its
/// start loop ends, so the stop reaches its actors.
pub fn close_open() {
    OPEN.lock().unwrap_or_else(|p| p.into_inner()).take();
}

fn spawn_thread(first: &str, per_thread: usize, start_actors: StartActors) -> anyhow::Result<Open> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let thread = std::thread::Builder::new()
        .name(format!("nodes-{first}"))
        .spawn(move || {
            super::placement::pin_current(super::placement::Role::Signaling);
            let sys = actix::System::new();
            sys.block_on(async move {
                while let Some(Job { cfg, rec, ready }) = rx.recv().await {
                    let name = cfg.name.clone();
                    if let Err(e) = crate::kernel::substrate::enter(&cfg.netns) {
                        let _ = ready.send(Err(format!(
                            "node {name}: cannot enter namespace {}: {e}",
                            cfg.netns.display()
                        )));
                        continue;
                    }
                    match start_actors(cfg, rec).await {
                        Ok(()) => {
                            // Let the node's actors take their first turn
                            // (and open what they open then) in its namespace.
                            for _ in 0..16 {
                                tokio::task::yield_now().await;
                            }
                            let _ = ready.send(Ok(actix::System::current()));
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                }
            });
            let _ = sys.run();
        })
        .map_err(|e| anyhow::anyhow!("node {first}: cannot start a shared node thread: {e}"))?;
    Ok(Open {
        tx,
        left: per_thread,
        thread: Arc::new(Mutex::new(Some(thread))),
    })
}

#[cfg(test)]
mod tests {
    use super::{ENV, parse, refuse_cmode};

    #[test]
    fn a_c_mode_node_is_refused_a_shared_thread_by_name() {
        let e = refuse_cmode(8, "tb2", true).unwrap_err().to_string();
        assert!(
            e.contains("tb2") && e.contains(ENV) && e.contains("D-mode"),
            "{e}"
        );
        assert!(refuse_cmode(8, "tb2", false).is_ok());
    }

    #[test]
    fn grouping_is_off_unless_more_than_one_node_per_thread_is_asked() {
        assert_eq!(parse(None), Ok(None));
        assert_eq!(parse(Some("")), Ok(None));
        assert_eq!(parse(Some("1")), Ok(None));
        assert_eq!(parse(Some("0")), Ok(None));
        assert_eq!(parse(Some("64")), Ok(Some(64)));
        assert_eq!(parse(Some(" 8\n")), Ok(Some(8)));
        let e = parse(Some("many")).unwrap_err();
        assert!(
            e.contains("VLSP_NODES_PER_THREAD=\"many\"") && e.contains("2 or more"),
            "{e}"
        );
    }
}
