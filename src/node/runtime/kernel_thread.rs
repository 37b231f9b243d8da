//! The kernel threads of a node: its reservation classes on the class
//! thread of its node thread (shared by the nodes that thread serves), its
//! tunnel ends on a thread of its own; each runs one operation at a time
//! in arrival order, entering the node's namespace first.
//!
//! One class thread per node thread, not one per node: on a chain the hops'
//! classes follow each other every ~80 µs, so a class thread that looks for
//! more work for a while before it sleeps takes the next hop's class
//! without being woken, and the node thread's hand-over costs a queue push
//! instead of a wake-up of a sleeping thread on the other CPU (an IPI: ~8 %
//! of the nodes' thread on a chain of 200). Looking is only worth it when
//! the thread serves several nodes; a thread with one node sleeps at once,
//! unless a setup request was just read ([`Job::Warm`]).
//! Tunnel ends (two per link, ~0.3-0.5 ms each) keep a thread per node:
//! queued behind each other on one thread, the link's two ends doubled the
//! responder's [G] on paper-4node.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use actix::Addr;

use super::reaper::Reaper;
use super::{ClassResult, ClassWork, NodeActor, VlinkResult, VlinkWork};
use crate::kernel::tunnel::Tunnels;
use crate::model::measure::{PointKind, Recorder};
use crate::model::tunnel::Backend;

/// What a kernel thread needs of a node, handed over with the node's first
/// work of that kind: most nodes of a large topology (the routers) never
/// create a tunnel end.
pub(super) struct VlinkStart {
    pub node_name: String,
    /// The node's namespace, entered by the kernel thread itself: it may
    /// serve several nodes.
    pub netns: PathBuf,
    pub node: Addr<NodeActor>,
    /// Dropped with the node's state on the kernel thread, after its
    /// classes are removed (see `tasks::Gone`).
    #[expect(dead_code, reason = "held for its drop, never read")]
    pub keep: std::sync::mpsc::Sender<()>,
    pub lane: Lane,
}

/// The kind of work a kernel thread does for a node.
pub(super) enum Lane {
    /// Reservation classes, on the kernel thread of the node's thread
    /// (shared by its nodes): the enforcer's netlink socket was opened in
    /// the node's namespace.
    Classes(Box<dyn crate::proto::rmf::Enforcer>),
    /// Tunnel ends, on a kernel thread of the node's own: a device's
    /// creation holds its thread ~0.3-0.5 ms, which would hold up the
    /// other nodes' classes (and the tunnel end at the link's other end).
    Tunnels {
        backend: Backend,
        script_dir: PathBuf,
        rec: Recorder,
        pending: Arc<AtomicUsize>,
        reaper: Reaper,
    },
}

/// One piece of kernel work, in arrival order.
pub(super) enum Work {
    Tunnel(VlinkWork),
    Class(ClassWork),
}

/// How long the kernel thread of several nodes looks for more work after
/// each operation before it sleeps, and any kernel thread after a
/// [`Job::Warm`].
pub(super) const LOOK: Duration = Duration::from_micros(200);

/// What a node's [`KernelWork`](super::vlink::KernelWork) sends.
pub(super) enum Job {
    /// The node's first kernel work follows: what it needs.
    Register(NodeKey, Box<VlinkStart>),
    Work(NodeKey, Work),
    /// The node stopped: its enforcer is dropped (its classes removed).
    Close(NodeKey),
    /// Work is coming soon (a setup request was read): the thread looks for
    /// it for [`LOOK`] instead of sleeping, so its CPU is awake when it
    /// comes. On this machine kind a vCPU idle for 35 ms took 70-85 µs in
    /// the median (p90 up to ~0.2 ms) to run a thread woken onto it, against
    /// ~6 µs after 0.1 ms idle (`examples/vcpu_wake`).
    Warm,
}

/// A node, among those of one kernel thread.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct NodeKey(u64);

impl NodeKey {
    pub(super) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A handle on the kernel thread of the calling node thread.
#[derive(Clone)]
pub(super) struct KernelThread(Sender<Job>);

thread_local! {
    /// This node thread's kernel thread, once one of its nodes had work.
    static MINE: RefCell<Option<KernelThread>> = const { RefCell::new(None) };
}

impl KernelThread {
    /// The class thread of the calling node thread, started at the first
    /// call (`first` names it); it ends once the node thread has ended and
    /// every node's handle is dropped.
    pub(super) fn of_this_thread(first: &str) -> Result<Self, String> {
        MINE.with(|m| {
            if let Some(k) = m.borrow().as_ref() {
                return Ok(k.clone());
            }
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("classes-{first}"))
                .spawn(move || run(rx))
                .map_err(|e| format!("node {first}: class thread: {e}"))?;
            let k = Self(tx);
            *m.borrow_mut() = Some(k.clone());
            Ok(k)
        })
    }

