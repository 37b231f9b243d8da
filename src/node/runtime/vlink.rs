//! The node's kernel work (tunnel ends, reservation classes), handed to the
//! kernel thread of its node thread (`kernel_thread`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;

use super::kernel_thread::{Job, KernelThread, NodeKey, VlinkStart, Work};
use super::{ClassResult, ClassWork, NodeActor, VlinkResult, VlinkWork};

// ------------------------------------------------------------------- vlink

/// The node's kernel work, tunnel ends and reservation classes, handed in
/// arrival order to the kernel thread of the node's thread
/// ([`kernel_thread`](super::kernel_thread), shared by the nodes of that
/// thread, each with its own netlink socket): a device's creation holds
/// that thread for the kernel's time (~0.5 ms) and a class install may wait
/// for the RTNL lock, while the node's thread goes on signaling (issue 17:
/// the initiator's end and every hop's class are made while the RESERVE
/// travels).
pub struct VlinkActor {
    node: Addr<NodeActor>,
    key: NodeKey,
    kernel: Option<KernelThread>,
    /// What the kernel thread needs of the node, handed over with its first
    /// work (it holds the node's `gone` sender: see `tasks`).
    start: Option<VlinkStart>,
    /// Operations queued or running (deferred deletions included).
    busy: Arc<AtomicUsize>,
}

impl Actor for VlinkActor {
    type Context = Context<Self>;
}

impl VlinkActor {
    pub(super) fn new(start: VlinkStart) -> Self {
        Self {
            node: start.node.clone(),
            key: NodeKey::new(),
            kernel: None,
            busy: start.pending.clone(),
            start: Some(start),
        }
    }

    /// Queues `w` on the kernel thread, registering the node there first.
    fn queue(&mut self, w: Work) -> Result<(), (Work, String)> {
        if self.kernel.is_none()
            && let Some(st) = self.start.take()
        {
            let k = match KernelThread::of_this_thread(&st.node_name) {
                Ok(k) => k,
                Err(e) => return Err((w, e)),
            };
            if k.send(Job::Register(self.key, Box::new(st))).is_err() {
                return Err((w, ENDED.into()));
            }
            self.kernel = Some(k);
        }
        match &self.kernel {
            Some(k) => k.send(Job::Work(self.key, w)).map_err(|j| match j {
                Job::Work(_, w) => (w, ENDED.into()),
                _ => unreachable!("send gives back the job it was given"),
            }),
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

const ENDED: &str = "the node's kernel thread has ended";

impl Drop for VlinkActor {
    /// The node stops: the kernel thread finishes what is queued of it and
    /// drops its enforcer, which removes its classes, and then its `gone`
    /// sender (a node's stop waits for that: see `tasks`).
    fn drop(&mut self) {
        if let Some(k) = &self.kernel {
            let _ = k.send(Job::Close(self.key));
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
