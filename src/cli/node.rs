//! `vlsp node`: one router's NSIS node as a process of its own, in the
//! namespace it is started in (a host, a pod, `ip netns exec`). Same node
//! core as the testbed; its configuration comes from a topology file or
//! from a node file (`--print-config` writes one), its keys from key files
//! or the environment, never from the command line.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::out;
use crate::model::measure::Recorder;
use crate::node::api::{Client, Reply, Request};
use crate::node::nodefile::{KeySources, NodeFile};
use crate::topology::Topology;

#[derive(Args)]
pub(super) struct NodeArgs {
    /// Topology file holding this router (with --name).
    #[arg(long, requires = "name", conflicts_with = "config")]
    topology: Option<PathBuf>,
    /// The router of the topology to run.
    #[arg(long)]
    name: Option<String>,
    /// The node's own configuration file (as --print-config writes it).
    #[arg(long, required_unless_present_any = ["topology", "action"])]
    config: Option<PathBuf>,
    /// `health`: ask a running node (at --api, or the default socket of
    /// --name) whether it can signal; exit 0 when it can, 1 with the reason
    /// when it cannot. What a Kubernetes readiness probe runs.
    #[arg(value_enum, conflicts_with_all = ["topology", "config", "print_config"])]
    action: Option<Action>,
    /// Record this many measurement points in memory (taken with the API's
    /// `dump_points`; what `vlsp run` sets for nodes run as processes).
    #[arg(long, default_value = "0", hide = true)]
    points: usize,
    /// Write the node's configuration (without keys) to stdout and exit.
    #[arg(long)]
    print_config: bool,
    /// API socket path [default: /run/vlsp-node/NAME/api.sock].
    #[arg(long)]
    api: Option<PathBuf>,
    /// Written (empty) once the node's sockets are bound; removed at exit.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// A provider's key: PROVIDER=PATH (the file holds the key as text or
    /// "hex:..."). Also VLSP_KEY_<PROVIDER> in the environment.
    #[arg(long, value_name = "PROVIDER=PATH")]
    key_file: Vec<String>,
    /// Folder for tunnel backend scripts [default: /run/vlsp-node/NAME/scripts].
    #[arg(long)]
    script_dir: Option<PathBuf>,
    /// Admission control only: do not install reservations as HTB classes.
    #[arg(long)]
    no_qos: bool,
    /// On SIGTERM/SIGINT, how long tearing the node's links down may take.
    #[arg(long, default_value = "5", value_name = "SECONDS")]
    teardown_wait: u64,
}

/// What `vlsp node ACTION` does instead of running a node.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Action {
    /// Ask the running node's `health` op (a readiness probe).
    Health,
}

/// (name, IPv4 address) of every interface of the current namespace.
fn interfaces() -> Result<Vec<(String, Ipv4Addr)>> {
    let mut v = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().context("cannot list this namespace's interfaces")? {
        let addr = ifa
            .address
            .and_then(|a| a.as_sockaddr_in().map(|s| s.ip()))
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        v.push((ifa.interface_name, addr));
    }
    Ok(v)
}

fn load(a: &NodeArgs) -> Result<(NodeFile, String, PathBuf, KeySources)> {
    let mut keys = KeySources::from_args_and_env(&a.key_file).map_err(anyhow::Error::msg)?;
    match (&a.topology, &a.config) {
        (Some(t), _) => {
            let name = a.name.as_deref().expect("clap requires --name");
            let topo = Topology::load(t)?;
            let (file, inline) = NodeFile::from_topology(&topo, name)?;
            keys.inline = inline;
            Ok((file, t.display().to_string(), PathBuf::from("."), keys))
        }
        (None, Some(c)) => {
            let file = NodeFile::load(c)?;
            if let Some(n) = &a.name
                && *n != file.node.name
            {
                bail!(
                    "{}: configures node {:?}, not {n:?}: drop --name or pick that node's file",
                    c.display(),
                    file.node.name
                );
            }
            let base = c.parent().unwrap_or(Path::new(".")).to_path_buf();
            Ok((file, c.display().to_string(), base, keys))
        }
        (None, None) => bail!("give --topology FILE --name ROUTER or --config NODE.toml"),
    }
}

/// The default API socket of node `name`.
fn default_api(name: &str) -> PathBuf {
    PathBuf::from("/run/vlsp-node").join(name).join("api.sock")
}

/// `vlsp node health`: one `health` call, its answer on stdout.
fn check_health(a: &NodeArgs) -> Result<()> {
    let api = match (&a.api, &a.name) {
        (Some(p), _) => p.clone(),
        (None, Some(n)) => default_api(n),
        (None, None) => bail!("`vlsp node health` needs --api PATH (or --name NODE)"),
    };
    let mut c = Client::connect(&api, Duration::from_secs(2))?;
    let health = match c.call(&Request::Health)? {
        Reply::Health { health } => health,
        Reply::Error { reason, message } => {
            bail!(
                "{}: health refused ({reason}): {message}; is the node older than this vlsp?",
                api.display()
            )
        }
        other => bail!("{}: unexpected reply {other:?}", api.display()),
    };
    let problems = health.problems();
    if !problems.is_empty() {
        bail!("unhealthy: {}", problems.join("; "));
    }
    out!(
        "node={} healthy version={} uptime_s={:.1} gist_udp={} ma_listener={} sessions={} links={}",
        health.node,
        health.version,
        health.uptime_s,
        health.gist_udp.as_deref().unwrap_or("-"),
        health.ma_listener.as_deref().unwrap_or("-"),
        health.sessions,
        health.links
    );
    Ok(())
}

