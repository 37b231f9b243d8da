//! GIST's message-routing and handshake logic (RFC 5971 §4, §5.3), sans-IO:
//! datagrams, NSLP send requests and the current time go in; datagrams to
//! send, NSLP messages to deliver, and peer-loss notices come out. No sockets
//! and no clock inside, so every behaviour (handshake, retransmission with
//! back-off, delayed state installation, cookie checks, routing-state expiry,
//! "No Routing State" errors) is tested in memory with a simulated network.
//!
//! What one node does, for one session and direction:
//! - **Querier** (the node sending downstream without routing state): sends a
//!   Q-mode Query towards the flow's destination with a fresh Query-Cookie,
//!   keeps the NSLP data queued, retransmits the Query after T1, 2·T1, … up to
//!   T2, and gives up with [`Event::PeerLost`]. On a Response with the right
//!   cookie it installs routing state (the peer's NLI), sends the Confirm
//!   (echoing the Responder-Cookie) and then the queued data in D-mode.
//! - **Responder** (a node that intercepts a Query or is its destination):
//!   answers with a Response carrying a Responder-Cookie that it can check
//!   later without keeping any state (delayed state installation); installs
//!   routing state only when a Confirm returns a valid cookie.
//! - **Routing-state refresh** (RFC 5971 §4.4.3): the querier repeats the
//!   handshake before the responder's copy of the state expires, while data
//!   still go to the known peer. Without it, every NSLP refresh sent after
//!   the RS-Validity-Time met a responder without state, went through a new
//!   handshake, and a Data overtaking its Confirm drew "No Routing State".
//!   State the NSLP has stopped using is let lapse instead of refreshed.
//! - Data from a peer without routing state is answered with the GIST Error
//!   "No Routing State" (code 5).
//!
//! Directions follow RFC 5971's D flag: every [`Msg`] carries the direction
//! it travels, so a Response to a downstream Query is upstream (NSIS-ka
//! agrees, see the captured vectors). The flip lives here, not in the codec,
//! which maps `dir` to the MRI's D flag one to one.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

pub use super::cookie::Counters;
use super::cookie::{CookieError, CookieInput, Cookies};
use super::session::opposite;
pub use super::session::{Direction, Flow, Nli, Sid};
use crate::wire::profile::Profile;

mod config;
mod early_data;
mod reroute;
mod reuse;
mod state;

pub use config::Config;
use early_data::HeldData;
use state::{QNode, QState, Querying, RNode};

/// The GIST messages this machine exchanges, without wire detail. In every
/// variant `dir` is the direction the message itself travels (the MRI's D
/// flag on the wire, RFC 5971 §5.8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Query {
        flow: Flow,
        /// The direction the querier looks for a peer in.
        dir: Direction,
        sid: Sid,
        nli: Nli,
        query_cookie: Vec<u8>,
        /// NSLP data sent with the Query (RFC 5971 §5.1: allowed; only in
        /// the optional `data_in_query` mode, NSIS-ka's
        /// `send-data-in-query`).
        nslp_data: Option<Vec<u8>>,
    },
    Response {
        flow: Flow,
        /// The opposite of the Query's: a Response travels back to the
        /// querier.
        dir: Direction,
        sid: Sid,
        nli: Nli,
        query_cookie: Vec<u8>,
        responder_cookie: Vec<u8>,
    },
    Confirm {
        flow: Flow,
        /// The Query's direction (querier to responder again).
        dir: Direction,
        sid: Sid,
        nli: Nli,
        responder_cookie: Vec<u8>,
    },
    Data {
        flow: Flow,
        /// The direction the NSLP sends in.
        dir: Direction,
        sid: Sid,
        nli: Option<Nli>,
        nslp_data: Vec<u8>,
    },
    /// "No Routing State" for a Data message of `sid`. `flow` and `dir` are
    /// those of the Data that found no state (the Error object quotes its
    /// MRI as received; unspecified and downstream when a peer's Error does
    /// not), not of the Error, which goes back to its sender.
    NoRoutingState {
        flow: Flow,
        dir: Direction,
        sid: Sid,
        nli: Nli,
    },
}

impl Msg {
    /// The session the message belongs to.
    pub fn sid(&self) -> Sid {
        match self {
            Self::Query { sid, .. }
            | Self::Response { sid, .. }
            | Self::Confirm { sid, .. }
            | Self::Data { sid, .. }
            | Self::NoRoutingState { sid, .. } => *sid,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddrV4,
    /// Q-mode: send with the Router Alert option to the flow's address.
    pub qmode: bool,
    pub ttl: u8,
    pub msg: Msg,
    /// The NSLP asked for the auth objects it created to be signed.
    pub sign: bool,
}

/// What the machine tells the NSLP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// NSLP data arrived from a peer.
    Received {
        sid: Sid,
        flow: Flow,
        /// The direction the message travelled.
        dir: Direction,
        peer: Ipv4Addr,
        nslp_data: Vec<u8>,
    },
    /// No GIST peer answered our Queries for this session: the path is
    /// broken or the next NSIS node is down.
    PeerLost {
        sid: Sid,
        flow: Flow,
        dir: Direction,
        /// Messages that could not be delivered.
        dropped: usize,
    },
    /// A peer told us it has no routing state for our Data; we re-query.
    RoutingStateLost { sid: Sid, peer: Ipv4Addr },
    /// A re-Query (periodic, or after a route change) was answered by
    /// another peer than before: the path changed (RFC 5971 §7.1, the
    /// NetworkNotification "routing state changed").
    PathChanged {
        sid: Sid,
        flow: Flow,
        dir: Direction,
        old_peer: Ipv4Addr,
        new_peer: Ipv4Addr,
    },
}

/// The per-node GIST state machine.
pub struct Gist {
    cfg: Config,
    /// Querying node state, by session and direction we send in.
    q: HashMap<(Sid, Direction), QNode>,
    /// Responding node state: the peer that queried us, by session and the
    /// direction its messages travel.
    r: HashMap<(Sid, Direction), RNode>,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    cookies: Cookies,
    counters: Counters,
    /// Sessions whose Query delivered data before the Confirm (by session
    /// and the Query's direction), with what our NSLP sends back towards
    /// the querier meanwhile: sent once the Confirm installs the state.
    held: HashMap<(Sid, Direction), Vec<HeldData>>,
    /// Peers of finished handshakes by flow (`reuse_peers`).
    known: reuse::KnownPeers,
}

impl Gist {
    pub fn new(cfg: Config) -> Self {
        Self {
            cookies: Cookies::new(&cfg.secret, cfg.query_cookie_len(), cfg.cookie_rotation),
            cfg,
            q: HashMap::new(),
            r: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            held: HashMap::new(),
            known: reuse::KnownPeers::default(),
        }
    }

