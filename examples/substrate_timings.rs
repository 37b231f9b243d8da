//! Phase-by-phase time to bring up and take down the substrate of
//! paper-4node and generated chains of 100 and 1000 routers (root).
//! `cargo run --release --example substrate_timings`

use std::path::Path;
use std::time::Instant;
use vlsp::kernel::substrate;
use vlsp::topology::{Topology, chain};

fn main() -> anyhow::Result<()> {
    substrate::require_root()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let paper =
        Topology::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml"))?;
    let mut cases = vec![("paper-4node".to_string(), paper)];
    for n in [100, 1000] {
        let name = format!("tim{n}");
        let t = Topology::parse(&chain(&name, n, 3)?, Path::new(&format!("{name}.toml")))?;
        cases.push((format!("chain of {n}"), t));
    }
    for (label, t) in cases {
        let up = rt.block_on(substrate::up(&t))?;
        println!(
            "{label}: up ({} namespaces, {} links)\n{up}",
            t.nodes.len() + t.vnodes.len(),
            t.links.len() + t.vnodes.len()
        );
        let names = substrate::journal_read(&t.name);
        let t0 = Instant::now();
        let down = substrate::down(&t.name)?;
        // The kernel tears namespaces down asynchronously (cleanup_net);
        // wait until their veth peers are really gone from the kernel:
        // /proc/net/dev of the root namespace never held them, so watch the
        // namespace count in /proc/self/mountinfo (bind mounts) instead.
        while std::fs::read_to_string("/proc/self/mountinfo")?
            .lines()
            .any(|l| names.iter().any(|n| l.contains(n.as_str())))
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        println!(
            "{label}: down\n{down}\n  mounts released after {:.3} ms\n",
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}
