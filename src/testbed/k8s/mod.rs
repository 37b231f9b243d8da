//! A topology as Kubernetes objects for a cluster with meshnet-cni (as KNE
//! and clabernetes run emulated routers): one pod per router and per
//! virtual node, each router's node configuration in a ConfigMap, each
//! provider's key in a Secret, and per pod a meshnet `Topology` resource
//! whose links meshnet turns into veth pairs (same k8s node) or VXLAN
//! (across k8s nodes). [`render`] is pure; [`manifest`] turns its result
//! into YAML files; [`init`] is what a pod's init container runs.
//!
//! Names inside a pod: the cluster network takes `eth0`, so a router's
//! topology interfaces `eth0, eth1, ..` become `eth1, eth2, ..` (the node
//! finds them by address anyway); a virtual node's interface keeps its
//! host-side name (`vn0`, `vn0v1`) in the router's pod, where the init
//! container puts it into its bridge (`br0`, ..), and is `eth1, ..` in the
//! virtual node's own pod.

pub mod init;
pub mod manifest;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::node::nodefile::{NodeFile, RouteEntry};
use crate::topology::Topology;
pub use init::{BridgePort, InitPlan, ShapedLink};

/// Where the pods find their files and the node's API socket.
/// Not /etc/vlsp itself: the key Secrets mount below /etc/vlsp/keys, and a
/// mount point cannot be made inside a read-only ConfigMap volume.
pub const CONFIG_DIR: &str = "/etc/vlsp/config";
pub const KEY_DIR: &str = "/etc/vlsp/keys";
pub const API_SOCKET: &str = "/run/vlsp/api.sock";
/// The key file's name inside a provider's Secret.
pub const KEY_FILE: &str = "key";

/// Why a topology cannot be rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error(
        "router {0:?} is `external` (an NSIS daemon that is not vlsp's): no image runs it in a pod; make it a vlsp router or leave it out"
    )]
    External(String),
    #[error(
        "virtual node {0:?} is a QEMU guest: render it as a namespace virtual node (drop `kind = \"qemu\"`), QEMU in pods is not supported"
    )]
    Qemu(String),
    #[error(
        "{kind} {name:?} gives the Kubernetes name {dns:?}, which {why}: rename the {kind} (lowercase letters, digits, '-')"
    )]
    Name {
        kind: &'static str,
        name: String,
        dns: String,
        why: String,
    },
    #[error("router {node:?}: {message}")]
    Node { node: String, message: String },
    #[error(
        "link uids {first}..{last} leave meshnet's VXLAN VNI range (5000 + uid must stay below 2^24): lower --uid-base"
    )]
    Uids { first: u64, last: u64 },
}

/// How to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// The container image holding `vlsp` (the repository's Containerfile).
    pub image: String,
    /// Namespace of every object [default: `vlsp-<topology>`].
    pub namespace: Option<String>,
    /// The first link's uid. meshnet's inter-host VXLAN VNI is 5000 + uid
    /// on the k8s nodes, so two topologies in one cluster need disjoint uids.
    pub uid_base: u32,
    /// Log filter for the nodes (`VLSP_LOG`).
    pub log: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            image: "vlsp:latest".into(),
            namespace: None,
            uid_base: 1,
            log: "info".into(),
        }
    }
}

/// One end of a meshnet link, as meshnet's `Topology` CRD names its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshnetLink {
    /// The same at both ends, unique per link.
    pub uid: u32,
    pub peer_pod: String,
    pub local_intf: String,
    pub peer_intf: String,
    /// CIDR (`10.20.0.1/24`); empty for a bridge port (no address).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
}

/// A pod's meshnet `Topology` resource: its name is the pod's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshnetTopology {
    pub name: String,
    pub links: Vec<MeshnetLink>,
}

/// A router's pod and what goes with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedRouter {
    /// The router's name in the topology.
    pub name: String,
    /// Its pod's (and Topology resource's) name.
    pub pod: String,
    /// False for a plain router (`nsis = false`): it forwards, runs no node.
    pub nsis: bool,
    /// ConfigMap key `node.toml` (empty for a plain router); no key in it.
    pub node_config_toml: String,
    /// ConfigMap key `init.toml`: what the init container does.
    pub init: InitPlan,
    /// (provider, file name, contents): the key files the pod mounts from
    /// the providers' Secrets (at their `mount`).
    pub secret_files: Vec<(String, String, String)>,
    /// The main container's command line (empty for a plain router).
    pub node_args: Vec<String>,
    pub topology: MeshnetTopology,
}

/// A virtual node's pod: an interface per virtual interface, each linked
/// to its host router's pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedVnode {
    pub name: String,
    pub pod: String,
    /// The host router's name in the topology.
    pub host: String,
    pub init: InitPlan,
    pub topology: MeshnetTopology,
}

