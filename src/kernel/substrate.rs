//! The substrate, for real: one network namespace per router and per virtual
//! node, veth links with the topology's addresses, static routes along
//! shortest paths, IP forwarding, and a bridge per virtual interface on its
//! host router (each virtual link's tunnel end joins only the bridge of the
//! interface it names, so links never share an L2 segment). This file orchestrates `up`, `down`, `status`, `exec` and
//! `udp_ping`; the namespaces are in [`crate::kernel::netns`], the
//! crash-safe record in [`crate::kernel::journal`], the links, addresses
//! and routes in [`crate::kernel::links`].
//!
//! Everything `up` creates (veths, bridges, tunnel ends, routes) lives
//! inside namespaces that were journaled before they were created, and goes
//! with them. Nothing is ever deleted by a name pattern.

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;

use crate::kernel::journal::{self, Entry};
use crate::kernel::links;
use crate::kernel::netns::{par_each, workers};
use crate::model::paths::RunDir;
use crate::topology::{Endpoint, Node, Topology, Vnode};

// The paths callers use today: `kernel::substrate::{ns_name, enter, ...}`.
pub use crate::kernel::journal::{journal_path, journal_qemu, journal_read, journaled_topologies};
pub use crate::kernel::netns::{
    enter, handle_in, netns_add, netns_del, ns_name, ns_path, require_root, with_netns,
};

/// Durations of the phases of `up` or `down`.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    pub phases: Vec<(&'static str, Duration)>,
    /// Steps inside a parallel phase, summed over its threads (so not
    /// part of the total).
    pub detail: Vec<(&'static str, Duration)>,
}

impl Timings {
    fn mark(&mut self, name: &'static str, since: &mut Instant) {
        let now = Instant::now();
        self.phases.push((name, now - *since));
        *since = now;
    }
    pub fn total(&self) -> Duration {
        self.phases.iter().map(|p| p.1).sum()
    }
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, d) in &self.phases {
            writeln!(f, "  {n:<28} {:>10.3} ms", d.as_secs_f64() * 1e3)?;
        }
        for (n, d) in &self.detail {
            writeln!(
                f,
                "    {n:<26} {:>10.3} ms (summed over threads)",
                d.as_secs_f64() * 1e3
            )?;
        }
        write!(
            f,
            "  {:<28} {:>10.3} ms",
            "total",
            self.total().as_secs_f64() * 1e3
        )
    }
}

/// When `up` shapes the links (root HTB, capacity, best-effort and
/// signaling classes with their filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shaping {
    /// Every link end, before anything runs.
    Eager,
    /// A link end at its first reservation, by the node's enforcer
    /// ([`crate::kernel::tc::HtbEnforcer::shaping_on_demand`]); until
    /// then the link is not held to its capacity. Every HTB qdisc and
    /// class is a tc block, and the kernel binds a new block after a
    /// linear search of one list of all blocks of all namespaces
    /// (`flow_indr_dev_setup_offload`, for devices without
    /// `ndo_setup_tc` such as veth): eight blocks a router make shaping
    /// quadratic, 52 ms a router at 10 000 routers against 1.5 at 1000.
    OnDemand,
}

/// Routers up to which `up` shapes every link up front. Every reservation
/// class binds a block too, after the same search: at 1000 routers shaped
/// up front (8000 blocks) a class took ~100 µs on the node's kernel thread,
/// more than a hop's signaling (~60 µs), so along a long chain the classes
/// fell behind the RESERVE and its RESPONSE waited for them (every node on
/// one thread, the kernel work on CPU 1: setup [A] 122-134 ms across 1000
/// routers; 72-78 ms shaped on demand, classes 31-43 µs).
pub const SHAPE_EAGERLY_UP_TO: usize = 300;

impl Shaping {
    /// Eager up to [`SHAPE_EAGERLY_UP_TO`] routers, on demand beyond.
    pub fn for_size(routers: usize) -> Self {
        if routers <= SHAPE_EAGERLY_UP_TO {
            Self::Eager
        } else {
            Self::OnDemand
        }
    }
}

/// Brings `topo`'s substrate up. On failure, everything created so far is
/// removed and the error says what clashed.
pub async fn up(topo: &Topology) -> Result<Timings> {
    up_shaped(topo, Shaping::for_size(topo.nodes.len())).await
}

