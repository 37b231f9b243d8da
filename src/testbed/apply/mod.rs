//! `vlsp apply FILE`: brings a running topology to an edited file,
//! touching only what changed. [`diff`] turns the running (saved
//! effective) topology and the file into steps; [`strand`] finds the
//! reserved virtual links those steps would cut (refused unless forced,
//! then torn down first); [`exec`] carries the steps out; the saved
//! topology is replaced last, so the next apply, `link` or `down` sees the
//! new state.
//!
//! Nodes: a running node whose neighbours, capacities, routes or keys
//! change is reconfigured through its API (its sessions stay); a new
//! router, or one whose own address or provider changes, gets a
//! `vlsp node` process (journaled, so `vlsp down` stops it); a removed
//! one is asked to stop through its API.

pub mod diff;
mod exec;
pub mod strand;

use crate::node::api::link_id_short;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::model::paths::RunDir;
use crate::node::api::{Client, Reply, Request};
use crate::topology::Topology;
pub use diff::{Refusal, Step};
pub use strand::{Rerouted, Stranded, Vlink};

/// Everything apply would do, and what it would cut.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub topology: String,
    /// In order; with `--force`, the teardowns of `stranded` come first.
    pub steps: Vec<Step>,
    pub stranded: Vec<Stranded>,
    pub rerouted: Vec<Rerouted>,
}

impl Plan {
    /// The refusal naming each stranded link, if any.
    pub fn refusal(&self) -> Option<String> {
        if self.stranded.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .stranded
            .iter()
            .map(|s| {
                format!(
                    "virtual link {} ({} -> {}): {}",
                    link_id_short(s.vlink_id),
                    s.from,
                    s.to,
                    s.because
                )
            })
            .collect();
        Some(format!(
            "applying {} would strand reserved virtual links: {}; tear them down first (`vlsp link teardown`), or apply with --force, which tears them down; nothing was changed",
            self.topology,
            each.join("; ")
        ))
    }

    /// Human lines: the steps, then what is cut or moved.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.steps.iter().map(|s| format!("  {s}")).collect();
        if v.is_empty() {
            v.push("  nothing to change".into());
        }
        for s in &self.stranded {
            v.push(format!(
                "  strands virtual link {} ({} -> {}): {}",
                link_id_short(s.vlink_id),
                s.from,
                s.to,
                s.because
            ));
        }
        for r in &self.rerouted {
            v.push(format!(
                "  virtual link {} moves from {} to {} (its reservation follows the new routes)",
                link_id_short(r.vlink_id),
                r.old_path.join("-"),
                r.new_path.join("-")
            ));
        }
        v
    }
}

/// The running topology named like `new`, from its run directory.
pub fn running(new: &Topology) -> Result<(RunDir, Topology)> {
    let run = RunDir::new(&new.topo_name());
    let saved = run.topology_file();
    if !saved.exists() {
        bail!(
            "{} is not up (no {}): `vlsp up` it first; apply changes a running topology",
            new.name,
            saved.display()
        );
    }
    let old = Topology::load(&saved)?;
    Ok((run, old))
}

/// The reserved virtual links, from the APIs of the routers hosting
/// virtual nodes (each link once).
pub fn running_vlinks(old: &Topology, run: &RunDir) -> Result<Vec<Vlink>> {
    let mut hosts: Vec<&str> = old.vnodes.iter().map(|v| v.host.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    let mut out: Vec<Vlink> = vec![];
    for h in hosts {
        if !old.node(h).is_some_and(|n| n.runs_vlsp()) {
            continue;
        }
        let sock = run.api_socket(h);
        let reply = Client::connect(&sock, Duration::from_secs(10))
            .and_then(|mut c| c.call(&Request::List))
            .with_context(|| {
                format!(
                    "cannot list the virtual links of {h} ({}): apply must know which links it would cut; is {} up (`vlsp status`)?",
                    sock.display(),
                    old.name
                )
            })?;
        let Reply::Links { links } = reply else {
            bail!("{h} answered a list request with {reply:?}");
        };
        for l in links {
            if !out.iter().any(|o| o.vlink_id == l.vlink_id) {
                out.push(Vlink {
                    vlink_id: l.vlink_id,
                    from: l.from,
                    to: l.to,
                });
            }
        }
    }
    Ok(out)
}

/// The plan from `old` to `new` given the running links; with `force`,
/// the stranded links' teardowns lead it.
pub fn plan(old: &Topology, new: &Topology, vlinks: &[Vlink], force: bool) -> Result<Plan> {
    let steps = diff::diff(old, new)?;
    let (stranded, rerouted) = strand::affected(old, new, &steps, vlinks);
    let mut all = vec![];
    if force {
        all.extend(stranded.iter().map(|s| Step::TearDown {
            vlink_id: s.vlink_id,
            from: s.from.clone(),
            to: s.to.clone(),
            initiator: s.initiator.clone(),
        }));
    }
    all.extend(steps);
    Ok(Plan {
        topology: new.name.clone(),
        steps: all,
        stranded,
        rerouted,
    })
}

/// Carries `plan` out (refused while it strands a link and `force` is
/// off), then saves `new` as the running topology. `done` sees each step.
pub fn apply(
    old: &Topology,
    new: &Topology,
    run: &RunDir,
    plan: &Plan,
    force: bool,
    done: impl FnMut(&Step),
) -> Result<()> {
    if !force && let Some(r) = plan.refusal() {
        bail!(r);
    }
    let next = run.path().join("topology.next.toml");
    write(&next, &new.to_toml())?;
    let target = exec::Target {
        old,
        new,
        run,
        next_file: &next,
        exe: std::env::current_exe().context("cannot find this executable")?,
    };
    exec::carry_out(&target, &plan.steps, done)?;
    let saved = run.topology_file();
    std::fs::rename(&next, &saved)
        .with_context(|| format!("cannot save the new topology as {}", saved.display()))
}

fn write(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))
}
