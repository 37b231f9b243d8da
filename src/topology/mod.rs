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
//! gist_mode = "d"               # or "c": GIST over TCP messaging associations
//! routing = "static"            # or "ospf": bird2 in every router
//!
//! [ospf]                        # optional, `routing = "ospf"` only
//! hello_s = 1                   # hello interval
//! dead_s = 4                    # neighbour declared dead after this
//! areas = "one"                 # or "per-provider": each provider's links an area,
//!                               # the inter-provider links area 0 (must be connected)
//! bfd = false                   # true: BFD beside OSPF, a silent neighbour is dead
//! bfd_interval_ms = 100         #   after bfd_interval_ms x bfd_multiplier
//! bfd_multiplier = 3
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
//! [provider.auth]               # optional; defaults depend on the profile
//! max_skew_s = 30               # clock skew on START/END_TIME (nsis-ka: 7200)
//! max_window_s = 600            # longest END_TIME - START_TIME accepted
//! unsigned_tear = "refuse"      # or "same-peer": an unsigned TEAR only for a
//!                               # session a signed RESERVE from that peer set up
//! replay_cache = 65536          # sessions remembered against replays
//!
//! [[node]]
//! name = "tb1"
//! provider = "kit"
//! nsis = true                   # false: a plain router that runs no NSIS daemon
//! external = false              # true: NSIS, but not vlsp's: `vlsp up` builds the namespace
//!                               # and links and starts no node, for another implementation
//!
//! [[link]]
//! a = "tb1:172.1.2.1/24"
//! b = "tb2:172.1.2.2/24"
//! capacity = "1gbit"            # for admission control and shaping
//! cost = 10                     # OSPF cost (routing = "ospf")
//! hello_s = 1                   # optional: this link's OSPF timers and BFD
//! dead_s = 4                    #   (default: those of [ospf])
//! bfd = true
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
//! address = "10.10.0.1/24"      # the virtual node's interface (vif_id = 1 by default)
//! # or several interfaces, one virtual link each:
//! # interfaces = [{ id = 1, addr = "10.10.0.1/24" }, { id = 2, addr = "10.11.0.1/24" }]
//! ```
//!
//! Each virtual interface is its own L2 segment: a bridge on the host that
//! holds the virtual node's side of the interface and the tunnel end of at
//! most one virtual link, so no set of links can form a loop.

pub mod faults;
mod file;
mod generate;
pub mod ospf;
mod router_addr;
mod routes;
mod validate;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The JSON Schema of topology files, from the types that parse them.
pub use file::schema;
pub use file::{DEFAULT_REFRESH_MS, MIN_REFRESH_MS, TopologyError};
pub use generate::{GenerateError, MAX_CHAIN_ROUTERS, chain};
pub use routes::{Graph, aggregate};
pub use validate::MAX_VIFS;

use crate::model::tunnel::{Backend, TunnelKind};
use crate::model::units::Rate;
use crate::wire::auth::Transform;
use crate::wire::profile::Profile;

/// Kind of virtual node.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VnodeKind {
    /// A network namespace attached to the host's bridge (fast, the default).
    #[default]
    Netns,
    /// A QEMU guest whose tap joins the host's bridge.
    Qemu,
}

/// How GIST carries the signaling after the Query (RFC 5971 §4.4): D-mode
/// datagrams, or C-mode messaging associations over TCP that the nodes
/// propose in their Queries. A node accepts C-mode whenever a peer
/// proposes it, whatever its own mode.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum GistMode {
    #[default]
    D,
    C,
}

/// How the routers find their routes: computed once from the topology
/// (and recomputed around faults), or by OSPF (bird2) in every router.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    #[default]
    Static,
    Ospf,
}

impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Routing::Static => "static",
            Routing::Ospf => "ospf",
        })
    }
}

/// How the routers are split into OSPF areas (`[ospf] areas`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OspfAreas {
    /// Every interface in area 0.
    #[default]
    One,
    /// Each provider's own links in an area of its own (1, 2, ... in
    /// file order), the links between providers in the backbone, area 0:
    /// a provider's topology stays inside it, as between real InPs.
    PerProvider,
}

/// OSPF timers of every router interface (a link may set its own), BFD,
/// and the areas (`[ospf]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OspfSettings {
    pub hello_s: u32,
    pub dead_s: u32,
    pub areas: OspfAreas,
    /// BFD on every link that does not say otherwise: a neighbour that
    /// falls silent with its link up is dead after `bfd_interval_ms` x
    /// `bfd_multiplier` rather than `dead_s`.
    pub bfd: bool,
    pub bfd_interval_ms: u32,
    pub bfd_multiplier: u32,
}

