//! Root integration tests of QoS enforcement: reservations become HTB
//! classes and u32 filters on every hop, go away on teardown, on a refresh
//! timeout and when a node stops; admission stays exact under concurrent
//! requests; a reserved virtual link keeps its rate under a flood; and a
//! node's next instance removes the classes a killed one left.

mod common;

use common::*;
use std::time::Duration;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

#[test]
fn classes_follow_the_reservation_on_every_hop() {
    if !require_root("classes_follow_the_reservation") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "q");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let refresh = Duration::from_millis(300);
    let mut tb = Testbed::up(
        t,
        &Options {
            refresh: Some(refresh),
            ..Options::default()
        },
    )
    .unwrap();
    // Every substrate link is shaped: a root HTB on both ends.
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        let q = ns_output(
            &vlsp::kernel::substrate::ns_name(&name, n),
            "for d in $(ls /sys/class/net); do tc qdisc show dev $d; done",
        );
        assert!(q.contains("qdisc htb 1: root"), "{n}: {q}");
    }
    let mut c = tb.client("tb1").unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_request("VM1", "VM2", 5_000_000)).unwrap() else {
        panic!()
    };
    // The QNI and both QNEs reserve downstream; the QNR has no egress hop.
    for n in ["tb1", "tb2", "tb3"] {
        assert_eq!(reservations(&name, n), (1, 1), "{n} after setup");
    }
    assert_eq!(reservations(&name, "tb4"), (0, 0));
    let class = ns_output(
        &vlsp::kernel::substrate::ns_name(&name, "tb2"),
        "tc class show dev eth1",
    );
    assert!(
        class.contains("rate 5Mbit ceil 5Mbit"),
        "the class has the TMOD rate: {class}"
    );
    // Refreshes do not add classes.
    std::thread::sleep(refresh * 3);
    for n in ["tb1", "tb2", "tb3"] {
        assert_eq!(reservations(&name, n), (1, 1), "{n} after refreshes");
    }
    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    // Each hop's class is idle, not deleted: no filter, prio 7.
    for n in ["tb1", "tb2", "tb3"] {
        assert_eq!(classes(&name, n), (0, 1, 0), "{n} after teardown");
    }
    let tb2_eth1 = || {
        ns_output(
            &vlsp::kernel::substrate::ns_name(&name, "tb2"),
            "tc class show dev eth1",
        )
    };
    let class_2 = |shown: String| {
        shown
            .lines()
            .find(|l| l.starts_with("class htb 1:2 "))
            .unwrap_or_else(|| panic!("no class 1:2 on tb2's eth1: {shown}"))
            .to_string()
    };
    let idle = class_2(tb2_eth1());
    assert!(
        vlsp::kernel::tc::is_idle_line(&idle) && idle.contains(" prio 7 rate 5Mbit ceil 5Mbit"),
        "idle: prio 7, at its rate: {idle}"
    );

    // Refresh timeout: the QNI stops (its own classes go with it), the
    // QNEs hear no more refreshes and drop theirs after the lifetime.
    let Reply::LinkUp { .. } = c.call(&setup_request("VM1", "VM2", 5_000_000)).unwrap() else {
        panic!()
    };
    // The next reservation takes the idle class back.
    for n in ["tb1", "tb2", "tb3"] {
        assert_eq!(classes(&name, n), (1, 0, 1), "{n} after the second setup");
    }
    let again = class_2(tb2_eth1());
    assert!(
        again.contains(" prio 0 rate 5Mbit ceil 5Mbit"),
        "the idle class at the TMOD rate again: {again}"
    );
    tb.kill_node("tb1").unwrap();
    assert_eq!(
        classes(&name, "tb1"),
        (0, 0, 0),
        "a stopped node removes its classes, idle ones too"
    );
    // Its neighbours share its thread and kernel thread (the default):
    // theirs stay until the refresh timeout.
    for n in ["tb2", "tb3"] {
        assert_eq!(reservations(&name, n), (1, 1), "{n} after tb1 stopped");
    }
    std::thread::sleep(refresh * 5);
    for n in ["tb2", "tb3"] {
        assert_eq!(
            classes(&name, n),
            (0, 1, 0),
            "{n} after the refresh timeout"
        );
    }
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