    /// A kernel thread of the calling node's own (`name`), for its tunnel
    /// ends; it ends once the handle is dropped.
    pub(super) fn own(name: &str) -> Result<Self, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("vlink-{name}"))
            .spawn(move || run(rx))
            .map_err(|e| format!("node {name}: tunnel thread: {e}"))?;
        Ok(Self(tx))
    }

    /// Queues `job`; gives it back when the kernel thread has ended.
    pub(super) fn send(&self, job: Job) -> Result<(), Job> {
        self.0.send(job).map_err(|e| e.0)
    }
}

/// Whether the next wait looks for work first: always with several nodes,
/// else once after a [`Job::Warm`] (which it uses up; with several nodes a
/// Warm stays set, and changes nothing).
fn looks(nodes: usize, warm: &mut bool) -> bool {
    nodes > 1 || std::mem::take(warm)
}

/// The next job; with `look` (several nodes, or a [`Job::Warm`] before),
/// looks for one for [`LOOK`] before sleeping. `None` once every sender is
/// gone.
fn next(rx: &Receiver<Job>, look: bool) -> Option<Job> {
    if look {
        let until = Instant::now() + LOOK;
        loop {
            match rx.try_recv() {
                Ok(j) => return Some(j),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if Instant::now() >= until => break,
                // Yielding, not spinning: a thread that wants this CPU
                // (a tunnel end being made, the nodes' thread) runs first.
                Err(TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
    }
    rx.recv().ok()
}

fn run(rx: Receiver<Job>) {
    // Reaper threads, started from here, inherit the mask.
    super::placement::pin_current(super::placement::Role::Kernel);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            // Every job's sender sees the channel closed and refuses.
            tracing::warn!("kernel thread: runtime: {e}");
            return;
        }
    };
    let mut nodes: HashMap<NodeKey, NodeKernel> = HashMap::new();
    // Whose namespace the thread is in.
    let mut here: Option<NodeKey> = None;
    let mut warm = false;
    while let Some(job) = next(&rx, looks(nodes.len(), &mut warm)) {
        match job {
            Job::Warm => warm = true,
            Job::Register(k, st) => {
                nodes.insert(k, NodeKernel::new(*st));
            }
            Job::Close(k) => {
                // Its enforcer removes its classes as it drops, looking
                // interfaces up by name: in its namespace.
                if let Some(mut n) = nodes.remove(&k)
                    && let Err(e) = n.enter(k, &mut here)
                {
                    tracing::warn!("{e}: its classes may stay");
                }
            }
            Job::Work(k, w) => {
                if let Some(n) = nodes.get_mut(&k) {
                    n.run(&rt, w, k, &mut here);
                }
            }
        }
    }
}

/// Answers work that cannot run (its result carries `why`), so nothing
/// waits for it forever.
pub(super) fn refuse(node: &Addr<NodeActor>, w: Work, why: String) {
    tracing::warn!("{why}");
    match w {
        Work::Tunnel(w) => node.do_send(VlinkResult {
            sid: w.sid,
            err: Some(why),
        }),
        Work::Class(ClassWork::Install { sid, .. }) => node.do_send(ClassResult {
            sid,
            err: Some(why),
        }),
        Work::Class(_) => {}
    }
}

/// One node's kernel state on the kernel thread.
struct NodeKernel {
    st: VlinkStart,
    /// The node's namespace, opened at its first work.
    ns: Option<std::fs::File>,
    /// Opened at the node's first tunnel end: most nodes of a large
    /// topology (the routers) only ever install classes.
    tunnels: Option<Tunnels>,
}

impl NodeKernel {
    fn new(st: VlinkStart) -> Self {
        Self {
            st,
            ns: None,
            tunnels: None,
        }
    }

    /// Enters the node's namespace unless the thread is there already:
    /// every piece of its work runs there (a netlink socket opened, a
    /// script run, a reaper thread started, an interface looked up by name).
    fn enter(&mut self, k: NodeKey, here: &mut Option<NodeKey>) -> Result<(), String> {
        if *here == Some(k) {
            return Ok(());
        }
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "node {}: kernel thread: cannot enter namespace {}: {e}",
                self.st.node_name,
                self.st.netns.display()
            )
        };
        if self.ns.is_none() {
            self.ns = Some(std::fs::File::open(&self.st.netns).map_err(|e| failed(&e))?);
        }
        let ns = self.ns.as_ref().expect("opened above");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| failed(&e))?;
        *here = Some(k);
        Ok(())
    }

    fn run(
        &mut self,
        rt: &tokio::runtime::Runtime,
        w: Work,
        k: NodeKey,
        here: &mut Option<NodeKey>,
    ) {
        if let Err(e) = self.enter(k, here) {
            if let (Work::Tunnel(_), Lane::Tunnels { pending, .. }) = (&w, &self.st.lane) {
                pending.fetch_sub(1, Ordering::SeqCst);
            }
            refuse(&self.st.node, w, e);
            return;
        }
        let st = &mut self.st;
        let w = match (w, &mut st.lane) {
            (Work::Tunnel(w), Lane::Tunnels { .. }) => w,
            (
                Work::Class(ClassWork::Install {
                    sid,
                    link,
                    rate,
                    classifier,
                }),
                Lane::Classes(enforcer),
            ) => {
                let r = enforcer.install(&sid, &link, rate, &classifier);
                st.node.do_send(ClassResult { sid, err: r.err() });
                return;
            }
            (Work::Class(ClassWork::Remove { sid }), Lane::Classes(enforcer)) => {
                enforcer.remove(&sid);
                return;
            }
            (Work::Class(ClassWork::ForgetInterfaces), Lane::Classes(enforcer)) => {
                enforcer.forget_interfaces();
                return;
            }
            (w, _) => unreachable!(
                "node {}: {} work on the other lane's kernel thread",
                st.node_name,
                if matches!(w, Work::Tunnel(_)) {
                    "tunnel"
                } else {
                    "class"
                }
            ),
        };
        let (start, done) = if w.up {
            (PointKind::VlinkUpStart, PointKind::VlinkUpDone)
        } else {
            (PointKind::VlinkDownStart, PointKind::VlinkDownDone)
        };
        let Lane::Tunnels {
            backend,
            script_dir,
            rec,
            pending,
            reaper,
        } = &mut st.lane
        else {
            unreachable!("matched above")
        };
        let tunnels = self.tunnels.get_or_insert_with(|| {
            // The socket registers with the runtime's reactor.
            let _in_rt = rt.enter();
            let handle = match rtnetlink::new_connection() {
                Ok((conn, handle, _)) => {
                    rt.spawn(conn);
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(node = %st.node_name, "kernel thread: netlink: {e}");
                    None
                }
            };
            Tunnels::new(*backend, handle, script_dir)
        });
        rec.mark(w.sid, start);
        let r = rt.block_on(async {
            if w.up {
                tunnels.up(&w.end).await
            } else {
                tunnels.out_of_service(&w.end).await
            }
        });
        rec.mark(w.sid, done);
        st.node.do_send(VlinkResult {
            sid: w.sid,
            err: r.err().map(|e| e.to_string()),
        });
        if !w.up && tunnels.backend_for(&w.end) == Backend::Netlink {
            // The device's deletion holds the kernel's RTNL lock (one for
            // all namespaces) for an RCU grace period: the node's reaper
            // thread does it, after the signaling. It starts in the node's
            // namespace (entered above).
            pending.fetch_add(1, Ordering::SeqCst);
            reaper.delete(w.sid, w.end.ifname());
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread of one node looks once after each Warm, a thread of
    /// several after every job.
    #[test]
    fn a_warm_makes_the_next_wait_look_once() {
        let mut warm = false;
        assert!(!looks(1, &mut warm));
        warm = true;
        assert!(looks(1, &mut warm));
        assert!(!looks(1, &mut warm), "a Warm is used up by one wait");
        assert!(looks(2, &mut warm));
    }

    /// Looking loses nothing: jobs sent at any time, during a look or
    /// after it gave up and slept, are taken in order; the end of the
    /// senders ends the wait.
    #[test]
    fn a_looking_wait_takes_every_job_in_order() {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let t = std::thread::spawn(move || {
            let mut got = vec![];
            while let Some(j) = next(&rx, true) {
                got.push(matches!(j, Job::Warm));
            }
            got
        });
        tx.send(Job::Warm).unwrap();
        std::thread::sleep(LOOK / 4);
        tx.send(Job::Warm).unwrap();
        std::thread::sleep(LOOK * 5);
        tx.send(Job::Close(NodeKey::new())).unwrap();
        drop(tx);
        assert_eq!(t.join().unwrap(), vec![true, true, false]);
    }
}
