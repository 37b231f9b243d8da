//! The routing of a running topology: static routes recomputed around the
//! faults and replaced in every live router (an instant oracle), or bird2
//! running OSPF in every router, and what `vlsp status` shows of either.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::kernel::bird::{self, Bird};
use crate::kernel::netns::{handle_in, ns_name, ns_path};
use crate::model::paths::RunDir;
use crate::topology::faults::FaultState;
use crate::topology::{Routing, Topology};

/// Runs `f` on a fresh current-thread runtime in a thread of its own, so
/// callers inside or outside a runtime (the CLI, actors, tests) can use it.
fn on_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>>>> + Send + 'static,
) -> Result<T> {
    std::thread::spawn(move || -> Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(f())
    })
    .join()
    .map_err(|_| anyhow!("routing thread panicked"))?
}

/// Replaces the static routes of every router not stopped with the shortest
/// paths around `faults`. What `vlsp fault` (and `vlsp apply`) call after
/// changing the graph when `routing = "static"`.
pub fn apply_static(topo: &Topology, faults: &FaultState) -> Result<()> {
    let topo = topo.clone();
    let faults = faults.clone();
    on_runtime(move || {
        Box::pin(async move {
            for n in &topo.nodes {
                if faults.nodes_stopped.contains(&n.name) {
                    continue;
                }
                let ns = ns_name(&topo.name, &n.name);
                let f = std::fs::File::open(ns_path(&ns))
                    .with_context(|| format!("namespace {ns} of {} is gone", n.name))?;
                let h = handle_in(&f)?;
                let routes = topo.routes_with(&n.name, &faults);
                crate::kernel::routing::replace_static(&h, &n.name, &routes).await?;
            }
            Ok(())
        })
    })
}

/// A router's routing as `vlsp status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouterState {
    pub node: String,
    pub routing: Routing,
    /// OSPF neighbours in state Full (OSPF only).
    pub full_neighbours: Option<usize>,
    /// Routes the routing installed: vlsp's static ones, or bird's.
    pub routes: usize,
}

/// Every router's routing state (namespaces that are gone are skipped).
pub fn router_states(topo: &Topology, run: &RunDir) -> Vec<RouterState> {
    let t = topo.clone();
    let counts = on_runtime(move || {
        Box::pin(async move {
            let mut out = vec![];
            for n in &t.nodes {
                let Ok(f) = std::fs::File::open(ns_path(&ns_name(&t.name, &n.name))) else {
                    continue;
                };
                let h = handle_in(&f)?;
                out.push((
                    n.name.clone(),
                    crate::kernel::routing::route_counts(&h).await?,
                ));
            }
            Ok(out)
        })
    })
    .unwrap_or_default();
    counts
        .into_iter()
        .map(|(node, (st, bird_routes, _))| RouterState {
            full_neighbours: (topo.routing == Routing::Ospf)
                .then(|| bird::full_neighbours_of(&bird_socket(run, &node))),
            routes: match topo.routing {
                Routing::Static => st,
                Routing::Ospf => bird_routes,
            },
            routing: topo.routing,
            node,
        })
        .collect()
}

/// bird's routes in every router's kernel: (destination, length, gateway).
type Installed =
    std::collections::HashMap<String, Vec<(std::net::Ipv4Addr, u8, Option<std::net::Ipv4Addr>)>>;

fn bird_routes(topo: &Topology) -> Result<Installed> {
    let t = topo.clone();
    on_runtime(move || {
        Box::pin(async move {
            let mut out = Installed::new();
            for n in &t.nodes {
                let Ok(f) = std::fs::File::open(ns_path(&ns_name(&t.name, &n.name))) else {
                    continue;
                };
                let h = handle_in(&f)?;
                let r = crate::kernel::routing::routes_of(
                    &h,
                    rtnetlink::packet_route::route::RouteProtocol::Bird,
                )
                .await?;
                out.insert(n.name.clone(), r);
            }
            Ok(out)
        })
    })
}

pub fn bird_socket(run: &RunDir, node: &str) -> PathBuf {
    run.path().join(format!("{node}.bird.ctl"))
}