/// As [`up`], links shaped as `shaping` says.
pub async fn up_shaped(topo: &Topology, shaping: Shaping) -> Result<Timings> {
    require_root()?;
    // Refuse a clash before creating anything: the rollback below removes
    // everything journaled under this name, which would be the running
    // topology's namespaces.
    refuse_clash(topo)?;
    match up_inner(topo, shaping).await {
        Ok(t) => Ok(t),
        Err(e) => {
            let _ = down(&topo.name);
            Err(e.context(format!(
                "bringing up {} failed; everything it created was removed",
                topo.name
            )))
        }
    }
}

/// Names of the namespaces `up` creates for `topo` (routers, then
/// namespace virtual nodes).
fn namespaces_of(topo: &Topology) -> Vec<String> {
    topo.nodes
        .iter()
        .map(|n| n.name.clone())
        .chain(
            topo.vnodes
                .iter()
                .filter(|v| v.qemu.is_none())
                .map(|v| v.name.clone()),
        )
        .collect()
}

/// Fails if `topo` is journaled already or one of its namespaces exists.
fn refuse_clash(topo: &Topology) -> Result<()> {
    let name = &topo.name;
    if journal::journal_path(name).is_some_and(|p| p.exists()) {
        bail!("{name} already exists (it is journaled as up): run `vlsp down {name}` first");
    }
    for n in namespaces_of(topo) {
        let ns = ns_name(name, &n);
        if ns_path(&ns).exists() {
            bail!(
                "namespace {ns} already exists: run `vlsp down {name}` (or `vlsp down --all`) first"
            );
        }
    }
    Ok(())
}

async fn up_inner(topo: &Topology, shaping: Shaping) -> Result<Timings> {
    build(topo, workers(), shaping)
}

/// Threads for the passes that are mostly RTNL work (veths, interface
/// configuration): more than the cores only contend for the lock (measured
/// at 300 routers: 1.5 s with one thread, 2.2 s with four).
fn rtnl_workers(threads: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if std::env::var_os("VLSP_SUBSTRATE_THREADS").is_some() {
        threads
    } else {
        threads.min(cores)
    }
}

/// One kernel object `build` creates from the root namespace: a veth pair
/// between two namespaces (node, interface) of the topology.
struct Veth<'a> {
    a: (&'a str, &'a str),
    b: (&'a str, &'a str),
}

