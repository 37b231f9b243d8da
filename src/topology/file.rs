//! The topology file: its TOML sections as read (with positions), the
//! error type that names `file:line:column`, the parse entry, and the way
//! back to TOML for the effective topology a testbed saves.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GistMode, Routing, Topology, VnodeKind};
use crate::model::spanned::Spanned;
use crate::model::tunnel::{Backend, TunnelKind};
use crate::model::units::{RATE_PATTERN, Rate};
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
    /// `file:line:column: message`; `file: message` for a file that could
    /// not be read (line 0).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
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

/// Line and column (both from 1, the column in characters) of byte
/// `offset` of `src`.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(src.len());
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    let before = &src[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The source text and its name, for errors with a position.
pub(crate) struct Source<'a> {
    pub text: &'a str,
    pub path: &'a Path,
}

impl Source<'_> {
    pub fn err(&self, span: Range<usize>, message: impl Into<String>) -> TopologyError {
        let (line, column) = line_col(self.text, span.start);
        TopologyError {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Reads `path`; a file that is not UTF-8 is refused at its first bad byte.
pub(crate) fn read(path: &Path) -> Result<String, TopologyError> {
    let bytes = std::fs::read(path).map_err(|e| TopologyError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the topology file: {e}"),
    })?;
    text(bytes, path)
}

/// `bytes` as UTF-8, or an error at the line and column of the first byte
/// that is not.
pub(crate) fn text(bytes: Vec<u8>, path: &Path) -> Result<String, TopologyError> {
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&e.as_bytes()[..good]).expect("valid prefix");
        let (line, column) = line_col(valid, good);
        TopologyError {
            file: path.to_path_buf(),
            line,
            column,
            message: format!(
                "byte 0x{:02x} is not UTF-8: save the file as UTF-8",
                e.as_bytes()[good]
            ),
        }
    })
}

/// The file's sections, as TOML gives them.
pub(crate) fn parse_toml(src: &Source) -> Result<File, TopologyError> {
    toml::from_str(src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        src.err(span, e.message().trim().to_string())
    })
}

// ------------------------------------------------------------ as read
//
// These types are also the JSON Schema of the file (`vlsp schema topology`):
// doc comments become descriptions, so they speak to the file's author.

/// A vlsp topology file: routers of one or more infrastructure providers,
/// the substrate links between them, and the virtual nodes of virtual
/// networks that signed QoS RESERVEs join with virtual links.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "vlsp topology file")]
pub(crate) struct File {
    pub topology: Spanned<Header>,
    /// Infrastructure providers, each with its key and authorization policy.
    #[serde(default)]
    pub provider: Vec<Spanned<ProviderDef>>,
    /// Routers (one network namespace each).
    #[serde(default)]
    pub node: Vec<Spanned<NodeDef>>,
    /// Substrate links between two routers.
    #[serde(default)]
    pub link: Vec<Spanned<LinkDef>>,
    /// Virtual networks.
    #[serde(default)]
    pub vnet: Vec<Spanned<VnetDef>>,
    /// Virtual nodes, each hosted on a router.
    #[serde(default)]
    pub vnode: Vec<Spanned<VnodeDef>>,
    /// OSPF timers, BFD and areas (`routing = "ospf"`).
    pub ospf: Option<Spanned<OspfDef>>,
}

/// `[ospf]`: each key optional.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OspfDef {
    /// OSPF hello interval in seconds (default 1).
    pub hello_s: Option<Spanned<u32>>,
    /// OSPF dead interval in seconds, at least two hellos (default 4).
    pub dead_s: Option<Spanned<u32>>,
    /// "one" (default: every interface in area 0) or "per-provider" (each
    /// provider's links an area, the links between providers area 0).
    pub areas: Option<Spanned<super::OspfAreas>>,
    /// BFD beside OSPF on every link (default false; a link may say
    /// otherwise): a neighbour that falls silent with its link up is dead
    /// after bfd_interval_ms x bfd_multiplier instead of dead_s.
    pub bfd: Option<Spanned<bool>>,
    /// BFD transmit and receive interval in milliseconds, 10..=10000
    /// (default 100).
    #[schemars(range(min = 10, max = 10000))]
    pub bfd_interval_ms: Option<Spanned<u32>>,
    /// BFD packets missed before the neighbour is dead, 1..=255 (default 3).
    #[schemars(range(min = 1, max = 255))]
    pub bfd_multiplier: Option<Spanned<u32>>,
}

