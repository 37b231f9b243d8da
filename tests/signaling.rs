//! Root integration tests of the signaling on a real substrate (paper-4node):
//! setup through the API, reservation state on tb2/tb3, tunnel ends on
//! tb1/tb4, frames from VM1 arriving at VM2, teardown leaving nothing.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

fn setup_req(rate: u64, auth: bool) -> Request {
    Request::Setup {
        from: "VM1".into(),
        to: "VM2".into(),
        rate_bps: vlsp::model::units::Rate::from_bps(rate),
        bidirectional: false,
        backend: None,
        authenticate: auth,
        tunnel: None,
    }
}

fn links(tb: &Testbed, node: &str) -> usize {
    match tb.client(node).unwrap().call(&Request::List).unwrap() {
        Reply::Links { links } => links.len(),
        r => panic!("{r:?}"),
    }
}

#[test]
fn setup_carries_frames_and_teardown_leaves_nothing() {
    if !require_root("setup_carries_frames") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "g");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);
    // Before the link: VM1 cannot reach VM2.
    assert!(
        vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_millis(300))
            .is_err()
    );

    let mut c = tb.client("tb1").unwrap();
    let reply = c.call(&setup_req(10_000_000, true)).unwrap();
    let Reply::LinkUp { vlink } = reply else {
        panic!("{reply:?}")
    };
    // tb1..tb4 all hold state for the session.
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 1, "{n} holds the session");
    }
    // tb2 has a socket connected to each neighbour's port 270, beside its
    // unconnected one (`sockets::neighbour`); `ss -u` lists the connected.
    let udp = ns_output(&vlsp::kernel::substrate::ns_name(&name, "tb2"), "ss -Hun");
    for (me, peer) in [("172.1.2.2", "172.1.2.1"), ("172.2.3.2", "172.2.3.3")] {
        let (me, peer) = (format!("{me}:270"), format!("{peer}:270"));
        assert!(
            udp.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.ends_with(&[me.as_str(), peer.as_str()])
            }),
            "tb2: no socket connected to {peer}:\n{udp}"
        );
    }
    // Frames from VM1 arrive in VM2 and back.
    let rtt = vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(3))
        .unwrap();
    eprintln!("VM1 -> VM2 over the virtual link: {rtt:?}");
    vlsp::kernel::substrate::udp_ping(
        &name,
        "VM2",
        "VM1",
        Ipv4Addr::new(10, 10, 0, 1),
        Duration::from_secs(3),
    )
    .unwrap();

    // A second setup of the same pair is a new link; tearing down an unknown
    // link is a clear API error.
    match c.call(&Request::Teardown { vlink_id: 12345 }).unwrap() {
        Reply::Error { reason, .. } => {
            assert_eq!(reason, vlsp::proto::nslp::ErrorReason::UnknownLink)
        }
        r => panic!("{r:?}"),
    }

    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 0, "{n} is clean");
    }
    assert!(
        vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_millis(300))
            .is_err()
    );
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

#[test]
fn unsigned_request_is_refused_and_installs_nothing() {
    if !require_root("unsigned_request_is_refused") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "u");
    let _guard = Down(t.name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let mut c = tb.client("tb1").unwrap();
    match c.call(&setup_req(1_000_000, false)).unwrap() {
        Reply::Error { reason, message } => {
            assert_eq!(
                reason,
                vlsp::proto::nslp::ErrorReason::AuthorizationFailure,
                "{message}"
            );
        }
        r => panic!("{r:?}"),
    }
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 0, "{n} holds nothing");
    }
    let stats = match tb.client("tb4").unwrap().call(&Request::Stats).unwrap() {
        Reply::Stats { stats } => stats,
        r => panic!("{r:?}"),
    };
    assert_eq!(
        stats.nslp.refused[&vlsp::proto::nslp::RefusalReason::AuthUnsigned],
        1,
        "{stats:?}"
    );
}

#[test]
fn admission_failure_and_unknown_vnode_are_clear_errors() {
    if !require_root("admission_failure") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "a");
    let _guard = Down(t.name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let mut c = tb.client("tb1").unwrap();
    match c.call(&setup_req(5_000_000_000, true)).unwrap() {
        Reply::Error { reason, message } => {
            assert_eq!(
                reason,
                vlsp::proto::nslp::ErrorReason::Admission,
                "{message}"
            );
            assert!(
                message.contains("tb1") && message.contains("eth0"),
                "{message}"
            );
        }
        r => panic!("{r:?}"),
    }
    let bad = Request::Setup {
        from: "VM1".into(),
        to: "VM9".into(),
        rate_bps: vlsp::model::units::Rate::from_bps(1),
        bidirectional: false,
        backend: None,
        authenticate: true,
        tunnel: None,
    };
    match c.call(&bad).unwrap() {
        Reply::Error { reason, message } => {
            assert_eq!(reason, vlsp::proto::nslp::ErrorReason::BadRequest);
            assert!(
                message.contains("VM9") && message.contains("VM2"),
                "{message}"
            );
        }
        r => panic!("{r:?}"),
    }
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 0);
    }
}

