//! `vlsp`: the testbed's command line. Each subcommand lives in the module
//! that owns its subject; this file only parses and dispatches.

use clap::{Parser, Subcommand};

/// Authenticated QoS signaling for virtual links (VLSP over NSIS QoS NSLP and
/// GIST) on a real Linux substrate: bring a multi-provider topology up in
/// network namespaces, set virtual links up and down with signed RESERVEs,
/// and reproduce the experiments of "Authenticated Quality-of-Service
/// Signaling for Virtual Networks".
///
/// Most commands need root (network namespaces). Start with
/// `vlsp reproduce`, or `vlsp up topologies/paper-4node.toml` and then
/// `vlsp link setup --topology paper-4node --from VM1 --to VM2 --rate 10mbit`.
#[derive(Parser)]
#[command(name = "vlsp", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Micro-benchmarks that reproduce the paper's per-operation tables.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// HMAC creation and verification of a signed RESERVE (paper Table II).
    Hmac(vlsp::bench::HmacArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VLSP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Bench(BenchCmd::Hmac(a)) => vlsp::bench::run_hmac(&a),
    }
}