/// `[topology]`: the name and the settings every node shares.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    /// 1-24 lowercase letters, digits and '-' (not first): names
    /// /run/vlsp/NAME/ and the namespaces vlsp-NAME-NODE.
    #[schemars(pattern(r"^[a-z0-9][a-z0-9-]{0,23}$"), example = &"paper-4node")]
    pub name: Spanned<String>,
    /// Free text, shown by `vlsp graph`.
    #[serde(default)]
    pub description: String,
    /// Which reading of the specifications goes on the wire.
    #[serde(default)]
    pub profile: Profile,
    /// Which mechanism creates tunnel ends.
    #[serde(default)]
    pub backend: Backend,
    /// The tunnel type virtual links ask for (one that carries Ethernet:
    /// vxlan, gretap or geneve).
    #[serde(default)]
    pub tunnel: TunnelKind,
    /// QoS NSLP refresh period R in milliseconds (at least 100; default
    /// 30000, RFC 5974's 30 s).
    #[schemars(range(min = MIN_REFRESH_MS), example = 30000)]
    pub refresh_ms: Option<Spanned<u64>>,
    /// How GIST carries the signaling after the Query: "d" (datagrams)
    /// or "c" (messaging associations over TCP).
    #[serde(default)]
    pub gist_mode: GistMode,
    /// How routers learn routes: "static" (shortest paths computed by
    /// vlsp, recomputed around faults) or "ospf" (bird2 in every router).
    #[serde(default)]
    pub routing: Routing,
    /// A range (ADDRESS/PREFIX) that gives every router without
    /// `router_addr` an address of its own, in file order (the first
    /// router gets the range's first host address). Unset: routers are
    /// addressed by their first link, as in the paper's layout.
    #[schemars(example = &"10.255.0.0/24")]
    pub router_addrs: Option<Spanned<String>>,
}

/// The QoS NSLP refresh period R without `refresh_ms` (RFC 5974's 30 s).
pub const DEFAULT_REFRESH_MS: u64 = 30_000;

/// The shortest refresh period a node runs (`refresh_ms` below is refused).
pub const MIN_REFRESH_MS: u64 = 100;

/// `[[provider]]`: an infrastructure provider, its pre-shared key and the
/// policy its routers apply to RESERVEs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderDef {
    /// The provider's name, as `[[node]] provider = ...` names it.
    #[schemars(example = &"kit")]
    pub name: Spanned<String>,
    /// Key id carried in the Session Authorization object.
    pub key_id: Option<u32>,
    /// The HMAC key: text, or "hex:..." for bytes.
    #[schemars(example = &"hex:00112233445566778899aabbccddeeff")]
    pub key: Option<String>,
    /// The HMAC transform.
    #[serde(default)]
    pub transform: Transform,
    /// Authorizing entity id carried in the Session Authorization object.
    #[schemars(example = &"vnp@example.net")]
    pub entity: Option<String>,
    /// Other providers whose signed RESERVEs this one accepts.
    #[serde(default)]
    pub accept: Vec<String>,
    /// Unsigned RESERVEs: "refuse" (default) or "accept".
    #[serde(default = "default_unsigned")]
    #[schemars(extend("enum" = ["refuse", "accept"]))]
    pub unsigned: String,
    /// Authorization checks (defaults by profile).
    pub auth: Option<Spanned<AuthDef>>,
}

/// `[provider.auth]`: each key optional (defaults by profile).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthDef {
    /// Largest clock difference accepted in a signed timestamp, seconds.
    pub max_skew_s: Option<Spanned<u64>>,
    /// Longest validity window (start to end time) accepted, seconds.
    #[schemars(range(min = 1))]
    pub max_window_s: Option<Spanned<u64>>,
    /// Unsigned teardowns: "refuse" or "same-peer" (accepted from the
    /// peer the reservation came from).
    #[schemars(extend("enum" = ["refuse", "same-peer"]))]
    pub unsigned_tear: Option<Spanned<String>>,
    /// Signatures remembered against replays.
    #[schemars(range(min = 1))]
    pub replay_cache: Option<Spanned<u64>>,
}