    /// Handshake refusals so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Queues D-mode Data for `peer`, with our NLI, sent with IP TTL `ttl`.
    #[allow(clippy::too_many_arguments)]
    fn push_data(
        &mut self,
        peer: Ipv4Addr,
        ttl: u8,
        sid: Sid,
        flow: Flow,
        dir: Direction,
        local: Ipv4Addr,
        nslp_data: Vec<u8>,
        sign: bool,
    ) {
        let nli = Some(self.nli(local));
        self.out.push_back(Transmit {
            dst: SocketAddrV4::new(peer, crate::model::ports::GIST_PORT),
            qmode: false,
            ttl,
            msg: Msg::Data {
                flow,
                dir,
                sid,
                nli,
                nslp_data,
            },
            sign,
        });
    }

    fn nli(&self, local: Ipv4Addr) -> Nli {
        Nli {
            peer_id: self.cfg.peer_id,
            ip_ttl: self.cfg.ip_ttl,
            rs_validity_ms: self.cfg.rs_validity.as_millis() as u32,
            addr: local,
        }
    }

    /// Queues NSLP data for the next GIST peer of `sid` in direction `dir`.
    /// `local` is this node's address towards that peer (for the NLI).
    /// Upstream data go to the peer that queried us; downstream data to the
    /// peer found by our own Query.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        dir: Direction,
        local: Ipv4Addr,
        nslp_data: Vec<u8>,
        sign: bool,
    ) {
        // A peer that queried us towards `opposite(dir)` is our next hop in
        // `dir`: e.g. for an upstream RESPONSE, the node that sent the Query.
        if let Some(r) = self.r.get(&(sid, opposite(dir))) {
            let peer = r.peer.addr;
            let ttl = self.cfg.reply_ttl();
            self.push_data(peer, ttl, sid, flow, dir, local, nslp_data, sign);
            return;
        }
        let Some(nslp_data) = self.hold(sid, flow, dir, local, nslp_data, sign) else {
            return;
        };
        if dir == Direction::Upstream {
            // Nobody queried us for this session: there is no upstream peer.
            self.events.push_back(Event::PeerLost {
                sid,
                flow,
                dir,
                dropped: 1,
            });
            return;
        }
        let key = (sid, dir);
        // A new session of a flow whose peer is known (`reuse_peers`) starts
        // established on that peer.
        let node = self
            .q
            .remove(&key)
            .or_else(|| self.node_on_known_peer(now, flow, dir));
        let node = match node {
            Some(mut node) => {
                node.last_used = now;
                if let Some(addr) = node.usable_peer(now).map(|p| p.addr) {
                    let ttl = self.cfg.ip_ttl;
                    node.keep_sent(&nslp_data, sign, now, now + self.cfg.t1);
                    self.push_data(addr, ttl, sid, flow, dir, local, nslp_data, sign);
                    self.q.insert(key, node);
                    return;
                }
                match node.state {
                    // A refresh whose old peer may have forgotten us: wait
                    // for its Response like for a first one.
                    QState::Refreshing { query, .. } => node.state = QState::Waiting(query),
                    QState::Waiting(_) => {}
                    // State too old to trust: run the handshake again.
                    QState::Established { .. } => {
                        let cookie = self.cookies.next_query_cookie();
                        node.state =
                            QState::Waiting(Querying::new(now, self.cfg.t1, cookie.clone()));
                        self.push_query(flow, dir, sid, local, cookie);
                    }
                }
                node
            }
            None => {
                let cookie = self.cookies.next_query_cookie();
                self.push_query(flow, dir, sid, local, cookie.clone());
                let state = QState::Waiting(Querying::new(now, self.cfg.t1, cookie));
                let mut node = QNode::new(flow, dir, state, now);
                if self.cfg.data_in_query {
                    self.attach_to_query(&nslp_data, sign);
                    node.in_query = Some((nslp_data, sign));
                    self.q.insert(key, node);
                    return;
                }
                node
            }
        };
        let mut node = node;
        node.queue.push_back((nslp_data, sign));
        self.q.insert(key, node);
    }

    fn push_query(
        &mut self,
        flow: Flow,
        dir: Direction,
        sid: Sid,
        local: Ipv4Addr,
        cookie: Vec<u8>,
    ) {
        let target = match dir {
            Direction::Downstream => flow.dst,
            Direction::Upstream => flow.src,
        };
        let nli = self.nli(local);
        self.out.push_back(Transmit {
            dst: SocketAddrV4::new(target, crate::model::ports::GIST_PORT),
            qmode: true,
            ttl: self.cfg.ip_ttl,
            msg: Msg::Query {
                flow,
                dir,
                sid,
                nli,
                query_cookie: cookie,
                nslp_data: None,
            },
            sign: false,
        });
    }

