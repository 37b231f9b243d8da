//! Root test of concurrent setups (issue 17): 64 API clients set up 256
//! virtual links at once on a paper-4node copy with 256 interfaces per
//! virtual node, then tear them down. None fails; while they are up every
//! link has its tunnel end on tb1 and tb4 and its HTB class and filter on
//! tb1..tb3; afterwards nothing is left in the kernel or in the nodes.

mod common;

use common::*;
use std::time::Duration;
use vlsp::experiment::kinds::throughput::{Load, Pair, one_run_with, wait_clean};
use vlsp::model::units::Rate;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

const LINKS: usize = 256;
const CLIENTS: usize = 64;

/// Tunnel devices (VXLAN, named `vl<vni>`) in `node`'s namespace.
fn tunnel_ends(topo: &str, node: &str) -> usize {
    let ns = vlsp::kernel::substrate::ns_name(topo, node);
    tunnel_ends_in(&ns).len()
}

fn link_count(tb: &Testbed, node: &str) -> usize {
    match tb.client(node).unwrap().call(&Request::List).unwrap() {
        Reply::Links { links } => links.len(),
        r => panic!("{node}: list answered {r:?}"),
    }
}

#[test]
fn sixty_four_clients_set_up_and_tear_down_256_links() {
    if !require_root("sixty_four_clients_256_links") {
        return;
    }
    let t = unique_topology("throughput-4node.toml", "thr");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let pair = Pair::of(&t, LINKS).unwrap();
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let load = Load {
        links: LINKS,
        clients: CLIENTS,
        initiators: 2,
        offered: None,
    };
    let m = one_run_with(&tb, &pair, &load, Rate::from_bps(1_000_000), || {
        for n in ["tb1", "tb4"] {
            anyhow::ensure!(link_count(&tb, n) == LINKS, "{n} lists {} links", link_count(&tb, n));
            let ends = tunnel_ends(&name, n);
            anyhow::ensure!(ends == LINKS, "{n} has {ends} tunnel ends, not {LINKS}");
        }
        // Links go both ways: tb1..tb3 reserve the ones from tb1, tb4..tb2
        // the ones from tb4 (each on the hop towards the responder).
        let per_node: Vec<(usize, usize)> = ["tb1", "tb2", "tb3", "tb4"]
            .iter()
            .map(|n| reservations(&name, n))
            .collect();
        let classes: usize = per_node.iter().map(|r| r.0).sum();
        let filters: usize = per_node.iter().map(|r| r.1).sum();
        anyhow::ensure!(
            classes == 3 * LINKS && filters == 3 * LINKS,
            "HTB classes and filters per node {per_node:?}: every link needs one on each of its 3 hops"
        );
        Ok(())
    })
    .unwrap();
    assert!(
        m.setup.failures.is_empty() && m.teardown.failures.is_empty(),
        "{} setups and {} teardowns failed: {:?}",
        m.setup.failures.len(),
        m.teardown.failures.len(),
        m.setup
            .failures
            .iter()
            .chain(&m.teardown.failures)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(m.setup.latencies_ns.len(), LINKS);
    assert_eq!(m.teardown.latencies_ns.len(), LINKS);
    eprintln!(
        "{LINKS} links by {CLIENTS} clients on tb1 and tb4: {:.0} setups/s, {:.0} teardowns/s",
        m.setup.per_s(),
        m.teardown.per_s()
    );
    // Deferred device deletions and reservations finish, then nothing is left.
    wait_clean(&tb, Duration::from_secs(120)).unwrap();
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(reservations(&name, n), (0, 0), "{n} after the teardowns");
        assert_eq!(tunnel_ends(&name, n), 0, "{n} after the teardowns");
        assert_eq!(link_count(&tb, n), 0, "{n} after the teardowns");
    }
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty(), "{:?}", leftovers(&name));
}
