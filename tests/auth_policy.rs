//! Root integration tests of the authorization rules on a real substrate
//! (paper-4node): a RESPONSE whose HMAC does not verify brings nothing up at
//! the initiator; a setup captured on the wire and replayed byte for byte
//! after its teardown installs nothing and is counted as `auth_replay`.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use vlsp::kernel::capture::{Capture, Frame};
use vlsp::model::measure::Recorder;
use vlsp::model::ports::GIST_PORT;
use vlsp::node::api::{Reply, Request};
use vlsp::node::{NodeConfig, spawn_node};
use vlsp::proto::nslp::{ErrorReason, RefusalReason};
use vlsp::testbed::{Options, Testbed};

const TB4: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 4);
const TB3: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 3);

fn links(tb: &Testbed, node: &str) -> usize {
    match tb.client(node).unwrap().call(&Request::List).unwrap() {
        Reply::Links { links } => links.len(),
        r => panic!("{r:?}"),
    }
}

/// Tunnel-end devices (`vl...`) in `node`'s namespace.
fn tunnel_devs(topo: &str, node: &str) -> Vec<String> {
    let ns = vlsp::kernel::substrate::ns_name(topo, node);
    ns_output(&ns, "ls /sys/class/net")
        .lines()
        .filter(|l| l.starts_with("vl"))
        .map(String::from)
        .collect()
}

/// tb4 answers with HMACs made with a key whose secret tb1 does not hold
/// (as a forger on the path would): tb1 refuses every RESPONSE, the request
/// fails after the retry limit as an authorization failure, and tb1 has no
/// tunnel end and no reservation class.
#[test]
fn forged_response_brings_nothing_up_at_the_initiator() {
    if !require_root("forged_response") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "f");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let mut tb = Testbed::up(t, &Options::default()).unwrap();
    tb.kill_node("tb4").unwrap();
    let mut cfg = NodeConfig::from_topology(&tb.topo, "tb4").unwrap();
    cfg.api_socket = tb.run.api_socket("tb4").with_file_name("tb4-forged.sock");
    cfg.script_dir = tb.run.scripts_dir("tb4");
    let own = cfg.own_signer.clone();
    let mut forged = vlsp::wire::auth::KeyRing::new();
    forged.insert(
        own.key_id,
        b"a forger's key, not the provider's",
        own.transform,
    );
    cfg.sign_keys = forged;
    let tb4 = spawn_node(cfg, Recorder::disabled("tb4")).unwrap();

    let mut c = tb.client("tb1").unwrap();
    match c.call(&setup_request("VM1", "VM2", 1_000_000)).unwrap() {
        Reply::Error { reason, message } => {
            assert_eq!(reason, ErrorReason::AuthorizationFailure, "{message}");
            assert!(message.contains("does not match"), "{message}");
        }
        r => panic!("a forged RESPONSE brought the link up: {r:?}"),
    }
    assert_eq!(links(&tb, "tb1"), 0);
    // tb1 makes its tunnel end while the RESERVE travels; a refused setup
    // hands it to the reaper, which deletes it off the signaling path.
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !tunnel_devs(&name, "tb1").is_empty() && std::time::Instant::now() < gone {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        tunnel_devs(&name, "tb1").is_empty(),
        "{:?}",
        tunnel_devs(&name, "tb1")
    );
    assert_eq!(reservations(&name, "tb1"), (0, 0), "no class at tb1");
    let s = node_stats(&tb, "tb1");
    assert!(
        s.refused_early
            .get(&RefusalReason::AuthBadSignature)
            .copied()
            >= Some(1),
        "{s:?}"
    );
    tb4.stop();
    tb.down().unwrap();
}

/// The UDP payload of a GIST datagram tb4 received, from its capture.
fn gist_payload_to_tb4(f: &Frame) -> Option<Vec<u8>> {
    let b = &f.bytes;
    if f.outgoing || b.len() < 14 || b[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &b[14..];
    let ihl = (*ip.first()? & 0x0f) as usize * 4;
    if ip.len() < ihl + 8 || ip[9] != 17 || ip[16..20] != TB4.octets() {
        return None;
    }
    let udp = &ip[ihl..];
    if u16::from_be_bytes([udp[2], udp[3]]) != GIST_PORT {
        return None;
    }
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    udp.get(8..ulen).map(<[u8]>::to_vec)
}

/// A setup and teardown captured at tb4, replayed byte for byte from tb3's
/// address after the teardown (Query, Confirm, RESERVEs, tear): nothing is
/// installed on any hop and tb4 counts the RESERVEs as replays.
#[test]
fn replayed_setup_installs_nothing() {
    if !require_root("replayed_setup") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "r");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let cap = Capture::start(&name, &["tb4".to_string()]).unwrap();
    let mut c = tb.client("tb1").unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_request("VM1", "VM2", 1_000_000)).unwrap() else {
        panic!("setup failed")
    };
    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    std::thread::sleep(Duration::from_millis(50));
    let (frames, _) = cap.stop().unwrap();
    let replay: Vec<Vec<u8>> = frames.iter().filter_map(gist_payload_to_tb4).collect();
    assert!(replay.len() >= 4, "captured {} datagrams", replay.len());

    // From tb3's address on the tb3-tb4 link, inside tb3's namespace.
    let sock = udp_socket_in(&name, "tb3", TB3);
    for p in &replay {
        sock.send_to(p, SocketAddrV4::new(TB4, GIST_PORT)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 0, "{n} holds nothing");
        assert_eq!(reservations(&name, n), (0, 0), "no class on {n}");
    }
    assert!(
        tunnel_devs(&name, "tb4").is_empty(),
        "{:?}",
        tunnel_devs(&name, "tb4")
    );
    let s = node_stats(&tb, "tb4");
    eprintln!(
        "tb4 after replaying {} datagrams: {:?}",
        replay.len(),
        s.refused_early
    );
    assert!(
        s.refused_early.get(&RefusalReason::AuthReplay).copied() >= Some(1),
        "{s:?}"
    );
    tb.down().unwrap();
}

