//! In-memory GIST sockets for tests: what the node sends is recorded, and
//! what a test delivers is received, with interception and forwarding
//! decided as on the kernel.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{Datagram, GistTransport, Incoming, SendMode, SocketError};

/// One datagram the node sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
    pub ttl: u8,
    pub mode: SendMode,
}

/// Sockets that never touch the kernel.
#[derive(Debug, Default)]
pub struct FakeSockets {
    /// Datagrams sent, oldest first.
    pub sent: Mutex<Vec<Sent>>,
    /// Intercepted datagrams the node refused, sent on unchanged.
    pub forwarded: Mutex<Vec<Incoming>>,
    inbox: Mutex<VecDeque<Incoming>>,
    arrived: Notify,
    fail_sends: Mutex<usize>,
}

impl FakeSockets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands a datagram to the node (addressed, or intercepted when
    /// `inc.intercepted`).
    pub fn deliver(&self, inc: Incoming) {
        self.inbox.lock().expect("inbox").push_back(inc);
        self.arrived.notify_one();
    }

    /// Makes the next `n` sends fail (as a full socket buffer would).
    pub fn fail_sends(&self, n: usize) {
        *self.fail_sends.lock().expect("fail_sends") = n;
    }

    /// Takes what was sent so far.
    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().expect("sent"))
    }
}

impl GistTransport for FakeSockets {
    fn send(&self, d: &Datagram<'_>) -> Result<(), SocketError> {
        let mut left = self.fail_sends.lock().expect("fail_sends");
        if *left > 0 {
            *left -= 1;
            return Err(d.failed(std::io::Error::from_raw_os_error(libc::ENOBUFS)));
        }
        self.sent.lock().expect("sent").push(Sent {
            dst: d.dst,
            payload: d.payload.to_vec(),
            ttl: d.ttl,
            mode: d.mode,
        });
        Ok(())
    }

    async fn recv(&self, keep: impl Fn(&[u8]) -> bool) -> Result<Incoming, SocketError> {
        loop {
            let next = self.inbox.lock().expect("inbox").pop_front();
            match next {
                Some(inc) if inc.intercepted && !keep(&inc.payload) => {
                    self.forwarded.lock().expect("forwarded").push(inc);
                }
                Some(inc) => return Ok(inc),
                None => self.arrived.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn inc(payload: &[u8], intercepted: bool) -> Incoming {
        Incoming {
            src: SocketAddrV4::new(Ipv4Addr::new(172, 1, 2, 1), 270),
            dst: Ipv4Addr::new(172, 3, 4, 4),
            ttl: Some(64),
            intercepted,
            payload: payload.to_vec(),
            at_ns: 0,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn refused_interceptions_are_forwarded_and_addressed_ones_received() {
        let s = FakeSockets::new();
        s.deliver(inc(b"other nslp", true));
        s.deliver(inc(b"gist", true));
        s.deliver(inc(b"d-mode", false));
        let keep = |p: &[u8]| p == b"gist";
        assert_eq!(s.recv(keep).await.unwrap().payload, b"gist");
        // Addressed datagrams are received whatever `keep` says.
        assert_eq!(s.recv(keep).await.unwrap().payload, b"d-mode");
        assert_eq!(s.forwarded.lock().unwrap()[0].payload, b"other nslp");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn recv_waits_for_a_delivery() {
        let s = std::sync::Arc::new(FakeSockets::new());
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.recv(|_| true).await.unwrap().payload });
        tokio::task::yield_now().await;
        s.deliver(inc(b"late", false));
        assert_eq!(waiter.await.unwrap(), b"late");
    }

    #[test]
    fn sends_are_recorded_and_injected_failures_name_the_destination() {
        let s = FakeSockets::new();
        let dst = SocketAddrV4::new(Ipv4Addr::new(172, 3, 4, 4), 270);
        s.send(&Datagram {
            dst,
            payload: b"q",
            ttl: 64,
            mode: SendMode::RouterAlert,
        })
        .unwrap();
        s.fail_sends(1);
        let e = s
            .send(&Datagram {
                dst,
                payload: b"d",
                ttl: 64,
                mode: SendMode::Addressed,
            })
            .unwrap_err();
        assert!(e.to_string().contains("172.3.4.4:270"), "{e}");
        s.send(&Datagram {
            dst,
            payload: b"d",
            ttl: 63,
            mode: SendMode::Addressed,
        })
        .unwrap();
        let sent = s.take_sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].mode, SendMode::RouterAlert);
        assert_eq!((sent[1].payload.as_slice(), sent[1].ttl), (&b"d"[..], 63));
    }
}
