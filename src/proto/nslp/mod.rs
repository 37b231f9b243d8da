//! The QoS NSLP reservation logic with the VLSP extension (RFC 5974 §5;
//! paper §III-C and Fig. 6), sans-IO: API requests, received NSLP messages,
//! tunnel-end completions and the current time go in; messages to send,
//! tunnel-end work, API replies and events come out.
//!
//! Roles per session, as the paper's Fig. 6 assigns them:
//! - **QNI** (the node hosting the source virtual node, tb1): creates the
//!   session, sends the RESERVE with RII, RSN, REFRESH_PERIOD, QSPEC, VLSP and
//!   Session Authorization, retransmits it (2 s, doubling, up to 30 s), and on
//!   a successful RESPONSE sets up its own tunnel end ([H]) and answers the
//!   external program ([A]). It refreshes the reservation every R and declares
//!   the link lost if a refresh goes unanswered for R.
//! - **QNE** (tb2, tb3): admission control on the egress link towards the
//!   flow's destination; refuses with INFO_SPEC "Reservation failure" and keeps
//!   nothing, or keeps the reservation pending and forwards the RESERVE with
//!   its own RSN and the VLSP and authorization objects untouched. The
//!   RESPONSE from downstream commits or frees the reservation.
//! - **QNR** (the node whose address is the flow's destination, tb4): refuses
//!   unauthorized requests (INFO_SPEC "Authorization failure") before
//!   touching any state, sets up its tunnel end ([C]) and answers.
//!
//! Soft state: QNE and QNR state expires after `lifetime` without a refresh
//! (the virtual link is removed and an event raised).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::measure::PointKind;
use crate::proto::gist::machine::{Direction, Flow, Sid};
use crate::proto::rmf::{AdmitError, Classifier, Ledger};
use crate::wire::nslp::{BindingCode, InfoSpec, MsgType, NslpMessage};

/// The packets of `flow` a reservation covers: with a VLSP object, only the
/// virtual link's VXLAN packets.
fn classifier(flow: &Flow, vlsp: Option<&VlspObject>) -> Classifier {
    Classifier {
        src: flow.src,
        dst: flow.dst,
        protocol: flow.protocol,
        vni: vlsp.map(|v| crate::model::tunnel::vni_for(v.vlink_id)),
    }
}
use crate::wire::vlsp::VlspObject;

/// What the glue found out about a message's Session Authorization before
/// handing it over (early verification, on the raw PDU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// A signature by one of this node's provider keys verified.
    Verified { entity: String, key_id: u32 },
    /// Verification failed; `reason` is a short machine-readable word.
    Failed { reason: String, message: String },
    /// No authorization object this node could check.
    Unsigned,
    /// This node does not check (an intermediate node).
    NotChecked,
}

/// What the NSLP needs to know about a received message beyond its bytes.
#[derive(Debug, Clone)]
pub struct RecvContext {
    pub auth: AuthVerdict,
    /// The flow's destination (for downstream messages) is one of this node's
    /// addresses: this node is the QNR.
    pub is_destination: bool,
    /// Egress link towards the flow's destination (for admission control).
    pub egress_link: Option<String>,
    /// Egress link towards the flow's source (for a reverse reservation).
    pub reverse_link: Option<String>,
    /// This node's address towards the sender (the ESI of INFO_SPECs).
    pub local: Ipv4Addr,
}

/// A setup request, resolved by the glue from the API request and the topology.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    pub req_id: u64,
    pub sid: Sid,
    pub flow: Flow,
    pub vlsp: VlspObject,
    pub rate_bps: u64,
    pub egress_link: String,
    /// Add (and sign) this node's Session Authorization object(s).
    pub authenticate: bool,
    /// The RESERVE's QSPEC, built by the glue for the profile in use.
    pub qspec: crate::wire::qspec::Qspec,
    /// Ask the responder for a reverse reservation bound to this one
    /// (BOUND_SESSION_ID, binding code "bi-directional", RFC 5974 §4.6).
    pub bidirectional: bool,
}

/// Work for the glue.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand an NSLP message to GIST. With `authenticate`, the glue adds this
    /// node's Session Authorization object(s) and signs the PDU.
    Send {
        sid: Sid,
        flow: Flow,
        dir: Direction,
        msg: NslpMessage,
        authenticate: bool,
    },
    /// Set up this node's tunnel end; answer with [`Nslp::vlink_done`].
    VlinkUp {
        sid: Sid,
        vlsp: VlspObject,
        flow: Flow,
        initiator: bool,
    },
    /// Take this node's tunnel end out of service; answer with [`Nslp::vlink_done`].
    VlinkDown {
        sid: Sid,
        vlsp: VlspObject,
        flow: Flow,
        initiator: bool,
    },
    /// Answer API request `req_id`.
    Reply {
        req_id: u64,
        result: Result<LinkUp, ApiError>,
    },
    /// Something the external program should hear about.
    Event {
        vlink_id: Option<u64>,
        kind: &'static str,
        message: String,
    },
    /// GIST may drop its routing state for the session.
    Forget { sid: Sid },
    /// A measurement point.
    Point { sid: Sid, kind: PointKind },
}

/// A successful setup or teardown, for the API reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkUp {
    pub vlink_id: u64,
    pub sid: Sid,
    pub up: bool,
}

/// A failed request, for the API reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    pub reason: String,
    pub message: String,
}

/// Timers and policy of one node.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub profile: crate::wire::profile::Profile,
    /// Refresh period R.
    pub refresh: Duration,
    /// Soft-state lifetime without refresh (default 3·R; RFC 5974 suggests
    /// (K+0.5)·1.5·R with K = 3, which is 5.25·R — tighter here so a broken
    /// link is noticed sooner in the testbed).
    pub lifetime: Duration,
    /// First RESERVE retransmission (QOSNSLP_REQUEST_RETRY, 2 s).
    pub retry: Duration,
    /// Give up after (QOSNSLP_RETRY_MAX, 30 s).
    pub retry_max: Duration,
    /// Refuse unsigned or unverifiable requests at the QNR.
    pub require_auth: bool,
    /// RSN epoch of this incarnation (changes on restart).
    pub epoch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node: String::new(),
            profile: crate::wire::profile::Profile::default(),
            refresh: Duration::from_secs(30),
            lifetime: Duration::from_secs(90),
            retry: Duration::from_secs(2),
            retry_max: Duration::from_secs(30),
            require_auth: true,
            epoch: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Qni,
    Qne,
    Qnr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// RESERVE sent (QNI, QNE) or tunnel end being set up (QNR).
    Pending,
    /// QNI: RESPONSE received, own tunnel end being set up.
    Connecting,
    Up,
    /// TEAR sent / tunnel end being removed.
    Tearing,
}

#[derive(Debug, Clone)]
struct Outstanding {
    rii: u32,
    msg: NslpMessage,
    next_retx: Instant,
    interval: Duration,
    deadline: Instant,
    /// A refresh, not the initial RESERVE.
    refresh: bool,
}

