use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::*;
use crate::proto::gist::codec::{decode_framed, encode_framed};
use crate::proto::gist::machine::{Config, Direction, Event, Flow, Gist};
use crate::wire::gist::Framing;

const A: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 2);
const FLOW: Flow = Flow {
    src: A,
    dst: Ipv4Addr::new(172, 3, 4, 4),
    protocol: 17,
};
/// The ephemeral port A's MA to B connects from.
const A_EPHEMERAL: u16 = 48_318;

/// One node: its machine and its C-mode overlay.
struct Node {
    gist: Gist,
    ma: Cmode,
    addr: Ipv4Addr,
    opened: Vec<MaAction>,
}

impl Node {
    fn new(id: u8, addr: Ipv4Addr, propose: bool) -> Self {
        Self {
            gist: Gist::new(Config {
                peer_id: [id; 16],
                secret: [id; 32],
                ..Config::default()
            }),
            ma: Cmode::new(MaConfig {
                propose,
                hold: Duration::from_secs(10),
                ..MaConfig::default()
            }),
            addr,
            opened: vec![],
        }
    }

    /// Encodes what the machine sends, as the node core would.
    fn out(&mut self, now: Instant) -> Vec<(Via, Vec<u8>)> {
        let mut v = vec![];
        while let Some(t) = self.gist.poll_transmit() {
            let o = self.ma.outbound(now, t);
            let framing = match o.via {
                Via::Udp => Framing::Udp,
                Via::Ma(_) => Framing::Tcp,
            };
            v.push((o.via, encode_framed(&o.t.msg, &o.stack, framing).unwrap()));
        }
        while let Some(a) = self.ma.poll_action() {
            self.opened.push(a);
        }
        v
    }

    fn input(&mut self, now: Instant, via: Via, src: SocketAddrV4, bytes: &[u8]) {
        let framing = match via {
            Via::Udp => Framing::Udp,
            Via::Ma(_) => Framing::Tcp,
        };
        let (msg, stack) = decode_framed(bytes, framing).unwrap().unwrap();
        self.ma.inbound(now, via, &msg, &stack);
        self.gist.handle(now, src, self.addr, msg);
    }
}

/// A (querier) and B (responder) on one link; a log of (sender, message
/// type, carried over an MA).
struct Link {
    a: Node,
    b: Node,
    now: Instant,
    log: Vec<(char, u8, bool)>,
}

impl Link {
    fn new(propose: bool) -> Self {
        Self {
            a: Node::new(1, A, propose),
            b: Node::new(2, B, false),
            now: Instant::now(),
            log: vec![],
        }
    }

    fn drive(&mut self) {
        loop {
            let from_a = self.a.out(self.now);
            let from_b = self.b.out(self.now);
            if from_a.is_empty() && from_b.is_empty() {
                break;
            }
            for (via, bytes) in from_a {
                let tcp = matches!(via, Via::Ma(_));
                self.log.push(('a', msg_type(&bytes, tcp), tcp));
                // B sees A's MA from A's ephemeral port.
                let (bvia, src) = match via {
                    Via::Udp => (Via::Udp, SocketAddrV4::new(A, 270)),
                    Via::Ma(r) => {
                        assert_eq!(r, SocketAddrV4::new(B, MA_PORT), "A's MA goes to B's port");
                        let s = SocketAddrV4::new(A, A_EPHEMERAL);
                        (Via::Ma(s), s)
                    }
                };
                self.b.input(self.now, bvia, src, &bytes);
            }
            for (via, bytes) in from_b {
                let tcp = matches!(via, Via::Ma(_));
                self.log.push(('b', msg_type(&bytes, tcp), tcp));
                let (avia, src) = match via {
                    Via::Udp => (Via::Udp, SocketAddrV4::new(B, 270)),
                    Via::Ma(r) => {
                        assert_eq!(r, SocketAddrV4::new(A, A_EPHEMERAL), "B answers on A's MA");
                        let s = SocketAddrV4::new(B, MA_PORT);
                        (Via::Ma(s), s)
                    }
                };
                self.a.input(self.now, avia, src, &bytes);
            }
        }
    }

    fn send(&mut self, sid: Sid, dir: Direction, data: &[u8]) {
        let (n, local) = match dir {
            Direction::Downstream => (&mut self.a, A),
            Direction::Upstream => (&mut self.b, B),
        };
        n.gist
            .send(self.now, sid, FLOW, dir, local, data.to_vec(), false);
        self.drive();
    }
}

fn msg_type(b: &[u8], tcp: bool) -> u8 {
    b[if tcp { 6 } else { 10 }] & 0x7f
}

const QUERY: u8 = 0;
const RESPONSE: u8 = 1;
const CONFIRM: u8 = 2;
const DATA: u8 = 3;

#[test]
fn cmode_handshake_opens_one_ma_and_carries_confirm_and_data_over_it() {
    let mut l = Link::new(true);
    l.send([1; 16], Direction::Downstream, &[1, 0, 0, 0]);
    assert_eq!(
        l.log,
        [
            ('a', QUERY, false),
            ('b', RESPONSE, false),
            ('a', CONFIRM, true),
            ('a', DATA, true),
        ]
    );
    assert_eq!(l.a.opened, [MaAction::Open(SocketAddrV4::new(B, MA_PORT))]);
    let got = l.b.gist.poll_event();
    assert!(
        matches!(got, Some(Event::Received { ref nslp_data, .. }) if nslp_data == &[1, 0, 0, 0]),
        "{got:?}"
    );
    // B's answer goes back upstream on the same MA.
    l.log.clear();
    l.send([1; 16], Direction::Upstream, &[3, 0, 0, 0]);
    assert_eq!(l.log, [('b', DATA, true)]);
    assert!(matches!(
        l.a.gist.poll_event(),
        Some(Event::Received { .. })
    ));
}