impl Default for OspfSettings {
    /// Fast enough for fault experiments: a silent neighbour is dead in 4 s
    /// (0.3 s with BFD on).
    fn default() -> Self {
        Self {
            hello_s: 1,
            dead_s: 4,
            areas: OspfAreas::One,
            bfd: false,
            bfd_interval_ms: 100,
            bfd_multiplier: 3,
        }
    }
}

/// A link's own OSPF settings (`[[link]] hello_s/dead_s/bfd`); none: the
/// `[ospf]` ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkOspf {
    pub hello_s: Option<u32>,
    pub dead_s: Option<u32>,
    pub bfd: Option<bool>,
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
    pub auth: AuthPolicy,
}

/// A provider's authorization policy beyond its key (`[provider.auth]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Accepted clock difference on START_TIME / END_TIME.
    pub max_skew_s: u64,
    /// Longest END_TIME − START_TIME accepted (and the validity of an
    /// object with a START_TIME only); how long replays are remembered.
    pub max_window_s: u64,
    /// Let an unsigned TEAR through for a session set up signed by the
    /// same GIST peer (`unsigned_tear = "same-peer"`).
    pub unsigned_tear_same_peer: bool,
    /// Sessions the replay cache remembers at most.
    pub replay_cache: usize,
}

impl AuthPolicy {
    /// The defaults: a small skew for `rfc`; for `nsis-ka` one wide enough
    /// for NSIS-ka's client, which writes START_TIME = now + 6000 s.
    pub fn defaults(profile: Profile) -> Self {
        Self {
            max_skew_s: match profile {
                Profile::Rfc => 30,
                Profile::NsisKa => 7200,
            },
            max_window_s: 600,
            unsigned_tear_same_peer: false,
            replay_cache: 65_536,
        }
    }
}

/// A substrate router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub provider: String,
    /// Runs the NSIS daemon (GIST + QoS NSLP); false for a plain router.
    pub nsis: bool,
    /// An NSIS router whose daemon is not vlsp's (NSIS-ka, a test peer, a
    /// `vlsp node` started by hand): its namespace and links are built,
    /// but the testbed starts no node in it.
    pub external: bool,
    /// The router's own address, a /32 on `lo` independent of its links
    /// (`router_addr`, or drawn from `[topology] router_addrs`): flows and
    /// tunnel ends use it, so they outlive the loss of any one link.
    /// `None`: the first link's address stands for the router.
    pub router_addr: Option<Ipv4Addr>,
}

impl Node {
    /// True when the testbed runs vlsp's NSIS node here.
    pub fn runs_vlsp(&self) -> bool {
        self.nsis && !self.external
    }
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
    /// OSPF cost (`cost`, default [`DEFAULT_COST`]).
    pub cost: u32,
    /// Its own OSPF timers and BFD, see [`ospf::link_timers`].
    pub ospf: LinkOspf,
}

/// A virtual network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnet {
    pub name: String,
    pub id: u128,
}

/// A virtual interface of a virtual node: its own bridge on the host, so
/// a virtual link's tunnel end shares an L2 segment with nothing but it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// The id VLSP objects name it by (source/destination vif id).
    pub id: u64,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// Bridge in the host's namespace: this interface and at most one
    /// virtual link's tunnel end.
    pub bridge: String,
    /// The host-side veth (the tap, for a QEMU guest).
    pub host_ifname: String,
    /// The interface's name inside the virtual node (`eth0`, `eth1`, ...).
    pub ifname: String,
}

impl Vif {
    /// Bridge, host-side veth (or tap) and in-node names of interface
    /// number `index` of the `nth` virtual node on a host. The first
    /// interface keeps the names of the paper's Fig. 7 (`br0`).
    pub fn names(nth: usize, index: usize, qemu: bool) -> (String, String, String) {
        let port = if qemu { "vq" } else { "vn" };
        let (bridge, host) = match index {
            0 => (format!("br{nth}"), format!("{port}{nth}")),
            i => (format!("br{nth}v{i}"), format!("{port}{nth}v{i}")),
        };
        (bridge, host, format!("eth{index}"))
    }
}

/// A virtual node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnode {
    pub name: String,
    pub vnet: String,
    pub host: String,
    pub id: u128,
    /// The first interface's id, address, bridge and host-side port (the
    /// only interface of a QEMU guest); all of them are in `interfaces`.
    pub vif_id: u64,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub kind: VnodeKind,
    pub bridge: String,
    pub host_ifname: String,
    /// Every virtual interface, the first one included.
    pub interfaces: Vec<Vif>,
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
    pub gist_mode: GistMode,
    pub routing: Routing,
    pub ospf: OspfSettings,
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