#[derive(Debug, Clone)]
struct Session {
    role: Role,
    phase: Phase,
    flow: Flow,
    vlsp: Option<VlspObject>,
    rate_bps: u64,
    /// Our RSN towards downstream.
    rsn_out: u32,
    /// Last (RSN, epoch) seen from upstream.
    rsn_in: Option<(u32, u32)>,
    /// QNI: the RESERVE waiting for its RESPONSE.
    outstanding: Option<Outstanding>,
    /// QNE: RIIs forwarded downstream whose RESPONSE goes upstream.
    forwarded_riis: Vec<u32>,
    /// QNR: RII of the RESERVE whose RESPONSE waits for the tunnel end.
    answer_rii: Option<u32>,
    /// API request waiting for this session.
    req_id: Option<u64>,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    /// The full RESERVE, re-sent on refresh (QNI).
    reserve: Option<NslpMessage>,
    authenticate: bool,
    /// The other direction of a bidirectional link: at the responder, the
    /// reverse session it initiates; in that reverse session, the forward.
    bound: Option<Sid>,
    /// Responder: egress link of the reverse reservation.
    reverse_link: Option<String>,
}

/// What an initiator's new session starts with.
struct Initiation {
    flow: Flow,
    vlsp: Option<VlspObject>,
    rate_bps: u64,
    rii: u32,
    msg: NslpMessage,
    req_id: Option<u64>,
    authenticate: bool,
    bound: Option<Sid>,
}

/// Counters shown by `stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub reserves_received: u64,
    pub responses_received: u64,
    pub refreshes_received: u64,
    pub refused: HashMap<String, u64>,
    pub expired: u64,
    pub links_lost: u64,
}

/// The per-node QoS NSLP machine.
pub struct Nslp {
    cfg: Config,
    sessions: HashMap<Sid, Session>,
    ledger: Ledger,
    actions: VecDeque<Action>,
    stats: Stats,
    rng_state: u64,
}

impl Nslp {
    pub fn new(cfg: Config, ledger: Ledger, seed: u64) -> Self {
        Self {
            cfg,
            sessions: HashMap::new(),
            ledger,
            actions: VecDeque::new(),
            stats: Stats::default(),
            rng_state: seed | 1,
        }
    }

