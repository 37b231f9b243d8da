//! The node's kernel work (tunnel ends, reservation classes), run one at a
//! time on a kernel thread of the node, and the reaper that deletes tunnel
//! devices after the signaling.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

use super::{ClassResult, ClassWork, NodeActor, VlinkResult, VlinkWork};
use crate::kernel::tunnel::Tunnels;
use crate::model::measure::{PointKind, Recorder};
use crate::model::tunnel::Backend;
use crate::proto::gist::machine::Sid;

// ------------------------------------------------------------------- vlink

/// What the kernel thread needs, kept until the node's first kernel work:
/// most nodes of a large topology (the routers) never create a tunnel end.
pub(super) struct VlinkStart {
    pub node_name: String,
    /// The node's namespace, entered by the kernel thread itself: the
    /// thread that starts it may serve several nodes (`group`).
    pub netns: PathBuf,
    pub backend: Backend,
    pub script_dir: PathBuf,
    pub node: Addr<NodeActor>,
    pub rec: Recorder,
    pub pending: Arc<AtomicUsize>,
    pub reaper: Reaper,
    /// The reservation classes (its netlink socket is in the namespace).
    pub enforcer: Box<dyn crate::proto::rmf::Enforcer>,
    /// Held until the kernel thread has ended (see `tasks::Gone`).
    pub keep: std::sync::mpsc::Sender<()>,
}

/// One piece of kernel work, in arrival order.
enum Work {
    Tunnel(VlinkWork),
    Class(ClassWork),
}

/// The node's kernel work, tunnel ends and reservation classes, one
/// operation at a time in arrival order, on a thread of its own (with its own
/// netlink socket): a device's creation holds that thread for the kernel's
/// time (~0.5 ms) and a class install may wait for the RTNL lock, while the
/// node's thread goes on signaling (issue 17: the initiator's end and every
/// hop's class are made while the RESERVE travels).
pub struct VlinkActor {
    node: Addr<NodeActor>,
    tx: Option<mpsc::UnboundedSender<Work>>,
    thread: Option<std::thread::JoinHandle<()>>,
    start: Option<VlinkStart>,
    /// Operations queued or running (deferred deletions included).
    busy: Arc<AtomicUsize>,
    /// Dropped after [`Drop::drop`] has joined the kernel thread, which
    /// removed the node's classes: a node's stop waits for it.
    _keep: std::sync::mpsc::Sender<()>,
}

impl Actor for VlinkActor {
    type Context = Context<Self>;
}

impl VlinkActor {
    pub(super) fn new(start: VlinkStart) -> Self {
        Self {
            node: start.node.clone(),
            tx: None,
            thread: None,
            busy: start.pending.clone(),
            _keep: start.keep.clone(),
            start: Some(start),
        }
    }
}

/// Starts the kernel thread, which enters the node's namespace first (its
/// netlink socket, scripts and reaper thread then live there).
type Worker = (mpsc::UnboundedSender<Work>, std::thread::JoinHandle<()>);

fn start_worker(st: VlinkStart) -> Result<Worker, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Work>();
    let VlinkStart {
        node_name,
        netns,
        backend,
        script_dir,
        node,
        rec,
        pending,
        mut reaper,
        mut enforcer,
        keep: _,
    } = st;
    let name = node_name.clone();
    let thread = std::thread::Builder::new()
        .name(format!("vlink-{node_name}"))
        .spawn(move || {
            // Its reaper thread, started from here, inherits the mask.
            super::placement::pin_current(super::placement::Role::Kernel);
            if let Err(e) = crate::kernel::substrate::enter(&netns) {
                tracing::warn!(node = %node_name, "kernel thread: cannot enter namespace {}: {e}", netns.display());
                return;
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(node = %node_name, "kernel thread: runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let handle = match rtnetlink::new_connection() {
                    Ok((conn, handle, _)) => {
                        tokio::spawn(conn);
                        Some(handle)
                    }
                    Err(e) => {
                        tracing::warn!(node = %node_name, "kernel thread: netlink: {e}");
                        None
                    }
                };
                let mut tunnels = Tunnels::new(backend, handle, &script_dir);
                while let Some(w) = rx.recv().await {
                    let w = match w {
                        Work::Tunnel(w) => w,
                        Work::Class(ClassWork::Install {
                            sid,
                            link,
                            rate,
                            classifier,
                        }) => {
                            let r = enforcer.install(&sid, &link, rate, &classifier);
                            node.do_send(ClassResult { sid, err: r.err() });
                            continue;
                        }
                        Work::Class(ClassWork::Remove { sid }) => {
                            enforcer.remove(&sid);
                            continue;
                        }
                        Work::Class(ClassWork::ForgetInterfaces) => {
                            enforcer.forget_interfaces();
                            continue;
                        }
                    };
                    let (start, done) = if w.up {
                        (PointKind::VlinkUpStart, PointKind::VlinkUpDone)
                    } else {
                        (PointKind::VlinkDownStart, PointKind::VlinkDownDone)
                    };
                    rec.mark(w.sid, start);
                    let r = if w.up {
                        tunnels.up(&w.end).await
                    } else {
                        tunnels.out_of_service(&w.end).await
                    };
                    rec.mark(w.sid, done);
                    node.do_send(VlinkResult {
                        sid: w.sid,
                        err: r.err().map(|e| e.to_string()),
                    });
                    if !w.up && tunnels.backend_for(&w.end) == Backend::Netlink {
                        // The device's deletion holds the kernel's RTNL lock
                        // (one for all namespaces) for an RCU grace period:
                        // the reaper thread does it, after the signaling.
                        pending.fetch_add(1, Ordering::SeqCst);
                        reaper.delete(w.sid, w.end.ifname());
                    }
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            });
        })
        .map_err(|e| format!("node {name}: kernel thread: {e}"))?;
    Ok((tx, thread))
}

