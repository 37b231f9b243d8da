//! Faults on a running topology, kernel side: a link down is both its ends
//! down; a stopped router has its ends down and forwarding off. The state
//! is kept in the run directory (`faults.json`) for `vlsp status` and the
//! next fault; `vlsp down` needs none of it (the namespaces go whole).
//! Static routes are recomputed around the faults right away; bird
//! notices the interfaces itself.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use anyhow::{Context, Result};
use rtnetlink::Handle;

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

/// Runs `op` with a netlink handle in router `node`'s namespace, on a
/// runtime of its own in a thread of its own (callers may be inside a
/// runtime); `what` says what failed.
fn in_router<F>(topo: &str, node: &str, what: String, op: F) -> Result<()>
where
    F: FnOnce(Handle) -> Pin<Box<dyn Future<Output = Result<()>>>> + Send + 'static,
{
    let ns = ns_path(&ns_name(topo, node));
    let node = node.to_string();
    std::thread::spawn(move || -> Result<()> {
        let f = std::fs::File::open(&ns).with_context(|| {
            format!(
                "{node}'s namespace {} is gone: is the topology up (`vlsp status`)?",
                ns.display()
            )
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async { op(handle_in(&f)?).await })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread for {what} panicked"))?
    .context(what)
}

/// Sets interface `ifname` of router `node` up or down.
fn set_if(topo: &str, node: &str, ifname: &str, up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    let what = format!("cannot set {node}:{ifname} {state}");
    let ifname = ifname.to_string();
    in_router(topo, node, what, move |h| {
        Box::pin(async move {
            if up {
                links::set_up(&h, &ifname).await
            } else {
                links::set_down(&h, &ifname).await
            }
        })
    })
}

/// Switches IPv4 forwarding of router `node` on every interface (the
/// kernel decides per input interface; `vlsp up` sets no global
/// `ip_forward`).
fn forwarding(topo: &str, node: &str, on: bool) -> Result<()> {
    let what = format!(
        "cannot turn IPv4 forwarding {} in router {node} (for {}): check the router with `vlsp status` and apply the fault again",
        if on { "on" } else { "off" },
        if on { "node-start" } else { "node-stop" },
    );
    let n = node.to_string();
    in_router(topo, node, what, move |h| {
        Box::pin(async move { links::set_forwarding(&h, &n, on).await })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarding_failure_says_what_failed_and_what_to_do() {
        let e = forwarding("no-such-topology-g5", "r3", true).unwrap_err();
        let m = format!("{e:#}");
        assert!(
            m.starts_with("cannot turn IPv4 forwarding on in router r3 (for node-start)")
                && m.contains("`vlsp status`")
                && m.contains("namespace")
                && !m.contains("true"),
            "{m}"
        );
        let m = format!(
            "{:#}",
            set_if("no-such-topology-g5", "r1", "eth1", false).unwrap_err()
        );
        assert!(m.starts_with("cannot set r1:eth1 down"), "{m}");
    }
}
