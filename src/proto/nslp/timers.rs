//! Retransmissions, refreshes and soft-state expiry.

use std::time::Instant;

use super::*;

impl Nslp {
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
                        kind: EventKind::Expired,
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
                if let Some(rep) = s.repair.as_mut() {
                    rep.set_rii(rii);
                }
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
}
