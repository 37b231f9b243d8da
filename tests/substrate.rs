//! Root integration tests of the substrate: namespaces, veth links,
//! addresses, routes, and cleanup (also after a crash).

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::substrate;

#[tokio::test(flavor = "current_thread")]
async fn paper_4node_up_ping_down() {
    if !root_or_skip("paper_4node_up_ping_down") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "s");
    let _guard = Down(t.name.clone());
    let timings = substrate::up(&t).await.unwrap();
    eprintln!("up {}:\n{timings}", t.name);
    // Every router and virtual node has its namespace.
    assert_eq!(leftovers(&t.name).len(), 6);
    // tb1 reaches tb4's far address through tb2 and tb3 (routes, forwarding).
    let rtt = substrate::udp_ping(
        &t.name,
        "tb1",
        "tb4",
        Ipv4Addr::new(172, 3, 4, 4),
        Duration::from_secs(2),
    )
    .unwrap();
    eprintln!("tb1 -> tb4 UDP round trip {rtt:?}");
    // And back the other way.
    substrate::udp_ping(
        &t.name,
        "tb4",
        "tb1",
        Ipv4Addr::new(172, 1, 2, 1),
        Duration::from_secs(2),
    )
    .unwrap();
    // VM1 reaches its host's bridge side: it is attached.
    let st = substrate::status();
    assert!(
        st.iter()
            .any(|s| s.topology == t.name && s.namespaces.iter().all(|n| n.1))
    );
    let d = substrate::down(&t.name).unwrap();
    eprintln!("down:\n{d}");
    assert!(
        leftovers(&t.name).is_empty(),
        "left: {:?}",
        leftovers(&t.name)
    );
    assert!(!substrate::journal_path(&t.name).exists());
}

#[tokio::test(flavor = "current_thread")]
async fn second_up_of_same_topology_is_refused_and_rolls_back_nothing_of_the_first() {
    if !root_or_skip("second_up_refused") {
        return;
    }
    let t = unique_topology("plain-router.toml", "c");
    let _guard = Down(t.name.clone());
    substrate::up(&t).await.unwrap();
    let err = substrate::up(&t).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("already exists") && msg.contains("vlsp down"),
        "{msg}"
    );
    substrate::down(&t.name).unwrap();
    assert!(leftovers(&t.name).is_empty());
}
