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
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rtnetlink::Handle;

use crate::kernel::journal::{self, Entry};
use crate::kernel::links;
use crate::model::paths::RunDir;
use crate::topology::Topology;

// The paths callers use today: `kernel::substrate::{ns_name, enter, ...}`.
pub use crate::kernel::journal::{journal_path, journal_qemu, journal_read, journaled_topologies};
pub use crate::kernel::netns::{
    enter, handle_in, netns_add, netns_del, ns_name, ns_path, require_root, with_netns,
};

/// Durations of the phases of `up` or `down`.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    pub phases: Vec<(&'static str, Duration)>,
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
        write!(
            f,
            "  {:<28} {:>10.3} ms",
            "total",
            self.total().as_secs_f64() * 1e3
        )
    }
}

/// Brings `topo`'s substrate up. On failure, everything created so far is
/// removed and the error says what clashed.
pub async fn up(topo: &Topology) -> Result<Timings> {
    require_root()?;
    // Refuse a clash before creating anything: the rollback below removes
    // everything journaled under this name, which would be the running
    // topology's namespaces.
    refuse_clash(topo)?;
    match up_inner(topo).await {
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

async fn up_inner(topo: &Topology) -> Result<Timings> {
    let mut t = Timings::default();
    let mut since = Instant::now();
    let name = &topo.name;
    let all = namespaces_of(topo);
    let mut files: HashMap<String, File> = HashMap::new();
    for n in &all {
        let ns = ns_name(name, n);
        journal::journal_namespace(name, &ns)?;
        let p = netns_add(&ns)?;
        files.insert(n.clone(), File::open(&p)?);
    }
    t.mark("namespaces", &mut since);

    let (conn, root, _) = rtnetlink::new_connection().context("netlink socket")?;
    tokio::spawn(conn);
    let mut handles: HashMap<String, Handle> = HashMap::new();
    for n in &all {
        handles.insert(n.clone(), handle_in(&files[n])?);
        links::set_up(&handles[n], "lo").await?;
    }
    t.mark("netlink sockets, lo up", &mut since);

    for l in &topo.links {
        let (a, b) = (&l.a, &l.b);
        links::veth_between(
            &root,
            &files[&a.node],
            &a.ifname,
            &files[&b.node],
            &b.ifname,
        )
        .await?;
        links::set_up(&handles[&b.node], &b.ifname).await?;
    }
    let ns_vnodes = || topo.vnodes.iter().filter(|v| v.qemu.is_none());
    for v in ns_vnodes() {
        // One veth per virtual interface: its own L2 segment on the host.
        for i in &v.interfaces {
            links::veth_between(
                &root,
                &files[&v.host],
                &i.host_ifname,
                &files[&v.name],
                &i.ifname,
            )
            .await?;
            links::set_up(&handles[&v.name], &i.ifname).await?;
        }
    }
    t.mark("veth links", &mut since);

    for l in &topo.links {
        for e in [&l.a, &l.b] {
            links::add_address(&handles[&e.node], &e.node, &e.ifname, e.addr, e.prefix_len).await?;
        }
    }
    for n in &topo.nodes {
        // The router's own address: on `lo`, so no link takes it down.
        if let Some(a) = n.router_addr {
            links::add_address(&handles[&n.name], &n.name, "lo", a, 32).await?;
        }
    }
    for v in ns_vnodes() {
        for i in &v.interfaces {
            links::add_address(&handles[&v.name], &v.name, &i.ifname, i.addr, i.prefix_len).await?;
        }
    }
    t.mark("addresses", &mut since);

    let graph = crate::topology::Graph::new(topo);
    for n in &topo.nodes {
        // With OSPF, bird installs the routes.
        let routes = match topo.routing {
            crate::topology::Routing::Static => graph.routes(&n.name),
            crate::topology::Routing::Ospf => vec![],
        };
        links::forward_and_route(&n.name, routes, &files[&n.name], &handles[&n.name]).await?;
    }
    t.mark("forwarding, routes", &mut since);

    for n in &topo.nodes {
        links::shape_links(topo, &n.name, &files[&n.name])?;
    }
    t.mark("link shaping (HTB)", &mut since);

    for v in &topo.vnodes {
        links::bridge_vnode(&handles[&v.host], v).await?;
    }
    t.mark("bridges, virtual nodes", &mut since);
    Ok(t)
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
    for e in &entries {
        let Entry::Namespace(ns) = e else { continue };
        if let Err(e) = netns_del(ns) {
            errors.push(format!("{ns}: {e:#}"));
        }
    }
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
