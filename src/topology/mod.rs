//! Topology files: infrastructure providers with their keys, substrate
//! routers and links, virtual networks and virtual nodes. TOML, checked
//! completely before anything is created; every error names
//! `file:line:column` and says what to change.
//!
//! ```toml
//! [topology]
//! name = "paper-4node"          # namespaces are named vlsp-<name>-<node>
//! profile = "rfc"               # or "nsis-ka"
//! backend = "netlink"           # or "script" (tunnel ends by shell scripts, as the paper)
//! tunnel = "vxlan"              # or "gretap", "geneve" (if the kernel has them)
//! refresh_ms = 30000            # QoS NSLP refresh period R
//!
//! [[provider]]                  # an infrastructure provider (InP)
//! name = "kit"
//! key_id = 1
//! key = "12345678901234567890123456789012"
//! transform = "hmac-sha256-128" # or "hmac-sha1-96"
//! entity = "vnp@example.net"    # who signs requests for this provider's links
//! accept = []                   # entities accepted; empty: any holding the key
//! unsigned = "refuse"           # or "accept"
//!
//! [[node]]
//! name = "tb1"
//! provider = "kit"
//! nsis = true                   # false: a plain router that runs no NSIS daemon
//!
//! [[link]]
//! a = "tb1:172.1.2.1/24"
//! b = "tb2:172.1.2.2/24"
//! capacity = "1gbit"            # for admission control and shaping
//!
//! [[vnet]]
//! name = "vnet1"
//! id = 1
//!
//! [[vnode]]
//! name = "VM1"
//! vnet = "vnet1"
//! host = "tb1"
//! id = 1
//! address = "10.10.0.1/24"      # the virtual node's interface
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::model::tunnel::{Backend, TunnelKind};
use crate::wire::auth::Transform;
use crate::wire::profile::Profile;

/// A problem in a topology file, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for TopologyError {}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

// ------------------------------------------------------------ file format

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    topology: Spanned<Header>,
    #[serde(default)]
    provider: Vec<Spanned<ProviderDef>>,
    #[serde(default)]
    node: Vec<Spanned<NodeDef>>,
    #[serde(default)]
    link: Vec<Spanned<LinkDef>>,
    #[serde(default)]
    vnet: Vec<Spanned<VnetDef>>,
    #[serde(default)]
    vnode: Vec<Spanned<VnodeDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    backend: Backend,
    #[serde(default)]
    tunnel: TunnelKind,
    #[serde(default = "default_refresh")]
    refresh_ms: u64,
}

fn default_refresh() -> u64 {
    30_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDef {
    name: Spanned<String>,
    key_id: Option<u32>,
    key: Option<String>,
    #[serde(default)]
    transform: Transform,
    entity: Option<String>,
    #[serde(default)]
    accept: Vec<String>,
    #[serde(default = "default_unsigned")]
    unsigned: String,
}

fn default_unsigned() -> String {
    "refuse".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeDef {
    name: Spanned<String>,
    provider: Option<Spanned<String>>,
    #[serde(default = "yes")]
    nsis: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkDef {
    a: Spanned<String>,
    b: Spanned<String>,
    #[serde(default)]
    capacity: Option<Spanned<String>>,
    #[serde(default)]
    delay: Option<Spanned<String>>,
    #[serde(default)]
    loss: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VnetDef {
    name: Spanned<String>,
    id: Spanned<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VnodeDef {
    name: Spanned<String>,
    vnet: Spanned<String>,
    host: Spanned<String>,
    id: Spanned<toml::Value>,
    #[serde(default = "one")]
    vif_id: u64,
    address: Spanned<String>,
    #[serde(default)]
    kind: VnodeKind,
    /// QEMU guests: memory in MiB.
    #[serde(default = "mem_default")]
    memory_mb: u32,
    /// QEMU guests: virtual CPUs.
    #[serde(default = "one_u32")]
    cpus: u32,
    /// QEMU guests: kernel image (default: /boot/vmlinuz-*-cloud-amd64).
    kernel: Option<Spanned<String>>,
    /// QEMU guests: a disk image to boot instead of kernel + initramfs.
    disk: Option<Spanned<String>>,
}

fn mem_default() -> u32 {
    256
}
fn one_u32() -> u32 {
    1
}

fn one() -> u64 {
    1
}

// ------------------------------------------------------------------ model

/// Kind of virtual node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VnodeKind {
    /// A network namespace attached to the host's bridge (fast, the default).
    #[default]
    Netns,
    /// A QEMU guest whose tap joins the host's bridge.
    Qemu,
}

/// An infrastructure provider and its authorization policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub key_id: u32,
    pub key: Vec<u8>,
    pub transform: Transform,
    /// The entity requests for this provider are signed as.
    pub entity: String,
    /// Entities this provider accepts (empty: any holder of the key).
    pub accept: Vec<String>,
    pub accept_unsigned: bool,
}

/// A substrate router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub provider: String,
    /// Runs the NSIS daemon (GIST + QoS NSLP); false for a plain router.
    pub nsis: bool,
}

/// One end of a substrate link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub node: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// Interface name inside the node's namespace (eth0, eth1, ... in the
    /// order the node's links appear in the file).
    pub ifname: String,
}

/// A substrate link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub a: Endpoint,
    pub b: Endpoint,
    pub capacity_bps: u64,
}

