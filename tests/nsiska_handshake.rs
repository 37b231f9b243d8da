//! The GIST handshake machine against NSIS-ka 0.98's own messages (issue 13
//! item 6): fed the captured `nsiska-both-dmode-2node` exchange as the peer
//! would send it, the machine with the `nsis-ka` profile answers with the
//! messages NSIS-ka sent there, byte for byte except for values that are
//! ours to choose (cookies). Our node takes the captured node's peer
//! identity so that every other byte can be compared.
//!
//! Exchange (10.99.1.1 queries, 10.99.1.2 responds, flow .1 -> .2, UDP):
//! #50 Query, #51 Response, #52 Confirm, #53 Data(RESERVE), #54
//! Data(RESPONSE, upstream).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use vlsp::proto::gist::codec;
use vlsp::proto::gist::machine::{Config, Direction, Event, Flow, Gist, Msg, Transmit};
use vlsp::proto::gist::profile::{NSISKA_IP_TTL, NSISKA_REPLY_TTL};
use vlsp::wire::gist::{Body, GistPdu, Mri};
use vlsp::wire::profile::Profile;

const TSV: &str = include_str!("data/nsiska-vectors/gist-messages.tsv");
const SCENARIO: &str = "nsiska-both-dmode-2node";
const QUERIER: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 1);
const RESPONDER: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 2);
const FLOW: Flow = Flow {
    src: QUERIER,
    dst: RESPONDER,
    protocol: 17,
};

fn hex(h: &str) -> Vec<u8> {
    vlsp::model::unhex(h).expect("hex")
}

/// (scenario, index, transport, GIST type, payload) of every vector.
fn vectors() -> impl Iterator<Item = (&'static str, u32, &'static str, &'static str, Vec<u8>)> {
    TSV.lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() == 9 && !c[0].starts_with('#'))
        .map(|c| (c[0], c[1].parse().expect("index"), c[2], c[5], hex(c[8])))
}

/// The UDP payload of message `index` of the 2-node D-mode scenario.
fn vector(index: u32) -> Vec<u8> {
    vectors()
        .find(|v| v.0 == SCENARIO && v.1 == index)
        .unwrap_or_else(|| panic!("{SCENARIO}#{index} in the vectors"))
        .4
}

fn pdu(bytes: &[u8]) -> GistPdu {
    GistPdu::decode_udp(bytes).expect("a GIST PDU")
}

fn msg(bytes: &[u8]) -> Msg {
    codec::decode(bytes)
        .expect("decodes")
        .expect("a message the machine acts on")
}

/// The MRI, SID and NLI of a handshake or Data PDU.
fn mri_sid_nli(p: &GistPdu) -> (Mri, [u8; 16], Option<vlsp::wire::gist::Nli>) {
    match &p.body {
        Body::Query { mri, sid, nli, .. }
        | Body::Response { mri, sid, nli, .. }
        | Body::Confirm { mri, sid, nli, .. } => (mri.clone(), *sid, Some(nli.clone())),
        Body::Data { mri, sid, nli, .. } => (mri.clone(), *sid, nli.clone()),
        b => panic!("no MRI in {b:?}"),
    }
}

fn peer_id(p: &GistPdu) -> [u8; 16] {
    let nli = mri_sid_nli(p).2.expect("an NLI");
    nli.peer_id
        .as_slice()
        .try_into()
        .expect("16-byte peer identity")
}

/// The `len` bytes after the first `tag` (a TLV header) in `b`.
fn object_value(b: &[u8], tag: [u8; 4], len: usize) -> Vec<u8> {
    let at = b
        .windows(4)
        .position(|w| w == tag)
        .unwrap_or_else(|| panic!("object {tag:02x?} present"))
        + 4;
    b[at..at + len].to_vec()
}