/// OSPF cost of a link without `cost`.
pub const DEFAULT_COST: u32 = 10;

/// Capacity of a link without `capacity`: 1 Gbit/s.
pub const DEFAULT_CAPACITY: u64 = 1_000_000_000;

impl Link {
    /// The link's capacity as a [`Rate`].
    pub fn capacity(&self) -> Rate {
        Rate::from_bps(self.capacity_bps)
    }
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let src = file::read(path)?;
        Self::parse(&src, path)
    }

    /// Parses and validates `src` (named `path` in messages).
    pub fn parse(src: &str, path: &Path) -> Result<Self, TopologyError> {
        let src = file::Source { text: src, path };
        let f = file::parse_toml(&src)?;
        validate::build(&f, &src)
    }

    /// The topology's name as a checked [`crate::model::paths::TopoName`]
    /// (validation guarantees it).
    pub fn topo_name(&self) -> crate::model::paths::TopoName {
        crate::model::paths::TopoName::new(&self.name).expect("validated on parse")
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
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
                    for i in &mut v.interfaces {
                        i.host_ifname = i.host_ifname.replacen("vq", "vn", 1);
                    }
                }
                VnodeKind::Qemu => {
                    v.qemu.get_or_insert(QemuConf {
                        memory_mb: 256,
                        cpus: 1,
                        kernel: None,
                        disk: None,
                    });
                    v.host_ifname = v.host_ifname.replacen("vn", "vq", 1);
                    for i in &mut v.interfaces {
                        i.host_ifname = i.host_ifname.replacen("vn", "vq", 1);
                    }
                }
            }
        }
    }

    /// Virtual nodes hosted on `node`.
    pub fn vnodes_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Vnode> + 'a {
        self.vnodes.iter().filter(move |v| v.host == node)
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

#[cfg(test)]
mod tests {
    use super::*;
    use routes::network;

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
            // 6 links, 2 attached: 4 subnets to route (siblings may merge),
            // and the 5 other routers' addresses.
            let r = t.routes(&n.name);
            assert!((1..=9).contains(&r.len()), "{}", n.name);
            for o in t.nodes.iter().filter(|o| o.name != n.name) {
                let a = u32::from(o.router_addr.unwrap());
                assert!(
                    r.iter()
                        .any(|x| network(Ipv4Addr::from(a), x.prefix_len) == u32::from(x.dest)),
                    "{} has no route to {}'s address",
                    n.name,
                    o.name
                );
            }
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
        let t = Topology::parse(&chain("c", 300, 1).unwrap(), Path::new("c.toml")).unwrap();
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

    const TWO_NODES: &str =
        "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\n[[vnet]]\nname = \"v\"\nid = 1\n";

    fn vnode(name: &str, id: u32) -> String {
        format!(
            "[[vnode]]\nname = \"{name}\"\nvnet = \"v\"\nhost = \"a\"\nid = {id}\naddress = \"10.9.0.{id}/24\"\n"
        )
    }

    #[test]
    fn vnode_names_that_cannot_name_a_namespace_are_refused_with_a_position() {
        let long = "V".repeat(60);
        for name in ["VM 1", "VM/1", long.as_str(), "", "-VM"] {
            let m = bad(&format!("{TWO_NODES}{}", vnode(name, 1)));
            // line 21 is the vnode's name, its value starts at column 8
            assert!(
                m.starts_with("t.toml:21:8:") && m.contains("virtual node name"),
                "{name:?}: {m}"
            );
        }
        let m = bad("[[node]]\nname = \"c d\"\n");
        assert!(
            m.starts_with("t.toml:15:8:") && m.contains("node name"),
            "{m}"
        );
    }

    #[test]
    fn duplicate_vnode_ids_are_refused() {
        let m = bad(&format!(
            "{TWO_NODES}{}{}",
            vnode("VM1", 1),
            vnode("VM2", 1)
        ));
        assert!(
            m.starts_with("t.toml:30:6:") && m.contains("already VM1's"),
            "{m}"
        );
    }

    #[test]
    fn topology_names_follow_the_run_directory_rule() {
        for name in ["", "../x", "a/b", "Paper", "a_b", &"x".repeat(25)] {
            let src = BASE.replacen("name = \"t\"", &format!("name = {name:?}"), 1);
            let m = Topology::parse(&src, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                m.starts_with("t.toml:2:8:") && m.contains("lowercase"),
                "{m}"
            );
        }
    }

