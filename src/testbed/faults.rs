//! Faults on a running topology, kernel side: a link down is both its ends
//! down; a stopped router has its ends down and forwarding off. The state
//! is kept in the run directory (`faults.json`) for `vlsp status` and the
//! next fault; `vlsp down` needs none of it (the namespaces go whole).
//! Static routes are recomputed around the faults right away; bird
//! notices the interfaces itself.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::kernel::links;
use crate::kernel::netns::{handle_in, ns_name, ns_path};
use crate::model::paths::RunDir;
use crate::topology::faults::{Fault, FaultState};
use crate::topology::{Routing, Topology};

pub fn faults_file(run: &RunDir) -> PathBuf {
    run.path().join("faults.json")
}

/// The faults recorded for `run` (none when there is no file).
pub fn load(run: &RunDir) -> FaultState {
    std::fs::read_to_string(faults_file(run))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn save(run: &RunDir, s: &FaultState) -> Result<()> {
    let p = faults_file(run);
    std::fs::write(&p, serde_json::to_string_pretty(s)?)
        .with_context(|| format!("cannot record the faults in {}", p.display()))
}

/// Sets interface `ifname` of router `node` up or down.
fn set_if(topo: &str, node: &str, ifname: &str, up: bool) -> Result<()> {
    let ns = ns_path(&ns_name(topo, node));
    let (node, ifname) = (node.to_string(), ifname.to_string());
    std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let f = std::fs::File::open(&ns)
                .with_context(|| format!("{node}'s namespace {} is gone", ns.display()))?;
            let h = handle_in(&f)?;
            if up {
                links::set_up(&h, &ifname).await
            } else {
                links::set_down(&h, &ifname).await
            }
            .with_context(|| format!("on {node}"))
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("link thread panicked"))?
}

/// Switches IPv4 forwarding of router `node` on every interface (the
/// kernel decides per input interface; `vlsp up` sets no global
/// `ip_forward`).
fn forwarding(topo: &str, node: &str, on: bool) -> Result<()> {
    let ns = ns_path(&ns_name(topo, node));
    let node = node.to_string();
    std::thread::spawn(move || -> Result<()> {
        let f = std::fs::File::open(&ns)
            .with_context(|| format!("{node}'s namespace {} is gone", ns.display()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let h = handle_in(&f)?;
            links::set_forwarding(&h, &node, on).await
        })
        .with_context(|| format!("IP forwarding {on} on {node}"))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("forwarding thread panicked"))?
}

/// Applies `f` to the kernel (links, forwarding, static routes) and
/// records it; the NSIS nodes are the caller's. Returns the new state.
pub fn apply(topo: &Topology, run: &RunDir, f: &Fault) -> Result<FaultState> {
    let before = load(run);
    let after = before.with(topo, f)?;
    let name = &topo.name;
    // An end stays down while its router is stopped or its link is down.
    let live = |link: usize, s: &FaultState| {
        let l = &topo.links[link];
        !s.links_down.contains(&topo.link_name(link))
            && !s.nodes_stopped.contains(&l.a.node)
            && !s.nodes_stopped.contains(&l.b.node)
    };
    match f {
        Fault::LinkDown { link } | Fault::LinkUp { link } => {
            let i = topo.link_index(link)?;
            let l = &topo.links[i];
            let up = live(i, &after);
            for e in [&l.a, &l.b] {
                set_if(name, &e.node, &e.ifname, up)?;
            }
        }
        Fault::NodeStop { node } => {
            forwarding(name, node, false)?;
            for (me, _, _) in topo.links_of(node) {
                set_if(name, node, &me.ifname, false)?;
            }
        }
        Fault::NodeStart { node } => {
            for i in 0..topo.links.len() {
                let l = &topo.links[i];
                if (l.a.node == *node || l.b.node == *node) && live(i, &after) {
                    for e in [&l.a, &l.b] {
                        set_if(name, &e.node, &e.ifname, true)?;
                    }
                }
            }
            forwarding(name, node, true)?;
        }
    }
    save(run, &after)?;
    if topo.routing == Routing::Static {
        super::routing::apply_static(topo, &after)
            .with_context(|| format!("recomputing the static routes after {f}"))?;
    }
    Ok(after)
}
