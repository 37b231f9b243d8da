//! Where one router's share of a setup goes (issue 17): a chain of N
//! routers, R virtual link setups across it, and from the nodes'
//! measurement points, per interior hop i → i+1, the eight legs of the
//! paper's exchange, split into transit (the `sendmsg` of one node → the
//! next node's receive returned: kernel, wake-up, read) and processing
//! (receive returned → the answer handed to the kernel: intake, decode,
//! the state machines, encode):
//!
//! Query i→i+1, Response i+1→i, Confirm+RESERVE i→i+1, then on the way
//! back the RESPONSE i+1→i; processing of each by its receiver.
//!
//! Root. `cargo run --release --example hop_anatomy -- [N] [R]`
//! (default 200 routers, 20 setups after 3 warm-up ones).

use std::collections::HashMap;
use std::path::Path;

use vlsp::model::measure::{Point, PointKind as K};
use vlsp::model::units::Rate;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::{Topology, chain};

const WARMUP: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    vlsp::kernel::substrate::require_root()?;
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(20), |a| a.parse())?;
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
        tb.drain_points()?;
        let s = std::time::Instant::now();
        let r = c.call(&Request::Setup {
            from: vm1.name.clone(),
            to: vm2.name.clone(),
            rate_bps: Rate::from_bps(1_000_000),
            bidirectional: false,
            backend: None,
            authenticate: true,
            tunnel: None,
        })?;
        let took = s.elapsed();
        let Reply::LinkUp { vlink } = r else {
            anyhow::bail!("setup failed: {r:?}");
        };
        let pts = tb.drain_points()?;
        c.call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })?;
        if run < WARMUP {
            continue;
        }
        setups.push(took.as_secs_f64() * 1e6);
        collect(&pts, n, &mut legs);
    }
    drop(c);
    tb.down()?;
    let order = [
        ("Query transit", "i→i+1"),
        ("Query processing", "at i+1"),
        ("Response transit", "i+1→i"),
        ("Response processing", "at i"),
        ("Confirm transit", "i→i+1"),
        ("RESERVE processing", "at i+1"),
        ("RESPONSE transit", "i+1→i"),
        ("RESPONSE processing", "at i"),
    ];
    println!(
        "chain of {n}: {runs} setups, median {:.0} µs ({:.1} µs per router)",
        median(setups.clone()),
        median(setups) / n as f64
    );
    let mut sum = 0.0;
    for (leg, at) in order {
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
    let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let us = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1e3),
        _ => None,
    };
    for i in 1..n.saturating_sub(2) {
        let (a, b) = (names[i].as_str(), names[i + 1].as_str());
        let get = |node: &str, k: K| at.get(&(node.to_string(), k)).copied();
        let pairs: [(&'static str, Option<f64>); 8] = [
            (
                "Query transit",
                us(get(a, K::GistQuerySent), get(b, K::GistQueryReceived)),
            ),
            (
                "Query processing",
                us(get(b, K::GistQueryReceived), get(b, K::GistResponseSent)),
            ),
            (
                "Response transit",
                us(get(b, K::GistResponseSent), get(a, K::GistResponseReceived)),
            ),
            (
                "Response processing",
                us(get(a, K::GistResponseReceived), get(a, K::GistConfirmSent)),
            ),
            (
                "Confirm transit",
                us(get(a, K::GistConfirmSent), get(b, K::ReserveReceived)),
            ),
            (
                "RESERVE processing",
                us(get(b, K::ReserveReceived), get(b, K::GistQuerySent)),
            ),
            (
                "RESPONSE transit",
                us(get(b, K::ResponseSent), get(a, K::ResponseReceived)),
            ),
            (
                "RESPONSE processing",
                us(get(a, K::ResponseReceived), get(a, K::ResponseSent)),
            ),
        ];
        for (leg, v) in pairs {
            if let Some(v) = v {
                legs.entry(leg).or_default().push(v);
            }
        }
    }
}
