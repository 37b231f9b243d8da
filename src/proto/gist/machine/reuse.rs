//! Optional, off by default (`reuse_peers`, `VLSP_GIST_REUSE_PEERS=1`;
//! issue 17): routing state reused by later sessions of the same flow.
//!
//! RFC 5971 keeps routing state per session, so every session's first
//! message waits for a Query/Response/Confirm round on every hop. A path-
//! coupled flow's next GIST hop depends on the flow, not on the session:
//! once a handshake for a flow has finished, a querier may send a later
//! session's first Data straight to that peer in D-mode (with its NLI), and
//! the responder, which confirmed that querier for the flow, takes it and
//! installs routing state for the new session as if it had been confirmed.
//!
//! What bounds it:
//! - an entry lives as long as the routing state of the handshake that made
//!   it (until its refresh is due at the querier; our RS-Validity-Time from
//!   the Confirm at the responder), and only a real handshake makes or
//!   renews one; each map holds at most [`CAP`] entries;
//! - a route change drops every flow's next peer (it may differ now);
//! - a peer that answers data sent on a known peer with "No Routing State"
//!   is dropped and kept out for T2, and the data go again after a
//!   handshake: a peer without the option costs one round trip per T2. A
//!   "No Routing State" that answers nothing of the kind changes nothing
//!   here (with the option off, nothing at all);
//! - a responder takes such Data only for a session it holds no state for,
//!   from the address and peer identity it confirmed for that flow and
//!   direction. What this gives up is the Responder-Cookie's proof that a
//!   new session's querier receives at its address: a sender that spoofs a
//!   confirmed peer can make routing state for new sessions (never
//!   reservations: the NSLP checks every RESERVE's HMAC).
//!
//! D-mode only (`node::config` leaves it off for C-mode): Data over a
//! messaging association carry no NLI to match the confirmed peer by.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{Direction, Flow, Gist, Nli, QNode, QState, Sid};

/// At most this many entries per map: past it, expired entries are dropped
/// (at most once per [`PRUNE_EVERY`]) and a full map learns nothing new.
const CAP: usize = 4096;
const PRUNE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Known {
    peer: Nli,
    refresh_at: Instant,
    expires: Instant,
}

/// Peers of finished handshakes, by flow and the direction we send in
/// (querier) or the direction the peer's messages travel (responder).
#[derive(Debug, Default)]
pub(super) struct KnownPeers {
    downstream_of: HashMap<(Flow, Direction), Known>,
    confirmed: HashMap<(Flow, Direction), Known>,
    /// Peers that answered data sent on a known peer with "No Routing
    /// State", not reused until then: a peer without the option would
    /// refuse every new session.
    refused: HashMap<Ipv4Addr, Instant>,
    pruned: Option<Instant>,
}

/// Inserts unless `map` is full of live entries (expired ones are dropped
/// first, at most once per [`PRUNE_EVERY`], by the caller's `pruned`).
fn insert<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    pruned: &mut Option<Instant>,
    now: Instant,
    live: impl Fn(&V) -> bool,
    key: K,
    value: V,
) {
    if map.len() >= CAP && !map.contains_key(&key) {
        if pruned.is_some_and(|t| now.saturating_duration_since(t) < PRUNE_EVERY) {
            return;
        }
        *pruned = Some(now);
        map.retain(|_, v| live(v));
        if map.len() >= CAP {
            return;
        }
    }
    map.insert(key, value);
}

impl KnownPeers {
    /// Forgets every flow's next peer (the routes changed).
    pub(super) fn forget_next_hops(&mut self) {
        self.downstream_of.clear();
    }
}

impl Gist {
    /// Our handshake for `flow` towards `dir` finished with `peer`.
    pub(super) fn learn_queried_peer(
        &mut self,
        now: Instant,
        flow: Flow,
        dir: Direction,
        peer: &Nli,
        refresh_at: Instant,
        expires: Instant,
    ) {
        let refused = self.known.refused.get(&peer.addr).is_some_and(|t| now < *t);
        if self.cfg.reuse_peers && !refused {
            let k = Known {
                peer: peer.clone(),
                refresh_at,
                expires,
            };
            let m = &mut self.known;
            let live = |k: &Known| k.expires > now;
            insert(
                &mut m.downstream_of,
                &mut m.pruned,
                now,
                live,
                (flow, dir),
                k,
            );
        }
    }

