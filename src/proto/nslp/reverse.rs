//! Bidirectional links: the responder's reverse session; session ids; dropping a session.

use std::time::Instant;

use super::*;

/// Dropped sessions whose last RSN is remembered: far more than a node
/// drops within one lifetime (after which the next hop's state is gone).
const DROPPED_RSN_KEPT: usize = 4096;

impl Nslp {
    /// The RSN a session set up here (again) starts from: after the last
    /// one sent for it, if it was dropped recently.
    pub(super) fn first_rsn(&self, sid: &Sid) -> u32 {
        self.dropped_rsn
            .iter()
            .rev()
            .find(|(s, _)| s == sid)
            .map_or(0, |(_, rsn)| rsn.wrapping_add(1))
    }

    /// A fresh random session id (from the node's generator).
    pub(super) fn new_sid(&mut self) -> Sid {
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
    pub(super) fn start_reverse(
        &mut self,
        now: Instant,
        forward: Sid,
        rsid: Sid,
        fflow: Flow,
        rate_bps: Rate,
        link: String,
        vlsp: &VlspObject,
    ) {
        let flow = Flow {
            src: fflow.dst,
            dst: fflow.src,
            protocol: fflow.protocol,
        };
        let classifier = classifier(&flow, Some(vlsp));
        let then = Parked::Reverse {
            forward,
            flow,
            rate: rate_bps,
            vlink_id: vlsp.vlink_id,
        };
        self.admit_then(now, rsid, &link, rate_bps, classifier, then);
    }

    /// The rest of a reverse reservation, once admitted (and installed).
    pub(super) fn reverse_admitted(
        &mut self,
        now: Instant,
        forward: Sid,
        rsid: Sid,
        flow: Flow,
        rate_bps: Rate,
    ) {
        let rii = self.next_rii();
        let qspec = crate::wire::qspec::Qspec::bandwidth_request(
            rate_bps.bytes_per_sec_f32(),
            self.cfg.profile,
        );
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
    pub(super) fn end_reverse(&mut self, rsid: Sid) {
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

    pub(super) fn drop_session(&mut self, sid: Sid) {
        self.release(&sid);
        if let Some(s) = self.sessions.get(&sid)
            && s.role != Role::Qnr
        {
            if self.dropped_rsn.len() >= DROPPED_RSN_KEPT {
                self.dropped_rsn.pop_front();
            }
            self.dropped_rsn.push_back((sid, s.rsn_out));
        }
        // An initiator's end made for a link that never came up goes too
        // (after its creation: the glue runs tunnel work in order).
        if let Some(s) = self.sessions.remove(&sid)
            && s.role == Role::Qni
            && matches!(s.phase, Phase::Pending | Phase::Connecting)
            && matches!(s.end, EndState::Creating | EndState::Ready)
            && let Some(vlsp) = s.vlsp
        {
            self.actions.push_back(Action::VlinkDown {
                sid,
                vlsp,
                flow: s.flow,
                initiator: true,
            });
        }
    }
}
