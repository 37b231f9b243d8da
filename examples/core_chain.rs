//! What a hop costs the node cores alone (issue 17): a chain of N routers'
//! [`NodeCore`](vlsp::node::core::NodeCore)s in one thread, joined in
//! memory (`experiment::probe::CoreChain`: a datagram is handed to the next
//! core at once), R signed setups and teardowns across it, and the time
//! per router. No kernel, no runtime, no sockets: the part of a chain
//! sweep's slope that the protocol's code (codecs, HMACs, the GIST and
//! NSLP machines, measurement points, allocation) pays. Under `perf
//! record` it shows where that part goes, without root or namespaces.
//!
//! `cargo run --release --example core_chain -- [N] [R]` (default 1000
//! routers, 30 setups and teardowns after 3 warm-up ones). Prints the
//! median and the fastest tenth: the machine's speed moves by up to 1.7x
//! within a minute, and only ever slows the work down.

use std::time::Instant;

use vlsp::experiment::probe::CoreChain;

/// The allocator the `vlsp` binary runs with (`src/main.rs`), so what this
/// measures is what `vlsp` does.
#[global_allocator]
static GLOBAL: vlsp::model::allocator::Chosen = vlsp::model::allocator::Chosen;

const WARMUP: usize = 3;

/// The value below which a fraction `q` of `v` lies.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    vlsp::model::allocator::check_env().map_err(anyhow::Error::msg)?;
    let mut args = std::env::args().skip(1);
    let num = |a: Option<String>, default: usize, what: &str| -> anyhow::Result<usize> {
        a.map_or(Ok(default), |a| {
            a.parse()
                .map_err(|e| anyhow::anyhow!("{what}: {a:?} is not a count ({e})"))
        })
    };
    let n = num(args.next(), 1000, "N (routers)")?;
    let r = num(args.next(), 30, "R (setups)")?;
    anyhow::ensure!(r > 0, "R: at least one setup");
    let t = Instant::now();
    let mut c = CoreChain::new(n)?;
    eprintln!("{n} node cores made in {:.2?}", t.elapsed());
    for _ in 0..WARMUP {
        c.round()?;
    }
    let before = c.delivered;
    let (mut ups, mut downs) = (vec![], vec![]);
    for _ in 0..r {
        let (u, d) = c.round()?;
        ups.push(u.as_secs_f64() * 1e6 / n as f64);
        downs.push(d.as_secs_f64() * 1e6 / n as f64);
    }
    let per_round = (c.delivered - before) as f64 / r as f64;
    println!(
        "chain of {n}, {r} setups and teardowns in memory: per router, median setup {:.2} µs, \
         teardown {:.2} µs; fastest tenth setup {:.2} µs, teardown {:.2} µs \
         ({:.1} datagrams a router and round)",
        quantile(&ups, 0.5),
        quantile(&downs, 0.5),
        quantile(&ups, 0.1),
        quantile(&downs, 0.1),
        per_round / n as f64,
    );
    Ok(())
}
