//! OSPF with an area per provider (root, bird2): on `ospf-areas-5node`
//! (east = r0 r1 r2 in area 1, west = r3 r4 in area 2, the links between
//! them area 0) every adjacency comes up Full, routes cross between the
//! providers, and when a backbone link fails the routes move to the other
//! one and packets still arrive.

mod common;

use std::time::{Duration, Instant};

use common::{Down, leftovers, ping, require_root, unique_topology, via};
use vlsp::kernel::bird;
use vlsp::testbed::{Options, Testbed, routing};
use vlsp::topology::faults::Fault;

/// r4's router address (west), as r1 (east) reaches it.
const R4: &str = "10.255.1.5";

/// Waits until `node` routes `dst` via `gw` (OSPF's summaries between
/// areas settle after the adjacencies).
fn wait_via(topo: &str, node: &str, dst: &str, gw: &str, limit: Duration) -> String {
    let end = Instant::now() + limit;
    loop {
        let now = via(topo, node, dst);
        if now == gw || Instant::now() > end {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn per_provider_areas_route_between_providers_and_round_a_failed_backbone_link() {
    if !require_root("per_provider_areas_route_between_providers") {
        return;
    }
    bird::require_bird().expect("bird2: apt-get install bird2 (.ci/install)");
    let t = unique_topology("ospf-areas-5node.toml", "oa");
    let name = t.name.clone();
    let _g = Down(name.clone());
    let mut tb = Testbed::up(t, &Options::default()).unwrap();

    // Each router's bird has its areas: r0 is an ABR (east and backbone).
    let conf = std::fs::read_to_string(tb.run.path().join("r0.bird.conf")).unwrap();
    assert!(
        conf.contains("area 0 {") && conf.contains("area 1 {"),
        "{conf}"
    );
    let r0 = bird::birdc(&routing::bird_socket(&tb.run, "r0"), &["show", "ospf"]).unwrap();
    assert!(
        r0.contains("Area: 0.0.0.0") && r0.contains("Area: 0.0.0.1"),
        "{r0}"
    );

    // Every adjacency Full (one per link end).
    let states = routing::router_states(&tb.topo, &tb.run);
    let want = |n: &str| tb.topo.links_of(n).count();
    assert!(
        states
            .iter()
            .all(|s| s.full_neighbours == Some(want(&s.node)) && s.routes >= 4),
        "{states:?}"
    );
    // East reaches west through the backbone: r1 goes via r2 (cost 20)
    // rather than via r0 (cost 30), and r4 answers.
    let before = wait_via(&name, "r1", R4, "10.7.1.2", Duration::from_secs(20));
    assert_eq!(before, "10.7.1.2", "r1 -> r4 first via r2");
    ping(&name, "r1", "r4", R4.parse().unwrap());
    ping(&name, "r4", "r1", "10.255.1.2".parse().unwrap());

    // The backbone link r2-r3 fails: r1's route to west moves to r3-r0.
    // (r2 is not waited for: left with an area 0 and no live link in it,
    // bird still takes it for an ABR and it learns no route between
    // areas; see the README.)
    let t = Instant::now();
    tb.fault(&Fault::LinkDown {
        link: "r2-r3".into(),
    })
    .unwrap();
    let after = wait_via(&name, "r1", R4, "10.7.0.1", Duration::from_secs(30));
    eprintln!(
        "per-provider areas: r1 -> r4 via {after} {:?} after link-down r2-r3",
        t.elapsed()
    );
    assert_eq!(after, "10.7.0.1", "r1 -> r4 via r0 after r2-r3 failed");
    ping(&name, "r1", "r4", R4.parse().unwrap());
    ping(&name, "r4", "r1", "10.255.1.2".parse().unwrap());

    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}
