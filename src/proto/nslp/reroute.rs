//! Rerouting (RFC 5974 §5.2.5.2, §5.2.7.1): GIST reports that the next peer
//! of a reservation changed. The node where the path diverges (QNI or QNE)
//! moves its own reservation to the new egress link, sends the full RESERVE
//! along the new path (the QNI signs it anew; a QNE re-sends the QNI's
//! signed objects as it received them, which the responder still verifies
//! while their END_TIME lasts), and once the RESPONSE confirms the new path
//! tears the branch the path left by a TEAR to the old peer. Tearing only
//! after the RESPONSE matters: the responder then already knows its new
//! upstream peer and ignores the old branch's tear (a tear from a peer that
//! is not its current upstream one), so the tear frees only the old branch.
//! A refusal on the new path frees what the repair took and loses the link.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::*;

/// A re-reservation along a new path, until its RESPONSE.
#[derive(Debug, Clone)]
pub(super) struct Repair {
    /// The first nodes of the branches the path left during this repair,
    /// oldest first; never the current next peer (a path that flips back
    /// onto a branch makes it current again, and tearing it would end the
    /// reservation at the responder).
    old_peers: Vec<Ipv4Addr>,
    /// RII of the repairing RESERVE; its RESPONSE ends here.
    rii: u32,
    since: Instant,
}

impl Repair {
    /// A refresh re-sends the repairing RESERVE (after a transient "no
    /// route"): its RESPONSE now answers the repair.
    pub(super) fn set_rii(&mut self, rii: u32) {
        self.rii = rii;
    }
}

