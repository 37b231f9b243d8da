//! `vlsp run`, `vlsp report`, `vlsp reproduce`: experiments and their results.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::out;
use crate::experiment::{self as exp, Experiment, Kind};
use crate::kernel::substrate;

#[derive(Args)]
pub(super) struct RunArgs {
    /// Experiment file (see experiments/).
    experiment: PathBuf,
    /// Override the number of runs.
    #[arg(long)]
    runs: Option<usize>,
    /// Override the output folder.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Capture every substrate interface of the NSIS nodes into
    /// OUTPUT/pcap/<variant>/<node>-<if>.pcap, and report [D]..[G]
    /// from the wire beside the measurement points.
    #[arg(long)]
    pcap: bool,
    /// Run each router's node as a `vlsp node` process in its namespace
    /// (as `process_per_node = true` in the file).
    #[arg(long)]
    process_per_node: bool,
    /// Override `sessions`: setup-teardown splits the runs over this many
    /// freshly brought-up topologies, the replicates `vlsp compare` tests;
    /// chain-sweep runs every length once per session, in rounds.
    #[arg(long)]
    sessions: Option<usize>,
    /// Override the tunnel backend (netlink, or script: shell scripts
    /// calling `ip`, as the paper did).
    #[arg(long)]
    backend: Option<crate::model::tunnel::Backend>,
}

#[derive(Args)]
pub(super) struct ReportArgs {
    /// A results folder written by `vlsp run`.
    dir: PathBuf,
}

#[derive(Args)]
pub(super) struct ReproduceArgs {
    /// Override the number of runs of every experiment.
    #[arg(long)]
    runs: Option<usize>,
    /// Write under this folder instead of results/.
    #[arg(long, default_value = "results")]
    output: PathBuf,
}

fn override_runs(e: &mut Experiment, runs: Option<usize>) {
    if let Some(r) = runs {
        e.runs = r;
        e.sessions = e.sessions.min(r);
        e.high_count = e.high_count.map(|h| h.min(r * 100));
    }
}

pub(super) fn run(a: RunArgs) -> Result<()> {
    let mut e = Experiment::load(&a.experiment)?;
    e.pcap = a.pcap;
    e.process_per_node |= a.process_per_node;
    override_runs(&mut e, a.runs);
    if let Some(s) = a.sessions {
        anyhow::ensure!(
            s >= 1
                && s <= e.runs
                && (s == 1 || matches!(e.kind, Kind::SetupTeardown | Kind::ChainSweep)),
            "--sessions {s}: give 1 to --runs ({}), and more than 1 only for kinds \
             setup-teardown and chain-sweep",
            e.runs
        );
        e.sessions = s;
    }
    e.sessions = e.sessions.min(e.runs);
    e.backend = a.backend.or(e.backend);
    if let Some(o) = a.output {
        e.output = o;
    }
    if e.kind != Kind::Hmac {
        substrate::require_root()?;
    }
    let dir = exp::run(&e)?;
    out!("{}: results in {}", e.name, dir.display());
    out!(
        "{}",
        std::fs::read_to_string(dir.join("summary.csv"))?.trim_end()
    );
    Ok(())
}

pub(super) fn report(a: ReportArgs) -> Result<()> {
    exp::report(&a.dir)?;
    out!(
        "regenerated {}/summary.csv, summary.md and figures",
        a.dir.display()
    );
    Ok(())
}

pub(super) fn reproduce(a: ReproduceArgs) -> Result<()> {
    substrate::require_root()?;
    let exp_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let n = exp::PAPER_EXPERIMENTS.len();
    for (i, f) in exp::PAPER_EXPERIMENTS.iter().enumerate() {
        let mut e = Experiment::load(&exp_dir.join(f))?;
        override_runs(&mut e, a.runs);
        e.output = a.output.join(&e.name);
        eprintln!(
            "== [{}/{n}] {} ({:?}, {} runs) -> {}",
            i + 1,
            e.name,
            e.kind,
            e.runs,
            e.output.display()
        );
        exp::run(&e)?;
    }
    out!("all paper experiments written under {}", a.output.display());
    Ok(())
}
