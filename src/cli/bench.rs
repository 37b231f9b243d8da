//! `vlsp bench`: micro-benchmarks of the paper's per-operation tables.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(super) enum BenchCmd {
    /// HMAC creation and verification of a signed RESERVE (paper Table II).
    Hmac(crate::experiment::hmac::HmacArgs),
}

pub(super) fn bench(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Hmac(a) => crate::experiment::hmac::run_hmac(&a),
    }
}
