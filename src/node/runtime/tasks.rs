//! The tasks of one node. On a thread that serves several nodes (`group`,
//! the default) a node stops alone: its tasks end, and with them its
//! sockets, while the thread's other nodes go on (a `fault node-stop`, a
//! crashed NSIS daemon in a failure test, `vlsp apply` removing a router).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// A node's spawned tasks (route monitor, API and MA listeners, API
/// clients). Each holds a clone of the node's `gone` sender:
/// [`Gone::wait`] returns once every task, the node's actors and its state
/// on its kernel threads are dropped: its GIST, API and MA listener sockets
/// are closed and its classes removed. (What those tasks started closes a
/// turn later: an MA connection, the route monitor's netlink connection.)
#[derive(Clone)]
pub(super) struct NodeTasks {
    inner: Rc<RefCell<Option<Vec<JoinHandle<()>>>>>,
    gone: Sender<()>,
}

/// The other end of a node's `gone` sender (in a mutex: a node's handle
/// is shared between threads).
pub(super) struct Gone(Mutex<Receiver<()>>);

impl Gone {
    /// Waits until everything of the node holding a sender has been
    /// dropped, at most `limit`; whether it was.
    pub(super) fn wait(&self, limit: Duration) -> bool {
        let rx = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + limit;
        // Nothing is ever sent: `recv` fails when the last sender drops.
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

impl NodeTasks {
    pub(super) fn new() -> (Self, Gone) {
        let (gone, rx) = std::sync::mpsc::channel();
        let tasks = Self {
            inner: Rc::new(RefCell::new(Some(Vec::new()))),
            gone,
        };
        (tasks, Gone(Mutex::new(rx)))
    }

    /// A sender that keeps [`Gone::wait`] waiting while it lives.
    pub(super) fn keep(&self) -> Sender<()> {
        self.gone.clone()
    }

    /// Spawns `fut` on the current thread as one of the node's tasks; once
    /// the node has stopped, it is dropped instead.
    pub(super) fn spawn(&self, fut: impl Future<Output = ()> + 'static) {
        let mut inner = self.inner.borrow_mut();
        let Some(handles) = inner.as_mut() else {
            return;
        };
        let keep = self.gone.clone();
        handles.retain(|h| !h.is_finished());
        handles.push(actix::spawn(async move {
            let _keep = keep;
            fut.await
        }));
    }

    /// Ends every task (each is dropped at its next turn) and refuses new
    /// ones.
    pub(super) fn abort_all(&self) {
        let handles = self.inner.borrow_mut().take();
        for h in handles.into_iter().flatten() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NodeTasks;
    use std::time::Duration;

    #[test]
    fn waiting_for_a_node_that_does_not_go_gives_up_after_the_limit() {
        let (tasks, gone) = NodeTasks::new();
        assert!(!gone.wait(Duration::from_millis(20)));
        drop(tasks);
        assert!(gone.wait(Duration::from_millis(20)));
    }

    /// A node's stop ends its tasks, drops what they hold, and lets
    /// `wait` return; a task spawned afterwards never runs.
    #[test]
    fn aborting_drops_the_tasks_and_ends_the_wait() {
        let sys = actix::System::new();
        let (tasks, gone) = NodeTasks::new();
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        sys.block_on(async {
            tasks.spawn(async move {
                let _held = held_tx;
                std::future::pending::<()>().await
            });
            tokio::task::yield_now().await;
            tasks.abort_all();
            let ran = std::rc::Rc::new(std::cell::Cell::new(false));
            let r = ran.clone();
            tasks.spawn(async move { r.set(true) });
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(!ran.get(), "a task spawned after the stop ran");
        });
        assert_eq!(
            held_rx.recv_timeout(Duration::from_secs(1)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected),
            "the aborted task still holds its sender"
        );
        drop(tasks);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(gone.wait(Duration::from_secs(5)));
        });
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(true));
    }
}