#[test]
fn killed_responder_is_noticed_within_three_refresh_periods() {
    if !require_root("killed_responder") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "k");
    let _guard = Down(t.name.clone());
    let refresh = Duration::from_millis(300);
    let opts = Options {
        refresh: Some(refresh),
        ..Options::default()
    };
    let mut tb = Testbed::up(t, &opts).unwrap();
    let mut events = tb.client("tb1").unwrap();
    assert_eq!(events.call(&Request::Events).unwrap(), Reply::Subscribed);
    let mut c = tb.client("tb1").unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_req(1_000_000, true)).unwrap() else {
        panic!()
    };
    // Refreshes keep it up for a while.
    std::thread::sleep(refresh * 4);
    assert_eq!(links(&tb, "tb1"), 1);
    let t0 = std::time::Instant::now();
    tb.kill_node("tb4").unwrap();
    let ev = events.next_event().unwrap();
    let waited = t0.elapsed();
    eprintln!("tb1 learned of tb4's death after {waited:?}: {ev:?}");
    assert_eq!(ev.kind, vlsp::proto::nslp::EventKind::LinkLost);
    assert_eq!(ev.vlink_id, Some(vlink.vlink_id));
    assert!(
        waited <= refresh * 3 + Duration::from_millis(200),
        "{waited:?}"
    );
    assert_eq!(links(&tb, "tb1"), 0, "tb1 freed its side");
    // tb2 and tb3 free theirs too (the tear, or their soft state).
    std::thread::sleep(refresh * 4);
    assert_eq!(links(&tb, "tb2"), 0);
    assert_eq!(links(&tb, "tb3"), 0);
}

#[test]
fn setup_and_teardown_through_a_plain_router() {
    if !require_root("plain_router") {
        return;
    }
    let t = unique_topology("plain-router.toml", "p");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    assert_eq!(tb.nodes.len(), 3, "the plain router runs no NSIS node");
    let mut c = tb.client("a1").unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_req(1_000_000, true)).unwrap() else {
        panic!()
    };
    // a2 intercepted the Query that `plain` forwarded; it holds the session.
    assert_eq!(links(&tb, "a2"), 1);
    vlsp::kernel::substrate::udp_ping(
        &name,
        "VM1",
        "VM2",
        Ipv4Addr::new(10, 70, 0, 2),
        Duration::from_secs(3),
    )
    .unwrap();
    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    for n in ["a1", "a2", "a3"] {
        assert_eq!(links(&tb, n), 0);
    }
}

#[test]
fn a_request_can_choose_the_script_backend() {
    if !require_root("per_request_backend") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "b");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let mut c = tb.client("tb1").unwrap();
    let reply = c
        .call(&setup_request_with(
            "VM1",
            "VM2",
            1_000_000,
            false,
            Some(vlsp::model::tunnel::Backend::Script),
        ))
        .unwrap();
    let Reply::LinkUp { vlink } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(vlink.backend, vlsp::model::tunnel::Backend::Script);

    // tb1's tunnel end came from the paper-style shell script.
    let script = std::path::Path::new(vlsp::model::paths::RUN_DIR)
        .join(&name)
        .join("scripts/tb1/vlink-up.sh");
    assert!(script.exists(), "{}", script.display());
    vlsp::kernel::substrate::udp_ping(
        &name,
        "VM1",
        "VM2",
        Ipv4Addr::new(10, 10, 0, 2),
        Duration::from_secs(3),
    )
    .unwrap();
    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 0);
    }
    // The script removed the device itself.
    let devs = ns_output(
        &vlsp::kernel::substrate::ns_name(&name, "tb1"),
        "ip -br link",
    );
    assert!(!devs.contains("vl"), "{devs}");
    tb.down().unwrap();
}

/// A flood of junk datagrams at tb4's GIST port (more than the node's queue
/// holds) does not make it deaf: the surplus is shed and counted, and a
/// link set up afterwards comes up as usual.
#[test]
fn a_node_flooded_with_junk_still_sets_up_links() {
    if !require_root("flooded_node") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "j");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let ns = std::fs::File::open(vlsp::kernel::netns::ns_path(&vlsp::kernel::netns::ns_name(
        &name, "tb3",
    )))
    .unwrap();
    // The socket keeps the namespace it was created in (tb3, tb4's neighbour).
    let sock =
        vlsp::kernel::netns::with_netns(&ns, || std::net::UdpSocket::bind("0.0.0.0:0").unwrap())
            .unwrap();
    let tb4 = std::net::SocketAddrV4::new(Ipv4Addr::new(172, 3, 4, 4), 270);
    let mut sent = 0;
    for i in 0..20_000u32 {
        if sock.send_to(&i.to_be_bytes().repeat(5), tb4).is_ok() {
            sent += 1;
        }
    }
    assert!(sent > 10_000, "only {sent} junk datagrams sent");
    let mut c = tb.client("tb1").unwrap();
    match c.call(&setup_req(1_000_000, true)).unwrap() {
        Reply::LinkUp { .. } => {}
        r => panic!("setup after the flood: {r:?}"),
    }
    assert_eq!(links(&tb, "tb4"), 1);
    match tb.client("tb4").unwrap().call(&Request::Stats).unwrap() {
        Reply::Stats { stats } => {
            eprintln!(
                "tb4 after {sent} junk datagrams: junk {}, shed {}, refused early {:?}",
                stats.junk, stats.shed_overload, stats.refused_early
            );
            // Junk fails the cheap check: counted, never queued.
            assert!(stats.junk > 0 && stats.shed_overload == 0, "{stats:?}");
        }
        r => panic!("{r:?}"),
    }
    tb.down().unwrap();
}

/// A link set up right after the teardown of another between the same
/// virtual nodes carries frames at once: the old tunnel end, disabled but
/// deleted only after `DELETE_DELAY`, must not keep the MAC addresses its
/// bridge port learned (they sent VM1's frames to the disabled port).
#[test]
fn a_link_right_after_a_teardown_carries_frames() {
    if !require_root("a_link_right_after_a_teardown") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "rt");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);
    let mut c = tb.client("tb1").unwrap();
    for i in 0..3 {
        let Reply::LinkUp { vlink } = c.call(&setup_req(1_000_000, true)).unwrap() else {
            panic!("link {i} refused")
        };
        vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("link {i}: no frames cross it: {e:#}"));
        teardown_ok(&mut c, vlink.vlink_id);
    }
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}
