//! The nodes' route monitor: one [`AllNamespaces`] socket per process hears
//! the route and link changes of every node's namespace, and tells the node
//! concerned, which then reads its own table (issue 17: 10 000 subscribed
//! sockets, one per node, made every announcement and every close walk a
//! kernel list of them all). Where the kernel refuses, each node watches
//! its own namespace as before.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use actix::Addr;
use tokio::sync::Notify;

use super::{NodeActor, ROUTE_SETTLE, RoutesChanged};
use crate::kernel::routes::{AllNamespaces, Heard, RouteTable};

/// The process's monitor and the nodes it serves, by namespace id.
struct Shared {
    monitor: AllNamespaces,
    nodes: Mutex<HashMap<i32, Weak<Notify>>>,
    /// Cleared when the monitor's socket failed: its nodes stop waiting
    /// for it, and nodes started later watch their own namespaces.
    alive: AtomicBool,
}

impl Shared {
    fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// The monitor stopped: every node is woken to notice.
    fn stopped(&self) {
        self.alive.store(false, Ordering::Release);
        for n in self.lock().values().filter_map(Weak::upgrade) {
            n.notify_one();
        }
    }

    fn wanted(&self, id: i32) -> bool {
        self.lock().get(&id).is_some_and(|w| w.strong_count() > 0)
    }

    fn heard(&self, h: Heard) {
        let mut nodes = self.lock();
        match h {
            Heard::Changed(id) => match nodes.get(&id).and_then(Weak::upgrade) {
                Some(n) => n.notify_one(),
                None => {
                    nodes.remove(&id);
                }
            },
            // Lost announcements: every node rereads (and compares).
            Heard::Overrun => nodes.retain(|_, w| match w.upgrade() {
                Some(n) => {
                    n.notify_one();
                    true
                }
                None => false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Weak<Notify>>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

static SHARED: OnceLock<Result<Arc<Shared>, String>> = OnceLock::new();
/// The fallback is logged once per process, not once per node.
static FALLBACK_LOGGED: std::sync::Once = std::sync::Once::new();

/// The process's monitor, started at the first call: on a thread of its
/// own that enters the process's namespace (the main thread's; the caller
/// is a node's thread, inside the node's namespace).
fn shared() -> Result<Arc<Shared>, String> {
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("route-monitor".into())
                .spawn(move || {
                    super::placement::pin_current(super::placement::Role::Kernel);
                    let opened = crate::kernel::substrate::enter(Path::new("/proc/self/ns/net"))
                        .map_err(|e| format!("{e:#}"))
                        .and_then(|()| AllNamespaces::open().map_err(|e| e.to_string()));
                    let s = match opened {
                        Ok(m) => Arc::new(Shared {
                            monitor: m,
                            nodes: Mutex::default(),
                            alive: AtomicBool::new(true),
                        }),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(s.clone()));
                    let e = s
                        .monitor
                        .listen(ROUTE_SETTLE, |id| s.wanted(id), |h| s.heard(h));
                    tracing::warn!(
                        "the route monitor of all namespaces stopped: {e}; its nodes notice route \
                         changes only by GIST's periodic re-queries, nodes started later watch \
                         their own namespaces"
                    );
                    s.stopped();
                })
                .map_err(|e| format!("cannot start the route monitor's thread: {e}"));
            spawned.and_then(|_| {
                rx.recv()
                    .map_err(|_| "the route monitor's thread ended at start".to_string())?
            })
        })
        .clone()
}

/// Registers the node of namespace `netns` with the process's monitor.
fn register(netns: &Path) -> Result<(Arc<Notify>, Arc<Shared>), String> {
    let shared = shared()?;
    if !shared.alive() {
        return Err("the process's route monitor has stopped".into());
    }
    let name = netns.display().to_string();
    let home = std::fs::metadata("/proc/self/ns/net").map_err(|e| e.to_string())?;
    let f = std::fs::File::open(netns).map_err(|e| format!("cannot open {name}: {e}"))?;
    let m = f
        .metadata()
        .map_err(|e| format!("cannot stat {name}: {e}"))?;
    if (m.dev(), m.ino()) == (home.dev(), home.ino()) {
        // Its announcements would carry no id.
        return Err(format!("{name} is the process's own namespace"));
    }
    let id = shared
        .monitor
        .nsid_of(&f, &name)
        .map_err(|e| e.to_string())?;
    let n = Arc::new(Notify::new());
    shared.lock().insert(id, Arc::downgrade(&n));
    Ok((n, shared))
}

/// The node's route monitor, run on its thread: sends [`RoutesChanged`] to
/// `to` whenever its namespace's routes or link states change. Must be
/// polled first on the node's thread while it is in the node's namespace
/// (its table is read over a socket opened then).
pub(super) async fn monitor(netns: PathBuf, node: String, to: Addr<NodeActor>) {
    let changed = |t: RouteTable| {
        if !to.connected() {
            return false;
        }
        to.do_send(RoutesChanged(t));
        true
    };
    let r = match register(&netns) {
        Ok((nudge, shared)) => match rtnetlink::new_connection() {
            Ok((conn, handle, _)) => {
                tokio::task::spawn_local(conn);
                let nudged = async || {
                    nudge.notified().await;
                    shared.alive()
                };
                // Ends when the node does, or when the shared monitor died
                // (a thread serving several nodes may be in another node's
                // namespace by then, so no watch of its own is opened here;
                // nodes started later watch their own namespaces).
                crate::kernel::routes::follow(handle, nudged, changed).await
            }
            Err(e) => Err(e),
        },
        Err(why) if shared().is_err() => {
            FALLBACK_LOGGED.call_once(|| {
                tracing::warn!(
                    %node,
                    "no route monitor shared by this process's nodes ({why}): each node watches \
                     its own namespace"
                );
            });
            crate::kernel::routes::watch(ROUTE_SETTLE, changed).await
        }
        Err(why) => {
            tracing::info!(
                %node,
                netns = %netns.display(),
                "this node watches its own namespace instead of the process's shared route \
                 monitor: {why}"
            );
            crate::kernel::routes::watch(ROUTE_SETTLE, changed).await
        }
    };
    if let Err(e) = r {
        tracing::warn!(%node, "route monitor stopped: {e}; route changes are noticed only by GIST's periodic re-queries");
    }
}
