//! Route changes (RFC 5971 §7.1): the node's routes changed, so every
//! session it queries for may have a new next peer. Each one's handshake is
//! repeated at once, with a short give-up time (the probe) instead of T2;
//! a Response from another peer raises [`Event::PathChanged`], no answer
//! within the probe raises [`Event::PeerLost`]. Data may also be sent to an
//! explicit (old) peer, for the NSLP's tear of the branch the path left.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{Direction, Flow, Gist, Nli, QState, Querying, RNode, Sid};

/// Whether a message from `src` with NLI `nli` comes from `peer`: by its
/// address, or by its Peer-Identity (a node answers a Query on the address
/// it was sent to, and may send later from the interface that faces us).
pub(super) fn is_peer(peer: &Nli, src: Ipv4Addr, nli: Option<&Nli>) -> bool {
    peer.addr == src || nli.is_some_and(|n| n.addr == peer.addr || n.peer_id == peer.peer_id)
}

impl RNode {
    /// Whether `is` names the peer, or the one before it while its state lasts.
    pub(super) fn knows(&self, now: Instant, is: impl Fn(&Nli) -> bool) -> bool {
        is(&self.peer) || self.old.as_ref().is_some_and(|(p, t)| now < *t && is(p))
    }
}

impl Gist {
    /// A Confirm from `nli` installs it as the peer of `(sid, dir)`. At the
    /// node where a new path merges with the old one, the old branch's peer
    /// keeps its state until it expires: else its Data (a refresh, the tear)
    /// draw "No Routing State", it re-queries, takes the state back, and
    /// the new branch's refreshes are refused in turn (issue 15's repair
    /// back, lost for "no RESPONSE to a refresh").
    pub(super) fn install_responder(&mut self, now: Instant, sid: Sid, dir: Direction, nli: Nli) {
        let old = self.r.remove(&(sid, dir)).and_then(|r| {
            let same = r.peer.addr == nli.addr && r.peer.peer_id == nli.peer_id;
            match same {
                true => r.old,
                false => Some((r.peer, r.expires)),
            }
        });
        let expires = now + self.cfg.rs_validity;
        let old = old.filter(|(_, t)| now < *t);
        self.r.insert(
            (sid, dir),
            RNode {
                peer: nli,
                expires,
                old,
            },
        );
    }

    /// The node's routes changed: re-query every session we hold routing
    /// state for as querier. `local_for` gives our address towards a
    /// destination (for the Query's NLI).
    pub fn routes_changed(&mut self, now: Instant, local_for: impl Fn(Ipv4Addr) -> Ipv4Addr) {
        self.cookies.rotate_to(now);
        // The next hop of any flow may differ now (`reuse_peers`); who
        // queries us does not depend on our routes.
        self.known.forget_next_hops();
        let keys: Vec<_> = self.q.keys().copied().collect();
        for key in keys {
            let Some(mut node) = self.q.remove(&key) else {
                continue;
            };
            let peer_expires = match &node.state {
                QState::Established { peer, expires, .. }
                | QState::Refreshing { peer, expires, .. } => Some((peer.clone(), *expires)),
                // Still looking for a first peer: the retransmissions
                // follow the new routes anyway.
                QState::Waiting(_) => None,
            };
            if let Some((peer, expires)) = peer_expires {
                let cookie = self.cookies.next_query_cookie();
                let mut query = Querying::new(now, self.cfg.t1, cookie.clone());
                query.limit = self.cfg.probe;
                node.state = QState::Refreshing {
                    peer,
                    expires,
                    query,
                };
                let target = match node.dir {
                    Direction::Downstream => node.flow.dst,
                    Direction::Upstream => node.flow.src,
                };
                self.push_query(node.flow, node.dir, key.0, local_for(target), cookie);
            }
            self.q.insert(key, node);
        }
    }

    /// Queues D-mode Data for `peer` itself, whatever the routing state
    /// says: answers go to the upstream peer the NSLP's state names (a node
    /// of an old branch may have re-queried since), and the tear of a
    /// branch the path no longer takes to the peer on it (which still holds
    /// our routing state until it expires).
    #[allow(clippy::too_many_arguments)]
    pub fn send_to(
        &mut self,
        peer: Ipv4Addr,
        sid: Sid,
        flow: Flow,
        dir: Direction,
        local: Ipv4Addr,
        nslp_data: Vec<u8>,
        sign: bool,
    ) {
        let ttl = match dir {
            Direction::Downstream => self.cfg.ip_ttl,
            Direction::Upstream => self.cfg.reply_ttl(),
        };
        self.push_data(peer, ttl, sid, flow, dir, local, nslp_data, sign);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Event, Msg};
    use super::*;
    use std::net::SocketAddrV4;
    use std::time::Duration;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
    const FLOW: Flow = Flow {
        src: A,
        dst: Ipv4Addr::new(10, 9, 9, 9),
        protocol: 17,
    };
    const SID: Sid = [7; 16];

