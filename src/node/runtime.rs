//! The actors of one substrate node, and the thread they live on. This is
//! the only module that knows actix: the protocol logic lives in the sans-IO
//! machines (`gist::machine`, `qos_nslp::machine`), the kernel work in
//! `transport` and `vlink`; the actors only move messages between them.
//!
//! One OS thread per node enters the node's network namespace first and then
//! runs an actix `System` (a current-thread runtime), so every socket, netlink
//! handle and child process the actors create belongs to that namespace.
//!
//! Actors, one job each, exchanging typed messages:
//! - [`GistActor`]: the sockets, GIST handshakes and routing state, early
//!   HMAC verification of received PDUs and signing of sent ones;
//! - [`NslpActor`]: the QoS NSLP reservation state machine and the RMF's
//!   admission ledger;
//! - [`VlinkActor`]: tunnel ends (netlink or script backend);
//! - [`ApiActor`]: the external program's UNIX socket.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use crate::kernel::sockets::{GistSockets, Incoming};
use crate::kernel::tunnel::{TunnelEnd, Tunnels};
use crate::model::measure::{PointKind, Recorder};
use crate::node::api::{self, Reply, Request};
use crate::node::config::NodeConfig;
use crate::proto::gist::machine::{self as gm, Direction, Flow, Gist, Sid};
use crate::proto::nslp::{Action, AuthVerdict, Nslp, RecvContext};

/// The measurement point of an NSLP message leaving (or arriving) in a
/// GIST Data: its first byte is the QoS NSLP message type.
fn nslp_point(nslp_data: &[u8], sent: bool) -> Option<PointKind> {
    Some(match (nslp_data.first()?, sent) {
        (1, true) => PointKind::ReserveSent,
        (3, true) => PointKind::ResponseSent,
        (4, true) => PointKind::NotifySent,
        (1, false) => PointKind::ReserveReceived,
        (3, false) => PointKind::ResponseReceived,
        (4, false) => PointKind::NotifyReceived,
        _ => return None,
    })
}

// ----------------------------------------------------------------- messages

#[derive(Message)]
#[rtype(result = "()")]
struct Datagram(Incoming);