    /// A 32-bit request identifier (xorshift; RIIs need only be unlikely to
    /// collide within a session, RFC 5974 §5.1.3.2).
    fn next_rii(&mut self) -> u32 {
        let mut x = self.rng_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng_state = x;
        (x >> 16) as u32
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Sessions and their phases (for `list`).
    pub fn sessions(&self) -> impl Iterator<Item = (&Sid, Role, Phase, Option<&VlspObject>, u64)> {
        self.sessions
            .iter()
            .map(|(s, x)| (s, x.role, x.phase, x.vlsp.as_ref(), x.rate_bps))
    }

    fn refuse(&mut self, reason: &str) {
        *self.stats.refused.entry(reason.to_string()).or_insert(0) += 1;
    }

    /// Queues `msg` for GIST. The "sent" measurement points are taken by the
    /// glue when the datagram leaves, after any handshake GIST needs first.
    fn send(&mut self, sid: Sid, flow: Flow, dir: Direction, msg: NslpMessage, authenticate: bool) {
        self.actions.push_back(Action::Send {
            sid,
            flow,
            dir,
            msg,
            authenticate,
        });
    }

    // ---------------------------------------------------------------- QNI

    /// Starts a virtual link setup as QNI.
    pub fn setup(&mut self, now: Instant, req: SetupRequest) {
        if self.sessions.values().any(|s| {
            s.vlsp
                .as_ref()
                .is_some_and(|v| v.vlink_id == req.vlsp.vlink_id)
        }) {
            self.refuse("duplicate_link");
            self.actions.push_back(Action::Reply {
                req_id: req.req_id,
                result: Err(ApiError {
                    reason: "exists".into(),
                    message: format!(
                        "virtual link {} already exists on {}: tear it down first",
                        req.vlsp.vlink_id, self.cfg.node
                    ),
                }),
            });
            return;
        }
        let classifier = classifier(&req.flow, Some(&req.vlsp));
        if let Err(e) = self
            .ledger
            .admit(req.sid, &req.egress_link, req.rate_bps, &classifier)
        {
            self.refuse("admission");
            self.actions.push_back(Action::Reply {
                req_id: req.req_id,
                result: Err(ApiError {
                    reason: "admission".into(),
                    message: format!("{}: {e}", self.cfg.node),
                }),
            });
            return;
        }
        let rii = self.next_rii();
        let mut msg = NslpMessage::reserve(
            0,
            self.cfg.epoch,
            Some(rii),
            Some(self.cfg.refresh),
            Some(req.qspec.clone()),
            Some(req.vlsp.clone()),
        );
        let reverse_sid = req.bidirectional.then(|| self.new_sid());
        if let Some(r) = reverse_sid {
            msg = msg.with_bound_session(BindingCode::Bidirectional, r);
        }
        self.initiate(
            now,
            req.sid,
            Initiation {
                flow: req.flow,
                vlsp: Some(req.vlsp.clone()),
                rate_bps: req.rate_bps,
                rii,
                msg,
                req_id: Some(req.req_id),
                authenticate: req.authenticate,
                bound: reverse_sid,
            },
        );
    }

    /// Creates an initiator's session around its first RESERVE and sends it.
    fn initiate(&mut self, now: Instant, sid: Sid, i: Initiation) {
        self.sessions.insert(
            sid,
            Session {
                role: Role::Qni,
                phase: Phase::Pending,
                flow: i.flow,
                vlsp: i.vlsp,
                rate_bps: i.rate_bps,
                rsn_out: 0,
                rsn_in: None,
                outstanding: Some(Outstanding {
                    rii: i.rii,
                    msg: i.msg.clone(),
                    next_retx: now + self.cfg.retry,
                    interval: self.cfg.retry,
                    deadline: now + self.cfg.retry_max,
                    refresh: false,
                }),
                forwarded_riis: vec![],
                answer_rii: None,
                req_id: i.req_id,
                refresh_at: None,
                expires_at: None,
                reserve: Some(i.msg.clone()),
                authenticate: i.authenticate,
                bound: i.bound,
                reverse_link: None,
            },
        );
        self.send(sid, i.flow, Direction::Downstream, i.msg, i.authenticate);
    }

    /// Starts tearing down the virtual link `vlink_id` (QNI only).
    pub fn teardown(&mut self, _now: Instant, req_id: u64, vlink_id: u64) {
        let found = self.sessions.iter().find(|(_, s)| {
            s.role == Role::Qni && s.vlsp.as_ref().is_some_and(|v| v.vlink_id == vlink_id)
        });
        let Some((&sid, s)) = found else {
            self.actions.push_back(Action::Reply {
                req_id,
                result: Err(ApiError {
                    reason: "unknown_link".into(),
                    message: format!(
                        "no virtual link {vlink_id} initiated by {}: see `vlsp link list`",
                        self.cfg.node
                    ),
                }),
            });
            return;
        };
        if s.phase != Phase::Up {
            self.actions.push_back(Action::Reply {
                req_id,
                result: Err(ApiError {
                    reason: "busy".into(),
                    message: format!(
                        "virtual link {vlink_id} is {:?}; try again when it is up",
                        s.phase
                    ),
                }),
            });
            return;
        }
        let rii = self.next_rii();
        let s = self.sessions.get_mut(&sid).expect("found above");
        s.rsn_out = s.rsn_out.wrapping_add(1);
        s.phase = Phase::Tearing;
        s.req_id = Some(req_id);
        s.refresh_at = None;
        let flow = s.flow;
        let authenticate = s.authenticate;
        let tear = NslpMessage::tear(s.rsn_out, self.cfg.epoch, Some(rii));
        s.outstanding = Some(Outstanding {
            rii,
            msg: tear.clone(),
            // Tears are not retransmitted (RFC 5974 §5.2.2); the deadline
            // only bounds how long the API waits for the confirmation.
            next_retx: _now + self.cfg.retry_max,
            interval: self.cfg.retry_max,
            deadline: _now + self.cfg.retry,
            refresh: false,
        });
        self.send(sid, flow, Direction::Downstream, tear, authenticate);
    }

    // ---------------------------------------------------------- receiving

    /// Handles an NSLP message delivered by GIST.
    pub fn recv(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        dir: Direction,
        msg: NslpMessage,
        ctx: RecvContext,
    ) {
        match (msg.msg_type, dir) {
            (MsgType::Reserve, Direction::Downstream) => self.on_reserve(now, sid, flow, msg, ctx),
            (MsgType::Response, Direction::Upstream) => self.on_response(now, sid, msg),
            (MsgType::Notify, Direction::Upstream) => self.on_notify(now, sid, msg),
            _ => {
                // QUERY (resource queries) and upstream RESERVEs
                // (receiver-initiated reservations) are not used by VLSP.
                self.refuse("unsupported_message");
            }
        }
    }

    /// Whether the verdict lets a request through; counts refusals.
    fn authorized(&mut self, auth: &AuthVerdict) -> bool {
        match auth {
            AuthVerdict::Verified { .. } => true,
            AuthVerdict::Failed { reason, .. } => {
                let r = format!("auth_{reason}");
                self.refuse(&r);
                false
            }
            AuthVerdict::Unsigned | AuthVerdict::NotChecked => {
                if self.cfg.require_auth {
                    self.refuse("auth_unsigned");
                    false
                } else {
                    true
                }
            }
        }
    }

    fn answer(
        &mut self,
        sid: Sid,
        flow: Flow,
        rii: Option<u32>,
        info: InfoSpec,
        vlsp: Option<VlspObject>,
        authenticate: bool,
    ) {
        let msg = NslpMessage::response(rii, None, info, vlsp);
        self.send(sid, flow, Direction::Upstream, msg, authenticate);
    }

    fn on_reserve(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        msg: NslpMessage,
        ctx: RecvContext,
    ) {
        self.stats.reserves_received += 1;
        let rii = msg.rii();
        let Some((rsn, epoch)) = msg.rsn() else {
            self.refuse("malformed");
            self.answer(
                sid,
                flow,
                rii,
                InfoSpec::mandatory_object_missing(ctx.local, 0x002),
                None,
                false,
            );
            return;
        };
        let tear = msg.flags.tear;
        // RSN rules (RFC 5974 §5.2.2): same epoch and an older RSN is out of
        // order; equal is a refresh; newer (or another epoch) is an update.
        let existing = self.sessions.get(&sid).map(|s| s.rsn_in);
        let is_refresh = match existing {
            Some(Some((old, old_epoch))) if old_epoch == epoch => {
                if serial_lt(rsn, old) {
                    self.refuse("old_rsn");
                    return;
                }
                rsn == old
            }
            _ => false,
        };
        // Authorization first, for every RESERVE that ends here (tears
        // included): nothing is touched for a refused request.
        if ctx.is_destination && !self.authorized(&ctx.auth) {
            self.answer(
                sid,
                flow,
                rii,
                InfoSpec::authorization_failure(ctx.local),
                None,
                false,
            );
            return;
        }
        if tear {
            self.on_tear(now, sid, flow, rii, &msg, ctx);
            return;
        }
        if ctx.is_destination {
            self.on_reserve_qnr(now, sid, flow, rsn, epoch, rii, is_refresh, msg, ctx);
        } else {
            self.on_reserve_qne(now, sid, flow, rsn, epoch, rii, is_refresh, msg, ctx);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_reserve_qnr(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        rsn: u32,
        epoch: u32,
        rii: Option<u32>,
        is_refresh: bool,
        msg: NslpMessage,
        ctx: RecvContext,
    ) {
        if is_refresh {
            self.stats.refreshes_received += 1;
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.expires_at = Some(now + self.cfg.lifetime);
                let up = s.phase == Phase::Up;
                if up && rii.is_some() {
                    self.answer(
                        sid,
                        flow,
                        rii,
                        InfoSpec::refresh_successful(ctx.local),
                        None,
                        false,
                    );
                }
            }
            return;
        }
        let Some(vlsp) = msg.vlsp().cloned() else {
            // A plain QoS reservation ending here (e.g. the reverse half
            // of a bidirectional link): confirm it, and its refreshes.
            let mut p = self.passive_session(Role::Qnr, flow, rsn, epoch, now, &msg, None);
            p.phase = Phase::Up;
            self.sessions.insert(sid, p);
            self.answer(
                sid,
                flow,
                rii,
                InfoSpec::reservation_successful(ctx.local),
                None,
                false,
            );
            return;
        };
        if let Some(s) = self.sessions.get(&sid)
            && s.phase != Phase::Tearing
        {
            // A modifying RESERVE for a link that is up: keep the tunnel.
            let s = self.sessions.get_mut(&sid).expect("checked");
            s.rsn_in = Some((rsn, epoch));
            s.expires_at = Some(now + self.cfg.lifetime);
            self.answer(
                sid,
                flow,
                rii,
                InfoSpec::reservation_successful(ctx.local),
                Some(vlsp),
                false,
            );
            return;
        }
        let mut s =
            self.passive_session(Role::Qnr, flow, rsn, epoch, now, &msg, Some(vlsp.clone()));
        s.answer_rii = rii;
        s.bound = msg.bound_session(BindingCode::Bidirectional);
        s.reverse_link = ctx.reverse_link.clone();
        self.sessions.insert(sid, s);
        self.actions.push_back(Action::VlinkUp {
            sid,
            vlsp,
            flow,
            initiator: false,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn passive_session(
        &self,
        role: Role,
        flow: Flow,
        rsn: u32,
        epoch: u32,
        now: Instant,
        msg: &NslpMessage,
        vlsp: Option<VlspObject>,
    ) -> Session {
        Session {
            role,
            phase: Phase::Pending,
            flow,
            vlsp,
            rate_bps: msg.qspec().and_then(|q| q.rate_bps()).unwrap_or(0),
            rsn_out: 0,
            rsn_in: Some((rsn, epoch)),
            outstanding: None,
            forwarded_riis: vec![],
            answer_rii: None,
            req_id: None,
            refresh_at: None,
            expires_at: Some(now + self.cfg.lifetime),
            reserve: None,
            authenticate: false,
            bound: None,
            reverse_link: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_reserve_qne(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        rsn: u32,
        epoch: u32,
        rii: Option<u32>,
        is_refresh: bool,
        msg: NslpMessage,
        ctx: RecvContext,
    ) {
        if is_refresh {
            self.stats.refreshes_received += 1;
        }
        let rate = msg.qspec().and_then(|q| q.rate_bps());
        let known = self.sessions.contains_key(&sid);
        if !known || rate.is_some() {
            let Some(link) = ctx.egress_link.clone() else {
                self.refuse("no_route");
                self.answer(
                    sid,
                    flow,
                    rii,
                    InfoSpec::reservation_failure(
                        ctx.local,
                        "no route towards the flow's destination",
                    ),
                    None,
                    false,
                );
                return;
            };
            let Some(rate) = rate.or_else(|| self.sessions.get(&sid).map(|s| s.rate_bps)) else {
                self.refuse("no_qspec");
                self.answer(
                    sid,
                    flow,
                    rii,
                    InfoSpec::full_qspec_required(ctx.local),
                    None,
                    false,
                );
                return;
            };
            let classifier = classifier(
                &flow,
                msg.vlsp()
                    .or_else(|| self.sessions.get(&sid).and_then(|s| s.vlsp.as_ref())),
            );
            if let Err(e) = self.ledger.admit(sid, &link, rate, &classifier) {
                self.refuse("admission");
                let text = match &e {
                    AdmitError::Insufficient { .. }
                    | AdmitError::UnknownLink { .. }
                    | AdmitError::Enforcement { .. } => format!("{}: {e}", self.cfg.node),
                };
                if known {
                    // A refresh or modification that no longer fits: the
                    // session goes (its old reservation is freed too).
                    self.drop_session(sid);
                }
                self.answer(
                    sid,
                    flow,
                    rii,
                    InfoSpec::reservation_failure(ctx.local, &text),
                    None,
                    false,
                );
                return;
            }
        }
        let lifetime = self.cfg.lifetime;
        let s = self.sessions.entry(sid).or_insert_with(|| Session {
            role: Role::Qne,
            phase: Phase::Pending,
            flow,
            vlsp: None,
            rate_bps: 0,
            rsn_out: 0,
            rsn_in: None,
            outstanding: None,
            forwarded_riis: vec![],
            answer_rii: None,
            req_id: None,
            refresh_at: None,
            expires_at: None,
            reserve: None,
            authenticate: false,
            bound: None,
            reverse_link: None,
        });
        if let Some(r) = rate {
            s.rate_bps = r;
        }
        // Intermediate nodes keep the VLSP object only to show it; they do
        // not act on it (paper §III-C).
        s.vlsp = msg.vlsp().cloned();
        let changed = !is_refresh && s.rsn_in.is_some();
        s.rsn_in = Some((rsn, epoch));
        s.expires_at = Some(now + lifetime);
        if changed {
            s.rsn_out = s.rsn_out.wrapping_add(1);
        }
        if let Some(r) = rii {
            s.forwarded_riis.push(r);
            if s.forwarded_riis.len() > 8 {
                s.forwarded_riis.remove(0);
            }
        }
        let fwd = msg.with_rsn(s.rsn_out, self.cfg.epoch);
        self.send(sid, flow, Direction::Downstream, fwd, false);
    }

    fn on_tear(
        &mut self,
        _now: Instant,
        sid: Sid,
        flow: Flow,
        rii: Option<u32>,
        msg: &NslpMessage,
        ctx: RecvContext,
    ) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            // Nothing here; still confirm a tear that asks for it, so the
            // initiator is not left waiting.
            if ctx.is_destination && rii.is_some() {
                self.answer(
                    sid,
                    flow,
                    rii,
                    InfoSpec::teardown_successful(ctx.local),
                    None,
                    false,
                );
            }
            return;
        };
        match s.role {
            Role::Qne | Role::Qni => {
                let rsn = s.rsn_out.wrapping_add(1);
                s.rsn_out = rsn;
                // Forward the tear as received (its authorization object
                // included), with our own RSN.
                let tear = msg.with_rsn(rsn, self.cfg.epoch);
                match rii {
                    // The RESPONSE still has to travel back through us: keep
                    // the session (without its reservation) until it does.
                    Some(r) => {
                        s.phase = Phase::Tearing;
                        s.forwarded_riis.push(r);
                        s.expires_at = Some(_now + self.cfg.retry_max);
                        self.ledger.release(&sid);
                    }
                    None => {
                        self.drop_session(sid);
                        self.actions.push_back(Action::Forget { sid });
                    }
                }
                self.send(sid, flow, Direction::Downstream, tear, false);
            }
            Role::Qnr => {
                s.phase = Phase::Tearing;
                s.answer_rii = rii;
                let vlsp = s.vlsp.clone();
                let reverse = s.bound;
                self.ledger.release(&sid);
                if let Some(r) = reverse {
                    self.end_reverse(r);
                }
                match vlsp {
                    Some(v) => self.actions.push_back(Action::VlinkDown {
                        sid,
                        vlsp: v,
                        flow,
                        initiator: false,
                    }),
                    None => {
                        self.sessions.remove(&sid);
                        self.answer(
                            sid,
                            flow,
                            rii,
                            InfoSpec::teardown_successful(ctx.local),
                            None,
                            false,
                        );
                    }
                }
            }
        }
    }

    fn on_response(&mut self, now: Instant, sid: Sid, msg: NslpMessage) {
        self.stats.responses_received += 1;
        let Some(s) = self.sessions.get_mut(&sid) else {
            // A RESPONSE for a session we no longer hold (e.g. to a tear
            // forwarded earlier): pass it on if we are not the initiator.
            return;
        };
        let info = msg.info_spec().cloned();
        let ok = info.as_ref().is_some_and(|i| i.is_success());
        let rii = msg.rii();
        match s.role {
            Role::Qne => {
                if let Some(r) = rii
                    && !s.forwarded_riis.contains(&r)
                {
                    self.refuse("unknown_rii");
                    return;
                }
                let flow = s.flow;
                let tearing = s.phase == Phase::Tearing;
                if ok && !tearing {
                    if s.phase == Phase::Pending {
                        s.phase = Phase::Up;
                    }
                } else {
                    self.drop_session(sid);
                }
                self.send(sid, flow, Direction::Upstream, msg, false);
                if tearing {
                    self.actions.push_back(Action::Forget { sid });
                }
            }
            Role::Qnr => {}
            Role::Qni => {
                let Some(out) = s.outstanding.as_ref() else {
                    return;
                };
                if rii != Some(out.rii) {
                    self.refuse("unknown_rii");
                    return;
                }
                let was_refresh = out.refresh;
                s.outstanding = None;
                let flow = s.flow;
                let Some(vlsp) = s.vlsp.clone() else {
                    // The reverse half of a bidirectional link (no VLSP).
                    let forward = s.bound;
                    match (s.phase, ok) {
                        (Phase::Pending | Phase::Connecting | Phase::Up, true) => {
                            s.phase = Phase::Up;
                            s.refresh_at = Some(now + self.cfg.refresh);
                        }
                        (Phase::Tearing, _) => {
                            self.drop_session(sid);
                            self.actions.push_back(Action::Forget { sid });
                        }
                        (_, false) => {
                            let why = info
                                .map(|i| format!("{} refused by {}", i.describe(), i.origin()))
                                .unwrap_or_default();
                            self.drop_session(sid);
                            self.actions.push_back(Action::Forget { sid });
                            let vlink_id = forward
                                .and_then(|f| self.sessions.get(&f))
                                .and_then(|f| f.vlsp.as_ref())
                                .map(|v| v.vlink_id);
                            self.actions.push_back(Action::Event {
                                vlink_id,
                                kind: "reverse_refused",
                                message: format!(
                                    "{}: reverse reservation of a bidirectional link: {why}",
                                    self.cfg.node
                                ),
                            });
                        }
                    }
                    return;
                };
                match (s.phase, ok) {
                    (Phase::Pending, true) => {
                        s.phase = Phase::Connecting;
                        self.actions.push_back(Action::VlinkUp {
                            sid,
                            vlsp,
                            flow,
                            initiator: true,
                        });
                    }
                    (Phase::Up, true) if was_refresh => {
                        s.refresh_at = Some(now + self.cfg.refresh);
                    }
                    (Phase::Tearing, _) => {
                        self.actions.push_back(Action::VlinkDown {
                            sid,
                            vlsp,
                            flow,
                            initiator: true,
                        });
                    }
                    (_, false) => {
                        let req = s.req_id.take();
                        let up = s.phase == Phase::Up;
                        let info = info.expect("not ok implies an INFO_SPEC or none");
                        let message = format!("{} refused by {}", info.describe(), info.origin());
                        self.drop_session(sid);
                        self.actions.push_back(Action::Forget { sid });
                        if up {
                            self.stats.links_lost += 1;
                            self.actions.push_back(Action::VlinkDown {
                                sid,
                                vlsp: vlsp.clone(),
                                flow,
                                initiator: true,
                            });
                            self.actions.push_back(Action::Event {
                                vlink_id: Some(vlsp.vlink_id),
                                kind: "link_lost",
                                message: format!(
                                    "refresh of virtual link {}: {message}",
                                    vlsp.vlink_id
                                ),
                            });
                        }
                        if let Some(req_id) = req {
                            self.actions.push_back(Action::Reply {
                                req_id,
                                result: Err(ApiError {
                                    reason: info.reason().into(),
                                    message,
                                }),
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn on_notify(&mut self, _now: Instant, sid: Sid, msg: NslpMessage) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let flow = s.flow;
        match s.role {
            Role::Qne => self.send(sid, flow, Direction::Upstream, msg, false),
            Role::Qni => {
                let text = msg
                    .info_spec()
                    .map(|i| i.describe())
                    .unwrap_or_else(|| "NOTIFY without INFO_SPEC".into());
                let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id);
                self.actions.push_back(Action::Event {
                    vlink_id,
                    kind: "notify",
                    message: text,
                });
            }
            Role::Qnr => {}
        }
    }

    /// GIST found no next peer for the session (handshake timed out).
    pub fn peer_lost(&mut self, now: Instant, sid: Sid) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let flow = s.flow;
        match s.role {
            Role::Qni => self.link_lost(now, sid, "no GIST peer answered towards the destination"),
            Role::Qne => {
                // Tell the initiator its path is truncated (INFO_SPEC
                // Transient 0x08), then drop our state.
                let notify = NslpMessage::notify(InfoSpec::path_truncated(flow.src));
                self.drop_session(sid);
                self.send(sid, flow, Direction::Upstream, notify, false);
            }
            Role::Qnr => {}
        }
    }

    /// The QNI gives up on a link: frees everything and tells the program.
    fn link_lost(&mut self, _now: Instant, sid: Sid, why: &str) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let flow = s.flow;
        let vlsp = s.vlsp.clone();
        let req = s.req_id;
        let was_up = s.phase == Phase::Up;
        let rsn = s.rsn_out.wrapping_add(1);
        self.drop_session(sid);
        self.actions.push_back(Action::Forget { sid });
        // Free the reservations of the nodes still reachable.
        self.send(
            sid,
            flow,
            Direction::Downstream,
            NslpMessage::tear(rsn, self.cfg.epoch, None),
            false,
        );
        let vlink_id = vlsp.as_ref().map(|v| v.vlink_id);
        if was_up && let Some(v) = vlsp {
            self.stats.links_lost += 1;
            self.actions.push_back(Action::VlinkDown {
                sid,
                vlsp: v,
                flow,
                initiator: true,
            });
        }
        if let Some(req_id) = req {
            self.actions.push_back(Action::Reply {
                req_id,
                result: Err(ApiError {
                    reason: "timeout".into(),
                    message: format!("{}: {why}", self.cfg.node),
                }),
            });
        } else {
            self.actions.push_back(Action::Event {
                vlink_id,
                kind: "link_lost",
                message: format!("{}: {why}", self.cfg.node),
            });
        }
    }

    /// A fresh random session id (from the node's generator).
    fn new_sid(&mut self) -> Sid {
        let mut sid = [0u8; 16];
        for c in sid.chunks_mut(4) {
            c.copy_from_slice(&self.next_rii().to_be_bytes());
        }
        sid
    }

    /// Responder of a bidirectional link: reserves the reverse direction
    /// (this node → the initiator) as a session of its own, bound to the
    /// forward one. A refusal leaves the forward link up and is reported.
    #[allow(clippy::too_many_arguments)]
    fn start_reverse(
        &mut self,
        now: Instant,
        forward: Sid,
        rsid: Sid,
        fflow: Flow,
        rate_bps: u64,
        link: String,
        vlsp: &VlspObject,
    ) {
        let flow = Flow {
            src: fflow.dst,
            dst: fflow.src,
            protocol: fflow.protocol,
        };
        if let Err(e) = self
            .ledger
            .admit(rsid, &link, rate_bps, &classifier(&flow, Some(vlsp)))
        {
            self.refuse("admission");
            self.actions.push_back(Action::Event {
                vlink_id: Some(vlsp.vlink_id),
                kind: "reverse_refused",
                message: format!("{}: reverse reservation: {e}", self.cfg.node),
            });
            return;
        }
        let rii = self.next_rii();
        let qspec =
            crate::wire::qspec::Qspec::bandwidth_request(rate_bps as f32 / 8.0, self.cfg.profile);
        let msg = NslpMessage::reserve(
            0,
            self.cfg.epoch,
            Some(rii),
            Some(self.cfg.refresh),
            Some(qspec),
            None,
        )
        .with_bound_session(BindingCode::Bidirectional, forward);
        self.initiate(
            now,
            rsid,
            Initiation {
                flow,
                vlsp: None,
                rate_bps,
                rii,
                msg,
                req_id: None,
                authenticate: true,
                bound: Some(forward),
            },
        );
    }

    /// Tears the reverse half of a bidirectional link down (no answer
    /// awaited: the forward teardown does not wait for it).
    fn end_reverse(&mut self, rsid: Sid) {
        let Some(r) = self.sessions.get(&rsid) else {
            return;
        };
        let flow = r.flow;
        let rsn = r.rsn_out.wrapping_add(1);
        self.drop_session(rsid);
        self.send(
            rsid,
            flow,
            Direction::Downstream,
            NslpMessage::tear(rsn, self.cfg.epoch, None),
            true,
        );
        self.actions.push_back(Action::Forget { sid: rsid });
    }

    fn drop_session(&mut self, sid: Sid) {
        self.ledger.release(&sid);
        self.sessions.remove(&sid);
    }

    /// A tunnel end requested by [`Action::VlinkUp`] / [`Action::VlinkDown`]
    /// is done (or failed with `err`).
    pub fn vlink_done(&mut self, now: Instant, sid: Sid, local: Ipv4Addr, err: Option<String>) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let flow = s.flow;
        let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id).unwrap_or(0);
        match (s.role, s.phase) {
            (Role::Qnr, Phase::Pending) => {
                let rii = s.answer_rii.take();
                let vlsp = s.vlsp.clone();
                match err {
                    None => {
                        s.phase = Phase::Up;
                        let reverse = s.bound.zip(s.reverse_link.clone());
                        let rate = s.rate_bps;
                        self.answer(
                            sid,
                            flow,
                            rii,
                            InfoSpec::reservation_successful(local),
                            vlsp.clone(),
                            true,
                        );
                        if let (Some((rsid, link)), Some(v)) = (reverse, vlsp) {
                            self.start_reverse(now, sid, rsid, flow, rate, link, &v);
                        }
                    }
                    Some(e) => {
                        self.refuse("vlink");
                        self.drop_session(sid);
                        self.answer(
                            sid,
                            flow,
                            rii,
                            InfoSpec::reservation_failure(local, &e),
                            None,
                            false,
                        );
                    }
                }
            }
            (Role::Qnr, Phase::Tearing) => {
                let rii = s.answer_rii.take();
                self.sessions.remove(&sid);
                self.answer(
                    sid,
                    flow,
                    rii,
                    InfoSpec::teardown_successful(local),
                    None,
                    false,
                );
            }
            (Role::Qni, Phase::Connecting) => {
                let req = s.req_id.take();
                match err {
                    None => {
                        s.phase = Phase::Up;
                        s.refresh_at = Some(now + self.cfg.refresh);
                        if let Some(req_id) = req {
                            self.actions.push_back(Action::Reply {
                                req_id,
                                result: Ok(LinkUp {
                                    vlink_id,
                                    sid,
                                    up: true,
                                }),
                            });
                        }
                    }
                    Some(e) => {
                        // Our end failed: undo the whole link.
                        let rsn = s.rsn_out.wrapping_add(1);
                        self.drop_session(sid);
                        self.send(
                            sid,
                            flow,
                            Direction::Downstream,
                            NslpMessage::tear(rsn, self.cfg.epoch, None),
                            false,
                        );
                        self.actions.push_back(Action::Forget { sid });
                        if let Some(req_id) = req {
                            self.actions.push_back(Action::Reply {
                                req_id,
                                result: Err(ApiError {
                                    reason: "vlink".into(),
                                    message: format!("{}: {e}", self.cfg.node),
                                }),
                            });
                        }
                    }
                }
            }
            (Role::Qni, Phase::Tearing) => {
                let req = s.req_id.take();
                self.drop_session(sid);
                self.actions.push_back(Action::Forget { sid });
                if let Some(req_id) = req {
                    self.actions.push_back(Action::Reply {
                        req_id,
                        result: match err {
                            None => Ok(LinkUp {
                                vlink_id,
                                sid,
                                up: false,
                            }),
                            Some(e) => Err(ApiError {
                                reason: "vlink".into(),
                                message: format!("{}: {e}", self.cfg.node),
                            }),
                        },
                    });
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------- timers

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|s| {
                [
                    s.outstanding.as_ref().map(|o| o.next_retx.min(o.deadline)),
                    s.refresh_at,
                    s.expires_at,
                ]
            })
            .flatten()
            .min()
    }

    /// Retransmissions, refreshes and soft-state expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let sids: Vec<Sid> = self.sessions.keys().copied().collect();
        for sid in sids {
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            let flow = s.flow;
            // Soft state of QNE / QNR.
            if s.expires_at.is_some_and(|t| t <= now) && s.role != Role::Qni {
                let vlsp = s.vlsp.clone();
                let role = s.role;
                let reverse = if role == Role::Qnr { s.bound } else { None };
                self.stats.expired += 1;
                self.drop_session(sid);
                if let Some(r) = reverse {
                    self.end_reverse(r);
                }
                self.actions.push_back(Action::Forget { sid });
                if role == Role::Qnr
                    && let Some(v) = vlsp
                {
                    self.actions.push_back(Action::VlinkDown {
                        sid,
                        vlsp: v.clone(),
                        flow,
                        initiator: false,
                    });
                    self.actions.push_back(Action::Event {
                        vlink_id: Some(v.vlink_id),
                        kind: "expired",
                        message: format!(
                            "{}: no refresh for virtual link {} within {:?}: removed",
                            self.cfg.node, v.vlink_id, self.cfg.lifetime
                        ),
                    });
                }
                continue;
            }
            // QNI: outstanding RESERVE.
            if let Some(out) = s.outstanding.as_mut() {
                if out.deadline <= now {
                    let refresh = out.refresh;
                    let tearing = s.phase == Phase::Tearing;
                    if tearing {
                        // No confirmation of the tear: remove our end anyway.
                        s.outstanding = None;
                        match s.vlsp.clone() {
                            Some(vlsp) => self.actions.push_back(Action::VlinkDown {
                                sid,
                                vlsp,
                                flow,
                                initiator: true,
                            }),
                            None => {
                                self.drop_session(sid);
                                self.actions.push_back(Action::Forget { sid });
                            }
                        }
                    } else if refresh {
                        self.link_lost(now, sid, "no RESPONSE to a refresh within the refresh period: the other end or the path is down");
                    } else {
                        self.link_lost(
                            now,
                            sid,
                            "no RESPONSE to the RESERVE within the retry limit",
                        );
                    }
                    continue;
                }
                if out.next_retx <= now {
                    out.interval *= 2;
                    out.next_retx = now + out.interval;
                    let msg = out.msg.clone();
                    let auth = s.authenticate;
                    self.send(sid, flow, Direction::Downstream, msg, auth);
                    continue;
                }
            }
            // QNI: periodic refresh, acknowledged by the QNR.
            if s.refresh_at.is_some_and(|t| t <= now) && s.outstanding.is_none() {
                let rii = self.next_rii();
                let s = self.sessions.get_mut(&sid).expect("present");
                let msg = s
                    .reserve
                    .as_ref()
                    .expect("QNI keeps its RESERVE")
                    .with_rsn(s.rsn_out, self.cfg.epoch)
                    .with_rii(rii);
                let r = self.cfg.refresh;
                s.refresh_at = None;
                s.outstanding = Some(Outstanding {
                    rii,
                    msg: msg.clone(),
                    next_retx: now + r / 4,
                    interval: r / 4,
                    deadline: now + r,
                    refresh: true,
                });
                let auth = s.authenticate;
                self.send(sid, flow, Direction::Downstream, msg, auth);
            }
        }
    }

    /// The next action for the glue.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

/// RFC 1982 serial-number comparison: is `a` before `b`?
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::nslp::InfoClass;

    /// tb1..tb4 as in the paper: addresses are the nodes' tunnel addresses.
    const ADDR: [Ipv4Addr; 4] = [
        Ipv4Addr::new(172, 1, 2, 1),
        Ipv4Addr::new(172, 1, 2, 2),
        Ipv4Addr::new(172, 2, 3, 3),
        Ipv4Addr::new(172, 3, 4, 4),
    ];
    const FLOW: Flow = Flow {
        src: Ipv4Addr::new(172, 1, 2, 1),
        dst: Ipv4Addr::new(172, 3, 4, 4),
        protocol: 17,
    };
    const SID: Sid = [0x11; 16];
    const MBIT: u64 = 1_000_000;

    fn vlsp(id: u64) -> VlspObject {
        VlspObject {
            vnet_id: 1,
            src_vnode: 10,
            dst_vnode: 20,
            src_vif: 1,
            dst_vif: 2,
            vlink_id: id,
            tunnel_type: crate::wire::vlsp::TunnelType::from_kind(
                crate::model::tunnel::TunnelKind::Vxlan,
            ),
        }
    }

    /// Four NSLP machines in a chain, messages delivered in memory, time
    /// controlled by the test, tunnel ends completed immediately (or never).
    struct Chain {
        n: Vec<Nslp>,
        now: Instant,
        /// Node that no longer answers (killed).
        dead: Option<usize>,
        auth: AuthVerdict,
        replies: Vec<(usize, u64, Result<LinkUp, ApiError>)>,
        events: Vec<(usize, &'static str, String)>,
        vlinks: Vec<(usize, bool)>,
        sent: Vec<(usize, MsgType, Direction)>,
    }

    impl Chain {
        fn new(capacity_mid: u64) -> Self {
            let cfg = |i: usize| Config {
                node: format!("tb{}", i + 1),
                refresh: Duration::from_secs(1),
                lifetime: Duration::from_secs(3),
                ..Config::default()
            };
            let n = (0..4)
                .map(|i| {
                    let mut l = Ledger::new();
                    l.add_link("down", if i == 2 { capacity_mid } else { 100 * MBIT });
                    l.add_link("up", 100 * MBIT);
                    Nslp::new(cfg(i), l, 7 + i as u64)
                })
                .collect();
            Self {
                n,
                now: Instant::now(),
                dead: None,
                auth: AuthVerdict::Verified {
                    entity: "vnp".into(),
                    key_id: 1,
                },
                replies: vec![],
                events: vec![],
                vlinks: vec![],
                sent: vec![],
            }
        }

        fn setup(&mut self, req_id: u64, sid: Sid, id: u64, rate: u64) {
            self.setup_dir(req_id, sid, id, rate, false)
        }

        fn setup_dir(&mut self, req_id: u64, sid: Sid, id: u64, rate: u64, bidirectional: bool) {
            self.n[0].setup(
                self.now,
                SetupRequest {
                    req_id,
                    sid,
                    flow: FLOW,
                    vlsp: vlsp(id),
                    rate_bps: rate,
                    egress_link: "down".into(),
                    authenticate: true,
                    qspec: crate::wire::qspec::Qspec::bandwidth_request(
                        rate as f32 / 8.0,
                        crate::wire::profile::Profile::Rfc,
                    ),
                    bidirectional,
                },
            );
        }

        /// Delivers everything until no node has work left.
        fn run(&mut self) {
            loop {
                let mut any = false;
                for i in 0..4 {
                    while let Some(a) = self.n[i].poll_action() {
                        any = true;
                        self.act(i, a);
                    }
                }
                if !any {
                    break;
                }
            }
        }

        fn act(&mut self, i: usize, a: Action) {
            match a {
                Action::Send {
                    sid,
                    flow,
                    dir,
                    msg,
                    ..
                } => {
                    self.sent.push((i, msg.msg_type, dir));
                    // Flows towards tb4 go up the index, reverse flows down.
                    let towards_tb4 = (flow.dst == ADDR[3]) == (dir == Direction::Downstream);
                    let j = match towards_tb4 {
                        true if i < 3 => i + 1,
                        false if i > 0 => i - 1,
                        _ => return,
                    };
                    if self.dead == Some(j) {
                        return;
                    }
                    // Through the codec, as on the wire.
                    let bytes = msg.to_bytes(crate::wire::profile::Profile::Rfc);
                    let msg =
                        NslpMessage::decode(&bytes, crate::wire::profile::Profile::Rfc).unwrap();
                    let is_destination = dir == Direction::Downstream && flow.dst == ADDR[j];
                    let reverse_flow = flow.dst == ADDR[0];
                    let ctx = RecvContext {
                        auth: if is_destination {
                            self.auth.clone()
                        } else {
                            AuthVerdict::NotChecked
                        },
                        is_destination,
                        egress_link: if reverse_flow {
                            (j > 0).then(|| "up".to_string())
                        } else {
                            (j < 3).then(|| "down".to_string())
                        },
                        reverse_link: if reverse_flow {
                            (j < 3).then(|| "down".to_string())
                        } else {
                            (j > 0).then(|| "up".to_string())
                        },
                        local: ADDR[j],
                    };
                    self.n[j].recv(self.now, sid, flow, dir, msg, ctx);
                }
                Action::VlinkUp { sid, .. } | Action::VlinkDown { sid, .. } => {
                    self.vlinks.push((i, matches!(a, Action::VlinkUp { .. })));
                    self.n[i].vlink_done(self.now, sid, ADDR[i], None);
                }
                Action::Reply { req_id, result } => self.replies.push((i, req_id, result)),
                Action::Event { kind, message, .. } => self.events.push((i, kind, message)),
                Action::Forget { .. } | Action::Point { .. } => {}
            }
        }

        fn advance(&mut self, d: Duration) {
            let end = self.now + d;
            loop {
                let next = (0..4)
                    .filter(|i| self.dead != Some(*i))
                    .filter_map(|i| self.n[i].poll_timeout())
                    .min();
                match next {
                    Some(t) if t <= end => {
                        self.now = t;
                        for i in 0..4 {
                            if self.dead != Some(i) {
                                self.n[i].handle_timeout(self.now);
                            }
                        }
                        self.run();
                    }
                    _ => break,
                }
            }
            self.now = end;
        }

        fn sessions(&self, i: usize) -> usize {
            self.n[i].sessions().count()
        }
    }

    #[test]
    fn setup_follows_fig6() {
        let mut c = Chain::new(100 * MBIT);
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        use Direction::*;
        use MsgType::*;
        assert_eq!(
            c.sent,
            [
                (0, Reserve, Downstream),
                (1, Reserve, Downstream),
                (2, Reserve, Downstream),
                (3, Response, Upstream),
                (2, Response, Upstream),
                (1, Response, Upstream),
            ]
        );
        // tb4 sets up its end before answering, tb1 after the RESPONSE.
        assert_eq!(c.vlinks, [(3, true), (0, true)]);
        assert_eq!(c.replies.len(), 1);
        assert!(matches!(
            &c.replies[0],
            (
                0,
                1,
                Ok(LinkUp {
                    vlink_id: 42,
                    up: true,
                    ..
                })
            )
        ));
        for i in 0..4 {
            assert_eq!(c.sessions(i), 1, "tb{} holds state", i + 1);
        }
        assert_eq!(c.n[1].ledger().used("down"), 10 * MBIT);
        assert_eq!(c.n[2].ledger().used("down"), 10 * MBIT);
    }

    #[test]
    fn teardown_removes_everything() {
        let mut c = Chain::new(100 * MBIT);
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        c.vlinks.clear();
        c.n[0].teardown(c.now, 2, 42);
        c.run();
        assert_eq!(
            c.vlinks,
            [(3, false), (0, false)],
            "tb4 first, tb1 after the RESPONSE"
        );
        assert!(matches!(
            &c.replies[1],
            (0, 2, Ok(LinkUp { up: false, .. }))
        ));
        for i in 0..4 {
            assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
            assert!(c.n[i].ledger().is_empty());
        }
    }

    #[test]
    fn admission_failure_at_tb3_leaves_no_state() {
        let mut c = Chain::new(5 * MBIT);
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        let (_, _, r) = &c.replies[0];
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.reason, "reservation_failure");
        assert!(e.message.contains("tb3"), "{}", e.message);
        assert!(c.vlinks.is_empty(), "no tunnel end anywhere");
        for i in 0..4 {
            assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
            assert!(c.n[i].ledger().is_empty());
        }
        assert_eq!(c.n[2].stats().refused["admission"], 1);
    }

    #[test]
    fn unauthorized_request_installs_nothing() {
        let mut c = Chain::new(100 * MBIT);
        c.auth = AuthVerdict::Failed {
            reason: "bad_signature".into(),
            message: "HMAC mismatch for key 1".into(),
        };
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        let e = c.replies[0].2.as_ref().unwrap_err();
        assert_eq!(e.reason, "authorization_failure");
        assert!(c.vlinks.is_empty());
        for i in 0..4 {
            assert_eq!(c.sessions(i), 0);
        }
        assert_eq!(c.n[3].stats().refused["auth_bad_signature"], 1);
        // Unsigned requests are refused by default too.
        let mut c = Chain::new(100 * MBIT);
        c.auth = AuthVerdict::Unsigned;
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        assert!(c.replies[0].2.is_err());
        assert_eq!(c.n[3].stats().refused["auth_unsigned"], 1);
    }

    #[test]
    fn unauthorized_tear_is_refused_and_the_link_stays() {
        let mut c = Chain::new(100 * MBIT);
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        // The tear arrives at tb4 with a bad signature (forged or tampered).
        c.auth = AuthVerdict::Failed {
            reason: "bad_signature".into(),
            message: "HMAC mismatch".into(),
        };
        c.vlinks.clear();
        c.n[0].teardown(c.now, 2, 42);
        c.run();
        assert!(!c.vlinks.contains(&(3, false)), "tb4 kept its tunnel end");
        assert_eq!(c.sessions(3), 1, "tb4 kept its state");
        assert_eq!(c.n[3].stats().refused["auth_bad_signature"], 1);
    }

    #[test]
    fn concurrent_requests_admit_exactly_what_fits() {
        let mut c = Chain::new(25 * MBIT);
        for k in 0..10u8 {
            c.setup(k as u64, [k; 16], 100 + k as u64, 10 * MBIT);
        }
        c.run();
        let ok = c.replies.iter().filter(|r| r.2.is_ok()).count();
        assert_eq!(ok, 2);
        assert_eq!(c.n[2].ledger().used("down"), 20 * MBIT);
        assert_eq!(c.sessions(3), 2);
    }

    #[test]
    fn refresh_keeps_the_link_and_killed_responder_is_noticed() {
        let mut c = Chain::new(100 * MBIT);
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        // Several refresh periods: refreshes are answered, nothing expires.
        c.advance(Duration::from_millis(5500));
        assert!(c.events.is_empty(), "{:?}", c.events);
        for i in 0..4 {
            assert_eq!(c.sessions(i), 1);
        }
        // Kill tb4: tb1 notices within three refresh periods.
        c.dead = Some(3);
        c.vlinks.clear();
        c.advance(Duration::from_secs(3));
        assert!(
            c.events
                .iter()
                .any(|(i, k, _)| *i == 0 && *k == "link_lost"),
            "{:?}",
            c.events
        );
        assert!(c.vlinks.contains(&(0, false)), "tb1 removed its end");
        assert_eq!(c.sessions(0), 0);
        assert!(c.n[0].ledger().is_empty());
        // tb2 and tb3 freed their reservations (tear from tb1, or expiry).
        c.advance(Duration::from_secs(4));
        assert_eq!(c.sessions(1), 0);
        assert_eq!(c.sessions(2), 0);
    }

    #[test]
    fn responder_state_expires_without_refresh() {
        let mut c = Chain::new(100 * MBIT);
        c.setup(1, SID, 42, 10 * MBIT);
        c.run();
        c.dead = Some(0); // tb1 gone: no more refreshes
        c.vlinks.clear();
        c.advance(Duration::from_secs(4));
        assert!(c.vlinks.contains(&(3, false)), "tb4 removed its end");
        assert!(c.events.iter().any(|(i, k, _)| *i == 3 && *k == "expired"));
        for i in 1..4 {
            assert_eq!(c.sessions(i), 0);
        }
    }

    #[test]
    fn duplicate_setup_and_unknown_teardown_are_refused() {
        let mut c = Chain::new(100 * MBIT);
        c.setup(1, SID, 42, MBIT);
        c.run();
        c.setup(2, [2; 16], 42, MBIT);
        c.n[0].teardown(c.now, 3, 99);
        c.run();
        assert_eq!(c.replies[1].2.as_ref().unwrap_err().reason, "exists");
        assert_eq!(c.replies[2].2.as_ref().unwrap_err().reason, "unknown_link");
    }

    #[test]
    fn old_rsn_is_discarded() {
        assert!(serial_lt(1, 2));
        assert!(serial_lt(u32::MAX, 0));
        assert!(!serial_lt(2, 1));
        assert!(!serial_lt(5, 5));
    }

    #[test]
    fn lost_reserve_is_retransmitted_then_given_up() {
        let mut c = Chain::new(100 * MBIT);
        c.dead = Some(1);
        c.setup(1, SID, 42, MBIT);
        c.run();
        c.advance(Duration::from_secs(31));
        let reserves = c
            .sent
            .iter()
            .filter(|s| s.0 == 0 && s.1 == MsgType::Reserve)
            .count();
        // 0, 2, 6, 14 s (then 30 s is the limit): the first send plus 3
        // retries, and at 30 s a TEAR that frees whatever the path holds.
        assert_eq!(reserves, 5);
        let e = c.replies[0].2.as_ref().unwrap_err();
        assert_eq!(e.reason, "timeout");
        assert!(c.n[0].ledger().is_empty());
        let _ = InfoClass::Success;
    }

    #[test]
    fn bidirectional_link_reserves_the_reverse_path_and_tears_it_down() {
        let mut c = Chain::new(100 * MBIT);
        c.setup_dir(1, SID, 42, 10 * MBIT, true);
        c.run();
        assert!(matches!(c.replies[..], [(0, 1, Ok(_))]), "{:?}", c.replies);
        // Every node holds both directions; the reverse is reserved on the
        // links towards tb1 by tb4, tb3 and tb2.
        for i in 0..4 {
            assert_eq!(c.sessions(i), 2, "tb{}", i + 1);
        }
        for i in 1..4 {
            assert_eq!(c.n[i].ledger().used("up"), 10 * MBIT, "tb{}", i + 1);
        }
        assert_eq!(c.n[0].ledger().used("up"), 0);
        // The reverse RESERVE carries the forward session as bound session.
        assert!(c.events.is_empty(), "{:?}", c.events);
        // Refreshes keep both halves alive past several lifetimes.
        c.advance(Duration::from_secs(10));
        for i in 0..4 {
            assert_eq!(c.sessions(i), 2, "tb{} after refreshes", i + 1);
        }
        c.n[0].teardown(c.now, 2, 42);
        c.run();
        c.advance(Duration::from_secs(5));
        for i in 0..4 {
            assert_eq!(c.sessions(i), 0, "tb{} after teardown", i + 1);
            assert!(c.n[i].ledger().is_empty(), "tb{} ledger", i + 1);
        }
    }

    #[test]
    fn refused_reverse_leaves_the_forward_link_up() {
        let mut c = Chain::new(100 * MBIT);
        // tb2's link towards tb1 has no room for the reverse direction.
        c.n[1] = {
            let mut l = Ledger::new();
            l.add_link("down", 100 * MBIT);
            l.add_link("up", MBIT);
            Nslp::new(
                Config {
                    node: "tb2".into(),
                    refresh: Duration::from_secs(1),
                    lifetime: Duration::from_secs(3),
                    ..Config::default()
                },
                l,
                99,
            )
        };
        c.setup_dir(1, SID, 42, 10 * MBIT, true);
        c.run();
        assert!(matches!(c.replies[..], [(0, 1, Ok(_))]), "{:?}", c.replies);
        assert!(
            c.events
                .iter()
                .any(|(i, k, _)| *i == 3 && *k == "reverse_refused"),
            "{:?}",
            c.events
        );
        // Only the forward half remains, and nothing of the reverse is reserved.
        for i in 0..4 {
            assert_eq!(c.sessions(i), 1, "tb{}", i + 1);
            assert_eq!(c.n[i].ledger().used("up"), 0, "tb{}", i + 1);
        }
    }
}