/// A virtual network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnet {
    pub name: String,
    pub id: u128,
}

/// A virtual node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnode {
    pub name: String,
    pub vnet: String,
    pub host: String,
    pub id: u128,
    pub vif_id: u64,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub kind: VnodeKind,
    /// Bridge in the host's namespace the virtual node's interface joins
    /// (and the virtual links' tunnel ends with it).
    pub bridge: String,
    /// The host-side veth of the virtual node's interface (the tap, for
    /// a QEMU guest).
    pub host_ifname: String,
    /// QEMU guests only.
    pub qemu: Option<QemuConf>,
}

/// How to run a QEMU virtual node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConf {
    pub memory_mb: u32,
    pub cpus: u32,
    pub kernel: Option<PathBuf>,
    pub disk: Option<PathBuf>,
}

/// A validated topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub source: PathBuf,
    pub name: String,
    pub description: String,
    pub profile: Profile,
    pub backend: Backend,
    pub tunnel: TunnelKind,
    pub refresh_ms: u64,
    pub providers: Vec<Provider>,
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    pub vnets: Vec<Vnet>,
    pub vnodes: Vec<Vnode>,
}

/// A static route of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: Ipv4Addr,
    pub prefix_len: u8,
    pub via: Ipv4Addr,
    pub ifname: String,
}

/// Capacity of a link without `capacity`: 1 Gbit/s.
pub const DEFAULT_CAPACITY: u64 = 1_000_000_000;

/// Merges sibling prefixes (two halves of one block) until none are left:
/// the result covers exactly the addresses the input covers, with as few
/// routes as that allows (a chain's 999 subnets behind one neighbour
/// become about ten routes).
pub fn aggregate(prefixes: Vec<(u32, u8)>) -> Vec<(u32, u8)> {
    let mut set: BTreeSet<(u8, u32)> = prefixes.into_iter().map(|(n, l)| (l, n)).collect();
    loop {
        let mut merged = None;
        for &(len, net) in &set {
            if len == 0 {
                continue;
            }
            let bit = 1u32 << (32 - len as u32);
            let sibling = net ^ bit;
            if net & bit == 0 && set.contains(&(len, sibling)) {
                merged = Some((len, net, sibling));
                break;
            }
        }
        let Some((len, a, b)) = merged else { break };
        set.remove(&(len, a));
        set.remove(&(len, b));
        set.insert((len - 1, a));
    }
    let mut out: Vec<(u32, u8)> = set.into_iter().map(|(l, n)| (n, l)).collect();
    out.sort();
    out
}

fn network(a: Ipv4Addr, len: u8) -> u32 {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    };
    u32::from(a) & mask
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let l: u8 = l.parse().ok()?;
    (l <= 32).then_some(())?;
    Some((a.parse().ok()?, l))
}

