//! Root tests of the substrate at size: a generated chain of 300 routers
//! built by the parallel passes, reached end to end, and removed without a
//! trace; a crash in the middle of `up` still leaves `down` a clean job.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use vlsp::kernel::{journal, netns, substrate};
use vlsp::topology::{Topology, chain};

const ROUTERS: usize = 300;

fn chain_topology(tag: &str, n: usize) -> Topology {
    let name = format!("t{tag}{}", std::process::id() % 100_000);
    let text = chain(&name, n, 3).unwrap();
    Topology::parse(&text, Path::new(&format!("{name}.toml"))).unwrap()
}

/// Routes in `node`'s main table, as the kernel lists them.
fn routes_in(topo: &str, node: &str) -> Vec<String> {
    ns_output(&substrate::ns_name(topo, node), "ip -4 route show")
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn a_300_router_chain_is_built_reached_end_to_end_and_removed() {
    if !require_root("a_300_router_chain") {
        return;
    }
    let t = chain_topology("k", ROUTERS);
    let _guard = Down(t.name.clone());
    let timings = substrate::up(&t).await.unwrap();
    eprintln!("up {}:\n{timings}", t.name);
    // A namespace per router and per virtual node, each journaled.
    assert_eq!(leftovers(&t.name).len(), ROUTERS + 2);
    assert_eq!(journal::entries(&t.name).len(), ROUTERS + 2);
    // The middle router: its two subnets plus a few aggregated prefixes
    // each way, not a route per subnet.
    let mid = format!("r{}", ROUTERS / 2);
    let r = routes_in(&t.name, &mid);
    assert!(r.len() >= 4 && r.len() <= 2 + 2 * 9, "{mid}: {r:#?}");
    assert!(r.iter().any(|l| l.contains("via") && l.contains("eth0")));
    assert!(r.iter().any(|l| l.contains("via") && l.contains("eth1")));
    // Forwarding is switched on per interface, not by the global sysctl
    // (the pings below cross routers configured so).
    let fwd = ns_output(
        &substrate::ns_name(&t.name, &mid),
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/eth0/forwarding /proc/sys/net/ipv4/conf/eth1/forwarding",
    );
    assert_eq!(
        fwd.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "1"],
        "{mid}"
    );
    // Every router forwards and routes: 200 routers out from each end
    // (IP's TTL ends a ping at 255 routers), and the first router has a
    // route to the last one's subnet.
    let last = format!("r{}", ROUTERS - 1);
    let far = t.links_of(&last).next().unwrap().0.addr;
    let near = t.links_of("r0").next().unwrap().0.addr;
    let r200 = t.links_of("r200").next().unwrap().0.addr;
    let r99 = t.links_of("r99").next().unwrap().0.addr;
    substrate::udp_ping(&t.name, "r0", "r200", r200, Duration::from_secs(5)).unwrap();
    substrate::udp_ping(&t.name, "r200", "r0", near, Duration::from_secs(5)).unwrap();
    substrate::udp_ping(&t.name, &last, "r99", r99, Duration::from_secs(5)).unwrap();
    substrate::udp_ping(&t.name, "r99", &last, far, Duration::from_secs(5)).unwrap();
    let to_far = ns_output(
        &substrate::ns_name(&t.name, "r0"),
        &format!("ip -4 route get {far}"),
    );
    assert!(to_far.contains("via 10.100.0.2 dev eth0"), "{to_far}");
    // The virtual nodes' interfaces are up behind their hosts' bridges.
    let vm1 = ns_output(&substrate::ns_name(&t.name, "VM1"), "ip -4 -o addr show");
    assert!(vm1.contains("192.168.100.1/24"), "{vm1}");
    let host = ns_output(
        &substrate::ns_name(&t.name, "r0"),
        "ip -o link show type bridge",
    );
    // Carrier on: its port (VM1's veth) is up (operstate may still lag).
    assert!(host.contains("LOWER_UP"), "{host}");
    let d = substrate::down(&t.name).unwrap();
    eprintln!("down:\n{d}");
    assert!(leftovers(&t.name).is_empty(), "{:?}", leftovers(&t.name));
    assert!(!substrate::journal_path(&t.name).unwrap().exists());
}

/// A crash after the journal was written but before every namespace was
/// created (or after some were deleted): `down` removes what exists and
/// succeeds, and a second `down` finds nothing.
#[test]
fn down_after_a_crash_in_the_middle_leaves_nothing() {
    if !require_root("down_after_a_crash_in_the_middle") {
        return;
    }
    let t = chain_topology("m", 40);
    let _guard = Down(t.name.clone());
    let names: Vec<String> = t
        .nodes
        .iter()
        .map(|n| substrate::ns_name(&t.name, &n.name))
        .collect();
    journal::journal_namespaces(&t.name, &names).unwrap();
    // Half of them exist, as when `up` was killed while creating them.
    netns::netns_add_many(&names[..20], 4).unwrap();
    // A namespace file without its mount: killed between the two steps.
    std::fs::write(substrate::ns_path(&names[20]), b"").unwrap();
    assert_eq!(leftovers(&t.name).len(), 21);
    substrate::down(&t.name).unwrap();
    assert!(leftovers(&t.name).is_empty(), "{:?}", leftovers(&t.name));
    assert!(!substrate::journal_path(&t.name).unwrap().exists());
    // Nothing journaled any more: a second `down` finds nothing to do.
    substrate::down(&t.name).unwrap();
}

