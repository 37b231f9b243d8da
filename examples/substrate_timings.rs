//! Phase-by-phase time to bring a chain of routers up with its NSIS nodes,
//! set a virtual link up end to end across (at most) its first 100
//! routers, and take it all down; RSS and threads of this process per
//! router (root).
//! `cargo run --release --example substrate_timings -- 1000 5000 10000`
//! (default: paper-4node, then chains of 100 and 1000). `NODE_GROUPS=N` hosts
//! the nodes in N `vlsp node-group` processes (`NODE_GROUPS=0`, the default:
//! decided by size); their RSS, threads and open files are summed in.

use std::path::Path;
use std::time::{Duration, Instant};

use vlsp::model::units::Rate;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::{Topology, chain};

/// Routers a measured virtual link crosses: IP's TTL bounds a tunnel's
/// path, so a longer chain gets VM2 on router 99.
const LINK_SPAN: usize = 100;

fn status(key: &str) -> u64 {
    status_of("self", key)
}

fn status_of(pid: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds_of(pid: &str) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    vlsp::kernel::substrate::require_root()?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VLSP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let mut cases = vec![];
    if sizes.is_empty() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
        cases.push(("paper-4node".to_string(), Topology::load(&p)?));
    }
    for n in if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    } {
        let name = format!("tim{n}");
        let span = std::env::var("LINK_SPAN").map_or(LINK_SPAN, |v| v.parse().unwrap_or(LINK_SPAN));
        let last = n.min(span) - 1;
        let text = chain(&name, n, 3)?.replace(
            &format!("host = \"r{}\"", n - 1),
            &format!("host = \"r{last}\""),
        );
        let first = std::env::var("LINK_FROM").unwrap_or_else(|_| "0".into());
        let text = text.replace("host = \"r0\"", &format!("host = \"r{first}\""));
        let t = Topology::parse(&text, Path::new(&format!("{name}.toml")))?;
        cases.push((format!("chain of {n}"), t));
    }
    for (label, t) in cases {
        let routers = t.nodes.len();
        let (rss0, thr0, fd0) = (status("VmRSS:"), status("Threads:"), fds_of("self"));
        let t0 = Instant::now();
        let opts = Options {
            groups: std::env::var("NODE_GROUPS").map_or(0, |v| v.parse().unwrap_or(0)),
            node_exe: Some(
                std::env::current_exe()?
                    .parent()
                    .and_then(|p| p.parent())
                    .map(|p| p.join("vlsp"))
                    .ok_or_else(|| anyhow::anyhow!("where is target/release/vlsp?"))?,
            ),
            ..Options::default()
        };
        let tb = Testbed::up(t, &opts)?;
        let up = t0.elapsed();
        let nodes = up.saturating_sub(tb.up_timings.total());
        let (mut rss1, mut thr1, mut fd1) = (status("VmRSS:"), status("Threads:"), fds_of("self"));
        for g in &tb.groups {
            let pid = g.pid().to_string();
            rss1 += status_of(&pid, "VmRSS:");
            thr1 += status_of(&pid, "Threads:");
            fd1 += fds_of(&pid);
        }
        println!(
            "{label}: up with {} NSIS nodes ({} in {} node groups) ready in {:.1} ms\n{}\n  {:<28} {:>10.3} ms",
            tb.nodes.len() + tb.groups.iter().map(|g| g.names.len()).sum::<usize>(),
            tb.groups.iter().map(|g| g.names.len()).sum::<usize>(),
            tb.groups.len(),
            ms(up),
            tb.up_timings,
            "NSIS nodes started, ready",
            ms(nodes)
        );
        println!(
            "  RSS {} -> {} KiB: {:.1} KiB per router; threads {thr0} -> {thr1}; open files {fd0} -> {fd1}",
            rss0,
            rss1,
            (rss1.saturating_sub(rss0)) as f64 / routers as f64
        );
        let (vm1, vm2) = (&tb.topo.vnodes[0], &tb.topo.vnodes[1]);
        let mut c = tb.client(&vm1.host)?;
        let s = Instant::now();
        let r = c.call(&Request::Setup {
            from: vm1.name.clone(),
            to: vm2.name.clone(),
            rate_bps: Rate::from_bps(1_000_000),
            bidirectional: false,
            backend: None,
            authenticate: true,
            tunnel: None,
        })?;
        let setup = s.elapsed();
        let hops = tb.topo.path(&vm1.host, &vm2.host).map_or(0, |p| p.len());
        match r {
            Reply::LinkUp { vlink } => {
                let s = Instant::now();
                let d = c.call(&Request::Teardown {
                    vlink_id: vlink.vlink_id,
                })?;
                println!(
                    "  link {} -> {} across {hops} routers: setup {:.3} ms, teardown {:.3} ms ({})",
                    vm1.name,
                    vm2.name,
                    ms(setup),
                    ms(s.elapsed()),
                    if matches!(d, Reply::LinkDown { .. }) {
                        "down"
                    } else {
                        "teardown FAILED"
                    }
                );
            }
            other => {
                println!("  link across {hops} routers FAILED: {other:?}");
                let mut prev = None;
                for i in 0..routers {
                    let r = format!("r{i}");
                    if let Ok(mut c) = tb.client(&r)
                        && let Ok(Reply::Stats { stats }) = c.call(&Request::Stats)
                    {
                        let k = stats.nslp.reserves_received;
                        if prev != Some(k) {
                            println!("  {r}: {stats:?}");
                            prev = Some(k);
                        }
                    }
                }
            }
        }
        drop(c);
        let t0 = Instant::now();
        let down = tb.down()?;
        println!(
            "{label}: down in {:.1} ms (nodes stopped {:.1} ms)\n{down}\n",
            ms(t0.elapsed()),
            ms(t0.elapsed().saturating_sub(down.total()))
        );
    }
    Ok(())
}