fn bird_log(run: &RunDir, node: &str) -> PathBuf {
    run.path().join(format!("{node}.bird.log"))
}

/// Starts bird in every router of `topo` (configuration from the
/// topology, in the run directory) and waits until OSPF has converged.
pub fn start_ospf(topo: &Topology, run: &RunDir, timeout: Duration) -> Result<Vec<Bird>> {
    bird::require_bird()?;
    let mut birds = vec![];
    let started = (|| -> Result<()> {
        for n in &topo.nodes {
            let conf = run.path().join(format!("{}.bird.conf", n.name));
            let log = bird_log(run, &n.name);
            let text =
                crate::topology::ospf::bird_config(topo, &n.name, &log.display().to_string());
            std::fs::write(&conf, text)
                .with_context(|| format!("cannot write {}", conf.display()))?;
            birds.push(bird::start(
                &topo.name,
                &n.name,
                &ns_name(&topo.name, &n.name),
                &conf,
                &bird_socket(run, &n.name),
                &run.path().join(format!("{}.bird.err", n.name)),
            )?);
        }
        wait_converged(topo, &FaultState::default(), run, &mut birds, timeout)?;
        Ok(())
    })();
    match started {
        Ok(()) => Ok(birds),
        Err(e) => {
            for b in birds {
                b.stop();
            }
            Err(e)
        }
    }
}

/// Waits until every live router has all its live neighbours Full, an
/// OSPF route to every subnet it reaches and, on links with BFD, a BFD
/// session Up with each neighbour; how long that took.
pub fn wait_converged(
    topo: &Topology,
    faults: &FaultState,
    run: &RunDir,
    birds: &mut [Bird],
    timeout: Duration,
) -> Result<Duration> {
    let t0 = Instant::now();
    let left = topo.without(faults);
    loop {
        for b in birds.iter_mut() {
            b.check_running(&bird_log(run, &b.node))?;
        }
        let states = router_states(topo, run);
        let installed = bird_routes(topo)?;
        let mut lagging = vec![];
        for s in &states {
            if faults.nodes_stopped.contains(&s.node) {
                continue;
            }
            let want_full = left.links_of(&s.node).count();
            let want = crate::topology::ospf::acceptable_next_hops(&left, &s.node);
            // bird also exports its own interfaces' subnets (no gateway):
            // those are not routes through anyone.
            let have: Vec<_> = installed
                .get(&s.node)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|r| r.2.is_some())
                .collect();
            // Every subnet through a gateway on a shortest path, and no
            // route left to one that is gone.
            let right = have.len() == want.len()
                && want.iter().all(|((net, len), hops)| {
                    have.iter().any(|(d, l, gw)| {
                        u32::from(*d) == *net && l == len && gw.is_some_and(|g| hops.contains(&g))
                    })
                });
            // BFD, where asked, Up with every live neighbour: else a
            // silent neighbour would be noticed only after `dead_s`.
            let want_bfd = crate::topology::ospf::bfd_links(&left, &s.node).count();
            let bfd_up = if want_bfd > 0 {
                bird::bfd_sessions_up_of(&bird_socket(run, &s.node))
            } else {
                0
            };
            if s.full_neighbours.unwrap_or(0) < want_full || !right || bfd_up < want_bfd {
                lagging.push(format!(
                    "{} ({}/{want_full} Full, {}/{} routes, {}{})",
                    s.node,
                    s.full_neighbours.unwrap_or(0),
                    have.len(),
                    want.len(),
                    if right { "right" } else { "not yet shortest" },
                    if want_bfd > 0 {
                        format!(", BFD {bfd_up}/{want_bfd} sessions Up")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        if lagging.is_empty() && !states.is_empty() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            let bfd = if lagging.iter().any(|l| l.contains("BFD")) {
                " (BFD sessions not Up: `birdc -s SOCKET show bfd sessions`; a neighbour whose bird runs no BFD on that link, or UDP 3784 blocked, keeps them Down; set bfd = false to do without)"
            } else {
                ""
            };
            bail!(
                "OSPF did not converge within {} s: {}{bfd}; see {}/*.bird.log",
                timeout.as_secs(),
                lagging.join(", "),
                run.path().display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