/// What one namespace gets once its veths exist.
enum Job<'a> {
    Router(&'a Node),
    Vnode(&'a Vnode),
}

/// Step durations one worker thread summed.
type Steps = Vec<(&'static str, Duration)>;

fn step<T>(steps: &mut Steps, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t0 = Instant::now();
    let r = f();
    add_step(steps, name, t0);
    r
}

fn add_step(steps: &mut Steps, name: &'static str, since: Instant) {
    let d = since.elapsed();
    match steps.iter_mut().find(|s| s.0 == name) {
        Some(s) => s.1 += d,
        None => steps.push((name, d)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build a tokio runtime for a substrate worker")
}

fn open_ns(topo: &str, node: &str) -> Result<File> {
    let p = ns_path(&ns_name(topo, node));
    File::open(&p).with_context(|| format!("cannot open namespace {}", p.display()))
}

/// Brings the substrate up from `threads` threads in three passes, each
/// over every namespace or veth: create the namespaces; create the veth
/// pairs (from the root namespace, each end placed in its namespace);
/// then, from a thread inside each namespace, everything else. A
/// namespace file or netlink socket is open only while its item is worked
/// on, so a 10 000-router chain never nears the open-file limit.
fn build(topo: &Topology, threads: usize, shaping: Shaping) -> Result<Timings> {
    let mut t = Timings::default();
    let mut since = Instant::now();
    let name = &topo.name;
    let all: Vec<String> = namespaces_of(topo)
        .iter()
        .map(|n| ns_name(name, n))
        .collect();
    // The kernel's neighbour table is shared by all namespaces (see
    // `make_room_for_neighbours`): sized before anything needs it.
    links::make_room_for_neighbours(topo.links.len())?;
    journal::journal_namespaces(name, &all)?;
    crate::kernel::netns::netns_add_many(&all, threads)?;
    t.mark("namespaces", &mut since);

    let ns_vnodes = || topo.vnodes.iter().filter(|v| v.qemu.is_none());
    let mut veths: Vec<Veth> = topo
        .links
        .iter()
        .map(|l| Veth {
            a: (&l.a.node, &l.a.ifname),
            b: (&l.b.node, &l.b.ifname),
        })
        .collect();
    for v in ns_vnodes() {
        // One veth per virtual interface: its own L2 segment on the host.
        for i in &v.interfaces {
            veths.push(Veth {
                a: (&v.host, &i.host_ifname),
                b: (&v.name, &i.ifname),
            });
        }
    }
    par_each(
        &veths,
        rtnl_workers(threads),
        || {
            let rt = runtime()?;
            let root = rt.block_on(async {
                let (conn, root, _) = rtnetlink::new_connection().context("netlink socket")?;
                tokio::spawn(conn);
                anyhow::Ok(root)
            })?;
            Ok((rt, root))
        },
        |(rt, root), v| {
            let (fa, fb) = (open_ns(name, v.a.0)?, open_ns(name, v.b.0)?);
            rt.block_on(links::veth_between_down(root, &fa, v.a.1, &fb, v.b.1))
        },
        drop,
    )?;
    t.mark("veth links", &mut since);

    // Each node's link ends, found once (not a scan of all links per node).
    let mut ends: HashMap<&str, Vec<(&Endpoint, u64)>> = HashMap::new();
    for l in &topo.links {
        for e in [&l.a, &l.b] {
            ends.entry(&e.node).or_default().push((e, l.capacity_bps));
        }
    }
    let graph = crate::topology::Graph::new(topo);
    let jobs: Vec<Job> = topo
        .nodes
        .iter()
        .map(Job::Router)
        .chain(ns_vnodes().map(Job::Vnode))
        .collect();
    let steps = par_each(
        &jobs,
        rtnl_workers(threads),
        || Ok((runtime()?, Steps::new())),
        |(rt, steps), job| {
            let node = match job {
                Job::Router(n) => n.name.as_str(),
                Job::Vnode(v) => v.name.as_str(),
            };
            let f = open_ns(name, node)?;
            // This worker thread moves from namespace to namespace: the
            // socket below, the sysctl and the shaping act inside `node`.
            setns(f.as_fd(), CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns into the namespace of {node}"))?;
            let work = async {
                let (conn, h, _) = rtnetlink::new_connection()
                    .with_context(|| format!("netlink socket in {node}"))?;
                let work = async {
                    match job {
                        Job::Router(n) => {
                            configure_router(topo, &graph, n, &ends, shaping, &h, steps).await
                        }
                        Job::Vnode(v) => configure_vnode(v, &h, steps).await,
                    }
                };
                // The socket closes with `conn` when the work is done.
                tokio::select! {
                    r = work => r,
                    () = conn => Err(anyhow!("netlink connection in {node} ended early")),
                }
            };
            rt.block_on(work)
        },
        |(rt, steps)| {
            drop(rt);
            steps
        },
    )?;
    t.mark("namespace config", &mut since);
    for s in steps {
        for (n, d) in s {
            match t.detail.iter_mut().find(|x| x.0 == n) {
                Some(x) => x.1 += d,
                None => t.detail.push((n, d)),
            }
        }
    }
    Ok(t)
}

/// Inside router `node`'s namespace (`h`'s socket and the calling thread
/// are there): interfaces up, addresses, forwarding, static routes, link
/// shaping, and the bridges of its virtual nodes.
async fn configure_router(
    topo: &Topology,
    graph: &crate::topology::Graph<'_>,
    router: &Node,
    ends: &HashMap<&str, Vec<(&Endpoint, u64)>>,
    shaping: Shaping,
    h: &Handle,
    steps: &mut Steps,
) -> Result<()> {
    let node = router.name.as_str();
    let mine = ends.get(node).map_or(&[][..], Vec::as_slice);
    // Shaped while still down: no RCU grace period per root qdisc.
    let eager = shaping == Shaping::Eager;
    step(steps, "link shaping (HTB)", || {
        if !eager {
            return Ok(());
        }
        let mut tc = crate::kernel::tc::Tc::open()
            .with_context(|| format!("netlink socket for shaping on {node}"))?;
        for (e, capacity) in mine {
            tc.shape(&e.ifname, *capacity)
                .with_context(|| format!("shaping {node}:{} to {capacity} bit/s", e.ifname))?;
        }
        Ok(())
    })?;
    let t0 = Instant::now();
    let index = links::link_indices(h).await?;
    let names = std::iter::once("lo").chain(mine.iter().map(|(e, _)| e.ifname.as_str()));
    add_step(steps, "link indices", t0);
    // Forwarding is switched on per interface in the same requests (no
    // sysctl: see `links::forwarding_attr`).
    let t0 = Instant::now();
    links::set_all_up(h, node, &index, names, true).await?;
    add_step(steps, "interfaces up + forwarding", t0);
    let t0 = Instant::now();
    // The router's own address sits on `lo`, so no link takes it down.
    let router_addr = router.router_addr.map(|a| ("lo", a, 32));
    let addrs = mine
        .iter()
        .map(|(e, _)| (e.ifname.as_str(), e.addr, e.prefix_len))
        .chain(router_addr);
    links::add_addresses(h, node, &index, addrs).await?;
    add_step(steps, "addresses", t0);
    // With OSPF, bird installs the routes.
    let t0 = Instant::now();
    let routes = match topo.routing {
        crate::topology::Routing::Static => graph.routes(node),
        crate::topology::Routing::Ospf => vec![],
    };
    add_step(steps, "routes computed", t0);
    let t0 = Instant::now();
    links::add_routes(h, node, &index, routes).await?;
    add_step(steps, "routes installed", t0);
    let t0 = Instant::now();
    for v in topo.vnodes_on(node) {
        links::bridge_vnode(h, v).await?;
    }
    add_step(steps, "bridges", t0);
    Ok(())
}

/// Inside namespace virtual node `v`: its interfaces up with their
/// addresses.
async fn configure_vnode(v: &Vnode, h: &Handle, steps: &mut Steps) -> Result<()> {
    let t0 = Instant::now();
    let index = links::link_indices(h).await?;
    let names = std::iter::once("lo").chain(v.interfaces.iter().map(|i| i.ifname.as_str()));
    links::set_all_up(h, &v.name, &index, names, false).await?;
    let addrs = v
        .interfaces
        .iter()
        .map(|i| (i.ifname.as_str(), i.addr, i.prefix_len));
    links::add_addresses(h, &v.name, &index, addrs).await?;
    add_step(steps, "virtual nodes", t0);
    Ok(())
}

/// Removes every namespace the journal of `topo` records, then the journal
/// and the run directory. Works without the topology file.
pub fn down(topo: &str) -> Result<Timings> {
    // Only a valid name reaches the file system below.
    let run = RunDir::of(topo).with_context(|| format!("vlsp down {topo:?}"))?;
    let mut t = Timings::default();
    let mut since = Instant::now();
    let entries = journal::entries(topo);
    let mut errors = vec![];
    // Guests first: their taps live in the hosts' namespaces.
    for e in &entries {
        if let Entry::Qemu { pid, start } = e {
            crate::kernel::qemu::kill_recorded(*pid, *start);
        }
    }
    t.mark("QEMU guests stopped", &mut since);
    // Routing daemons hold their namespaces open: they go first.
    for e in &entries {
        if let Entry::Process { pid, start } = e {
            crate::kernel::process::ProcessId {
                pid: *pid,
                start: *start,
            }
            .kill_if_same();
        }
    }
    t.mark("routing daemons stopped", &mut since);
    let names: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Namespace(ns) => Some(ns.clone()),
            Entry::Qemu { .. } | Entry::Process { .. } => None,
        })
        .collect();
    // An unmount mostly waits out an RCU grace period, which concurrent
    // unmounts share: more threads than for the other passes (1000
    // namespaces: 0.47 s from 4 threads, 0.34 s from 32).
    errors.extend(crate::kernel::netns::netns_del_many(&names, 8 * workers()));
    t.mark("namespaces removed", &mut since);
    let dir = run.path();
    if errors.is_empty() {
        // Everything goes but the guests' console logs.
        if let Ok(d) = std::fs::read_dir(dir) {
            for e in d.flatten() {
                if e.file_name() != "console" {
                    let p = e.path();
                    let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    if !errors.is_empty() {
        bail!(
            "could not remove everything of {topo}: {}",
            errors.join("; ")
        );
    }
    Ok(t)
}

/// What `status` shows for one topology.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub topology: String,
    pub namespaces: Vec<(String, bool)>,
    pub api_sockets: Vec<String>,
    /// QEMU guests: pid and whether it still runs.
    pub guests: Vec<(String, bool)>,
    /// Accelerator of the QEMU guests and why it was chosen.
    pub accel: Option<String>,
}

/// The journaled topologies and whether their namespaces still exist.
pub fn status() -> Vec<Status> {
    journaled_topologies()
        .into_iter()
        .filter_map(|topo| {
            let entries = journal::entries(&topo);
            let guests = entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Qemu { pid, start } => Some((*pid, *start)),
                    Entry::Namespace(_) | Entry::Process { .. } => None,
                })
                .map(|(pid, start)| {
                    let alive = match start {
                        Some(start) => crate::kernel::process::ProcessId { pid, start }.is_alive(),
                        None => std::fs::read_to_string(format!("/proc/{pid}/comm"))
                            .is_ok_and(|c| c.starts_with("qemu")),
                    };
                    (pid.to_string(), alive)
                })
                .collect();
            let Ok(run) = RunDir::of(&topo) else {
                return None;
            };
            let accel = std::fs::read_to_string(run.accel_file())
                .ok()
                .map(|s| s.trim().to_string());
            let namespaces = entries
                .into_iter()
                .filter_map(|e| match e {
                    Entry::Namespace(n) => Some(n),
                    Entry::Qemu { .. } | Entry::Process { .. } => None,
                })
                .map(|n| {
                    let ok = ns_path(&n).exists();
                    (n, ok)
                })
                .collect();
            let api_sockets = std::fs::read_dir(run.path())
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".sock"))
                        .collect()
                })
                .unwrap_or_default();
            Some(Status {
                topology: topo,
                namespaces,
                api_sockets,
                guests,
                accel,
            })
        })
        .collect()
}