    /// Handles a decoded GIST message received from `src`. `local` is this
    /// node's address on the interface towards `src`.
    pub fn handle(&mut self, now: Instant, src: SocketAddrV4, local: Ipv4Addr, msg: Msg) {
        self.cookies.rotate_to(now);
        match msg {
            Msg::Query {
                flow,
                dir,
                sid,
                nli,
                query_cookie,
                nslp_data,
            } => {
                let responder_cookie = self.cookies.responder_cookie(&CookieInput {
                    flow: &flow,
                    dir,
                    sid: &sid,
                    querier: &nli,
                    local,
                });
                let mut me = self.nli(local);
                if self.cfg.profile == Profile::NsisKa {
                    me.ip_ttl = 0; // what NSIS-ka's Responses carry
                }
                // The Response goes to the querier's NLI address, to the
                // port the Query came from, back the way the Query came.
                self.out.push_back(Transmit {
                    dst: SocketAddrV4::new(nli.addr, src.port()),
                    qmode: false,
                    ttl: self.cfg.reply_ttl(),
                    msg: Msg::Response {
                        flow,
                        dir: opposite(dir),
                        sid,
                        nli: me,
                        query_cookie,
                        responder_cookie,
                    },
                    sign: false,
                });
                if let Some(nslp_data) = nslp_data {
                    // RFC 5971 §5.1: handed to the NSLP at once.
                    self.hold_answers(sid, dir);
                    self.events.push_back(Event::Received {
                        sid,
                        flow,
                        dir,
                        peer: nli.addr,
                        nslp_data,
                    });
                }
            }
            Msg::Response {
                flow,
                dir,
                sid,
                nli,
                query_cookie,
                responder_cookie,
            } => {
                // The Response travels against our Query.
                let key = (sid, opposite(dir));
                let Some(node) = self.q.get_mut(&key) else {
                    return; // not ours, or already answered: drop silently
                };
                let dir = node.dir;
                match &node.state {
                    QState::Waiting(q) | QState::Refreshing { query: q, .. }
                        if q.cookie == query_cookie => {}
                    _ => return,
                }
                let old = node.known_peer().map(|p| (p.addr, p.peer_id));
                if let Some((old_addr, old_id)) = old
                    && (old_addr != nli.addr || old_id != nli.peer_id)
                {
                    self.events.push_back(Event::PathChanged {
                        sid,
                        flow,
                        dir,
                        old_peer: old_addr,
                        new_peer: nli.addr,
                    });
                }
                let validity = Duration::from_millis(nli.rs_validity_ms as u64);
                let peer = nli.clone();
                // Refresh before the peer's state can expire (it counts
                // from the Confirm, which leaves after this instant); no
                // sooner than T1, so a tiny validity cannot spin.
                let refresh_at = now + validity.mul_f32(0.75).max(self.cfg.t1);
                let expires = now + validity;
                node.state = QState::Established {
                    peer: peer.clone(),
                    refresh_at,
                    expires,
                };
                node.in_query = None;
                node.last_peer = Some(peer.clone());
                let queued: Vec<_> = node.queue.drain(..).collect();
                node.keep_behind_confirm(queued.clone(), now + self.cfg.t1);
                let me = Nli {
                    peer_id: self.cfg.peer_id,
                    ip_ttl: self.cfg.ip_ttl,
                    rs_validity_ms: self.cfg.rs_validity.as_millis() as u32,
                    addr: local,
                };
                self.learn_queried_peer(now, flow, dir, &peer, refresh_at, expires);
                let dst = SocketAddrV4::new(peer.addr, crate::model::ports::GIST_PORT);
                self.out.push_back(Transmit {
                    dst,
                    qmode: false,
                    ttl: self.cfg.ip_ttl,
                    msg: Msg::Confirm {
                        flow,
                        dir,
                        sid,
                        nli: me.clone(),
                        responder_cookie,
                    },
                    sign: false,
                });
                for (nslp_data, sign) in queued {
                    self.out.push_back(Transmit {
                        dst,
                        qmode: false,
                        ttl: self.cfg.ip_ttl,
                        msg: Msg::Data {
                            flow,
                            dir,
                            sid,
                            nli: Some(me.clone()),
                            nslp_data,
                        },
                        sign,
                    });
                }
            }
            Msg::Confirm {
                flow,
                dir,
                sid,
                nli,
                responder_cookie,
            } => {
                let input = CookieInput {
                    flow: &flow,
                    dir,
                    sid: &sid,
                    querier: &nli,
                    local,
                };
                match self.cookies.check(&responder_cookie, &input) {
                    Ok(()) => {}
                    // Install nothing; the querier re-queries when its Data
                    // draws "No Routing State".
                    Err(CookieError::Stale) => {
                        self.counters.stale_cookie += 1;
                        return;
                    }
                    Err(CookieError::Forged) => {
                        self.counters.bad_cookie += 1;
                        return;
                    }
                }
                let peer = nli.addr;
                self.learn_confirmed_peer(now, flow, dir, &nli);
                self.install_responder(now, sid, dir, nli);
                self.release_held(sid, dir, peer);
            }
            Msg::Data {
                flow,
                dir,
                sid,
                nli,
                nslp_data,
            } => {
                let is = |p: &Nli| reroute::is_peer(p, *src.ip(), nli.as_ref());
                let from_known_peer = self.r.get(&(sid, dir)).is_some_and(|r| r.knows(now, is))
                    || self
                        .q
                        .get(&(sid, opposite(dir)))
                        .and_then(|n| n.last_peer.as_ref())
                        .is_some_and(is);
                let taken = from_known_peer
                    || self.adopt_from_known_peer(now, sid, flow, dir, *src.ip(), nli.as_ref());
                if !taken {
                    self.counters.no_routing_state_sent += 1;
                    let me = self.nli(local);
                    self.out.push_back(Transmit {
                        dst: SocketAddrV4::new(*src.ip(), crate::model::ports::GIST_PORT),
                        qmode: false,
                        ttl: self.cfg.ip_ttl,
                        msg: Msg::NoRoutingState {
                            flow,
                            dir,
                            sid,
                            nli: me,
                        },
                        sign: false,
                    });
                    return;
                }
                self.events.push_back(Event::Received {
                    sid,
                    flow,
                    dir,
                    peer: nli.map(|n| n.addr).unwrap_or(*src.ip()),
                    nslp_data,
                });
            }
            Msg::NoRoutingState { sid, .. } => {
                self.refused_known_peer(now, sid, *src.ip());
                self.resend_behind_confirm(now, sid, *src.ip(), local);
                // A peer we send Data to lost its state (e.g. it restarted):
                // forget ours so the next send re-runs the handshake. Matched
                // by session and peer only: whether a peer quotes the D flag
                // as received is not seen in NSIS-ka's captures.
                let before = self.q.len();
                self.q.retain(|(s, _), n| {
                    !(*s == sid && n.known_peer().is_some_and(|p| p.addr == *src.ip()))
                });
                if self.q.len() != before {
                    self.events.push_back(Event::RoutingStateLost {
                        sid,
                        peer: *src.ip(),
                    });
                }
            }
        }
    }

