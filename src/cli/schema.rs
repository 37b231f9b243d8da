//! `vlsp schema`: the JSON Schema of topology and experiment files, made
//! from the same types that parse them, for editors (Taplo / Even Better
//! TOML read the `#:schema` first line of the shipped files).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::out;

#[derive(Args)]
pub(super) struct SchemaArgs {
    /// Which file kind.
    #[arg(value_enum)]
    kind: SchemaKind,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum SchemaKind {
    /// topologies/*.toml
    Topology,
    /// experiments/*.toml
    Experiment,
}

/// The schema's text as `vlsp schema KIND` writes it (and the committed
/// schemas/*.schema.json hold it).
pub(super) fn text(kind: SchemaKind) -> String {
    let v = match kind {
        SchemaKind::Topology => crate::topology::schema(),
        SchemaKind::Experiment => crate::experiment::file::schema(),
    };
    serde_json::to_string_pretty(&v).expect("a schema serializes") + "\n"
}

pub(super) fn schema(a: SchemaArgs) -> Result<()> {
    let t = text(a.kind);
    match a.output {
        Some(p) => std::fs::write(&p, t).with_context(|| format!("cannot write {}", p.display())),
        None => {
            out!("{}", t.trim_end());
            Ok(())
        }
    }
}