impl Nslp {
    /// GIST found another next peer for `sid` (RFC 5971's "routing state
    /// changed"). `egress_link` is this node's egress towards the flow's
    /// destination under the new routes.
    pub fn path_changed(
        &mut self,
        now: Instant,
        sid: Sid,
        old_peer: Ipv4Addr,
        new_peer: Ipv4Addr,
        egress_link: Option<String>,
    ) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        // Only where an established reservation goes on downstream.
        if !matches!(s.role, Role::Qni | Role::Qne) || s.phase != Phase::Up || s.reserve.is_none() {
            return;
        }
        // A QNE whose next peer is now its upstream peer is off the path:
        // the upstream node's tear (or expiry) removes its state.
        if s.role == Role::Qne && s.upstream == Some(new_peer) {
            return;
        }
        let (flow, vlsp, rate) = (s.flow, s.vlsp.clone(), s.rate_bps);
        // A second change during a repair adds the branch it leaves (which
        // the repairing RESERVE may have reached) and takes back the one it
        // returns to.
        let mut old_peers = s
            .repair
            .as_ref()
            .map(|r| r.old_peers.clone())
            .unwrap_or_default();
        if !old_peers.contains(&old_peer) {
            old_peers.push(old_peer);
        }
        old_peers.retain(|p| *p != new_peer);
        let rii = self.next_rii();
        let s = self.sessions.get_mut(&sid).expect("checked");
        s.downstream = Some(new_peer);
        // Where the new peer lies is told by its handshake, after this.
        s.next_hop = None;
        s.repair = Some(Repair {
            old_peers,
            rii,
            since: now,
        });
        let vlink_id = vlsp.as_ref().map(|v| v.vlink_id);
        self.actions.push_back(Action::Event {
            vlink_id,
            kind: EventKind::PathChanged,
            message: format!(
                "{}: the next peer towards {} changed from {old_peer} to {new_peer}: re-reserving along the new path",
                self.cfg.node, flow.dst
            ),
        });
        let Some(link) = egress_link else {
            self.repair_failed(now, sid, "no route towards the flow's destination");
            return;
        };
        let c = classifier(&flow, vlsp.as_ref());
        self.admit_then(now, sid, &link, rate, c, Parked::Repair);
    }

    /// The reservation stands on the new egress link: the full RESERVE
    /// goes along the new path, asking for a RESPONSE to this node.
    pub(super) fn repair_admitted(&mut self, now: Instant, sid: Sid) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let (Some(rep), Some(reserve)) = (s.repair.as_ref(), s.reserve.as_ref()) else {
            return;
        };
        let rii = rep.rii;
        s.rsn_out = s.rsn_out.wrapping_add(1);
        let msg = reserve.with_rsn(s.rsn_out, self.cfg.epoch).with_rii(rii);
        let authenticate = s.role == Role::Qni && s.authenticate;
        if s.role == Role::Qni {
            s.refresh_at = None;
            s.outstanding = Some(Outstanding {
                rii,
                msg: msg.clone(),
                next_retx: now + self.cfg.retry,
                interval: self.cfg.retry,
                deadline: now + self.cfg.retry_max,
                refresh: true,
            });
        }
        let flow = s.flow;
        self.send(sid, flow, Direction::Downstream, msg, authenticate);
    }

    /// Whether `rii` answers this node's repairing RESERVE of `sid`.
    pub(super) fn is_repair_answer(&self, sid: &Sid, rii: Option<u32>) -> bool {
        self.sessions
            .get(sid)
            .and_then(|s| s.repair.as_ref())
            .is_some_and(|r| Some(r.rii) == rii)
    }

    /// The RESPONSE to the repairing RESERVE: on success the old branch is
    /// torn; a refusal fails the repair.
    pub(super) fn repair_answered(&mut self, now: Instant, sid: Sid, info: Option<InfoSpec>) {
        let ok = info.as_ref().is_some_and(|i| i.is_success());
        // "No route" on the new path is transient (OSPF converging): the
        // repair stays pending; the QNI's next refresh carries it again
        // (with the repair's RII), a QNE waits for the QNI's refreshes.
        if let Some(i) = info.as_ref().filter(|i| i.is_retryable()) {
            let qne = self.sessions.get(&sid).is_some_and(|s| s.role == Role::Qne);
            if qne || self.retry_later(now, sid, i) {
                return;
            }
        }
        if !ok {
            let why = info
                .map(|i| format!("{} refused by {}", i.describe(), i.origin()))
                .unwrap_or_else(|| "RESPONSE without INFO_SPEC".into());
            self.repair_failed(now, sid, &why);
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(rep) = s.repair.take() else {
            return;
        };
        if s.role == Role::Qni {
            s.outstanding = None;
            s.refresh_at = Some(now + self.cfg.refresh);
            s.no_route_since = None;
        }
        let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id);
        let ms = now.saturating_duration_since(rep.since).as_secs_f64() * 1e3;
        self.tear_old_branches(sid, &rep.old_peers);
        let torn = match rep.old_peers.as_slice() {
            [] => "the path came back to its old branch, nothing torn".to_string(),
            [peer] => format!("old branch via {peer} torn"),
            peers => format!("old branches via {} torn", join(peers)),
        };
        self.actions.push_back(Action::Event {
            vlink_id,
            kind: EventKind::Repaired,
            message: format!(
                "{}: reservation re-established along the new path {ms:.1} ms after the path change; {torn}",
                self.cfg.node
            ),
        });
    }

    /// The new path refused (or has no route): what the repair took is
    /// freed, the old branch torn, and the link lost (QNI) or the
    /// initiator told (QNE).
    pub(super) fn repair_failed(&mut self, now: Instant, sid: Sid, why: &str) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(rep) = s.repair.take() else {
            return;
        };
        let (role, flow) = (s.role, s.flow);
        let vlink_id = s.vlsp.as_ref().map(|v| v.vlink_id);
        // The responder still counts the old branch as its path: this tear
        // reaches it and removes its end too.
        self.tear_old_branches(sid, &rep.old_peers);
        self.actions.push_back(Action::Event {
            vlink_id,
            kind: EventKind::RepairFailed,
            message: format!(
                "{}: the new path refused the reservation: {why}; what it took is freed",
                self.cfg.node
            ),
        });
        match role {
            Role::Qni => self.link_lost(now, sid, &format!("repair after a path change: {why}")),
            _ => {
                self.drop_session(sid);
                self.actions.push_back(Action::Forget { sid });
                let notify = NslpMessage::notify(InfoSpec::path_truncated(flow.src));
                self.send(sid, flow, Direction::Upstream, notify, false);
            }
        }
    }

    /// A TEAR without RII to the first node of the branch the path left
    /// (signed by a QNI that signs; a QNE cannot sign as the QNI). Sent
    /// where the old peer is still reachable; else the branch expires.
    fn tear_old_branches(&mut self, sid: Sid, peers: &[Ipv4Addr]) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let authenticate = s.role == Role::Qni && s.authenticate;
        for &peer in peers {
            let msg = NslpMessage::tear(s.rsn_out, self.cfg.epoch, None);
            self.actions.push_back(Action::SendTo {
                sid,
                flow: s.flow,
                dir: Direction::Downstream,
                peer,
                msg,
                authenticate,
            });
        }
    }
}

fn join(peers: &[Ipv4Addr]) -> String {
    peers
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}
