//! The initiator (QNI): setup, teardown, RESPONSEs and NOTIFYs, giving up on a link.

use std::time::Instant;

use super::*;

impl Nslp {
    /// Starts a virtual link setup as QNI.
    pub fn setup(&mut self, now: Instant, req: SetupRequest) {
        let id = req.vlsp.vlink_id;
        // A setup parked until its class is in place has no session yet.
        let parked = self
            .installing
            .values()
            .any(|i| matches!(&i.then, Parked::Setup(r) if r.vlsp.vlink_id == id));
        if parked
            || self
                .sessions
                .values()
                .any(|s| s.vlsp.as_ref().is_some_and(|v| v.vlink_id == id))
        {
            self.refuse(RefusalReason::DuplicateLink);
            self.actions.push_back(Action::Reply {
                req_id: req.req_id,
                result: Err(ApiError {
                    reason: ErrorReason::Exists,
                    message: format!(
                        "virtual link {} already exists on {}: tear it down first",
                        req.vlsp.vlink_id, self.cfg.node
                    ),
                }),
            });
            return;
        }
        let classifier = classifier(&req.flow, Some(&req.vlsp));
        let (sid, link, rate) = (req.sid, req.egress_link.clone(), req.rate_bps);
        self.admit_then(now, sid, &link, rate, classifier, Parked::Setup(req));
    }

    /// The rest of a setup, once its reservation is admitted (and installed).
    pub(super) fn setup_admitted(&mut self, now: Instant, req: SetupRequest) {
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
        // The tunnel end is made while the RESERVE travels (issue 17).
        if let Some(s) = self.sessions.get_mut(&req.sid) {
            s.end = EndState::Creating;
        }
        self.actions.push_back(Action::VlinkUp {
            sid: req.sid,
            vlsp: req.vlsp,
            flow: req.flow,
            initiator: true,
        });
    }

    /// Creates an initiator's session around its first RESERVE and sends it.
    pub(super) fn initiate(&mut self, now: Instant, sid: Sid, i: Initiation) {
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
                signed_by: None,
                refused_response: None,
                upstream: None,
                downstream: None,
                repair: None,
                class: ClassState::Ready,
                held: None,
                end: EndState::None,
                no_route_since: None,
                next_hop: None,
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
                    reason: ErrorReason::UnknownLink,
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
                    reason: ErrorReason::Busy,
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

    /// A RESPONSE, with the glue's verdict on its authorization: one that
    /// failed verification (forged, tampered, expired, replayed) changes
    /// nothing anywhere; at the initiator, a success that would bring the
    /// link up must carry a verified object of the responder's provider
    /// when the request was signed. A refused RESPONSE leaves the RESERVE
    /// outstanding, so retransmissions may still fetch a genuine answer;
    /// at the retry limit the request fails saying why.
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        sid: Sid,
        msg: NslpMessage,
        auth: &AuthVerdict,
    ) {
        self.stats.responses_received += 1;
        self.answer_response(now, sid, msg, auth);
    }

