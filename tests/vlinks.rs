//! Root tests of virtual links as L2 segments (vif-4node: three virtual
//! interfaces per virtual node): several links between the same virtual
//! nodes, in both directions, make no loop and each carries its own
//! traffic; the responder honours the tunnel type the VLSP object asks for.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::model::tunnel::TunnelKind;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

fn setup(from: &str, to: &str, tunnel: Option<TunnelKind>) -> Request {
    Request::Setup {
        from: from.into(),
        to: to.into(),
        rate_bps: vlsp::model::units::Rate::from_bps(1_000_000),
        bidirectional: false,
        backend: None,
        authenticate: true,
        tunnel,
    }
}

fn link_count(tb: &Testbed, node: &str) -> usize {
    match tb.client(node).unwrap().call(&Request::List).unwrap() {
        Reply::Links { links } => links.len(),
        r => panic!("{r:?}"),
    }
}

/// Packets sent plus received on `node`'s substrate interface `dev`.
fn packets(topo: &str, node: &str, dev: &str) -> u64 {
    let ns = vlsp::kernel::substrate::ns_name(topo, node);
    ns_output(
        &ns,
        &format!(
            "cat /sys/class/net/{dev}/statistics/rx_packets /sys/class/net/{dev}/statistics/tx_packets"
        ),
    )
    .lines()
    .map(|l| l.trim().parse::<u64>().unwrap())
    .sum()
}

#[test]
fn links_in_both_directions_between_two_nodes_make_no_loop() {
    if !require_root("links_make_no_loop") {
        return;
    }
    let t = unique_topology("vif-4node.toml", "l");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let mut c1 = tb.client("tb1").unwrap();
    let mut c4 = tb.client("tb4").unwrap();
    // VM1 -> VM2 twice (the first free interfaces, then named ones), then
    // VM2 -> VM1: three links, three pairs of interfaces.
    let mut up = vec![];
    for (host, from, to) in [
        ("tb1", "VM1", "VM2"),
        ("tb1", "VM1:2", "VM2:2"),
        ("tb4", "VM2", "VM1"),
    ] {
        let c = if host == "tb1" { &mut c1 } else { &mut c4 };
        match c.call(&setup(from, to, None)).unwrap() {
            Reply::LinkUp { vlink } => up.push(vlink),
            r => panic!("{from} -> {to}: {r:?}"),
        }
    }
    let pairs: Vec<_> = up.iter().map(|l| (l.from_vif, l.to_vif)).collect();
    assert_eq!(pairs, [(1, 1), (2, 2), (3, 3)], "{up:?}");
    // A busy interface is refused, naming it and the free ones.
    match c1.call(&setup("VM1:1", "VM2", None)).unwrap() {
        Reply::Error { message, .. } => {
            assert!(
                message.contains("VM1:1") && message.contains("carries"),
                "{message}"
            )
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(link_count(&tb, "tb1"), 3);

    // Quiet: with no user traffic the substrate carries next to nothing
    // once the fresh interfaces' IPv6 DAD/MLD chatter has died down; a loop
    // never dies down (tens of thousands of frames a second).
    let substrate = || packets(&name, "tb2", "eth0") + packets(&name, "tb3", "eth1");
    let mut windows = vec![];
    for _ in 0..8 {
        let before = substrate();
        std::thread::sleep(Duration::from_secs(2));
        windows.push(substrate() - before);
        if *windows.last().unwrap() < 20 {
            break;
        }
    }
    eprintln!("substrate packets per 2 s without user traffic: {windows:?}");
    let quiet = *windows.last().unwrap();
    assert!(quiet < 20, "{windows:?} packets per 2 s: an L2 loop?");

    // Each link carries its own traffic: a ping over each pair of
    // interfaces (VM1 ethN <-> VM2 ethN).
    for net in [10u8, 11, 12] {
        let vm2 = Ipv4Addr::new(10, net, 0, 2);
        let rtt =
            vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("VM1 -> {vm2}: {e:#}"));
        eprintln!("VM1 -> {vm2}: {rtt:?}");
        vlsp::kernel::substrate::udp_ping(
            &name,
            "VM2",
            "VM1",
            Ipv4Addr::new(10, net, 0, 1),
            Duration::from_secs(3),
        )
        .unwrap();
    }
    // Tearing the middle link down silences its pair only.
    let r = c1
        .call(&Request::Teardown {
            vlink_id: up[1].vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    let v11 = Ipv4Addr::new(10, 11, 0, 2);
    assert!(
        vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", v11, Duration::from_millis(300))
            .is_err()
    );
    vlsp::kernel::substrate::udp_ping(
        &name,
        "VM1",
        "VM2",
        Ipv4Addr::new(10, 12, 0, 2),
        Duration::from_secs(3),
    )
    .unwrap();
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

#[test]
fn the_responder_builds_the_tunnel_type_asked_for_or_says_why_not() {
    if !require_root("tunnel_type_honoured") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "i");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let mut c = tb.client("tb1").unwrap();
    match c
        .call(&setup("VM1", "VM2", Some(TunnelKind::Ipip)))
        .unwrap()
    {
        Reply::Error { reason, message } => {
            eprintln!("IP-in-IP: {reason}: {message}");
            assert!(
                message.contains("ipip") && message.contains("172.3.4.4"),
                "{message}"
            );
        }
        r => panic!("IP-in-IP came up: {r:?}"),
    }
    // Nothing installed: no session, no reservation class, no tunnel end.
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(link_count(&tb, n), 0, "{n} holds a session");
        assert_eq!(reservations(&name, n), (0, 0), "{n} holds a class");
        let devs = ns_output(&vlsp::kernel::substrate::ns_name(&name, n), "ip -br link");
        assert!(!devs.contains("vl"), "{n}: {devs}");
    }
    // The refusal is counted at the responder.
    match tb.client("tb4").unwrap().call(&Request::Stats).unwrap() {
        Reply::Stats { stats } => assert_eq!(
            stats
                .nslp
                .refused
                .get(&vlsp::proto::nslp::RefusalReason::Vlink),
            Some(&1),
            "{stats:?}"
        ),
        r => panic!("{r:?}"),
    }
    // VXLAN, asked for explicitly, works.
    match c
        .call(&setup("VM1", "VM2", Some(TunnelKind::Vxlan)))
        .unwrap()
    {
        Reply::LinkUp { vlink } => assert_eq!(vlink.tunnel, TunnelKind::Vxlan),
        r => panic!("{r:?}"),
    }
    vlsp::kernel::substrate::udp_ping(
        &name,
        "VM1",
        "VM2",
        Ipv4Addr::new(10, 10, 0, 2),
        Duration::from_secs(3),
    )
    .unwrap();
    tb.down().unwrap();
}
