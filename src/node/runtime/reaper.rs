//! The reaper: deletes a node's tunnel devices after the signaling, on a
//! thread of its own in the node's namespace.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::model::measure::{PointKind, Recorder};
use crate::proto::gist::machine::Sid;

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

    /// Queues `ifname`'s deletion. Called on the kernel thread while it is
    /// in the node's namespace, so the reaper thread inherits it.
    pub(super) fn delete(&mut self, sid: Sid, ifname: String) {
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
