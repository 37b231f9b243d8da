//! The substrate, for real: one network namespace per router and per virtual
//! node, veth links with the topology's addresses, static routes along
//! shortest paths, IP forwarding, and a bridge per virtual interface on its
//! host router.
//!
//! Crash safety: before a namespace is created its name is appended (and
//! fsync'd) to a journal at `/run/vlsp/<topology>/journal`, so `vlsp down`
//! removes exactly what was created — after a crash or `kill -9` too, and
//! whether or not the topology file still exists. Everything else (veths,
//! bridges, tunnel ends, routes) lives inside those namespaces and goes with
//! them. Nothing is ever deleted by a name pattern, and no link is ever
//! created in the root namespace: a veth pair is created by one netlink
//! request that places each end directly in its namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::TryStreamExt;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::topology::Topology;

/// Where `ip netns` keeps its namespaces; ours live there too.
use crate::model::paths::{NETNS_DIR, RUN_DIR};

/// The namespace of router or virtual node `node` in topology `topo`.
pub fn ns_name(topo: &str, node: &str) -> String {
    format!("vlsp-{topo}-{node}")
}

/// The path of a namespace by name.
pub fn ns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Fails with one clear line unless we are root.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("vlsp needs root to create network namespaces: run it as root (e.g. with sudo)");
    }
    Ok(())
}

/// Creates a named network namespace the way `ip netns add` does: a bind
/// mount of a fresh namespace on `/run/netns/NAME`, made on a throwaway
/// thread so the caller's namespace never changes and nothing forks.
pub fn netns_add(name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(NETNS_DIR).context("cannot create /run/netns")?;
    // Make /run/netns a shared mount point once, as iproute2 does, so the
    // namespaces are visible to `ip netns` in every mount namespace.
    if mount(
        Some(""),
        NETNS_DIR,
        Some("none"),
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .is_err()
    {
        mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("cannot bind-mount /run/netns")?;
        mount(
            Some(""),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("cannot make /run/netns shared")?;
    }
    let path = ns_path(name);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "namespace {name} already exists: run `vlsp down` for its topology, or `vlsp down --all`"
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    let p = path.clone();
    let r = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("cannot bind-mount the namespace on {}", p.display()))?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("namespace thread panicked"))?;
    if let Err(e) = r {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Removes a named namespace (its links go with it). A missing one is fine.
pub fn netns_del(name: &str) -> Result<()> {
    let p = ns_path(name);
    if !p.exists() {
        return Ok(());
    }
    let _ = umount2(&p, MntFlags::MNT_DETACH);
    std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))
}

/// Moves the calling thread into the namespace at `path` (for node threads).
pub fn enter(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    setns(f.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns into {}", path.display()))?;
    Ok(())
}

/// Runs `f` with the calling thread inside `ns`, then returns to where it
/// was. `f` must be synchronous: no `.await` may happen inside.
pub fn with_netns<T>(ns: &File, f: impl FnOnce() -> T) -> Result<T> {
    let home = File::open("/proc/thread-self/ns/net").context("open /proc/thread-self/ns/net")?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).context("setns")?;
    let out = f();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).context("setns back")?;
    Ok(out)
}

/// A netlink handle whose socket lives in namespace `ns` (created there,
/// driven from anywhere). Needs a tokio runtime.
pub fn handle_in(ns: &File) -> Result<Handle> {
    let (conn, handle, _) = with_netns(ns, rtnetlink::new_connection)?.context("netlink socket")?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Writes a sysctl of the namespace `ns` (from a thread inside it).
fn sysctl_in(ns: &File, key: &str, value: &str) -> Result<()> {
    let ns = ns.try_clone()?;
    let key = key.to_string();
    let value = value.to_string();
    std::thread::spawn(move || -> Result<()> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        std::fs::write(Path::new("/proc/sys").join(&key), value)
            .with_context(|| format!("sysctl {key}"))
    })
    .join()
    .map_err(|_| anyhow!("sysctl thread panicked"))?
}

// ----------------------------------------------------------------- journal

/// The append-only record of a topology's namespaces.
pub fn journal_path(topo: &str) -> PathBuf {
    Path::new(RUN_DIR).join(topo).join("journal")
}

/// Records a QEMU process of `topo`, so `down` kills it even after a crash.
pub fn journal_qemu(topo: &str, pid: u32) -> Result<()> {
    journal_append(topo, &format!("qemu:{pid}"))
}

fn journal_append(topo: &str, ns: &str) -> Result<()> {
    let p = journal_path(topo);
    std::fs::create_dir_all(p.parent().expect("has a parent"))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)?;
    writeln!(f, "{ns}")?;
    f.sync_data()?;
    Ok(())
}

