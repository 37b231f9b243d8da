//! The responder (QNR): the RESERVE that ends here, and the tunnel-end completions of both ends.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::*;

impl Nslp {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_reserve_qnr(
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
                        // Signed: it may answer a retransmitted first
                        // RESERVE whose signed RESPONSE was lost, and the
                        // initiator brings a link up only on a verified one.
                        true,
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
                true,
            );
            return;
        }
        let vni = crate::model::tunnel::vni_for(vlsp.vlink_id);
        if self.vnis_in_use().any(|v| v == vni) {
            // Another link of this node has the VNI: refuse here, clearly,
            // rather than have the kernel fail on the tunnel device.
            self.refuse(RefusalReason::VniInUse);
            let text = format!(
                "{}: VNI {vni} of virtual link {} is already used by another virtual link on this node: retry the setup (a new VLink ID gets another VNI)",
                self.cfg.node, vlsp.vlink_id
            );
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
    pub(super) fn passive_session(
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
            rate_bps: Rate::from_bps(msg.qspec().and_then(|q| q.rate_bps()).unwrap_or(0)),
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
        }
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
                        self.refuse(RefusalReason::Vlink);
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
            (Role::Qni, Phase::Pending) => {
                // The early end is made; the RESPONSE decides.
                s.end = match err {
                    None => EndState::Ready,
                    Some(e) => EndState::Failed(e),
                };
            }
            (Role::Qni, Phase::Connecting) => {
                let req = s.req_id.take();
                s.end = match &err {
                    None => EndState::Ready,
                    Some(e) => EndState::Failed(e.clone()),
                };
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
                        let authenticate = s.authenticate;
                        self.drop_session(sid);
                        self.send_tear(sid, flow, rsn, authenticate);
                        self.actions.push_back(Action::Forget { sid });
                        if let Some(req_id) = req {
                            self.actions.push_back(Action::Reply {
                                req_id,
                                result: Err(ApiError {
                                    reason: ErrorReason::Vlink,
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
                                reason: ErrorReason::Vlink,
                                message: format!("{}: {e}", self.cfg.node),
                            }),
                        },
                    });
                }
            }
            _ => {}
        }
    }
}
