//! Phase-by-phase time to bring a chain of routers up with its NSIS nodes,
//! set a virtual link up end to end across (at most) its first 100
//! routers, and take it all down; RSS and threads of this process per
//! router (root).
//! `cargo run --release --example substrate_timings -- 1000 5000 10000`
//! (default: paper-4node, then chains of 100 and 1000).
//! `SUBSTRATE_ONLY=1`: the kernel side alone (no NSIS nodes): up, a UDP
//! ping from the first router to the last one's far address, down, and
//! how long the kernel then takes to free the namespaces; with
//! `SCALE_CSV=FILE` each size appends a row (routers, threads, up_s,
//! per-phase seconds, down_s, kernel_freed_s, rss_per_router_kib,
//! open_files, ping_ms) to FILE.
//! (default: paper-4node, then chains of 100 and 1000). `NODE_GROUPS=N` hosts
//! the nodes in N `vlsp node-group` processes (`NODE_GROUPS=0`, the default:
//! decided by size); their RSS, threads and open files are summed in.

use std::path::Path;
use std::time::{Duration, Instant};

use vlsp::model::units::Rate;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::{Topology, chain};

/// The allocator the `vlsp` binary runs with (`src/main.rs`), so what this
/// measures is what `vlsp` does.
#[global_allocator]
static GLOBAL: vlsp::model::allocator::Chosen = vlsp::model::allocator::Chosen;

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
    vlsp::model::allocator::check_env().map_err(anyhow::Error::msg)?;
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
    if std::env::var_os("SUBSTRATE_ONLY").is_some() {
        for (label, t) in cases {
            substrate_only(&label, t)?;
        }
        return Ok(());
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
        let r = c.call(&Request::signed_setup(
            &vm1.name,
            &vm2.name,
            Rate::from_bps(1_000_000),
        ))?;
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

/// Network namespaces the kernel holds (freed ones leave its slab cache).
fn kernel_namespaces() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let l = s.lines().find(|l| l.starts_with("net_namespace "))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn substrate_only(label: &str, t: Topology) -> anyhow::Result<()> {
    use vlsp::kernel::substrate;
    let routers = t.nodes.len();
    let (rss0, fds0) = (status("VmRSS:"), open_fds());
    let base = kernel_namespaces();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    let timings = rt.block_on(substrate::up(&t));
    let up = t0.elapsed();
    let timings = match timings {
        Ok(x) => x,
        Err(e) => {
            let _ = substrate::down(&t.name);
            return Err(e);
        }
    };
    let (rss1, fds1) = (status("VmRSS:"), open_fds());
    println!(
        "{label}: substrate up in {:.1} ms ({} threads)\n{timings}",
        ms(up),
        vlsp::kernel::netns::workers()
    );
    println!(
        "  RSS {rss0} -> {rss1} KiB: {:.2} KiB per router; open files {fds0} -> {fds1}",
        rss1.saturating_sub(rss0) as f64 / routers as f64
    );
    // IP's TTL (255) bounds a ping's path: r0 to r250 and the last router
    // back to 250 routers before it.
    let last = routers - 1;
    let mut ping = Ok(Duration::ZERO);
    for (a, b) in [(0, last.min(250)), (last, last.saturating_sub(250))] {
        let (a, b) = (format!("r{a}"), format!("r{b}"));
        let far = t
            .links_of(&b)
            .next()
            .map(|(me, _, _)| me.addr)
            .ok_or_else(|| anyhow::anyhow!("{b} has no link"))?;
        let p = substrate::udp_ping(&t.name, &a, &b, far, Duration::from_secs(10));
        match &p {
            Ok(rtt) => println!("  UDP ping {a} -> {b} ({far}): {:.3} ms", ms(*rtt)),
            Err(e) => println!("  UDP ping {a} -> {b} ({far}) FAILED: {e:#}"),
        }
        ping = ping.and(p);
    }
    let t0 = Instant::now();
    let down = substrate::down(&t.name)?;
    let down_t = t0.elapsed();
    // The kernel frees the namespaces in its cleanup work afterwards (other
    // programs' namespaces count too: 99 % freed is taken as done).
    let mut freed = None;
    while t0.elapsed() < Duration::from_secs(120) {
        match (kernel_namespaces(), base) {
            (Some(n), Some(b)) if n <= b + routers as u64 / 100 + 2 => {
                freed = Some(t0.elapsed());
                break;
            }
            (None, _) | (_, None) => break,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    println!(
        "{label}: down in {:.1} ms; kernel freed the namespaces after {}\n{down}\n",
        ms(down_t),
        freed.map_or("(not seen)".into(), |d| format!("{:.1} ms", ms(d)))
    );
    if let Some(csv) = std::env::var_os("SCALE_CSV") {
        use std::io::Write;
        let new = !Path::new(&csv).exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&csv)?;
        let s = |d: Duration| format!("{:.3}", d.as_secs_f64());
        if new {
            let phases: Vec<String> = timings
                .phases
                .iter()
                .map(|p| format!("{}_s", p.0.replace([' ', ','], "_")))
                .collect();
            writeln!(
                f,
                "routers,threads,up_s,{},down_s,kernel_freed_s,rss_per_router_kib,open_files,ping_ms",
                phases.join(",")
            )?;
        }
        let phases: Vec<String> = timings.phases.iter().map(|p| s(p.1)).collect();
        writeln!(
            f,
            "{routers},{},{},{},{},{},{:.2},{fds1},{}",
            vlsp::kernel::netns::workers(),
            s(up),
            phases.join(","),
            s(down_t),
            freed.map_or(String::new(), s),
            rss1.saturating_sub(rss0) as f64 / routers as f64,
            ping.as_ref()
                .map_or(String::new(), |d| format!("{:.3}", ms(*d)))
        )?;
    }
    ping.map(drop)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}