    fn node(id: u8) -> Gist {
        Gist::new(Config {
            peer_id: [id; 16],
            secret: [id; 32],
            ..Config::default()
        })
    }

    /// Delivers everything `from` sends to `to` and back until both are
    /// quiet (one link between them; `to` answers as `to_addr`).
    fn exchange(now: Instant, a: &mut Gist, b: &mut Gist, b_addr: Ipv4Addr) {
        loop {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                moved = true;
                b.handle(now, SocketAddrV4::new(A, 270), b_addr, t.msg);
            }
            while let Some(t) = b.poll_transmit() {
                moved = true;
                a.handle(now, SocketAddrV4::new(b_addr, 270), A, t.msg);
            }
            if !moved {
                break;
            }
        }
    }

    fn established(now: Instant) -> (Gist, Gist) {
        let (mut a, mut b) = (node(1), node(2));
        a.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"RESERVE".to_vec(),
            true,
        );
        exchange(now, &mut a, &mut b, B);
        while b.poll_event().is_some() {}
        (a, b)
    }

    #[test]
    fn route_change_requeries_and_reports_the_new_peer() {
        let now = Instant::now();
        let (mut a, _b) = established(now);
        let mut c = node(3);
        a.routes_changed(now, |_| A);
        let q = a.poll_transmit().expect("a Query at once");
        assert!(q.qmode && matches!(q.msg, Msg::Query { .. }));
        // The new route leads to C, which answers.
        c.handle(now, SocketAddrV4::new(A, 270), C, q.msg);
        let r = c.poll_transmit().unwrap();
        a.handle(now, SocketAddrV4::new(C, 270), A, r.msg);
        assert_eq!(
            a.poll_event(),
            Some(Event::PathChanged {
                sid: SID,
                flow: FLOW,
                dir: Direction::Downstream,
                old_peer: B,
                new_peer: C,
            })
        );
        // Data now go to C, in D-mode, after the Confirm.
        assert!(matches!(
            a.poll_transmit().unwrap().msg,
            Msg::Confirm { .. }
        ));
        a.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"X".to_vec(),
            false,
        );
        assert_eq!(*a.poll_transmit().unwrap().dst.ip(), C);
    }

    #[test]
    fn same_peer_after_a_route_change_is_no_path_change() {
        let now = Instant::now();
        let (mut a, mut b) = established(now);
        a.routes_changed(now, |_| A);
        exchange(now, &mut a, &mut b, B);
        assert_eq!(a.poll_event(), None);
    }

    #[test]
    fn periodic_requery_answered_by_another_peer_is_a_path_change() {
        let now = Instant::now();
        let (mut a, _b) = established(now);
        let mut c = node(3);
        let at = a.poll_timeout().unwrap();
        a.send(
            at,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"R".to_vec(),
            false,
        );
        while a.poll_transmit().is_some() {}
        a.handle_timeout(at, |_| A);
        let q = a.poll_transmit().expect("the refresh Query");
        c.handle(at, SocketAddrV4::new(A, 270), C, q.msg);
        let r = c.poll_transmit().unwrap();
        a.handle(at, SocketAddrV4::new(C, 270), A, r.msg);
        assert!(matches!(
            a.poll_event(),
            Some(Event::PathChanged { new_peer: C, .. })
        ));
    }

    #[test]
    fn unanswered_probe_loses_the_peer_within_the_probe_time() {
        let start = Instant::now();
        let (mut a, _b) = established(start);
        a.routes_changed(start, |_| A);
        let mut now = start;
        let mut queries = 0;
        loop {
            while let Some(t) = a.poll_transmit() {
                assert!(matches!(t.msg, Msg::Query { .. }));
                queries += 1;
            }
            if let Some(ev) = a.poll_event() {
                assert!(matches!(ev, Event::PeerLost { .. }));
                break;
            }
            now = a.poll_timeout().unwrap();
            assert!(now - start <= Duration::from_millis(1500), "given up late");
            a.handle_timeout(now, |_| A);
        }
        assert_eq!(queries, 2, "the Query and one retransmission");
        assert_eq!(now - start, Duration::from_millis(1500));
    }

    /// Issue 15's repair back: a querier re-running its handshake (its
    /// state too old to trust, or swapped behind a Confirm) took its old
    /// peer's upstream Data as from a stranger and answered "No Routing
    /// State", so the RESPONSE to an earlier RESERVE was lost.
    #[test]
    fn a_querier_in_a_new_handshake_takes_its_previous_peers_answer() {
        let now = Instant::now();
        let (mut a, mut b) = established(now);
        let later = now + Duration::from_secs(31);
        a.send(
            later,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"RESERVE".to_vec(),
            false,
        );
        assert!(matches!(a.poll_transmit().unwrap().msg, Msg::Query { .. }));
        // B's RESPONSE to the earlier RESERVE arrives meanwhile.
        b.send(
            later,
            SID,
            FLOW,
            Direction::Upstream,
            B,
            b"RESPONSE".to_vec(),
            false,
        );
        let t = b.poll_transmit().unwrap();
        assert_eq!(*t.dst.ip(), A);
        a.handle(later, SocketAddrV4::new(B, 270), A, t.msg);
        assert!(a.poll_transmit().is_none(), "no No Routing State");
        assert_eq!(a.counters().no_routing_state_sent, 0);
        assert!(matches!(
            a.poll_event(),
            Some(Event::Received { nslp_data, .. }) if nslp_data == b"RESPONSE"
        ));
        // A stranger's Data is still refused.
        let mut c = node(3);
        c.send_to(A, SID, FLOW, Direction::Upstream, C, b"X".to_vec(), false);
        a.handle(
            later,
            SocketAddrV4::new(C, 270),
            A,
            c.poll_transmit().unwrap().msg,
        );
        assert!(matches!(
            a.poll_transmit().unwrap().msg,
            Msg::NoRoutingState { .. }
        ));
        assert_eq!(a.counters().no_routing_state_sent, 1);
    }

    /// Issue 15: where the new path merges with the old one, the old
    /// branch's Data were refused once the new peer confirmed, the old peer
    /// re-queried and took the state back, and the two flipped the state to
    /// and fro, each flip a lost refresh.
    #[test]
    fn a_merge_point_takes_data_from_the_old_and_the_new_upstream_peer() {
        let now = Instant::now();
        let (mut a, mut b) = established(now);
        // C, on the new path, queries B too.
        let mut c = node(3);
        c.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            C,
            b"RESERVE".to_vec(),
            false,
        );
        loop {
            let mut moved = false;
            while let Some(t) = c.poll_transmit() {
                moved = true;
                b.handle(now, SocketAddrV4::new(C, 270), B, t.msg);
            }
            while let Some(t) = b.poll_transmit() {
                moved = true;
                c.handle(now, SocketAddrV4::new(B, 270), C, t.msg);
            }
            if !moved {
                break;
            }
        }
        while b.poll_event().is_some() {}
        // A's (the old branch's) refresh is still taken.
        a.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"REFRESH".to_vec(),
            false,
        );
        let t = a.poll_transmit().unwrap();
        b.handle(now, SocketAddrV4::new(A, 270), B, t.msg);
        assert!(b.poll_transmit().is_none(), "no No Routing State");
        assert!(matches!(
            b.poll_event(),
            Some(Event::Received { nslp_data, .. }) if nslp_data == b"REFRESH"
        ));
        // Answers go to the newest peer.
        b.send(
            now,
            SID,
            FLOW,
            Direction::Upstream,
            B,
            b"RESPONSE".to_vec(),
            false,
        );
        assert_eq!(*b.poll_transmit().unwrap().dst.ip(), C);
        // Once the old state expired, the old peer is refused.
        let later = now + Duration::from_secs(31);
        a.send(
            later,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"LATE".to_vec(),
            false,
        );
        let _ = a.poll_transmit(); // its Query (state too old)
        let data = Msg::Data {
            flow: FLOW,
            dir: Direction::Downstream,
            sid: SID,
            nli: None,
            nslp_data: b"LATE".to_vec(),
        };
        b.handle(later, SocketAddrV4::new(A, 270), B, data);
        assert!(matches!(
            b.poll_transmit().unwrap().msg,
            Msg::NoRoutingState { .. }
        ));
    }

    #[test]
    fn send_to_goes_to_the_named_peer() {
        let now = Instant::now();
        let (mut a, _b) = established(now);
        a.send_to(
            C,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"TEAR".to_vec(),
            true,
        );
        let t = a.poll_transmit().unwrap();
        assert_eq!(t.dst, SocketAddrV4::new(C, 270));
        assert!(!t.qmode && t.sign);
        assert!(matches!(t.msg, Msg::Data { .. }));
    }
}
