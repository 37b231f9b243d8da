//! One node's configuration as a file of its own (`vlsp node --config`):
//! what [`NodeConfig::from_topology`] resolves, written out so a node can
//! run where the topology file is not (a pod, another host). Keys are never
//! in it: each provider names where its key comes from (a key file, or the
//! environment), so a config file can be shown, shipped and diffed freely.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::config::{LinkConf, NodeConfig, RouteConf, Signer, VifConf, VnodeConf};
use crate::model::tunnel::{Backend, TunnelKind};
use crate::wire::auth::{KeyRing, Transform, VerifyPolicy};
use crate::wire::profile::Profile;

/// Why a node file or its keys cannot be used.
#[derive(Debug, Error)]
pub enum NodeFileError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error(
        "{file}: no key for provider {provider:?}: give `--key-file {provider}=PATH`, set {env}, or put `key_file = \"PATH\"` in its [[provider]]"
    )]
    MissingKey {
        file: String,
        provider: String,
        env: String,
    },
    #[error("key file {path} (provider {provider:?}): {message}")]
    KeyFile {
        path: String,
        provider: String,
        message: String,
    },
    #[error(
        "{file}: [[link]] {ifname} ({addr}): no interface of that name or with that address in this namespace (have: {have}); create it or fix the [[link]]"
    )]
    NoInterface {
        file: String,
        ifname: String,
        addr: Ipv4Addr,
        have: String,
    },
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
}