fn default_unsigned() -> String {
    "refuse".into()
}

/// `[[node]]`: a router, in a network namespace of its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeDef {
    /// The router's name.
    #[schemars(example = &"tb1")]
    pub name: Spanned<String>,
    /// The provider running it (default: the only one).
    pub provider: Option<Spanned<String>>,
    /// Runs an NSIS node (false: a plain IP router).
    #[serde(default = "yes")]
    pub nsis: bool,
    /// Its NSIS daemon is started by hand (`ip netns exec ...`), not by vlsp.
    pub external: Option<Spanned<bool>>,
    /// An address of the router's own (a /32 on `lo`), outside every
    /// link's subnet: its flows and tunnel ends use it, so a virtual link
    /// survives the loss of any one substrate link. Default: one from
    /// `[topology] router_addrs`, else none (the first link's address).
    #[schemars(example = &"10.255.0.1")]
    pub router_addr: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// `[[link]]`: a substrate link between two routers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkDef {
    /// One end: ROUTER:ADDRESS/PREFIX.
    #[schemars(pattern(ENDPOINT_PATTERN), example = &"tb1:172.1.2.1/24")]
    pub a: Spanned<String>,
    /// The other end: ROUTER:ADDRESS/PREFIX.
    #[schemars(pattern(ENDPOINT_PATTERN), example = &"tb2:172.1.2.2/24")]
    pub b: Spanned<String>,
    /// Capacity, in tc's units (bit = bits/s, bps = bytes/s).
    #[serde(default)]
    #[schemars(pattern(RATE_PATTERN), example = &"1gbit")]
    pub capacity: Option<Spanned<String>>,
    /// Not supported on this kernel (needs sch_netem).
    #[serde(default)]
    pub delay: Option<Spanned<String>>,
    /// Not supported on this kernel (needs sch_netem).
    #[serde(default)]
    pub loss: Option<Spanned<String>>,
    /// OSPF cost of the link (both directions), 1-65535 (default 10).
    #[schemars(range(min = 1, max = 65535))]
    pub cost: Option<Spanned<u32>>,
    /// OSPF hello interval of this link in seconds (default: [ospf] hello_s).
    #[schemars(range(min = 1, max = 65535))]
    pub hello_s: Option<Spanned<u32>>,
    /// OSPF dead interval of this link in seconds, at least two hellos
    /// (default: [ospf] dead_s, raised to 4 hellos when this link sets a
    /// longer hello_s).
    pub dead_s: Option<Spanned<u32>>,
    /// BFD on this link (default: [ospf] bfd).
    pub bfd: Option<Spanned<bool>>,
}

/// `ROUTER:ADDRESS/PREFIX` of a link end.
const ENDPOINT_PATTERN: &str = r"^[^:]+:[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$";

/// `[[vnet]]`: a virtual network.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VnetDef {
    /// The virtual network's name, as `[[vnode]] vnet = ...` names it.
    pub name: Spanned<String>,
    /// Its 128-bit id in the VLSP object.
    #[schemars(with = "Id128")]
    pub id: Spanned<toml::Value>,
}

/// `[[vnode]]`: a virtual node of a virtual network, hosted on a router.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VnodeDef {
    /// The virtual node's name, as `vlsp link setup --from` names it.
    #[schemars(example = &"VM1")]
    pub name: Spanned<String>,
    /// The virtual network it belongs to.
    pub vnet: Spanned<String>,
    /// The router hosting it.
    pub host: Spanned<String>,
    /// Its 128-bit id in the VLSP object.
    #[schemars(with = "Id128")]
    pub id: Spanned<toml::Value>,
    /// The one interface's id (default 1), without `interfaces`.
    pub vif_id: Option<Spanned<u64>>,
    /// The one interface's address, without `interfaces`.
    #[schemars(example = &"10.10.0.1/24")]
    pub address: Option<Spanned<String>>,
    /// Several interfaces, each its own L2 segment.
    pub interfaces: Option<Spanned<Vec<Spanned<VifDef>>>>,
    /// A network namespace or a QEMU guest.
    #[serde(default)]
    pub kind: VnodeKind,
    /// QEMU guests: memory in MiB.
    #[serde(default = "mem_default")]
    pub memory_mb: u32,
    /// QEMU guests: virtual CPUs.
    #[serde(default = "one_u32")]
    pub cpus: u32,
    /// QEMU guests: kernel image (default: /boot/vmlinuz-*-cloud-amd64).
    pub kernel: Option<Spanned<String>>,
    /// QEMU guests: a disk image to boot instead of kernel + initramfs.
    pub disk: Option<Spanned<String>>,
}

