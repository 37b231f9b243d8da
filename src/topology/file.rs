//! The topology file: its TOML sections as read (with positions), the
//! error type that names `file:line:column`, the parse entry, and the way
//! back to TOML for the effective topology a testbed saves.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{GistMode, Routing, Topology, VnodeKind};
use crate::model::tunnel::{Backend, TunnelKind};
use crate::model::units::Rate;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub topology: Spanned<Header>,
    #[serde(default)]
    pub provider: Vec<Spanned<ProviderDef>>,
    #[serde(default)]
    pub node: Vec<Spanned<NodeDef>>,
    #[serde(default)]
    pub link: Vec<Spanned<LinkDef>>,
    #[serde(default)]
    pub vnet: Vec<Spanned<VnetDef>>,
    #[serde(default)]
    pub vnode: Vec<Spanned<VnodeDef>>,
    /// OSPF timers (`routing = "ospf"`).
    pub ospf: Option<Spanned<OspfDef>>,
}

/// `[ospf]`: each key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OspfDef {
    pub hello_s: Option<Spanned<u32>>,
    pub dead_s: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub profile: Profile,
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub tunnel: TunnelKind,
    /// Default [`DEFAULT_REFRESH_MS`].
    pub refresh_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub gist_mode: GistMode,
    #[serde(default)]
    pub routing: Routing,
}

/// The QoS NSLP refresh period R without `refresh_ms` (RFC 5974's 30 s).
pub const DEFAULT_REFRESH_MS: u64 = 30_000;

/// The shortest refresh period a node runs (`refresh_ms` below is refused).
pub const MIN_REFRESH_MS: u64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderDef {
    pub name: Spanned<String>,
    pub key_id: Option<u32>,
    pub key: Option<String>,
    #[serde(default)]
    pub transform: Transform,
    pub entity: Option<String>,
    #[serde(default)]
    pub accept: Vec<String>,
    #[serde(default = "default_unsigned")]
    pub unsigned: String,
    pub auth: Option<Spanned<AuthDef>>,
}

/// `[provider.auth]`: each key optional (defaults by profile).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthDef {
    pub max_skew_s: Option<Spanned<u64>>,
    pub max_window_s: Option<Spanned<u64>>,
    pub unsigned_tear: Option<Spanned<String>>,
    pub replay_cache: Option<Spanned<u64>>,
}

fn default_unsigned() -> String {
    "refuse".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeDef {
    pub name: Spanned<String>,
    pub provider: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub nsis: bool,
    pub external: Option<Spanned<bool>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkDef {
    pub a: Spanned<String>,
    pub b: Spanned<String>,
    #[serde(default)]
    pub capacity: Option<Spanned<String>>,
    #[serde(default)]
    pub delay: Option<Spanned<String>>,
    #[serde(default)]
    pub loss: Option<Spanned<String>>,
    /// OSPF cost of the link (both directions).
    pub cost: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VnetDef {
    pub name: Spanned<String>,
    pub id: Spanned<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VnodeDef {
    pub name: Spanned<String>,
    pub vnet: Spanned<String>,
    pub host: Spanned<String>,
    pub id: Spanned<toml::Value>,
    /// The one interface's id (default 1), without `interfaces`.
    pub vif_id: Option<Spanned<u64>>,
    /// The one interface's address, without `interfaces`.
    pub address: Option<Spanned<String>>,
    /// Several interfaces, each its own L2 segment.
    pub interfaces: Option<Spanned<Vec<Spanned<VifDef>>>>,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VifDef {
    pub id: Spanned<u64>,
    pub addr: Spanned<String>,
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
}

#[derive(Serialize)]
struct LinkOut {
    a: String,
    b: String,
    capacity: String,
    cost: u32,
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
