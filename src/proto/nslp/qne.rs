//! An intermediate node (QNE): admission on the egress link and forwarding.

use std::time::Instant;

use super::admission::Forward;
use super::*;

impl Nslp {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_reserve_qne(
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
        let rate = msg.qspec().and_then(|q| q.rate_bps()).map(Rate::from_bps);
        let known = self.sessions.contains_key(&sid);
        let classifier = classifier(
            &flow,
            msg.vlsp()
                .or_else(|| self.sessions.get(&sid).and_then(|s| s.vlsp.as_ref())),
        );
        let forward = Forward {
            flow,
            rsn,
            epoch,
            rii,
            is_refresh,
            msg,
            local: ctx.local,
            peer: ctx.peer,
            known,
            rate,
        };
        if !known || rate.is_some() {
            let Some(link) = ctx.egress_link.clone() else {
                self.refuse(RefusalReason::NoRoute);
                self.answer(
                    sid,
                    flow,
                    rii,
                    // Transient (e.g. OSPF converging): the initiator
                    // keeps the reservation and retries.
                    InfoSpec::no_route(ctx.local),
                    None,
                    false,
                );
                return;
            };
            let Some(rate) = rate.or_else(|| self.sessions.get(&sid).map(|s| s.rate_bps)) else {
                self.refuse(RefusalReason::NoQspec);
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
            let then = Parked::Forward(Box::new(Forward {
                rate: Some(rate),
                ..forward
            }));
            self.admit_then(now, sid, &link, rate, classifier, then);
            return;
        }
        self.qne_forward(now, sid, forward);
    }

    /// Keeps the (admitted) reservation's state and forwards the RESERVE.
    pub(super) fn qne_forward(&mut self, now: Instant, sid: Sid, f: Forward) {
        let Forward {
            flow,
            rsn,
            epoch,
            rii,
            is_refresh,
            msg,
            rate,
            peer,
            ..
        } = f;
        let lifetime = self.cfg.lifetime;
        let first_rsn = if self.sessions.contains_key(&sid) {
            0
        } else {
            self.first_rsn(&sid)
        };
        let s = self.sessions.entry(sid).or_insert_with(|| Session {
            role: Role::Qne,
            phase: Phase::Pending,
            flow,
            vlsp: None,
            rate_bps: Rate::from_bps(0),
            rsn_out: first_rsn,
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
        });
        if let Some(r) = rate {
            s.rate_bps = r;
        }
        s.upstream = Some(peer);
        // The full RESERVE (signed objects included), re-sent along a new
        // path if the route changes here.
        if msg.qspec().is_some() {
            s.reserve = Some(msg.clone());
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
}
