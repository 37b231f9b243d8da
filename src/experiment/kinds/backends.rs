//! `backends`: setup and teardown with the netlink backend, then with the
//! script backend (the paper's external program), same topology.

use anyhow::Result;

use crate::experiment::file::Experiment;
use crate::experiment::kinds::setup_teardown::{Plan, measure};
use crate::experiment::rows::Row;
use crate::model::tunnel::Backend;
use crate::testbed::Options;
use crate::topology::Topology;

/// Runs one variant per backend, named after it.
pub fn run(e: &Experiment, topo: Topology, base: &Options, rows: &mut Vec<Row>) -> Result<()> {
    for b in [Backend::Netlink, Backend::Script] {
        let o = Options {
            backend: Some(b),
            ..base.clone()
        };
        measure(topo.clone(), &o, Plan::of(e), true, &b.to_string(), rows)?;
    }
    Ok(())
}