/// Six virtual node pairs over tb1..tb4 whose middle link (tb2-tb3) has room
/// for four 5 Mbit/s reservations, while tb1's has room for all six: the
/// QNE refuses two, and the QNI must take back the classes it installed.
#[test]
fn concurrent_requests_admit_exactly_what_fits_100_times() {
    if !require_root("concurrent_requests") {
        return;
    }
    let t = unique_topology_with("paper-4node.toml", "c", |s| {
        let mut s = s.replacen(
            "a = \"tb2:172.2.3.2/24\"\nb = \"tb3:172.2.3.3/24\"\ncapacity = \"1gbit\"",
            "a = \"tb2:172.2.3.2/24\"\nb = \"tb3:172.2.3.3/24\"\ncapacity = \"20mbit\"",
            1,
        );
        for i in 3..9 {
            s += &format!(
                "\n[[vnode]]\nname = \"A{i}\"\nvnet = \"vnet1\"\nhost = \"tb1\"\nid = {i}\naddress = \"10.10.{i}.1/24\"\n\n[[vnode]]\nname = \"B{i}\"\nvnet = \"vnet1\"\nhost = \"tb4\"\nid = {}\naddress = \"10.10.{i}.2/24\"\n",
                100 + i
            );
        }
        s
    });
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    for round in 0..100 {
        let results: Vec<Reply> = std::thread::scope(|s| {
            let hs: Vec<_> = (3..9)
                .map(|i| {
                    let mut c = tb.client("tb1").unwrap();
                    s.spawn(move || {
                        c.call(&setup_request(
                            &format!("A{i}"),
                            &format!("B{i}"),
                            5_000_000,
                        ))
                        .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let up: Vec<u64> = results
            .iter()
            .filter_map(|r| match r {
                Reply::LinkUp { vlink } => Some(vlink.vlink_id),
                _ => None,
            })
            .collect();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Reply::Error { .. }))
            .count();
        assert_eq!(up.len(), 4, "round {round}: {results:?}");
        assert_eq!(refused, 2, "round {round}: {results:?}");
        // Refused requests leave no class anywhere.
        for n in ["tb1", "tb2", "tb3"] {
            assert_eq!(reservations(&name, n), (4, 4), "round {round}, {n}");
        }
        let mut c = tb.client("tb1").unwrap();
        for id in up {
            let r = c.call(&Request::Teardown { vlink_id: id }).unwrap();
            assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
        }
        for n in ["tb1", "tb2", "tb3"] {
            assert_eq!(
                reservations(&name, n),
                (0, 0),
                "round {round}, {n} after teardown"
            );
        }
    }
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

#[test]
fn reserved_link_keeps_its_rate_under_a_flood() {
    if !require_root("reserved_link_keeps_its_rate") {
        return;
    }
    let mut t = unique_topology("paper-4node.toml", "f");
    for l in &mut t.links {
        l.capacity_bps = 20_000_000;
    }
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let rate = 5_000_000;
    let secs = Duration::from_secs(5);
    let on = vlsp::experiment::qos_isolation::run(
        t.clone(),
        &Options::default(),
        "reservation",
        rate,
        Some(80_000_000),
        secs,
    )
    .unwrap();
    let off = vlsp::experiment::qos_isolation::run(
        t,
        &Options {
            no_qos: true,
            ..Options::default()
        },
        "no-reservation",
        rate,
        Some(80_000_000),
        secs,
    )
    .unwrap();
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let share_on = mean(vlsp::experiment::qos_isolation::shares(&on, "reservation"));
    let share_off = mean(vlsp::experiment::qos_isolation::shares(
        &off,
        "no-reservation",
    ));
    eprintln!(
        "share of R under flood: {share_on:.1}% with the reservation, {share_off:.1}% without"
    );
    assert!(share_on >= 95.0, "{share_on}");
    assert!(
        share_off <= share_on - 10.0,
        "no clear gap: {share_on} vs {share_off}"
    );
    assert!(leftovers(&name).is_empty());
}

#[test]
fn bidirectional_link_reserves_both_directions_on_every_hop() {
    if !require_root("bidirectional") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "d");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let mut c = tb.client("tb1").unwrap();
    let Reply::LinkUp { vlink } = c
        .call(&setup_request_with("VM1", "VM2", 3_000_000, true, None))
        .unwrap()
    else {
        panic!()
    };
    // The reverse reservation (tb4 -> tb1, bound with BOUND_SESSION_ID)
    // follows the forward RESPONSE; wait for it to reach tb1.
    let want = [("tb1", 1), ("tb2", 2), ("tb3", 2), ("tb4", 1)];
    let t0 = std::time::Instant::now();
    while want.iter().any(|(n, k)| reservations(&name, n).0 != *k) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{:?}",
            want.map(|(n, _)| reservations(&name, n))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The reverse class sits on the interface towards tb1.
    let rev = ns_output(
        &vlsp::kernel::substrate::ns_name(&name, "tb4"),
        "tc class show dev eth0",
    );
    assert!(rev.contains("rate 3Mbit ceil 3Mbit"), "{rev}");
    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    let t0 = std::time::Instant::now();
    while want.iter().any(|(n, _)| reservations(&name, n) != (0, 0)) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "reverse half left behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    tb.down().unwrap();
}

/// A node's own GIST datagrams take the root HTB's direct queue
/// (`SO_PRIORITY` 1:0, served before every class, no filter run): with
/// the signaling filters of tb2's link to tb3 deleted, the RESERVE's
/// handshake is counted in the qdisc's `direct_packets_stat`, never in a
/// class (the signaling class gets nothing without its filters), and the
/// setup completes.
#[test]
fn own_signaling_takes_the_direct_queue_without_the_filters() {
    use vlsp::kernel::tc::{SIG_PRIO, SIGNALING_CLASS};
    if !require_root("own_signaling_takes_the_direct_queue_without_the_filters") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "sp");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let ns = vlsp::kernel::substrate::ns_name(&name, "tb2");
    // The number after `key` in `cmd`'s output.
    let count = |cmd: &str, key: &str| {
        let s = ns_output(&ns, cmd);
        s.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .find_map(|w| (w[0] == key).then(|| w[1].parse::<u64>().unwrap()))
            .unwrap_or_else(|| panic!("no {key} in `{cmd}`: {s}"))
    };
    let direct = || count("tc -s qdisc show dev eth1", "direct_packets_stat");
    let class = || {
        let cmd = format!("tc -s class show dev eth1 classid {SIGNALING_CLASS}");
        count(&cmd, "Sent")
    };
    ns_output(
        &ns,
        &format!("tc filter del dev eth1 parent 1: prio {SIG_PRIO}"),
    );
    let left = ns_output(&ns, "tc filter show dev eth1");
    assert!(
        !left.contains(&format!("flowid {SIGNALING_CLASS}")),
        "signaling filters left: {left}"
    );
    let (direct0, class0) = (direct(), class());
    let mut c = tb.client("tb1").unwrap();
    let r = c.call(&setup_request("VM1", "VM2", 5_000_000)).unwrap();
    assert!(matches!(r, Reply::LinkUp { .. }), "{r:?}");
    // tb2's Query, Confirm and Data (the RESERVE) towards tb3.
    let direct1 = direct();
    assert!(
        direct1 >= direct0 + 3,
        "direct queue sent {direct0} -> {direct1}"
    );
    assert_eq!(class(), class0, "bytes reached {SIGNALING_CLASS}");
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

/// A node killed with reservations in place leaves its classes (its
/// enforcer never dropped). The node's next instance, at its first
/// reservation, removes them with their filters: before, its first class
/// id was refused (`EEXIST`) and every reservation on the link failed,
/// while the other dead filters kept putting their flows into classes
/// nobody owned.
#[tokio::test(flavor = "current_thread")]
async fn a_restarted_node_removes_the_classes_its_killed_predecessor_left() {
    use vlsp::kernel::tc::HtbEnforcer;
    use vlsp::kernel::{netns, substrate};
    use vlsp::model::measure::Recorder;
    use vlsp::model::units::Rate;
    use vlsp::proto::rmf::{Classifier, Enforcer};

    if !require_root("a_restarted_node_removes_the_classes_its_killed_predecessor_left") {
        return;
    }
    let name = format!("tkc{}", std::process::id() % 100_000);
    let text = vlsp::topology::chain(&name, 3, 3).unwrap();
    let t = vlsp::topology::Topology::parse(&text, std::path::Path::new("kc.toml")).unwrap();
    let _guard = Down(t.name.clone());
    substrate::up_shaped(&t, substrate::Shaping::Eager)
        .await
        .unwrap();
    let ns = substrate::ns_name(&t.name, "r1");
    let f = std::fs::File::open(netns::ns_path(&ns)).unwrap();
    let flow = |vni: u32| Classifier {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        protocol: 17,
        vni: Some(vni),
    };
    let open = || {
        netns::with_netns(&f, || HtbEnforcer::open(Recorder::disabled("r1")))
            .unwrap()
            .unwrap()
    };
    let install = |e: &mut HtbEnforcer, sid: u8, vni: u32| {
        netns::with_netns(&f, || {
            e.install(&[sid; 16], "eth1", Rate::from_bps(1_000_000), &flow(vni))
        })
        .unwrap()
    };
    let classes = || ns_output(&ns, "tc class show dev eth1");
    let filters = || ns_output(&ns, "tc filter show dev eth1");
    // Two reservations at work (1:2, 1:3) and one idle (1:4, no filter).
    let mut dead = open();
    for (sid, vni) in [(1, 11), (2, 12), (3, 13)] {
        install(&mut dead, sid, vni).unwrap();
    }
    netns::with_netns(&f, || dead.remove(&[3; 16])).unwrap();
    // And one on the node's other link, which the next instance does not
    // reserve on.
    netns::with_netns(&f, || {
        dead.install(&[4; 16], "eth0", Rate::from_bps(1_000_000), &flow(14))
    })
    .unwrap()
    .unwrap();
    let reservations_on = |dev: &str| {
        ns_output(&ns, &format!("tc class show dev {dev}"))
            .lines()
            .filter(|l| {
                vlsp::kernel::tc::is_reservation_line(l) || vlsp::kernel::tc::is_idle_line(l)
            })
            .count()
    };
    assert_eq!(reservations_on("eth0"), 1);
    for c in ["class htb 1:2 ", "class htb 1:3 ", "class htb 1:4 "] {
        assert!(classes().contains(c), "{c} missing:\n{}", classes());
    }
    // Killed: nothing of it runs any more, its drop included.
    std::mem::forget(dead);

    let mut next = open().sweeping(["eth0".to_string(), "eth1".to_string()]);
    install(&mut next, 9, 19).expect("the next instance's first reservation");
    assert_eq!(reservations_on("eth0"), 0, "the other link is swept too");
    let shown = classes();
    let reservations: Vec<&str> = shown
        .lines()
        .filter(|l| vlsp::kernel::tc::is_reservation_line(l) || vlsp::kernel::tc::is_idle_line(l))
        .collect();
    assert_eq!(reservations.len(), 1, "only the new class:\n{shown}");
    assert!(reservations[0].starts_with("class htb 1:2 "), "{shown}");
    // One reservation filter, leading to the new class: the dead ones'
    // (pref 2 and 3) are gone, the signaling filters (pref 1) stay.
    let shown = filters();
    let words: Vec<&str> = shown.split_whitespace().collect();
    let flowids: Vec<&str> = words
        .windows(2)
        .filter(|w| w[0].trim_start_matches('*') == "flowid" && w[1] != "1:fffe")
        .map(|w| w[1])
        .collect();
    assert_eq!(flowids, ["1:2"], "{shown}");
    assert!(!shown.contains("pref 3 "), "{shown}");
    assert!(
        shown.contains("pref 1 "),
        "signaling filters kept:\n{shown}"
    );
    // A second reservation takes the next id, as on a clean link.
    install(&mut next, 10, 20).unwrap();
    assert!(classes().contains("class htb 1:3 "), "{}", classes());
    // The instance that stops cleanly leaves nothing.
    netns::with_netns(&f, || drop(next)).unwrap();
    assert!(
        !classes()
            .lines()
            .any(|l| vlsp::kernel::tc::is_reservation_line(l) || vlsp::kernel::tc::is_idle_line(l)),
        "{}",
        classes()
    );
    substrate::down(&t.name).unwrap();
}
