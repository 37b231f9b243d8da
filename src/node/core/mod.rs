//! The node core, sans-IO: one value owning the GIST and NSLP machines, the
//! node's keys and authorization policy, the measurement points and the API
//! request mapping. Datagrams, API requests, kernel results and the time go
//! in; datagrams ([`Transmit`]), a deadline and [`CoreAction`]s come out.
//! The actors (`node::runtime`) only move these between sockets, the API
//! socket and the kernel; tests drive the core with bytes and a clock.

mod api_map;
mod points;
mod reconfig;
mod replay;
mod reroute;
mod trace;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use crate::kernel::sockets::Incoming;
use crate::kernel::tunnel::TunnelEnd;
use crate::model::measure::{PointKind, Recorder};
use crate::model::tunnel::Backend;
use crate::node::api::{self, Reply, Request};
use crate::node::config::NodeConfig;
use crate::proto::gist::ma::{Cmode, MaAction, Via};
use crate::proto::gist::machine::{self as gm, Direction, Gist, Sid};
use crate::proto::nslp::{
    Action, AuthVerdict, ErrorReason, EventKind, Nslp, RecvContext, RefusalReason,
};
use crate::proto::rmf::Classifier;
use crate::wire::gist::Framing;

pub use api_map::hex;
pub use points::{gist_point, nslp_point};
pub use replay::{Check as ReplayCheck, ReplayCache};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddrV4,
    pub bytes: Vec<u8>,
    /// Q-mode: with the Router Alert option, towards the flow's address.
    pub qmode: bool,
    pub ttl: u8,
    /// UDP, or the TCP messaging association (C-mode) to send it on.
    pub via: Via,
    /// The point this datagram marks when it leaves.
    point: Option<(Sid, PointKind)>,
}

impl Transmit {
    /// The datagram as the receiving node reads it, sent from `src`'s GIST
    /// port, `intercepted` when a Router Alert socket took it on the way:
    /// for harnesses that join node cores in memory (`experiment::probe`,
    /// `tests/node_core.rs`).
    pub fn arriving(self, src: Ipv4Addr, intercepted: bool) -> Incoming {
        Incoming {
            src: SocketAddrV4::new(src, crate::model::ports::GIST_PORT),
            dst: *self.dst.ip(),
            ttl: Some(self.ttl),
            intercepted,
            payload: self.bytes,
            at_ns: 0,
        }
    }
}

/// Work for the actors. Tunnel and class work is answered with
/// [`NodeCore::tunnel_done`] and [`NodeCore::class_done`].
#[derive(Debug, Clone, PartialEq)]
pub enum CoreAction {
    TunnelUp {
        sid: Sid,
        end: TunnelEnd,
    },
    TunnelDown {
        sid: Sid,
        end: TunnelEnd,
    },
    InstallClass {
        sid: Sid,
        link: String,
        rate: crate::model::units::Rate,
        classifier: Classifier,
    },
    RemoveClass {
        sid: Sid,
    },
    /// The reply to the API request the actors called `token`.
    Reply {
        token: u64,
        reply: Reply,
    },
    Event(api::Event),
}

/// One node's signaling, without I/O.
pub struct NodeCore {
    cfg: NodeConfig,
    gist: Gist,
    /// C-mode: which messages travel over TCP messaging associations.
    ma: Cmode,
    nslp: Nslp,
    rec: Recorder,
    out: VecDeque<Transmit>,
    actions: VecDeque<CoreAction>,
    /// PDUs refused before parsing (early verification, malformed).
    refused_early: BTreeMap<RefusalReason, u64>,
    /// Authorization objects accepted, per session (replay protection).
    replay: ReplayCache,
    /// The object the current datagram's verdict accepted: (session,
    /// START_TIME, valid until, now), recorded once GIST delivers it.
    to_record: Option<(Sid, Option<crate::wire::auth::Timestamp>, Option<u64>, u64)>,
    /// Backends chosen per request, for this node's tunnel ends.
    backends: HashMap<Sid, Backend>,
    /// API requests waiting on the NSLP: request id -> (token, session).
    waiting: HashMap<u64, (u64, Sid)>,
    next_req: u64,
    /// Substrate links the kernel reports down (sorted).
    links_down: Vec<String>,
}

