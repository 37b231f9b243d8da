//! `vlsp ab`: two configurations (two binaries, or two experiment files of
//! one binary) run in alternating blocks A B B A …, then the blocks'
//! medians compared as by `vlsp compare` (the block is the unit of
//! replication, see [`crate::experiment::compare::interleave`]), with a
//! per-block table that shows the machine's drift the alternation cancels.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;

use super::compare::Judge;
use crate::experiment::compare::interleave::{
    Arm, block_markdown, block_medians, block_metrics, block_order, block_table, pool,
};
use crate::experiment::compare::{self};
use crate::experiment::{Row, read_runs, write_runs};

#[derive(Args)]
pub(super) struct AbArgs {
    /// Experiment file of A (and of B unless --b-exp), e.g.
    /// experiments/paper-table1.toml.
    experiment: PathBuf,
    /// Experiment file of B (e.g. the same experiment with
    /// `backend = "script"`).
    #[arg(long)]
    b_exp: Option<PathBuf>,
    /// The vlsp binary that runs A's blocks (default: this one), e.g. a
    /// build of the baseline commit.
    #[arg(long)]
    a_bin: Option<PathBuf>,
    /// The vlsp binary that runs B's blocks (default: this one).
    #[arg(long)]
    b_bin: Option<PathBuf>,
    /// Blocks of each configuration.
    #[arg(long, default_value_t = 10)]
    blocks: usize,
    /// Runs per block (the experiment's warm-up runs come on top).
    #[arg(long, default_value_t = 10)]
    runs_per_block: usize,
    /// Output folder: blocks/NN-A|B (each block's `vlsp run`), a/ and b/
    /// (runs.csv: one row of medians per block, which the verdict tests;
    /// all-runs.csv: every run pooled), blocks.md and compare/.
    #[arg(short = 'o', long, default_value = "ab")]
    output: PathBuf,
    #[command(flatten)]
    judge: Judge,
}

/// The columns the per-block table shows when present.
const BLOCK_METRICS: [&str; 4] = ["setup_A", "setup_B", "teardown_A", "teardown_B"];

fn check_file(p: &Path, what: &str) -> Result<PathBuf> {
    ensure!(p.is_file(), "{what} {} is not a file", p.display());
    Ok(p.to_path_buf())
}

/// One block: `BIN run EXP --runs N --output DIR`.
fn run_block(bin: &Path, exp: &Path, runs: usize, dir: &Path) -> Result<Vec<Row>> {
    let o = Command::new(bin)
        .arg("run")
        .arg(exp)
        .arg("--runs")
        .arg(runs.to_string())
        .arg("--output")
        .arg(dir)
        .output()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        bail!(
            "`{} run {}` failed ({}); its last lines:\n{}",
            bin.display(),
            exp.display(),
            o.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    read_runs(&dir.join("runs.csv")).with_context(|| format!("{} wrote no runs.csv", dir.display()))
}

pub(super) fn ab(a: AbArgs) -> Result<()> {
    ensure!(
        a.blocks >= 2 && a.runs_per_block >= 2,
        "--blocks {} and --runs-per-block {} must both be 2 or more (the drift cancels over pairs of blocks)",
        a.blocks,
        a.runs_per_block
    );
    let o = a.judge.options(true)?;
    let me = std::env::current_exe().context("cannot find this vlsp binary")?;
    let bin = |b: &Option<PathBuf>, side| match b {
        Some(p) => check_file(p, side),
        None => Ok(me.clone()),
    };
    let bins = [bin(&a.a_bin, "--a-bin")?, bin(&a.b_bin, "--b-bin")?];
    let exp_a = check_file(&a.experiment, "experiment")?;
    let exps = [
        exp_a.clone(),
        a.b_exp
            .as_deref()
            .map_or(Ok(exp_a), |p| check_file(p, "--b-exp"))?,
    ];
    let order = block_order(a.blocks);
    let mut blocks: Vec<(Arm, Vec<Row>)> = vec![];
    let started = Instant::now();
    for (i, arm) in order.iter().enumerate() {
        let k = *arm as usize;
        let dir = a
            .output
            .join("blocks")
            .join(format!("{:02}-{}", i + 1, arm.as_str()));
        let t = Instant::now();
        let rows = run_block(&bins[k], &exps[k], a.runs_per_block, &dir)?;
        eprintln!(
            "ab: block {}/{} ({}) {} runs in {:.1} s",
            i + 1,
            order.len(),
            arm.as_str(),
            rows.len(),
            t.elapsed().as_secs_f64()
        );
        blocks.push((*arm, rows));
    }
    for arm in [Arm::A, Arm::B] {
        let dir = a.output.join(arm.as_str().to_lowercase());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mine = || {
            blocks
                .iter()
                .filter(|(b, _)| *b == arm)
                .map(|(_, r)| r.as_slice())
        };
        write_runs(&dir.join("runs.csv"), &block_medians(mine()))?;
        write_runs(&dir.join("all-runs.csv"), &pool(mine()))?;
        // The first block's meta.json names the experiment, commit and date.
        let first = order.iter().position(|b| *b == arm).expect("both arms run");
        let meta = a
            .output
            .join("blocks")
            .join(format!("{:02}-{}", first + 1, arm.as_str()))
            .join("meta.json");
        if meta.is_file() {
            std::fs::copy(&meta, dir.join("meta.json"))?;
        }
    }
    let metrics = block_metrics(&blocks[0].1, &BLOCK_METRICS);
    let stats = block_table(&blocks, &metrics);
    let table = format!(
        "\n#### Blocks (run order, {} runs each, {:.0} s in all; the verdict tests these blocks' medians)\n\n{}",
        a.runs_per_block,
        started.elapsed().as_secs_f64(),
        block_markdown(&stats, &metrics)
    );
    std::fs::write(a.output.join("blocks.md"), &table)?;
    std::fs::write(
        a.output.join("blocks.json"),
        serde_json::to_string_pretty(&stats)? + "\n",
    )?;
    let (dir_a, dir_b) = (a.output.join("a"), a.output.join("b"));
    let c = compare::compare_dirs(&dir_a, &dir_b, &o)?;
    a.judge
        .report(&c, Some(&a.output.join("compare")), &table, &dir_a, &dir_b)
}
