//! A running testbed: the substrate of a topology plus one signaling node
//! (actor system on its own thread, inside its namespace) per NSIS router.
//! What `vlsp up` runs, what the experiments and the integration tests use.

pub mod apply;
pub mod control;
pub mod daemon;
pub mod faults;
pub mod groups;
mod guests;
pub mod k8s;
pub mod procs;
pub mod routing;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::kernel::substrate::{self, Timings};
use crate::model::measure::{Point, Recorder};
use crate::model::paths::RunDir;
use crate::node::api::{Client, Reply, Request};
use crate::node::{NodeConfig, NodeHandle, spawn_node};
use crate::topology::Topology;

/// Where a running topology keeps its effective topology, so that commands
/// given only the topology's name (`vlsp link ...`) know its nodes.
pub fn saved_topology(run: &RunDir) -> PathBuf {
    run.topology_file()
}

/// The executable that runs NSIS node processes: the one asked for, or this one.
fn node_exe(opts: &Options) -> Result<PathBuf> {
    match &opts.node_exe {
        Some(e) => Ok(e.clone()),
        None => {
            std::env::current_exe().context("cannot find this executable (to run node processes)")
        }
    }
}

/// Loads a topology given as a file path or as the name of a running one
/// (a name is checked before it is used as a path).
pub fn resolve(arg: &str) -> Result<Topology> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(Topology::load(p)?);
    }
    let run = RunDir::of(arg)
        .with_context(|| format!("{arg} is neither a topology file nor a topology name"))?;
    let saved = run.topology_file();
    if saved.exists() {
        return Ok(Topology::load(&saved)?);
    }
    bail!("{arg} is neither a topology file nor a running topology (see `vlsp status`)")
}

/// Refuses to bring `topo` up when any of it is already there: a journal
/// (up, or left by a crash) or one of its namespaces. Checked before
/// anything is created, so a refused `up` never touches a running one.
pub fn ensure_not_up(topo: &Topology) -> Result<()> {
    let run = RunDir::new(&topo.topo_name());
    let name = &topo.name;
    if run.journal().exists() {
        let pid = daemon::running_pid(&run)
            .map(|p| format!(" (by vlsp pid {p})"))
            .unwrap_or_default();
        bail!(
            "{name} is already up{pid}: `vlsp down {name}` first (see `vlsp status`); nothing was changed"
        );
    }
    let names = topo.nodes.iter().map(|n| &n.name);
    for n in names.chain(topo.vnodes.iter().map(|v| &v.name)) {
        let ns = substrate::ns_name(name, n);
        if substrate::ns_path(&ns).exists() {
            bail!(
                "namespace {ns} already exists although {name} has no journal: remove it (`ip netns del {ns}`) first; nothing was changed"
            );
        }
    }
    Ok(())
}

/// Knobs the experiments turn.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep this many measurement points per node in memory (0: none).
    pub points: usize,
    /// Override the tunnel backend of every node.
    pub backend: Option<crate::model::tunnel::Backend>,
    /// Override the refresh period.
    pub refresh: Option<Duration>,
    /// Admission control only: do not install reservations in the kernel.
    pub no_qos: bool,
    /// Experiments: capture every substrate interface into pcap files here.
    pub pcap: Option<PathBuf>,
    /// Run each node as a `vlsp node` child process in its namespace
    /// (its measurement points are then taken over its API socket).
    pub process_per_node: bool,
    /// The `vlsp` binary for those children (default: this executable).
    pub node_exe: Option<PathBuf>,
    /// Host the nodes in this many `vlsp node-group` processes; 0: decide
    /// by size (threads of this process while their open files fit, else
    /// groups of [`groups::NODES_PER_GROUP`]); see [`groups::choose`].
    pub groups: usize,
}

