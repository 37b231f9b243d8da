//! `vlsp up`, `vlsp down`, `vlsp status`: a topology's life. The background
//! process and the stopping of it live in [`crate::testbed::daemon`].

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use super::out;
use crate::kernel::substrate;
use crate::model::paths::{RunDir, TopoName};
use std::sync::{Arc, Mutex};

use crate::testbed::control;
use crate::testbed::daemon::{self, Daemon};
use crate::testbed::{self, Options, Testbed};
use crate::topology::Topology;

#[derive(Args)]
pub(super) struct UpArgs {
    /// Topology file.
    topology: PathBuf,
    /// Print how long each phase took.
    #[arg(long)]
    timings: bool,
    /// Run in the background; `vlsp down NAME` stops it.
    #[arg(long)]
    detach: bool,
    /// Admission control only: do not install reservations as HTB
    /// classes (links are still shaped to their capacity).
    #[arg(long)]
    no_qos: bool,
    /// Run each router's NSIS node as a `vlsp node` process in its
    /// namespace instead of a thread of this process.
    #[arg(long)]
    process_per_node: bool,
    /// Host the NSIS nodes in N `vlsp node-group` processes [default:
    /// threads of this process up to about 1500 nodes of a chain (the
    /// open-file limit), else a group per 1250 nodes].
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        conflicts_with = "process_per_node"
    )]
    groups: usize,
    #[arg(long, hide = true)]
    daemon_child: bool,
}

#[derive(Args)]
pub(super) struct DownArgs {
    /// Topology name (or file).
    topology: Option<String>,
    /// Remove every topology vlsp has up.
    #[arg(long)]
    all: bool,
    /// Print how long removal took.
    #[arg(long)]
    timings: bool,
}

#[derive(Args)]
pub(super) struct StatusArgs {
    /// As JSON.
    #[arg(long)]
    json: bool,
}

/// Routers from which `vlsp up` shows progress while it works.
const BIG_TOPOLOGY: usize = 20;

pub(super) fn up(a: UpArgs) -> Result<()> {
    let topo = Topology::load(&a.topology)?;
    substrate::require_root()?;
    let name = topo.name.clone();
    if a.detach && !a.daemon_child {
        testbed::ensure_not_up(&topo)?;
        let run = RunDir::new(&topo.topo_name());
        let pid = daemon::detach(&a.topology, a.no_qos, a.process_per_node, a.groups, &run)?;
        out!("{name} is up (pid {pid}); stop it with `vlsp down {name}`");
        return Ok(());
    }
    let opts = Options {
        no_qos: a.no_qos,
        process_per_node: a.process_per_node,
        groups: a.groups,
        ..Options::default()
    };
    // Big topologies take seconds: say what is going on meanwhile.
    let spin = (topo.nodes.len() >= BIG_TOPOLOGY).then(|| {
        crate::experiment::progress::spinner(&format!(
            "{name}: bringing up {} routers, {} links, {} virtual nodes",
            topo.nodes.len(),
            topo.links.len(),
            topo.vnodes.len()
        ))
    });
    let tb = Testbed::up(topo, &opts);
    if let Some(Some(pb)) = spin {
        pb.finish_and_clear();
    }
    let tb = tb?;
    let run = tb.run.clone();
    let summary = format!(
        "{name}: {} routers ({} running NSIS), {} links, {} virtual nodes up in {:.1} ms",
        tb.topo.nodes.len(),
        tb.nodes.len() + tb.procs.len() + tb.groups.iter().map(|g| g.names.len()).sum::<usize>(),
        tb.topo.links.len(),
        tb.topo.vnodes.len(),
        tb.up_timings.total().as_secs_f64() * 1e3
    );
    out!("{summary}");
    if a.timings {
        out!("{}", tb.up_timings);
    }
    if let Some(c) = tb.ospf_converged {
        out!("  OSPF (bird2) converged in {:.1} s", c.as_secs_f64());
    }
    for n in &tb.nodes {
        out!("  API of {}: {}", n.name, n.api_socket.display());
    }
    for n in tb.topo.nodes.iter().filter(|n| n.external) {
        let ns = substrate::ns_name(&tb.topo.name, &n.name);
        out!(
            "  {} is external: start its NSIS daemon with `ip netns exec {ns} ...`",
            n.name
        );
    }
    for g in &tb.groups {
        out!(
            "  node group {} (pid {}): {} nodes, {} .. {}",
            g.index,
            g.pid(),
            g.names.len(),
            g.names.first().map_or("-", String::as_str),
            g.names.last().map_or("-", String::as_str)
        );
    }
    for n in &tb.procs {
        out!(
            "  API of {} (own process): {}",
            n.name,
            n.api_socket.display()
        );
    }
    // `vlsp fault` reaches this process (it owns the nodes) here.
    let shared: control::Shared = Arc::new(Mutex::new(Some(tb)));
    control::serve(&run, shared.clone())?;
    daemon::mark_ready(&run)?;
    if !a.daemon_child {
        out!("Ctrl-C to stop and remove everything.");
    }
    daemon::wait_for_stop_signal()?;
    let tb = shared
        .lock()
        .map_err(|_| anyhow::anyhow!("the testbed lock is poisoned"))?
        .take();
    if let Some(tb) = tb {
        let t = tb.down()?;
        out!("{name} removed in {:.1} ms", t.total().as_secs_f64() * 1e3);
    }
    Ok(())
}

