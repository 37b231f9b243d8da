//! The external program's UNIX socket: JSON lines in, replies and events out.

use actix::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::{ApiCall, NodeActor};
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

pub(super) fn serve_api(listener: UnixListener, node: Addr<NodeActor>, api: Addr<ApiActor>) {
    actix::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let node = node.clone();
            let api = api.clone();
            actix::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let received_ns = crate::model::measure::now_ns();
                    let reply = match serde_json::from_str::<Request>(&line) {
                        Err(e) => Reply::error(
                            ErrorReason::BadRequest,
                            format!("cannot parse request {line:?}: {e}"),
                        ),
                        Ok(req) => {
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
                                break;
                            }
                            let reply = rx.await.unwrap_or_else(|_| {
                                Reply::error(ErrorReason::Internal, "the node dropped the request")
                            });
                            if events {
                                let (etx, mut erx) = mpsc::unbounded_channel();
                                api.do_send(Subscribe(etx));
                                let mut s = serde_json::to_vec(&reply).expect("serializable");
                                s.push(b'\n');
                                if w.write_all(&s).await.is_err() {
                                    return;
                                }
                                while let Some(ev) = erx.recv().await {
                                    let mut s = serde_json::to_vec(&ev).expect("serializable");
                                    s.push(b'\n');
                                    if w.write_all(&s).await.is_err() {
                                        return;
                                    }
                                }
                                return;
                            }
                            reply
                        }
                    };
                    let mut s = serde_json::to_vec(&reply).expect("serializable");
                    s.push(b'\n');
                    if w.write_all(&s).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}
