//! Data that travel before a handshake is complete, on both sides of it.
//!
//! - **Data in the Query** (optional `data_in_query`, NSIS-ka's
//!   `send-data-in-query`): the first NSLP message of a session rides in its
//!   Query (RFC 5971 §5.1), so the responder's NSLP handles it one round trip
//!   earlier; what that NSLP sends back upstream is held until the Confirm
//!   installs the responder's routing state.
//! - **Behind the Confirm**: the data queued during a handshake leave right
//!   behind the Confirm. A peer that reads them before the Confirm (two
//!   datagrams may swap on the way, e.g. when the sender moves between CPUs)
//!   answers "No Routing State"; they are then sent again after a new
//!   handshake instead of waiting for the NSLP's retry (seconds).
//! - **To a peer that forgot us**: Data sent on established state are kept
//!   for one T1 too. A peer that ended the session forgets its responder
//!   state, while our querier state may be fresh (made to forward that
//!   session's tear); its "No Routing State" sends them again likewise.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{Direction, Flow, Gist, Msg, QNode, QState, Querying, Sid, Transmit};

/// Sessions whose upstream answers may wait for a Confirm at once
/// (`data_in_query`): a bound on state that unconfirmed Queries create.
const MAX_HELD_SESSIONS: usize = 1024;

/// Upstream data waiting for a Confirm (`data_in_query`).
#[derive(Debug)]
pub(super) struct HeldData {
    flow: Flow,
    dir: Direction,
    local: Ipv4Addr,
    nslp_data: Vec<u8>,
    sign: bool,
}

/// The data sent right behind a Confirm, or on established state, kept
/// for one T1 from the first of them (the newest [`MAX_KEPT`]).
#[derive(Debug, Default)]
pub(super) struct BehindConfirm {
    data: Vec<(Vec<u8>, bool)>,
    until: Option<Instant>,
    /// These data were sent again once already: a peer that answers "No
    /// Routing State" to them again (a hostile one, or one that cannot
    /// keep state) loses them, and the querier's state, instead of
    /// drawing handshakes without end.
    resent: bool,
}

/// Data kept per peer for a resend: a burst within one T1 is rare.
const MAX_KEPT: usize = 8;

impl QNode {
    /// Keeps Data sent on established state until `until`, with what was
    /// sent within the window before.
    pub(super) fn keep_sent(&mut self, data: &[u8], sign: bool, now: Instant, until: Instant) {
        let b = &mut self.behind_confirm;
        if b.until.is_none_or(|t| now >= t) {
            // A new window: new data have their own resend.
            *b = BehindConfirm {
                until: Some(until),
                ..BehindConfirm::default()
            };
        }
        if b.data.len() == MAX_KEPT {
            b.data.remove(0);
        }
        b.data.push((data.to_vec(), sign));
    }

    /// Keeps what leaves behind the Confirm until `until` (still marked
    /// as resent when it is the resend).
    pub(super) fn keep_behind_confirm(&mut self, data: Vec<(Vec<u8>, bool)>, until: Instant) {
        let resent = self.behind_confirm.resent;
        self.behind_confirm = BehindConfirm {
            data,
            until: Some(until),
            resent,
        };
    }
}

impl Gist {
    /// Holds upstream data for a peer whose Query carried data and whose
    /// Confirm is still on its way; gives the data back when there is none.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &mut self,
        sid: Sid,
        flow: Flow,
        dir: Direction,
        local: Ipv4Addr,
        nslp_data: Vec<u8>,
        sign: bool,
    ) -> Option<Vec<u8>> {
        let Some(h) = self.held.get_mut(&(sid, super::opposite(dir))) else {
            return Some(nslp_data);
        };
        h.push(HeldData {
            flow,
            dir,
            local,
            nslp_data,
            sign,
        });
        None
    }

    /// A Query of `(sid, dir)` delivered data: what our NSLP answers waits
    /// for the Confirm (unless state from an earlier handshake is still
    /// there). Bounded: Queries come from anyone; past the bound an answer
    /// goes out unheld (the peer re-queries).
    pub(super) fn hold_answers(&mut self, sid: Sid, dir: Direction) {
        if !self.r.contains_key(&(sid, dir)) && self.held.len() < MAX_HELD_SESSIONS {
            self.held.entry((sid, dir)).or_default();
        }
    }

    /// The Confirm of `(sid, dir)` installed our state: send what was held.
    pub(super) fn release_held(&mut self, sid: Sid, dir: Direction, peer: Ipv4Addr) {
        let ttl = self.cfg.reply_ttl();
        for h in self.held.remove(&(sid, dir)).unwrap_or_default() {
            let HeldData {
                flow,
                dir,
                local,
                nslp_data,
                sign,
            } = h;
            self.push_data(peer, ttl, sid, flow, dir, local, nslp_data, sign);
        }
    }

    /// Puts `nslp_data` into the Query just queued (`data_in_query`).
    pub(super) fn attach_to_query(&mut self, data: &[u8], data_sign: bool) {
        if let Some(Transmit {
            msg: Msg::Query { nslp_data, .. },
            sign,
            ..
        }) = self.out.back_mut()
        {
            *nslp_data = Some(data.to_vec());
            *sign = data_sign;
        }
    }

    /// "No Routing State" from `src` just after our Confirm: the peer read
    /// the data first. Handshake again and resend them, once.
    pub(super) fn resend_behind_confirm(
        &mut self,
        now: Instant,
        sid: Sid,
        src: Ipv4Addr,
        local: Ipv4Addr,
    ) {
        let from = |n: &QNode| n.known_peer().is_some_and(|p| p.addr == src);
        let swapped: Vec<_> = self
            .q
            .iter()
            .filter(|((s, _), n)| {
                *s == sid
                    && from(n)
                    && !n.behind_confirm.data.is_empty()
                    && !n.behind_confirm.resent
                    && n.behind_confirm.until.is_some_and(|t| now < t)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in swapped {
            let node = self.q.get_mut(&key).expect("key just listed");
            let cookie = self.cookies.next_query_cookie();
            node.state = QState::Waiting(Querying::new(now, self.cfg.t1, cookie.clone()));
            node.queue.extend(node.behind_confirm.data.drain(..));
            node.behind_confirm.until = None;
            node.behind_confirm.resent = true;
            let flow = node.flow;
            self.counters.resent_behind_confirm += 1;
            self.push_query(flow, key.1, sid, local, cookie);
        }
    }
}
