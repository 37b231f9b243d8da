//! `vlsp apply FILE`: change a running topology to an edited file (the
//! work is in [`crate::testbed::apply`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::out;
use crate::kernel::substrate;
use crate::testbed::apply;
use crate::topology::Topology;

#[derive(Args)]
pub(super) struct ApplyArgs {
    /// The edited topology file (its name names the running topology).
    topology: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Tear down the reserved virtual links the change would strand
    /// (through their initiators), then apply.
    #[arg(long)]
    force: bool,
    /// The plan as JSON (with --dry-run; otherwise after applying).
    #[arg(long)]
    json: bool,
}

pub(super) fn apply(a: ApplyArgs) -> Result<()> {
    let new = Topology::load(&a.topology)?;
    if !a.dry_run {
        substrate::require_root()?;
    }
    let (run, old) = apply::running(&new)?;
    let vlinks = apply::running_vlinks(&old, &run)?;
    let plan = apply::plan(&old, &new, &vlinks, a.force)?;
    let print = |plan: &apply::Plan| {
        if a.json {
            out!("{}", serde_json::to_string_pretty(plan).unwrap_or_default());
        } else {
            for l in plan.lines() {
                out!("{l}");
            }
        }
    };
    if a.dry_run {
        if !a.json {
            out!(
                "{}: plan ({} steps, nothing changed)",
                plan.topology,
                plan.steps.len()
            );
        }
        print(&plan);
        if !a.force && !a.json && plan.refusal().is_some() {
            out!("refused without --force: it strands reserved virtual links");
        }
        return Ok(());
    }
    let quiet = a.json;
    apply::apply(&old, &new, &run, &plan, a.force, |s| {
        if !quiet {
            out!("  {s}");
        }
    })?;
    if a.json {
        print(&plan);
    } else {
        out!("{}: {} steps applied", plan.topology, plan.steps.len());
    }
    Ok(())
}
