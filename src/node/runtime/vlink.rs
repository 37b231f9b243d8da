//! Tunnel ends, run one at a time off the node actor, and the reaper that
//! deletes tunnel devices after the signaling.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::{NodeActor, VlinkResult, VlinkWork};
use crate::kernel::tunnel::Tunnels;
use crate::model::measure::{PointKind, Recorder};
use crate::proto::gist::machine::Sid;

// ------------------------------------------------------------------- vlink

/// Tunnel ends, one operation at a time, in arrival order.
pub struct VlinkActor {
    tx: mpsc::UnboundedSender<VlinkWork>,
    /// Operations queued or running (deferred deletions included).
    busy: Arc<AtomicUsize>,
}

impl Actor for VlinkActor {
    type Context = Context<Self>;
}

impl VlinkActor {
    /// The tunnel backends (and their netlink socket) are made at the first
    /// operation, on the node's thread (so in its namespace): most routers
    /// of a large topology host no tunnel end, and a socket each would
    /// count against the process's open files.
    pub(super) fn start_worker(
        backend: crate::model::tunnel::Backend,
        script_dir: std::path::PathBuf,
        node: Addr<NodeActor>,
        rec: Recorder,
        pending: Arc<AtomicUsize>,
        mut reaper: Reaper,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<VlinkWork>();
        let busy = pending.clone();
        actix::spawn(async move {
            let mut tunnels: Option<Tunnels> = None;
            while let Some(w) = rx.recv().await {
                if tunnels.is_none() {
                    match rtnetlink::new_connection() {
                        Ok((conn, handle, _)) => {
                            actix::spawn(conn);
                            tunnels = Some(Tunnels::new(backend, Some(handle), &script_dir));
                        }
                        Err(e) => {
                            node.do_send(VlinkResult {
                                sid: w.sid,
                                err: Some(format!(
                                    "no netlink socket for tunnel ends: {e}; too many open files?"
                                )),
                            });
                            pending.fetch_sub(1, Ordering::SeqCst);
                            continue;
                        }
                    }
                }
                let Some(tunnels) = tunnels.as_mut() else {
                    continue;
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
                if !w.up && tunnels.backend_for(&w.end) == crate::model::tunnel::Backend::Netlink {
                    // The device's deletion holds the kernel's RTNL lock (one
                    // for all namespaces) for an RCU grace period: the reaper
                    // thread does it, after the signaling is over.
                    pending.fetch_add(1, Ordering::SeqCst);
                    reaper.delete(w.sid, w.end.ifname());
                }
                pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Self { tx, busy }
    }
}

impl Handler<VlinkWork> for VlinkActor {
    type Result = ();
    fn handle(&mut self, w: VlinkWork, _: &mut Context<Self>) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.send(w);
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
    tx: Option<std::sync::mpsc::Sender<(Sid, String)>>,
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

    /// Queues `ifname`'s deletion. Called on the node's thread, so the
    /// reaper thread inherits the node's namespace.
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
            .is_some_and(|tx| tx.send((sid, ifname)).is_ok());
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
) -> Result<std::sync::mpsc::Sender<(Sid, String)>, String> {
    let (tx, rx) = std::sync::mpsc::channel::<(Sid, String)>();
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
                while let Ok((sid, ifname)) = rx.recv() {
                    tokio::time::sleep(DELETE_DELAY).await;
                    rec.mark(sid, PointKind::VlinkDeleteStart);
                    if let Err(e) = crate::kernel::tunnel::delete_by_name(&handle, &ifname).await {
                        tracing::warn!("deleting {ifname}: {e}");
                    }
                    rec.mark(sid, PointKind::VlinkDeleteDone);
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            });
        })
        .map_err(|e| format!("node {node}: reaper thread: {e}"))?;
    Ok(tx)
}
