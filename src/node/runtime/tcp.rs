//! The node's GIST messaging associations (C-mode, TCP): the listener, one
//! task per association that reads messages into the [`NodeActor`] and
//! writes what the core sends on it, and the table of open ones. The core
//! decides when to open and close them ([`MaAction`]); this only does it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddrV4;

use actix::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::NodeActor;
use crate::kernel::sockets::Incoming;
use crate::kernel::sockets::tcp::{connect, read_message, v4};

/// A GIST message read from an MA.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct MaMessage(pub Incoming);

/// An MA ended (peer closed, error, or it never connected).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct MaClosed {
    pub remote: SocketAddrV4,
    generation: u64,
}

/// A connection accepted by the listener.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct MaAccepted {
    pub stream: TcpStream,
    pub remote: SocketAddrV4,
}

struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
    generation: u64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Dropping the task drops the socket: the MA closes.
        self.task.abort();
    }
}

/// The open MAs by far end.
#[derive(Default)]
pub(super) struct MaPool {
    conns: HashMap<SocketAddrV4, Conn>,
    next_generation: u64,
}

impl MaPool {
    /// Connects to `remote`; messages sent meanwhile wait for the connection.
    pub fn open(&mut self, remote: SocketAddrV4, me: Addr<NodeActor>) {
        self.start(remote, me, async move { connect(remote).await });
    }

    /// Takes over a connection the listener accepted.
    pub fn accepted(&mut self, stream: TcpStream, remote: SocketAddrV4, me: Addr<NodeActor>) {
        let _ = stream.set_nodelay(true);
        self.start(remote, me, async move { Ok(stream) });
    }

    fn start(
        &mut self,
        remote: SocketAddrV4,
        me: Addr<NodeActor>,
        stream: impl Future<Output = io::Result<TcpStream>> + 'static,
    ) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = actix::spawn(async move {
            if let Err(e) = run(stream, remote, &me, rx).await {
                tracing::warn!(%remote, "GIST messaging association ended: {e}");
            }
            me.do_send(MaClosed { remote, generation });
        });
        self.conns.insert(
            remote,
            Conn {
                tx,
                task,
                generation,
            },
        );
    }

    /// Queues `bytes` on the MA to `remote`.
    pub fn send(&self, remote: SocketAddrV4, bytes: Vec<u8>) -> io::Result<()> {
        let c = self.conns.get(&remote).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("no GIST messaging association to {remote}"),
            )
        })?;
        c.tx.send(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the GIST messaging association to {remote} has ended"),
            )
        })
    }

    pub fn close(&mut self, remote: SocketAddrV4) {
        self.conns.remove(&remote);
    }

    /// Forgets an MA that ended by itself; false if `closed` is about an
    /// older MA to the same far end (the current one stays).
    pub fn ended(&mut self, closed: &MaClosed) -> bool {
        match self.conns.get(&closed.remote) {
            Some(c) if c.generation == closed.generation => {
                self.conns.remove(&closed.remote);
                true
            }
            _ => false,
        }
    }
}

async fn run(
    stream: impl Future<Output = io::Result<TcpStream>>,
    remote: SocketAddrV4,
    me: &Addr<NodeActor>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> io::Result<()> {
    let stream = stream.await?;
    let local = v4(stream.local_addr())?;
    let (mut r, mut w) = stream.into_split();
    let writer = async {
        while let Some(b) = rx.recv().await {
            w.write_all(&b).await?;
        }
        Ok::<_, io::Error>(())
    };
    let reader = async {
        while let Some(payload) = read_message(&mut r).await? {
            me.do_send(MaMessage(Incoming {
                src: remote,
                dst: *local.ip(),
                ttl: None,
                intercepted: false,
                payload,
                at_ns: crate::model::measure::now_ns(),
            }));
        }
        Ok(())
    };
    tokio::select! {
        r = writer => r,
        r = reader => r,
    }
}

/// Accepts MAs for the node until it stops.
pub(super) fn serve(listener: TcpListener, me: Addr<NodeActor>, tasks: &super::tasks::NodeTasks) {
    tasks.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => match v4(Ok(addr)) {
                    Ok(remote) => me.do_send(MaAccepted { stream, remote }),
                    Err(e) => tracing::warn!("GIST MA refused: {e}"),
                },
                Err(e) => {
                    tracing::warn!("GIST MA listener: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
}