    #[test]
    fn zero_refresh_is_refused_not_clamped() {
        let src = BASE.replacen("name = \"t\"", "name = \"t\"\nrefresh_ms = 0", 1);
        let m = Topology::parse(&src, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("t.toml:3:14:") && m.contains("refresh_ms = 0"),
            "{m}"
        );
        let src = BASE.replacen("name = \"t\"", "name = \"t\"\nrefresh_ms = 99", 1);
        let m = Topology::parse(&src, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("at least 100 ms"), "{m}");
        let src = BASE.replacen("name = \"t\"", "name = \"t\"\nrefresh_ms = 500", 1);
        let t = Topology::parse(&format!("{src}{TWO_NODES}"), Path::new("t.toml")).unwrap();
        assert_eq!(t.refresh_ms, 500);
    }

    #[test]
    fn non_utf8_files_report_the_bad_byte_position() {
        let p = std::env::temp_dir().join(format!("vlsp-utf8-{}.toml", std::process::id()));
        let mut b = BASE.as_bytes().to_vec();
        b.extend_from_slice(b"# caf\xe9\n");
        std::fs::write(&p, &b).unwrap();
        let e = Topology::load(&p).unwrap_err();
        std::fs::remove_file(&p).unwrap();
        assert_eq!((e.line, e.column), (14, 6), "{e}");
    }

    #[test]
    fn provider_auth_policy_has_profile_defaults_and_checked_values() {
        let link = "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\n";
        let parse = |s: &str| {
            Topology::parse(&format!("{s}{link}"), Path::new("t.toml"))
                .unwrap()
                .providers[0]
                .auth
        };
        let rfc = parse(BASE);
        assert_eq!(rfc, AuthPolicy::defaults(Profile::Rfc));
        assert_eq!((rfc.max_skew_s, rfc.max_window_s), (30, 600));
        assert!(!rfc.unsigned_tear_same_peer);
        let ka = BASE.replacen("name = \"t\"\n", "name = \"t\"\nprofile = \"nsis-ka\"\n", 1);
        assert_eq!(parse(&ka).max_skew_s, 7200);
        let set = parse(&format!(
            "{BASE}[provider.auth]\nmax_skew_s = 5\nmax_window_s = 60\nunsigned_tear = \"same-peer\"\nreplay_cache = 10\n"
        ));
        assert_eq!(
            set,
            AuthPolicy {
                max_skew_s: 5,
                max_window_s: 60,
                unsigned_tear_same_peer: true,
                replay_cache: 10,
            }
        );
        for (extra, at, what) in [
            (
                "[provider.auth]\nunsigned_tear = \"maybe\"\n",
                "t.toml:15:17:",
                "use \"refuse\" or \"same-peer\"",
            ),
            (
                "[provider.auth]\nmax_window_s = 0\n",
                "t.toml:15:16:",
                "out of range",
            ),
            (
                "[provider.auth]\nreplay_cache = 0\n",
                "t.toml:15:16:",
                "out of range",
            ),
            (
                "[provider.auth]\nmax_skew = 5\n",
                "t.toml:",
                "unknown field `max_skew`",
            ),
        ] {
            let m = bad(extra);
            assert!(
                m.starts_with(at) && m.contains(what),
                "expected {at}..{what}, got: {m}"
            );
        }
    }

