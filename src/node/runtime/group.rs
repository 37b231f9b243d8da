//! Several nodes on one thread (by default [`DEFAULT`]; `VLSP_NODES_PER_THREAD=N`
//! sets N, and 1 gives each node a thread; issue 17). A node's reaction to a
//! datagram is ~10 µs of its own work but ~45 µs in all on a chain when
//! each node has a thread: the sender's `sendmsg` wakes the receiver's
//! thread, a context switch and an `epoll_wait` round on every message.
//! Nodes sharing a thread hand a datagram to the next one's socket and
//! serve it in the same event loop, without a switch.
//!
//! A socket keeps the namespace it was created in, so the shared thread
//! enters each node's namespace before opening that node's sockets and lets
//! the node's actors start (their route monitor opens its netlink socket at
//! its first poll) before it enters the next one. What a node opens later
//! must not depend on the thread's namespace: the kernel thread enters the
//! node's namespace itself (`kernel_thread`). Not for C-mode (a messaging
//! association's TCP socket is opened when needed, in whatever namespace
//! the thread is in last): a C-mode node gets a thread of its own. A node
//! stops alone (`tasks`); the thread ends with its last node.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::running::{Running, Shared, SharedThread};
use crate::model::measure::Recorder;
use crate::node::config::NodeConfig;

/// Opens a node's sockets and starts its actors (the thread's caller
/// passes it, so this file needs nothing of `thread`'s start-up).
pub(super) type StartActors = fn(
    NodeConfig,
    Recorder,
) -> Pin<
    Box<dyn Future<Output = Result<(actix::Addr<super::NodeActor>, super::tasks::Gone), String>>>,
>;

/// What a caller needs of a node handed to a shared thread.
pub(super) type Handed = (
    String,
    PathBuf,
    std::sync::mpsc::Receiver<Result<Running, String>>,
    SharedThread,
);

/// The environment variable that sets how many nodes share a thread.
pub const ENV: &str = "VLSP_NODES_PER_THREAD";

/// Nodes per thread when [`ENV`] is unset. A chain's setup crosses a thread
/// boundary once per this many routers (each crossing costs a wake-up and a
/// context switch per message), while a testbed of thousands of routers
/// still starts its nodes on many threads at once.
pub const DEFAULT: usize = 64;

/// The parsed value and whether it was set explicitly.
fn parse(v: Option<&str>) -> Result<(Option<usize>, bool), String> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok((Some(DEFAULT), false));
    };
    match v.parse::<usize>() {
        Ok(n) => Ok((Some(n).filter(|n| *n > 1), true)),
        Err(_) => Err(format!(
            "{ENV}={v:?} is not a number of nodes per thread: set it to 2 or more to group \
             nodes, to 1 for a thread per node (unset: {DEFAULT})"
        )),
    }
}

/// How many nodes share `node`'s thread, `None` for a thread of its own.
/// A C-mode node cannot share one (a messaging association's TCP socket is
/// opened when needed, in whatever namespace the thread is in): by default
/// it gets its own; asked for explicitly, grouping is refused by name.
pub(super) fn per_thread(node: &str, cmode: bool) -> anyhow::Result<Option<usize>> {
    let (n, explicit) =
        parse(std::env::var(ENV).ok().as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    decide(n, explicit, node, cmode)
}

fn decide(
    n: Option<usize>,
    explicit: bool,
    node: &str,
    cmode: bool,
) -> anyhow::Result<Option<usize>> {
    match n {
        Some(n) if cmode && explicit => anyhow::bail!(
            "node {node}: {ENV}={n} cannot run a C-mode node (gist_mode = \"c\"): a \
             messaging association's TCP socket would open in another node's namespace; set \
             {ENV}=1 or use D-mode"
        ),
        Some(_) if cmode => Ok(None),
        n => Ok(n),
    }
}

type Ready = std::sync::mpsc::Sender<Result<Running, String>>;

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
    if o.tx.send(Job { cfg, rec, ready }).is_err() {
        // The next node gets a new thread.
        *open = None;
        anyhow::bail!("node {name}: its shared node thread has ended");
    }
    thread.hand();
    o.left -= 1;
    if o.left == 0 {
        // Full: its start loop ends and its actors run until stopped.
        *open = None;
    }
    Ok((name, api_socket, ready_rx, thread))
}

/// No more nodes join the thread now taking them (a stop is coming, or a
/// start failed): its start loop ends, and the thread with its last node.
pub fn close_open() {
    OPEN.lock().unwrap_or_else(|p| p.into_inner()).take();
}

fn spawn_thread(first: &str, per_thread: usize, start_actors: StartActors) -> anyhow::Result<Open> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let (sys_tx, sys_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("nodes-{first}"))
        .spawn(move || {
            super::placement::pin_current(super::placement::Role::Signaling);
            let sys = actix::System::new();
            sys.block_on(async move {
                let _ = sys_tx.send(actix::System::current());
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
                        Ok((node, gone)) => {
                            // Let the node's actors take their first turn
                            // (and open what they open then) in its namespace.
                            for _ in 0..16 {
                                tokio::task::yield_now().await;
                            }
                            let system = actix::System::current();
                            let _ = ready.send(Ok(Running { system, node, gone }));
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
    let shared = Shared::new(thread);
    let sys = sys_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("node {first}: its shared node thread ended at its start"))?;
    let _ = shared.system.set(sys);
    Ok(Open {
        tx,
        left: per_thread,
        thread: shared,
    })
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT, ENV, decide, parse};

    #[test]
    fn a_c_mode_node_gets_its_own_thread_and_is_refused_an_asked_for_group_by_name() {
        let e = decide(Some(8), true, "tb2", true).unwrap_err().to_string();
        assert!(
            e.contains("tb2") && e.contains(ENV) && e.contains("D-mode"),
            "{e}"
        );
        assert_eq!(decide(Some(8), true, "tb2", false).unwrap(), Some(8));
        assert_eq!(decide(Some(DEFAULT), false, "tb2", true).unwrap(), None);
        assert_eq!(
            decide(Some(DEFAULT), false, "tb2", false).unwrap(),
            Some(DEFAULT)
        );
        assert_eq!(decide(None, true, "tb2", true).unwrap(), None);
    }

    #[test]
    fn nodes_share_threads_unless_one_node_per_thread_is_asked() {
        assert_eq!(parse(None), Ok((Some(DEFAULT), false)));
        assert_eq!(parse(Some("")), Ok((Some(DEFAULT), false)));
        assert_eq!(parse(Some("1")), Ok((None, true)));
        assert_eq!(parse(Some("0")), Ok((None, true)));
        assert_eq!(parse(Some("64")), Ok((Some(64), true)));
        assert_eq!(parse(Some(" 8\n")), Ok((Some(8), true)));
        let e = parse(Some("many")).unwrap_err();
        assert!(
            e.contains("VLSP_NODES_PER_THREAD=\"many\"") && e.contains("2 or more"),
            "{e}"
        );
    }
}
