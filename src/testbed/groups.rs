//! Node groups: `vlsp node-group` child processes, each hosting many
//! routers' NSIS nodes (threads shared by up to 64 nodes, each node's
//! sockets in its own namespace, each with its own API socket at the usual
//! path). A process may hold only 20 000
//! open files here and cannot raise that, so one process runs at most about
//! 1500 nodes of a chain (13 files each: 11, and a socket per link
//! neighbour); a process per node costs 10 MiB each. Groups of about a
//! thousand nodes sit in between: 10 000 routers are 8-10 processes.
//!
//! The group processes are journaled with the node processes
//! ([`super::procs::pids_file`]), so `vlsp down` kills them even after
//! `vlsp up` or a group was killed with -9.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::model::measure::Recorder;
use crate::model::paths::RunDir;
use crate::node::{NodeConfig, NodeHandle, StartingNode, start_node};
use crate::topology::{Graph, Topology};

/// Nodes per group when `vlsp up` decides by size: well inside the open
/// file limit (about 13 files a node of a chain, 16 250 in all) with room
/// for clients and logs.
pub const NODES_PER_GROUP: usize = 1250;

/// Nodes starting at once in one process: enough to overlap their
/// start-ups (thread, sockets, netlink) with the next ones' configuration.
const START_WINDOW: usize = 64;

/// How the testbed hosts its NSIS nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosting {
    /// Threads of the testbed process.
    InProcess,
    /// This many `vlsp node-group` processes.
    Groups(usize),
    /// A `vlsp node` process each.
    ProcessPerNode,
}

/// The hosting for `nodes` NSIS nodes: what was asked (`groups` > 0, or a
/// process per node), else in-process while the open files fit
/// (`fits_in_process`), else one group per [`NODES_PER_GROUP`].
pub fn choose(
    nodes: usize,
    process_per_node: bool,
    groups: usize,
    fits_in_process: bool,
) -> Hosting {
    if process_per_node {
        Hosting::ProcessPerNode
    } else if groups > 0 {
        Hosting::Groups(groups.min(nodes.max(1)))
    } else if fits_in_process {
        Hosting::InProcess
    } else {
        Hosting::Groups(nodes.div_ceil(NODES_PER_GROUP))
    }
}

/// `names` cut into `groups` contiguous runs of near-equal length (a
/// chain's neighbours share a process).
pub fn split(names: &[String], groups: usize) -> Vec<Vec<String>> {
    let g = groups.clamp(1, names.len().max(1));
    let (base, extra) = (names.len() / g, names.len() % g);
    let mut out = Vec::with_capacity(g);
    let mut at = 0;
    for i in 0..g {
        let n = base + usize::from(i < extra);
        out.push(names[at..at + n].to_vec());
        at += n;
    }
    out
}

/// A node's configuration with the run's sockets and options, and its
/// measurement recorder.
pub fn tuned(run: &RunDir, mut cfg: NodeConfig, opts: &super::Options) -> (NodeConfig, Recorder) {
    cfg.api_socket = run.api_socket(&cfg.name);
    cfg.script_dir = run.scripts_dir(&cfg.name);
    if let Some(b) = opts.backend {
        cfg.backend = b;
    }
    cfg.qos_enforce = !opts.no_qos;
    if let Some(r) = opts.refresh {
        cfg.refresh = r;
        cfg.lifetime = r * 3;
    }
    let rec = if opts.points > 0 {
        Recorder::new(&cfg.name, opts.points)
    } else {
        Recorder::disabled(&cfg.name)
    };
    (cfg, rec)
}