/// A provider's Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedSecret {
    pub provider: String,
    /// The Secret's name (and its volume's in a pod).
    pub name: String,
    /// Where a pod mounts it.
    pub mount: String,
    /// File name -> contents (`hex:...`).
    pub files: BTreeMap<String, String>,
}

/// Everything [`render`] makes of a topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub topology: String,
    pub namespace: String,
    pub image: String,
    pub log: String,
    pub secrets: Vec<RenderedSecret>,
    pub routers: Vec<RenderedRouter>,
    pub vnodes: Vec<RenderedVnode>,
}

impl Rendered {
    pub fn router(&self, name: &str) -> Option<&RenderedRouter> {
        self.routers.iter().find(|r| r.name == name)
    }

    pub fn vnode(&self, name: &str) -> Option<&RenderedVnode> {
        self.vnodes.iter().find(|v| v.name == name)
    }
}

/// A DNS-1123 label for `name`: lowercase, '_' as '-'.
fn dns_label(kind: &'static str, name: &str) -> Result<String, RenderError> {
    let dns: String = name
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let bad = |why: &str| RenderError::Name {
        kind,
        name: name.into(),
        dns: dns.clone(),
        why: why.into(),
    };
    if dns.is_empty() || dns.len() > 63 {
        return Err(bad("is not 1-63 characters long"));
    }
    if !dns
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err(bad("holds a character other than a-z, 0-9 and '-'"));
    }
    if !dns.as_bytes()[0].is_ascii_alphanumeric()
        || !dns.as_bytes()[dns.len() - 1].is_ascii_alphanumeric()
    {
        return Err(bad("does not start and end with a letter or digit"));
    }
    Ok(dns)
}

/// A router's topology interface `ethN` is `eth(N+1)` in its pod.
pub fn pod_ifname(topology_ifname: &str) -> String {
    match topology_ifname
        .strip_prefix("eth")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some(n) => format!("eth{}", n + 1),
        None => topology_ifname.to_string(),
    }
}

/// The Secret of provider `p`.
pub fn secret_name(provider_dns: &str) -> String {
    format!("vlsp-key-{provider_dns}")
}