/// One entry of `interfaces = [{ id = 1, addr = "10.0.0.1/24" }, ...]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VifDef {
    /// The interface's id.
    pub id: Spanned<u64>,
    /// The interface's address: ADDRESS/PREFIX.
    #[schemars(example = &"10.0.0.1/24")]
    pub addr: Spanned<String>,
}

/// The schema of a 128-bit id as the file writes it.
struct Id128;

impl JsonSchema for Id128 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Id128".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A 128-bit id: a non-negative integer, or a string of a decimal or \"0x\"-prefixed hex number.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*(0x[0-9a-fA-F]{1,32}|[0-9]{1,39})\\s*$" }
            ],
            "examples": [1, "0x00000001000000020000000300000004"]
        })
    }
}

/// The JSON Schema of topology files (draft 7, which Taplo reads).
pub fn schema() -> serde_json::Value {
    let g = schemars::generate::SchemaSettings::draft07().into_generator();
    serde_json::to_value(g.into_root_schema_for::<File>()).expect("a schema serializes")
}

fn mem_default() -> u32 {
    256
}
fn one_u32() -> u32 {
    1
}

// ------------------------------------------------------------ as written

#[derive(Serialize)]
struct Out {
    topology: HeaderOut,
    provider: Vec<ProviderOut>,
    node: Vec<NodeOut>,
    link: Vec<LinkOut>,
    vnet: Vec<VnetOut>,
    vnode: Vec<VnodeOut>,
    ospf: OspfOut,
}

#[derive(Serialize)]
struct OspfOut {
    hello_s: u32,
    dead_s: u32,
    areas: super::OspfAreas,
    bfd: bool,
    bfd_interval_ms: u32,
    bfd_multiplier: u32,
}

#[derive(Serialize)]
struct HeaderOut {
    name: String,
    description: String,
    profile: Profile,
    backend: Backend,
    tunnel: TunnelKind,
    refresh_ms: u64,
    gist_mode: GistMode,
    routing: Routing,
}

#[derive(Serialize)]
struct ProviderOut {
    name: String,
    key_id: u32,
    key: String,
    transform: Transform,
    entity: String,
    accept: Vec<String>,
    unsigned: &'static str,
    auth: AuthOut,
}

#[derive(Serialize)]
struct AuthOut {
    max_skew_s: u64,
    max_window_s: u64,
    unsigned_tear: &'static str,
    replay_cache: u64,
}

#[derive(Serialize)]
struct NodeOut {
    name: String,
    provider: String,
    nsis: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    router_addr: Option<String>,
}

#[derive(Serialize)]
struct LinkOut {
    a: String,
    b: String,
    capacity: String,
    cost: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    hello_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bfd: Option<bool>,
}

#[derive(Serialize)]
struct VnetOut {
    name: String,
    id: String,
}

#[derive(Serialize)]
struct VnodeOut {
    name: String,
    vnet: String,
    host: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    vif_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interfaces: Option<Vec<VifOut>>,
    kind: VnodeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_mb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<String>,
}

