//! The node's kernel work (tunnel ends, reservation classes), handed by the
//! node itself (its state, from its actor or its thread's pump) to the
//! kernel threads (`kernel_thread`): an actor of
//! its own in between cost every class a turn of the node's thread, with
//! its own task, mailbox and context to bring in from memory, cold on a
//! long chain (issue 17).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::Addr;

use super::kernel_thread::{Job, KernelThread, Lane, NodeKey, VlinkStart, Work, refuse};
use super::{ClassWork, NodeActor, VlinkWork};

// ------------------------------------------------------------------- vlink

/// What the node's kernel work needs, split by [`KernelWork::new`] into
/// its two lanes.
pub(super) struct VlinkParts {
    pub node_name: String,
    pub netns: std::path::PathBuf,
    pub backend: crate::model::tunnel::Backend,
    pub script_dir: std::path::PathBuf,
    pub node: Addr<NodeActor>,
    pub rec: crate::model::measure::Recorder,
    pub pending: Arc<AtomicUsize>,
    pub reaper: super::reaper::Reaper,
    pub enforcer: Box<dyn crate::proto::rmf::Enforcer>,
    /// The node's `gone` sender (see `tasks`), one clone per lane.
    pub keep: std::sync::mpsc::Sender<()>,
}

/// The node's kernel work, handed in arrival order to its kernel threads
/// ([`kernel_thread`](super::kernel_thread)): reservation classes to the
/// class thread of the node's thread, tunnel ends to a thread of the
/// node's own. A device's creation holds its thread for the kernel's time
/// (~0.5 ms) and a class install may wait for the RTNL lock, while the
/// node's thread goes on signaling (issue 17: the initiator's end and every
/// hop's class are made while the RESERVE travels).
pub(super) struct KernelWork {
    name: String,
    node: Addr<NodeActor>,
    key: NodeKey,
    classes: Queue,
    tunnels: Queue,
    /// Operations queued or running (deferred deletions included).
    busy: Arc<AtomicUsize>,
}

/// One lane of the node's kernel work.
struct Queue {
    kernel: Option<KernelThread>,
    /// Handed over with the lane's first work (it holds a clone of the
    /// node's `gone` sender: see `tasks`).
    start: Option<VlinkStart>,
}

impl KernelWork {
    pub(super) fn new(p: VlinkParts) -> Self {
        let start = |lane| {
            Some(VlinkStart {
                node_name: p.node_name.clone(),
                netns: p.netns.clone(),
                node: p.node.clone(),
                keep: p.keep.clone(),
                lane,
            })
        };
        let tunnels = start(Lane::Tunnels {
            backend: p.backend,
            script_dir: p.script_dir.clone(),
            rec: p.rec.clone(),
            pending: p.pending.clone(),
            reaper: p.reaper,
        });
        let classes = start(Lane::Classes(p.enforcer));
        Self {
            name: p.node_name,
            node: p.node,
            key: NodeKey::new(),
            classes: Queue {
                kernel: None,
                start: classes,
            },
            tunnels: Queue {
                kernel: None,
                start: tunnels,
            },
            busy: p.pending,
        }
    }

    /// Queues `w` on its lane's kernel thread, registering the node there
    /// first.
    fn queue(&mut self, w: Work) -> Result<(), (Work, String)> {
        // Named only when needed: a message per work was an allocation
        // per class on the signaling path.
        let name = &self.name;
        let ended = || format!("node {name}: its kernel thread has ended");
        let (q, shared) = match &w {
            Work::Class(_) => (&mut self.classes, true),
            Work::Tunnel(_) => (&mut self.tunnels, false),
        };
        if q.kernel.is_none()
            && let Some(st) = q.start.take()
        {
            let k = if shared {
                KernelThread::of_this_thread(&st.node_name)
            } else {
                KernelThread::own(&st.node_name)
            };
            let k = match k {
                Ok(k) => k,
                Err(e) => return Err((w, e)),
            };
            if k.send(Job::Register(self.key, Box::new(st))).is_err() {
                return Err((w, ended()));
            }
            q.kernel = Some(k);
        }
        match &q.kernel {
            Some(k) => k.send(Job::Work(self.key, w)).map_err(|j| match j {
                Job::Work(_, w) => (w, ended()),
                _ => unreachable!("send gives back the job it was given"),
            }),
            None => Err((
                w,
                format!("node {name}: its kernel thread could not be started"),
            )),
        }
    }
}

impl Drop for KernelWork {
    /// The node stops: the kernel thread finishes what is queued of it and
    /// drops its enforcer, which removes its classes, and then its `gone`
    /// sender (a node's stop waits for that: see `tasks`).
    fn drop(&mut self) {
        for q in [&self.classes, &self.tunnels] {
            if let Some(k) = &q.kernel {
                let _ = k.send(Job::Close(self.key));
            }
        }
    }
}

impl KernelWork {
    /// Queues a reservation class's work; refused back to the node (a
    /// [`super::ClassResult`]) when its kernel thread is gone.
    pub(super) fn class(&mut self, w: ClassWork) {
        if let Err((w, why)) = self.queue(Work::Class(w)) {
            refuse(&self.node, w, why);
        }
    }

    /// Wakes the tunnel thread ahead of a tunnel end about to come (see
    /// [`Job::Warm`]); nothing before the node's first tunnel end has
    /// started the thread, nor while tunnel work or a deferred deletion is
    /// pending (under load the thread is busy, and a Warm per request would
    /// only queue).
    pub(super) fn warm_tunnels(&self) {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return;
        }
        if let Some(k) = &self.tunnels.kernel {
            let _ = k.send(Job::Warm);
        }
    }

    /// Queues a tunnel end's work, counted as pending until its thread
    /// reports it.
    pub(super) fn tunnel(&mut self, w: VlinkWork) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        if let Err((w, why)) = self.queue(Work::Tunnel(w)) {
            self.busy.fetch_sub(1, Ordering::SeqCst);
            refuse(&self.node, w, why);
        }
    }
}
