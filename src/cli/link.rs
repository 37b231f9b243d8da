//! `vlsp link ...`: virtual links through the nodes' API sockets.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::out;
use crate::model::paths::RunDir;
use crate::model::tunnel::TunnelKind;
use crate::model::units::Rate;
use crate::node::api::{
    Client, LinkIdError, LinkInfo, Reply, Request, link_id_hex, link_id_short, match_link_id,
};
use crate::testbed::{self, resolve};
use crate::topology::Topology;

#[derive(Subcommand)]
pub(super) enum LinkCmd {
    /// Set up a virtual link with a QoS reservation.
    #[command(alias = "up")]
    Setup {
        /// Topology name (or file).
        #[arg(long, required_unless_present = "api")]
        topology: Option<String>,
        /// The initiator's API socket instead of --topology (inside a pod,
        /// or for a `vlsp node` started by hand).
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
        /// Print the link as JSON (its "id" is the full hex id).
        #[arg(long)]
        json: bool,
    },
    /// Tear a virtual link down, by its id alone: the node that set it up
    /// is found by asking every router of the topology.
    #[command(alias = "down")]
    Teardown {
        /// Link id as `vlsp link list` shows it: a unique prefix of its
        /// hex id (4 digits or more), or the whole id.
        #[arg(required_unless_present = "id_flag")]
        id: Option<String>,
        /// Topology name (or file) [default: the one topology that is up].
        #[arg(long)]
        topology: Option<String>,
        /// The initiator's API socket instead of --topology.
        #[arg(long, conflicts_with = "topology")]
        api: Option<PathBuf>,
        /// The virtual node the link was set up from (default: found
        /// from the id).
        #[arg(long)]
        from: Option<String>,
        /// The id as a flag (older spelling).
        #[arg(long = "id", value_name = "ID", conflicts_with = "id", hide = true)]
        id_flag: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Virtual links known to a node.
    #[command(alias = "ls")]
    List {
        /// Topology name (or file) [default: the one topology that is up].
        #[arg(long)]
        topology: Option<String>,
        /// Router (default: all NSIS routers).
        #[arg(long)]
        node: Option<String>,
        /// One JSON array of links, each with its router ("node") and
        /// full hex id ("id").
        #[arg(long)]
        json: bool,
    },
    /// Counters of a node (messages, refusals by reason).
    Stats {
        /// Topology name (or file) [default: the one topology that is up].
        #[arg(long)]
        topology: Option<String>,
        /// Router.
        #[arg(long)]
        node: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
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
            json,
        } => {
            let t0 = Instant::now();
            let l = match api {
                Some(p) => setup_at(&p, &from, &to, rate, !no_auth, bidirectional, tunnel)?,
                None => {
                    let topology = topology.expect("clap requires --topology without --api");
                    setup(&topology, &from, &to, rate, !no_auth, bidirectional, tunnel)?
                }
            };
            if json {
                out!("{}", link_json(&l, None));
                return Ok(());
            }
            out!(
                "virtual link {} {}:{} -> {}:{} up ({} reserved, {} via {}) in {:.3} ms",
                link_id_short(l.vlink_id),
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
        LinkCmd::Teardown {
            id,
            topology,
            api,
            from,
            id_flag,
            json,
        } => {
            let id = id.or(id_flag).expect("clap requires an id");
            let (vlink_id, node) = match api {
                Some(p) => teardown_at(&p, &id)?,
                None => teardown(&topology_or_only(topology)?, from.as_deref(), &id)?,
            };
            if json {
                let v = serde_json::json!({
                    "id": link_id_hex(vlink_id),
                    "vlink_id": vlink_id,
                    "node": node,
                    "removed": true,
                });
                out!("{v}");
            } else {
                out!(
                    "virtual link {} removed (by {node})",
                    link_id_short(vlink_id)
                );
            }
            Ok(())
        }
        LinkCmd::List {
            topology,
            node,
            json,
        } => list(&topology_or_only(topology)?, node, json),
        LinkCmd::Stats {
            topology,
            node,
            json,
        } => stats(&topology_or_only(topology)?, &node, json),
    }
}

/// The topology named, or the only one that is up.
fn topology_or_only(named: Option<String>) -> Result<String> {
    if let Some(t) = named {
        return Ok(t);
    }
    let up = crate::testbed::daemon::journaled();
    match up.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!("no topology is up: start one with `vlsp up FILE`, or name it with --topology"),
        many => bail!(
            "{} topologies are up ({}): name one with --topology",
            many.len(),
            many.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A link as JSON: the API's fields, its full hex "id" and, from a
/// listing, the router that reported it.
fn link_json(l: &LinkInfo, node: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::to_value(l).expect("a link serializes");
    v["id"] = link_id_hex(l.vlink_id).into();
    if let Some(n) = node {
        v["node"] = n.into();
    }
    v
}

fn setup(
    topology: &str,
    from: &str,
    to: &str,
    rate: Rate,
    auth: bool,
    bidi: bool,
    tunnel: Option<TunnelKind>,
) -> Result<LinkInfo> {
    match tunnel {
        None => Ok(testbed::link_setup(topology, from, to, rate, auth, bidi)?),
        // A tunnel type is the API's to pass on: ask the host's socket.
        Some(kind) => {
            let (t, host) = host_of(topology, from)?;
            let api = RunDir::new(&t.topo_name()).api_socket(&host);
            setup_at(&api, from, to, rate, auth, bidi, Some(kind))
        }
    }
}

/// Sets a link up through the API socket at `api` (no topology file).
fn setup_at(
    api: &Path,
    from: &str,
    to: &str,
    rate: Rate,
    auth: bool,
    bidi: bool,
    tunnel: Option<TunnelKind>,
) -> Result<LinkInfo> {
    let mut c = api_client(api)?;
    match c.call(&Request::Setup {
        from: from.into(),
        to: to.into(),
        rate_bps: rate,
        bidirectional: bidi,
        backend: None,
        authenticate: auth,
        tunnel,
    })? {
        Reply::LinkUp { vlink } => Ok(vlink),
        Reply::Error { reason, message } => bail!("setup refused ({reason}): {message}"),
        r => bail!("unexpected reply {r:?}"),
    }
}

/// Tears down, through the API socket at `api`, the link of that node
/// `typed` names.
fn teardown_at(api: &Path, typed: &str) -> Result<(u64, String)> {
    if let Err(e @ LinkIdError::Syntax(_)) = match_link_id(typed, []) {
        return Err(e.into());
    }
    let mut c = api_client(api)?;
    let Reply::Links { links } = c.call(&Request::List)? else {
        bail!("{} did not list its links", api.display());
    };
    let id = match_link_id(typed, links.iter().map(|l| l.vlink_id))?;
    match c.call(&Request::Teardown { vlink_id: id })? {
        Reply::LinkDown { vlink_id } => Ok((vlink_id, api.display().to_string())),
        Reply::Error { reason, message } => bail!("teardown refused ({reason}): {message}"),
        r => bail!("unexpected reply {r:?}"),
    }
}

fn api_client(api: &Path) -> Result<Client> {
    Client::connect(api, Duration::from_secs(60))
        .with_context(|| format!("API socket {}: is the node running?", api.display()))
}

/// A client of router `node`'s API socket in topology `run`.
fn client(run: &RunDir, node: &str, timeout: Duration) -> Result<Client> {
    let sock = run.api_socket(node);
    Client::connect(&sock, timeout).with_context(|| format!("API of {node} ({})", sock.display()))
}

/// The topology and the router hosting virtual node `from` (`VM1` or `VM1:2`).
fn host_of(topology: &str, from: &str) -> Result<(Topology, String)> {
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

/// Every link each NSIS router of `t` knows (or only `node`'s).
fn links_of(t: &Topology, node: Option<String>) -> Result<Vec<(String, LinkInfo)>> {
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
    let mut all = Vec::new();
    for n in nodes {
        let mut c = client(&run, &n, Duration::from_secs(10))?;
        if let Reply::Links { links } = c.call(&Request::List)? {
            all.extend(links.into_iter().map(|l| (n.clone(), l)));
        }
    }
    Ok(all)
}

/// The router that set link `l` up: the host of its `from` virtual node.
fn initiator(t: &Topology, l: &LinkInfo) -> Result<String> {
    t.vnodes
        .iter()
        .find(|v| v.name == l.from)
        .map(|v| v.host.clone())
        .with_context(|| {
            format!(
                "link {} starts at {:?}, which is no virtual node of {}: tear it down with --from",
                link_id_short(l.vlink_id),
                l.from,
                t.name
            )
        })
}

/// Tears down the link `typed` names; its full id and the router that
/// tore it down.
fn teardown(topology: &str, from: Option<&str>, typed: &str) -> Result<(u64, String)> {
    // A malformed id is refused before any node is asked.
    if let Err(e @ LinkIdError::Syntax(_)) = match_link_id(typed, []) {
        return Err(e.into());
    }
    let t = resolve(topology)?;
    let host = match from {
        Some(f) => Some(host_of(topology, f)?.1),
        None => None,
    };
    let links = links_of(&t, host.clone())?;
    let id = match_link_id(typed, links.iter().map(|(_, l)| l.vlink_id))?;
    let host = match host {
        Some(h) => h,
        None => {
            let l = links
                .iter()
                .map(|(_, l)| l)
                .find(|l| l.vlink_id == id)
                .expect("matched among these");
            initiator(&t, l)?
        }
    };
    let mut c = client(&RunDir::new(&t.topo_name()), &host, Duration::from_secs(60))?;
    match c.call(&Request::Teardown { vlink_id: id })? {
        Reply::LinkDown { vlink_id } => Ok((vlink_id, host)),
        Reply::Error { reason, message } => {
            bail!("teardown refused by {host} ({reason}): {message}")
        }
        r => bail!("unexpected reply {r:?}"),
    }
}

fn list(topology: &str, node: Option<String>, json: bool) -> Result<()> {
    let t = resolve(topology)?;
    let links = links_of(&t, node)?;
    if json {
        let v: Vec<_> = links.iter().map(|(n, l)| link_json(l, Some(n))).collect();
        out!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    for (n, l) in links {
        out!(
            "{n}: link {} {}:{} -> {}:{} {} {} {} session {}",
            link_id_short(l.vlink_id),
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
    Ok(())
}

fn stats(topology: &str, node: &str, json: bool) -> Result<()> {
    let t = resolve(topology)?;
    let mut c = client(&RunDir::new(&t.topo_name()), node, Duration::from_secs(10))?;
    let Reply::Stats { stats } = c.call(&Request::Stats)? else {
        bail!("{node} did not answer with its counters");
    };
    let v = serde_json::to_value(&stats)?;
    if json {
        out!("{v}");
    } else {
        for (k, v) in flatten(&v) {
            out!("{k} {v}");
        }
    }
    Ok(())
}

/// `a.b.c value` lines of a JSON object, for reading and grep.
fn flatten(v: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.into(), s.clone())),
            x => out.push((prefix.into(), x.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
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

    #[test]
    fn stats_flatten_to_dotted_keys() {
        let v = serde_json::json!({"node": "tb1", "nslp": {"sent": 3, "by": {"x": 1}}, "junk": 0});
        let f = flatten(&v);
        assert!(f.contains(&("node".into(), "tb1".into())), "{f:?}");
        assert!(f.contains(&("nslp.by.x".into(), "1".into())), "{f:?}");
        assert!(f.contains(&("junk".into(), "0".into())), "{f:?}");
    }
}
