//! OSPF with BFD (root, bird2): on `ring-6node-ospf` with `dead_s = 10`
//! and BFD every 100 ms x 3, every router has a BFD session Up with each
//! neighbour; when r1 falls silent with its links up (nftables drops all
//! it sends, receives and forwards), r0 routes round it well before the
//! dead interval would have told it.

mod common;

use std::time::{Duration, Instant};

use common::{Down, leftovers, require_root, unique_topology_with, via};
use vlsp::kernel::bird;
use vlsp::kernel::substrate::ns_name;
use vlsp::testbed::{Options, Testbed, routing};

/// r2's router address, which r0 reaches via r1 (cost 20) rather than via
/// r5 (cost 40).
const R2: &str = "10.255.0.3";
const VIA_R1: &str = "10.6.0.2";
const VIA_R5: &str = "10.6.5.1";
const DEAD_S: u64 = 20;

#[test]
fn bfd_drops_a_silent_neighbour_long_before_the_dead_interval() {
    if !require_root("bfd_drops_a_silent_neighbour") {
        return;
    }
    bird::require_bird().expect("bird2: apt-get install bird2 (.ci/install)");
    let t = unique_topology_with("ring-6node-ospf.toml", "bfd", |s| {
        s.replace(
            "[ospf]\nhello_s = 1\ndead_s = 4",
            &format!(
                "[ospf]\nhello_s = 2\ndead_s = {DEAD_S}\nbfd = true\nbfd_interval_ms = 100\nbfd_multiplier = 3"
            ),
        )
    });
    assert!(t.ospf.bfd && t.ospf.dead_s == DEAD_S as u32);
    let name = t.name.clone();
    let _g = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();

    // `vlsp up` waited for BFD too: two sessions Up at r0 and at r2.
    for n in ["r0", "r2"] {
        let s = bird::birdc(
            &routing::bird_socket(&tb.run, n),
            &["show", "bfd", "sessions"],
        )
        .unwrap();
        assert_eq!(bird::bfd_sessions_up(&s), 2, "{n}: {s}");
    }
    assert_eq!(via(&name, "r0", R2), VIA_R1);

    // r1 falls silent, its links up.
    let r1 = ns_name(&name, "r1");
    let rules = "add table inet k3silent\n\
                 add chain inet k3silent i { type filter hook input priority 0; policy drop; }\n\
                 add chain inet k3silent o { type filter hook output priority 0; policy drop; }\n\
                 add chain inet k3silent f { type filter hook forward priority 0; policy drop; }\n";
    let rules_file = tb.run.path().join("k3silent.nft");
    std::fs::write(&rules_file, rules).unwrap();
    // bird originates a router's LSA at most once per MinLSInterval (5 s):
    // wait it out after convergence, so r0's new LSA is not held back and
    // the time measured is BFD's and bird's tick, not that interval.
    std::thread::sleep(Duration::from_secs(5));
    let t0 = Instant::now();
    let st = std::process::Command::new("ip")
        .args(["netns", "exec", &r1, "nft", "-f"])
        .arg(&rules_file)
        .status()
        .unwrap();
    assert!(st.success(), "nft in {r1}");
    let mut now = via(&name, "r0", R2);
    while now == VIA_R1 && t0.elapsed() < Duration::from_secs(DEAD_S + 5) {
        std::thread::sleep(Duration::from_millis(20));
        now = via(&name, "r0", R2);
    }
    let took = t0.elapsed();
    eprintln!("BFD: r0 routed round the silent r1 after {took:?} (dead_s = {DEAD_S})");
    assert_eq!(now, VIA_R5, "r0 -> r2 round the ring after r1 fell silent");
    assert!(
        took < Duration::from_secs(DEAD_S / 2),
        "{took:?}: not well before dead_s = {DEAD_S}"
    );
    let s = bird::birdc(
        &routing::bird_socket(&tb.run, "r0"),
        &["show", "bfd", "sessions"],
    )
    .unwrap();
    assert_eq!(bird::bfd_sessions_up(&s), 1, "r0 after r1 fell silent: {s}");

    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}
