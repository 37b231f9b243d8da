//! `vlsp exec` and `vlsp ping`: inside a running topology's namespaces.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::out;
use crate::kernel::substrate;
use crate::model::paths::TopoName;
use crate::testbed::resolve;

#[derive(Args)]
pub(super) struct ExecArgs {
    /// Topology name.
    topology: String,
    /// Router or virtual node.
    node: String,
    /// The command, after `--`.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

#[derive(Args)]
pub(super) struct PingArgs {
    /// Topology name (or file).
    topology: String,
    /// Router or virtual node that sends.
    from: String,
    /// Router or virtual node that echoes.
    to: String,
}

pub(super) fn exec(a: ExecArgs) -> Result<()> {
    let name = TopoName::new(&a.topology)?;
    let st = substrate::exec(name.as_str(), &a.node, &a.cmd)?;
    std::process::exit(st.code().unwrap_or(1));
}

pub(super) fn ping(a: PingArgs) -> Result<()> {
    let t = resolve(&a.topology)?;
    let to = &a.to;
    let addr = t
        .node_addr(to)
        .or_else(|| t.vnodes.iter().find(|v| v.name == *to).map(|v| v.addr))
        .with_context(|| format!("no node or virtual node {to} in {}", t.name))?;
    let rtt = substrate::udp_ping(&t.name, &a.from, to, addr, Duration::from_secs(2))?;
    out!(
        "{} -> {to} ({addr}): UDP echo in {:.3} ms",
        a.from,
        rtt.as_secs_f64() * 1e3
    );
    Ok(())
}
