//! Root tests of reservations that follow the route (issue 15 item 3) on
//! `ring-6node`: VM1 on r0, VM2 on r3, so the signed link's path is
//! r0-r1-r2-r3 and the other way round the ring is r0-r5-r4-r3. A fault
//! takes r1-r2 down at both ends; where the test plays the static routing
//! oracle, every router's routes are replaced by the shortest paths of the
//! ring without that link.

mod common;

use common::*;
use std::time::{Duration, Instant};
use vlsp::kernel::tc::SIGNALING_CLASS;
use vlsp::node::api::{Reply, Request};
use vlsp::proto::nslp::EventKind;
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::Topology;

const VM2: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 60, 0, 2);

/// Takes the link between `a` and `b` down at both ends; with `reroute`,
/// replaces every router's routes by those of the topology without it.
fn fail_link(topo: &Topology, a: &str, b: &str, reroute: bool) {
    let l = topo
        .links
        .iter()
        .find(|l| (l.a.node == a && l.b.node == b) || (l.a.node == b && l.b.node == a))
        .expect("the link exists");
    for e in [&l.a, &l.b] {
        let ns = vlsp::kernel::substrate::ns_name(&topo.name, &e.node);
        ip_in(&ns, &format!("link set {} down", e.ifname));
    }
    if !reroute {
        return;
    }
    let mut cut = topo.clone();
    cut.links.retain(|x| x != l);
    for r in RING {
        let ns = vlsp::kernel::substrate::ns_name(&topo.name, r);
        // The routes are aggregated per next hop: the old ones go first.
        let old = std::process::Command::new("ip")
            .args(["-n", &ns, "route", "show"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&old.stdout).lines() {
            if line.contains(" via ") {
                let prefix = line.split_whitespace().next().unwrap();
                ip_in(&ns, &format!("route del {prefix}"));
            }
        }
        for route in cut.routes(r) {
            ip_in(
                &ns,
                &format!(
                    "route replace {}/{} via {} dev {}",
                    route.dest, route.prefix_len, route.via, route.ifname
                ),
            );
        }
    }
}

fn vlinks(tb: &Testbed, node: &str) -> usize {
    match tb.client(node).unwrap().call(&Request::List).unwrap() {
        Reply::Links { links } => links.len(),
        r => panic!("{r:?}"),
    }
}

fn up(tag: &str, edit: impl Fn(String) -> String) -> (Testbed, Down, String, Topology) {
    let t = unique_topology_with("ring-6node.toml", tag, edit);
    let name = t.name.clone();
    let guard = Down(name.clone());
    let opts = Options {
        refresh: Some(Duration::from_secs(1)),
        ..Options::default()
    };
    let tb = Testbed::up(t.clone(), &opts).unwrap();
    (tb, guard, name, t)
}

fn setup(tb: &Testbed) -> u64 {
    let mut c = tb.client("r0").unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_request("VM1", "VM2", 5_000_000)).unwrap() else {
        panic!("setup failed")
    };
    vlink.vlink_id
}