impl NodeCore {
    /// A core for `cfg`; `seed` drives the NSLP's identifiers.
    pub fn new(cfg: NodeConfig, rec: Recorder, seed: u64) -> Self {
        let replay = ReplayCache::new(
            cfg.replay_cache,
            (cfg.verify_policy.max_window + cfg.verify_policy.max_skew).as_secs(),
        );
        Self {
            gist: Gist::new(cfg.gist_config()),
            ma: Cmode::new(cfg.ma_config()),
            nslp: Nslp::new(cfg.nslp_config(), cfg.ledger(), seed),
            cfg,
            rec,
            out: VecDeque::new(),
            actions: VecDeque::new(),
            refused_early: BTreeMap::new(),
            replay,
            to_record: None,
            backends: HashMap::new(),
            waiting: HashMap::new(),
            next_req: 0,
            links_down: Vec::new(),
        }
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn nslp(&self) -> &Nslp {
        &self.nslp
    }

    /// PDUs refused before parsing, by reason.
    pub fn refused_early(&self) -> &BTreeMap<RefusalReason, u64> {
        &self.refused_early
    }

    // ------------------------------------------------------------ inputs

    /// A datagram from the sockets.
    pub fn handle_datagram(&mut self, inc: Incoming, now: Instant) {
        self.handle_framed(inc, Via::Udp, now);
    }

    /// One GIST message read from the messaging association to `remote`
    /// (C-mode; `inc.payload` without magic number, `inc.src` = `remote`).
    pub fn handle_ma_message(&mut self, inc: Incoming, now: Instant) {
        let via = Via::Ma(inc.src);
        self.handle_framed(inc, via, now);
    }

    /// The messaging association to `remote` closed or failed to connect.
    pub fn ma_closed(&mut self, remote: SocketAddrV4) {
        self.ma.closed(remote);
    }

    /// Socket work for the messaging associations (run before the
    /// datagrams of [`Self::poll_transmit`] that use them).
    pub fn poll_ma_action(&mut self) -> Option<MaAction> {
        self.ma.poll_action()
    }

    fn handle_framed(&mut self, inc: Incoming, via: Via, now: Instant) {
        self.to_record = None;
        let framing = match via {
            Via::Udp => Framing::Udp,
            Via::Ma(_) => Framing::Tcp,
        };
        let verdict = self.early_verify(&inc.payload, framing);
        let (msg, stack) = match crate::proto::gist::codec::decode_framed(&inc.payload, framing) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                *self
                    .refused_early
                    .entry(RefusalReason::Malformed)
                    .or_insert(0) += 1;
                tracing::debug!(node = %self.cfg.name, src = %inc.src, "bad GIST PDU: {e}");
                if via == Via::Udp
                    && let Some(err) = crate::proto::gist::codec::error_reply(&inc.payload, &e)
                {
                    self.out.push_back(Transmit {
                        dst: inc.src,
                        bytes: err,
                        qmode: false,
                        ttl: 64,
                        via,
                        point: None,
                    });
                }
                return;
            }
        };
        trace::gist_in(&self.cfg.name, inc.src, &msg);
        if let Some(k) = gist_point(&msg, false) {
            self.rec.mark_at(inc.at_ns, msg.sid(), k);
        }
        let local = if inc.dst.is_unspecified() || inc.intercepted {
            self.cfg.local_addr_for(*inc.src.ip())
        } else {
            inc.dst
        };
        if self.is_looped_query(&msg) {
            return;
        }
        // A handshake answered (a first Query, or a re-query by the same
        // peer): where that peer lies is where the reservation belongs.
        let answered = matches!(msg, gm::Msg::Response { .. }).then(|| msg.sid());
        self.ma.inbound(now, via, &msg, &stack);
        self.gist.handle(now, inc.src, local, msg);
        // The verdict goes with what this datagram delivered.
        self.pump(now, verdict);
        if let Some(sid) = answered {
            self.next_peer_answered(now, sid);
        }
    }

    /// Early verification (paper §IV-B): a Data PDU whose flow ends (or,
    /// upstream, starts) here is checked on the raw bytes, before parsing;
    /// a verified object is then checked against the replay cache.
    fn early_verify(&mut self, pdu: &[u8], framing: Framing) -> AuthVerdict {
        let Some(sid) =
            crate::proto::gist::codec::auth_relevant_framed(pdu, framing, &self.cfg.addrs)
        else {
            return AuthVerdict::NotChecked;
        };
        self.rec.mark(sid, PointKind::HmacVerifyStart);
        let now = crate::wire::auth::Timestamp::now();
        let v = crate::wire::auth::verify_framed(
            pdu,
            framing,
            self.cfg.profile,
            &self.cfg.verify_keys,
            now,
            &self.cfg.verify_policy,
        );
        self.rec.mark(sid, PointKind::HmacVerifyDone);
        match v {
            Ok(ok) => {
                let live = self.nslp.has_session(&sid);
                let refusal = match self.replay.check(sid, ok.start, live, now.unix_secs) {
                    ReplayCheck::Fresh | ReplayCheck::SameSession => {
                        self.to_record = Some((sid, ok.start, ok.valid_until, now.unix_secs));
                        None
                    }
                    ReplayCheck::Replay => Some((
                        RefusalReason::AuthReplay,
                        format!(
                            "authorization of {} for session {} was used before and that session is over here: a replay",
                            ok.entity,
                            api_map::hex(&sid)
                        ),
                    )),
                    ReplayCheck::Full => Some((
                        RefusalReason::AuthReplayCacheFull,
                        format!(
                            "{}: the replay cache holds {} sessions whose authorization is still valid; refused until some expire (raise replay_cache or shorten max_window_s)",
                            self.cfg.name,
                            self.replay.len()
                        ),
                    )),
                };
                match refusal {
                    None => AuthVerdict::Verified {
                        entity: ok.entity.to_string(),
                        key_id: ok.key_id,
                    },
                    Some((reason, message)) => {
                        *self.refused_early.entry(reason).or_insert(0) += 1;
                        tracing::debug!(node = %self.cfg.name, "{message}");
                        AuthVerdict::Failed { reason, message }
                    }
                }
            }
            Err(crate::wire::auth::AuthError::Unsigned) => AuthVerdict::Unsigned,
            Err(e) => {
                let reason = RefusalReason::from_auth(e.reason());
                *self.refused_early.entry(reason).or_insert(0) += 1;
                AuthVerdict::Failed {
                    reason,
                    message: e.to_string(),
                }
            }
        }
    }

    /// An API request; `token` names it in the [`CoreAction::Reply`].
    /// `received_ns` is when its line was read ([A] starts there).
    pub fn handle_api(&mut self, token: u64, req: Request, received_ns: u64, now: Instant) {
        self.next_req += 1;
        let req_id = self.next_req;
        match req {
            Request::Setup {
                from,
                to,
                rate_bps,
                backend,
                authenticate,
                bidirectional,
                tunnel,
            } => {
                let in_use = self.vnis_in_use();
                let vifs = self.vifs_in_use();
                match self.cfg.setup_request(
                    req_id,
                    &from,
                    &to,
                    rate_bps,
                    authenticate,
                    bidirectional,
                    tunnel,
                    &in_use,
                    &vifs,
                ) {
                    Ok(req) => {
                        // A per-request backend applies to this node's
                        // tunnel end; the responder uses its own.
                        if let Some(b) = backend {
                            self.backends.insert(req.sid, b);
                        }
                        self.rec
                            .mark_at(received_ns, req.sid, PointKind::ApiRequestReceived);
                        self.waiting.insert(req_id, (token, req.sid));
                        self.nslp.setup(now, req);
                    }
                    Err(message) => {
                        self.reply(token, Reply::error(ErrorReason::BadRequest, message))
                    }
                }
            }
            Request::Teardown { vlink_id } => {
                let sid = self
                    .nslp
                    .sessions()
                    .find(|(_, _, _, v, _)| v.is_some_and(|v| v.vlink_id == vlink_id))
                    .map(|(s, ..)| *s)
                    .unwrap_or_default();
                self.rec
                    .mark_at(received_ns, sid, PointKind::ApiRequestReceived);
                self.waiting.insert(req_id, (token, sid));
                self.nslp.teardown(now, req_id, vlink_id);
            }
            Request::List => {
                let links = self.list();
                self.reply(token, Reply::Links { links });
            }
            Request::Stats => {
                let stats = self.stats();
                self.reply(token, Reply::Stats { stats });
            }
            Request::DumpPoints => {
                let points = self.rec.drain();
                self.reply(token, Reply::Points { points });
            }
            Request::Events => self.reply(token, Reply::Subscribed),
            Request::Health => {
                let health = self.health();
                self.reply(token, Reply::Health { health });
            }
            Request::Reconfigure { topology } => {
                let r = self.reconfigure_from(&topology);
                self.reply(token, r)
            }
            Request::Shutdown => {
                let message = format!("node {} stops", self.cfg.name);
                self.reply(token, Reply::Done { message })
            }
        }
        self.pump(now, AuthVerdict::NotChecked);
    }

    /// The counters of `stats` (`vlink_pending`, the receive queue's and the
    /// API's counters are the actors' to fill).
    pub fn stats(&self) -> api::Stats {
        api::Stats {
            node: self.cfg.name.clone(),
            nslp: self.nslp.stats().clone(),
            reservations: self.nslp.ledger().len(),
            vlink_pending: 0,
            refused_early: self.refused_early.clone(),
            shed_overload: 0,
            gist: self.gist.counters().clone(),
            junk: 0,
            malformed: self
                .refused_early
                .get(&RefusalReason::Malformed)
                .copied()
                .unwrap_or(0),
            api_abandoned: 0,
        }
    }

    /// A tunnel end asked for by [`CoreAction::TunnelUp`]/`TunnelDown` is
    /// done (or failed with `err`).
    pub fn tunnel_done(&mut self, sid: Sid, err: Option<String>, now: Instant) {
        let local = self.cfg.tunnel_addr;
        self.nslp.vlink_done(now, sid, local, err);
        self.pump(now, AuthVerdict::NotChecked);
    }

    /// A class asked for by [`CoreAction::InstallClass`] is installed (or
    /// the kernel refused it with `err`, leaving nothing of it).
    pub fn class_done(&mut self, sid: Sid, err: Option<String>, now: Instant) {
        self.nslp.class_done(now, sid, err);
        self.pump(now, AuthVerdict::NotChecked);
    }

    /// The deadline for [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.gist.poll_timeout(),
            self.nslp.poll_timeout(),
            self.ma.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Retransmissions, refreshes and expiry due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.gist.poll_timeout().is_some_and(|t| t <= now) {
            let cfg = &self.cfg;
            self.gist.handle_timeout(now, |dst| cfg.local_addr_for(dst));
        }
        if self.nslp.poll_timeout().is_some_and(|t| t <= now) {
            self.nslp.handle_timeout(now);
        }
        if self.ma.poll_timeout().is_some_and(|t| t <= now) {
            self.ma.handle_timeout(now);
        }
        self.pump(now, AuthVerdict::NotChecked);
    }

    // ----------------------------------------------------------- outputs

    /// The next datagram to send (its measurement point is taken now, as
    /// it is handed to the kernel).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.out.pop_front()?;
        if let Some((sid, k)) = t.point {
            self.rec.mark(sid, k);
        }
        Some(t)
    }

    pub fn poll_action(&mut self) -> Option<CoreAction> {
        self.actions.pop_front()
    }

    // -------------------------------------------------------------- glue

    /// Moves work between the machines until both are idle: GIST events
    /// into the NSLP (with `verdict`, for what the current datagram
    /// delivered), NSLP actions out, GIST transmissions encoded and signed.
    fn pump(&mut self, now: Instant, verdict: AuthVerdict) {
        loop {
            let mut busy = false;
            while let Some(ev) = self.gist.poll_event() {
                busy = true;
                self.on_gist_event(now, ev, verdict.clone());
            }
            while let Some(a) = self.nslp.poll_action() {
                busy = true;
                self.on_nslp_action(now, a);
            }
            while let Some(t) = self.gist.poll_transmit() {
                busy = true;
                self.encode(now, t);
            }
            if !busy {
                break;
            }
        }
    }

    fn on_gist_event(&mut self, now: Instant, ev: gm::Event, verdict: AuthVerdict) {
        match ev {
            gm::Event::Received {
                sid,
                flow,
                dir,
                peer,
                nslp_data,
            } => {
                if let Some((s, start, until, at)) = self.to_record
                    && s == sid
                    && matches!(verdict, AuthVerdict::Verified { .. })
                {
                    self.to_record = None;
                    self.replay.record(sid, start, until, at);
                }
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
                let ctx = RecvContext {
                    auth: verdict,
                    is_destination,
                    // Where GIST's next peer lies, once there is one: the
                    // RESERVE leaves that way, whatever the routes said.
                    egress_link: self
                        .next_peer_link(&sid)
                        .or_else(|| self.egress_link(flow.dst)),
                    reverse_link: self.egress_link(flow.src),
                    local: self.cfg.local_addr_for(peer),
                    peer,
                };
                trace::nslp_in(&self.cfg.name, peer, &sid, dir, &msg);
                self.nslp.recv(now, sid, flow, dir, msg, ctx);
            }
            gm::Event::PeerLost { sid, flow, .. } => {
                let has_route = self.egress_link(flow.dst).is_some();
                self.nslp.peer_lost(now, sid, has_route)
            }
            gm::Event::RoutingStateLost { .. } => {}
            gm::Event::PathChanged {
                sid,
                flow,
                old_peer,
                new_peer,
                ..
            } => self.path_changed(now, sid, flow, old_peer, new_peer),
        }
    }

    /// Encodes a GIST message and, if asked, signs it; a PDU whose signing
    /// fails is not sent (it would be refused downstream anyway, and an
    /// unsigned request must never pass for a signed one).
    fn encode(&mut self, now: Instant, t: gm::Transmit) {
        let o = self.ma.outbound(now, t);
        let (t, via) = (o.t, o.via);
        let framing = match via {
            Via::Udp => Framing::Udp,
            Via::Ma(_) => Framing::Tcp,
        };
        let sid = t.msg.sid();
        trace::gist_out(&self.cfg.name, t.dst, t.qmode, &t.msg);
        let point = gist_point(&t.msg, true).map(|k| (sid, k));
        let mut bytes = crate::proto::gist::codec::encode_framed(&t.msg, &o.stack, framing)
            .expect("machine messages carry at most 16 380 bytes of NSLP-Data");
        if t.sign {
            self.rec.mark(sid, PointKind::HmacSignStart);
            let r = crate::wire::auth::sign_framed(
                &mut bytes,
                framing,
                self.cfg.profile,
                &self.cfg.sign_keys,
            );
            self.rec.mark(sid, PointKind::HmacSignDone);
            let why = match r {
                Ok(0) => Some("no authorization object names a key this node holds".to_string()),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                self.sign_failed(sid, &why);
                return;
            }
        }
        self.out.push_back(Transmit {
            dst: t.dst,
            bytes,
            qmode: t.qmode,
            ttl: t.ttl,
            via,
            point,
        });
    }

    /// Refuses a PDU this node could not sign: counted, reported, and the
    /// API request waiting on the session (if any) answered.
    fn sign_failed(&mut self, sid: Sid, why: &str) {
        tracing::warn!(node = %self.cfg.name, "signing failed, PDU not sent: {why}");
        self.nslp.count_refusal(RefusalReason::SignFailed);
        let message = format!(
            "{}: cannot sign the PDU of session {}: {why} (check the node's keys in the topology)",
            self.cfg.name,
            api_map::hex(&sid)
        );
        let waiting: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, (_, s))| *s == sid)
            .map(|(r, _)| *r)
            .collect();
        for r in waiting {
            if let Some((token, _)) = self.waiting.remove(&r) {
                self.reply(
                    token,
                    Reply::error(ErrorReason::SignFailed, message.clone()),
                );
            }
        }
        let vlink_id = self.vlink_of(&sid);
        self.event(vlink_id, EventKind::SignFailed, message);
    }

    fn on_nslp_action(&mut self, now: Instant, a: Action) {
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
                self.gist
                    .send(now, sid, flow, dir, local, bytes, authenticate);
            }
            Action::VlinkUp {
                sid,
                vlsp,
                flow,
                initiator,
            } => {
                let busy = self.vifs_in_use();
                match self.cfg.tunnel_end(&vlsp, &flow, initiator, Some(&busy)) {
                    Ok(Some(mut end)) => {
                        if initiator {
                            end.backend = self.backends.get(&sid).copied();
                        }
                        self.actions.push_back(CoreAction::TunnelUp { sid, end });
                    }
                    Ok(None) => {
                        let why = format!(
                            "{}: the VLSP object names a virtual node that is not hosted here",
                            self.cfg.name
                        );
                        self.nslp
                            .vlink_done(now, sid, self.cfg.tunnel_addr, Some(why));
                    }
                    // Refused before the kernel: the answer carries why.
                    Err(why) => self
                        .nslp
                        .vlink_done(now, sid, self.cfg.tunnel_addr, Some(why)),
                }
            }
            Action::SendTo {
                sid,
                flow,
                dir,
                peer,
                msg,
                authenticate,
            } => self.send_to(sid, flow, dir, peer, msg, authenticate),
            Action::VlinkDown {
                sid,
                vlsp,
                flow,
                initiator,
            } => {
                if let Ok(Some(mut end)) = self.cfg.tunnel_end(&vlsp, &flow, initiator, None) {
                    if initiator {
                        end.backend = self.backends.remove(&sid);
                    }
                    self.actions.push_back(CoreAction::TunnelDown { sid, end });
                }
            }
            Action::InstallClass {
                sid,
                link,
                rate,
                classifier,
            } => self.actions.push_back(CoreAction::InstallClass {
                sid,
                link,
                rate,
                classifier,
            }),
            Action::RemoveClass { sid } => self.actions.push_back(CoreAction::RemoveClass { sid }),
            Action::Reply { req_id, result } => {
                if let Some((token, sid)) = self.waiting.remove(&req_id) {
                    let reply = match result {
                        Ok(l) if l.up => Reply::LinkUp {
                            vlink: self.link_info(l.vlink_id, &l.sid),
                        },
                        Ok(l) => Reply::LinkDown {
                            vlink_id: l.vlink_id,
                        },
                        Err(e) => Reply::error(e.reason, e.message),
                    };
                    self.rec.mark(sid, PointKind::ApiReplySent);
                    self.reply(token, reply);
                }
            }
            Action::Event {
                vlink_id,
                kind,
                message,
            } => self.event(vlink_id, kind, message),
            Action::Forget { sid } => self.gist.forget(&sid),
            Action::Point { sid, kind } => self.rec.mark(sid, kind),
        }
    }

    fn reply(&mut self, token: u64, reply: Reply) {
        self.actions.push_back(CoreAction::Reply { token, reply });
    }

    fn event(&mut self, vlink_id: Option<u64>, kind: EventKind, message: String) {
        self.actions.push_back(CoreAction::Event(api::Event {
            node: self.cfg.name.clone(),
            vlink_id,
            kind,
            message,
        }));
    }

    fn vlink_of(&self, sid: &Sid) -> Option<u64> {
        self.nslp
            .sessions()
            .find(|(s, ..)| *s == sid)
            .and_then(|(_, _, _, v, _)| v.map(|v| v.vlink_id))
    }

    /// VNIs of the virtual links with a tunnel end on this node.
    fn vnis_in_use(&self) -> Vec<u32> {
        self.nslp.vnis_in_use().collect()
    }

    /// Addresses the node answers on (for a simulated network).
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.cfg.addrs
    }
}