fn parse_id(v: &toml::Value) -> Option<u128> {
    match v {
        toml::Value::Integer(i) if *i >= 0 => Some(*i as u128),
        toml::Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(h) => u128::from_str_radix(h, 16).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let src = std::fs::read_to_string(path).map_err(|e| TopologyError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read the topology file: {e}"),
        })?;
        Self::parse(&src, path)
    }

    /// Parses and validates `src` (named `path` in messages).
    pub fn parse(src: &str, path: &Path) -> Result<Self, TopologyError> {
        let err = |span: Range<usize>, message: String| {
            let (line, column) = line_col(src, span.start);
            TopologyError {
                file: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let f: File = toml::from_str(src).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            err(span, e.message().trim().to_string())
        })?;
        let hdr = f.topology.get_ref();
        let name = hdr.name.get_ref().clone();
        if name.is_empty()
            || name.len() > 24
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                hdr.name.span(),
                format!(
                    "topology name {name:?} must be 1-24 characters of letters, digits, '-' or '_' (it names the namespaces)"
                ),
            ));
        }

        // Providers.
        let mut providers = Vec::new();
        for p in &f.provider {
            let d = p.get_ref();
            let pname = d.name.get_ref().clone();
            if providers.iter().any(|x: &Provider| x.name == pname) {
                return Err(err(
                    d.name.span(),
                    format!("duplicate provider {pname:?}: give each provider its own name"),
                ));
            }
            let (Some(key_id), Some(key)) = (d.key_id, d.key.as_ref()) else {
                return Err(err(
                    p.span(),
                    format!(
                        "provider {pname:?} has no key: add `key_id = N` and `key = \"...\"` (its pre-shared HMAC key)"
                    ),
                ));
            };
            let key = match key.strip_prefix("hex:") {
                Some(h) => (0..h.len() / 2)
                    .map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| {
                        err(
                            p.span(),
                            format!("provider {pname:?}: key \"hex:...\" must be hexadecimal"),
                        )
                    })?,
                None => key.as_bytes().to_vec(),
            };
            if key.len() < 16 {
                return Err(err(
                    p.span(),
                    format!(
                        "provider {pname:?}: key of {} bytes is too short; use at least 16",
                        key.len()
                    ),
                ));
            }
            let accept_unsigned = match d.unsigned.as_str() {
                "refuse" => false,
                "accept" => true,
                other => {
                    return Err(err(
                        p.span(),
                        format!(
                            "provider {pname:?}: unsigned = {other:?}; use \"refuse\" or \"accept\""
                        ),
                    ));
                }
            };
            providers.push(Provider {
                name: pname.clone(),
                key_id,
                key,
                transform: d.transform,
                entity: d.entity.clone().unwrap_or_else(|| format!("vnp@{pname}")),
                accept: d.accept.clone(),
                accept_unsigned,
            });
        }
        if providers.is_empty() {
            return Err(err(
                f.topology.span(),
                "no [[provider]]: add at least one provider with a key".into(),
            ));
        }

        // Nodes.
        let mut nodes: Vec<Node> = Vec::new();
        for n in &f.node {
            let d = n.get_ref();
            let nname = d.name.get_ref().clone();
            if nname.is_empty()
                || nname.len() > 15
                || !nname
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(err(
                    d.name.span(),
                    format!("node name {nname:?} must be 1-15 letters, digits, '-' or '_'"),
                ));
            }
            if nodes.iter().any(|x| x.name == nname) {
                return Err(err(
                    d.name.span(),
                    format!("duplicate node {nname:?}: node names must be unique"),
                ));
            }
            let provider = match &d.provider {
                Some(p) => {
                    let pn = p.get_ref();
                    if !providers.iter().any(|x| &x.name == pn) {
                        return Err(err(
                            p.span(),
                            format!(
                                "unknown provider {pn:?} for node {nname}: define it in a [[provider]] section"
                            ),
                        ));
                    }
                    pn.clone()
                }
                None if providers.len() == 1 => providers[0].name.clone(),
                None => {
                    return Err(err(
                        d.name.span(),
                        format!(
                            "node {nname} needs `provider = \"...\"`: the topology has several providers"
                        ),
                    ));
                }
            };
            nodes.push(Node {
                name: nname,
                provider,
                nsis: d.nsis,
            });
        }
        if nodes.is_empty() {
            return Err(err(
                f.topology.span(),
                "no [[node]]: add the substrate routers".into(),
            ));
        }

        // Links.
        let mut links: Vec<Link> = Vec::new();
        let mut if_count: HashMap<String, usize> = HashMap::new();
        let mut addrs: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        let mut subnets: Vec<(u32, u8, Range<usize>)> = Vec::new();
        for l in &f.link {
            let d = l.get_ref();
            if d.delay.is_some() || d.loss.is_some() {
                let s = d.delay.as_ref().or(d.loss.as_ref()).expect("one is set");
                return Err(err(
                    s.span(),
                    "link delay and loss need the netem qdisc, which this kernel lacks (sch_netem): remove `delay`/`loss`".into(),
                ));
            }
            let mut ends = Vec::new();
            for e in [&d.a, &d.b] {
                let text = e.get_ref();
                let Some((node, cidr)) = text.split_once(':') else {
                    return Err(err(
                        e.span(),
                        format!(
                            "link end {text:?} must look like \"node:address/prefix\", e.g. \"tb1:172.1.2.1/24\""
                        ),
                    ));
                };
                if !nodes.iter().any(|n| n.name == node) {
                    return Err(err(
                        e.span(),
                        format!("unknown node {node:?} in link: define it in a [[node]] section"),
                    ));
                }
                let Some((addr, len)) = parse_cidr(cidr) else {
                    return Err(err(
                        e.span(),
                        format!("bad address {cidr:?}: write it as a.b.c.d/len"),
                    ));
                };
                if len > 30 {
                    return Err(err(
                        e.span(),
                        format!("prefix /{len} leaves no room for two ends: use /30 or shorter"),
                    ));
                }
                if let Some(prev) = addrs.get(&addr) {
                    let (pl, pc) = line_col(src, prev.start);
                    return Err(err(
                        e.span(),
                        format!(
                            "address {addr} is already used at line {pl}, column {pc}: every interface needs its own address"
                        ),
                    ));
                }
                addrs.insert(addr, e.span());
                let k = if_count.entry(node.to_string()).or_insert(0);
                let ifname = format!("eth{k}");
                *k += 1;
                ends.push((
                    Endpoint {
                        node: node.to_string(),
                        addr,
                        prefix_len: len,
                        ifname,
                    },
                    e.span(),
                ));
            }
            let (b, bspan) = ends.pop().expect("two ends");
            let (a, _) = ends.pop().expect("two ends");
            if a.node == b.node {
                return Err(err(
                    bspan,
                    format!(
                        "link from {} to itself: a link joins two different nodes",
                        a.node
                    ),
                ));
            }
            if a.prefix_len != b.prefix_len
                || network(a.addr, a.prefix_len) != network(b.addr, b.prefix_len)
            {
                return Err(err(
                    bspan,
                    format!(
                        "{}/{} and {}/{} are not in one subnet: both ends of a link share a subnet",
                        a.addr, a.prefix_len, b.addr, b.prefix_len
                    ),
                ));
            }
            let net = network(a.addr, a.prefix_len);
            for (onet, olen, ospan) in &subnets {
                let l = (*olen).min(a.prefix_len);
                if network(Ipv4Addr::from(net), l) == network(Ipv4Addr::from(*onet), l) {
                    let (pl, _) = line_col(src, ospan.start);
                    return Err(err(
                        bspan,
                        format!(
                            "subnet {}/{} overlaps the link at line {pl}: give every link its own subnet",
                            Ipv4Addr::from(net),
                            a.prefix_len
                        ),
                    ));
                }
            }
            subnets.push((net, a.prefix_len, l.span()));
            let capacity_bps = match &d.capacity {
                None => DEFAULT_CAPACITY,
                Some(c) => {
                    crate::model::units::parse_rate(c.get_ref()).map_err(|m| err(c.span(), m))?
                }
            };
            links.push(Link { a, b, capacity_bps });
        }

        // Virtual networks and nodes.
        let mut vnets: Vec<Vnet> = Vec::new();
        for v in &f.vnet {
            let d = v.get_ref();
            let Some(id) = parse_id(d.id.get_ref()) else {
                return Err(err(
                    d.id.span(),
                    "vnet id must be a non-negative integer or a \"0x...\" string (128 bits)"
                        .into(),
                ));
            };
            if vnets.iter().any(|x| x.name == *d.name.get_ref()) {
                return Err(err(
                    d.name.span(),
                    format!("duplicate vnet {:?}", d.name.get_ref()),
                ));
            }
            vnets.push(Vnet {
                name: d.name.get_ref().clone(),
                id,
            });
        }
        let mut vnodes: Vec<Vnode> = Vec::new();
        let mut per_host: HashMap<String, usize> = HashMap::new();
        for v in &f.vnode {
            let d = v.get_ref();
            let vname = d.name.get_ref().clone();
            if vnodes.iter().any(|x| x.name == vname) || nodes.iter().any(|n| n.name == vname) {
                return Err(err(
                    d.name.span(),
                    format!(
                        "duplicate name {vname:?}: virtual nodes and routers need distinct names"
                    ),
                ));
            }
            if !vnets.iter().any(|x| x.name == *d.vnet.get_ref()) {
                return Err(err(
                    d.vnet.span(),
                    format!(
                        "unknown vnet {:?} for virtual node {vname}: define it in a [[vnet]] section",
                        d.vnet.get_ref()
                    ),
                ));
            }
            let host = d.host.get_ref();
            let Some(hn) = nodes.iter().find(|n| &n.name == host) else {
                return Err(err(
                    d.host.span(),
                    format!(
                        "virtual node {vname} is on node {host:?}, which does not exist: use one of the [[node]] names"
                    ),
                ));
            };
            if !hn.nsis {
                return Err(err(
                    d.host.span(),
                    format!(
                        "virtual node {vname} is on {host}, a plain router without NSIS: its host must run NSIS to set up virtual links"
                    ),
                ));
            }
            let dir = path.parent().unwrap_or(Path::new("."));
            let file_opt = |f: &Option<Spanned<String>>,
                            what: &str|
             -> Result<Option<PathBuf>, TopologyError> {
                match f {
                    None => Ok(None),
                    Some(f) => {
                        let p = dir.join(f.get_ref());
                        if p.exists() {
                            Ok(Some(p))
                        } else {
                            Err(err(
                                f.span(),
                                format!("virtual node {vname}: {what} {} not found", p.display()),
                            ))
                        }
                    }
                }
            };
            let qemu = match d.kind {
                VnodeKind::Netns => None,
                VnodeKind::Qemu => {
                    if !(32..=65536).contains(&d.memory_mb) || !(1..=64).contains(&d.cpus) {
                        return Err(err(
                            v.span(),
                            format!(
                                "virtual node {vname}: memory_mb must be 32..=65536 and cpus 1..=64"
                            ),
                        ));
                    }
                    Some(QemuConf {
                        memory_mb: d.memory_mb,
                        cpus: d.cpus,
                        kernel: file_opt(&d.kernel, "kernel")?,
                        disk: file_opt(&d.disk, "disk")?,
                    })
                }
            };
            let Some(id) = parse_id(d.id.get_ref()) else {
                return Err(err(
                    d.id.span(),
                    "vnode id must be a non-negative integer or a \"0x...\" string (128 bits)"
                        .into(),
                ));
            };
            let Some((addr, prefix_len)) = parse_cidr(d.address.get_ref()) else {
                return Err(err(
                    d.address.span(),
                    format!(
                        "bad address {:?}: write it as a.b.c.d/len",
                        d.address.get_ref()
                    ),
                ));
            };
            if vnodes
                .iter()
                .any(|x| x.addr == addr && x.vnet == *d.vnet.get_ref())
            {
                return Err(err(
                    d.address.span(),
                    format!("address {addr} is already used in this virtual network"),
                ));
            }
            let k = per_host.entry(host.clone()).or_insert(0);
            let (bridge, host_ifname) = (format!("br{k}"), format!("vn{k}"));
            *k += 1;
            vnodes.push(Vnode {
                name: vname,
                vnet: d.vnet.get_ref().clone(),
                host: host.clone(),
                id,
                vif_id: d.vif_id,
                addr,
                prefix_len,
                kind: d.kind,
                bridge,
                host_ifname: if qemu.is_some() {
                    host_ifname.replacen("vn", "vq", 1)
                } else {
                    host_ifname
                },
                qemu,
            });
        }

        let t = Topology {
            source: path.to_path_buf(),
            name,
            description: hdr.description.clone(),
            profile: hdr.profile,
            backend: hdr.backend,
            tunnel: hdr.tunnel,
            refresh_ms: hdr.refresh_ms,
            providers,
            nodes,
            links,
            vnets,
            vnodes,
        };
        // Every router must reach every other.
        let first = &t.nodes[0].name;
        let reach = t.distances(first);
        if let Some(n) = t.nodes.iter().find(|n| !reach.contains_key(&n.name)) {
            let span = f
                .node
                .iter()
                .find(|d| *d.get_ref().name.get_ref() == n.name)
                .map(|d| d.span())
                .unwrap_or(0..0);
            return Err(err(
                span,
                format!(
                    "node {} cannot be reached from {first}: add a [[link]] that connects it",
                    n.name
                ),
            ));
        }
        Ok(t)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The links of `node`: (its end, the other end, capacity).
    pub fn links_of<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = (&'a Endpoint, &'a Endpoint, u64)> + 'a {
        self.links.iter().filter_map(move |l| {
            if l.a.node == node {
                Some((&l.a, &l.b, l.capacity_bps))
            } else if l.b.node == node {
                Some((&l.b, &l.a, l.capacity_bps))
            } else {
                None
            }
        })
    }

    /// Hop counts from `from` (BFS).
    fn distances(&self, from: &str) -> HashMap<String, usize> {
        let mut d = HashMap::new();
        d.insert(from.to_string(), 0);
        let mut q = VecDeque::from([from.to_string()]);
        while let Some(n) = q.pop_front() {
            let k = d[&n];
            for (_, other, _) in self.links_of(&n) {
                if !d.contains_key(&other.node) {
                    d.insert(other.node.clone(), k + 1);
                    q.push_back(other.node.clone());
                }
            }
        }
        d
    }

    /// The shortest path (fewest hops; ties broken by link order in the
    /// file) from `from` to `to`, both included.
    pub fn path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let dist = self.distances(to);
        dist.get(from)?;
        let mut p = vec![from.to_string()];
        let mut cur = from.to_string();
        while cur != to {
            let k = dist[&cur];
            let next = self
                .links_of(&cur)
                .map(|(_, o, _)| o.node.clone())
                .find(|o| dist.get(o) == Some(&(k - 1)))?;
            p.push(next.clone());
            cur = next;
        }
        Some(p)
    }

    /// The address of `node` used for signaling flows and tunnel ends: its
    /// first interface's.
    pub fn node_addr(&self, node: &str) -> Option<Ipv4Addr> {
        self.links_of(node).next().map(|(me, _, _)| me.addr)
    }

    /// Turns every virtual node into `kind` (QEMU guests get 256 MiB, one
    /// CPU and the default kernel), e.g. to run Table I with real VMs.
    pub fn set_vnode_kind(&mut self, kind: VnodeKind) {
        for v in &mut self.vnodes {
            v.kind = kind;
            match kind {
                VnodeKind::Netns => {
                    v.qemu = None;
                    v.host_ifname = v.host_ifname.replacen("vq", "vn", 1);
                }
                VnodeKind::Qemu => {
                    v.qemu.get_or_insert(QemuConf {
                        memory_mb: 256,
                        cpus: 1,
                        kernel: None,
                        disk: None,
                    });
                    v.host_ifname = v.host_ifname.replacen("vn", "vq", 1);
                }
            }
        }
    }

    /// Static routes of `node` to every subnet it is not attached to, via
    /// the first hop of the shortest path to a router on that subnet.
    pub fn routes(&self, node: &str) -> Vec<Route> {
        // One breadth-first search from `node` gives every router's distance
        // and the neighbour it is reached through (linear in the topology,
        // so 1000-router chains stay fast).
        let mut adj: HashMap<&str, Vec<&str>> = HashMap::new();
        for l in &self.links {
            adj.entry(&l.a.node).or_default().push(&l.b.node);
            adj.entry(&l.b.node).or_default().push(&l.a.node);
        }
        let mut dist: HashMap<&str, (usize, &str)> = HashMap::new();
        dist.insert(node, (0, node));
        let mut queue = VecDeque::from([node]);
        while let Some(cur) = queue.pop_front() {
            let (d, first) = dist[cur];
            for &n in adj.get(cur).map(Vec::as_slice).unwrap_or_default() {
                if !dist.contains_key(n) {
                    dist.insert(n, (d + 1, if cur == node { n } else { first }));
                    queue.push_back(n);
                }
            }
        }
        let attached: HashSet<(u32, u8)> = self
            .links_of(node)
            .map(|(me, _, _)| (network(me.addr, me.prefix_len), me.prefix_len))
            .collect();
        // Neighbour -> (our end, its end) of the first link between us.
        let mut towards: HashMap<&str, (&Endpoint, &Endpoint)> = HashMap::new();
        for (me, other, _) in self.links_of(node) {
            towards.entry(other.node.as_str()).or_insert((me, other));
        }
        let mut seen = HashSet::new();
        // (via, ifname) -> destination prefixes
        let mut groups: BTreeMap<(Ipv4Addr, String), Vec<(u32, u8)>> = BTreeMap::new();
        for l in &self.links {
            let key = (network(l.a.addr, l.a.prefix_len), l.a.prefix_len);
            if attached.contains(&key) || !seen.insert(key) {
                continue;
            }
            // Go towards whichever end of that link is nearer.
            let next = match (dist.get(l.a.node.as_str()), dist.get(l.b.node.as_str())) {
                (Some(a), Some(b)) => {
                    if b.0 < a.0 {
                        b.1
                    } else {
                        a.1
                    }
                }
                (Some(a), None) => a.1,
                (None, Some(b)) => b.1,
                (None, None) => continue,
            };
            let Some(&(me, other)) = towards.get(next) else {
                continue;
            };
            groups
                .entry((other.addr, me.ifname.clone()))
                .or_default()
                .push(key);
        }
        let mut out = Vec::new();
        for ((via, ifname), prefixes) in groups {
            for (net, len) in aggregate(prefixes) {
                out.push(Route {
                    dest: Ipv4Addr::from(net),
                    prefix_len: len,
                    via,
                    ifname: ifname.clone(),
                });
            }
        }
        out
    }

    /// Virtual nodes hosted on `node`.
    pub fn vnodes_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Vnode> + 'a {
        self.vnodes.iter().filter(move |v| v.host == node)
    }

    /// The providers whose nodes lie on the path from `from` to `to`, in
    /// path order (each signs its own authorization object).
    pub fn providers_on_path(&self, from: &str, to: &str) -> Vec<&Provider> {
        let mut out: Vec<&Provider> = Vec::new();
        for n in self.path(from, to).unwrap_or_default() {
            if let Some(p) = self.node(&n).and_then(|n| self.provider(&n.provider))
                && !out.iter().any(|x| x.name == p.name)
            {
                out.push(p);
            }
        }
        out
    }

    /// Counts for `validate` output.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("providers", self.providers.len()),
            ("nodes", self.nodes.len()),
            ("links", self.links.len()),
            ("vnets", self.vnets.len()),
            ("vnodes", self.vnodes.len()),
        ])
    }
}