/// The key as a key file holds it: `hex:` and its bytes, whatever they are.
fn key_text(key: &[u8]) -> String {
    let mut s = String::from("hex:");
    for b in key {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Renders `topo` for a cluster with meshnet-cni.
pub fn render(topo: &Topology, opts: &RenderOptions) -> Result<Rendered, RenderError> {
    for n in &topo.nodes {
        if n.external {
            return Err(RenderError::External(n.name.clone()));
        }
    }
    for v in &topo.vnodes {
        if v.qemu.is_some() {
            return Err(RenderError::Qemu(v.name.clone()));
        }
    }
    // Pod names, unique after lowercasing.
    let mut pods: HashMap<String, String> = HashMap::new();
    let mut taken: HashMap<String, String> = HashMap::new();
    let names = topo
        .nodes
        .iter()
        .map(|n| ("router", &n.name))
        .chain(topo.vnodes.iter().map(|v| ("virtual node", &v.name)));
    for (kind, name) in names {
        let dns = dns_label(kind, name)?;
        if let Some(other) = taken.insert(dns.clone(), name.clone()) {
            return Err(RenderError::Name {
                kind,
                name: name.clone(),
                dns,
                why: format!("is also {other:?}'s"),
            });
        }
        pods.insert(name.clone(), dns);
    }
    let namespace = match &opts.namespace {
        Some(ns) => dns_label("namespace", ns)?,
        None => format!("vlsp-{}", topo.name),
    };
    let mut secrets = Vec::new();
    for p in &topo.providers {
        let dns = dns_label("provider", &p.name)?;
        secrets.push(RenderedSecret {
            provider: p.name.clone(),
            name: secret_name(&dns),
            mount: format!("{KEY_DIR}/{dns}"),
            files: BTreeMap::from([(KEY_FILE.to_string(), key_text(&p.key))]),
        });
    }

    // Links: substrate links first, then each virtual interface's link to
    // its host; uids in that order from uid_base.
    let mut links: HashMap<String, Vec<MeshnetLink>> = HashMap::new();
    let mut uid = u64::from(opts.uid_base);
    let mut push = |a: &str, b: &str, mut la: MeshnetLink, uid: u32| {
        la.uid = uid;
        let lb = MeshnetLink {
            uid,
            peer_pod: pods[a].clone(),
            local_intf: la.peer_intf.clone(),
            peer_intf: la.local_intf.clone(),
            local_ip: la.peer_ip.clone(),
            peer_ip: la.local_ip.clone(),
        };
        links.entry(a.to_string()).or_default().push(la);
        links.entry(b.to_string()).or_default().push(lb);
    };
    let count = topo.links.len()
        + topo
            .vnodes
            .iter()
            .map(|v| v.interfaces.len())
            .sum::<usize>();
    let last = uid + count as u64;
    if 5000 + last >= 1 << 24 {
        return Err(RenderError::Uids { first: uid, last });
    }
    for l in &topo.links {
        let (a, b) = (&l.a, &l.b);
        let la = MeshnetLink {
            uid: 0,
            peer_pod: pods[&b.node].clone(),
            local_intf: pod_ifname(&a.ifname),
            peer_intf: pod_ifname(&b.ifname),
            local_ip: format!("{}/{}", a.addr, a.prefix_len),
            peer_ip: format!("{}/{}", b.addr, b.prefix_len),
        };
        push(&a.node, &b.node, la, uid as u32);
        uid += 1;
    }
    for v in &topo.vnodes {
        for i in &v.interfaces {
            let la = MeshnetLink {
                uid: 0,
                peer_pod: pods[&v.name].clone(),
                local_intf: i.host_ifname.clone(),
                peer_intf: pod_ifname(&i.ifname),
                local_ip: String::new(),
                peer_ip: format!("{}/{}", i.addr, i.prefix_len),
            };
            push(&v.host, &v.name, la, uid as u32);
            uid += 1;
        }
    }
    let mut links_of = |name: &str| MeshnetTopology {
        name: pods[name].clone(),
        links: links.remove(name).unwrap_or_default(),
    };

    let mut routers = Vec::new();
    for n in &topo.nodes {
        let topology = links_of(&n.name);
        let mut init = InitPlan {
            pod: pods[&n.name].clone(),
            wait: topology
                .links
                .iter()
                .map(|l| l.local_intf.clone())
                .collect(),
            forward: true,
            bridge: vec![],
            shape: vec![],
            route: vec![],
        };
        for v in topo.vnodes_on(&n.name) {
            for i in &v.interfaces {
                init.bridge.push(BridgePort {
                    bridge: i.bridge.clone(),
                    port: i.host_ifname.clone(),
                });
            }
        }
        for (me, _, capacity) in topo.links_of(&n.name) {
            init.shape.push(ShapedLink {
                ifname: pod_ifname(&me.ifname),
                capacity_bps: capacity,
            });
        }
        init.route = topo
            .routes(&n.name)
            .into_iter()
            .map(|r| RouteEntry {
                dest: r.dest,
                prefix_len: r.prefix_len,
                via: r.via,
                ifname: pod_ifname(&r.ifname),
            })
            .collect();
        let mut r = RenderedRouter {
            name: n.name.clone(),
            pod: pods[&n.name].clone(),
            nsis: n.runs_vlsp(),
            node_config_toml: String::new(),
            init,
            secret_files: vec![],
            node_args: vec![],
            topology,
        };
        if r.nsis {
            let (mut file, _keys) =
                NodeFile::from_topology(topo, &n.name).map_err(|e| RenderError::Node {
                    node: n.name.clone(),
                    message: format!("{e:#}"),
                })?;
            for l in &mut file.link {
                l.ifname = pod_ifname(&l.ifname);
            }
            for rt in &mut file.route {
                rt.ifname = pod_ifname(&rt.ifname);
            }
            r.node_config_toml = file.to_toml();
            r.node_args = vec![
                "vlsp".into(),
                "node".into(),
                "--config".into(),
                format!("{CONFIG_DIR}/node.toml"),
                "--api".into(),
                API_SOCKET.into(),
            ];
            for p in &file.provider {
                let s = secrets
                    .iter()
                    .find(|s| s.provider == p.name)
                    .expect("every provider of a node file is the topology's");
                r.secret_files
                    .push((p.name.clone(), KEY_FILE.into(), s.files[KEY_FILE].clone()));
                r.node_args.push("--key-file".into());
                r.node_args
                    .push(format!("{}={}/{KEY_FILE}", p.name, s.mount));
            }
        }
        routers.push(r);
    }
    let vnodes = topo
        .vnodes
        .iter()
        .map(|v| {
            let topology = links_of(&v.name);
            RenderedVnode {
                name: v.name.clone(),
                pod: pods[&v.name].clone(),
                host: v.host.clone(),
                init: InitPlan {
                    pod: pods[&v.name].clone(),
                    wait: topology
                        .links
                        .iter()
                        .map(|l| l.local_intf.clone())
                        .collect(),
                    ..InitPlan::default()
                },
                topology,
            }
        })
        .collect();
    Ok(Rendered {
        topology: topo.name.clone(),
        namespace,
        image: opts.image.clone(),
        log: opts.log.clone(),
        secrets,
        routers,
        vnodes,
    })
}

#[cfg(test)]
mod tests;
