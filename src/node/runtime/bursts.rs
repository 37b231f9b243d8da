//! A node's received datagrams as a stream of bursts, polled by its actor
//! itself (`add_stream`): a datagram that finds the node idle is handled
//! in the same turn of the thread that read it, with no hand-over to a
//! receive task, no mailbox message and no wake-up between them (issue 17:
//! each was a few µs of every one-way leg on a chain). A burst is what
//! the sockets hold at once, up to a limit: the node queues all of it in
//! its intake before it handles any, so under a flood the intake, not the
//! kernel's socket buffer, decides what is shed (fairly between peers).
//! After a full burst the stream yields its turn once, so the other nodes
//! of the thread run between the bursts of a flooded one.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

/// Up to `limit` items of `inner` that are ready at once.
pub(super) struct Bursts<S> {
    inner: Pin<Box<S>>,
    limit: usize,
    /// The last burst was full: give the thread back before the next.
    yield_next: bool,
}

impl<S: Stream> Bursts<S> {
    pub(super) fn new(inner: S, limit: usize) -> Self {
        Self {
            inner: Box::pin(inner),
            limit: limit.max(1),
            yield_next: false,
        }
    }
}

impl<S: Stream> Stream for Bursts<S> {
    type Item = Vec<S::Item>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if std::mem::take(&mut self.yield_next) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut burst = Vec::new();
        while burst.len() < self.limit {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => burst.push(item),
                Poll::Ready(None) if burst.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if burst.is_empty() {
            return Poll::Pending;
        }
        self.yield_next = burst.len() == self.limit;
        Poll::Ready(Some(burst))
    }
}

#[cfg(test)]
mod tests {
    use super::Bursts;
    use futures_util::{Stream, StreamExt};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Ready items, then one `Pending`, then ready items again.
    struct Gappy(Vec<Option<u32>>);

    impl Stream for Gappy {
        type Item = u32;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            if self.0.is_empty() {
                return Poll::Ready(None);
            }
            match self.0.remove(0) {
                Some(x) => Poll::Ready(Some(x)),
                None => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }

    fn poll<S: Stream + Unpin>(s: &mut S) -> Poll<Option<S::Item>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        s.poll_next_unpin(&mut cx)
    }

    #[test]
    fn a_burst_is_what_is_ready_at_once_and_a_full_one_yields_the_turn_after_it() {
        let mut b = Bursts::new(
            Gappy(vec![Some(1), Some(2), Some(3), Some(4), None, Some(5)]),
            3,
        );
        assert_eq!(poll(&mut b), Poll::Ready(Some(vec![1, 2, 3])));
        // Full: the thread's other tasks run before the next burst.
        assert_eq!(poll(&mut b), Poll::Pending);
        // Cut short by the stream's Pending.
        assert_eq!(poll(&mut b), Poll::Ready(Some(vec![4])));
        assert_eq!(poll(&mut b), Poll::Ready(Some(vec![5])));
        assert_eq!(poll(&mut b), Poll::Ready(None));
    }
}