#[test]
fn link_down_moves_the_reservation_to_the_other_side_of_the_ring() {
    if !require_root("link_down_moves_the_reservation") {
        return;
    }
    let (tb, _guard, name, topo) = up("rr", |s| s);
    let ev = subscribe(tb.client("r0").unwrap());
    let vlink_id = setup(&tb);
    assert_eq!(
        ring_reserved(&name),
        [
            ("r0", 1),
            ("r1", 1),
            ("r2", 1),
            ("r3", 0),
            ("r4", 0),
            ("r5", 0)
        ]
    );
    vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", VM2, Duration::from_secs(3))
        .expect("VM1 reaches VM2 before the fault");

    let t0 = Instant::now();
    fail_link(&topo, "r1", "r2", true);
    let routed = t0.elapsed();
    let mut seen = vec![];
    let (t_changed, changed) = wait_for(
        &ev,
        EventKind::PathChanged,
        Duration::from_secs(5),
        &mut seen,
    );
    let (t_repaired, repaired) =
        wait_for(&ev, EventKind::Repaired, Duration::from_secs(5), &mut seen);
    eprintln!(
        "routes replaced in {routed:?}; path_changed after {:?}, repaired after {:?} ({})",
        t_changed - t0,
        t_repaired - t0,
        repaired.message
    );
    assert_eq!(changed.vlink_id, Some(vlink_id));
    assert!(changed.message.contains("10.6.5.1"), "{}", changed.message);
    assert!(
        seen.iter().all(|e| e.kind != EventKind::LinkLost),
        "{seen:?}"
    );
    // The new hops hold the classes; r1's branch was torn at once.
    let now = ring_reserved(&name);
    for (r, n) in [("r0", 1), ("r1", 0), ("r5", 1), ("r4", 1), ("r3", 0)] {
        assert!(now.contains(&(r, n)), "{r}: {now:?}");
    }
    let r0 = ns_output(
        &vlsp::kernel::substrate::ns_name(&name, "r0"),
        "tc class show dev eth1",
    );
    assert!(
        r0.contains("rate 5Mbit"),
        "r0's class is on its link to r5: {r0}"
    );
    // The virtual link still carries frames, its tunnel ends unchanged.
    vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", VM2, Duration::from_secs(3))
        .expect("VM1 reaches VM2 over the new path");
    // r2, cut off from r1, lets the old branch expire (3 refresh periods);
    // refreshes keep the new path.
    std::thread::sleep(Duration::from_secs(5));
    let later: Vec<_> = ev.try_iter().map(|(_, e)| e).collect();
    assert!(later.is_empty(), "{later:?}");
    assert_eq!(
        ring_reserved(&name),
        [
            ("r0", 1),
            ("r1", 0),
            ("r2", 0),
            ("r3", 0),
            ("r4", 1),
            ("r5", 1)
        ]
    );
    assert_eq!(vlinks(&tb, "r0"), 1, "the link is still up");
    let r = tb
        .client("r0")
        .unwrap()
        .call(&Request::Teardown { vlink_id })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    assert!(
        ring_reserved(&name).iter().all(|(_, n)| *n == 0),
        "{:?}",
        ring_reserved(&name)
    );
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

#[test]
fn admission_failure_on_the_new_path_is_repair_failed_and_frees_it_all() {
    if !require_root("admission_failure_on_the_new_path") {
        return;
    }
    // r5's link to r4 has room for 1 Mbit/s only.
    let (tb, _guard, name, topo) = up("rf", |s| {
        s.replacen(
            "b = \"r5:10.6.4.2/24\"\ncapacity = \"100mbit\"",
            "b = \"r5:10.6.4.2/24\"\ncapacity = \"1mbit\"",
            1,
        )
    });
    let ev = subscribe(tb.client("r0").unwrap());
    setup(&tb);
    let t0 = Instant::now();
    fail_link(&topo, "r1", "r2", true);
    let mut seen = vec![];
    let (t_failed, failed) = wait_for(
        &ev,
        EventKind::RepairFailed,
        Duration::from_secs(5),
        &mut seen,
    );
    eprintln!(
        "repair_failed after {:?}: {}",
        t_failed - t0,
        failed.message
    );
    assert!(failed.message.contains("r5"), "{}", failed.message);
    wait_for(&ev, EventKind::LinkLost, Duration::from_secs(5), &mut seen);
    assert!(
        seen.iter().any(|e| e.kind == EventKind::PathChanged),
        "{seen:?}"
    );
    assert_eq!(vlinks(&tb, "r0"), 0);
    // Nothing stays: the repair's class at r0 at once, r1 by the tear, r2
    // and the responder r3 by expiry.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        ring_reserved(&name).iter().all(|(_, n)| *n == 0),
        "{:?}",
        ring_reserved(&name)
    );
    for r in RING {
        assert_eq!(vlinks(&tb, r), 0, "{r} holds no session");
    }
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

#[test]
fn cut_path_without_a_new_route_is_link_lost_within_seconds() {
    if !require_root("cut_path_without_a_new_route") {
        return;
    }
    // Refresh period 30 s: the loss must not wait for it.
    let t = unique_topology("ring-6node.toml", "rc");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t.clone(), &Options::default()).unwrap();
    let ev = subscribe(tb.client("r0").unwrap());
    setup(&tb);
    let t0 = Instant::now();
    fail_link(&t, "r1", "r2", false);
    let mut seen = vec![];
    let (at, lost) = wait_for(&ev, EventKind::LinkLost, Duration::from_secs(5), &mut seen);
    eprintln!("link_lost at r0 after {:?}: {}", at - t0, lost.message);
    assert!(at - t0 < Duration::from_secs(3), "{:?}", at - t0);
    assert_eq!(reservations(&name, "r0").0, 0);
    assert_eq!(reservations(&name, "r1").0, 0);
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

/// Issue 15: repair RESERVEs must not drown in a best-effort flood, so
/// every shaped substrate interface has a signaling class (SIGNALING_CLASS) and its
/// u32 filters (GIST UDP 270, C-mode TCP, OSPF, BFD) right after `up`.
#[tokio::test(flavor = "current_thread")]
async fn every_shaped_link_has_a_signaling_class_and_filters() {
    if !require_root("every_shaped_link_has_a_signaling_class_and_filters") {
        return;
    }
    let mut t = unique_topology("paper-4node.toml", "sig");
    for l in &mut t.links {
        l.capacity_bps = 20_000_000;
    }
    let _guard = Down(t.name.clone());
    vlsp::kernel::substrate::up(&t).await.unwrap();
    let ns = vlsp::kernel::substrate::ns_name(&t.name, "tb2");
    for dev in ["eth0", "eth1"] {
        let classes = ns_output(&ns, &format!("tc class show dev {dev}"));
        let sig = classes
            .lines()
            .find(|l| l.starts_with(&format!("class htb {SIGNALING_CLASS} ")))
            .unwrap_or_else(|| panic!("no signaling class on tb2:{dev}: {classes}"));
        assert!(
            sig.contains("prio 0") && sig.contains("rate 256Kbit") && sig.contains("ceil 20Mbit"),
            "{sig}"
        );
        let filters = ns_output(&ns, &format!("tc filter show dev {dev}"));
        let n = filters
            .lines()
            .filter(|l| l.contains(&format!("flowid {SIGNALING_CLASS}")))
            .count();
        assert_eq!(n, 6, "signaling filters on tb2:{dev}: {filters}");
        // No reservation yet: the link's own classes and filters only.
    }
    assert_eq!(reservations(&t.name, "tb2"), (0, 0));
    vlsp::kernel::substrate::down(&t.name).unwrap();
}