#[test]
fn a_second_session_to_the_same_peer_reuses_the_ma() {
    let mut l = Link::new(true);
    l.send([1; 16], Direction::Downstream, &[1, 0, 0, 0]);
    l.log.clear();
    l.send([2; 16], Direction::Downstream, &[1, 0, 0, 0]);
    assert_eq!(
        l.log,
        [
            ('a', QUERY, false),
            ('b', RESPONSE, false),
            ('a', CONFIRM, true),
            ('a', DATA, true),
        ]
    );
    assert_eq!(l.a.opened.len(), 1, "no second MA: {:?}", l.a.opened);
    assert_eq!(l.a.ma.associations().count(), 1);
    assert_eq!(l.b.ma.associations().count(), 1);
}

#[test]
fn dmode_topology_stays_on_udp() {
    let mut l = Link::new(false);
    l.send([1; 16], Direction::Downstream, &[1, 0, 0, 0]);
    assert!(l.log.iter().all(|(_, _, tcp)| !tcp), "{:?}", l.log);
    assert!(l.a.opened.is_empty());
}

#[test]
fn an_unused_ma_is_closed_after_its_hold_time_and_data_fall_back_to_udp() {
    let mut l = Link::new(true);
    l.send([1; 16], Direction::Downstream, &[1, 0, 0, 0]);
    let opened = l.now;
    assert_eq!(
        l.a.ma.poll_timeout(),
        Some(opened + Duration::from_secs(10))
    );
    l.now += Duration::from_secs(5);
    l.a.ma.handle_timeout(l.now);
    assert!(l.a.ma.poll_action().is_none(), "still within the hold time");
    l.now = opened + Duration::from_secs(10);
    l.a.ma.handle_timeout(l.now);
    assert_eq!(
        l.a.ma.poll_action(),
        Some(MaAction::Close(SocketAddrV4::new(B, MA_PORT)))
    );
    // B learns it from its socket.
    l.b.ma.closed(SocketAddrV4::new(A, A_EPHEMERAL));
    assert_eq!(l.b.ma.associations().count(), 0);
    let t = Transmit {
        dst: SocketAddrV4::new(B, 270),
        qmode: false,
        ttl: 64,
        msg: Msg::Data {
            flow: FLOW,
            dir: Direction::Downstream,
            sid: [1; 16],
            nli: None,
            nslp_data: vec![1, 0, 0, 0],
        },
        sign: false,
    };
    assert_eq!(l.a.ma.outbound(l.now, t).via, Via::Udp);
}

#[test]
fn a_query_without_tcp_gets_a_plain_response() {
    let mut b = Cmode::new(MaConfig::default());
    let stack = Stack {
        proposal: Some(StackProposal {
            profiles: vec![vec![PROTO_TLS, PROTO_TCP]],
        }),
        config: Some(query_config(MA_HOLD)),
    };
    assert!(!proposes_tcp(&stack));
    assert!(proposes_tcp(&Stack {
        proposal: Some(query_proposal()),
        config: None
    }));
    assert!(!proposes_tcp(&Stack::default()));
    let nli = crate::proto::gist::machine::Nli {
        peer_id: [1; 16],
        ip_ttl: 64,
        rs_validity_ms: 30_000,
        addr: A,
    };
    let q = Msg::Query {
        flow: FLOW,
        dir: Direction::Downstream,
        sid: [1; 16],
        nli: nli.clone(),
        query_cookie: vec![1, 2, 3, 4],
        nslp_data: None,
    };
    b.inbound(Instant::now(), Via::Udp, &q, &stack);
    let r = Transmit {
        dst: SocketAddrV4::new(A, 270),
        qmode: false,
        ttl: 64,
        msg: Msg::Response {
            flow: FLOW,
            dir: Direction::Upstream,
            sid: [1; 16],
            nli,
            query_cookie: vec![1, 2, 3, 4],
            responder_cookie: vec![9; 16],
        },
        sign: false,
    };
    let o = b.outbound(Instant::now(), r);
    assert_eq!(o.stack, Stack::default());
    assert_eq!(o.via, Via::Udp);
}

#[test]
fn a_confirm_without_an_offer_uses_the_ma_the_peer_already_shares() {
    let mut l = Link::new(true);
    l.send([1; 16], Direction::Downstream, &[1, 0, 0, 0]);
    // The responder answers a later Query without Stack objects (as NSIS-ka
    // does on an MA it shares with us): the Confirm still takes the MA.
    let nli = crate::proto::gist::machine::Nli {
        peer_id: [1; 16],
        ip_ttl: 64,
        rs_validity_ms: 30_000,
        addr: A,
    };
    let confirm = Transmit {
        dst: SocketAddrV4::new(B, 270),
        qmode: false,
        ttl: 64,
        msg: Msg::Confirm {
            flow: FLOW,
            dir: Direction::Downstream,
            sid: [3; 16],
            nli,
            responder_cookie: vec![9; 16],
        },
        sign: false,
    };
    let o = l.a.ma.outbound(l.now, confirm);
    assert_eq!(o.via, Via::Ma(SocketAddrV4::new(B, MA_PORT)));
    assert_eq!(o.stack, Stack::default());
    assert!(l.a.ma.poll_action().is_none(), "no new MA");
}