    /// Forgets everything about `sid` (the NSLP ended the session).
    pub fn forget(&mut self, sid: &Sid) {
        self.q.retain(|(s, _), _| s != sid);
        self.r.retain(|(s, _), _| s != sid);
        self.held.retain(|(s, _), _| s != sid);
    }

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let q = self.q.values().map(|n| match &n.state {
            QState::Waiting(q) => q.next_retx,
            QState::Established { refresh_at, .. } => *refresh_at,
            QState::Refreshing { expires, query, .. } => query.next_retx.min(*expires),
        });
        let r = self.r.values().map(|n| n.expires);
        q.chain(r).min()
    }

    /// Retransmits Queries that went unanswered, gives up after T2,
    /// refreshes routing state in use, and expires responder state.
    /// `local_for` gives our address towards a destination (for the NLI of
    /// a Query).
    pub fn handle_timeout(&mut self, now: Instant, local_for: impl Fn(Ipv4Addr) -> Ipv4Addr) {
        self.cookies.rotate_to(now);
        let keys: Vec<_> = self.q.keys().copied().collect();
        for key in keys {
            self.q_timeout(now, key, &local_for);
        }
        self.r.retain(|_, n| n.expires > now);
    }

    fn q_timeout(
        &mut self,
        now: Instant,
        key: (Sid, Direction),
        local_for: &impl Fn(Ipv4Addr) -> Ipv4Addr,
    ) {
        let Some(mut node) = self.q.remove(&key) else {
            return;
        };
        let target = match node.dir {
            Direction::Downstream => node.flow.dst,
            Direction::Upstream => node.flow.src,
        };
        node.state = match node.state {
            QState::Established {
                peer,
                refresh_at,
                expires,
            } if refresh_at <= now => {
                if now.saturating_duration_since(node.last_used) >= self.cfg.idle {
                    return; // unused: let it lapse, the next send queries anew
                }
                let cookie = self.cookies.next_query_cookie();
                self.push_query(
                    node.flow,
                    node.dir,
                    key.0,
                    local_for(target),
                    cookie.clone(),
                );
                QState::Refreshing {
                    peer,
                    expires,
                    query: Querying::new(now, self.cfg.t1, cookie),
                }
            }
            // The refresh went unanswered while the peer's state lasted:
            // from now on data wait for a Response.
            QState::Refreshing { expires, query, .. } if expires <= now => QState::Waiting(query),
            s => s,
        };
        if let QState::Waiting(q) | QState::Refreshing { query: q, .. } = &mut node.state
            && q.next_retx <= now
        {
            // Back off (T1, 2·T1, 4·T1, ...) while the whole attempt stays
            // within T2; the timeout that would overrun it ends it.
            q.elapsed += q.interval;
            let next = q.interval * 2;
            if q.elapsed + next > self.cfg.t2.min(q.limit) {
                self.events.push_back(Event::PeerLost {
                    sid: key.0,
                    flow: node.flow,
                    dir: node.dir,
                    dropped: node.queue.len(),
                });
                return;
            }
            q.interval = next;
            q.next_retx = now + next;
            let cookie = q.cookie.clone();
            self.push_query(node.flow, node.dir, key.0, local_for(target), cookie);
            if matches!(node.state, QState::Waiting(_))
                && let Some((data, sign)) = &node.in_query
            {
                self.attach_to_query(data, *sign);
            }
        }
        self.q.insert(key, node);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The next event for the NSLP.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sessions with routing state (querier and responder side).
    pub fn session_count(&self) -> usize {
        let mut s: Vec<_> = self.q.keys().chain(self.r.keys()).map(|k| k.0).collect();
        s.sort();
        s.dedup();
        s.len()
    }

    /// The peer our last handshake for `sid` towards `dir` found (its NLI
    /// address), while we hold that state.
    pub fn next_peer(&self, sid: &Sid, dir: Direction) -> Option<Ipv4Addr> {
        let n = self.q.get(&(*sid, dir))?;
        n.known_peer().map(|p| p.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::gist::profile::{NSISKA_IP_TTL, NSISKA_REPLY_TTL};

    pub(super) const A: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 1);
    pub(super) const B: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 2);
    pub(super) const FLOW: Flow = Flow {
        src: Ipv4Addr::new(172, 1, 2, 1),
        dst: Ipv4Addr::new(172, 3, 4, 4),
        protocol: 17,
    };
    const SID: Sid = [0x5a; 16];

    fn node(id: u8) -> Gist {
        Gist::new(Config {
            peer_id: [id; 16],
            secret: [id; 32],
            ..Config::default()
        })
    }

    /// Two GIST nodes on one link with a controlled clock; B intercepts
    /// everything A sends towards the flow (as the next NSIS hop would).
    struct Pair {
        a: Gist,
        b: Gist,
        now: Instant,
        /// Drop the next n datagrams from A.
        drop_from_a: usize,
        /// Deliver what A sends at one instant in reverse order.
        reverse: bool,
        /// B forgets the session before each Data from A: it answers every
        /// one with "No Routing State".
        hostile: bool,
        log: Vec<&'static str>,
    }

    /// The message's name, for the exchanges tests assert.
    pub(super) fn kind(m: &Msg) -> &'static str {
        match m {
            Msg::Query { .. } => "Query",
            Msg::Response { .. } => "Response",
            Msg::Confirm { .. } => "Confirm",
            Msg::Data { .. } => "Data",
            Msg::NoRoutingState { .. } => "NoRoutingState",
        }
    }

    impl Pair {
        /// A sends `data` downstream on the test session.
        fn send_downstream(&mut self, data: &[u8]) {
            self.a.send(
                self.now,
                SID,
                FLOW,
                Direction::Downstream,
                A,
                data.to_vec(),
                false,
            );
        }

        fn new() -> Self {
            Self {
                a: node(1),
                b: node(2),
                now: Instant::now(),
                drop_from_a: 0,
                reverse: false,
                hostile: false,
                log: vec![],
            }
        }
        fn drive(&mut self) {
            loop {
                let mut progressed = false;
                let mut batch: Vec<_> = std::iter::from_fn(|| self.a.poll_transmit()).collect();
                if self.reverse {
                    batch.reverse();
                }
                for t in batch {
                    progressed = true;
                    if self.drop_from_a > 0 {
                        self.drop_from_a -= 1;
                        self.log.push("lost");
                        continue;
                    }
                    self.log.push(kind(&t.msg));
                    if self.hostile && matches!(t.msg, Msg::Data { .. }) {
                        self.b.forget(&SID);
                    }
                    self.b.handle(self.now, SocketAddrV4::new(A, 270), B, t.msg);
                }
                while let Some(t) = self.b.poll_transmit() {
                    progressed = true;
                    self.log.push(kind(&t.msg));
                    assert_eq!(*t.dst.ip(), A, "B answers to A's NLI address");
                    self.a.handle(self.now, SocketAddrV4::new(B, 270), A, t.msg);
                }
                if !progressed {
                    break;
                }
            }
        }

        /// Runs both nodes' timers (and the link) up to `end`.
        fn run_until(&mut self, end: Instant) {
            loop {
                self.drive();
                let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= end => {
                        self.now = self.now.max(t);
                        let now = self.now;
                        if self.a.poll_timeout().is_some_and(|t| t <= now) {
                            self.a.handle_timeout(now, |_| A);
                        }
                        if self.b.poll_timeout().is_some_and(|t| t <= now) {
                            self.b.handle_timeout(now, |_| B);
                        }
                    }
                    _ => break,
                }
            }
            self.now = end;
        }

        fn send_from_a(&mut self, data: &[u8]) {
            let now = self.now;
            let d = data.to_vec();
            self.a
                .send(now, SID, FLOW, Direction::Downstream, A, d, false);
            self.drive();
        }
    }

    /// The optional `data_in_query` mode: the RESERVE rides in the Query
    /// and reaches the NSLP before the handshake is over; what the NSLP
    /// answers upstream waits for the Confirm; nothing is sent twice.
    #[test]
    fn data_in_query_is_delivered_at_once_and_the_answer_waits_for_the_confirm() {
        let cfg = |id: u8| Config {
            peer_id: [id; 16],
            secret: [id; 32],
            data_in_query: true,
            ..Config::default()
        };
        let (mut a, mut b) = (Gist::new(cfg(1)), Gist::new(cfg(2)));
        let now = Instant::now();
        a.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"RESERVE".to_vec(),
            true,
        );
        let q = a.poll_transmit().unwrap();
        assert!(q.qmode && q.sign, "a Query with signed data is signed");
        assert!(matches!(&q.msg, Msg::Query { nslp_data: Some(d), .. } if d == b"RESERVE"));
        assert!(a.poll_transmit().is_none());
        b.handle(now, SocketAddrV4::new(A, 270), B, q.msg);
        let r = b.poll_transmit().unwrap();
        assert_eq!(kind(&r.msg), "Response");
        assert!(matches!(
            b.poll_event(),
            Some(Event::Received { nslp_data, dir: Direction::Downstream, peer, .. })
                if nslp_data == b"RESERVE" && peer == A
        ));
        b.send(
            now,
            SID,
            FLOW,
            Direction::Upstream,
            B,
            b"RESPONSE".to_vec(),
            false,
        );
        assert!(b.poll_transmit().is_none(), "held until the Confirm");
        assert!(b.poll_event().is_none(), "held, not a lost peer");
        a.handle(now, SocketAddrV4::new(B, 270), A, r.msg);
        let c = a.poll_transmit().unwrap();
        assert_eq!(kind(&c.msg), "Confirm");
        assert!(a.poll_transmit().is_none(), "the Query carried the data");
        b.handle(now, SocketAddrV4::new(A, 270), B, c.msg);
        let d = b.poll_transmit().unwrap();
        assert_eq!(*d.dst.ip(), A);
        assert!(
            matches!(&d.msg, Msg::Data { dir: Direction::Upstream, nslp_data, .. }
            if nslp_data == b"RESPONSE")
        );
        a.handle(now, SocketAddrV4::new(B, 270), A, d.msg);
        assert!(
            matches!(a.poll_event(), Some(Event::Received { nslp_data, .. })
            if nslp_data == b"RESPONSE")
        );
        // The paper-faithful default sends none.
        let mut c = node(3);
        c.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"R".to_vec(),
            true,
        );
        let q = c.poll_transmit().unwrap();
        assert!(
            matches!(
                q.msg,
                Msg::Query {
                    nslp_data: None,
                    ..
                }
            ) && !q.sign
        );
    }

    /// A lost Query with data is retransmitted with it.
    #[test]
    fn a_retransmitted_query_carries_its_data_again() {
        let mut a = Gist::new(Config {
            data_in_query: true,
            ..Config::default()
        });
        let now = Instant::now();
        a.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"RESERVE".to_vec(),
            false,
        );
        let _lost = a.poll_transmit().unwrap();
        let t = a.poll_timeout().unwrap();
        a.handle_timeout(t, |_| A);
        let q = a.poll_transmit().unwrap();
        assert!(matches!(&q.msg, Msg::Query { nslp_data: Some(d), .. } if d == b"RESERVE"));
    }

    #[test]
    fn handshake_then_data() {
        let mut p = Pair::new();
        p.a.send(
            p.now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"RESERVE".to_vec(),
            true,
        );
        let q = p.a.out.front().unwrap().clone();
        assert!(q.qmode, "the Query is Q-mode");
        assert_eq!(*q.dst.ip(), FLOW.dst, "sent towards the flow's destination");
        p.drive();
        assert_eq!(p.log, ["Query", "Response", "Confirm", "Data"]);
        assert_eq!(
            p.b.poll_event(),
            Some(Event::Received {
                sid: SID,
                flow: FLOW,
                dir: Direction::Downstream,
                peer: A,
                nslp_data: b"RESERVE".to_vec()
            })
        );
        // Established: the next message goes straight as D-mode Data.
        p.log.clear();
        p.a.send(
            p.now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"REFRESH".to_vec(),
            false,
        );
        p.drive();
        assert_eq!(p.log, ["Data"]);
        // And B can answer upstream to the peer that queried it.
        p.log.clear();
        p.b.send(
            p.now,
            SID,
            FLOW,
            Direction::Upstream,
            B,
            b"RESPONSE".to_vec(),
            false,
        );
        p.drive();
        assert_eq!(p.log, ["Data"]);
        let ev = std::iter::from_fn(|| p.a.poll_event()).last().unwrap();
        assert!(matches!(
            ev,
            Event::Received {
                dir: Direction::Upstream,
                peer: B,
                ..
            }
        ));
    }

    #[test]
    fn lost_query_is_retransmitted_with_backoff() {
        let mut p = Pair::new();
        p.drop_from_a = 2;
        p.send_downstream(b"X");
        p.drive();
        assert_eq!(p.log, ["lost"]);
        let t1 = p.a.poll_timeout().unwrap();
        assert_eq!(t1 - p.now, Duration::from_millis(500));
        p.now = t1;
        p.a.handle_timeout(p.now, |_| A);
        p.drive();
        let t2 = p.a.poll_timeout().unwrap();
        assert_eq!(t2 - p.now, Duration::from_millis(1000), "T1 doubles");
        p.now = t2;
        p.a.handle_timeout(p.now, |_| A);
        p.drive();
        assert_eq!(
            p.log,
            ["lost", "lost", "Query", "Response", "Confirm", "Data"]
        );
        assert!(matches!(p.b.poll_event(), Some(Event::Received { .. })));
    }

    #[test]
    fn gives_up_after_t2() {
        let mut g = node(1);
        let mut now = Instant::now();
        g.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"X".to_vec(),
            false,
        );
        let mut queries = 0;
        while let Some(t) = g.poll_timeout() {
            while g.poll_transmit().is_some() {
                queries += 1;
            }
            now = t;
            g.handle_timeout(now, |_| A);
        }
        // 0.5+1+2+4+8+16+32 = 63.5 s of back-off: 7 Queries, then give up.
        assert_eq!(queries, 7);
        assert_eq!(
            g.poll_event(),
            Some(Event::PeerLost {
                sid: SID,
                flow: FLOW,
                dir: Direction::Downstream,
                dropped: 1
            })
        );
        assert_eq!(g.session_count(), 0);
    }

    #[test]
    fn forged_confirm_installs_nothing_and_data_gets_no_routing_state() {
        let mut b = node(2);
        let now = Instant::now();
        let nli = Nli {
            peer_id: [9; 16],
            ip_ttl: 64,
            rs_validity_ms: 30_000,
            addr: A,
        };
        b.handle(
            now,
            SocketAddrV4::new(A, 270),
            B,
            Msg::Confirm {
                flow: FLOW,
                dir: Direction::Downstream,
                sid: SID,
                nli: nli.clone(),
                responder_cookie: vec![0; 16],
            },
        );
        assert_eq!(b.session_count(), 0);
        b.handle(
            now,
            SocketAddrV4::new(A, 270),
            B,
            Msg::Data {
                flow: FLOW,
                dir: Direction::Downstream,
                sid: SID,
                nli: Some(nli),
                nslp_data: b"RESERVE".to_vec(),
            },
        );
        assert!(b.poll_event().is_none(), "nothing delivered");
        let t = b.poll_transmit().unwrap();
        assert!(matches!(t.msg, Msg::NoRoutingState { .. }));
        assert_eq!(*t.dst.ip(), A);
    }

    #[test]
    fn responder_state_expires() {
        let mut p = Pair::new();
        p.send_downstream(b"X");
        p.drive();
        assert_eq!(p.b.session_count(), 1);
        p.now += Duration::from_secs(31);
        p.b.handle_timeout(p.now, |_| B);
        assert_eq!(p.b.session_count(), 0);
        // A's state is past B's RS validity (A's timers were not run, so
        // it did not refresh it): the next send re-runs the handshake.
        p.log.clear();
        p.a.send(
            p.now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"Y".to_vec(),
            false,
        );
        p.drive();
        assert_eq!(p.log, ["Query", "Response", "Confirm", "Data"]);
    }

    /// The open finding of tests/node_core.rs: an NSLP refresh sent after
    /// the responder's RS-Validity-Time used to start a new handshake, the
    /// Data went right behind the Confirm, and a Data overtaking it drew
    /// "No Routing State" (the refresh was lost). Routing state in use is
    /// now refreshed ahead of time, so the refresh goes straight as Data.
    #[test]
    fn routing_state_in_use_is_refreshed_before_the_responder_forgets_it() {
        let mut p = Pair::new();
        let t0 = p.now;
        p.send_from_a(b"RESERVE");
        assert_eq!(p.log, ["Query", "Response", "Confirm", "Data"]);
        while p.b.poll_event().is_some() {}
        p.reverse = true;
        p.log.clear();
        // Past the 30 s RS validity, as an NSLP refresh (R = 30 s) is.
        p.run_until(t0 + Duration::from_secs(40));
        assert_eq!(p.log, ["Query", "Response", "Confirm"], "one refresh");
        assert_eq!(p.b.session_count(), 1, "B's state was refreshed");
        p.log.clear();
        p.send_from_a(b"REFRESH");
        assert_eq!(p.log, ["Data"], "no handshake in front of the refresh");
        assert!(matches!(
            p.b.poll_event(),
            Some(Event::Received { nslp_data, .. }) if nslp_data == b"REFRESH"
        ));
    }

    #[test]
    fn data_read_before_its_confirm_is_sent_again_after_a_new_handshake() {
        let mut p = Pair::new();
        // The Confirm and the RESERVE behind it swap on the way.
        p.reverse = true;
        p.send_from_a(b"RESERVE");
        assert_eq!(
            p.log,
            [
                "Query",
                "Response",
                "Data",
                "Confirm",
                "NoRoutingState",
                "Query",
                "Response",
                "Data",
                "Confirm",
            ],
            "B refuses the early Data; A queries again and resends it at once"
        );
        // The resent Data swapped again, but B holds routing state now.
        let got: Vec<_> = std::iter::from_fn(|| p.b.poll_event()).collect();
        assert!(
            got.iter()
                .any(|e| matches!(e, Event::Received { nslp_data, .. } if nslp_data == b"RESERVE")),
            "{got:?}"
        );
        assert_eq!(p.a.counters().resent_behind_confirm, 1);
        assert!(
            !std::iter::from_fn(|| p.a.poll_event())
                .any(|e| matches!(e, Event::RoutingStateLost { .. })),
            "the NSLP is not told of a loss it need not act on"
        );
    }

    /// Issue 15: B ended the session and forgot it (a tear it forwarded),
    /// while A's state towards B is fresh; A's next Data draws "No Routing
    /// State". It is sent again after a new handshake, not lost until the
    /// NSLP's retry seconds later (a node-stop repair took 2 s).
    #[test]
    fn data_refused_by_a_peer_that_forgot_us_is_sent_again_after_a_new_handshake() {
        let mut p = Pair::new();
        p.send_from_a(b"RESERVE");
        while p.b.poll_event().is_some() {}
        p.now += Duration::from_secs(1);
        p.b.forget(&SID);
        p.log.clear();
        p.send_from_a(b"REFRESH");
        assert_eq!(
            p.log,
            [
                "Data",
                "NoRoutingState",
                "Query",
                "Response",
                "Confirm",
                "Data"
            ]
        );
        assert!(matches!(
            p.b.poll_event(),
            Some(Event::Received { nslp_data, .. }) if nslp_data == b"REFRESH"
        ));
        assert_eq!(p.a.counters().resent_behind_confirm, 1);
        assert_eq!(p.a.session_count(), 1);
        // Data older than T1 are not sent again: the NSLP's retry owns it.
        p.now += Duration::from_secs(1);
        p.b.forget(&SID);
        p.log.clear();
        p.send_from_a(b"LATER");
        while p.b.poll_event().is_some() {}
        p.now += Duration::from_secs(1);
        p.log.clear();
        p.b.forget(&SID);
        let before = p.a.counters().resent_behind_confirm;
        p.send_from_a(b"REFRESH2");
        assert_eq!(
            p.a.counters().resent_behind_confirm,
            before + 1,
            "only REFRESH2"
        );
        let got: Vec<_> = std::iter::from_fn(|| p.b.poll_event()).collect();
        assert!(
            !got.iter()
                .any(|e| matches!(e, Event::Received { nslp_data, .. } if nslp_data == b"LATER")),
            "{got:?}"
        );
    }

    #[test]
    fn a_peer_that_answers_every_data_with_no_routing_state_gets_one_resend() {
        let mut p = Pair::new();
        p.hostile = true;
        p.send_from_a(b"RESERVE");
        assert_eq!(
            p.log,
            [
                "Query",
                "Response",
                "Confirm",
                "Data",
                "NoRoutingState",
                "Query",
                "Response",
                "Confirm",
                "Data",
                "NoRoutingState",
            ],
            "one resend, then A gives its state up"
        );
        assert_eq!(p.a.counters().resent_behind_confirm, 1);
        assert_eq!(p.a.session_count(), 0);
        // Sent on established state: again one resend at most.
        p.hostile = false;
        p.send_from_a(b"AGAIN");
        p.hostile = true;
        p.log.clear();
        p.now += Duration::from_secs(1);
        p.send_from_a(b"MORE");
        assert_eq!(
            p.log.iter().filter(|k| **k == "NoRoutingState").count(),
            2,
            "{:?}",
            p.log
        );
        assert_eq!(p.a.counters().resent_behind_confirm, 2);
    }

    #[test]
    fn unused_routing_state_lapses_instead_of_being_refreshed() {
        let mut p = Pair::new();
        let t0 = p.now;
        p.send_from_a(b"RESERVE");
        p.log.clear();
        p.run_until(t0 + Duration::from_secs(200));
        // Refreshes at 22.5, 45 and 67.5 s; at 90 s (idle) A lets it go.
        let queries = p.log.iter().filter(|k| **k == "Query").count();
        assert_eq!(queries, 3, "{:?}", p.log);
        assert_eq!(p.a.session_count(), 0);
        assert_eq!(p.b.session_count(), 0);
        assert_eq!(p.a.poll_timeout(), None);
    }

    #[test]
    fn unanswered_refresh_keeps_the_peer_only_while_its_state_lasts() {
        let mut p = Pair::new();
        let t0 = p.now;
        p.send_from_a(b"RESERVE");
        p.drop_from_a = usize::MAX;
        p.log.clear();
        p.run_until(t0 + Duration::from_millis(22_600));
        assert_eq!(p.log, ["lost"], "the refresh Query (at 22.5 s)");
        // The old peer still holds our state: data go to it.
        p.send_from_a(b"A");
        assert_eq!(p.log, ["lost", "lost"]);
        // After the peer's RS validity they wait for a Response instead,
        // and the attempt ends after T2 with a PeerLost.
        p.run_until(t0 + Duration::from_secs(31));
        p.log.clear();
        p.send_from_a(b"B");
        assert!(p.log.is_empty(), "queued: {:?}", p.log);
        p.run_until(t0 + Duration::from_secs(120));
        assert_eq!(
            std::iter::from_fn(|| p.a.poll_event()).last(),
            Some(Event::PeerLost {
                sid: SID,
                flow: FLOW,
                dir: Direction::Downstream,
                dropped: 1
            })
        );
        assert_eq!(p.a.session_count(), 0);
    }

    /// Runs A's Query through B and B's Response back through A by hand;
    /// returns (Query, Response, Confirm) as sent.
    fn handshake(a: &mut Gist, b: &mut Gist, now: Instant) -> (Msg, Msg, Msg) {
        a.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"X".to_vec(),
            false,
        );
        let q = a.poll_transmit().unwrap().msg;
        b.handle(now, SocketAddrV4::new(A, 270), B, q.clone());
        let r = b.poll_transmit().unwrap();
        a.handle(now, SocketAddrV4::new(B, 270), A, r.msg.clone());
        let c = a.poll_transmit().unwrap().msg;
        b.handle(now, SocketAddrV4::new(A, 270), B, c.clone());
        (q, r.msg, c)
    }

    fn dir_of(m: &Msg) -> Direction {
        match m {
            Msg::Query { dir, .. }
            | Msg::Response { dir, .. }
            | Msg::Confirm { dir, .. }
            | Msg::Data { dir, .. }
            | Msg::NoRoutingState { dir, .. } => *dir,
        }
    }

    /// RFC 5971 and NSIS-ka: the Response travels against the Query (D
    /// set); the Confirm and the Data go the Query's way.
    #[test]
    fn every_message_carries_the_direction_it_travels() {
        let (mut a, mut b) = (node(1), node(2));
        let now = Instant::now();
        let (q, r, c) = handshake(&mut a, &mut b, now);
        assert_eq!(dir_of(&q), Direction::Downstream);
        assert_eq!(dir_of(&r), Direction::Upstream);
        assert_eq!(dir_of(&c), Direction::Downstream);
        let d = a.poll_transmit().unwrap().msg;
        assert!(matches!(
            d,
            Msg::Data {
                dir: Direction::Downstream,
                ..
            }
        ));
        assert_eq!(b.session_count(), 1, "B installed routing state");
        // A Response claiming the Query's own direction is not an answer to it.
        let Msg::Response {
            flow,
            sid,
            nli,
            query_cookie,
            responder_cookie,
            ..
        } = r
        else {
            panic!()
        };
        let mut a2 = node(1);
        a2.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"X".to_vec(),
            false,
        );
        a2.poll_transmit();
        a2.handle(
            now,
            SocketAddrV4::new(B, 270),
            A,
            Msg::Response {
                flow,
                dir: Direction::Downstream,
                sid,
                nli,
                query_cookie,
                responder_cookie,
            },
        );
        assert!(a2.poll_transmit().is_none(), "no Confirm");
    }

    /// RFC 5971 §8.5 / issue 12: a Confirm replayed once its cookie's
    /// secret has rotated out installs nothing and is counted; a forged one
    /// likewise.
    #[test]
    fn a_confirm_replayed_after_rotation_installs_nothing() {
        let (mut a, mut b) = (node(1), node(2));
        let t0 = Instant::now();
        let (_, _, confirm) = handshake(&mut a, &mut b, t0);
        assert_eq!(b.session_count(), 1);
        b.forget(&SID);
        // One period later the previous secret still accepts it (a slow
        // Confirm is fine)...
        let replay = |b: &mut Gist, at| {
            b.handle(at, SocketAddrV4::new(A, 270), B, confirm.clone());
            let n = b.session_count();
            b.forget(&SID);
            n
        };
        assert_eq!(replay(&mut b, t0 + Duration::from_secs(61)), 1);
        // ...two periods later it is stale.
        b.handle_timeout(t0 + Duration::from_secs(125), |_| B);
        assert_eq!(replay(&mut b, t0 + Duration::from_secs(125)), 0);
        assert_eq!(b.counters().stale_cookie, 1);
        let Msg::Confirm {
            flow,
            dir,
            sid,
            nli,
            mut responder_cookie,
        } = confirm
        else {
            panic!()
        };
        // Relabelled as the current generation: the MAC gives it away.
        responder_cookie[3] = 2;
        let forged = Msg::Confirm {
            flow,
            dir,
            sid,
            nli,
            responder_cookie,
        };
        b.handle(
            t0 + Duration::from_secs(125),
            SocketAddrV4::new(A, 270),
            B,
            forged,
        );
        assert_eq!(b.session_count(), 0);
        assert_eq!(b.counters().bad_cookie, 1);
    }

    #[test]
    fn nsis_ka_profile_sends_what_nsis_ka_sends() {
        let mk = |id| {
            Gist::new(Config {
                peer_id: [id; 16],
                secret: [id; 32],
                ..Config::for_profile(Profile::NsisKa)
            })
        };
        let (mut a, mut b) = (mk(1), mk(2));
        let now = Instant::now();
        a.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"X".to_vec(),
            false,
        );
        let q = a.poll_transmit().unwrap();
        assert_eq!(q.ttl, NSISKA_IP_TTL);
        let Msg::Query {
            query_cookie, nli, ..
        } = &q.msg
        else {
            panic!()
        };
        assert_eq!((query_cookie.len(), nli.ip_ttl), (4, NSISKA_IP_TTL));
        b.handle(now, SocketAddrV4::new(A, 270), B, q.msg);
        let r = b.poll_transmit().unwrap();
        assert_eq!(r.ttl, NSISKA_REPLY_TTL);
        let Msg::Response {
            nli,
            responder_cookie,
            ..
        } = &r.msg
        else {
            panic!()
        };
        assert_eq!((nli.ip_ttl, responder_cookie.len()), (0, 28));
        // The rfc profile: NLI IP-TTL is the TTL sent with, longer cookies.
        let mut c = node(3);
        c.send(
            now,
            SID,
            FLOW,
            Direction::Downstream,
            A,
            b"X".to_vec(),
            false,
        );
        let Msg::Query { query_cookie, .. } = c.poll_transmit().unwrap().msg else {
            panic!()
        };
        assert_eq!(query_cookie.len(), 16);
    }
}