/// A substrate with its nodes running.
pub struct Testbed {
    pub topo: Topology,
    pub nodes: Vec<NodeHandle>,
    /// Nodes running as processes (`Options::process_per_node`).
    pub procs: Vec<procs::NodeProc>,
    /// Node groups (`Options::groups`, or chosen by size).
    pub groups: Vec<groups::NodeGroup>,
    pub recorders: Vec<Recorder>,
    pub up_timings: Timings,
    /// QEMU virtual nodes, running.
    pub guests: Vec<crate::kernel::qemu::Guest>,
    /// Their accelerator (when there are any).
    pub accel: Option<crate::kernel::qemu::Accel>,
    /// Per guest: QEMU start → readiness marker on the console.
    pub boot_times: Vec<(String, Duration)>,
    /// The run directory, `/run/vlsp/<topology>/`.
    pub run: RunDir,
    /// bird in every router (`routing = "ospf"`).
    pub birds: Vec<crate::kernel::bird::Bird>,
    /// How OSPF took to converge at start (`routing = "ospf"`).
    pub ospf_converged: Option<Duration>,
    /// What the nodes were started with (a stopped node restarts so).
    opts: Options,
    /// The substrate is up and this testbed removes it when dropped.
    armed: bool,
}

impl Testbed {
    /// Brings `topo` up: namespaces, links, routes, then the NSIS nodes.
    /// Refused when any of it is already up; on failure everything is
    /// removed again (by [`Drop`], whatever step failed).
    pub fn up(topo: Topology, opts: &Options) -> Result<Self> {
        substrate::require_root()?;
        ensure_not_up(&topo)?;
        let limit = raise_fd_limit();
        let vlsp_nodes = topo.nodes.iter().filter(|n| n.runs_vlsp()).count();
        let link_ends = link_ends(
            &topo,
            topo.nodes
                .iter()
                .filter(|n| n.runs_vlsp())
                .map(|n| n.name.as_str()),
        );
        let fits = fd_budget(&topo.name, vlsp_nodes, link_ends, limit).is_ok();
        let hosting = groups::choose(vlsp_nodes, opts.process_per_node, opts.groups, fits);
        if hosting == groups::Hosting::InProcess {
            fd_budget(&topo.name, vlsp_nodes, link_ends, limit)?;
        }
        if let Some((t2, t3)) = crate::kernel::links::make_room_for_neighbours(topo.links.len())? {
            tracing::info!(
                "ARP table limits raised to gc_thresh2 {t2}, gc_thresh3 {t3} for {} links",
                topo.links.len()
            );
        }
        let run = RunDir::new(&topo.topo_name());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let up_timings = rt.block_on(substrate::up(&topo))?;
        drop(rt);
        let mut tb = Self {
            topo,
            nodes: vec![],
            procs: vec![],
            groups: vec![],
            recorders: vec![],
            up_timings,
            guests: vec![],
            accel: None,
            boot_times: vec![],
            run,
            birds: vec![],
            ospf_converged: None,
            opts: opts.clone(),
            armed: true,
        };
        tb.start(opts, hosting)
            .context("the testbed was removed again")
            .map(|()| tb)
    }

    /// Everything after the substrate: the effective topology saved, the
    /// QEMU guests, the NSIS nodes.
    fn start(&mut self, opts: &Options, hosting: groups::Hosting) -> Result<()> {
        let effective = effective(&self.topo, opts);
        let saved = self.run.topology_file();
        std::fs::write(&saved, effective.to_toml())
            .with_context(|| format!("cannot save the topology in {}", saved.display()))?;
        self.start_guests()
            .context("starting the QEMU virtual nodes failed")?;
        if self.topo.routing == crate::topology::Routing::Ospf {
            let t0 = std::time::Instant::now();
            self.birds = routing::start_ospf(&self.topo, &self.run, Duration::from_secs(60))
                .context("starting OSPF (bird2) in the routers failed")?;
            self.ospf_converged = Some(t0.elapsed());
        }
        let exe = node_exe(opts)?;
        let names: Vec<String> = (self.topo.nodes.iter())
            // External routers are left for another implementation to run.
            .filter(|n| n.runs_vlsp())
            .map(|n| n.name.clone())
            .collect();
        match hosting {
            groups::Hosting::ProcessPerNode => {
                for name in &names {
                    self.spawn_proc(&exe, name, opts)?;
                }
            }
            groups::Hosting::Groups(g) => {
                let split = groups::split(&names, g);
                self.groups = groups::spawn_all(&exe, &saved, split, &self.run, opts)?;
            }
            groups::Hosting::InProcess => {
                for (h, rec) in groups::start_threads(&self.topo, &self.run, &names, opts)? {
                    self.nodes.push(h);
                    self.recorders.push(rec);
                }
            }
        }
        Ok(())
    }