    /// [`Self::on_response`] without the count: also for a RESPONSE this
    /// node held (behind its class, or until its reservation moved) and
    /// takes up again, which was counted when it arrived.
    pub(super) fn answer_response(
        &mut self,
        now: Instant,
        sid: Sid,
        msg: NslpMessage,
        auth: &AuthVerdict,
    ) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            // A RESPONSE for a session we no longer hold (e.g. to a tear
            // forwarded earlier): pass it on if we are not the initiator.
            return;
        };
        if let AuthVerdict::Failed { reason, message } = auth {
            if s.role == Role::Qni {
                s.refused_response = Some(message.clone());
            }
            self.refuse(*reason);
            return;
        }
        let info = msg.info_spec().cloned();
        let ok = info.as_ref().is_some_and(|i| i.is_success());
        let rii = msg.rii();
        if self.is_repair_answer(&sid, rii) {
            // A success that keeps the link must be the responder's, as
            // for the first RESPONSE.
            let s = &self.sessions[&sid];
            if ok && s.role == Role::Qni && s.authenticate && *auth == AuthVerdict::Unsigned {
                self.refuse(RefusalReason::AuthUnsigned);
                return;
            }
            self.repair_answered(now, sid, info);
            return;
        }
        let s = self.sessions.get_mut(&sid).expect("checked above");
        if s.class == ClassState::Installing && s.role != Role::Qnr {
            // This node's class is still being installed: the answer goes
            // on once it is in place (or refused).
            s.held = Some((msg, auth.clone()));
            return;
        }
        // Issue 15: a success for this node's own request, while the
        // reservation sits on another link than the peer that answered,
        // goes on once the reservation has moved there.
        let ours = ok
            && match s.role {
                Role::Qni => s.outstanding.as_ref().is_some_and(|o| Some(o.rii) == rii),
                Role::Qne => rii.is_some_and(|r| s.forwarded_riis.contains(&r)),
                Role::Qnr => false,
            };
        let mut msg = msg;
        if ours && self.misplaced(&sid) {
            match self.follow_next_peer(now, sid, Some((msg, auth.clone()))) {
                Some((m, _)) => msg = m,
                None => return,
            }
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let mut ok = ok;
        match s.role {
            Role::Qne => {
                if let ClassState::Failed(why, local) = &s.class
                    && ok
                    && s.phase == Phase::Pending
                {
                    // Downstream said yes, but our kernel said no.
                    msg = NslpMessage::response(
                        rii,
                        None,
                        InfoSpec::reservation_failure(*local, why),
                        None,
                    );
                    ok = false;
                }
                if let Some(r) = rii
                    && !s.forwarded_riis.contains(&r)
                {
                    self.refuse(RefusalReason::UnknownRii);
                    return;
                }
                let flow = s.flow;
                let tearing = s.phase == Phase::Tearing;
                // "No route" further down is transient: the initiator
                // retries, so this hop keeps its reservation meanwhile.
                let retry =
                    s.phase == Phase::Up && msg.info_spec().is_some_and(|i| i.is_retryable());
                if ok && !tearing {
                    if s.phase == Phase::Pending {
                        s.phase = Phase::Up;
                    }
                } else if !retry {
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
                    self.refuse(RefusalReason::UnknownRii);
                    return;
                }
                let brings_up = ok && s.vlsp.is_some() && s.phase == Phase::Pending;
                if brings_up && s.authenticate && *auth == AuthVerdict::Unsigned {
                    s.refused_response = Some(
                        "the RESPONSE carries no authorization object of the responder's provider"
                            .into(),
                    );
                    self.refuse(RefusalReason::AuthUnsigned);
                    return;
                }
                if let ClassState::Failed(why, _) = &s.class
                    && brings_up
                {
                    // The responder said yes, but our kernel said no: undo
                    // the whole link, as when our tunnel end fails.
                    let message = why.clone();
                    let (flow, authenticate) = (s.flow, s.authenticate);
                    let rsn = s.rsn_out.wrapping_add(1);
                    let req = s.req_id.take();
                    self.drop_session(sid);
                    self.send_tear(sid, flow, rsn, authenticate);
                    self.actions.push_back(Action::Forget { sid });
                    if let Some(req_id) = req {
                        self.actions.push_back(Action::Reply {
                            req_id,
                            result: Err(ApiError {
                                reason: ErrorReason::Admission,
                                message,
                            }),
                        });
                    }
                    return;
                }
                let was_refresh = out.refresh;
                s.outstanding = None;
                if ok {
                    s.no_route_since = None;
                } else if was_refresh
                    && let Some(i) = info.as_ref()
                    && self.retry_later(now, sid, i)
                {
                    return;
                }
                let s = self.sessions.get_mut(&sid).expect("checked above");
                let flow = s.flow;
                let Some(vlsp) = s.vlsp.clone() else {
                    // The reverse half of a bidirectional link (no VLSP).
                    let forward = s.bound;
                    // A class our kernel refused (e.g. a failed move onto
                    // the next peer's link) is a refusal here too.
                    let class_failed = match &s.class {
                        ClassState::Failed(why, _) => Some(why.clone()),
                        _ => None,
                    };
                    match (s.phase, ok && class_failed.is_none()) {
                        (Phase::Pending | Phase::Connecting | Phase::Up, true) => {
                            s.phase = Phase::Up;
                            s.refresh_at = Some(now + self.cfg.refresh);
                        }
                        (Phase::Tearing, _) => {
                            self.drop_session(sid);
                            self.actions.push_back(Action::Forget { sid });
                        }
                        (_, false) => {
                            let why = class_failed
                                .or_else(|| {
                                    info.map(|i| {
                                        format!("{} refused by {}", i.describe(), i.origin())
                                    })
                                })
                                .unwrap_or_default();
                            self.drop_session(sid);
                            self.actions.push_back(Action::Forget { sid });
                            let vlink_id = forward
                                .and_then(|f| self.sessions.get(&f))
                                .and_then(|f| f.vlsp.as_ref())
                                .map(|v| v.vlink_id);
                            self.actions.push_back(Action::Event {
                                vlink_id,
                                kind: EventKind::ReverseRefused,
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
                    (Phase::Pending, true) => match s.end.clone() {
                        EndState::Ready => {
                            s.phase = Phase::Up;
                            s.refresh_at = Some(now + self.cfg.refresh);
                            if let Some(req_id) = s.req_id.take() {
                                self.actions.push_back(Action::Reply {
                                    req_id,
                                    result: Ok(LinkUp {
                                        vlink_id: vlsp.vlink_id,
                                        sid,
                                        up: true,
                                    }),
                                });
                            }
                        }
                        // Up when the end is (`vlink_done`).
                        EndState::Creating => s.phase = Phase::Connecting,
                        EndState::Failed(e) => {
                            s.phase = Phase::Connecting;
                            self.vlink_done(now, sid, flow.src, Some(e));
                        }
                        EndState::None => {
                            s.phase = Phase::Connecting;
                            s.end = EndState::Creating;
                            self.actions.push_back(Action::VlinkUp {
                                sid,
                                vlsp,
                                flow,
                                initiator: true,
                            });
                        }
                    },
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
                                kind: EventKind::LinkLost,
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
                                    reason: ErrorReason::from_info(info.reason()),
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

    /// A NOTIFY from `peer`. One from a branch the path has left (not the
    /// next peer after a path change) is dropped. At the initiator, "path
    /// truncated" on an established link means the path is cut downstream
    /// and no other exists: the link is lost now, not a refresh period later.
    pub(super) fn on_notify(&mut self, now: Instant, sid: Sid, msg: NslpMessage, peer: Ipv4Addr) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        if s.downstream.is_some_and(|d| d != peer) {
            return;
        }
        let flow = s.flow;
        match s.role {
            Role::Qne => self.send(sid, flow, Direction::Upstream, msg, false),
            Role::Qni => {
                let text = msg
                    .info_spec()
                    .map(|i| i.describe())
                    .unwrap_or_else(|| "NOTIFY without INFO_SPEC".into());
                let truncated = msg
                    .info_spec()
                    .is_some_and(|i| i.reason() == "path_truncated");
                let up = s.phase == Phase::Up;
                let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id);
                self.actions.push_back(Action::Event {
                    vlink_id,
                    kind: EventKind::Notify,
                    message: text.clone(),
                });
                if truncated && up && !self.hope_for_a_route(now, sid, false) {
                    self.link_lost(now, sid, &format!("the path is cut downstream ({text})"));
                }
            }
            Role::Qnr => {}
        }
    }

    /// A refresh of an established link answered with a transient failure
    /// ("no route", e.g. while OSPF converges): the reservation is kept and
    /// the next refresh tries again, until the lifetime since the first
    /// such answer has passed (the hops' soft state is gone by then).
    /// Returns whether the answer was absorbed.
    pub(super) fn retry_later(&mut self, now: Instant, sid: Sid, info: &InfoSpec) -> bool {
        let lifetime = self.cfg.lifetime;
        let refresh = self.cfg.refresh;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return false;
        };
        if s.role != Role::Qni || s.phase != Phase::Up || !info.is_retryable() {
            return false;
        }
        let since = *s.no_route_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= lifetime {
            return false;
        }
        s.outstanding = None;
        s.refresh_at = Some(now + refresh);
        let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id);
        self.actions.push_back(Action::Event {
            vlink_id,
            kind: EventKind::Notify,
            message: format!(
                "{}: {} from {}: reservation kept, retrying at the next refresh",
                self.cfg.node,
                info.describe(),
                info.origin()
            ),
        });
        true
    }

    /// A path found cut (a "path truncated" NOTIFY, or no GIST peer
    /// here) while routes may still converge, or no GIST peer answering
    /// along a route this node has (`has_route`: a router on it may be
    /// starting): the link is kept and the next refresh tries again (a
    /// route change here re-reserves at once), until the lifetime since
    /// the path was first found broken has passed. Returns whether the
    /// link is kept.
    pub(super) fn hope_for_a_route(&mut self, now: Instant, sid: Sid, has_route: bool) -> bool {
        if !self.cfg.routing_converges && !has_route {
            return false;
        }
        let lifetime = self.cfg.lifetime;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return false;
        };
        if s.role != Role::Qni || s.phase != Phase::Up {
            return false;
        }
        let since = *s.no_route_since.get_or_insert(now);
        now.saturating_duration_since(since) < lifetime
    }

    /// The QNI gives up on a link: frees everything and tells the program.
    pub(super) fn link_lost(&mut self, _now: Instant, sid: Sid, why: &str) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let flow = s.flow;
        let vlsp = s.vlsp.clone();
        let req = s.req_id;
        let was_up = s.phase == Phase::Up;
        let refused = s.refused_response.clone();
        let authenticate = s.authenticate;
        let rsn = s.rsn_out.wrapping_add(1);
        self.drop_session(sid);
        self.actions.push_back(Action::Forget { sid });
        // Free the reservations of the nodes still reachable.
        self.send_tear(sid, flow, rsn, authenticate);
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
            let (reason, message) = match refused {
                Some(r) => (
                    ErrorReason::AuthorizationFailure,
                    format!(
                        "{}: {why}: every RESPONSE that came was refused, the last because: {r} (check the responder's provider key, or look for forged answers on the path)",
                        self.cfg.node
                    ),
                ),
                None => (ErrorReason::Timeout, format!("{}: {why}", self.cfg.node)),
            };
            self.actions.push_back(Action::Reply {
                req_id,
                result: Err(ApiError { reason, message }),
            });
        } else {
            self.actions.push_back(Action::Event {
                vlink_id,
                kind: EventKind::LinkLost,
                message: format!("{}: {why}", self.cfg.node),
            });
        }
    }
}