/// Runs `cmd` inside the namespace of `node` (a thread enters it and spawns
/// the command, which inherits the namespace; no `ip netns exec`).
pub fn exec(topo: &str, node: &str, cmd: &[String]) -> Result<std::process::ExitStatus> {
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| anyhow!("no command given after --"))?;
    let path = ns_path(&ns_name(topo, node));
    if !path.exists() {
        let console = RunDir::of(topo)
            .with_context(|| format!("vlsp exec {topo:?}"))?
            .console_socket(node);
        if console.exists() {
            bail!(
                "{node} in {topo} is a QEMU guest, not a namespace: drive it over its serial console {} (e.g. `socat - UNIX-CONNECT:{}`)",
                console.display(),
                console.display()
            );
        }
        bail!("no namespace for {node} in {topo}: is the topology up (`vlsp status`)?");
    }
    let prog = prog.clone();
    let args = args.to_vec();
    std::thread::spawn(move || -> Result<std::process::ExitStatus> {
        enter(&path)?;
        std::process::Command::new(&prog)
            .args(&args)
            .status()
            .with_context(|| format!("cannot run {prog}"))
    })
    .join()
    .map_err(|_| anyhow!("exec thread panicked"))?
}

/// Sends a UDP datagram from node `a` to `dst` and waits for node `b`
/// (which owns `dst`) to receive and echo it; returns the round-trip time.
/// IP's TTL bounds the path to 255 routers.
pub fn udp_ping(
    topo: &str,
    a: &str,
    b: &str,
    dst: Ipv4Addr,
    timeout: Duration,
) -> Result<Duration> {
    let pb = ns_path(&ns_name(topo, b));
    let pa = ns_path(&ns_name(topo, a));
    let (tx, rx) = std::sync::mpsc::channel();
    let echo = std::thread::spawn(move || -> Result<()> {
        enter(&pb)?;
        let s = std::net::UdpSocket::bind((dst, 0))?;
        s.set_ttl(255)?;
        tx.send(s.local_addr()?.port()).ok();
        s.set_read_timeout(Some(timeout))?;
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).context("no datagram arrived")?;
        s.send_to(&buf[..n], from)?;
        Ok(())
    });
    let port = rx
        .recv_timeout(timeout)
        .context("echo side did not start")?;
    let rtt = std::thread::spawn(move || -> Result<Duration> {
        enter(&pa)?;
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        // Across up to 255 routers (the default 64 ends a long chain's ping).
        s.set_ttl(255)?;
        s.set_read_timeout(Some(timeout))?;
        let t0 = Instant::now();
        s.send_to(b"vlsp-ping", (dst, port))?;
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf).context("no echo came back")?;
        anyhow::ensure!(&buf[..n] == b"vlsp-ping", "echo garbled");
        Ok(t0.elapsed())
    })
    .join()
    .map_err(|_| anyhow!("ping thread panicked"))??;
    echo.join().map_err(|_| anyhow!("echo thread panicked"))??;
    Ok(rtt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_display_total() {
        let mut t = Timings::default();
        let mut s = Instant::now();
        t.mark("a", &mut s);
        assert!(t.to_string().contains("total"));
    }
}