/// Generates a chain of `n` routers across `providers` providers, VM1 on the
/// first router and VM2 on the last: for sweeps without hand-written files.
/// Keys are derived from the provider names (stated in the file): fine for a
/// testbed, not for anything else.
pub fn generate_chain(name: &str, n: usize, providers: usize) -> String {
    use std::fmt::Write;
    let providers = providers.clamp(1, n.max(1));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Generated by `vlsp generate chain {n} --providers {providers}`."
    );
    let _ = writeln!(
        s,
        "# Keys are derived from provider names: for testbeds only."
    );
    let _ = writeln!(
        s,
        "[topology]\nname = \"{name}\"\ndescription = \"chain of {n} routers across {providers} providers\"\n"
    );
    for p in 0..providers {
        let _ = writeln!(
            s,
            "[[provider]]\nname = \"inp{p}\"\nkey_id = {}\nkey = \"testbed-key-of-provider-inp{p:04}\"\nentity = \"vnp@example.net\"\n",
            p + 1
        );
    }
    for i in 0..n {
        let p = i * providers / n.max(1);
        let _ = writeln!(s, "[[node]]\nname = \"r{i}\"\nprovider = \"inp{p}\"\n");
    }
    for i in 0..n.saturating_sub(1) {
        let (hi, lo) = (i / 250, i % 250);
        let _ = writeln!(
            s,
            "[[link]]\na = \"r{i}:10.{}.{lo}.1/24\"\nb = \"r{}:10.{}.{lo}.2/24\"\ncapacity = \"1gbit\"\n",
            100 + hi,
            i + 1,
            100 + hi
        );
    }
    let _ = writeln!(s, "[[vnet]]\nname = \"vnet1\"\nid = 1\n");
    let _ = writeln!(
        s,
        "[[vnode]]\nname = \"VM1\"\nvnet = \"vnet1\"\nhost = \"r0\"\nid = 1\naddress = \"192.168.100.1/24\"\n"
    );
    let _ = writeln!(
        s,
        "[[vnode]]\nname = \"VM2\"\nvnet = \"vnet1\"\nhost = \"r{}\"\nid = 2\naddress = \"192.168.100.2/24\"",
        n.saturating_sub(1)
    );
    s
}

