//! `vlsp`: the testbed's command line. This module and its files only parse
//! arguments and dispatch; the work lives in the layers below (one file per
//! verb group).

mod ab;
mod apply;
mod bench;
mod compare;
mod exec;
mod experiment;
mod fault;
mod k8s;
mod link;
mod node;
mod schema;
mod topology;
mod updown;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Writes a line to standard output; a reader that went away (`vlsp link
/// list | head -1`, EPIPE) is not an error, and never a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use out;

/// Authenticated QoS signaling for virtual links (VLSP over NSIS QoS NSLP and
/// GIST) on a real Linux substrate: bring a multi-provider topology up in
/// network namespaces, set virtual links up and down with signed RESERVEs,
/// and reproduce the experiments of "Authenticated Quality-of-Service
/// Signaling for Virtual Networks".
///
/// Most commands need root (network namespaces). A first session:
///
///   vlsp up topologies/paper-4node.toml --detach
///   vlsp link setup --topology paper-4node --from VM1 --to VM2 --rate 10mbit
///   vlsp exec paper-4node VM1 -- ping -c1 10.10.0.2
///   vlsp down paper-4node
///
/// Topology names are 1-24 lowercase letters, digits and '-' (they name
/// /run/vlsp/NAME/ and the namespaces vlsp-NAME-NODE).
#[derive(Parser)]
#[command(name = "vlsp", version = crate::experiment::meta::VERSION, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The optional modes (`--help` of `up`, `run`, `node`).
const MODES_HELP: &str = "Optional modes and runtime settings (the defaults are the paper's behaviour): set them in the \
environment of `vlsp up`, `run` or `node`; a run records them in meta.json and summary.md.
  VLSP_NODES_PER_THREAD=N    N nodes share a thread (default 64; 1: a thread per node; C-mode
                             nodes always get their own; same messages)
  VLSP_GIST_DATA_IN_QUERY=1  a session's first RESERVE rides in its GIST Query
  VLSP_GIST_REUSE_PEERS=1    a later session of a flow sends its RESERVE straight to the peer of
                             the flow's last handshake, without one (both ends need it)
  VLSP_KERNEL_CPUS=LIST      tunnel ends, reservation classes, deletions and the route monitor
                             run on these CPUs (e.g. 1, or 2-3), the nodes' signaling on the
                             others (default, when nodes share threads: the last CPU, given two
                             or more; none: where the scheduler puts them; same messages)
  VLSP_ALLOCATOR=glibc       glibc's malloc instead of mimalloc (the default): slower on long
                             chains, about a third of the memory per router at 10 000 routers";

