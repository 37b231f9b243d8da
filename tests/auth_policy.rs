//! Root integration tests of the authorization rules on a real substrate
//! (paper-4node): a RESPONSE whose HMAC does not verify brings nothing up at
//! the initiator; a setup captured on the wire and replayed byte for byte
//! after its teardown installs nothing and is counted as `auth_replay`.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;
use vlsp::kernel::capture::{Capture, Frame};
use vlsp::model::measure::Recorder;
use vlsp::model::ports::GIST_PORT;
use vlsp::node::api::{Reply, Request, Stats};
use vlsp::node::{NodeConfig, spawn_node};
use vlsp::proto::nslp::{ErrorReason, RefusalReason};
use vlsp::testbed::{Options, Testbed};

const TB4: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 4);
const TB3: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 3);

fn stats(tb: &Testbed, node: &str) -> Stats {
    match tb.client(node).unwrap().call(&Request::Stats).unwrap() {
        Reply::Stats { stats } => stats,
        r => panic!("{r:?}"),
    }
}

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
    assert!(
        tunnel_devs(&name, "tb1").is_empty(),
        "{:?}",
        tunnel_devs(&name, "tb1")
    );
    assert_eq!(reservations(&name, "tb1"), (0, 0), "no class at tb1");
    let s = stats(&tb, "tb1");
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
    let ns = std::fs::File::open(vlsp::kernel::netns::ns_path(&vlsp::kernel::netns::ns_name(
        &name, "tb3",
    )))
    .unwrap();
    let sock = vlsp::kernel::netns::with_netns(&ns, || {
        UdpSocket::bind(SocketAddrV4::new(TB3, 0)).unwrap()
    })
    .unwrap();
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
    let s = stats(&tb, "tb4");
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