/// `b` with the first occurrence of `old` replaced by `new` (same length).
fn patch(b: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    assert_eq!(old.len(), new.len());
    let at = b
        .windows(old.len())
        .position(|w| w == old)
        .expect("value to patch present");
    let mut out = b.to_vec();
    out[at..at + old.len()].copy_from_slice(new);
    out
}

const QUERY_COOKIE: [u8; 4] = [0x00, 0x05, 0x00, 0x01];
const RESPONDER_COOKIE: [u8; 4] = [0x00, 0x06, 0x00, 0x07];

fn node(peer_id: [u8; 16]) -> Gist {
    Gist::new(Config {
        peer_id,
        secret: [0x5e; 32],
        ..Config::for_profile(Profile::NsisKa)
    })
}

fn only(g: &mut Gist) -> Transmit {
    let t = g.poll_transmit().expect("a message out");
    assert!(g.poll_transmit().is_none(), "one message out");
    t
}

fn nslp_data(p: &GistPdu) -> Vec<u8> {
    match &p.body {
        Body::Data { nslp_data, .. } => nslp_data.clone(),
        b => panic!("not Data: {b:?}"),
    }
}

/// NSIS-ka queries us: our Response is #51 but for our Responder-Cookie;
/// NSIS-ka's Confirm carrying our cookie installs routing state, its Data
/// is delivered, and our upstream Data (the RESPONSE) is #54 exactly.
#[test]
fn as_responder_we_answer_what_nsis_ka_answered() {
    let (q, r, c, d, up) = (vector(50), vector(51), vector(52), vector(53), vector(54));
    let mut b = node(peer_id(&pdu(&r)));
    let now = Instant::now();
    let from_querier = SocketAddrV4::new(QUERIER, 270);

    b.handle(now, from_querier, RESPONDER, msg(&q));
    let t = only(&mut b);
    assert_eq!(
        t.dst, from_querier,
        "to the querier's NLI, the Query's port"
    );
    assert!(!t.qmode);
    assert_eq!(t.ttl, NSISKA_REPLY_TTL);
    let ours = codec::encode(&t.msg);
    assert_eq!(ours.len(), r.len(), "same objects and sizes");
    let our_cookie = object_value(&ours, RESPONDER_COOKIE, 28);
    let their_cookie = object_value(&r, RESPONDER_COOKIE, 28);
    assert_ne!(our_cookie, their_cookie, "our own cookie");
    assert_eq!(
        patch(&ours, &our_cookie, &their_cookie),
        r,
        "header (01 c0, hops 1), MRI with D set, SID, NLI (IP-TTL 0), \
         echoed Query-Cookie: all as NSIS-ka's Response"
    );
    assert_eq!(
        mri_sid_nli(&pdu(&ours)).0,
        mri_sid_nli(&pdu(&r)).0,
        "the MRI of the Response"
    );

    // NSIS-ka's Confirm as it would carry our cookie.
    let confirm = patch(&c, &their_cookie, &our_cookie);
    b.handle(now, from_querier, RESPONDER, msg(&confirm));
    assert_eq!(b.session_count(), 1, "routing state installed");
    assert!(b.poll_transmit().is_none());

    b.handle(now, from_querier, RESPONDER, msg(&d));
    assert!(b.poll_transmit().is_none(), "no No-Routing-State error");
    assert_eq!(
        b.poll_event(),
        Some(Event::Received {
            sid: mri_sid_nli(&pdu(&d)).1,
            flow: FLOW,
            dir: Direction::Downstream,
            peer: QUERIER,
            nslp_data: nslp_data(&pdu(&d)),
        })
    );

    // The RESPONSE goes back upstream to the querier.
    let sid = mri_sid_nli(&pdu(&up)).1;
    b.send(
        now,
        sid,
        FLOW,
        Direction::Upstream,
        RESPONDER,
        nslp_data(&pdu(&up)),
        false,
    );
    let t = only(&mut b);
    assert_eq!(t.dst, SocketAddrV4::new(QUERIER, 270));
    assert_eq!(t.ttl, NSISKA_REPLY_TTL);
    assert_eq!(codec::encode(&t.msg), up, "#54 byte for byte");

    // NSIS-ka's own cookie (not made here) installs nothing, and counts.
    let mut fresh = node(peer_id(&pdu(&r)));
    fresh.handle(now, from_querier, RESPONDER, msg(&c));
    assert_eq!(fresh.session_count(), 0);
    assert_eq!(fresh.counters().bad_cookie, 1);
}

