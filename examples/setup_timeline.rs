//! The timeline of one virtual link setup across every node (issue 17):
//! R setups on a topology, and for each node and measurement point the
//! median time since the initiator read the API request, in the order the
//! points happen. Shows where setup [A] goes between the periods the
//! experiments report (hand-overs to kernel threads and back, waits for a
//! class, the responder's work around its tunnel end).
//!
//! Root. `cargo run --release --example setup_timeline -- [TOPOLOGY] [R]`
//! (default `topologies/paper-4node.toml`, 50 setups after 5 warm-up ones;
//! the link is the topology's first virtual node to its second).
//! `PAUSE_MS=P` waits P ms after each teardown (default 0: back to back;
//! `vlsp run` waits for the deferred device deletions, 15-40 ms, during
//! which the machine idles).

use std::collections::HashMap;
use std::path::PathBuf;

use vlsp::model::measure::PointKind as K;
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::Topology;

mod common;

/// The allocator the `vlsp` binary runs with (`src/main.rs`), so what this
/// measures is what `vlsp` does.
#[global_allocator]
static GLOBAL: vlsp::model::allocator::Chosen = vlsp::model::allocator::Chosen;

const WARMUP: usize = 5;

fn main() -> anyhow::Result<()> {
    vlsp::model::allocator::check_env().map_err(anyhow::Error::msg)?;
    vlsp::kernel::substrate::require_root()?;
    let mut args = std::env::args().skip(1);
    let path = args.next().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml"),
        PathBuf::from,
    );
    let runs: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let mut topo = Topology::load(&path)?;
    // Its own name, so a topology that is up elsewhere is left alone.
    topo.name = format!("tl{}", std::process::id());
    let tb = Testbed::up(
        topo,
        &Options {
            points: 256,
            ..Options::default()
        },
    )?;
    let (vm1, vm2) = (tb.topo.vnodes[0].clone(), tb.topo.vnodes[1].clone());
    let mut c = tb.client(&vm1.host)?;
    // (node, point) -> offsets in µs, one per setup
    let mut at: HashMap<(String, K), Vec<f64>> = HashMap::new();
    let pause =
        std::time::Duration::from_millis(std::env::var("PAUSE_MS").map_or(Ok(0), |v| v.parse())?);
    for run in 0..WARMUP + runs {
        let (_, pts) = common::setup_points(&tb, &mut c, &vm1.name, &vm2.name)?;
        std::thread::sleep(pause);
        if run < WARMUP {
            continue;
        }
        let Some(t0) = pts
            .iter()
            .filter(|p| *p.node == *vm1.host && p.kind == K::ApiRequestReceived)
            .map(|p| p.at_ns)
            .min()
        else {
            continue;
        };
        let mut first: HashMap<(String, K), u64> = HashMap::new();
        for p in &pts {
            let e = first.entry((p.node.to_string(), p.kind)).or_insert(p.at_ns);
            *e = (*e).min(p.at_ns);
        }
        for (k, t) in first {
            at.entry(k)
                .or_default()
                .push(t.saturating_sub(t0) as f64 / 1e3);
        }
    }
    drop(c);
    tb.down()?;
    let mut rows: Vec<(f64, String, K, usize)> = at
        .into_iter()
        .map(|((node, k), mut v)| {
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], node, k, v.len())
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "{} setups of {} -> {} on {}: median µs since {} read the request",
        runs,
        vm1.name,
        vm2.name,
        path.display(),
        vm1.host
    );
    for (t, node, k, n) in rows {
        println!("  {t:>9.1}  {node:<6} {k:?} ({n})");
    }
    Ok(())
}
