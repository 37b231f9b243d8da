//! `vlsp link ...`: virtual links through the nodes' API sockets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::out;
use crate::model::paths::RunDir;
use crate::model::tunnel::TunnelKind;
use crate::model::units::Rate;
use crate::node::api::{Client, Reply, Request};
use crate::testbed::{self, resolve};

#[derive(Subcommand)]
pub(super) enum LinkCmd {
    /// Set up a virtual link with a QoS reservation.
    #[command(alias = "up")]
    Setup {
        /// Topology name (or file).
        #[arg(long, required_unless_present = "api")]
        topology: Option<String>,
        /// The initiator's API socket instead of --topology (in its pod:
        /// `kubectl exec POD -- vlsp link setup --api /run/vlsp/api.sock ...`).
        #[arg(long, conflicts_with = "topology")]
        api: Option<PathBuf>,
        /// Virtual node the link starts at, optionally with the interface
        /// it attaches to: VM1 or VM1:2 (default: its first free one).
        #[arg(long)]
        from: String,
        /// Virtual node the link ends at: VM2 or VM2:2.
        #[arg(long)]
        to: String,
        /// Reserved rate, in tc's units: 10mbit, 500kbit (bit/s) or
        /// 125kbps (bytes/s).
        #[arg(long, default_value = "10mbit")]
        rate: Rate,
        /// Send the request unsigned (providers refuse it by default).
        #[arg(long)]
        no_auth: bool,
        /// Also reserve the reverse direction (VM2 -> VM1): the responder
        /// starts a reservation bound with BOUND_SESSION_ID.
        #[arg(long)]
        bidirectional: bool,
        /// Tunnel type the VLSP object asks for (vxlan, gretap, geneve,
        /// gre, ipip; default: the topology's). The responder refuses one
        /// its kernel cannot carry the link over.
        #[arg(long, value_parser = tunnel_kind)]
        tunnel: Option<TunnelKind>,
    },
    /// Tear a virtual link down.
    Teardown {
        /// Topology name (or file).
        #[arg(long, required_unless_present = "api")]
        topology: Option<String>,
        /// The initiator's API socket instead of --topology.
        #[arg(long, conflicts_with = "topology")]
        api: Option<PathBuf>,
        /// The virtual node the link was set up from.
        #[arg(long)]
        from: String,
        /// VLink ID (from `vlsp link list`).
        #[arg(long)]
        id: u64,
    },
    /// Virtual links known to a node.
    List {
        /// Topology name (or file).
        #[arg(long)]
        topology: String,
        /// Router (default: all NSIS routers).
        #[arg(long)]
        node: Option<String>,
    },
    /// Counters of a node (messages, refusals by reason).
    Stats {
        /// Topology name (or file).
        #[arg(long)]
        topology: String,
        /// Router.
        #[arg(long)]
        node: String,
    },
}

/// A tunnel kind as the topology file spells it.
fn tunnel_kind(s: &str) -> Result<TunnelKind, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("unknown tunnel {s:?}: use vxlan, gretap, geneve, gre or ipip"))
}

pub(super) fn link(cmd: LinkCmd) -> Result<()> {
    match cmd {
        LinkCmd::Setup {
            topology,
            api,
            from,
            to,
            rate,
            no_auth,
            bidirectional,
            tunnel,
        } => {
            let at = Target::of(topology, api);
            setup(at, &from, &to, rate, !no_auth, bidirectional, tunnel)
        }
        LinkCmd::Teardown {
            topology,
            api,
            from,
            id,
        } => teardown(Target::of(topology, api), &from, id),
        LinkCmd::List { topology, node } => list(&topology, node),
        LinkCmd::Stats { topology, node } => stats(&topology, &node),
    }
}

/// Where the initiator's node is: a topology's, or an API socket.
enum Target {
    Topology(String),
    Api(PathBuf),
}

impl Target {
    fn of(topology: Option<String>, api: Option<PathBuf>) -> Self {
        match api {
            Some(a) => Self::Api(a),
            None => Self::Topology(topology.expect("clap requires --topology without --api")),
        }
    }
}

