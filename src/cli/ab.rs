//! `vlsp ab`: two configurations (two binaries, or two experiment files of
//! one binary) run in alternating blocks A B B A …, then the blocks'
//! medians compared as by `vlsp compare`: each pair of blocks ran in the
//! same minutes, so the test is paired, on the log ratio of each pair's
//! medians (see [`crate::experiment::compare::interleave`]), with a
//! per-block table that shows the machine's drift the alternation cancels.
//! Each side is labelled with its own binary's commit (`BIN --version`),
//! and a binary that does not run, fails or writes no readable runs stops
//! everything before any comparison is written.

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

/// The commit a vlsp binary says it was built from (`BIN --version`
/// prints `vlsp <version> (commit <hash>)`); an error naming the binary
/// when it does not run or is not vlsp.
fn binary_commit(bin: &Path, what: &str) -> Result<String> {
    let o = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("{what} {} cannot be started", bin.display()))?;
    let out = String::from_utf8_lossy(&o.stdout);
    ensure!(
        o.status.success() && out.starts_with("vlsp "),
        "{what} {} is not a working vlsp binary: `--version` {} and printed {:?} (give a build of vlsp, e.g. target/release/vlsp of another checkout)",
        bin.display(),
        o.status,
        out.trim()
    );
    Ok(commit_of_version(&out))
}

/// The hash in `vlsp 0.1.0 (commit abc…)`; binaries built before the
/// commit was baked in print none.
fn commit_of_version(v: &str) -> String {
    v.split_once("(commit ")
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(c, _)| c.trim().to_string())
        .unwrap_or_else(|| "unknown (the binary predates `--version` naming its commit)".into())
}

/// Marks a folder `vlsp ab` writes into.
const MARK: &str = ".vlsp-ab";

/// What a previous `vlsp ab` into the same folder left: removed first, so
/// a failed run never leaves an old comparison looking like its result.
/// Only a folder marked by an earlier `vlsp ab` ([`MARK`], written before
/// its first block) is cleared: anything else is the user's.
fn clear_previous(out: &Path) -> Result<()> {
    let ours = ["a", "b", "compare", "blocks"];
    if !out.join(MARK).is_file()
        && let Some(d) = ours.iter().map(|d| out.join(d)).find(|p| p.exists())
    {
        anyhow::bail!(
            "{} exists but {} holds no earlier `vlsp ab` (no {MARK}): not removing it; \
             give `vlsp ab` an empty or new --output folder",
            d.display(),
            out.display()
        );
    }
    for d in ours {
        let p = out.join(d);
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("cannot remove the old {}", p.display()))?;
        }
    }
    for f in ["blocks.md", "blocks.json"] {
        let p = out.join(f);
        if p.is_file() {
            std::fs::remove_file(&p)
                .with_context(|| format!("cannot remove the old {}", p.display()))?;
        }
    }
    Ok(())
}

/// Whether `BIN run` takes `--sessions` (older builds refuse the flag):
/// asked of the binary's own `run --help`, not guessed from its version.
fn knows_sessions(bin: &Path) -> bool {
    Command::new(bin)
        .args(["run", "--help"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--sessions")
        })
}

/// One block: `BIN run EXP --runs N --output DIR`, plus `--sessions 1`
/// for binaries that know it ([`knows_sessions`]): a block is one
/// topology up already, and the pairs are the replicates.
fn run_block(
    bin: &Path,
    exp: &Path,
    runs: usize,
    dir: &Path,
    one_session: bool,
) -> Result<Vec<Row>> {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(exp)
        .arg("--runs")
        .arg(runs.to_string())
        .arg("--output")
        .arg(dir);
    if one_session {
        cmd.args(["--sessions", "1"]);
    }
    let o = cmd
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
    let rows = read_runs(&dir.join("runs.csv")).with_context(|| {
        format!(
            "`{} run {}` exited 0 but left no readable {}/runs.csv",
            bin.display(),
            exp.display(),
            dir.display()
        )
    })?;
    ensure!(
        !rows.is_empty() && rows.iter().all(|r| !r.values.is_empty()),
        "`{} run {}` wrote {} rows without measurements to {}/runs.csv",
        bin.display(),
        exp.display(),
        rows.len(),
        dir.display()
    );
    Ok(rows)
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
    let commits = [
        binary_commit(&bins[0], "--a-bin")?,
        binary_commit(&bins[1], "--b-bin")?,
    ];
    let exp_a = check_file(&a.experiment, "experiment")?;
    let exps = [
        exp_a.clone(),
        a.b_exp
            .as_deref()
            .map_or(Ok(exp_a), |p| check_file(p, "--b-exp"))?,
    ];
    clear_previous(&a.output)?;
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("cannot create {}", a.output.display()))?;
    std::fs::write(a.output.join(MARK), "written by vlsp ab\n")
        .with_context(|| format!("cannot write {}", a.output.join(MARK).display()))?;
    let sessions = [knows_sessions(&bins[0]), knows_sessions(&bins[1])];
    for (k, side) in ["A", "B"].iter().enumerate() {
        if !sessions[k] {
            println!(
                "ab: {side}'s binary {} has no `run --sessions`: its blocks run with the experiment's own sessions",
                bins[k].display()
            );
        }
    }
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
        let rows = run_block(&bins[k], &exps[k], a.runs_per_block, &dir, sessions[k])
            .with_context(|| {
                format!(
                    "block {} ({}) failed: no comparison written (the blocks so far are in {})",
                    i + 1,
                    arm.as_str(),
                    a.output.join("blocks").display()
                )
            })?;
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
    let mut c = compare::compare_dirs(&dir_a, &dir_b, &o)?;
    let [ca, cb] = commits;
    (c.a.commit, c.b.commit) = (Some(ca), Some(cb));
    a.judge
        .report(&c, Some(&a.output.join("compare")), &table, &dir_a, &dir_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_ab_did_not_write_is_never_removed() {
        let out = std::env::temp_dir().join(format!("vlsp-ab-clear-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(out.join("a")).unwrap();
        std::fs::write(out.join("a/keep.txt"), "user data").unwrap();
        let e = clear_previous(&out).unwrap_err().to_string();
        assert!(e.contains("no .vlsp-ab"), "{e}");
        assert!(out.join("a/keep.txt").is_file(), "nothing removed");
        // An earlier `vlsp ab` into the folder: its outputs go.
        std::fs::write(out.join(MARK), "").unwrap();
        clear_previous(&out).unwrap();
        assert!(!out.join("a").exists());
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn sessions_support_is_asked_of_the_binary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vlsp-ab-sessions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = |name: &str, help: &str| {
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\necho '{help}'\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        assert!(knows_sessions(&fake(
            "new",
            "      --sessions <SESSIONS>  split the runs"
        )));
        assert!(!knows_sessions(&fake("old", "      --runs <RUNS>")));
        assert!(!knows_sessions(&dir.join("missing")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn version_names_the_commit() {
        assert_eq!(
            commit_of_version("vlsp 0.1.0 (commit 1234abcd)\n"),
            "1234abcd"
        );
        assert!(commit_of_version("vlsp 0.1.0\n").starts_with("unknown"));
        assert!(crate::experiment::meta::VERSION.contains("(commit "));
    }
}