/// Namespaces recorded for `topo`.
pub fn journal_read(topo: &str) -> Vec<String> {
    std::fs::read_to_string(journal_path(topo))
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Topologies with a journal (up, or left behind by a crash).
pub fn journaled_topologies() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(RUN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("journal").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ----------------------------------------------------------------- up/down

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

async fn link_index(h: &Handle, name: &str) -> Result<u32> {
    Ok(h.link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .with_context(|| format!("no interface {name}"))?
        .ok_or_else(|| anyhow!("no interface {name}"))?
        .header
        .index)
}

/// Creates veth `a_name` (up) in namespace `a` and its peer `b_name` in `b`
/// with one request from the root namespace. The peer is brought up by the
/// caller from `b`: the kernel refuses IFF_UP on a peer created in another
/// namespace (ENOTCONN on 6.18).
async fn veth_between(root: &Handle, a: &File, a_name: &str, b: &File, b_name: &str) -> Result<()> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(b_name.to_string())
        .setns_by_fd(b.as_raw_fd())
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(a_name.to_string())
        .setns_by_fd(a.as_raw_fd())
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    root.link()
        .add(msg)
        .execute()
        .await
        .with_context(|| format!("create veth {a_name} <-> {b_name}"))
}

async fn set_up(h: &Handle, name: &str) -> Result<()> {
    let i = link_index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .with_context(|| format!("set {name} up"))
}

/// Brings `topo`'s substrate up. On failure, everything created so far is
/// removed and the error says what clashed.
pub async fn up(topo: &Topology) -> Result<Timings> {
    require_root()?;
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

async fn up_inner(topo: &Topology) -> Result<Timings> {
    let mut t = Timings::default();
    let mut since = Instant::now();
    let name = &topo.name;
    let all: Vec<String> = topo
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .chain(
            topo.vnodes
                .iter()
                .filter(|v| v.qemu.is_none())
                .map(|v| v.name.clone()),
        )
        .collect();
    for n in &all {
        let ns = ns_name(name, n);
        if ns_path(&ns).exists() {
            bail!(
                "namespace {ns} already exists: run `vlsp down {name}` (or `vlsp down --all`) first"
            );
        }
    }
    let mut files: HashMap<String, File> = HashMap::new();
    for n in &all {
        let ns = ns_name(name, n);
        journal_append(name, &ns)?;
        let p = netns_add(&ns)?;
        files.insert(n.clone(), File::open(&p)?);
    }
    t.mark("namespaces", &mut since);

    let (conn, root, _) = rtnetlink::new_connection().context("netlink socket")?;
    tokio::spawn(conn);
    let mut handles: HashMap<String, Handle> = HashMap::new();
    for n in &all {
        handles.insert(n.clone(), handle_in(&files[n])?);
        set_up(&handles[n], "lo").await?;
    }
    t.mark("netlink sockets, lo up", &mut since);

    for l in &topo.links {
        veth_between(
            &root,
            &files[&l.a.node],
            &l.a.ifname,
            &files[&l.b.node],
            &l.b.ifname,
        )
        .await?;
        set_up(&handles[&l.b.node], &l.b.ifname).await?;
    }
    for v in topo.vnodes.iter().filter(|v| v.qemu.is_none()) {
        veth_between(
            &root,
            &files[&v.host],
            &v.host_ifname,
            &files[&v.name],
            "eth0",
        )
        .await?;
        set_up(&handles[&v.name], "eth0").await?;
    }
    t.mark("veth links", &mut since);

    for l in &topo.links {
        for e in [&l.a, &l.b] {
            let h = &handles[&e.node];
            let i = link_index(h, &e.ifname).await?;
            h.address()
                .add(i, e.addr.into(), e.prefix_len)
                .execute()
                .await
                .with_context(|| {
                    format!(
                        "address {}/{} on {}:{}",
                        e.addr, e.prefix_len, e.node, e.ifname
                    )
                })?;
        }
    }
    for v in topo.vnodes.iter().filter(|v| v.qemu.is_none()) {
        let h = &handles[&v.name];
        let i = link_index(h, "eth0").await?;
        h.address()
            .add(i, v.addr.into(), v.prefix_len)
            .execute()
            .await
            .with_context(|| format!("address {} on virtual node {}", v.addr, v.name))?;
    }
    t.mark("addresses", &mut since);

    for n in &topo.nodes {
        sysctl_in(&files[&n.name], "net/ipv4/ip_forward", "1")?;
        let h = &handles[&n.name];
        for r in topo.routes(&n.name) {
            let i = link_index(h, &r.ifname).await?;
            let msg = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(r.dest, r.prefix_len)
                .gateway(r.via)
                .output_interface(i)
                .build();
            h.route().add(msg).execute().await.with_context(|| {
                format!(
                    "route {}/{} via {} on {}",
                    r.dest, r.prefix_len, r.via, n.name
                )
            })?;
        }
    }
    t.mark("forwarding, routes", &mut since);

    // Capacities become real: each end of each link is shaped to the
    // link's capacity, so the bottleneck is the topology's, not the veth's.
    // One netlink socket per router, opened inside its namespace.
    for n in &topo.nodes {
        with_netns(&files[&n.name], || -> Result<()> {
            let mut tc = crate::kernel::tc::Tc::open()
                .with_context(|| format!("netlink socket for shaping on {}", n.name))?;
            for (me, _, capacity) in topo.links_of(&n.name) {
                tc.shape(&me.ifname, capacity).with_context(|| {
                    format!("shaping {}:{} to {capacity} bit/s", n.name, me.ifname)
                })?;
            }
            Ok(())
        })??;
    }
    t.mark("link shaping (HTB)", &mut since);

    for v in &topo.vnodes {
        let h = &handles[&v.host];
        h.link()
            .add(LinkBridge::new(&v.bridge).up().build())
            .execute()
            .await
            .with_context(|| format!("bridge {} on {}", v.bridge, v.host))?;
        if v.qemu.is_some() {
            // The guest's tap joins later, when QEMU has created it.
            continue;
        }
        let br = link_index(h, &v.bridge).await?;
        let port = link_index(h, &v.host_ifname).await?;
        h.link()
            .set(LinkUnspec::new_with_index(port).controller(br).up().build())
            .execute()
            .await
            .with_context(|| format!("attach {} to {} on {}", v.host_ifname, v.bridge, v.host))?;
    }
    t.mark("bridges, virtual nodes", &mut since);
    Ok(t)
}

/// Removes every namespace the journal of `topo` records, then the journal
/// and the run directory. Works without the topology file.
pub fn down(topo: &str) -> Result<Timings> {
    let mut t = Timings::default();
    let mut since = Instant::now();
    let names = journal_read(topo);
    let mut errors = vec![];
    // Guests first: their taps live in the hosts' namespaces.
    for pid in names.iter().filter_map(|l| l.strip_prefix("qemu:")) {
        if let Ok(pid) = pid.parse() {
            crate::kernel::qemu::kill_recorded(pid);
        }
    }
    t.mark("QEMU guests stopped", &mut since);
    for ns in names.iter().filter(|l| !l.starts_with("qemu:")) {
        if let Err(e) = netns_del(ns) {
            errors.push(format!("{ns}: {e:#}"));
        }
    }
    t.mark("namespaces removed", &mut since);
    let dir = Path::new(RUN_DIR).join(topo);
    if errors.is_empty() {
        // Everything goes but the guests' console logs.
        if let Ok(d) = std::fs::read_dir(&dir) {
            for e in d.flatten() {
                if e.file_name() != "console" {
                    let p = e.path();
                    let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
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
        .map(|topo| {
            let lines = journal_read(&topo);
            let guests = lines
                .iter()
                .filter_map(|l| l.strip_prefix("qemu:"))
                .map(|pid| {
                    let alive = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.starts_with("qemu"));
                    (pid.to_string(), alive)
                })
                .collect();
            let accel = std::fs::read_to_string(Path::new(RUN_DIR).join(&topo).join("accel"))
                .ok()
                .map(|s| s.trim().to_string());
            let namespaces = lines
                .into_iter()
                .filter(|l| !l.starts_with("qemu:"))
                .map(|n| {
                    let ok = ns_path(&n).exists();
                    (n, ok)
                })
                .collect();
            let api_sockets = std::fs::read_dir(Path::new(RUN_DIR).join(&topo))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".sock"))
                        .collect()
                })
                .unwrap_or_default();
            Status {
                topology: topo,
                namespaces,
                api_sockets,
                guests,
                accel,
            }
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
        let console = Path::new(RUN_DIR)
            .join(topo)
            .join("console")
            .join(format!("{node}.console.sock"));
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
    fn names() {
        assert_eq!(ns_name("paper-4node", "tb1"), "vlsp-paper-4node-tb1");
        assert_eq!(ns_path("x"), PathBuf::from("/run/netns/x"));
    }

    #[test]
    fn timings_display_total() {
        let mut t = Timings::default();
        let mut s = Instant::now();
        t.mark("a", &mut s);
        assert!(t.to_string().contains("total"));
    }
}