    /// Starts router `name`'s NSIS node as a process of `exe`, reading the
    /// run's saved topology file.
    fn spawn_proc(&mut self, exe: &Path, name: &str, opts: &Options) -> Result<()> {
        let p = procs::spawn(
            exe,
            &self.topo.name,
            &self.run.topology_file(),
            name,
            &self.run,
            opts.no_qos,
            opts.points,
        )?;
        self.procs.push(p);
        Ok(())
    }

    /// Starts router `name`'s NSIS node (a thread, or a process).
    fn start_node(&mut self, name: &str, opts: &Options) -> Result<()> {
        if opts.process_per_node {
            let exe = node_exe(opts)?;
            return self.spawn_proc(&exe, name, opts);
        }
        let cfg = NodeConfig::from_topology(&self.topo, name)
            .with_context(|| format!("configuring node {name}"))?;
        let (cfg, rec) = groups::tuned(&self.run, cfg, opts);
        let h =
            spawn_node(cfg, rec.clone()).with_context(|| format!("starting node {name} failed"))?;
        self.nodes.push(h);
        self.recorders.push(rec);
        Ok(())
    }

    /// Applies fault `f`: the kernel side (see [`faults::apply`]), and for
    /// a router stopped or started, its NSIS node halted or started anew
    /// (with no state: a rebooted router). Returns the faults now in force.
    ///
    /// A started router's node starts before its links come up and the
    /// routes lead through it: a neighbour's GIST re-queries at once, and a
    /// node still starting (slower under load) left them unanswered until
    /// the neighbour gave its peer up and lost the link.
    pub fn fault(
        &mut self,
        f: &crate::topology::faults::Fault,
    ) -> Result<crate::topology::faults::FaultState> {
        use crate::topology::faults::Fault;
        let started = match f {
            Fault::NodeStart { node } => self.start_stopped_node(node)?,
            _ => false,
        };
        let state = match faults::apply(&self.topo, &self.run, f) {
            Ok(s) => s,
            Err(e) => {
                // The router stays stopped: so does the node just started.
                if let (true, Fault::NodeStart { node }) = (started, f)
                    && let Some(i) = self.nodes.iter().position(|n| n.name == *node)
                {
                    self.nodes.remove(i).stop();
                }
                return Err(e);
            }
        };
        match f {
            Fault::NodeStop { node } => {
                if let Some(i) = self.nodes.iter().position(|n| n.name == *node) {
                    self.nodes.remove(i).stop();
                }
                if let Some(i) = self.procs.iter().position(|n| n.name == *node) {
                    self.procs.remove(i).stop();
                }
                if self.groups.iter().any(|g| g.hosts(node)) {
                    self.stop_grouped(node)?;
                }
            }
            Fault::NodeStart { .. } | Fault::LinkDown { .. } | Fault::LinkUp { .. } => {}
        }
        Ok(state)
    }

