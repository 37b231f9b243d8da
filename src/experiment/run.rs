//! `vlsp run FILE`: brings the experiment's topology up for each variant,
//! measures, tears it down (also on Ctrl-C and on error), and writes the
//! output folder: `runs.csv`, `meta.json`, then the report.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::experiment::file::{Experiment, Kind};
use crate::experiment::kinds::{
    auth_compare, backends, chain_sweep, fault_recovery, hmac, qos_isolation, setup_teardown,
    throughput,
};
use crate::experiment::meta::{GuestInfo, Meta};
use crate::experiment::progress;
use crate::experiment::report::report;
use crate::experiment::rows::{Row, write_runs};
use crate::testbed::Options;
use crate::topology::Topology;

/// The experiments `vlsp reproduce` runs, in order.
pub const PAPER_EXPERIMENTS: [&str; 11] = [
    "paper-table1.toml",
    "paper-table1-cmode.toml",
    "paper-table1-procs.toml",
    "paper-table2.toml",
    "paper-fig13.toml",
    "chain-sweep.toml",
    "backends.toml",
    "qos-isolation.toml",
    "throughput.toml",
    "paper-table1-qemu.toml",
    "fault-recovery.toml",
];

/// The experiment's topology file with its overrides (virtual node kind,
/// link capacity) applied; none for the kinds that need no file.
fn topology(e: &Experiment) -> Result<Option<Topology>> {
    let mut topo = e.topology.as_deref().map(Topology::load).transpose()?;
    if let (Some(t), Some(k)) = (topo.as_mut(), e.vnodes) {
        t.set_vnode_kind(k);
    }
    if let (Some(t), Some(c)) = (topo.as_mut(), e.capacity_bps) {
        for l in &mut t.links {
            l.capacity_bps = c;
        }
    }
    Ok(topo)
}

/// The signaling path of `topo`: QNI, QNEs, QNR.
fn signaling_path(topo: Option<&Topology>) -> Result<Vec<String>> {
    let Some(t) = topo else { return Ok(vec![]) };
    let (a, mid, b) = t.signaling_roles()?;
    Ok(std::iter::once(a)
        .chain(mid)
        .chain(std::iter::once(b))
        .collect())
}

/// Runs an experiment and writes its folder. Partial results are kept and
/// the failure is recorded in `meta.json` if it stops early.
pub fn run(e: &Experiment) -> Result<PathBuf> {
    progress::catch_signals();
    std::fs::create_dir_all(&e.output)
        .with_context(|| format!("cannot create {}", e.output.display()))?;
    let topo = topology(e)?;
    let mut meta = Meta::new(e, signaling_path(topo.as_ref())?);
    let base = Options {
        points: 4096,
        backend: e.backend,
        refresh: None,
        no_qos: !e.qos,
        pcap: e.pcap.then(|| e.output.join("pcap")),
        process_per_node: e.process_per_node,
        ..Options::default()
    };
    let mut rows: Vec<Row> = Vec::new();
    let result = measure(e, topo, &base, &mut rows);
    let result = match result {
        Ok(guests) => {
            meta.set_guests(guests);
            Ok(())
        }
        Err(err) => {
            meta.failure = Some(format!("{err:#}"));
            Err(err)
        }
    };
    meta.runs_done = rows.len();
    write_runs(&e.output.join("runs.csv"), &rows)?;
    std::fs::write(
        e.output.join("meta.json"),
        serde_json::to_string_pretty(&meta)?,
    )?;
    if !rows.is_empty() {
        report(&e.output)?;
    }
    result.map(|_| e.output.clone())
}

/// Runs the experiment's kind, appending to `rows`; returns the QEMU guests
/// of a `setup-teardown` run.
fn measure(
    e: &Experiment,
    topo: Option<Topology>,
    base: &Options,
    rows: &mut Vec<Row>,
) -> Result<Option<GuestInfo>> {
    let topo = || {
        topo.clone()
            .context("this kind of experiment needs `topology = \"...\"`")
    };
    match e.kind {
        Kind::SetupTeardown => return setup_teardown::run(e, topo()?, base, rows),
        Kind::AuthCompare => auth_compare::run(e, topo()?, base, rows)?,
        Kind::Backends => backends::run(e, topo()?, base, rows)?,
        Kind::ChainSweep => chain_sweep::run(e, base, rows)?,
        Kind::QosIsolation => qos_isolation::run_kind(e, topo()?, base, rows)?,
        Kind::FaultRecovery => fault_recovery::run_kind(e, topo()?, base, rows)?,
        Kind::Hmac => hmac::run(e, rows),
        Kind::Throughput => throughput::run(e, topo()?, base, rows)?,
    }
    Ok(None)
}