    /// A Confirm from `peer` for `flow`, its messages travelling `dir`,
    /// installed our routing state.
    pub(super) fn learn_confirmed_peer(
        &mut self,
        now: Instant,
        flow: Flow,
        dir: Direction,
        peer: &Nli,
    ) {
        if self.cfg.reuse_peers {
            let expires = now + self.cfg.rs_validity;
            let k = Known {
                peer: peer.clone(),
                refresh_at: expires,
                expires,
            };
            let m = &mut self.known;
            let live = |k: &Known| k.expires > now;
            insert(&mut m.confirmed, &mut m.pruned, now, live, (flow, dir), k);
        }
    }

    /// "No Routing State" from `src` for `sid`: when it answers data we
    /// sent on a known peer, that peer is forgotten and kept out for T2.
    pub(super) fn refused_known_peer(&mut self, now: Instant, sid: Sid, src: Ipv4Addr) {
        let ours = |d: Direction| {
            self.q
                .get(&(sid, d))
                .is_some_and(|n| n.on_known_peer && n.known_peer().is_some_and(|p| p.addr == src))
        };
        if !self.cfg.reuse_peers || !(ours(Direction::Downstream) || ours(Direction::Upstream)) {
            return;
        }
        let m = &mut self.known;
        m.downstream_of.retain(|_, k| k.peer.addr != src);
        let until = now + self.cfg.t2;
        insert(&mut m.refused, &mut m.pruned, now, |t| *t > now, src, until);
    }

    /// A new session's querier state for `flow` towards `dir`, established
    /// on the flow's known peer, if there is one: the caller sends on it as
    /// on any established state (and keeps the data for one T1, so a peer
    /// that lost its entry draws a handshake and a resend).
    pub(super) fn node_on_known_peer(
        &mut self,
        now: Instant,
        flow: Flow,
        dir: Direction,
    ) -> Option<QNode> {
        let k = self.known.downstream_of.get(&(flow, dir))?;
        if !self.cfg.reuse_peers || now >= k.refresh_at || now >= k.expires {
            return None;
        }
        let peer = k.peer.clone();
        // The session's own timers, from now: the peer installs its state
        // for it when the data arrive, valid for the time its NLI announced.
        let validity = Duration::from_millis(peer.rs_validity_ms as u64);
        let state = QState::Established {
            peer: peer.clone(),
            refresh_at: now + validity.mul_f32(0.75).max(self.cfg.t1),
            expires: now + validity,
        };
        let mut node = QNode::new(flow, dir, state, now);
        node.last_peer = Some(peer);
        node.on_known_peer = true;
        self.counters.sessions_on_known_peer += 1;
        Some(node)
    }

    /// Data of a session we hold no state for, from `src`: taken (and the
    /// session's routing state installed) when `src` with `nli` is the peer
    /// we confirmed for this flow and direction. A session with state of
    /// ours (another peer's) is never taken over this way.
    pub(super) fn adopt_from_known_peer(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        dir: Direction,
        src: Ipv4Addr,
        nli: Option<&Nli>,
    ) -> bool {
        let has_state =
            self.r.contains_key(&(sid, dir)) || self.q.contains_key(&(sid, super::opposite(dir)));
        if !self.cfg.reuse_peers || has_state {
            return false;
        }
        let Some(k) = self.known.confirmed.get(&(flow, dir)) else {
            return false;
        };
        // The NLI is required: it names the peer identity we confirmed.
        let Some(nli) = nli.filter(|n| **n == k.peer && src == k.peer.addr) else {
            return false;
        };
        if now >= k.expires {
            return false;
        }
        let nli = nli.clone();
        self.install_responder(now, sid, dir, nli);
        self.counters.sessions_adopted += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;
    use std::time::Duration;

    use super::super::tests::{A, B, FLOW, kind};
    use super::super::{Config, Event, Msg, Transmit};
    use super::*;

    const C: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 3);
    const DOWN: Direction = Direction::Downstream;

    fn node(id: u8, reuse: bool) -> Gist {
        Gist::new(Config {
            peer_id: [id; 16],
            secret: [id; 32],
            reuse_peers: reuse,
            ..Config::default()
        })
    }