    /// Starts `node`'s NSIS node if its router runs one and it is not
    /// running; returns whether it started one.
    fn start_stopped_node(&mut self, node: &str) -> Result<bool> {
        let runs = self.topo.node(node).is_some_and(|n| n.runs_vlsp());
        let running = self.nodes.iter().any(|n| n.name == *node)
            || self.procs.iter().any(|n| n.name == *node)
            || (self.groups.iter().any(|g| g.hosts(node))
                && std::os::unix::net::UnixStream::connect(self.run.api_socket(node)).is_ok());
        if runs && !running {
            let opts = self.opts.clone();
            self.start_node(node, &opts)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A client of `node`'s API socket.
    pub fn client(&self, node: &str) -> Result<Client> {
        Ok(Client::connect(
            &self.run.api_socket(node),
            Duration::from_secs(60),
        )?)
    }

    /// Takes the measurement points every node recorded since the last
    /// call: from the recorders of node threads, and over the API socket
    /// (`dump_points`) from node processes.
    pub fn drain_points(&self) -> Result<Vec<Point>> {
        let mut pts: Vec<Point> = self.recorders.iter().flat_map(|r| r.drain()).collect();
        let grouped = (self.opts.points > 0)
            .then(|| self.groups.iter().flat_map(|g| &g.names))
            .into_iter()
            .flatten()
            .map(|n| (n.clone(), self.run.api_socket(n)));
        let procs = self
            .procs
            .iter()
            .map(|p| (p.name.clone(), p.api_socket.clone()));
        for (name, api) in procs.chain(grouped) {
            let mut c = Client::connect(&api, Duration::from_secs(10))?;
            match c.call(&Request::DumpPoints)? {
                Reply::Points { points } => pts.extend(points),
                other => bail!("node {name}: dump_points answered {other:?}"),
            }
        }
        Ok(pts)
    }

    /// Resident memory (KiB) of each node process and node group
    /// (`group<i>`); empty when the nodes are threads of this process.
    pub fn node_rss_kib(&self) -> Vec<(String, u64)> {
        let procs = (self.procs.iter()).filter_map(|p| Some((p.name.clone(), p.rss_kib()?)));
        let groups =
            (self.groups.iter()).filter_map(|g| Some((format!("group{}", g.index), g.rss_kib()?)));
        procs.chain(groups).collect()
    }

    /// Stops a node a group hosts (its `shutdown` op); the group and its
    /// other nodes go on.
    fn stop_grouped(&self, node: &str) -> Result<()> {
        let mut c = self.client(node)?;
        match c.call(&Request::Shutdown)? {
            Reply::Error { reason, message } => {
                bail!("node {node} refused to stop ({reason}): {message}")
            }
            _ => Ok(()),
        }
    }

    /// Stops one node's actor system (its namespace stays): a crashed
    /// NSIS daemon, for failure tests.
    pub fn kill_node(&mut self, name: &str) -> Result<()> {
        if self.groups.iter().any(|g| g.hosts(name)) {
            return self.stop_grouped(name);
        }
        let i = self
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| anyhow!("no running node {name}"))?;
        self.nodes.remove(i).stop();
        Ok(())
    }

    fn stop(&mut self) {
        groups::stop_all(self.nodes.drain(..).collect());
        groups::stop_groups(self.groups.drain(..).collect());
        for p in self.procs.drain(..) {
            p.stop();
        }
        for mut g in self.guests.drain(..) {
            g.stop();
        }
        for b in self.birds.drain(..) {
            b.stop();
        }
    }

    /// A running QEMU virtual node.
    pub fn guest(&self, vnode: &str) -> Option<&crate::kernel::qemu::Guest> {
        self.guests.iter().find(|g| g.name == vnode)
    }

    /// Stops the nodes and removes the substrate.
    pub fn down(mut self) -> Result<Timings> {
        self.stop();
        self.armed = false;
        substrate::down(&self.topo.name)
    }
}

impl Drop for Testbed {
    /// The substrate goes with the testbed, however far `up` got.
    fn drop(&mut self) {
        if self.armed {
            self.stop();
            let _ = substrate::down(&self.topo.name);
        }
    }
}

/// Open files one in-process node holds besides its neighbours' sockets
/// (one per link end, `sockets::neighbour`): three GIST sockets, the MA
/// listener, two netlink sockets, the API socket, its runtime's epoll and
/// wake-up descriptors (measured before the neighbours' sockets: 20 000
/// ran out at node 1817 of a chain).
const FDS_PER_NODE: usize = 11;
/// Open files besides the nodes' (the substrate's, clients', logs).
const FDS_SPARE: usize = 256;

/// Refuses to run `nodes` in-process nodes of `topo`, with `link_ends`
/// links among them, when their open files would pass `limit`: better
/// before anything is created than at node 1817.
fn fd_budget(topo: &str, nodes: usize, link_ends: usize, limit: u64) -> Result<()> {
    let need = nodes * FDS_PER_NODE + link_ends + FDS_SPARE;
    if need as u64 > limit {
        bail!(
            "{topo} runs {nodes} NSIS nodes in this process, about {need} open files, but the limit is {limit} \
             and cannot be raised (no CAP_SYS_RESOURCE?): raise `ulimit -Hn` as a privileged user, \
             run the nodes as processes (--process-per-node), or use a smaller topology; nothing was changed"
        );
    }
    Ok(())
}

/// Link ends of `nodes`: each has a socket connected to the other end.
fn link_ends<'a>(topo: &Topology, nodes: impl Iterator<Item = &'a str>) -> usize {
    nodes.map(|n| topo.links_of(n).count()).sum()
}