fn setup(
    at: Target,
    from: &str,
    to: &str,
    rate: Rate,
    auth: bool,
    bidi: bool,
    tunnel: Option<TunnelKind>,
) -> Result<()> {
    let t0 = Instant::now();
    let l = match (at, tunnel) {
        (Target::Topology(topology), None) => {
            testbed::link_setup(&topology, from, to, rate, auth, bidi)?
        }
        (at, tunnel) => {
            let mut c = target_client(&at, from)?;
            match c.call(&Request::Setup {
                from: from.into(),
                to: to.into(),
                rate_bps: rate,
                bidirectional: bidi,
                backend: None,
                authenticate: auth,
                tunnel,
            })? {
                Reply::LinkUp { vlink } => vlink,
                Reply::Error { reason, message } => bail!("setup refused ({reason}): {message}"),
                r => bail!("unexpected reply {r:?}"),
            }
        }
    };
    out!(
        "virtual link {} {}:{} -> {}:{} up ({} reserved, {} via {}) in {:.3} ms",
        l.vlink_id,
        l.from,
        l.from_vif,
        l.to,
        l.to_vif,
        l.rate_bps,
        l.tunnel,
        l.backend,
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// A client of router `node`'s API socket in topology `run`.
fn client(run: &RunDir, node: &str, timeout: Duration) -> Result<Client> {
    let sock = run.api_socket(node);
    Client::connect(&sock, timeout).with_context(|| format!("API of {node} ({})", sock.display()))
}

/// The topology and the router hosting virtual node `from` (`VM1` or `VM1:2`).
fn host_of(topology: &str, from: &str) -> Result<(crate::topology::Topology, String)> {
    let t = resolve(topology)?;
    let name = from.split(':').next().unwrap_or(from);
    let host = t
        .vnodes
        .iter()
        .find(|v| v.name == name)
        .map(|v| v.host.clone())
        .with_context(|| {
            format!(
                "no virtual node {name} in {}: use a [[vnode]] name of the topology",
                t.name
            )
        })?;
    Ok((t, host))
}

/// A client of the node hosting virtual node `from`.
fn target_client(at: &Target, from: &str) -> Result<Client> {
    match at {
        Target::Api(p) => Client::connect(p, Duration::from_secs(60))
            .with_context(|| format!("API socket {}: is the node running?", p.display())),
        Target::Topology(topology) => {
            let (t, host) = host_of(topology, from)?;
            client(&RunDir::new(&t.topo_name()), &host, Duration::from_secs(60))
        }
    }
}

fn teardown(at: Target, from: &str, id: u64) -> Result<()> {
    let mut c = target_client(&at, from)?;
    match c.call(&Request::Teardown { vlink_id: id })? {
        Reply::LinkDown { vlink_id } => out!("virtual link {vlink_id} removed"),
        Reply::Error { reason, message } => bail!("teardown refused ({reason}): {message}"),
        r => bail!("unexpected reply {r:?}"),
    }
    Ok(())
}

fn list(topology: &str, node: Option<String>) -> Result<()> {
    let t = resolve(topology)?;
    let run = RunDir::new(&t.topo_name());
    let nodes: Vec<String> = match node {
        Some(n) => vec![n],
        None => t
            .nodes
            .iter()
            .filter(|n| n.runs_vlsp())
            .map(|n| n.name.clone())
            .collect(),
    };
    for n in nodes {
        let mut c = client(&run, &n, Duration::from_secs(10))?;
        if let Reply::Links { links } = c.call(&Request::List)? {
            for l in links {
                out!(
                    "{n}: link {} {}:{} -> {}:{} {} {} {} session {}",
                    l.vlink_id,
                    l.from,
                    l.from_vif,
                    l.to,
                    l.to_vif,
                    l.tunnel,
                    l.rate_bps,
                    l.state,
                    l.session
                );
            }
        }
    }
    Ok(())
}

fn stats(topology: &str, node: &str) -> Result<()> {
    let t = resolve(topology)?;
    let mut c = client(&RunDir::new(&t.topo_name()), node, Duration::from_secs(10))?;
    if let Reply::Stats { stats } = c.call(&Request::Stats)? {
        out!("{}", serde_json::to_string_pretty(&stats)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_flag_takes_the_topology_spelling() {
        assert_eq!(tunnel_kind("ipip"), Ok(TunnelKind::Ipip));
        assert_eq!(tunnel_kind("vxlan"), Ok(TunnelKind::Vxlan));
        let e = tunnel_kind("ip-in-ip").unwrap_err();
        assert!(e.contains("ip-in-ip") && e.contains("ipip"), "{e}");
    }
}
