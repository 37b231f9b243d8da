//! `auth-compare` (Fig. 13): setup and teardown with authentication, then
//! without (every provider accepting unsigned requests).

use anyhow::Result;

use crate::experiment::file::Experiment;
use crate::experiment::kinds::setup_teardown::{Plan, measure};
use crate::experiment::rows::Row;
use crate::testbed::Options;
use crate::topology::Topology;

/// Runs the variants `auth` and `noauth`.
pub fn run(e: &Experiment, topo: Topology, base: &Options, rows: &mut Vec<Row>) -> Result<()> {
    measure(topo.clone(), base, Plan::of(e), true, "auth", rows)?;
    let mut t = topo;
    for p in &mut t.providers {
        p.accept_unsigned = true;
    }
    measure(t, base, Plan::of(e), false, "noauth", rows)?;
    Ok(())
}