/// Lifts the limits on open files to the kernel's ceiling (each node's
/// sockets count against this process); returns the soft limit in force.
/// Without CAP_SYS_RESOURCE only the soft limit rises, to the hard one.
pub fn raise_fd_limit() -> u64 {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } != 0 {
        return u64::MAX;
    }
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok())
        .unwrap_or(1 << 20);
    let lim = libc::rlimit {
        rlim_cur: ceiling,
        rlim_max: ceiling,
    };
    let soft = libc::rlimit {
        rlim_cur: cur.rlim_max,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            return ceiling;
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return cur.rlim_max;
        }
    }
    cur.rlim_cur
}

/// `topo` with the options that change it applied: what the nodes really
/// run, and what the run directory keeps.
pub fn effective(topo: &Topology, opts: &Options) -> Topology {
    let mut t = topo.clone();
    if let Some(b) = opts.backend {
        t.backend = b;
    }
    if let Some(r) = opts.refresh {
        // The nodes never refresh faster than the topology's floor either.
        t.refresh_ms = (r.as_millis() as u64).max(crate::topology::MIN_REFRESH_MS);
    }
    t
}

/// Sets up a virtual link through `from`'s host; returns its VLink ID.
pub fn link_setup(
    topo: &str,
    from: &str,
    to: &str,
    rate: crate::model::units::Rate,
    authenticate: bool,
    bidirectional: bool,
) -> Result<crate::node::api::LinkInfo> {
    let t = resolve(topo)?;
    // `from` may name the interface too (`VM1:2`).
    let vnode = from.split(':').next().unwrap_or(from);
    let host = t
        .vnodes
        .iter()
        .find(|v| v.name == vnode)
        .map(|v| v.host.clone())
        .ok_or_else(|| anyhow!("no virtual node {from} in {}", t.name))?;
    let run = RunDir::new(&t.topo_name());
    let mut c = Client::connect(&run.api_socket(&host), Duration::from_secs(60))
        .with_context(|| format!("API of {host}"))?;
    match c.call(&Request::Setup {
        from: from.into(),
        to: to.into(),
        rate_bps: rate,
        bidirectional,
        backend: None,
        authenticate,
        tunnel: None,
    })? {
        Reply::LinkUp { vlink } => Ok(vlink),
        Reply::Error { reason, message } => bail!("setup refused ({reason}): {message}"),
        other => bail!("unexpected reply {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tunnel::Backend;

    #[test]
    fn nodes_beyond_the_open_file_limit_are_refused_before_anything_starts() {
        // A chain's router has two links, so two neighbours' sockets.
        assert!(fd_budget("c", 1500, 3000, 20_000).is_ok());
        assert!(fd_budget("c", 1700, 3400, 20_000).is_err());
        let e = fd_budget("c5000", 5000, 10_000, 20_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("5000 NSIS nodes"), "{e}");
        assert!(e.contains("limit is 20000"), "{e}");
        assert!(e.contains("--process-per-node"), "{e}");
        assert!(fd_budget("c", 5000, 10_000, 1 << 20).is_ok());
    }

    #[test]
    fn the_saved_topology_is_the_effective_one() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
        let t = Topology::load(&p).unwrap();
        let opts = Options {
            backend: Some(Backend::Script),
            refresh: Some(Duration::from_secs(2)),
            ..Options::default()
        };
        let saved = Topology::parse(&effective(&t, &opts).to_toml(), Path::new("s.toml")).unwrap();
        assert_eq!(saved.backend, Backend::Script);
        assert_eq!(saved.refresh_ms, 2000);
        assert_eq!(saved.links, t.links);
        assert_eq!(saved.vnodes, t.vnodes);
    }
}