/// We query NSIS-ka: our Query is #50 but for our Query-Cookie; NSIS-ka's
/// Response (#51 echoing our cookie) is taken as the answer to it, our
/// Confirm is #52 and our queued Data #53, byte for byte; NSIS-ka's
/// upstream Data (#54) reaches the session.
#[test]
fn as_querier_nsis_ka_s_response_completes_our_handshake() {
    let (q, r, c, d, up) = (vector(50), vector(51), vector(52), vector(53), vector(54));
    let mut a = node(peer_id(&pdu(&q)));
    let now = Instant::now();
    let sid = mri_sid_nli(&pdu(&q)).1;

    a.send(
        now,
        sid,
        FLOW,
        Direction::Downstream,
        QUERIER,
        nslp_data(&pdu(&d)),
        false,
    );
    let t = only(&mut a);
    assert!(t.qmode, "Q-mode, with the Router Alert option");
    assert_eq!(t.dst, SocketAddrV4::new(RESPONDER, 270));
    assert_eq!(t.ttl, NSISKA_IP_TTL);
    let ours = codec::encode(&t.msg);
    let our_cookie = object_value(&ours, QUERY_COOKIE, 4);
    let their_cookie = object_value(&q, QUERY_COOKIE, 4);
    assert_eq!(
        patch(&ours, &our_cookie, &their_cookie),
        q,
        "header (hops 100, 80 c0), MRI, SID, NLI (IP-TTL 103) as NSIS-ka's Query"
    );

    // A Response with some other cookie is not ours.
    let from_responder = SocketAddrV4::new(RESPONDER, 270);
    a.handle(now, from_responder, QUERIER, msg(&r));
    assert!(a.poll_transmit().is_none(), "a Response to another Query");

    let response = patch(&r, &their_cookie, &our_cookie);
    a.handle(now, from_responder, QUERIER, msg(&response));
    let confirm = a.poll_transmit().expect("a Confirm");
    assert_eq!(confirm.dst, from_responder);
    assert_eq!(confirm.ttl, NSISKA_IP_TTL);
    assert_eq!(
        codec::encode(&confirm.msg),
        c,
        "#52 byte for byte (02 80, D clear, NSIS-ka's cookie echoed)"
    );
    let data = a.poll_transmit().expect("the queued Data");
    assert_eq!(codec::encode(&data.msg), d, "#53 byte for byte");
    assert!(a.poll_transmit().is_none());

    // The RESPONSE (upstream, D set) maps to the session our Query opened.
    a.handle(now, from_responder, QUERIER, msg(&up));
    assert!(a.poll_transmit().is_none(), "no No-Routing-State error");
    assert_eq!(
        a.poll_event(),
        Some(Event::Received {
            sid,
            flow: FLOW,
            dir: Direction::Upstream,
            peer: RESPONDER,
            nslp_data: nslp_data(&pdu(&up)),
        })
    );
}

/// Every Response of the scenario decodes as travelling upstream and, fed
/// to the node that sent the scenario's Query, maps to that Query's session.
#[test]
fn decoded_responses_map_to_the_session_the_query_opened() {
    let (q, r) = (vector(50), vector(51));
    let Msg::Query { dir, sid, .. } = msg(&q) else {
        panic!("#50 is a Query")
    };
    let Msg::Response {
        dir: rdir,
        sid: rsid,
        ..
    } = msg(&r)
    else {
        panic!("#51 is a Response")
    };
    assert_eq!((dir, rdir), (Direction::Downstream, Direction::Upstream));
    assert_eq!(sid, rsid);
    // And the codec writes D back as it read it.
    assert_eq!(codec::encode(&msg(&r)), r);
}