pub(super) fn node(a: NodeArgs) -> Result<()> {
    if let Some(Action::Health) = a.action {
        return check_health(&a);
    }
    let (file, src, base, keys) = load(&a)?;
    if a.print_config {
        out!("{}", file.to_toml());
        return Ok(());
    }
    let name = file.node.name.clone();
    let dir = PathBuf::from("/run/vlsp-node").join(&name);
    let api = a.api.clone().unwrap_or_else(|| default_api(&name));
    let scripts = a.script_dir.clone().unwrap_or_else(|| dir.join("scripts"));
    let mut cfg = file.resolve(&src, &base, &keys, &interfaces()?, api.clone(), scripts)?;
    if a.no_qos {
        cfg.qos_enforce = false;
    }
    let rec = if a.points > 0 {
        Recorder::new(&name, a.points)
    } else {
        Recorder::disabled(&name)
    };
    let handle =
        crate::node::spawn_node(cfg, rec).with_context(|| format!("node {name} did not start"))?;
    if let Some(r) = &a.ready_file {
        std::fs::write(r, "")
            .with_context(|| format!("cannot write ready file {}", r.display()))?;
    }
    log(&name, "ready", &format!("API socket {}", api.display()));
    log_events(&name, &api);
    crate::testbed::daemon::wait_for_stop_signal()?;
    log(&name, "stopping", "tearing its virtual links down");
    let left = tear_down(&api, Duration::from_secs(a.teardown_wait));
    handle.stop();
    let _ = std::fs::remove_file(&api);
    if let Some(r) = &a.ready_file {
        let _ = std::fs::remove_file(r);
    }
    match left {
        Ok(0) => log(&name, "stopped", "all its links torn down"),
        Ok(n) => log(
            &name,
            "stopped",
            &format!("{n} link(s) not torn down in time"),
        ),
        Err(e) => log(&name, "stopped", &format!("teardown failed: {e:#}")),
    }
    Ok(())
}

/// One line per event on stderr: plain `key=value` words, no colours, so
/// journalctl and kubectl logs show it as it is.
fn log(node: &str, event: &str, message: &str) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr().lock(),
        "node={node} event={event} {message}"
    );
}

/// Follows the node's own event stream and logs each event.
fn log_events(name: &str, api: &Path) {
    let (name, api) = (name.to_string(), api.to_path_buf());
    let _ = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            let Ok(mut c) = Client::connect(&api, Duration::from_secs(u32::MAX as u64)) else {
                return;
            };
            if c.call(&Request::Events).is_err() {
                return;
            }
            while let Ok(ev) = c.next_event() {
                let kind = serde_json::to_value(ev.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{:?}", ev.kind));
                let link = ev
                    .vlink_id
                    .map(|i| format!("vlink={} ", crate::node::api::link_id_hex(i)))
                    .unwrap_or_default();
                log(&name, &kind, &format!("{link}{}", ev.message));
            }
        });
}

/// Tears down every link this node initiated (TEAR to the path), within
/// `budget`; the number left.
fn tear_down(api: &Path, budget: Duration) -> Result<usize> {
    let t0 = Instant::now();
    let mut c = Client::connect(api, budget)?;
    let Reply::Links { links } = c.call(&Request::List)? else {
        bail!("the node did not list its links");
    };
    let mut left = links.len();
    for l in links {
        if t0.elapsed() >= budget {
            break;
        }
        match c.call(&Request::Teardown {
            vlink_id: l.vlink_id,
        }) {
            Ok(Reply::LinkDown { .. }) => left -= 1,
            // Links this node does not own (it is a hop or the responder)
            // go with the initiator's TEAR or their lifetime.
            Ok(Reply::Error { .. }) => left -= 1,
            Ok(_) | Err(_) => {}
        }
    }
    Ok(left)
}

#[derive(Args)]
pub(super) struct NodeGroupArgs {
    /// The saved topology of a running testbed (its run directory's).
    #[arg(long)]
    topology: PathBuf,
    /// File naming the routers to host, one a line.
    #[arg(long)]
    nodes: PathBuf,
    /// Written (`ready N`) once every node's API socket listens; removed
    /// at exit.
    #[arg(long)]
    ready_file: PathBuf,
    /// Admission control only: do not install reservations as HTB classes.
    #[arg(long)]
    no_qos: bool,
    /// Record this many measurement points per node in memory.
    #[arg(long, default_value = "0")]
    points: usize,
}

/// `vlsp node-group`: many routers' nodes in one process (what `vlsp up`
/// starts for big topologies); SIGTERM stops them.
pub(super) fn node_group(a: NodeGroupArgs) -> Result<()> {
    let opts = crate::testbed::Options {
        no_qos: a.no_qos,
        points: a.points,
        ..Default::default()
    };
    crate::testbed::groups::serve(&a.topology, &a.nodes, &a.ready_file, &opts)
}