#[derive(Subcommand)]
enum Cmd {
    /// Bring a topology up: namespaces, links, routes, and an NSIS node per
    /// router. Stays in the foreground and removes everything on Ctrl-C or
    /// SIGTERM, unless --detach. Refused if the topology is already up.
    #[command(after_long_help = MODES_HELP)]
    Up(updown::UpArgs),
    /// Remove a topology (also after a crash, and without its file).
    Down(updown::DownArgs),
    /// What is up: topologies, their namespaces and API sockets.
    Status(updown::StatusArgs),
    /// Check a topology file without creating anything.
    Validate(topology::ValidateArgs),
    /// Draw a topology: providers, routers, links with capacities, virtual nodes.
    Graph(topology::GraphArgs),
    /// Write a generated topology (for sweeps).
    #[command(subcommand)]
    Generate(topology::GenerateCmd),
    /// Virtual links through the nodes' API sockets.
    #[command(subcommand)]
    Link(link::LinkCmd),
    /// Run one router's NSIS node as its own process, in the namespace it
    /// is started in (a host, a pod, `ip netns exec`). SIGTERM tears its
    /// links down first.
    #[command(after_long_help = MODES_HELP)]
    Node(node::NodeArgs),
    /// Host many routers' NSIS nodes in one process, each in its namespace
    /// with its own API socket (`vlsp up` starts these for big topologies).
    #[command(hide = true)]
    NodeGroup(node::NodeGroupArgs),
    /// Run a command inside a node's (or virtual node's) namespace.
    Exec(exec::ExecArgs),
    /// A topology on Kubernetes with meshnet-cni: manifests, pod setup.
    #[command(subcommand)]
    K8s(k8s::K8sCmd),
    /// Prove reachability between two nodes with a UDP echo.
    Ping(exec::PingArgs),
    /// Fail or repair a substrate link or a router of a running topology
    /// (`vlsp fault --topology ring-6node link-down r1-r2`).
    Fault(fault::FaultArgs),
    /// Micro-benchmarks that reproduce the paper's per-operation tables.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Run an experiment file: bring its topology up, run, tear down, and
    /// write runs.csv, summary.csv, summary.md, meta.json and the figures.
    #[command(after_long_help = MODES_HELP)]
    Run(experiment::RunArgs),
    /// Regenerate summaries and figures of a results folder from its CSV
    /// (no root needed, nothing is run).
    Report(experiment::ReportArgs),
    /// Run every paper experiment (experiments/paper-*.toml and the
    /// sweeps) and write results/.
    Reproduce(experiment::ReproduceArgs),
    /// Write the JSON Schema of topology or experiment files (what the
    /// `#:schema` line of the shipped files points editors at).
    Schema(schema::SchemaArgs),
    /// Change a running topology to an edited file: add or remove routers,
    /// links and virtual nodes, change capacities and keys, touching only
    /// what changed. Refused when it would strand a reserved virtual link,
    /// unless --force (which tears that link down first).
    Apply(apply::ApplyArgs),
    /// Test two results folders against each other: per metric the means
    /// with CIs, the change, Mann-Whitney U and Welch's t (Holm-corrected),
    /// an equivalence test against --margin, and a verdict (faster, slower,
    /// equivalent, inconclusive); a box-plot figure of both.
    /// --fail-if-slower 10% exits 1 on a significant regression.
    Compare(compare::CompareArgs),
    /// Run two configurations (two binaries, or two experiment files) in
    /// alternating blocks A B B A … in the same minutes and compare the
    /// pooled runs: the machine's drift falls on both alike. A per-block
    /// table shows the drift.
    Ab(ab::AbArgs),
}

pub fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VLSP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    crate::model::allocator::check_env().map_err(anyhow::Error::msg)?;
    match Cli::parse().cmd {
        Cmd::Up(a) => updown::up(a),
        Cmd::Down(a) => updown::down(a),
        Cmd::Status(a) => updown::status(a),
        Cmd::Validate(a) => topology::validate(a),
        Cmd::Graph(a) => topology::graph(a),
        Cmd::Generate(g) => topology::generate(g),
        Cmd::Link(l) => link::link(l),
        Cmd::Node(a) => node::node(a),
        Cmd::NodeGroup(a) => node::node_group(a),
        Cmd::Exec(a) => exec::exec(a),
        Cmd::K8s(c) => k8s::k8s(c),
        Cmd::Ping(a) => exec::ping(a),
        Cmd::Fault(a) => fault::fault(a),
        Cmd::Bench(b) => bench::bench(b),
        Cmd::Run(a) => experiment::run(a),
        Cmd::Report(a) => experiment::report(a),
        Cmd::Reproduce(a) => experiment::reproduce(a),
        Cmd::Schema(a) => schema::schema(a),
        Cmd::Apply(a) => apply::apply(a),
        Cmd::Compare(a) => compare::compare(a),
        Cmd::Ab(a) => ab::ab(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn providers_zero_is_refused_by_the_parser() {
        let e = Cli::try_parse_from(["vlsp", "generate", "chain", "10", "--providers", "0"])
            .err()
            .expect("refused");
        assert!(e.to_string().contains("providers"), "{e}");
        assert!(
            Cli::try_parse_from(["vlsp", "generate", "chain", "10", "--providers", "2"]).is_ok()
        );
    }

    #[test]
    fn rates_are_parsed_as_rates() {
        let setup = |rate| {
            Cli::try_parse_from([
                "vlsp",
                "link",
                "setup",
                "--topology",
                "t",
                "--from",
                "a",
                "--to",
                "b",
                "--rate",
                rate,
            ])
        };
        assert!(setup("3 furlongs").is_err());
        assert!(setup("125kbps").is_ok());
    }
}