/// Starts the nodes `names` of `topo` as threads of this process, up to
/// [`START_WINDOW`] at once, and waits until each one's API socket
/// listens. On a failure the ones started are stopped and the first
/// failing node is named.
pub fn start_threads(
    topo: &Topology,
    run: &RunDir,
    names: &[String],
    opts: &super::Options,
) -> Result<Vec<(NodeHandle, Recorder)>> {
    let graph = Graph::new(topo);
    let mut started = Vec::with_capacity(names.len());
    let mut starting = std::collections::VecDeque::<(StartingNode, Recorder)>::new();
    let result = (|| -> Result<()> {
        for name in names {
            let cfg = NodeConfig::from_graph(topo, &graph, name)
                .with_context(|| format!("configuring node {name}"))?;
            let (cfg, rec) = tuned(run, cfg, opts);
            // Each is waited for in order, so a failure names the first.
            if starting.len() == START_WINDOW {
                wait_one(&mut starting, &mut started)?;
            }
            let s = start_node(cfg, rec.clone())
                .with_context(|| format!("starting node {name} failed"))?;
            starting.push_back((s, rec));
        }
        while !starting.is_empty() {
            wait_one(&mut starting, &mut started)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (s, _) in starting.drain(..) {
            if let Ok(h) = s.ready() {
                h.stop();
            }
        }
        stop_all(started.into_iter().map(|(h, _)| h).collect());
        return Err(e);
    }
    Ok(started)
}

fn wait_one(
    starting: &mut std::collections::VecDeque<(StartingNode, Recorder)>,
    started: &mut Vec<(NodeHandle, Recorder)>,
) -> Result<()> {
    if let Some((s, rec)) = starting.pop_front() {
        let name = s.name().to_string();
        let h = s
            .ready()
            .with_context(|| format!("starting node {name} failed"))?;
        started.push((h, rec));
    }
    Ok(())
}

/// Stops node threads: all asked first, then joined, so their shut-downs
/// overlap.
pub fn stop_all(nodes: Vec<NodeHandle>) {
    for n in &nodes {
        n.ask_stop();
    }
    for n in nodes {
        n.stop();
    }
}

/// A running `vlsp node-group` process.
pub struct NodeGroup {
    pub index: usize,
    /// The routers it hosts.
    pub names: Vec<String>,
    child: Child,
}

fn group_file(run: &RunDir, index: usize, ext: &str) -> PathBuf {
    run.path().join(format!("group{index}.{ext}"))
}

/// Starts one `exe node-group` per entry of `groups` (all at once), then
/// waits until every one has written its ready file: all its nodes' API
/// sockets listen. On a failure every group started is killed.
pub fn spawn_all(
    exe: &Path,
    saved: &Path,
    groups: Vec<Vec<String>>,
    run: &RunDir,
    opts: &super::Options,
) -> Result<Vec<NodeGroup>> {
    let total: usize = groups.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(groups.len());
    let r = (|| -> Result<()> {
        for (index, names) in groups.into_iter().enumerate() {
            out.push(spawn_one(exe, saved, index, names, run, opts)?);
        }
        // Generous: a group's nodes start at hundreds a second.
        let limit = Duration::from_secs(60) + Duration::from_millis(20) * total as u32;
        wait_ready(&mut out, run, limit)
    })();
    if let Err(e) = r {
        for g in out {
            g.kill();
        }
        return Err(e);
    }
    Ok(out)
}

fn spawn_one(
    exe: &Path,
    saved: &Path,
    index: usize,
    names: Vec<String>,
    run: &RunDir,
    opts: &super::Options,
) -> Result<NodeGroup> {
    let list = group_file(run, index, "nodes");
    std::fs::write(&list, names.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", list.display()))?;
    let ready = group_file(run, index, "ready");
    let _ = std::fs::remove_file(&ready);
    let log = group_file(run, index, "log");
    let err =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(["node-group", "--topology"])
        .arg(saved)
        .arg("--nodes")
        .arg(&list)
        .arg("--ready-file")
        .arg(&ready);
    if opts.no_qos {
        cmd.arg("--no-qos");
    }
    if opts.points > 0 {
        cmd.arg("--points").arg(opts.points.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{} node-group`", exe.display()))?;
    super::procs::journal_pid(run, child.id() as i32)?;
    Ok(NodeGroup {
        index,
        names,
        child,
    })
}

/// Polls every group's ready file (all in parallel: each group starts its
/// nodes on its own), failing on the first group that exits.
fn wait_ready(groups: &mut [NodeGroup], run: &RunDir, limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    let mut pending: Vec<usize> = (0..groups.len()).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            let g = &mut groups[i];
            if group_file(run, g.index, "ready").exists() {
                continue;
            }
            if let Some(st) = g.child.try_wait()? {
                let log = group_file(run, g.index, "log");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "node group {} ({} nodes from {}) exited during start-up ({st}); its log {}:\n{}",
                    g.index,
                    g.names.len(),
                    g.names.first().map_or("-", String::as_str),
                    log.display(),
                    tail.join("\n")
                );
            }
            still.push(i);
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if t0.elapsed() > limit {
            bail!(
                "node groups {pending:?} not ready within {} s; see their logs in {}",
                limit.as_secs(),
                run.path().display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl NodeGroup {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it hosts router `name`.
    pub fn hosts(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Its resident memory in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        super::procs::rss_kib_of(self.pid())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGTERM to every group (each stops its nodes), then waits; SIGKILL for
/// those still running after 10 s.
pub fn stop_groups(groups: Vec<NodeGroup>) {
    for g in &groups {
        let pid = nix::unistd::Pid::from_raw(g.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let t0 = Instant::now();
    for mut g in groups {
        loop {
            if let Ok(Some(_)) = g.child.try_wait() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                g.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Why a node group's list of routers is refused (before any node starts).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeListError {
    #[error("no router named: the list must name one router of {topology} a line")]
    Empty { topology: String },
    #[error(
        "line {line}: {name:?} is not a router of {topology} (virtual nodes have no NSIS node)"
    )]
    Unknown {
        line: usize,
        name: String,
        topology: String,
    },
    #[error("line {line}: {name} is listed twice (first on line {first}); a router has one node")]
    Duplicate {
        line: usize,
        name: String,
        first: usize,
    },
}

/// The routers a node-group list names, one a line (blank lines and
/// surrounding spaces ignored), each a router of `topo`, none twice.
pub fn node_list(text: &str, topo: &Topology) -> Result<Vec<String>, NodeListError> {
    let routers: std::collections::HashSet<&str> =
        topo.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut seen = std::collections::HashMap::new();
    let mut names = vec![];
    for (i, l) in text.lines().enumerate() {
        let (line, name) = (i + 1, l.trim());
        if name.is_empty() {
            continue;
        }
        if !routers.contains(name) {
            return Err(NodeListError::Unknown {
                line,
                name: name.to_string(),
                topology: topo.name.clone(),
            });
        }
        if let Some(&first) = seen.get(name) {
            return Err(NodeListError::Duplicate {
                line,
                name: name.to_string(),
                first,
            });
        }
        seen.insert(name, line);
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(NodeListError::Empty {
            topology: topo.name.clone(),
        });
    }
    Ok(names)
}

/// `vlsp node-group`: hosts the nodes listed in `nodes_file` (one name a
/// line) of the saved topology `saved`, writes `ready` (`ready N`) once all
/// their API sockets listen, and runs until SIGTERM or SIGINT.
pub fn serve(saved: &Path, nodes_file: &Path, ready: &Path, opts: &super::Options) -> Result<()> {
    crate::kernel::substrate::require_root()?;
    let topo = Topology::load(saved)?;
    let run = RunDir::new(&topo.topo_name());
    let text = std::fs::read_to_string(nodes_file).with_context(|| {
        format!(
            "cannot read the node list {} (a text file, one router name a line)",
            nodes_file.display()
        )
    })?;
    let names =
        node_list(&text, &topo).map_err(|e| anyhow::anyhow!("{}: {e}", nodes_file.display()))?;
    let limit = super::raise_fd_limit();
    let link_ends = super::link_ends(&topo, names.iter().map(|n| n.as_str()));
    super::fd_budget(&topo.name, names.len(), link_ends, limit)?;
    let t0 = Instant::now();
    let nodes = start_threads(&topo, &run, &names, opts)?;
    std::fs::write(ready, format!("ready {}\n", nodes.len()))
        .with_context(|| format!("cannot write ready file {}", ready.display()))?;
    tracing::info!(
        "{} nodes ready in {:.1} ms",
        nodes.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    super::daemon::wait_for_stop_signal()?;
    stop_all(nodes.into_iter().map(|(h, _)| h).collect());
    let _ = std::fs::remove_file(ready);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}")).collect()
    }

    #[test]
    fn groups_are_contiguous_near_equal_and_cover_every_node_once() {
        let g = split(&names(10), 3);
        assert_eq!(g.iter().map(Vec::len).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(g.concat(), names(10));
        assert_eq!(g[1][0], "r4");
        // More groups than nodes: one node each, no empty group.
        assert_eq!(split(&names(2), 5).len(), 2);
        assert_eq!(split(&names(0), 3), vec![Vec::<String>::new()]);
    }

    #[test]
    fn node_lists_name_each_router_once() {
        let text = crate::topology::chain("nl", 3, 1).unwrap();
        let topo = Topology::parse(&text, Path::new("nl.toml")).unwrap();
        assert_eq!(node_list(" r1 \n\nr0\n", &topo).unwrap(), ["r1", "r0"]);
        assert!(matches!(
            node_list("\n  \n", &topo),
            Err(NodeListError::Empty { .. })
        ));
        let e = node_list("r0\n\u{0}garbage r1\n", &topo).unwrap_err();
        assert!(matches!(e, NodeListError::Unknown { line: 2, .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("line 2: \"\\0garbage r1\" is not a router of nl"),
            "{e}"
        );
        assert_eq!(
            node_list("r0\nr2\nr0\n", &topo),
            Err(NodeListError::Duplicate {
                line: 3,
                name: "r0".into(),
                first: 1
            })
        );
        assert!(matches!(
            node_list("VM1\n", &topo),
            Err(NodeListError::Unknown { line: 1, .. })
        ));
    }

    #[test]
    fn hosting_is_chosen_by_size_unless_asked() {
        assert_eq!(choose(4, false, 0, true), Hosting::InProcess);
        assert_eq!(choose(10_000, false, 0, false), Hosting::Groups(8));
        assert_eq!(choose(1251, false, 0, false), Hosting::Groups(2));
        assert_eq!(choose(200, false, 3, true), Hosting::Groups(3));
        assert_eq!(choose(2, false, 3, true), Hosting::Groups(2));
        assert_eq!(choose(200, true, 3, true), Hosting::ProcessPerNode);
    }
}