/// An unsigned TEAR for `sid`, made from the RESERVE `reserve` (a GIST Data
/// PDU tb3 sent tb4) with its authorization removed: what NSIS-ka sends. Its
/// NLI names `nli_addr` as the sending peer.
fn unsigned_tear(reserve: &[u8], nli_addr: Ipv4Addr) -> Vec<u8> {
    use vlsp::proto::gist::codec;
    use vlsp::proto::gist::machine::Msg;
    use vlsp::wire::nslp::NslpMessage;
    use vlsp::wire::profile::Profile;
    let Some(Msg::Data {
        flow,
        dir,
        sid,
        nli,
        nslp_data,
    }) = codec::decode(reserve).unwrap()
    else {
        panic!("not a GIST Data PDU")
    };
    let r = NslpMessage::decode(&nslp_data, Profile::Rfc).unwrap();
    let (rsn, epoch) = r.rsn().unwrap();
    let tear = NslpMessage::tear(rsn.wrapping_add(1), epoch, None);
    let nli = nli.map(|mut n| {
        if n.addr != nli_addr {
            n.addr = nli_addr;
            n.peer_id[..4].copy_from_slice(&nli_addr.octets());
        }
        n
    });
    codec::encode(&Msg::Data {
        flow,
        dir,
        sid,
        nli,
        nslp_data: tear.to_bytes(Profile::Rfc),
    })
}

/// Sets up a signed link VM1 -> VM2 with tb4 captured; returns the RESERVE
/// Data PDU tb3 sent tb4.
fn signed_setup_captured(tb: &Testbed, name: &str) -> Vec<u8> {
    let cap = Capture::start(name, &["tb4".to_string()]).unwrap();
    let mut c = tb.client("tb1").unwrap();
    let r = c.call(&setup_request("VM1", "VM2", 1_000_000)).unwrap();
    assert!(matches!(r, Reply::LinkUp { .. }), "{r:?}");
    let (frames, _) = cap.stop().unwrap();
    frames
        .iter()
        .filter_map(gist_payload_to_tb4)
        .find(|p| {
            matches!(
                vlsp::proto::gist::codec::decode(p),
                Ok(Some(vlsp::proto::gist::machine::Msg::Data { .. }))
            )
        })
        .expect("the RESERVE tb3 forwarded to tb4")
}

/// Unsigned TEARs (as NSIS-ka sends them): refused under the default
/// policy; under `unsigned_tear = "same-peer"` refused from another peer
/// and accepted from tb3, the peer whose signed RESERVE set the link up.
#[test]
fn unsigned_tear_only_under_the_policy_and_from_the_same_peer() {
    if !require_root("unsigned_tear") {
        return;
    }
    let tb2 = Ipv4Addr::new(172, 2, 3, 2);
    // Default policy.
    let t = unique_topology("paper-4node.toml", "d");
    let name = t.name.clone();
    let guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let reserve = signed_setup_captured(&tb, &name);
    let sock = udp_socket_in(&name, "tb3", TB3);
    sock.send_to(
        &unsigned_tear(&reserve, TB3),
        SocketAddrV4::new(TB4, GIST_PORT),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(links(&tb, "tb4"), 1, "refused by default: the link stays");
    let s = node_stats(&tb, "tb4");
    assert!(
        s.nslp.refused.get(&RefusalReason::AuthUnsigned).copied() >= Some(1),
        "{s:?}"
    );
    tb.down().unwrap();
    drop(guard);

    // unsigned_tear = "same-peer".
    let t = unique_topology_with("paper-4node.toml", "p", |s| {
        s.replacen(
            "\n[[node]]",
            "\n[provider.auth]\nunsigned_tear = \"same-peer\"\n\n[[node]]",
            1,
        )
    });
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let reserve = signed_setup_captured(&tb, &name);
    // From tb2, naming itself: not the peer of the signed setup.
    let other = udp_socket_in(&name, "tb2", tb2);
    other
        .send_to(
            &unsigned_tear(&reserve, tb2),
            SocketAddrV4::new(TB4, GIST_PORT),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(links(&tb, "tb4"), 1, "refused from another peer");
    assert_eq!(tunnel_devs(&name, "tb4").len(), 1);
    // From tb3: accepted, tb4 removes its end.
    let sock = udp_socket_in(&name, "tb3", TB3);
    sock.send_to(
        &unsigned_tear(&reserve, TB3),
        SocketAddrV4::new(TB4, GIST_PORT),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(links(&tb, "tb4"), 0, "accepted from the same peer");
    assert!(tunnel_devs(&name, "tb4").is_empty());
    tb.down().unwrap();
}
