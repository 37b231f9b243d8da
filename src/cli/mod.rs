//! `vlsp`: the testbed's command line. Each subcommand lives in the module
//! that owns its subject; this file only parses and dispatches.

use std::path::PathBuf;
use std::time::Duration;

use crate::node::api::{Client, Reply, Request};
use crate::testbed::{Options, Testbed, resolve};
use crate::topology::Topology;
use crate::{kernel::substrate, testbed};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

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
#[derive(Parser)]
#[command(name = "vlsp", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring a topology up: namespaces, links, routes, and an NSIS node per
    /// router. Stays in the foreground and removes everything on Ctrl-C or
    /// SIGTERM, unless --detach.
    Up {
        /// Topology file.
        topology: PathBuf,
        /// Print how long each phase took.
        #[arg(long)]
        timings: bool,
        /// Run in the background; `vlsp down NAME` stops it.
        #[arg(long)]
        detach: bool,
        /// Admission control only: do not install reservations as HTB
        /// classes (links are still shaped to their capacity).
        #[arg(long)]
        no_qos: bool,
        #[arg(long, hide = true)]
        daemon_child: bool,
    },
    /// Remove a topology (also after a crash, and without its file).
    Down {
        /// Topology name (or file).
        topology: Option<String>,
        /// Remove every topology vlsp has up.
        #[arg(long)]
        all: bool,
        /// Print how long removal took.
        #[arg(long)]
        timings: bool,
    },
    /// What is up: topologies, their namespaces and API sockets.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check a topology file without creating anything.
    Validate { topology: PathBuf },
    /// Draw a topology: providers, routers, links with capacities, virtual nodes.
    Graph {
        topology: PathBuf,
        /// Output file: .dot, .svg or .png.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Write a generated topology (for sweeps).
    #[command(subcommand)]
    Generate(GenerateCmd),
    /// Virtual links through the nodes' API sockets.
    #[command(subcommand)]
    Link(LinkCmd),
    /// Run a command inside a node's (or virtual node's) namespace.
    Exec {
        /// Topology name.
        topology: String,
        /// Router or virtual node.
        node: String,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Prove reachability between two nodes with a UDP echo.
    Ping {
        topology: String,
        from: String,
        to: String,
    },
    /// Micro-benchmarks that reproduce the paper's per-operation tables.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Run an experiment file: bring its topology up, run, tear down, and
    /// write runs.csv, summary.csv, summary.md, meta.json and the figures.
    Run {
        /// Experiment file (see experiments/).
        experiment: PathBuf,
        /// Override the number of runs.
        #[arg(long)]
        runs: Option<usize>,
        /// Override the output folder.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Capture every substrate interface of the NSIS nodes into
        /// OUTPUT/pcap/<variant>/<node>-<if>.pcap, and report [D]..[G]
        /// from the wire beside the measurement points.
        #[arg(long)]
        pcap: bool,
    },
    /// Regenerate summaries and figures of a results folder from its CSV
    /// (no root needed, nothing is run).
    Report { dir: PathBuf },
    /// Run every paper experiment (experiments/paper-*.toml and the
    /// sweeps) and write results/.
    Reproduce {
        /// Override the number of runs of every experiment.
        #[arg(long)]
        runs: Option<usize>,
        /// Write under this folder instead of results/.
        #[arg(long, default_value = "results")]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum GenerateCmd {
    /// A chain of N routers across K providers, VM1 on the first, VM2 on the last.
    Chain {
        n: usize,
        #[arg(long, default_value_t = 1)]
        providers: usize,
        #[arg(long)]
        name: Option<String>,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LinkCmd {
    /// Set up a virtual link with a QoS reservation.
    Setup {
        #[arg(long)]
        topology: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Reserved rate, e.g. 10mbit.
        #[arg(long, default_value = "10mbit")]
        rate: String,
        /// Send the request unsigned (providers refuse it by default).
        #[arg(long)]
        no_auth: bool,
        /// Also reserve the reverse direction (VM2 -> VM1): the responder
        /// starts a reservation bound with BOUND_SESSION_ID.
        #[arg(long)]
        bidirectional: bool,
    },
    /// Tear a virtual link down.
    Teardown {
        #[arg(long)]
        topology: String,
        /// The virtual node the link was set up from.
        #[arg(long)]
        from: String,
        /// VLink ID (from `vlsp link list`).
        #[arg(long)]
        id: u64,
    },
    /// Virtual links known to a node.
    List {
        #[arg(long)]
        topology: String,
        /// Router (default: all NSIS routers).
        #[arg(long)]
        node: Option<String>,
    },
    /// Counters of a node (messages, refusals by reason).
    Stats {
        #[arg(long)]
        topology: String,
        #[arg(long)]
        node: String,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// HMAC creation and verification of a signed RESERVE (paper Table II).
    Hmac(crate::experiment::hmac::HmacArgs),
}

pub fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VLSP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Up {
            topology,
            timings,
            detach,
            no_qos,
            daemon_child,
        } => up(&topology, timings, detach, no_qos, daemon_child),
        Cmd::Down {
            topology,
            all,
            timings,
        } => down(topology, all, timings),
        Cmd::Status { json } => status(json),
        Cmd::Validate { topology } => {
            let t = Topology::load(&topology)?;
            println!(
                "{}: valid ({})",
                topology.display(),
                t.summary()
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Cmd::Graph { topology, output } => {
            let t = Topology::load(&topology)?;
            crate::experiment::graph::write(&t, &output)?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Cmd::Generate(GenerateCmd::Chain {
            n,
            providers,
            name,
            output,
        }) => {
            anyhow::ensure!(n >= 2, "a chain needs at least 2 routers");
            let name = name.unwrap_or_else(|| format!("chain{n}"));
            let text = crate::topology::generate_chain(&name, n, providers);
            match output {
                Some(p) => std::fs::write(&p, text)
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
        Cmd::Link(l) => link(l),
        Cmd::Exec {
            topology,
            node,
            cmd,
        } => {
            let st = substrate::exec(&topology, &node, &cmd)?;
            std::process::exit(st.code().unwrap_or(1));
        }
        Cmd::Ping { topology, from, to } => {
            let t = resolve(&topology)?;
            let addr = t
                .node_addr(&to)
                .or_else(|| t.vnodes.iter().find(|v| v.name == to).map(|v| v.addr))
                .with_context(|| format!("no node or virtual node {to} in {}", t.name))?;
            let rtt = substrate::udp_ping(&t.name, &from, &to, addr, Duration::from_secs(2))?;
            println!(
                "{from} -> {to} ({addr}): UDP echo in {:.3} ms",
                rtt.as_secs_f64() * 1e3
            );
            Ok(())
        }
        Cmd::Bench(BenchCmd::Hmac(a)) => crate::experiment::hmac::run_hmac(&a),
        Cmd::Run {
            experiment,
            runs,
            output,
            pcap,
        } => {
            let mut e = crate::experiment::Experiment::load(&experiment)?;
            e.pcap = pcap;
            if let Some(r) = runs {
                e.runs = r;
                e.high_count = e.high_count.map(|h| h.min(r * 100));
            }
            if let Some(o) = output {
                e.output = o;
            }
            if e.kind != crate::experiment::Kind::Hmac {
                substrate::require_root()?;
            }
            let dir = crate::experiment::run(&e)?;
            println!("{}: results in {}", e.name, dir.display());
            print!("{}", std::fs::read_to_string(dir.join("summary.csv"))?);
            Ok(())
        }
        Cmd::Report { dir } => {
            crate::experiment::report(&dir)?;
            println!(
                "regenerated {}/summary.csv, summary.md and figures",
                dir.display()
            );
            Ok(())
        }
        Cmd::Reproduce { runs, output } => {
            substrate::require_root()?;
            let exp_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
            for f in crate::experiment::PAPER_EXPERIMENTS {
                let mut e = crate::experiment::Experiment::load(&exp_dir.join(f))?;
                if let Some(r) = runs {
                    e.runs = r;
                    e.high_count = e.high_count.map(|h| h.min(r * 100));
                }
                e.output = output.join(&e.name);
                eprintln!(
                    "== {} ({:?}, {} runs) -> {}",
                    e.name,
                    e.kind,
                    e.runs,
                    e.output.display()
                );
                crate::experiment::run(&e)?;
            }
            println!("all paper experiments written under {}", output.display());
            Ok(())
        }
    }
}

fn up(
    path: &std::path::Path,
    timings: bool,
    detach: bool,
    no_qos: bool,
    daemon_child: bool,
) -> Result<()> {
    let topo = Topology::load(path)?;
    substrate::require_root()?;
    let name = topo.name.clone();
    let run = std::path::Path::new(crate::model::paths::RUN_DIR).join(&name);
    if detach && !daemon_child {
        // Re-run ourselves in a new session, in the background.
        std::fs::create_dir_all(&run)?;
        let log = run.with_extension("log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.arg("up").arg(path).arg("--daemon-child");
        if no_qos {
            cmd.arg("--no-qos");
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd.spawn().context("cannot start the background process")?;
        let ready = run.join("ready");
        for _ in 0..600 {
            if ready.exists() {
                println!(
                    "{name} is up (pid {}); stop it with `vlsp down {name}`",
                    child.id()
                );
                return Ok(());
            }
            if let Some(st) = child.try_wait()? {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("{name} failed to come up ({st}):\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{name} did not come up within 30 s; see {}", log.display());
    }
    let tb = Testbed::up(
        topo,
        &Options {
            no_qos,
            ..Options::default()
        },
    )?;
    std::fs::write(run.join("pid"), std::process::id().to_string())?;
    std::fs::write(run.join("ready"), "")?;
    println!(
        "{name}: {} routers ({} running NSIS), {} links, {} virtual nodes up in {:.1} ms",
        tb.topo.nodes.len(),
        tb.nodes.len(),
        tb.topo.links.len(),
        tb.topo.vnodes.len(),
        tb.up_timings.total().as_secs_f64() * 1e3
    );
    if timings {
        println!("{}", tb.up_timings);
    }
    for n in &tb.nodes {
        println!("  API of {}: {}", n.name, n.api_socket.display());
    }
    if !daemon_child {
        println!("Ctrl-C to stop and remove everything.");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        anyhow::Ok(())
    })?;
    let t = tb.down()?;
    println!("{name} removed in {:.1} ms", t.total().as_secs_f64() * 1e3);
    Ok(())
}

fn down(topology: Option<String>, all: bool, timings: bool) -> Result<()> {
    substrate::require_root()?;
    let names: Vec<String> = match (topology, all) {
        (_, true) => substrate::journaled_topologies(),
        (Some(t), false) => {
            let p = std::path::Path::new(&t);
            if p.exists() {
                vec![Topology::load(p)?.name]
            } else {
                vec![t]
            }
        }
        (None, false) => bail!("name a topology (`vlsp down paper-4node`) or use --all"),
    };
    if names.is_empty() {
        println!("nothing of vlsp is up");
    }
    for name in names {
        // A background `vlsp up` removes its own testbed on SIGTERM.
        let pidf = std::path::Path::new(crate::model::paths::RUN_DIR)
            .join(&name)
            .join("pid");
        if let Some(pid) = std::fs::read_to_string(&pidf)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let pid = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
                for _ in 0..100 {
                    if nix::sys::signal::kill(pid, None).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let t = substrate::down(&name)?;
        println!("{name}: removed");
        if timings {
            println!("{t}");
        }
    }
    Ok(())
}

fn status(json: bool) -> Result<()> {
    let st = substrate::status();
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    if st.is_empty() {
        println!("nothing of vlsp is up");
    }
    for s in st {
        let ok = s.namespaces.iter().filter(|n| n.1).count();
        println!(
            "{}: {ok}/{} namespaces present, {} API sockets",
            s.topology,
            s.namespaces.len(),
            s.api_sockets.len()
        );
        for (n, present) in &s.namespaces {
            println!("  {n} {}", if *present { "up" } else { "MISSING" });
        }
        for (pid, alive) in &s.guests {
            println!(
                "  QEMU guest pid {pid} {}",
                if *alive { "running" } else { "GONE" }
            );
        }
        if let Some(a) = &s.accel {
            println!("  QEMU accelerator: {a}");
        }
    }
    Ok(())
}

fn link(cmd: LinkCmd) -> Result<()> {
    match cmd {
        LinkCmd::Setup {
            topology,
            from,
            to,
            rate,
            no_auth,
            bidirectional,
        } => {
            let rate = crate::model::units::parse_rate(&rate).map_err(anyhow::Error::msg)?;
            let t0 = std::time::Instant::now();
            let l = testbed::link_setup(&topology, &from, &to, rate, !no_auth, bidirectional)?;
            println!(
                "virtual link {} {} -> {} up ({} bit/s reserved, {} via {}) in {:.3} ms",
                l.vlink_id,
                l.from,
                l.to,
                l.rate_bps,
                l.tunnel,
                l.backend,
                t0.elapsed().as_secs_f64() * 1e3
            );
            Ok(())
        }
        LinkCmd::Teardown { topology, from, id } => {
            let t = resolve(&topology)?;
            let host = t
                .vnodes
                .iter()
                .find(|v| v.name == from)
                .map(|v| v.host.clone())
                .with_context(|| format!("no virtual node {from} in {}", t.name))?;
            let mut c = Client::connect(
                &crate::node::api::socket_path(&t.name, &host),
                Duration::from_secs(60),
            )?;
            match c.call(&Request::Teardown { vlink_id: id })? {
                Reply::LinkDown { vlink_id } => println!("virtual link {vlink_id} removed"),
                Reply::Error { reason, message } => bail!("teardown refused ({reason}): {message}"),
                r => bail!("unexpected reply {r:?}"),
            }
            Ok(())
        }
        LinkCmd::List { topology, node } => {
            let t = resolve(&topology)?;
            let nodes: Vec<String> = match node {
                Some(n) => vec![n],
                None => t
                    .nodes
                    .iter()
                    .filter(|n| n.nsis)
                    .map(|n| n.name.clone())
                    .collect(),
            };
            for n in nodes {
                let mut c = Client::connect(
                    &crate::node::api::socket_path(&t.name, &n),
                    Duration::from_secs(10),
                )?;
                if let Reply::Links { links } = c.call(&Request::List)? {
                    for l in links {
                        println!(
                            "{n}: link {} {} -> {} {} bit/s {} session {}",
                            l.vlink_id, l.from, l.to, l.rate_bps, l.state, l.session
                        );
                    }
                }
            }
            Ok(())
        }
        LinkCmd::Stats { topology, node } => {
            let t = resolve(&topology)?;
            let mut c = Client::connect(
                &crate::node::api::socket_path(&t.name, &node),
                Duration::from_secs(10),
            )?;
            if let Reply::Stats { stats } = c.call(&Request::Stats)? {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            }
            Ok(())
        }
    }
}
