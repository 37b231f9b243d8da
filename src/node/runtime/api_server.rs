//! The external program's UNIX socket: JSON lines in, replies and events out.

use actix::prelude::*;
use std::os::fd::AsRawFd;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::{Abandoned, ApiCall, NodeActor};
use crate::node::api::{self, Reply, Request};
use crate::proto::nslp::ErrorReason;

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Subscribe(pub mpsc::UnboundedSender<api::Event>);

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Publish(pub api::Event);

// --------------------------------------------------------------------- API

/// The external program's UNIX socket.
pub struct ApiActor {
    pub(super) subscribers: Vec<mpsc::UnboundedSender<api::Event>>,
}

impl Actor for ApiActor {
    type Context = Context<Self>;
}

impl Handler<Subscribe> for ApiActor {
    type Result = ();
    fn handle(&mut self, Subscribe(tx): Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(tx);
    }
}

impl Handler<Publish> for ApiActor {
    type Result = ();
    fn handle(&mut self, Publish(ev): Publish, _: &mut Context<Self>) {
        self.subscribers.retain(|s| s.send(ev.clone()).is_ok());
    }
}

/// The longest request line the API reads (bytes, newline excluded): a
/// longer one is answered with an error and its connection closed, having
/// cost at most this much memory.
pub const MAX_LINE: usize = 64 * 1024;

/// One request line as read, or why it is not one.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// The client closed (or half-closed) its side.
    Eof,
    Text(String),
    /// More than `max` bytes without a newline (the rest is not read).
    TooLong,
    /// Not UTF-8 from byte `valid_up_to` on (the line is skipped).
    NotUtf8 {
        valid_up_to: usize,
    },
}

/// Reads the next line of at most `max` bytes into `buf` (reused; it never
/// grows past `max + 1`). A last line without a newline counts as a line.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let n = (&mut *r)
        .take(max as u64 + 1)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > max {
        return Ok(Line::TooLong);
    }
    Ok(match std::str::from_utf8(buf) {
        Ok(t) => Line::Text(t.to_string()),
        Err(e) => Line::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        },
    })
}

/// Whether the client has closed its socket entirely (not just its
/// sending side): the kernel reports a hang-up once both directions are
/// shut. Then nothing it asked for should be carried out.
fn hung_up(r: &OwnedReadHalf) -> bool {
    let s: &tokio::net::UnixStream = r.as_ref();
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; the fd outlives the call.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

async fn write_json<T: serde::Serialize>(w: &mut OwnedWriteHalf, v: &T) -> std::io::Result<()> {
    let mut s = serde_json::to_vec(v).expect("serializable");
    s.push(b'\n');
    w.write_all(&s).await
}

pub(super) fn serve_api(
    listener: UnixListener,
    node: Addr<NodeActor>,
    api: Addr<ApiActor>,
    tasks: super::tasks::NodeTasks,
) {
    tasks.clone().spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            tasks.spawn(serve_client(stream, node.clone(), api.clone()));
        }
    });
}

/// One client's connection: request lines in, one reply line each out.
async fn serve_client(stream: UnixStream, node: Addr<NodeActor>, api: Addr<ApiActor>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        let line = match read_line(&mut r, &mut buf, MAX_LINE).await {
            Ok(l) => l,
            Err(_) => return,
        };
        let received_ns = crate::model::measure::now_ns();
        let bad = |m: String| Reply::error(ErrorReason::BadRequest, m);
        let req = match line {
            Line::Eof => return,
            Line::TooLong => {
                let m = format!(
                    "request line longer than {MAX_LINE} bytes: refused, and this connection is closed (send one JSON request per line)"
                );
                let _ = write_json(&mut w, &bad(m)).await;
                return;
            }
            Line::NotUtf8 { valid_up_to } => {
                let m = format!(
                    "request line is not UTF-8 (bad byte at offset {valid_up_to}): send one JSON request per line, UTF-8 encoded"
                );
                if write_json(&mut w, &bad(m)).await.is_err() {
                    return;
                }
                continue;
            }
            Line::Text(t) => match serde_json::from_str::<Request>(&t) {
                Ok(req) => req,
                Err(e) => {
                    let mut shown = t;
                    if shown.len() > 200 {
                        let mut cut = 200;
                        while !shown.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        shown.truncate(cut);
                        shown.push_str("...");
                    }
                    let m = format!("cannot parse request {shown:?}: {e}");
                    if write_json(&mut w, &bad(m)).await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        if let Err(m) = req.check() {
            if write_json(&mut w, &bad(m)).await.is_err() {
                return;
            }
            continue;
        }
        // A setup nobody waits for any more is not carried out.
        if matches!(req, Request::Setup { .. }) && hung_up(r.get_ref()) {
            node.do_send(Abandoned { undo: None });
            return;
        }
        let events = matches!(req, Request::Events);
        let (tx, rx) = oneshot::channel();
        if node
            .send(ApiCall {
                req,
                reply: tx,
                received_ns,
            })
            .await
            .is_err()
        {
            return;
        }
        let reply = rx.await.unwrap_or_else(|_| {
            Reply::error(ErrorReason::Internal, "the node dropped the request")
        });
        if events {
            let (etx, mut erx) = mpsc::unbounded_channel();
            api.do_send(Subscribe(etx));
            if write_json(&mut w, &reply).await.is_err() {
                return;
            }
            while let Some(ev) = erx.recv().await {
                if write_json(&mut w, &ev).await.is_err() {
                    return;
                }
            }
            return;
        }
        if write_json(&mut w, &reply).await.is_err() {
            // The client has gone: a link set up for it is nobody's.
            let undo = match reply {
                Reply::LinkUp { vlink } => Some(vlink.vlink_id),
                _ => None,
            };
            node.do_send(Abandoned { undo });
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = BufReader::new(input);
            let mut buf = Vec::new();
            let mut out = vec![];
            loop {
                let l = read_line(&mut r, &mut buf, max).await.unwrap();
                assert!(buf.capacity() <= 4 * (max + 1).max(8), "buffer grew");
                let stop = matches!(l, Line::Eof | Line::TooLong);
                out.push(l);
                if stop {
                    return out;
                }
            }
        })
    }

    fn text(s: &str) -> Line {
        Line::Text(s.into())
    }

    #[test]
    fn lines_end_at_newlines_and_the_last_may_lack_one() {
        assert_eq!(
            lines(b"{\"op\":\"list\"}\r\nab\n\nlast", 16),
            vec![
                text("{\"op\":\"list\"}"),
                text("ab"),
                text(""),
                text("last"),
                Line::Eof
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes_one_more_byte_does_not() {
        assert_eq!(lines(b"12345678\n", 8), vec![text("12345678"), Line::Eof]);
        assert_eq!(lines(b"123456789\nnext\n", 8), vec![Line::TooLong]);
        // A huge line is refused after max + 1 bytes, not buffered whole.
        let huge = vec![b'x'; 1 << 20];
        assert_eq!(lines(&huge, 1024), vec![Line::TooLong]);
    }

    #[test]
    fn a_non_utf8_line_is_named_and_the_next_line_still_read() {
        assert_eq!(
            lines(b"ab\xff\xfe\n{}\n", 64),
            vec![Line::NotUtf8 { valid_up_to: 2 }, text("{}"), Line::Eof]
        );
    }
}