impl VlinkActor {
    /// Queues `w` on the kernel thread, started now if it is not yet.
    fn queue(&mut self, w: Work) -> Result<(), (Work, String)> {
        if self.tx.is_none()
            && let Some(st) = self.start.take()
        {
            match start_worker(st) {
                Ok((tx, thread)) => {
                    self.tx = Some(tx);
                    self.thread = Some(thread);
                }
                Err(e) => return Err((w, e)),
            }
        }
        match &self.tx {
            Some(tx) => tx
                .send(w)
                .map_err(|e| (e.0, "the node's kernel thread has ended".into())),
            None => Err((w, "the node's kernel thread could not be started".into())),
        }
    }

    /// Answers work that cannot run, so nothing waits for it forever.
    fn refuse(&self, w: Work, why: String) {
        tracing::warn!("{why}");
        match w {
            Work::Tunnel(w) => self.node.do_send(VlinkResult {
                sid: w.sid,
                err: Some(why),
            }),
            Work::Class(ClassWork::Install { sid, .. }) => self.node.do_send(ClassResult {
                sid,
                err: Some(why),
            }),
            Work::Class(_) => {}
        }
    }
}

impl Drop for VlinkActor {
    /// The node stops: the kernel thread finishes what is queued and drops
    /// the enforcer, which removes the node's classes, before the node's
    /// thread ends.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Handler<ClassWork> for VlinkActor {
    type Result = ();
    fn handle(&mut self, w: ClassWork, _: &mut Context<Self>) {
        if let Err((w, why)) = self.queue(Work::Class(w)) {
            self.refuse(w, why);
        }
    }
}

impl Handler<VlinkWork> for VlinkActor {
    type Result = ();
    fn handle(&mut self, w: VlinkWork, _: &mut Context<Self>) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        if let Err((w, why)) = self.queue(Work::Tunnel(w)) {
            self.busy.fetch_sub(1, Ordering::SeqCst);
            self.refuse(w, why);
        }
    }
}

/// How long after a teardown the tunnel device is deleted: long enough for
/// the other end's teardown to finish, so the deletion's RTNL stall (~25 ms,
/// felt by every namespace) does not fall inside the signaling.
pub const DELETE_DELAY: Duration = Duration::from_millis(20);

/// Deletes tunnel devices after [`DELETE_DELAY`] on a thread of its own,
/// started at the first deletion: most nodes of a large topology never
/// delete a tunnel, and a thread each would double the threads of a run.
pub(super) struct Reaper {
    node: String,
    rec: Recorder,
    pending: Arc<AtomicUsize>,
    tx: Option<std::sync::mpsc::Sender<(Sid, String, Instant)>>,
}

impl Reaper {
    pub(super) fn new(node: &str, rec: Recorder, pending: Arc<AtomicUsize>) -> Self {
        Self {
            node: node.to_string(),
            rec,
            pending,
            tx: None,
        }
    }

    /// Queues `ifname`'s deletion. Called on the node's kernel thread, so
    /// the reaper thread inherits the node's namespace.
    fn delete(&mut self, sid: Sid, ifname: String) {
        if self.tx.is_none() {
            match start_reaper(&self.node, self.rec.clone(), self.pending.clone()) {
                Ok(tx) => self.tx = Some(tx),
                Err(e) => tracing::warn!("{e}: {ifname} stays until the node stops"),
            }
        }
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send((sid, ifname, Instant::now())).is_ok());
        if !sent {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A thread in the node's namespace (it inherits the caller's) with its own
/// netlink socket, deleting tunnel devices after [`DELETE_DELAY`].
fn start_reaper(
    node: &str,
    rec: Recorder,
    pending: Arc<AtomicUsize>,
) -> Result<std::sync::mpsc::Sender<(Sid, String, Instant)>, String> {
    let (tx, rx) = std::sync::mpsc::channel::<(Sid, String, Instant)>();
    std::thread::Builder::new()
        .name(format!("reap-{node}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(_) => return,
            };
            rt.block_on(async move {
                let Ok((conn, handle, _)) = rtnetlink::new_connection() else {
                    return;
                };
                tokio::spawn(conn);
                // A burst of teardowns is deleted in one request (one RCU
                // grace period under the RTNL lock, not one per device):
                // every deletion queued by then, once the newest of them
                // has waited DELETE_DELAY.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    loop {
                        batch.extend(rx.try_iter());
                        let newest = batch.last().map_or(Instant::now(), |b| b.2);
                        let due = newest + DELETE_DELAY;
                        if Instant::now() >= due {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                    }
                    for (sid, ..) in &batch {
                        rec.mark(*sid, PointKind::VlinkDeleteStart);
                    }
                    let names: Vec<String> = batch.iter().map(|b| b.1.clone()).collect();
                    if let Err(e) = crate::kernel::tunnel::delete_many(&handle, &names).await {
                        tracing::warn!("deleting {}: {e}", names.join(" "));
                    }
                    for (sid, ..) in &batch {
                        rec.mark(*sid, PointKind::VlinkDeleteDone);
                    }
                    pending.fetch_sub(batch.len(), Ordering::SeqCst);
                }
            });
        })
        .map_err(|e| format!("node {node}: reaper thread: {e}"))?;
    Ok(tx)
}
