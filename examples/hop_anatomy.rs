//! Where one router's share of a setup goes (issue 17): a chain of N
//! routers, R virtual link setups across it, and from the nodes'
//! measurement points, per interior hop i → i+1, the eight legs of the
//! paper's exchange, split into transit (the `sendmsg` of one node → the
//! next node's receive returned: kernel, wake-up, read) and processing
//! (receive returned → the answer handed to the kernel: intake, decode,
//! the state machines, encode):
//!
//! Query i→i+1, Response i+1→i, Confirm and then Data (the RESERVE)
//! i→i+1, timed to the Data's arrival, then on the way back the RESPONSE
//! i+1→i; processing of each by its receiver.
//!
//! Root. `cargo run --release --example hop_anatomy -- [N] [R]`
//! (default 200 routers, 20 setups after 3 warm-up ones).

use std::collections::HashMap;
use std::path::Path;

use vlsp::model::measure::{Point, PointKind as K};
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::{Topology, chain};

mod common;

/// The allocator the `vlsp` binary runs with (`src/main.rs`), so what this
/// measures is what `vlsp` does.
#[global_allocator]
static GLOBAL: vlsp::model::allocator::Chosen = vlsp::model::allocator::Chosen;

const WARMUP: usize = 3;

/// Which end of hop i → i+1 a point is taken at.
#[derive(Clone, Copy)]
enum End {
    /// Router i, upstream.
    Up,
    /// Router i+1, downstream.
    Down,
}

/// Where a point is taken: the end of the hop and the point's kind.
type At = (End, K);

/// The legs of a hop in the order they happen: name, where, and the
/// points that start and end it.
#[rustfmt::skip]
const LEGS: [(&str, &str, At, At); 8] = [
    ("Query transit", "i→i+1", (End::Up, K::GistQuerySent), (End::Down, K::GistQueryReceived)),
    ("Query processing", "at i+1", (End::Down, K::GistQueryReceived), (End::Down, K::GistResponseSent)),
    ("Response transit", "i+1→i", (End::Down, K::GistResponseSent), (End::Up, K::GistResponseReceived)),
    ("Response processing", "at i", (End::Up, K::GistResponseReceived), (End::Up, K::GistConfirmSent)),
    ("Confirm+Data transit", "i→i+1", (End::Up, K::GistConfirmSent), (End::Down, K::ReserveReceived)),
    ("RESERVE processing", "at i+1", (End::Down, K::ReserveReceived), (End::Down, K::GistQuerySent)),
    ("RESPONSE transit", "i+1→i", (End::Down, K::ResponseSent), (End::Up, K::ResponseReceived)),
    ("RESPONSE processing", "at i", (End::Up, K::ResponseReceived), (End::Up, K::ResponseSent)),
];

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    vlsp::model::allocator::check_env().map_err(anyhow::Error::msg)?;
    vlsp::kernel::substrate::require_root()?;
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    anyhow::ensure!(
        n >= 4 && runs > 0,
        "a chain of {n} has no interior hop: give at least 4 routers and 1 setup"
    );
    let name = format!("ha{n}");
    let text = chain(&name, n, 3)?;
    let t = Topology::parse(&text, Path::new(&format!("{name}.toml")))?;
    let opts = Options {
        points: 64,
        ..Options::default()
    };
    let tb = Testbed::up(t, &opts)?;
    let (vm1, vm2) = (tb.topo.vnodes[0].clone(), tb.topo.vnodes[1].clone());
    let mut c = tb.client(&vm1.host)?;
    // leg name -> samples (µs)
    let mut legs: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut setups = vec![];
    for run in 0..WARMUP + runs {
        let (took, pts) = common::setup_points(&tb, &mut c, &vm1.name, &vm2.name)?;
        if run < WARMUP {
            continue;
        }
        setups.push(took.as_secs_f64() * 1e6);
        collect(&pts, n, &mut legs);
    }
    drop(c);
    tb.down()?;
    println!(
        "chain of {n}: {runs} setups, median {:.0} µs ({:.1} µs per router)",
        median(setups.clone()),
        median(setups) / n as f64
    );
    let mut sum = 0.0;
    for (leg, at, ..) in LEGS {
        let m = median(legs.remove(leg).unwrap_or_default());
        sum += m;
        println!("  {leg:<22} {at:<7} {m:>7.2} µs");
    }
    println!("  {:<30} {sum:>7.2} µs (medians)", "sum per hop");
    Ok(())
}

/// Adds each interior hop's legs of one setup's points to `legs`.
fn collect(pts: &[Point], n: usize, legs: &mut HashMap<&'static str, Vec<f64>>) {
    let mut at: HashMap<(String, K), u64> = HashMap::new();
    for p in pts {
        at.entry((p.node.to_string(), p.kind)).or_insert(p.at_ns);
    }
    for i in 1..n.saturating_sub(2) {
        let node = |end| match end {
            End::Up => format!("r{i}"),
            End::Down => format!("r{}", i + 1),
        };
        for (leg, _, (from_end, from), (to_end, to)) in LEGS {
            let (Some(&a), Some(&b)) =
                (at.get(&(node(from_end), from)), at.get(&(node(to_end), to)))
            else {
                continue;
            };
            if b >= a {
                legs.entry(leg).or_default().push((b - a) as f64 / 1e3);
            }
        }
    }
}
