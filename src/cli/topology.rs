//! `vlsp validate`, `vlsp generate`, `vlsp graph`: topology files, nothing
//! created.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::out;
use crate::topology::{self, MAX_CHAIN_ROUTERS, Topology};

#[derive(Args)]
pub(super) struct ValidateArgs {
    /// Topology file.
    topology: PathBuf,
    /// One JSON object: "valid", the counts, or the error's file, line,
    /// column and message (still exits non-zero).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct GraphArgs {
    /// Topology file.
    topology: PathBuf,
    /// Output file: .dot, .svg or .png.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Subcommand)]
pub(super) enum GenerateCmd {
    /// A chain of N routers across K providers, VM1 on the first, VM2 on
    /// the last. Each link gets its own 10.X.Y.0/24 (X from 100), so a
    /// chain has at most 39937 routers.
    Chain {
        /// Number of routers, 2 or more.
        #[arg(value_parser = clap::value_parser!(u64).range(2..=MAX_CHAIN_ROUTERS as u64))]
        n: u64,
        /// Providers the routers are split across (1 to N).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        providers: u64,
        /// Topology name (default: chainN).
        #[arg(long)]
        name: Option<String>,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

pub(super) fn validate(a: ValidateArgs) -> Result<()> {
    if a.json {
        return match Topology::load(&a.topology) {
            Ok(t) => {
                let v = serde_json::json!({
                    "file": a.topology,
                    "valid": true,
                    "name": t.name,
                    "counts": t.summary(),
                });
                out!("{v}");
                Ok(())
            }
            Err(e) => {
                let v = serde_json::json!({
                    "file": e.file,
                    "valid": false,
                    "line": e.line,
                    "column": e.column,
                    "message": e.message,
                });
                out!("{v}");
                Err(e.into())
            }
        };
    }
    let t = Topology::load(&a.topology)?;
    let counts: Vec<String> = t
        .summary()
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    out!("{}: valid ({})", a.topology.display(), counts.join(", "));
    Ok(())
}

pub(super) fn graph(a: GraphArgs) -> Result<()> {
    let t = Topology::load(&a.topology)?;
    crate::experiment::graph::write(&t, &a.output)?;
    out!("wrote {}", a.output.display());
    Ok(())
}

pub(super) fn generate(cmd: GenerateCmd) -> Result<()> {
    let GenerateCmd::Chain {
        n,
        providers,
        name,
        output,
    } = cmd;
    let name = name.unwrap_or_else(|| format!("chain{n}"));
    let text = topology::chain(&name, n as usize, providers as usize)?;
    match output {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => out!("{}", text.trim_end()),
    }
    Ok(())
}