/// An existing namespace of the same name is refused by the parallel
/// creation too, and never mounted over.
#[test]
fn parallel_creation_refuses_an_existing_name() {
    if !require_root("parallel_creation_refuses_an_existing_name") {
        return;
    }
    let t = chain_topology("e", 8);
    let _guard = Down(t.name.clone());
    let names: Vec<String> = (0..8)
        .map(|i| substrate::ns_name(&t.name, &format!("r{i}")))
        .collect();
    journal::journal_namespaces(&t.name, &names).unwrap();
    netns::netns_add_many(&names[3..4], 1).unwrap();
    let e = netns::netns_add_many(&names, 3).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    substrate::down(&t.name).unwrap();
    assert!(leftovers(&t.name).is_empty());
}

/// Beyond `SHAPE_EAGERLY_UP_TO` routers `up` leaves the links unshaped
/// (each HTB qdisc or class costs the kernel a search of all tc blocks of
/// all namespaces); a node's enforcer shapes a link at its first
/// reservation, and packets cross the unshaped routers meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn links_shaped_on_demand_get_their_htb_at_the_first_reservation() {
    use vlsp::kernel::tc::HtbEnforcer;
    use vlsp::model::measure::Recorder;
    use vlsp::model::units::Rate;
    use vlsp::proto::rmf::{Classifier, Enforcer};

    if !require_root("links_shaped_on_demand") {
        return;
    }
    assert_eq!(
        substrate::Shaping::for_size(10_000),
        substrate::Shaping::OnDemand
    );
    assert_eq!(substrate::Shaping::for_size(300), substrate::Shaping::Eager);
    assert_eq!(
        substrate::Shaping::for_size(301),
        substrate::Shaping::OnDemand
    );
    let t = chain_topology("d", 3);
    let _guard = Down(t.name.clone());
    substrate::up_shaped(&t, substrate::Shaping::OnDemand)
        .await
        .unwrap();
    let ns = substrate::ns_name(&t.name, "r1");
    let qdiscs = || ns_output(&ns, "tc qdisc show; tc class show dev eth1");
    assert!(!qdiscs().contains("htb"), "{}", qdiscs());
    let far = t.links_of("r2").last().unwrap().0.addr;
    substrate::udp_ping(&t.name, "r0", "r2", far, Duration::from_secs(5)).unwrap();
    let links: Vec<(String, u64)> = t
        .links_of("r1")
        .map(|(me, _, cap)| (me.ifname.clone(), cap))
        .collect();
    let f = std::fs::File::open(netns::ns_path(&ns)).unwrap();
    let c = Classifier {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        protocol: 17,
        vni: Some(7),
    };
    let mut e = netns::with_netns(&f, || HtbEnforcer::open(Recorder::disabled("r1")))
        .unwrap()
        .unwrap()
        .shaping_on_demand(links);
    // A node's enforcer works on its thread inside its namespace.
    let install = |e: &mut HtbEnforcer, sid: u8| {
        netns::with_netns(&f, || {
            e.install(&[sid; 16], "eth1", Rate::from_bps(1_000_000), &c)
        })
        .unwrap()
        .unwrap()
    };
    install(&mut e, 1);
    let shown = qdiscs();
    for want in [
        "qdisc htb 1: dev eth1",
        "class htb 1:1 ",
        "class htb 1:ffff",
        "class htb 1:fffe",
        "class htb 1:2 ",
    ] {
        assert!(shown.contains(want), "{want} missing in\n{shown}");
    }
    assert!(
        !shown.contains("qdisc htb 1: dev eth0"),
        "eth0 has no reservation: {shown}"
    );
    // A second reservation on the shaped link, and one after the node
    // restarted (a new enforcer finds the link shaped).
    install(&mut e, 2);
    // Its removals, too (the node stops).
    netns::with_netns(&f, || drop(e)).unwrap();
    let mut e = netns::with_netns(&f, || HtbEnforcer::open(Recorder::disabled("r1")))
        .unwrap()
        .unwrap()
        .shaping_on_demand([("eth1".to_string(), 10_000_000)]);
    install(&mut e, 3);
    assert!(qdiscs().contains("class htb 1:2 "));
    // Its removals, too (the node stops).
    netns::with_netns(&f, || drop(e)).unwrap();
    substrate::udp_ping(&t.name, "r0", "r2", far, Duration::from_secs(5)).unwrap();
    substrate::down(&t.name).unwrap();
}