/// The file's top table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub node: NodeSection,
    #[serde(default)]
    pub link: Vec<LinkEntry>,
    #[serde(default)]
    pub route: Vec<RouteEntry>,
    #[serde(default)]
    pub vnode: Vec<VnodeEntry>,
    /// This node's own provider first, then every provider it signs for.
    #[serde(default)]
    pub provider: Vec<ProviderEntry>,
    /// Per far-end address, the providers whose signatures requests carry.
    #[serde(default)]
    pub signers: Vec<SignersEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub topology: String,
    pub name: String,
    /// This node's provider (a [[provider]] entry).
    pub provider: String,
    #[serde(default)]
    pub profile: Profile,
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub tunnel: TunnelKind,
    pub tunnel_addr: Ipv4Addr,
    pub refresh_ms: u64,
    pub lifetime_ms: u64,
    pub gist_t1_ms: u64,
    pub gist_t2_ms: u64,
    pub nslp_retry_ms: u64,
    pub nslp_retry_max_ms: u64,
    pub require_auth: bool,
    #[serde(default)]
    pub accept: Vec<String>,
    /// Accepted clock difference of START_TIME / END_TIME.
    pub max_skew_s: u64,
    /// Longest END_TIME − START_TIME accepted.
    pub max_window_s: u64,
    /// Sessions the replay cache remembers at most.
    pub replay_cache: usize,
    #[serde(default)]
    pub unsigned_tear_same_peer: bool,
    #[serde(default = "yes")]
    pub qos_enforce: bool,
    #[serde(default)]
    pub cmode: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    /// Interface name as the topology calls it; an interface carrying
    /// `addr` is used instead when the names differ (pods call theirs eth1..).
    pub ifname: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub capacity_bps: u64,
    /// The link has its root HTB qdisc before the node starts (`vlsp up`
    /// shapes every link up to 300 routers). Unset, the node's first
    /// RESERVE over it waits until its class, and the qdisc, are in place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shaped: bool,
    /// The address of the link's other end: the node's signaling to it
    /// takes a socket connected to it, which spares the kernel a route
    /// lookup per datagram. Unset, the routes' next hops are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub dest: Ipv4Addr,
    pub prefix_len: u8,
    pub via: Ipv4Addr,
    pub ifname: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VnodeEntry {
    pub name: String,
    /// Hex (`0x...`): TOML integers stop at 63 bits.
    pub vnet_id: String,
    pub vnode_id: String,
    pub host: String,
    pub host_addr: Ipv4Addr,
    #[serde(default)]
    pub vif: Vec<VifEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VifEntry {
    pub id: u64,
    pub bridge: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub name: String,
    pub entity: String,
    pub key_id: u32,
    #[serde(default)]
    pub transform: Transform,
    /// END_TIME − START_TIME of the objects signed for this provider.
    pub window_s: u64,
    /// Where the key is, when neither `--key-file` nor the environment
    /// gives it. Relative paths are relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignersEntry {
    pub dest: Ipv4Addr,
    pub providers: Vec<String>,
}

/// The environment variable a provider's key may come from:
/// `VLSP_KEY_` and the name in capitals, '-' and '.' as '_'.
pub fn key_env_var(provider: &str) -> String {
    let up: String = provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("VLSP_KEY_{up}")
}

/// A key as a file or variable holds it: `hex:` and hex digits, or the
/// text's bytes; one trailing newline is not part of it.
pub fn decode_key(text: &str) -> Result<Vec<u8>, String> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    let t = t.strip_suffix('\r').unwrap_or(t);
    if t.is_empty() {
        return Err("the key is empty".into());
    }
    match t.strip_prefix("hex:") {
        Some(h) if h.len() % 2 == 0 && h.is_ascii() => {
            crate::model::unhex(h).ok_or_else(|| "\"hex:...\" holds a non-hex digit".into())
        }
        Some(_) => Err("\"hex:...\" needs an even number of hex digits".into()),
        None => Ok(t.as_bytes().to_vec()),
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Where keys come from, first match wins: `--key-file` paths, the
/// environment, the config's `key_file`, the topology's own keys.
#[derive(Debug, Default, Clone)]
pub struct KeySources {
    pub files: HashMap<String, PathBuf>,
    pub env: HashMap<String, String>,
    pub inline: HashMap<String, Vec<u8>>,
}

impl KeySources {
    /// `--key-file` arguments and the process's `VLSP_KEY_*` variables.
    pub fn from_args_and_env(args: &[String]) -> Result<Self, String> {
        let mut files = HashMap::new();
        for a in args {
            let (p, path) = a.split_once('=').ok_or_else(|| {
                format!(
                    "--key-file {a:?}: write PROVIDER=PATH, e.g. --key-file inp1=/run/secrets/inp1"
                )
            })?;
            files.insert(p.to_string(), PathBuf::from(path));
        }
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("VLSP_KEY_"))
            .collect();
        Ok(Self {
            files,
            env,
            inline: HashMap::new(),
        })
    }

    fn key(&self, file: &str, base: &Path, p: &ProviderEntry) -> Result<Vec<u8>, NodeFileError> {
        let read = |path: &Path| {
            let text = std::fs::read_to_string(path).map_err(|e| NodeFileError::KeyFile {
                path: path.display().to_string(),
                provider: p.name.clone(),
                message: e.to_string(),
            })?;
            decode_key(&text).map_err(|message| NodeFileError::KeyFile {
                path: path.display().to_string(),
                provider: p.name.clone(),
                message,
            })
        };
        let var = key_env_var(&p.name);
        if let Some(path) = self.files.get(&p.name) {
            return read(path);
        }
        if let Some(v) = self.env.get(&var) {
            return decode_key(v).map_err(|message| NodeFileError::KeyFile {
                path: format!("${var}"),
                provider: p.name.clone(),
                message,
            });
        }
        if let Some(path) = &p.key_file {
            return read(&base.join(path));
        }
        if let Some(k) = self.inline.get(&p.name) {
            return Ok(k.clone());
        }
        Err(NodeFileError::MissingKey {
            file: file.into(),
            provider: p.name.clone(),
            env: var,
        })
    }
}

impl NodeFile {
    /// Node `name` of `topo`, resolved as the testbed resolves it; the
    /// topology's keys are returned apart (they never go into the file).
    pub fn from_topology(
        topo: &crate::topology::Topology,
        name: &str,
    ) -> anyhow::Result<(Self, HashMap<String, Vec<u8>>)> {
        let c = NodeConfig::from_topology(topo, name)?;
        let node = topo.node(name).expect("resolved above");
        let mut names: Vec<String> = vec![node.provider.clone()];
        for s in c.signers.values().flatten() {
            if !names.contains(&s.provider) {
                names.push(s.provider.clone());
            }
        }
        let mut keys = HashMap::new();
        let provider = names
            .iter()
            .filter_map(|n| topo.provider(n))
            .map(|p| {
                keys.insert(p.name.clone(), p.key.clone());
                ProviderEntry {
                    name: p.name.clone(),
                    entity: p.entity.clone(),
                    key_id: p.key_id,
                    transform: p.transform,
                    window_s: c
                        .signers
                        .values()
                        .flatten()
                        .chain(std::iter::once(&c.own_signer))
                        .find(|s| s.provider == p.name)
                        .map_or(super::config::SIGNED_WINDOW.as_secs(), |s| {
                            s.window.as_secs()
                        }),
                    key_file: None,
                }
            })
            .collect();
        let mut signers: Vec<SignersEntry> = c
            .signers
            .iter()
            .map(|(a, v)| SignersEntry {
                dest: *a,
                providers: v.iter().map(|s| s.provider.clone()).collect(),
            })
            .collect();
        signers.sort_by_key(|s| s.dest);
        let file = Self {
            node: NodeSection {
                topology: c.topology.clone(),
                name: c.name.clone(),
                provider: node.provider.clone(),
                profile: c.profile,
                backend: c.backend,
                tunnel: c.tunnel,
                tunnel_addr: c.tunnel_addr,
                refresh_ms: ms(c.refresh),
                lifetime_ms: ms(c.lifetime),
                gist_t1_ms: ms(c.gist_t1),
                gist_t2_ms: ms(c.gist_t2),
                nslp_retry_ms: ms(c.nslp_retry),
                nslp_retry_max_ms: ms(c.nslp_retry_max),
                require_auth: c.require_auth,
                accept: c.verify_policy.accepted_entities.clone(),
                max_skew_s: c.verify_policy.max_skew.as_secs(),
                max_window_s: c.verify_policy.max_window.as_secs(),
                replay_cache: c.replay_cache,
                unsigned_tear_same_peer: c.unsigned_tear_same_peer,
                qos_enforce: c.qos_enforce,
                cmode: c.cmode,
            },
            link: c
                .links
                .iter()
                .map(|l| LinkEntry {
                    ifname: l.ifname.clone(),
                    addr: l.addr,
                    prefix_len: l.prefix_len,
                    capacity_bps: l.capacity_bps,
                    shaped: l.shaped,
                    peer: l.peer,
                })
                .collect(),
            route: c
                .routes
                .iter()
                .map(|r| RouteEntry {
                    dest: r.dest,
                    prefix_len: r.prefix_len,
                    via: r.via,
                    ifname: r.ifname.clone(),
                })
                .collect(),
            vnode: c
                .vnodes
                .iter()
                .map(|v| VnodeEntry {
                    name: v.name.clone(),
                    vnet_id: format!("{:#x}", v.vnet_id),
                    vnode_id: format!("{:#x}", v.vnode_id),
                    host: v.host.clone(),
                    host_addr: v.host_addr,
                    vif: v
                        .vifs
                        .iter()
                        .map(|f| VifEntry {
                            id: f.id,
                            bridge: f.bridge.clone(),
                        })
                        .collect(),
                })
                .collect(),
            provider,
            signers,
        };
        Ok((file, keys))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a node file always serializes")
    }

    /// Reads `path`; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Self, NodeFileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| NodeFileError::Parse {
            file: file.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, NodeFileError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            NodeFileError::Parse {
                file: file.into(),
                message: match line {
                    Some(l) => format!("line {l}: {}", e.message().trim()),
                    None => e.message().trim().to_string(),
                },
            }
        })
    }

    /// The [`NodeConfig`] this file describes, with keys from `keys`
    /// (`base`: the folder relative `key_file`s are in), and every link's
    /// interface name replaced by the one `present` (name, address) shows.
    pub fn resolve(
        &self,
        file: &str,
        base: &Path,
        keys: &KeySources,
        present: &[(String, Ipv4Addr)],
        api_socket: PathBuf,
        script_dir: PathBuf,
    ) -> Result<NodeConfig, NodeFileError> {
        let field = |field: String, message: String| NodeFileError::Field {
            file: file.into(),
            field,
            message,
        };
        let n = &self.node;
        let mut ring = KeyRing::new();
        let mut signer_of = HashMap::new();
        for p in &self.provider {
            let k = keys.key(file, base, p)?;
            ring.insert(p.key_id, &k, p.transform);
            signer_of.insert(
                p.name.clone(),
                Signer {
                    provider: p.name.clone(),
                    entity: p.entity.clone(),
                    key_id: p.key_id,
                    transform: p.transform,
                    window: Duration::from_secs(p.window_s),
                },
            );
        }
        let own_signer = signer_of.get(&n.provider).cloned().ok_or_else(|| {
            field(
                "node.provider".into(),
                format!(
                    "{:?} has no [[provider]] entry: add one with its entity and key_id",
                    n.provider
                ),
            )
        })?;
        let mut signers = HashMap::new();
        for s in &self.signers {
            let v = s
                .providers
                .iter()
                .map(|p| {
                    signer_of.get(p).cloned().ok_or_else(|| {
                        field(
                            format!("signers (dest {})", s.dest),
                            format!("provider {p:?} has no [[provider]] entry"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            signers.insert(s.dest, v);
        }
        let mut renamed: HashMap<String, String> = HashMap::new();
        let mut links = Vec::new();
        for l in &self.link {
            let name = match present.iter().find(|(_, a)| *a == l.addr) {
                Some((name, _)) => name.clone(),
                None if present.iter().any(|(name, _)| *name == l.ifname) => l.ifname.clone(),
                None => {
                    let mut have: Vec<String> = present
                        .iter()
                        .map(|(name, a)| format!("{name} {a}"))
                        .collect();
                    have.dedup();
                    return Err(NodeFileError::NoInterface {
                        file: file.into(),
                        ifname: l.ifname.clone(),
                        addr: l.addr,
                        have: have.join(", "),
                    });
                }
            };
            renamed.insert(l.ifname.clone(), name.clone());
            links.push(LinkConf {
                ifname: name,
                addr: l.addr,
                prefix_len: l.prefix_len,
                capacity_bps: l.capacity_bps,
                shaped: l.shaped,
                peer: l.peer,
            });
        }
        let routes = self
            .route
            .iter()
            .map(|r| RouteConf {
                dest: r.dest,
                prefix_len: r.prefix_len,
                via: r.via,
                ifname: renamed.get(&r.ifname).unwrap_or(&r.ifname).clone(),
            })
            .collect();
        let id = |f: String, s: &str| {
            let h = s.strip_prefix("0x").unwrap_or(s);
            u128::from_str_radix(h, 16)
                .map_err(|_| field(f, format!("{s:?} is not a hex id like \"0x1\"")))
        };
        let vnodes = self
            .vnode
            .iter()
            .map(|v| {
                Ok(VnodeConf {
                    name: v.name.clone(),
                    vnet_id: id(format!("vnode {} vnet_id", v.name), &v.vnet_id)?,
                    vnode_id: id(format!("vnode {} vnode_id", v.name), &v.vnode_id)?,
                    vifs: v
                        .vif
                        .iter()
                        .map(|f| VifConf {
                            id: f.id,
                            bridge: f.bridge.clone(),
                        })
                        .collect(),
                    host: v.host.clone(),
                    host_addr: v.host_addr,
                })
            })
            .collect::<Result<Vec<_>, NodeFileError>>()?;
        if n.refresh_ms < crate::topology::MIN_REFRESH_MS {
            return Err(field(
                "node.refresh_ms".into(),
                format!(
                    "{} is below {} ms",
                    n.refresh_ms,
                    crate::topology::MIN_REFRESH_MS
                ),
            ));
        }
        let d = Duration::from_millis;
        Ok(NodeConfig {
            topology: n.topology.clone(),
            name: n.name.clone(),
            // Its own namespace: the node thread enters where it already is.
            netns: PathBuf::from("/proc/self/ns/net"),
            api_socket,
            script_dir,
            profile: n.profile,
            backend: n.backend,
            tunnel: n.tunnel,
            // A router address (on `lo`) is the node's too.
            addrs: links
                .iter()
                .map(|l| l.addr)
                .chain(Some(n.tunnel_addr).filter(|a| !links.iter().any(|l| l.addr == *a)))
                .collect(),
            links,
            routes,
            tunnel_addr: n.tunnel_addr,
            vnodes,
            sign_keys: ring.clone(),
            verify_keys: ring,
            verify_policy: VerifyPolicy {
                require_auth: n.require_auth,
                accepted_entities: n.accept.clone(),
                max_skew: Duration::from_secs(n.max_skew_s),
                max_window: Duration::from_secs(n.max_window_s),
            },
            replay_cache: n.replay_cache,
            unsigned_tear_same_peer: n.unsigned_tear_same_peer,
            signers,
            own_signer,
            refresh: d(n.refresh_ms),
            require_auth: n.require_auth,
            gist_t1: d(n.gist_t1_ms),
            gist_t2: d(n.gist_t2_ms),
            nslp_retry: d(n.nslp_retry_ms),
            nslp_retry_max: d(n.nslp_retry_max_ms),
            lifetime: d(n.lifetime_ms),
            qos_enforce: n.qos_enforce,
            cmode: n.cmode,
            routing_converges: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(name: &str) -> (NodeFile, HashMap<String, Vec<u8>>, NodeConfig) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
        let t = crate::topology::Topology::load(&p).unwrap();
        let (f, keys) = NodeFile::from_topology(&t, name).unwrap();
        (f, keys, NodeConfig::from_topology(&t, name).unwrap())
    }

    fn present(c: &NodeConfig) -> Vec<(String, Ipv4Addr)> {
        c.links.iter().map(|l| (l.ifname.clone(), l.addr)).collect()
    }

    #[test]
    fn a_printed_node_file_resolves_to_the_testbeds_config_and_holds_no_key() {
        let (f, keys, want) = paper("tb1");
        let text = f.to_toml();
        for k in keys.values() {
            assert!(!text.contains(&String::from_utf8_lossy(k).to_string()));
        }
        assert!(!text.contains("key ="), "{text}");
        let back = NodeFile::parse("tb1.toml", &text).unwrap();
        assert_eq!(back, f);
        let ks = KeySources {
            inline: keys,
            ..Default::default()
        };
        let c = back
            .resolve(
                "tb1.toml",
                Path::new("."),
                &ks,
                &present(&want),
                "/x".into(),
                "/s".into(),
            )
            .unwrap();
        assert_eq!(c.links, want.links);
        assert_eq!(c.routes, want.routes);
        assert_eq!(c.vnodes, want.vnodes);
        assert_eq!(c.signers, want.signers);
        assert_eq!(c.own_signer, want.own_signer);
        assert_eq!(c.tunnel_addr, want.tunnel_addr);
        assert_eq!((c.refresh, c.lifetime), (want.refresh, want.lifetime));
        assert_eq!(c.require_auth, want.require_auth);
        assert_eq!(c.replay_cache, want.replay_cache);
        assert_eq!(c.unsigned_tear_same_peer, want.unsigned_tear_same_peer);
        assert_eq!(c.verify_policy.max_skew, want.verify_policy.max_skew);
        assert_eq!(c.verify_policy.max_window, want.verify_policy.max_window);
        let own = want.own_signer.key_id;
        assert!(c.sign_keys.contains(own) && c.verify_keys.contains(own));
    }

    #[test]
    fn interfaces_are_found_by_address_when_names_differ() {
        let (f, keys, want) = paper("tb2");
        let pod: Vec<(String, Ipv4Addr)> = want
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("pod{}", i + 1), l.addr))
            .collect();
        let ks = KeySources {
            inline: keys,
            ..Default::default()
        };
        let c = f
            .resolve("f", Path::new("."), &ks, &pod, "/x".into(), "/s".into())
            .unwrap();
        assert_eq!(c.links[1].ifname, "pod2");
        // Routes follow the renamed interface.
        assert!(c.routes.iter().all(|r| r.ifname.starts_with("pod")));
        let err = f
            .resolve(
                "tb2.toml",
                Path::new("."),
                &ks,
                &pod[..1],
                "/x".into(),
                "/s".into(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tb2.toml") && err.contains("172.2.3.2"),
            "{err}"
        );
    }

    #[test]
    fn keys_come_from_key_files_or_the_environment_and_a_missing_one_is_named() {
        let (f, _, want) = paper("tb2");
        let err = f
            .resolve(
                "tb2.toml",
                Path::new("."),
                &KeySources::default(),
                &present(&want),
                "/x".into(),
                "/s".into(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("VLSP_KEY_KIT") && err.contains("--key-file kit="),
            "{err}"
        );
        let env = KeySources {
            env: [("VLSP_KEY_KIT".to_string(), "hex:0102".to_string())].into(),
            ..Default::default()
        };
        assert!(
            f.resolve(
                "f",
                Path::new("."),
                &env,
                &present(&want),
                "/x".into(),
                "/s".into()
            )
            .is_ok()
        );
        let dir = std::env::temp_dir().join(format!("vlsp-nodefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kit.key"), "hex:zz\n").unwrap();
        let mut g = f.clone();
        g.provider[0].key_file = Some("kit.key".into());
        let err = g
            .resolve(
                "f",
                &dir,
                &KeySources::default(),
                &present(&want),
                "/x".into(),
                "/s".into(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kit.key") && err.contains("hex digit"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_text_decoding() {
        assert_eq!(decode_key("hex:0aff\n").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(decode_key("secret\n").unwrap(), b"secret".to_vec());
        assert!(decode_key("\n").is_err());
        assert!(decode_key("hex:abc").is_err());
        assert_eq!(key_env_var("inp-2.net"), "VLSP_KEY_INP_2_NET");
    }

    #[test]
    fn unknown_fields_are_refused_with_file_and_line() {
        let (f, _, _) = paper("tb2");
        let text = f
            .to_toml()
            .replace("cmode = false", "cmode = false\nkey = \"x\"");
        let err = NodeFile::parse("tb2.toml", &text).unwrap_err().to_string();
        assert!(err.starts_with("tb2.toml: line "), "{err}");
        assert!(err.contains("key"), "{err}");
    }
}
