//! Receiving, shared by every role: dispatch, authorization verdict, RSN rules, tears, lost peers.

use std::time::Instant;

use super::*;

impl Nslp {
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
            (MsgType::Response, Direction::Upstream) => self.on_response(now, sid, msg, &ctx.auth),
            (MsgType::Notify, Direction::Upstream) => self.on_notify(now, sid, msg, ctx.peer),
            _ => {
                // QUERY (resource queries) and upstream RESERVEs
                // (receiver-initiated reservations) are not used by VLSP.
                self.refuse(RefusalReason::UnsupportedMessage);
            }
        }
    }

    /// Whether the verdict lets a request through; counts refusals.
    pub(super) fn authorized(&mut self, auth: &AuthVerdict) -> bool {
        match auth {
            AuthVerdict::Verified { .. } => true,
            AuthVerdict::Failed { reason, .. } => {
                self.refuse(*reason);
                false
            }
            AuthVerdict::Unsigned | AuthVerdict::NotChecked => {
                if self.cfg.require_auth {
                    self.refuse(RefusalReason::AuthUnsigned);
                    false
                } else {
                    true
                }
            }
        }
    }

    pub(super) fn answer(
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

    /// Tells the initiator its tear was carried out here.
    fn confirm_teardown(&mut self, sid: Sid, flow: Flow, rii: Option<u32>, local: Ipv4Addr) {
        self.answer(
            sid,
            flow,
            rii,
            InfoSpec::teardown_successful(local),
            None,
            false,
        );
    }

    /// A tearing RESERVE with `rsn` towards the responder: the nodes
    /// downstream free what they hold for this session. Signed when the
    /// session's requests were (the responder refuses unsigned tears).
    pub(super) fn send_tear(&mut self, sid: Sid, flow: Flow, rsn: u32, authenticate: bool) {
        self.send(
            sid,
            flow,
            Direction::Downstream,
            NslpMessage::tear(rsn, self.cfg.epoch, None),
            authenticate,
        );
    }

    pub(super) fn on_reserve(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        msg: NslpMessage,
        ctx: RecvContext,
    ) {
        self.stats.reserves_received += 1;
        // Our own session, sent back to us: the sender's route leads back
        // through the initiator (OSPF converging after a fault). A tear of
        // the branch the path left would otherwise end the reservation
        // here and, forwarded, at the responder.
        if self.sessions.get(&sid).is_some_and(|s| s.role == Role::Qni) {
            tracing::debug!(node = %self.cfg.node, peer = %ctx.peer, tear = msg.flags.tear, "RESERVE for a session this node initiated came back: dropped");
            self.refuse(RefusalReason::Looped);
            return;
        }
        let rii = msg.rii();
        let Some((rsn, epoch)) = msg.rsn() else {
            self.refuse(RefusalReason::Malformed);
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
        // Another upstream peer than the current one (RFC 5974's SII-Handle
        // changed): a RESERVE is the path moving here, an update whatever
        // its RSN (RSNs are per peer); a tear is for the branch the path
        // left, and nothing here belongs to it any more. Ignored before the
        // authorization check, so it cannot draw an error RESPONSE either.
        let moved = self
            .sessions
            .get(&sid)
            .and_then(|s| s.upstream)
            .is_some_and(|u| u != ctx.peer);
        if tear && moved {
            return;
        }
        // RSN rules (RFC 5974 §5.2.2): same epoch and an older RSN is out of
        // order; equal is a refresh; newer (or another epoch) is an update.
        let existing = self.sessions.get(&sid).map(|s| s.rsn_in);
        let is_refresh = match existing {
            Some(Some((old, old_epoch))) if old_epoch == epoch && !moved => {
                if serial_lt(rsn, old) {
                    self.refuse(RefusalReason::OldRsn);
                    return;
                }
                rsn == old
            }
            _ => false,
        };
        // Authorization first, for every RESERVE that ends here (tears
        // included): nothing is touched for a refused request. Under the
        // `unsigned_tear = "same-peer"` policy an unsigned TEAR passes, but
        // only for a session a signed RESERVE from the same GIST peer set
        // up; it can never open one.
        let unsigned_tear_ok = tear
            && ctx.auth == AuthVerdict::Unsigned
            && self.cfg.unsigned_tear_same_peer
            && self
                .sessions
                .get(&sid)
                .is_some_and(|s| s.role == Role::Qnr && s.signed_by == Some(ctx.peer));
        if ctx.is_destination && !unsigned_tear_ok && !self.authorized(&ctx.auth) {
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
        // Answers to this RESERVE go back to the peer it came from.
        if let Some(s) = self.sessions.get_mut(&sid)
            && s.role != Role::Qni
        {
            s.upstream = Some(ctx.peer);
        }
        if ctx.is_destination {
            let signer = matches!(ctx.auth, AuthVerdict::Verified { .. }).then_some(ctx.peer);
            let peer = ctx.peer;
            self.on_reserve_qnr(now, sid, flow, rsn, epoch, rii, is_refresh, msg, ctx);
            if let Some(s) = self.sessions.get_mut(&sid)
                && s.role == Role::Qnr
            {
                s.upstream = Some(peer);
                if signer.is_some() {
                    s.signed_by = signer;
                }
            }
        } else {
            self.on_reserve_qne(now, sid, flow, rsn, epoch, rii, is_refresh, msg, ctx);
        }
    }

    pub(super) fn on_tear(
        &mut self,
        _now: Instant,
        sid: Sid,
        flow: Flow,
        rii: Option<u32>,
        msg: &NslpMessage,
        ctx: RecvContext,
    ) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            if self
                .installing
                .get(&sid)
                .is_some_and(|i| matches!(i.then, Parked::Forward(_)))
            {
                // Its first RESERVE waits for its link's shaping: it never
                // goes on, and its class goes once installed.
                self.installing.remove(&sid);
                self.release(&sid);
            }
            // Nothing here; still confirm a tear that asks for it, so the
            // initiator is not left waiting.
            if ctx.is_destination && rii.is_some() {
                self.confirm_teardown(sid, flow, rii, ctx.local);
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
                        self.release(&sid);
                    }
                    None => {
                        self.drop_session(sid);
                        self.actions.push_back(Action::Forget { sid });
                    }
                }
                self.send(sid, flow, Direction::Downstream, tear, false);
            }
            // A duplicated tear: the tunnel end is already being removed.
            Role::Qnr if s.phase == Phase::Tearing => {}
            Role::Qnr => {
                s.phase = Phase::Tearing;
                s.answer_rii = rii;
                let vlsp = s.vlsp.clone();
                let reverse = s.bound;
                self.release(&sid);
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
                        self.confirm_teardown(sid, flow, rii, ctx.local);
                    }
                }
            }
        }
    }

    /// GIST found no next peer for the session (handshake timed out);
    /// `has_route`: this node still has a route towards the flow's
    /// destination (issue 15: a neighbour's re-query reached a router
    /// whose node was still starting, and the link was lost at once).
    pub fn peer_lost(&mut self, now: Instant, sid: Sid, has_route: bool) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (flow, role) = (s.flow, s.role);
        let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id);
        match role {
            Role::Qni if self.hope_for_a_route(now, sid, has_route) => {
                let why = if has_route {
                    "along this node's route"
                } else {
                    "while routes converge"
                };
                self.actions.push_back(Action::Event {
                    vlink_id,
                    kind: EventKind::Notify,
                    message: format!(
                        "{}: no GIST peer answered towards {} {why}: reservation kept, retrying at the next refresh",
                        self.cfg.node, flow.dst
                    ),
                });
            }
            Role::Qni if has_route => self.link_lost(
                now,
                sid,
                "no GIST peer answered towards the destination along this node's route within the reservation's lifetime",
            ),
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
}