#[derive(Serialize)]
struct VifOut {
    id: u64,
    addr: String,
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

impl Topology {
    /// The topology as a file that parses back to an equal topology
    /// (overrides included): what a running testbed saves. Keys are
    /// written in hex, guest images as absolute paths.
    pub fn to_toml(&self) -> String {
        let out = Out {
            topology: HeaderOut {
                name: self.name.clone(),
                description: self.description.clone(),
                profile: self.profile,
                backend: self.backend,
                tunnel: self.tunnel,
                refresh_ms: self.refresh_ms,
                gist_mode: self.gist_mode,
                routing: self.routing,
            },
            provider: self
                .providers
                .iter()
                .map(|p| ProviderOut {
                    name: p.name.clone(),
                    key_id: p.key_id,
                    key: format!(
                        "hex:{}",
                        p.key.iter().map(|b| format!("{b:02x}")).collect::<String>()
                    ),
                    transform: p.transform,
                    entity: p.entity.clone(),
                    accept: p.accept.clone(),
                    unsigned: if p.accept_unsigned {
                        "accept"
                    } else {
                        "refuse"
                    },
                    auth: AuthOut {
                        max_skew_s: p.auth.max_skew_s,
                        max_window_s: p.auth.max_window_s,
                        unsigned_tear: if p.auth.unsigned_tear_same_peer {
                            "same-peer"
                        } else {
                            "refuse"
                        },
                        replay_cache: p.auth.replay_cache as u64,
                    },
                })
                .collect(),
            node: self
                .nodes
                .iter()
                .map(|n| NodeOut {
                    name: n.name.clone(),
                    provider: n.provider.clone(),
                    nsis: n.nsis,
                    external: n.external,
                    router_addr: n.router_addr.map(|a| a.to_string()),
                })
                .collect(),
            link: self
                .links
                .iter()
                .map(|l| {
                    let end =
                        |e: &super::Endpoint| format!("{}:{}/{}", e.node, e.addr, e.prefix_len);
                    LinkOut {
                        a: end(&l.a),
                        b: end(&l.b),
                        capacity: Rate::from_bps(l.capacity_bps).to_string(),
                        cost: l.cost,
                        hello_s: l.ospf.hello_s,
                        dead_s: l.ospf.dead_s,
                        bfd: l.ospf.bfd,
                    }
                })
                .collect(),
            vnet: self
                .vnets
                .iter()
                .map(|v| VnetOut {
                    name: v.name.clone(),
                    id: format!("0x{:x}", v.id),
                })
                .collect(),
            vnode: self.vnodes.iter().map(vnode_out).collect(),
            ospf: OspfOut {
                hello_s: self.ospf.hello_s,
                dead_s: self.ospf.dead_s,
                areas: self.ospf.areas,
                bfd: self.ospf.bfd,
                bfd_interval_ms: self.ospf.bfd_interval_ms,
                bfd_multiplier: self.ospf.bfd_multiplier,
            },
        };
        toml::to_string(&out).expect("a topology always serializes")
    }
}

fn vnode_out(v: &super::Vnode) -> VnodeOut {
    let q = v.qemu.as_ref();
    VnodeOut {
        name: v.name.clone(),
        vnet: v.vnet.clone(),
        host: v.host.clone(),
        id: format!("0x{:x}", v.id),
        // One interface in the short form, several as a list.
        vif_id: (v.interfaces.len() <= 1).then_some(v.vif_id),
        address: (v.interfaces.len() <= 1).then(|| format!("{}/{}", v.addr, v.prefix_len)),
        interfaces: (v.interfaces.len() > 1).then(|| {
            v.interfaces
                .iter()
                .map(|i| VifOut {
                    id: i.id,
                    addr: format!("{}/{}", i.addr, i.prefix_len),
                })
                .collect()
        }),
        kind: v.kind,
        memory_mb: q.map(|q| q.memory_mb),
        cpus: q.map(|q| q.cpus),
        kernel: q.and_then(|q| q.kernel.as_deref()).map(absolute),
        disk: q.and_then(|q| q.disk.as_deref()).map(absolute),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        // Columns count characters, not bytes.
        assert_eq!(line_col("é\nxé=", 6), (2, 3));
    }

    #[test]
    fn non_utf8_is_refused_at_its_first_bad_byte() {
        let mut b = b"[topology]\nname = \"ab".to_vec();
        b.push(0xff);
        let e = text(b, Path::new("x.toml")).unwrap_err();
        assert_eq!((e.line, e.column), (2, 11), "{e}");
        assert!(e.to_string().starts_with("x.toml:2:11:") && e.message.contains("0xff"));
    }
}