/// A topology named on the command line: a file's topology, or a name
/// checked by the one rule before it is used as a path.
fn name_of(arg: &str) -> Result<TopoName> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(Topology::load(p)?.topo_name());
    }
    Ok(TopoName::new(arg)?)
}

pub(super) fn down(a: DownArgs) -> Result<()> {
    let names = match (a.topology.as_deref(), a.all) {
        (_, true) => {
            substrate::require_root()?;
            for odd in substrate::journaled_topologies() {
                if TopoName::new(&odd).is_err() {
                    eprintln!(
                        "skipping {odd:?}: not a topology name this vlsp makes; remove it by hand (see its journal in /run/vlsp)"
                    );
                }
            }
            daemon::journaled()
        }
        (Some(t), false) => vec![name_of(t)?],
        (None, false) => bail!("name a topology (`vlsp down paper-4node`) or use --all"),
    };
    if names.is_empty() {
        out!("nothing of vlsp is up");
    }
    for name in names {
        let (d, t) = daemon::down(&name)?;
        match d {
            Daemon::Stopped { pid, exited: false } => {
                out!("{name}: vlsp pid {pid} did not exit within 5 s after SIGTERM")
            }
            Daemon::Stale => out!("{name}: its pid file was stale; no process was signalled"),
            Daemon::None | Daemon::Stopped { .. } => {}
        }
        out!("{name}: removed");
        if a.timings {
            out!("{t}");
        }
    }
    Ok(())
}

pub(super) fn status(a: StatusArgs) -> Result<()> {
    let st = substrate::status();
    if a.json {
        out!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    if st.is_empty() {
        out!("nothing of vlsp is up");
    }
    for s in st {
        let ok = s.namespaces.iter().filter(|n| n.1).count();
        out!(
            "{}: {ok}/{} namespaces present, {} API sockets",
            s.topology,
            s.namespaces.len(),
            s.api_sockets.len()
        );
        for (n, present) in &s.namespaces {
            out!("  {n} {}", if *present { "up" } else { "MISSING" });
        }
        for (pid, alive) in &s.guests {
            out!(
                "  QEMU guest pid {pid} {}",
                if *alive { "running" } else { "GONE" }
            );
        }
        if let Some(acc) = &s.accel {
            out!("  QEMU accelerator: {acc}");
        }
        print_routing(&s.topology);
    }
    Ok(())
}

/// Each router's routing (static routes, or OSPF neighbours Full and
/// routes) and the faults in force, of a topology that is up.
fn print_routing(name: &str) {
    let Ok(run) = RunDir::of(name) else { return };
    let Ok(topo) = Topology::load(&run.topology_file()) else {
        return;
    };
    for r in testbed::routing::router_states(&topo, &run) {
        match r.full_neighbours {
            Some(full) => out!(
                "  {} ospf: {full}/{} neighbours Full, {} routes",
                r.node,
                topo.links_of(&r.node).count(),
                r.routes
            ),
            None => out!("  {} static: {} routes", r.node, r.routes),
        }
    }
    let f = testbed::faults::load(&run);
    if !f.is_empty() {
        out!(
            "  faults: links down [{}], routers stopped [{}]",
            f.links_down.iter().cloned().collect::<Vec<_>>().join(", "),
            f.nodes_stopped
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