#[derive(Message)]
#[rtype(result = "()")]
struct SendNslp {
    sid: Sid,
    flow: Flow,
    dir: Direction,
    local: Ipv4Addr,
    bytes: Vec<u8>,
    sign: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Forget(Sid);

#[derive(Message)]
#[rtype(result = "()")]
struct FromGist(gm::Event, AuthVerdict);

#[derive(Message)]
#[rtype(result = "()")]
struct ApiCall {
    req: Request,
    reply: oneshot::Sender<Reply>,
    /// When the request line was read ([A] on the node starts here).
    received_ns: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
struct VlinkWork {
    sid: Sid,
    end: TunnelEnd,
    up: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct VlinkResult {
    sid: Sid,
    err: Option<String>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Subscribe(mpsc::UnboundedSender<api::Event>);

#[derive(Message)]
#[rtype(result = "()")]
struct Publish(api::Event);

// -------------------------------------------------------------------- GIST

/// Sockets, GIST machine, early verification and signing.
pub struct GistActor {
    cfg: Rc<NodeConfig>,
    sockets: Rc<GistSockets>,
    gist: Gist,
    nslp: Option<Addr<NslpActor>>,
    rec: Recorder,
    timer: Option<SpawnHandle>,
    /// PDUs refused before parsing, by reason (for `stats`).
    pub refused: HashMap<String, u64>,
}

impl GistActor {
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while let Some(t) = self.gist.poll_transmit() {
            let kind = match &t.msg {
                gm::Msg::Query { .. } => Some(PointKind::GistQuerySent),
                gm::Msg::Response { .. } => Some(PointKind::GistResponseSent),
                gm::Msg::Confirm { .. } => Some(PointKind::GistConfirmSent),
                gm::Msg::Data { nslp_data, .. } => nslp_point(nslp_data, true),
                _ => None,
            };
            let sid = t.msg.sid();
            let mut bytes = crate::proto::gist::codec::encode(&t.msg);
            if t.sign {
                self.rec.mark(sid, PointKind::HmacSignStart);
                let r =
                    crate::wire::auth::sign_pdu(&mut bytes, self.cfg.profile, &self.cfg.sign_keys);
                self.rec.mark(sid, PointKind::HmacSignDone);
                if let Err(e) = r {
                    tracing::warn!(node = %self.cfg.name, "signing failed: {e}");
                }
            }
            // The instant the message is handed to the kernel: taken before
            // the syscall, which may lose the CPU to the receiving node.
            if let Some(k) = kind {
                self.rec.mark(sid, k);
            }
            let r = if t.qmode {
                self.sockets.send_qmode(t.dst, &bytes, t.ttl)
            } else {
                self.sockets.send_dmode(t.dst, &bytes, t.ttl)
            };
            if let Err(e) = r {
                tracing::warn!(node = %self.cfg.name, dst = %t.dst, "send failed: {e}");
            }
        }
        while let Some(ev) = self.gist.poll_event() {
            if let Some(n) = &self.nslp {
                n.do_send(FromGist(ev, AuthVerdict::NotChecked));
            }
        }
        self.schedule(ctx);
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.gist.poll_timeout() {
            let d = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(d, |act, ctx| {
                act.timer = None;
                let cfg = act.cfg.clone();
                act.gist
                    .handle_timeout(Instant::now(), |dst| cfg.local_addr_for(dst));
                act.flush(ctx);
            }));
        }
    }
}

impl Actor for GistActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let sockets = self.sockets.clone();
        let me = ctx.address();
        let nslpid = crate::wire::gist::NSLPID_QOS;
        actix::spawn(async move {
            loop {
                match sockets
                    .recv(|p| crate::proto::gist::codec::is_gist_for(p, nslpid))
                    .await
                {
                    Ok(inc) => {
                        if me.try_send(Datagram(inc)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("GIST socket receive failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
}

impl Handler<Datagram> for GistActor {
    type Result = ();

    fn handle(&mut self, Datagram(inc): Datagram, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let inc_ns = inc.at_ns;
        // Early verification (paper §IV-B): a Data PDU whose flow ends (or,
        // upstream, starts) here is checked on the raw bytes, before parsing.
        let verdict = match crate::proto::gist::codec::auth_relevant(&inc.payload, &self.cfg.addrs)
        {
            Some(sid) => {
                self.rec.mark(sid, PointKind::HmacVerifyStart);
                let v = crate::wire::auth::verify_pdu(
                    &inc.payload,
                    self.cfg.profile,
                    &self.cfg.verify_keys,
                    crate::wire::auth::Timestamp::now(),
                    &self.cfg.verify_policy,
                );
                self.rec.mark(sid, PointKind::HmacVerifyDone);
                match v {
                    Ok(ok) => AuthVerdict::Verified {
                        entity: ok.entity.to_string(),
                        key_id: ok.key_id,
                    },
                    Err(crate::wire::auth::AuthError::Unsigned) => AuthVerdict::Unsigned,
                    Err(e) => {
                        *self.refused.entry(e.reason().to_string()).or_insert(0) += 1;
                        AuthVerdict::Failed {
                            reason: e.reason().to_string(),
                            message: e.to_string(),
                        }
                    }
                }
            }
            None => AuthVerdict::NotChecked,
        };
        let msg = match crate::proto::gist::codec::decode(&inc.payload) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                *self.refused.entry("malformed".into()).or_insert(0) += 1;
                tracing::debug!(node = %self.cfg.name, src = %inc.src, "bad GIST PDU: {e}");
                if let Some(err) = crate::proto::gist::codec::error_reply(&inc.payload, &e) {
                    let _ = self.sockets.send_dmode(inc.src, &err, 64);
                }
                return;
            }
        };
        let sid = msg.sid();
        let kind = match &msg {
            gm::Msg::Query { .. } => Some(PointKind::GistQueryReceived),
            gm::Msg::Response { .. } => Some(PointKind::GistResponseReceived),
            gm::Msg::Confirm { .. } => Some(PointKind::GistConfirmReceived),
            gm::Msg::Data { nslp_data, .. } => nslp_point(nslp_data, false),
            _ => None,
        };
        if let Some(k) = kind {
            self.rec.mark_at(inc_ns, sid, k);
        }
        let local = if inc.dst.is_unspecified() || inc.intercepted {
            self.cfg.local_addr_for(*inc.src.ip())
        } else {
            inc.dst
        };
        self.gist.handle(now, inc.src, local, msg);
        // Attach the verdict to what this datagram delivered.
        while let Some(ev) = self.gist.poll_event() {
            if let Some(n) = &self.nslp {
                n.do_send(FromGist(ev, verdict.clone()));
            }
        }
        self.flush(ctx);
    }
}

impl Handler<SendNslp> for GistActor {
    type Result = ();
    fn handle(&mut self, m: SendNslp, ctx: &mut Context<Self>) {
        self.gist.send(
            Instant::now(),
            m.sid,
            m.flow,
            m.dir,
            m.local,
            m.bytes,
            m.sign,
        );
        self.flush(ctx);
    }
}

impl Handler<Forget> for GistActor {
    type Result = ();
    fn handle(&mut self, Forget(sid): Forget, ctx: &mut Context<Self>) {
        self.gist.forget(&sid);
        self.schedule(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SetNslp(Addr<NslpActor>);

impl Handler<SetNslp> for GistActor {
    type Result = ();
    fn handle(&mut self, SetNslp(a): SetNslp, _: &mut Context<Self>) {
        self.nslp = Some(a);
    }
}

// -------------------------------------------------------------------- NSLP

/// The QoS NSLP machine and the requests waiting on it.
pub struct NslpActor {
    cfg: Rc<NodeConfig>,
    nslp: Nslp,
    gist: Addr<GistActor>,
    vlink: Addr<VlinkActor>,
    api: Option<Addr<ApiActor>>,
    rec: Recorder,
    next_req: u64,
    /// Backends chosen per request, for this node's tunnel ends (by session).
    backends: HashMap<Sid, crate::model::tunnel::Backend>,
    waiting: HashMap<u64, (oneshot::Sender<Reply>, Sid)>,
    timer: Option<SpawnHandle>,
    /// Tunnel-end operations not finished yet (incl. deferred deletions).
    vlink_busy: Arc<AtomicUsize>,
}

impl Actor for NslpActor {
    type Context = Context<Self>;
}

impl NslpActor {
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while let Some(a) = self.nslp.poll_action() {
            match a {
                Action::Send {
                    sid,
                    flow,
                    dir,
                    mut msg,
                    authenticate,
                } => {
                    if authenticate {
                        for obj in self.cfg.auth_objects(&flow, dir, &msg) {
                            msg.objects
                                .push(crate::wire::nslp::NslpObject::SessionAuth(obj));
                        }
                    }
                    let bytes = msg.to_bytes(self.cfg.profile);
                    let peer = match dir {
                        Direction::Downstream => flow.dst,
                        Direction::Upstream => flow.src,
                    };
                    let local = self.cfg.local_addr_for(peer);
                    self.gist.do_send(SendNslp {
                        sid,
                        flow,
                        dir,
                        local,
                        bytes,
                        sign: authenticate,
                    });
                }
                Action::VlinkUp {
                    sid,
                    vlsp,
                    flow,
                    initiator,
                } => {
                    if let Some(mut end) = self.cfg.tunnel_end(&vlsp, &flow, initiator) {
                        if initiator {
                            end.backend = self.backends.get(&sid).copied();
                        }
                        self.vlink.do_send(VlinkWork { sid, end, up: true });
                    } else {
                        let local = self.cfg.tunnel_addr;
                        self.nslp.vlink_done(
                            Instant::now(),
                            sid,
                            local,
                            Some(format!(
                                "{}: the VLSP object names a virtual node that is not hosted here",
                                self.cfg.name
                            )),
                        );
                    }
                }
                Action::VlinkDown {
                    sid,
                    vlsp,
                    flow,
                    initiator,
                } => {
                    if let Some(mut end) = self.cfg.tunnel_end(&vlsp, &flow, initiator) {
                        if initiator {
                            end.backend = self.backends.remove(&sid);
                        }
                        self.vlink.do_send(VlinkWork {
                            sid,
                            end,
                            up: false,
                        });
                    }
                }
                Action::Reply { req_id, result } => {
                    if let Some((tx, sid)) = self.waiting.remove(&req_id) {
                        let reply = match result {
                            Ok(l) if l.up => Reply::LinkUp {
                                vlink: self.link_info(l.vlink_id, &l.sid),
                            },
                            Ok(l) => Reply::LinkDown {
                                vlink_id: l.vlink_id,
                            },
                            Err(e) => Reply::Error {
                                reason: e.reason,
                                message: e.message,
                            },
                        };
                        self.rec.mark(sid, PointKind::ApiReplySent);
                        let _ = tx.send(reply);
                    }
                }
                Action::Event {
                    vlink_id,
                    kind,
                    message,
                } => {
                    if let Some(api) = &self.api {
                        api.do_send(Publish(api::Event {
                            node: self.cfg.name.clone(),
                            vlink_id,
                            kind: kind.to_string(),
                            message,
                        }));
                    }
                }
                Action::Forget { sid } => self.gist.do_send(Forget(sid)),
                Action::Point { sid, kind } => self.rec.mark(sid, kind),
            }
        }
        self.schedule(ctx);
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.nslp.poll_timeout() {
            let d = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(d, |act, ctx| {
                act.timer = None;
                act.nslp.handle_timeout(Instant::now());
                act.drain(ctx);
            }));
        }
    }

    fn link_info(&self, vlink_id: u64, sid: &Sid) -> api::LinkInfo {
        let (from, to, rate) = self
            .nslp
            .sessions()
            .find(|(s, ..)| *s == sid)
            .map(|(_, _, _, v, rate)| {
                let (f, t) = v
                    .map(|v| {
                        (
                            self.cfg.vnode_name(v.src_vnode),
                            self.cfg.vnode_name(v.dst_vnode),
                        )
                    })
                    .unwrap_or_default();
                (f, t, rate)
            })
            .unwrap_or_default();
        api::LinkInfo {
            vlink_id,
            from,
            to,
            rate_bps: rate,
            session: hex(sid),
            tunnel: self.cfg.tunnel.to_string(),
            backend: self.backend_of(sid),
            state: "up".into(),
        }
    }

    /// The backend of this node's tunnel end for session `sid`.
    fn backend_of(&self, sid: &Sid) -> String {
        self.backends
            .get(sid)
            .copied()
            .unwrap_or(self.cfg.backend)
            .to_string()
    }

    fn list(&self) -> Vec<api::LinkInfo> {
        self.nslp
            .sessions()
            .filter_map(|(sid, role, phase, v, rate)| {
                let v = v?;
                Some(api::LinkInfo {
                    vlink_id: v.vlink_id,
                    from: self.cfg.vnode_name(v.src_vnode),
                    to: self.cfg.vnode_name(v.dst_vnode),
                    rate_bps: rate,
                    session: hex(sid),
                    tunnel: self.cfg.tunnel.to_string(),
                    backend: self.backend_of(sid),
                    state: format!("{}/{}", json_word(&role), json_word(&phase)),
                })
            })
            .collect()
    }
}

fn json_word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Lower-case hex of a session id.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Handler<FromGist> for NslpActor {
    type Result = ();
    fn handle(&mut self, FromGist(ev, verdict): FromGist, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match ev {
            gm::Event::Received {
                sid,
                flow,
                dir,
                peer,
                nslp_data,
            } => {
                let msg = match crate::wire::nslp::NslpMessage::decode(&nslp_data, self.cfg.profile)
                {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(node = %self.cfg.name, %peer, "bad NSLP message: {e}");
                        return;
                    }
                };
                let is_destination = match dir {
                    Direction::Downstream => self.cfg.addrs.contains(&flow.dst),
                    Direction::Upstream => self.cfg.addrs.contains(&flow.src),
                };
                let ctxt = RecvContext {
                    auth: verdict,
                    is_destination,
                    egress_link: self.cfg.egress_link(flow.dst),
                    reverse_link: self.cfg.egress_link(flow.src),
                    local: self.cfg.local_addr_for(peer),
                };
                self.nslp.recv(now, sid, flow, dir, msg, ctxt);
            }
            gm::Event::PeerLost { sid, .. } => self.nslp.peer_lost(now, sid),
            gm::Event::RoutingStateLost { .. } => {}
        }
        self.drain(ctx);
    }
}

impl Handler<VlinkResult> for NslpActor {
    type Result = ();
    fn handle(&mut self, r: VlinkResult, ctx: &mut Context<Self>) {
        let local = self.cfg.tunnel_addr;
        self.nslp.vlink_done(Instant::now(), r.sid, local, r.err);
        self.drain(ctx);
    }
}

impl Handler<ApiCall> for NslpActor {
    type Result = ();
    fn handle(&mut self, call: ApiCall, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.next_req += 1;
        let req_id = self.next_req;
        match call.req {
            Request::Setup {
                from,
                to,
                rate_bps,
                backend,
                authenticate,
                bidirectional,
            } => match self.cfg.setup_request(
                req_id,
                &from,
                &to,
                rate_bps,
                authenticate,
                bidirectional,
            ) {
                Ok(req) => {
                    // A per-request backend applies to this node's tunnel
                    // end; the responder uses its own (nothing on the wire
                    // names a backend).
                    if let Some(b) = backend {
                        self.backends.insert(req.sid, b);
                    }
                    self.rec
                        .mark_at(call.received_ns, req.sid, PointKind::ApiRequestReceived);
                    self.waiting.insert(req_id, (call.reply, req.sid));
                    self.nslp.setup(now, req);
                }
                Err(message) => {
                    let _ = call.reply.send(Reply::Error {
                        reason: "bad_request".into(),
                        message,
                    });
                }
            },
            Request::Teardown { vlink_id } => {
                let sid = self
                    .nslp
                    .sessions()
                    .find(|(_, _, _, v, _)| v.is_some_and(|v| v.vlink_id == vlink_id))
                    .map(|(s, ..)| *s)
                    .unwrap_or_default();
                self.rec
                    .mark_at(call.received_ns, sid, PointKind::ApiRequestReceived);
                self.waiting.insert(req_id, (call.reply, sid));
                self.nslp.teardown(now, req_id, vlink_id);
            }
            Request::List => {
                let _ = call.reply.send(Reply::Links { links: self.list() });
            }
            Request::Stats => {
                let stats = serde_json::json!({
                    "node": self.cfg.name,
                    "nslp": self.nslp.stats(),
                    "reservations": self.nslp.ledger().len(),
                    "vlink_pending": self.vlink_busy.load(Ordering::SeqCst),
                });
                let _ = call.reply.send(Reply::Stats { stats });
            }
            Request::DumpPoints => {
                let _ = call.reply.send(Reply::Points {
                    points: self.rec.drain(),
                });
            }
            Request::Events => {
                let _ = call.reply.send(Reply::Subscribed);
            }
        }
        self.drain(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SetApi(Addr<ApiActor>);

impl Handler<SetApi> for NslpActor {
    type Result = ();
    fn handle(&mut self, SetApi(a): SetApi, _: &mut Context<Self>) {
        self.api = Some(a);
    }
}

// ------------------------------------------------------------------- vlink

/// Tunnel ends, one operation at a time, in arrival order.
pub struct VlinkActor {
    tx: mpsc::UnboundedSender<VlinkWork>,
    /// Operations queued or running (deferred deletions included).
    busy: Arc<AtomicUsize>,
}

impl Actor for VlinkActor {
    type Context = Context<Self>;
}

impl VlinkActor {
    fn start_worker(
        mut tunnels: Tunnels,
        nslp: Addr<NslpActor>,
        rec: Recorder,
        pending: Arc<AtomicUsize>,
        reaper: std::sync::mpsc::Sender<(Sid, String)>,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<VlinkWork>();
        let busy = pending.clone();
        actix::spawn(async move {
            while let Some(w) = rx.recv().await {
                let (start, done) = if w.up {
                    (PointKind::VlinkUpStart, PointKind::VlinkUpDone)
                } else {
                    (PointKind::VlinkDownStart, PointKind::VlinkDownDone)
                };
                rec.mark(w.sid, start);
                let r = if w.up {
                    tunnels.up(&w.end).await
                } else {
                    tunnels.out_of_service(&w.end).await
                };
                rec.mark(w.sid, done);
                nslp.do_send(VlinkResult {
                    sid: w.sid,
                    err: r.err().map(|e| e.to_string()),
                });
                if !w.up && tunnels.backend_for(&w.end) == crate::model::tunnel::Backend::Netlink {
                    // The device's deletion holds the kernel's RTNL lock (one
                    // for all namespaces) for an RCU grace period: the reaper
                    // thread does it, after the signaling is over.
                    pending.fetch_add(1, Ordering::SeqCst);
                    let _ = reaper.send((w.sid, w.end.ifname()));
                }
                pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Self { tx, busy }
    }
}

impl Handler<VlinkWork> for VlinkActor {
    type Result = ();
    fn handle(&mut self, w: VlinkWork, _: &mut Context<Self>) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.send(w);
    }
}

/// How long after a teardown the tunnel device is deleted: long enough for
/// the other end's teardown to finish, so the deletion's RTNL stall (~25 ms,
/// felt by every namespace) does not fall inside the signaling.
pub const DELETE_DELAY: Duration = Duration::from_millis(20);

/// A thread in the node's namespace (it inherits the caller's) with its own
/// netlink socket, deleting tunnel devices after [`DELETE_DELAY`].
fn start_reaper(
    node: &str,
    rec: Recorder,
    pending: Arc<AtomicUsize>,
) -> Result<std::sync::mpsc::Sender<(Sid, String)>, String> {
    let (tx, rx) = std::sync::mpsc::channel::<(Sid, String)>();
    std::thread::Builder::new()
        .name(format!("reap-{node}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(_) => return,
            };
            rt.block_on(async move {
                let Ok((conn, handle, _)) = rtnetlink::new_connection() else {
                    return;
                };
                tokio::spawn(conn);
                while let Ok((sid, ifname)) = rx.recv() {
                    tokio::time::sleep(DELETE_DELAY).await;
                    rec.mark(sid, PointKind::VlinkDeleteStart);
                    if let Err(e) = crate::kernel::tunnel::delete_by_name(&handle, &ifname).await {
                        tracing::warn!("deleting {ifname}: {e}");
                    }
                    rec.mark(sid, PointKind::VlinkDeleteDone);
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            });
        })
        .map_err(|e| format!("node {node}: reaper thread: {e}"))?;
    Ok(tx)
}

// --------------------------------------------------------------------- API

/// The external program's UNIX socket.
pub struct ApiActor {
    subscribers: Vec<mpsc::UnboundedSender<api::Event>>,
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

fn serve_api(listener: UnixListener, nslp: Addr<NslpActor>, api: Addr<ApiActor>) {
    actix::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let nslp = nslp.clone();
            let api = api.clone();
            actix::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let received_ns = crate::model::measure::now_ns();
                    let reply = match serde_json::from_str::<Request>(&line) {
                        Err(e) => Reply::Error {
                            reason: "bad_request".into(),
                            message: format!("cannot parse request {line:?}: {e}"),
                        },
                        Ok(req) => {
                            let events = matches!(req, Request::Events);
                            let (tx, rx) = oneshot::channel();
                            if nslp
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
                            let reply = rx.await.unwrap_or(Reply::Error {
                                reason: "internal".into(),
                                message: "the node dropped the request".into(),
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

// ------------------------------------------------------------------ thread

/// A running node: its thread and a way to stop it.
pub struct NodeHandle {
    pub name: String,
    pub api_socket: PathBuf,
    system: actix::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeHandle {
    /// Stops the node's actors and waits for its thread.
    pub fn stop(mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a node: a thread that enters `cfg.netns`, opens its sockets there
/// and runs the actors until stopped. Returns once the API socket listens.
pub fn spawn_node(cfg: NodeConfig, rec: Recorder) -> anyhow::Result<NodeHandle> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<actix::System, String>>();
    let name = cfg.name.clone();
    let api_socket = cfg.api_socket.clone();
    let thread = std::thread::Builder::new()
        .name(format!("node-{name}"))
        .spawn(move || {
            if let Err(e) = crate::kernel::substrate::enter(&cfg.netns) {
                let _ = ready_tx.send(Err(format!(
                    "node {}: cannot enter namespace {}: {e}",
                    cfg.name,
                    cfg.netns.display()
                )));
                return;
            }
            let sys = actix::System::new();
            sys.block_on(async move {
                match start_actors(cfg, rec).await {
                    Ok(()) => {
                        let _ = ready_tx.send(Ok(actix::System::current()));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        actix::System::current().stop();
                    }
                }
            });
            let _ = sys.run();
        })?;
    let system = ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("node {name}: thread ended during start-up"))?
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(NodeHandle {
        name,
        api_socket,
        system,
        thread: Some(thread),
    })
}

async fn start_actors(cfg: NodeConfig, rec: Recorder) -> Result<(), String> {
    let cfg = Rc::new(cfg);
    let sockets = GistSockets::open(cfg.addrs.clone())
        .map_err(|e| format!("node {}: GIST sockets: {e}", cfg.name))?;
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("node {}: netlink: {e}", cfg.name))?;
    actix::spawn(conn);
    let tunnels = Tunnels::new(cfg.backend, Some(handle), &cfg.script_dir);
    let _ = std::fs::remove_file(&cfg.api_socket);
    if let Some(d) = cfg.api_socket.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let listener = UnixListener::bind(&cfg.api_socket).map_err(|e| {
        format!(
            "node {}: API socket {}: {e}",
            cfg.name,
            cfg.api_socket.display()
        )
    })?;

    let gist = GistActor {
        cfg: cfg.clone(),
        sockets: Rc::new(sockets),
        gist: Gist::new(cfg.gist_config()),
        nslp: None,
        rec: rec.clone(),
        timer: None,
        refused: HashMap::new(),
    }
    .start();
    // The enforcer's netlink socket is opened here, on the node's thread,
    // so that it lives in the node's namespace.
    let enforcer: Box<dyn crate::proto::rmf::Enforcer> = if cfg.qos_enforce {
        Box::new(
            crate::kernel::tc::HtbEnforcer::open(rec.clone())
                .map_err(|e| format!("node {}: QoS enforcement: {e}", cfg.name))?,
        )
    } else {
        Box::new(crate::proto::rmf::NoEnforcer)
    };
    let nslp_cfg = cfg.clone();
    let rec2 = rec.clone();
    let gist2 = gist.clone();
    let busy = Arc::new(AtomicUsize::new(0));
    let reaper = start_reaper(&cfg.name, rec.clone(), busy.clone())?;
    let nslp = NslpActor::create(move |ctx| {
        let me = ctx.address();
        let vlink =
            VlinkActor::start_worker(tunnels, me, rec2.clone(), busy.clone(), reaper).start();
        NslpActor {
            vlink_busy: busy,
            nslp: Nslp::new(
                nslp_cfg.nslp_config(),
                nslp_cfg.ledger(enforcer),
                nslp_cfg.seed(),
            ),
            cfg: nslp_cfg,
            gist: gist2,
            vlink,
            api: None,
            rec: rec2,
            next_req: 0,
            backends: HashMap::new(),
            waiting: HashMap::new(),
            timer: None,
        }
    });
    gist.do_send(SetNslp(nslp.clone()));
    let api = ApiActor {
        subscribers: vec![],
    }
    .start();
    nslp.do_send(SetApi(api.clone()));
    serve_api(listener, nslp, api);
    Ok(())
}
