//! A node's datagrams as the stream its actor polls (issue 17): each poll
//! reads the node's sockets directly, with no future made per datagram
//! (a `select!` of two readiness futures per datagram cost a waiter list
//! insertion and removal on each socket, cold on a long chain), and yields
//! what they hold at once as one burst, in a vector grown to what was read
//! (`ready_chunks` allocated room for a full burst, 3 KiB, for every burst,
//! nearly always of one datagram: beyond glibc's thread cache, and each
//! such request first consolidated every small chunk freed since the last).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;

use crate::kernel::sockets::{GistSockets, Incoming};

/// Datagrams read in one burst before the node handles any, and read
/// before the node gives the thread to its other nodes.
pub(super) const READ_BURST: usize = 64;

/// How long the stream waits after a failed read: a socket that keeps
/// failing does not spin the thread.
const AFTER_FAILURE: Duration = Duration::from_millis(10);

/// The GIST datagrams of one node for the NSLP it serves, in bursts; never
/// ends.
pub(super) struct Datagrams {
    sockets: Rc<GistSockets>,
    nslpid: u16,
    /// Reads since the stream last yielded the thread.
    read: usize,
    /// A yield after [`READ_BURST`] reads (after tokio's driver has run,
    /// so the thread's other nodes run between the bursts of a flooded
    /// one), or the pause after a failed read.
    wait: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl Datagrams {
    pub fn new(sockets: Rc<GistSockets>, nslpid: u16) -> Self {
        Self {
            sockets,
            nslpid,
            read: 0,
            wait: None,
        }
    }
}

impl Stream for Datagrams {
    type Item = Vec<std::io::Result<Incoming>>;

    /// Reads until the sockets are empty, a wait begins (the yield after
    /// [`READ_BURST`] reads, the pause after a failed read) or the burst is
    /// full; a burst that ends on a wait is yielded before it.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let nslpid = this.nslpid;
        let keep = |p: &[u8]| crate::proto::gist::codec::is_gist_for(p, nslpid);
        let mut burst = Vec::new();
        while burst.len() < READ_BURST {
            if let Some(w) = this.wait.as_mut() {
                if w.as_mut().poll(cx).is_pending() {
                    break;
                }
                this.wait = None;
            }
            if this.read >= READ_BURST {
                this.read = 0;
                this.wait = Some(Box::pin(tokio::task::yield_now()));
                continue;
            }
            let Poll::Ready(r) = this.sockets.poll_recv(cx, &keep) else {
                break;
            };
            this.read += 1;
            if r.is_err() {
                this.wait = Some(Box::pin(tokio::time::sleep(AFTER_FAILURE)));
            }
            burst.push(r);
        }
        if burst.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(burst))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt;
    use futures_util::task::ArcWake;

    use super::*;
    use crate::model::ports::GIST_PORT;

    /// Counts its wake-ups.
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(w: &Arc<Self>) {
            w.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Root: a flood already queued comes out in order, in bursts of at
    /// most [`READ_BURST`]; after each full burst the stream gives the
    /// thread up (the next poll is pending, before any read, and asks to be
    /// woken only once the thread has run its other tasks, not at once);
    /// then, with the socket empty, it waits.
    #[test]
    fn a_queued_flood_comes_out_in_bursts_with_a_yield_after_each_full_one() {
        crate::kernel::sockets::tests::in_fresh_netns(|rt| {
            rt.block_on(async {
                let lo = Ipv4Addr::LOCALHOST;
                let socks = Rc::new(GistSockets::open(vec![lo], &[]).unwrap());
                let to = SocketAddrV4::new(lo, GIST_PORT);
                let peer = std::net::UdpSocket::bind((lo, 0)).unwrap();
                let n = 2 * READ_BURST + 5;
                for i in 0..n {
                    peer.send_to(i.to_string().as_bytes(), to).unwrap();
                }
                // Should the kernel have deferred part of the delivery.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut s = Datagrams::new(socks, crate::wire::gist::NSLPID_QOS);
                let wait = Duration::from_secs(2);
                let (mut got, mut full) = (vec![], 0);
                while got.len() < n {
                    let burst = tokio::time::timeout(wait, s.next())
                        .await
                        .expect("a queued datagram was not handed out")
                        .expect("the stream ended");
                    assert!(burst.len() <= READ_BURST, "a burst of {}", burst.len());
                    if burst.len() == READ_BURST {
                        full += 1;
                        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
                        let waker = futures_util::task::waker(wakes.clone());
                        let mut cx = Context::from_waker(&waker);
                        let next = Pin::new(&mut s).poll_next(&mut cx);
                        assert!(
                            next.is_pending(),
                            "read on after a full burst, with no yield"
                        );
                        let now = wakes.0.load(Ordering::SeqCst);
                        assert_eq!(now, 0, "woken before the thread ran its other tasks");
                        tokio::task::yield_now().await;
                        let later = wakes.0.load(Ordering::SeqCst);
                        assert_eq!(later, 1, "not woken after the thread ran its other tasks");
                    }
                    for r in burst {
                        got.push(String::from_utf8(r.unwrap().payload).unwrap());
                    }
                }
                assert_eq!(full, 2, "{n} datagrams queued at once");
                let sent: Vec<String> = (0..n).map(|i| i.to_string()).collect();
                assert_eq!(got, sent);
                let idle = tokio::time::timeout(Duration::from_millis(50), s.next());
                assert!(idle.await.is_err(), "a burst out of an empty socket");
            });
        });
    }
}