    /// A (at `A`) sends `data` on session `sid`; everything runs between A
    /// and B until both are quiet. Returns the messages in the order sent.
    fn session(a: &mut Gist, b: &mut Gist, now: Instant, sid: Sid) -> Vec<&'static str> {
        a.send(now, sid, FLOW, DOWN, A, b"RESERVE".to_vec(), true);
        let mut log = vec![];
        loop {
            let from_a: Vec<Transmit> = std::iter::from_fn(|| a.poll_transmit()).collect();
            let from_b: Vec<Transmit> = std::iter::from_fn(|| b.poll_transmit()).collect();
            if from_a.is_empty() && from_b.is_empty() {
                return log;
            }
            for t in from_a {
                log.push(kind(&t.msg));
                b.handle(now, SocketAddrV4::new(A, 270), B, t.msg);
            }
            for t in from_b {
                log.push(kind(&t.msg));
                a.handle(now, SocketAddrV4::new(B, 270), A, t.msg);
            }
        }
    }

    fn delivered(b: &mut Gist) -> Vec<Sid> {
        std::iter::from_fn(|| b.poll_event())
            .filter_map(|e| match e {
                Event::Received { sid, .. } => Some(sid),
                _ => None,
            })
            .collect()
    }

    /// The second session of a flow sends its RESERVE at once as D-mode
    /// Data; the responder takes it and can answer upstream on it.
    #[test]
    fn a_later_session_of_the_flow_skips_the_handshake() {
        let (mut a, mut b) = (node(1, true), node(2, true));
        let now = Instant::now();
        let log = session(&mut a, &mut b, now, [1; 16]);
        assert_eq!(log, ["Query", "Response", "Confirm", "Data"]);
        assert_eq!(delivered(&mut b), [[1; 16]]);

        let later = now + Duration::from_secs(1);
        let log = session(&mut a, &mut b, later, [2; 16]);
        assert_eq!(log, ["Data"], "no handshake for the second session");
        assert_eq!(delivered(&mut b), [[2; 16]]);
        assert_eq!(a.counters().sessions_on_known_peer, 1);
        assert_eq!(b.counters().sessions_adopted, 1);
        // B has routing state for the new session: its answer goes upstream.
        b.send(
            later,
            [2; 16],
            FLOW,
            Direction::Upstream,
            B,
            b"RESPONSE".to_vec(),
            true,
        );
        let t = b.poll_transmit().expect("the RESPONSE is sent");
        assert!(matches!(t.msg, Msg::Data { .. }));
        assert_eq!(*t.dst.ip(), A);
    }

    /// Off (the default, and the paper's NSIS-ka): every session has its
    /// own handshake, and Data for an unknown session draws "No Routing
    /// State" even from a confirmed peer.
    #[test]
    fn off_by_default_every_session_has_its_handshake() {
        let (mut a, mut b) = (node(1, false), node(2, false));
        let now = Instant::now();
        session(&mut a, &mut b, now, [1; 16]);
        let log = session(&mut a, &mut b, now, [2; 16]);
        assert_eq!(log, ["Query", "Response", "Confirm", "Data"]);

        // A with reuse towards B without it: B refuses, A handshakes and
        // sends the data again.
        let (mut a, mut b) = (node(1, true), node(2, false));
        session(&mut a, &mut b, now, [1; 16]);
        delivered(&mut b);
        let log = session(&mut a, &mut b, now, [2; 16]);
        assert_eq!(
            log,
            [
                "Data",
                "NoRoutingState",
                "Query",
                "Response",
                "Confirm",
                "Data"
            ]
        );
        assert_eq!(
            delivered(&mut b),
            [[2; 16]],
            "delivered once, after the handshake"
        );
        // A keeps B out for T2: the third session handshakes at once (B
        // would refuse it again).
        let log = session(&mut a, &mut b, now, [3; 16]);
        assert_eq!(log, ["Query", "Response", "Confirm", "Data"]);
    }

    /// Hostile: Data for a new session from another address, or from the
    /// confirmed address with another peer identity or without an NLI, or
    /// after the confirmed state's validity, installs nothing.
    #[test]
    fn only_the_confirmed_peer_is_taken_and_only_while_its_state_lasts() {
        let (mut a, mut b) = (node(1, true), node(2, true));
        let now = Instant::now();
        session(&mut a, &mut b, now, [1; 16]);
        delivered(&mut b);
        let a_nli = Nli {
            peer_id: [1; 16],
            ip_ttl: 64,
            rs_validity_ms: 30_000,
            addr: A,
        };
        let forged = |src: Ipv4Addr, nli: Option<Nli>, sid: u8| {
            (
                SocketAddrV4::new(src, 270),
                Msg::Data {
                    flow: FLOW,
                    dir: DOWN,
                    sid: [sid; 16],
                    nli,
                    nslp_data: b"RESERVE".to_vec(),
                },
            )
        };
        let other_id = Nli {
            peer_id: [7; 16],
            ..a_nli.clone()
        };
        let from_c = Nli {
            addr: C,
            ..a_nli.clone()
        };
        let late = now + Duration::from_secs(31);
        for (at, (src, msg)) in [
            (now, forged(C, Some(from_c), 3)),
            (now, forged(A, Some(other_id), 4)),
            (now, forged(A, None, 5)),
            (late, forged(A, Some(a_nli.clone()), 6)),
        ] {
            b.handle(at, src, B, msg);
            let t = b.poll_transmit().expect("an answer");
            assert!(matches!(t.msg, Msg::NoRoutingState { .. }), "refused");
        }
        assert!(delivered(&mut b).is_empty(), "nothing delivered");
        assert_eq!(b.counters().sessions_adopted, 0);
        assert_eq!(b.session_count(), 1, "only the confirmed session");
        // The genuine peer within the validity is taken.
        let (src, msg) = forged(A, Some(a_nli), 7);
        b.handle(now, src, B, msg);
        assert_eq!(delivered(&mut b), [[7; 16]]);
    }

    /// Hostile: a "No Routing State" that answers no data sent on a known
    /// peer (spoofed, or with the option off) records nothing; Data for a
    /// session that has state with another peer is not taken over.
    #[test]
    fn stray_refusals_record_nothing_and_sessions_are_not_taken_over() {
        for reuse in [false, true] {
            let mut a = node(1, reuse);
            let now = Instant::now();
            for i in 0..100u8 {
                let nrs = Msg::NoRoutingState {
                    flow: FLOW,
                    dir: DOWN,
                    sid: [i; 16],
                    nli: Nli {
                        peer_id: [i; 16],
                        ip_ttl: 64,
                        rs_validity_ms: 30_000,
                        addr: Ipv4Addr::new(10, 0, 0, i),
                    },
                };
                a.handle(
                    now,
                    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 270),
                    A,
                    nrs,
                );
            }
            assert!(a.known.refused.is_empty(), "reuse {reuse}");
        }
        // B holds session 1 with A; C (confirmed for the flow by session 2)
        // sends Data for session 1: refused, session 1 stays A's.
        let (mut a, mut b, mut c) = (node(1, true), node(2, true), node(3, true));
        let now = Instant::now();
        session(&mut a, &mut b, now, [1; 16]);
        c.send(now, [2; 16], FLOW, DOWN, C, b"RESERVE".to_vec(), true);
        let q = c.poll_transmit().unwrap().msg;
        b.handle(now, SocketAddrV4::new(C, 270), B, q);
        let r = b.poll_transmit().unwrap().msg;
        c.handle(now, SocketAddrV4::new(B, 270), C, r);
        let conf = c.poll_transmit().unwrap().msg;
        b.handle(now, SocketAddrV4::new(C, 270), B, conf);
        delivered(&mut b);
        while b.poll_transmit().is_some() {}
        let c_nli = Nli {
            peer_id: [3; 16],
            ip_ttl: 64,
            rs_validity_ms: 30_000,
            addr: C,
        };
        let data = Msg::Data {
            flow: FLOW,
            dir: DOWN,
            sid: [1; 16],
            nli: Some(c_nli),
            nslp_data: b"RESERVE".to_vec(),
        };
        b.handle(now, SocketAddrV4::new(C, 270), B, data);
        assert!(delivered(&mut b).is_empty());
        assert_eq!(b.counters().sessions_adopted, 0);
        assert_eq!(b.r[&([1; 16], DOWN)].peer.addr, A, "still A's");
    }

    /// Each map holds at most CAP live entries; expired ones make room.
    #[test]
    fn maps_are_bounded() {
        let now = Instant::now();
        let (mut m, mut pruned) = (HashMap::new(), None);
        for i in 0..(CAP as u32 + 100) {
            insert(
                &mut m,
                &mut pruned,
                now,
                |t: &Instant| *t > now,
                i,
                now + Duration::from_secs(1),
            );
        }
        assert_eq!(m.len(), CAP);
        let later = now + Duration::from_secs(2);
        insert(
            &mut m,
            &mut pruned,
            later,
            |t: &Instant| *t > later,
            0xffff_ffff,
            later + Duration::from_secs(1),
        );
        assert_eq!(m.len(), 1, "the expired ones went");
    }

    /// After a route change the next hop may differ: a new session
    /// handshakes again, and so does one after the peer's validity.
    #[test]
    fn route_changes_and_expiry_bring_the_handshake_back() {
        let (mut a, mut b) = (node(1, true), node(2, true));
        let now = Instant::now();
        session(&mut a, &mut b, now, [1; 16]);
        a.routes_changed(now, |_| A);
        // Session 1's re-query is lost here (it would renew the peer).
        while a.poll_transmit().is_some() {}
        let log = session(&mut a, &mut b, now, [2; 16]);
        assert_eq!(log, ["Query", "Response", "Confirm", "Data"]);
        // Past 0.75 of the peer's validity (when its own state would be
        // refreshed): handshake.
        let later = now + Duration::from_secs(23);
        let log = session(&mut a, &mut b, later, [3; 16]);
        assert_eq!(log, ["Query", "Response", "Confirm", "Data"]);
    }
}