impl Topology {
    /// The QNI, QNEs (NSIS routers strictly between) and QNR of the first
    /// two virtual nodes' link (VM1 → VM2 in the shipped topologies).
    pub fn signaling_roles(&self) -> anyhow::Result<(String, Vec<String>, String)> {
        let mut v = self.vnodes.iter();
        let (a, b) = match (v.next(), v.next()) {
            (Some(a), Some(b)) => (a, b),
            _ => anyhow::bail!("{}: needs two virtual nodes", self.name),
        };
        let path = self
            .path(&a.host, &b.host)
            .ok_or_else(|| anyhow::anyhow!("{}: no path {} -> {}", self.name, a.host, b.host))?;
        let qnes = path[1..path.len() - 1]
            .iter()
            .filter(|n| self.node(n).is_some_and(|n| n.nsis))
            .cloned()
            .collect();
        Ok((a.host.clone(), qnes, b.host.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> Topology {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topologies")
            .join(name);
        Topology::load(&p).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn shipped_topologies_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Topology::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 4);
    }

    #[test]
    fn paper_topology_matches_fig7() {
        let t = load("paper-4node.toml");
        assert_eq!(
            t.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["tb1", "tb2", "tb3", "tb4"]
        );
        assert_eq!(t.path("tb1", "tb4").unwrap(), ["tb1", "tb2", "tb3", "tb4"]);
        assert_eq!(t.node_addr("tb4"), Some(Ipv4Addr::new(172, 3, 4, 4)));
        let r = t.routes("tb1");
        assert_eq!(r.len(), 2);
        assert!(
            r.iter()
                .all(|r| r.via == Ipv4Addr::new(172, 1, 2, 2) && r.ifname == "eth0")
        );
        let r2 = t.routes("tb2");
        assert_eq!(
            r2,
            vec![Route {
                dest: Ipv4Addr::new(172, 3, 4, 0),
                prefix_len: 24,
                via: Ipv4Addr::new(172, 2, 3, 3),
                ifname: "eth1".into()
            }]
        );
        assert_eq!(t.vnodes_on("tb1").next().unwrap().bridge, "br0");
    }

    #[test]
    fn ring_routes_take_the_short_way() {
        let t = load("ring-6node.toml");
        assert_eq!(t.path("r0", "r5").unwrap(), ["r0", "r5"]);
        assert_eq!(t.path("r0", "r2").unwrap().len(), 3);
        assert_eq!(t.path("r0", "r3").unwrap().len(), 4);
        for n in &t.nodes {
            // 6 links, 2 attached: 4 subnets to route (siblings may merge).
            let r = t.routes(&n.name);
            assert!((1..=4).contains(&r.len()), "{}", n.name);
            let covered = t
                .links
                .iter()
                .filter(|l| {
                    r.iter()
                        .any(|x| network(l.a.addr, x.prefix_len) == u32::from(x.dest))
                })
                .count();
            assert_eq!(covered, 4, "{}", n.name);
        }
    }

    #[test]
    fn generated_chains_validate() {
        for n in [2, 10, 100, 1000] {
            let s = generate_chain("gen", n, 3);
            let t =
                Topology::parse(&s, Path::new("gen.toml")).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(t.nodes.len(), n);
            assert_eq!(t.path("r0", &format!("r{}", n - 1)).unwrap().len(), n);
        }
    }

    const BASE: &str = r#"[topology]
name = "t"

[[provider]]
name = "p"
key_id = 1
key = "0123456789abcdef0123"

[[node]]
name = "a"

[[node]]
name = "b"
"#;

    fn bad(extra: &str) -> String {
        let src = format!("{BASE}{extra}");
        Topology::parse(&src, Path::new("t.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn invalid_topologies_say_where_and_what() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"c:10.0.0.2/24\"\n",
                "t.toml:16:5:",
                "unknown node \"c\"",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"a:10.0.0.2/24\"\n",
                "t.toml:16:5:",
                "to itself",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.1/24\"\n",
                "t.toml:16:5:",
                "already used at line 15",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.1.2/24\"\n",
                "t.toml:16:5:",
                "not in one subnet",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\n[[link]]\na = \"a:10.0.0.5/16\"\nb = \"b:10.0.0.6/16\"\n",
                "t.toml:19:5:",
                "overlaps the link at line 14",
            ),
            ("[[node]]\nname = \"a\"\n", "t.toml:15:8:", "duplicate node"),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\ndelay = \"10ms\"\n",
                "t.toml:17:9:",
                "netem",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\n[[vnet]]\nname = \"v\"\nid = 1\n[[vnode]]\nname = \"VM\"\nvnet = \"v\"\nhost = \"zz\"\nid = 1\naddress = \"10.9.0.1/24\"\n",
                "t.toml:23:8:",
                "does not exist",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\ncolour = 1\n",
                "t.toml:",
                "unknown field `colour`",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\n[[vnet]]\nname = \"v\"\nid = 1\n[[vnode]]\nname = \"VM\"\nvnet = \"v\"\nhost = \"a\"\nid = 1\naddress = \"10.9.0.1/24\"\nkind = \"qemu\"\nkernel = \"no-such-vmlinuz\"\n",
                "t.toml:27:10:",
                "kernel no-such-vmlinuz not found",
            ),
            (
                "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\n[[vnet]]\nname = \"v\"\nid = 1\n[[vnode]]\nname = \"VM\"\nvnet = \"v\"\nhost = \"a\"\nid = 1\naddress = \"10.9.0.1/24\"\nkind = \"qemu\"\nmemory_mb = 4\n",
                "t.toml:",
                "memory_mb must be 32..=65536",
            ),
            ("[[link\n", "t.toml:14:7:", "unclosed array table"),
            ("", "t.toml:", "cannot be reached"),
        ];
        for (extra, at, what) in cases {
            let m = bad(extra);
            assert!(
                m.starts_with(at) && m.contains(what),
                "expected {at}..{what}, got: {m}"
            );
        }
        let nokey =
            "[topology]\nname = \"t\"\n[[provider]]\nname = \"p\"\n[[node]]\nname = \"a\"\n";
        let m = Topology::parse(nokey, Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("k.toml:3:1:") && m.contains("has no key"),
            "{m}"
        );
    }

    #[test]
    fn aggregation_keeps_exactly_the_same_addresses() {
        let n = |a: u8, b: u8| u32::from(Ipv4Addr::new(10, a, b, 0));
        // 10.0.0.0/24 .. 10.0.6.0/24: a /22, a /23 and a /24
        let p: Vec<(u32, u8)> = (0..7).map(|i| (n(0, i), 24)).collect();
        assert_eq!(aggregate(p), [(n(0, 0), 22), (n(0, 4), 23), (n(0, 6), 24)]);
        // not siblings: 10.0.1.0/24 and 10.0.2.0/24 stay apart
        assert_eq!(
            aggregate(vec![(n(0, 1), 24), (n(0, 2), 24)]),
            [(n(0, 1), 24), (n(0, 2), 24)]
        );
        assert!(aggregate(vec![]).is_empty());
    }

    #[test]
    fn long_chains_get_few_routes_that_still_reach_every_subnet() {
        let t = Topology::parse(&generate_chain("c", 300, 1), Path::new("c.toml")).unwrap();
        let mid = "r150";
        let r = t.routes(mid);
        assert!(r.len() < 40, "{} routes", r.len());
        // Every link's subnet resolves to the neighbour on its side.
        for l in &t.links {
            let dst = l.a.addr;
            let best = r
                .iter()
                .filter(|x| network(dst, x.prefix_len) == u32::from(x.dest))
                .max_by_key(|x| x.prefix_len);
            let attached = t
                .links_of(mid)
                .any(|(me, _, _)| network(dst, me.prefix_len) == network(me.addr, me.prefix_len));
            if attached {
                continue;
            }
            let hop = t.path(mid, &l.a.node).unwrap()[1].clone();
            let via = t
                .links_of(mid)
                .find(|(_, o, _)| o.node == hop)
                .unwrap()
                .1
                .addr;
            assert_eq!(best.map(|b| b.via), Some(via), "{dst}");
        }
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