    #[test]
    fn link_capacity_is_a_rate_in_tc_units() {
        let t = Topology::parse(
            &format!("{BASE}[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\ncapacity = \"125kbps\"\n"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(t.links[0].capacity(), Rate::from_bps(1_000_000));
        let m = bad(
            "[[link]]\na = \"a:10.0.0.1/24\"\nb = \"b:10.0.0.2/24\"\ncapacity = \"3 furlongs\"\n",
        );
        assert!(m.starts_with("t.toml:17:12:") && m.contains("unit"), "{m}");
    }

    #[test]
    fn the_effective_topology_round_trips_through_toml() {
        for f in [
            "paper-4node.toml",
            "multi-inp-10node.toml",
            "plain-router.toml",
            "vif-4node.toml",
        ] {
            let mut t = load(f);
            for l in &mut t.links {
                l.capacity_bps = 20_000_000;
            }
            t.backend = Backend::Script;
            t.refresh_ms = 1234;
            t.providers[0].accept_unsigned = true;
            if t.vnodes.iter().all(|v| v.interfaces.len() == 1) {
                t.set_vnode_kind(VnodeKind::Qemu);
            }
            let text = t.to_toml();
            let mut back = Topology::parse(&text, Path::new("saved.toml"))
                .unwrap_or_else(|e| panic!("{f}: {e}\n{text}"));
            back.source = t.source.clone();
            assert_eq!(back, t, "{f}");
        }
    }

    #[test]
    fn every_virtual_interface_is_its_own_segment() {
        let t = load("vif-4node.toml");
        let vm1 = &t.vnodes[0];
        let names: Vec<_> = vm1
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.id,
                    i.bridge.as_str(),
                    i.host_ifname.as_str(),
                    i.ifname.as_str(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (1, "br0", "vn0", "eth0"),
                (2, "br0v1", "vn0v1", "eth1"),
                (3, "br0v2", "vn0v2", "eth2")
            ]
        );
        assert_eq!((vm1.vif_id, vm1.bridge.as_str()), (1, "br0"));
        // Without `interfaces`, one interface as before.
        let p = load("paper-4node.toml");
        assert_eq!(p.vnodes[0].interfaces.len(), 1);
        assert_eq!(p.vnodes[0].interfaces[0].bridge, "br0");
    }

    #[test]
    fn names_of_many_interfaces_are_unique_and_fit_ifnamsiz() {
        // A node with more links than a bridge has ports (1023): one
        // bridge per interface, so 1100 interfaces are 1100 bridges.
        let mut seen = std::collections::HashSet::new();
        for nth in [0, 7, 99] {
            for i in 0..super::MAX_VIFS {
                let (b, h, n) = Vif::names(nth, i, false);
                for x in [&b, &h, &n] {
                    crate::model::paths::check_ifname(x).unwrap();
                }
                assert!(seen.insert((nth, b)) && seen.insert((nth, h)));
            }
        }
        let src = format!(
            "{BASE}{TWO_NODES}[[vnode]]\nname = \"VM\"\nvnet = \"v\"\nhost = \"a\"\nid = 1\ninterfaces = [{}]\n",
            (0..1100)
                .map(|i| format!(
                    "{{ id = {}, addr = \"10.{}.{}.1/24\" }}",
                    i + 1,
                    100 + i / 256,
                    i % 256
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let t = Topology::parse(&src, Path::new("t.toml")).unwrap();
        assert_eq!(t.vnodes[0].interfaces.len(), 1100);
        assert_eq!(t.vnodes[0].interfaces[1099].bridge, "br0v1099");
    }

    #[test]
    fn bad_interfaces_are_refused_with_a_position() {
        let v = "[[vnode]]\nname = \"VM\"\nvnet = \"v\"\nhost = \"a\"\nid = 1\n";
        let cases: &[(&str, &str, &str)] = &[
            (
                "interfaces = [{ id = 1, addr = \"10.9.0.1/24\" }, { id = 1, addr = \"10.9.1.1/24\" }]\n",
                "t.toml:25:49:",
                "interface id 1 is declared twice",
            ),
            (
                "interfaces = [{ id = 1, addr = \"10.9.0.1/24\" }, { id = 2, addr = \"10.9.0.1/24\" }]\n",
                "t.toml:25:",
                "already used in this virtual network",
            ),
            (
                "address = \"10.9.0.1/24\"\ninterfaces = [{ id = 1, addr = \"10.9.0.1/24\" }]\n",
                "t.toml:26:14:",
                "both `address` and `interfaces`",
            ),
            ("interfaces = []\n", "t.toml:25:14:", "1..=4096"),
            (
                "interfaces = [{ id = 1, addr = \"10.9.0.1/24\", colour = 1 }]\n",
                "t.toml:",
                "unknown field `colour`",
            ),
            ("kind = \"netns\"\n", "t.toml:20:1:", "has no interface"),
            (
                "kind = \"qemu\"\ninterfaces = [{ id = 1, addr = \"10.9.0.1/24\" }, { id = 2, addr = \"10.9.1.1/24\" }]\n",
                "t.toml:26:14:",
                "QEMU guest has one virtual interface",
            ),
        ];
        for (extra, at, what) in cases {
            let m = bad(&format!("{TWO_NODES}{v}{extra}"));
            assert!(
                m.starts_with(at) && m.contains(what),
                "expected {at}..{what}, got: {m}"
            );
        }
        let ipip = BASE.replacen("name = \"t\"", "name = \"t\"\ntunnel = \"ipip\"", 1);
        let m = Topology::parse(&format!("{ipip}{TWO_NODES}"), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("t.toml:1:1:") && m.contains("Ethernet"),
            "{m}"
        );
    }
}
