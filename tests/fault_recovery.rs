//! Root test of the `fault-recovery` experiment kind (issue 15 item 4): a
//! few runs of each routing kind on a ring-6node copy under a unique name,
//! through the library as `vlsp run FILE --runs 3` does it.

mod common;

use common::*;
use std::path::Path;

#[test]
fn fault_recovery_writes_its_rows_and_static_routes_repair() {
    if !require_root("fault_recovery_writes_its_rows") {
        return;
    }
    let t = unique_topology("ring-6node.toml", "fr");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let dir = std::env::temp_dir().join(format!("vlsp-fr-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ring.toml"), t.to_toml()).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/fault-recovery.toml");
    let text = std::fs::read_to_string(&shipped)
        .unwrap()
        .replace("../topologies/ring-6node.toml", "ring.toml");
    std::fs::write(dir.join("e.toml"), text).unwrap();
    let mut e = vlsp::experiment::Experiment::load(&dir.join("e.toml")).unwrap();
    e.runs = 3;
    e.warmup = 0;
    e.output = dir.join("out");
    vlsp::experiment::run(&e).unwrap();

    let csv = std::fs::read_to_string(e.output.join("recovery.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "routing,run,fault,fault_at_ms,repaired,lost_after_repair,repair_ms,repaired_event_ms,old_branch_freed_ms,outage_ms,reserved_share_after_pct,censored,old_hops,new_hops"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    eprintln!("{csv}");
    for routing in ["static", "ospf"] {
        let mine: Vec<_> = rows.iter().filter(|r| r[0] == routing).collect();
        assert_eq!(mine.len(), 3, "{routing}: {csv}");
        for r in &mine {
            assert_eq!(r[2], "link-down r1-r2");
            let outage: f64 = r[9].parse().unwrap();
            assert!(outage.is_finite() && outage >= 0.0, "{r:?}");
            assert!(["true", "false"].contains(&r[11]), "censored: {r:?}");
            assert_eq!(r[12], "r0:eth0 r1:eth1 r2:eth1", "the old path: {r:?}");
            assert_eq!(r[13], "r0:eth1 r4:eth0 r5:eth0", "the new path: {r:?}");
        }
    }
    // With static routes (replaced at once) the reservation moved in 95 of
    // 100 runs here (a refresh can reach r1 before the routes change). With OSPF a refresh that reaches r1 while OSPF converges is
    // refused ("no route") and ends the link: not asserted until the NSLP
    // waits for the route instead (see the README).
    let fixed: Vec<_> = rows.iter().filter(|r| r[0] == "static").collect();
    assert!(
        fixed.iter().any(|r| r[4] == "true" && !r[6].is_empty()),
        "static: never repaired: {csv}"
    );
    for f in [
        "runs.csv",
        "summary.csv",
        "summary.md",
        "traffic.csv",
        "fault_recovery_rate.png",
        "fault_recovery_repair_cdf.svg",
    ] {
        assert!(e.output.join(f).exists(), "{f} missing");
    }
    assert!(leftovers(&name).is_empty(), "{:?}", leftovers(&name));
    let _ = std::fs::remove_dir_all(&dir);
}
