//! A reservation's class sits on the link its RESERVE leaves by (issue 15).
//! A node admits on the egress its own copy of the routes names, which may
//! lag the kernel's for a moment after a route change; GIST's Query is
//! routed by the kernel. So the glue tells the NSLP where GIST found the
//! next peer ([`Nslp::next_peer_on`], after every handshake answer, also a
//! re-query answered by the same peer), and a reservation sitting on
//! another link moves there: admitted on the peer's link, the old one freed
//! by the same install. No path change is raised and no TEAR is sent: the
//! peer is the same. A setup's or refresh's RESPONSE waits for the move,
//! so an answer still means every class is in place; a move the link
//! cannot hold fails like a repair on a new path.

use std::time::Instant;

use super::admission::Installing;
use super::*;
use crate::proto::rmf::Admission;

/// Where GIST found a session's next (downstream) peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// This node's link whose subnet holds the peer's address.
    pub link: String,
    /// This node's address on that link.
    pub local: Ipv4Addr,
}

use crate::model::hex;

impl Nslp {
    /// GIST's handshake for `sid` was answered by a peer on `hop.link`:
    /// an established reservation elsewhere moves there now; a pending one
    /// when its RESPONSE comes.
    pub fn next_peer_on(&mut self, now: Instant, sid: Sid, hop: NextHop) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if !matches!(s.role, Role::Qni | Role::Qne) {
            return;
        }
        s.next_hop = Some(hop);
        if matches!(s.phase, Phase::Up | Phase::Connecting) {
            self.follow_next_peer(now, sid, None);
        }
    }

    /// Whether `sid`'s reservation sits on another link than its next
    /// peer, with nothing else changing it meanwhile.
    pub(super) fn misplaced(&self, sid: &Sid) -> bool {
        let Some(s) = self.sessions.get(sid) else {
            return false;
        };
        let Some(hop) = s.next_hop.as_ref() else {
            return false;
        };
        matches!(s.role, Role::Qni | Role::Qne)
            && s.phase != Phase::Tearing
            && s.repair.is_none()
            && s.class == ClassState::Ready
            && !self.installing.contains_key(sid)
            && self.ledger.get(sid).is_some_and(|r| r.link != hop.link)
    }

    /// Moves a misplaced reservation onto its next peer's link; `answer`
    /// (a RESPONSE) goes on once the class is there. Returns `answer` when
    /// nothing moved.
    pub(super) fn follow_next_peer(
        &mut self,
        now: Instant,
        sid: Sid,
        answer: Option<(NslpMessage, AuthVerdict)>,
    ) -> Option<(NslpMessage, AuthVerdict)> {
        if !self.misplaced(&sid) {
            return answer;
        }
        let s = &self.sessions[&sid];
        let hop = s.next_hop.clone().expect("misplaced has a next hop");
        let from = self.ledger.get(&sid).expect("misplaced").link.clone();
        let (rate, c) = (s.rate_bps, classifier(&s.flow, s.vlsp.as_ref()));
        match self.ledger.admit(sid, &hop.link, rate) {
            Err(e) => {
                self.refuse(RefusalReason::Admission);
                self.move_refused(now, sid, answer, hop.local, &e);
            }
            Ok(Admission::Unchanged) => return answer,
            Ok(Admission::Changed { previous }) => {
                tracing::info!(
                    node = %self.cfg.node,
                    session = %hex(&sid),
                    from = %from,
                    to = %hop.link,
                    "reservation moves onto the link its next GIST peer lies on (admitted on a route that was not the kernel's)"
                );
                self.park_install(
                    sid,
                    Installing {
                        link: hop.link.clone(),
                        previous,
                        then: Parked::Move {
                            from,
                            answer: answer.map(Box::new),
                            local: hop.local,
                        },
                    },
                    rate,
                    c,
                );
            }
        }
        None
    }

    /// The moved reservation's class is in place (the install replaced the
    /// old one); the RESPONSE that waited goes on.
    pub(super) fn move_done(
        &mut self,
        now: Instant,
        sid: Sid,
        from: &str,
        answer: Option<(NslpMessage, AuthVerdict)>,
    ) {
        self.stats.egress_moved += 1;
        if let Some(r) = self.ledger.get(&sid) {
            tracing::info!(
                node = %self.cfg.node,
                session = %hex(&sid),
                from = %from,
                to = %r.link,
                "reservation moved onto its next peer's link"
            );
        }
        if let Some((msg, auth)) = answer {
            self.answer_response(now, sid, msg, &auth);
        }
    }

    /// The next peer's link cannot hold the reservation (or the kernel
    /// refused its class). A setup's RESPONSE becomes the refusal; an
    /// established reservation fails as a repair on a new path does.
    pub(super) fn move_refused(
        &mut self,
        now: Instant,
        sid: Sid,
        answer: Option<(NslpMessage, AuthVerdict)>,
        local: Ipv4Addr,
        e: &AdmitError,
    ) {
        let node = self.cfg.node.clone();
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.phase == Phase::Pending
            && let Some((msg, auth)) = answer
        {
            s.class = ClassState::Failed(format!("{node}: {e}"), local);
            self.answer_response(now, sid, msg, &auth);
            return;
        }
        let (role, flow) = (s.role, s.flow);
        let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id);
        self.actions.push_back(Action::Event {
            vlink_id,
            kind: EventKind::RepairFailed,
            message: format!(
                "{node}: the reservation could not follow its next peer onto another link: {e}; what it held is freed"
            ),
        });
        match role {
            Role::Qni => self.link_lost(
                now,
                sid,
                &format!("moving the reservation onto the next peer's link: {e}"),
            ),
            _ => {
                // Free the hops further down, then tell the initiator.
                let rsn = s.rsn_out.wrapping_add(1);
                self.send_tear(sid, flow, rsn, false);
                self.drop_session(sid);
                self.actions.push_back(Action::Forget { sid });
                let notify = NslpMessage::notify(InfoSpec::path_truncated(flow.src));
                self.send(sid, flow, Direction::Upstream, notify, false);
            }
        }
    }
}