/// `b` with the `len` bytes after the first `tag` replaced by `new`.
fn patch_object(b: &[u8], tag: [u8; 4], new: &[u8]) -> Vec<u8> {
    let old = object_value(b, tag, new.len());
    patch(b, &old, new)
}

fn nli_addr(p: &GistPdu) -> Ipv4Addr {
    match mri_sid_nli(p).2.expect("an NLI").interface {
        std::net::IpAddr::V4(a) => a,
        a => panic!("IPv6 NLI {a}"),
    }
}

/// Every D-mode handshake captured (2 nodes, the 4-node chain's three
/// links, receiver-initiated, and NSIS-ka against an independent peer):
/// where NSIS-ka answered a Query, our Response is its Response but for the
/// Responder-Cookie; where NSIS-ka queried, our Query is its Query but for
/// the Query-Cookie, and given its peer's Response our Confirm is NSIS-ka's.
#[test]
fn every_captured_dmode_handshake_is_reproduced() {
    let udp: Vec<_> = vectors().filter(|v| v.2 == "udp").collect();
    let mut scenarios: Vec<&str> = udp.iter().map(|v| v.0).collect();
    scenarios.dedup();
    let (mut responded, mut queried) = (0, 0);
    for sc in scenarios {
        let first = |ty: &str| {
            udp.iter()
                .find(|v| v.0 == sc && v.3 == ty)
                .map(|v| v.4.clone())
        };
        let (Some(q), Some(r), Some(c)) = (first("Query"), first("Response"), first("Confirm"))
        else {
            continue; // C-mode: the Confirm went over TCP
        };
        let now = Instant::now();
        let Msg::Query { flow, dir, sid, .. } = msg(&q) else {
            panic!("{sc}: a Query")
        };
        let querier = nli_addr(&pdu(&q));
        let responder = nli_addr(&pdu(&r));
        if sc != "nsiska-initiator" {
            // NSIS-ka answered this Query.
            let mut b = node(peer_id(&pdu(&r)));
            b.handle(now, SocketAddrV4::new(querier, 270), responder, msg(&q));
            let ours = codec::encode(&only(&mut b).msg);
            let theirs = object_value(&r, RESPONDER_COOKIE, 28);
            assert_eq!(
                patch_object(&ours, RESPONDER_COOKIE, &theirs),
                r,
                "{sc}: our Response"
            );
            responded += 1;
        }
        if !sc.starts_with("nsiska-responder") {
            // NSIS-ka sent this Query and Confirm.
            let mut a = node(peer_id(&pdu(&q)));
            a.send(now, sid, flow, dir, querier, b"x".to_vec(), false);
            let ours = codec::encode(&only(&mut a).msg);
            let our_cookie = object_value(&ours, QUERY_COOKIE, 4);
            assert_eq!(
                patch_object(&ours, QUERY_COOKIE, &object_value(&q, QUERY_COOKIE, 4)),
                q,
                "{sc}: our Query"
            );
            let response = patch_object(&r, QUERY_COOKIE, &our_cookie);
            a.handle(
                now,
                SocketAddrV4::new(responder, 270),
                querier,
                msg(&response),
            );
            let confirm = a
                .poll_transmit()
                .unwrap_or_else(|| panic!("{sc}: a Confirm"));
            assert_eq!(codec::encode(&confirm.msg), c, "{sc}: our Confirm");
            queried += 1;
        }
    }
    // 2-node, three 4-node links, three receiver-initiated links, and the
    // independent peer's scenarios (3 responder, 1 initiator).
    assert_eq!((responded, queried), (10, 8));
}
