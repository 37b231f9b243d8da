//! A started node's thread as its handles see it: the thread (shared by
//! the nodes it serves) and what a node hands back once it runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix::Addr;

use super::NodeActor;
use super::tasks::Gone;

/// A node thread, shared by the handles of the nodes it serves (one, or
/// several: `group`). The last node to stop stops its system and joins it.
pub(super) struct Shared {
    join: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Nodes handed to the thread and not stopped yet.
    live: AtomicUsize,
    /// The thread's actix system, once it runs.
    pub(super) system: OnceLock<actix::System>,
}

pub(super) type SharedThread = Arc<Shared>;

impl Shared {
    pub(super) fn new(join: std::thread::JoinHandle<()>) -> SharedThread {
        Arc::new(Self {
            join: Mutex::new(Some(join)),
            live: AtomicUsize::new(0),
            system: OnceLock::new(),
        })
    }

    /// One more node is handed to the thread.
    pub(super) fn hand(&self) {
        self.live.fetch_add(1, Ordering::SeqCst);
    }

    /// A node of the thread stopped (or failed to start): the last one
    /// stops the thread's system and waits for the thread.
    pub(super) fn release(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(s) = self.system.get() {
                s.stop();
            }
            self.join();
        }
    }

    /// Waits for the thread (once stopped).
    pub(super) fn join(&self) {
        let t = self.join.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

/// What a node's thread hands back once the node's API socket listens.
pub(super) struct Running {
    pub(super) system: actix::System,
    pub(super) node: Addr<NodeActor>,
    pub(super) gone: Gone,
}
