//! Everything one node needs to know about the topology, resolved once
//! when the node starts, so the actors never consult the topology file.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::kernel::tunnel::TunnelEnd;
use crate::model::tunnel::{Backend, TunnelKind};
use crate::proto::gist::machine::{self as gm, Flow};
use crate::proto::nslp::{self as nm, SetupRequest};
use crate::wire::profile::Profile;
use crate::wire::vlsp::VlspObject;

/// A substrate interface of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConf {
    /// Interface name inside the node's namespace.
    pub ifname: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub capacity_bps: u64,
}

/// A static route (from the topology's shortest paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConf {
    pub dest: Ipv4Addr,
    pub prefix_len: u8,
    pub via: Ipv4Addr,
    pub ifname: String,
}

/// A virtual node of the topology (hosted here or elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnodeConf {
    pub name: String,
    pub vnet_id: u128,
    pub vnode_id: u128,
    /// Interface id of the virtual interface a link attaches to.
    pub vif_id: u64,
    /// Substrate node hosting it, and that node's tunnel address.
    pub host: String,
    pub host_addr: Ipv4Addr,
    /// Bridge (in the host's namespace) the virtual interface is attached to.
    pub bridge: String,
}

fn in_subnet(a: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    };
    u32::from(a) & mask == u32::from(net) & mask
}

/// A fresh VLink ID whose VNI (the 24-bit fold the tunnel ends agree on) no
/// link of this node uses yet: the ID is drawn at random (other initiators
/// draw theirs independently) and redrawn on a VNI collision.
pub fn allocate_vlink_id(vnis_in_use: &[u32], mut draw: impl FnMut() -> u64) -> u64 {
    loop {
        let id = draw();
        if id != 0 && !vnis_in_use.contains(&crate::model::tunnel::vni_for(id)) {
            return id;
        }
    }
}

/// The resolved configuration of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub topology: String,
    pub name: String,
    pub netns: PathBuf,
    pub api_socket: PathBuf,
    pub script_dir: PathBuf,
    pub profile: Profile,
    pub backend: Backend,
    pub tunnel: TunnelKind,
    pub links: Vec<LinkConf>,
    pub routes: Vec<RouteConf>,
    /// All substrate addresses of the node.
    pub addrs: Vec<Ipv4Addr>,
    /// The address tunnel ends and signaling flows of this node use.
    pub tunnel_addr: Ipv4Addr,
    /// Every virtual node of the topology.
    pub vnodes: Vec<VnodeConf>,
    /// Keys this node signs with: its own provider's, and those of every
    /// provider on the paths of links it may initiate (the credentials the
    /// requesting VNP holds with each InP).
    pub sign_keys: crate::wire::auth::KeyRing,
    /// Keys it checks authorization objects with (the same set: a node
    /// checks the answers to its own requests too).
    pub verify_keys: crate::wire::auth::KeyRing,
    pub verify_policy: crate::wire::auth::VerifyPolicy,
    /// Sessions the replay cache remembers at most (provider policy).
    pub replay_cache: usize,
    /// Unsigned TEARs from the peer that set a session up signed pass.
    pub unsigned_tear_same_peer: bool,
    /// Per far-end address: one signer per provider on the path to it.
    pub signers: std::collections::HashMap<Ipv4Addr, Vec<Signer>>,
    /// Signer for answers (RESPONSE): this node's own provider.
    pub own_signer: Signer,
    pub refresh: Duration,
    pub require_auth: bool,
    pub gist_t1: Duration,
    pub gist_t2: Duration,
    pub nslp_retry: Duration,
    pub nslp_retry_max: Duration,
    pub lifetime: Duration,
    /// Install admitted reservations in the kernel (HTB class + filter).
    pub qos_enforce: bool,
}

/// Credentials one node signs with, for one provider domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub provider: String,
    pub entity: String,
    pub key_id: u32,
    pub transform: crate::wire::auth::Transform,
    /// END_TIME − START_TIME of the objects signed for this provider: at
    /// most 600 s and never more than it accepts (`max_window_s`).
    pub window: Duration,
}

/// The validity this node gives its authorization objects at most.
pub const SIGNED_WINDOW: Duration = Duration::from_secs(600);

impl NodeConfig {
    /// Our address on the interface used to reach `dst`.
    pub fn local_addr_for(&self, dst: Ipv4Addr) -> Ipv4Addr {
        if let Some(l) = self
            .links
            .iter()
            .find(|l| in_subnet(dst, l.addr, l.prefix_len))
        {
            return l.addr;
        }
        if let Some(r) = self
            .routes
            .iter()
            .filter(|r| in_subnet(dst, r.dest, r.prefix_len))
            .max_by_key(|r| r.prefix_len)
            && let Some(l) = self.links.iter().find(|l| l.ifname == r.ifname)
        {
            return l.addr;
        }
        self.tunnel_addr
    }

    /// Egress interface towards `dst` (the link admission control charges).
    pub fn egress_link(&self, dst: Ipv4Addr) -> Option<String> {
        if self.addrs.contains(&dst) {
            return None;
        }
        if let Some(l) = self
            .links
            .iter()
            .find(|l| in_subnet(dst, l.addr, l.prefix_len))
        {
            return Some(l.ifname.clone());
        }
        self.routes
            .iter()
            .filter(|r| in_subnet(dst, r.dest, r.prefix_len))
            .max_by_key(|r| r.prefix_len)
            .map(|r| r.ifname.clone())
    }

    pub fn vnode(&self, name: &str) -> Option<&VnodeConf> {
        self.vnodes.iter().find(|v| v.name == name)
    }

    pub fn vnode_name(&self, id: u128) -> String {
        self.vnodes
            .iter()
            .find(|v| v.vnode_id == id)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| format!("{id:#x}"))
    }

    /// Resolves an API setup request. Errors say what to change.
    #[allow(clippy::too_many_arguments)]
    pub fn setup_request(
        &self,
        req_id: u64,
        from: &str,
        to: &str,
        rate_bps: crate::model::units::Rate,
        authenticate: bool,
        bidirectional: bool,
        vnis_in_use: &[u32],
    ) -> Result<SetupRequest, String> {
        let names = || {
            self.vnodes
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let src = self
            .vnode(from)
            .ok_or_else(|| format!("unknown virtual node {from:?} (known: {})", names()))?;
        if src.host != self.name {
            return Err(format!(
                "virtual node {from} is hosted on {}, not {}: send the request to {}'s API socket",
                src.host, self.name, src.host
            ));
        }
        let dst = self
            .vnode(to)
            .ok_or_else(|| format!("unknown virtual node {to:?} (known: {})", names()))?;
        if dst.vnet_id != src.vnet_id {
            return Err(format!(
                "{from} and {to} belong to different virtual networks: a virtual link joins nodes of one network"
            ));
        }
        if dst.host == self.name {
            return Err(format!(
                "{from} and {to} are both hosted on {}: no substrate path to signal",
                self.name
            ));
        }
        let egress_link = self.egress_link(dst.host_addr).ok_or_else(|| {
            format!(
                "{}: no route to {} ({})",
                self.name, dst.host, dst.host_addr
            )
        })?;
        let vlink_id = allocate_vlink_id(vnis_in_use, rand::random);
        let vlsp = VlspObject {
            vnet_id: src.vnet_id,
            src_vnode: src.vnode_id,
            dst_vnode: dst.vnode_id,
            src_vif: src.vif_id,
            dst_vif: dst.vif_id,
            vlink_id,
            tunnel_type: crate::wire::vlsp::TunnelType::from_kind(self.tunnel),
        };
        Ok(SetupRequest {
            req_id,
            sid: rand::random(),
            flow: Flow {
                src: self.tunnel_addr,
                dst: dst.host_addr,
                protocol: 17,
            },
            vlsp,
            rate_bps,
            egress_link,
            authenticate,
            qspec: crate::wire::qspec::Qspec::bandwidth_request(
                rate_bps.bytes_per_sec_f32(),
                self.profile,
            ),
            bidirectional,
        })
    }

    /// The tunnel end this node sets up for `vlsp`, if one of the link's
    /// virtual nodes is hosted here.
    pub fn tunnel_end(&self, vlsp: &VlspObject, flow: &Flow, initiator: bool) -> Option<TunnelEnd> {
        let (mine, remote) = if initiator {
            (vlsp.src_vnode, flow.dst)
        } else {
            (vlsp.dst_vnode, flow.src)
        };
        let v = self
            .vnodes
            .iter()
            .find(|v| v.vnode_id == mine && v.vnet_id == vlsp.vnet_id && v.host == self.name)?;
        Some(TunnelEnd {
            vlink_id: vlsp.vlink_id,
            kind: self.tunnel,
            local: self.tunnel_addr,
            remote,
            bridge: v.bridge.clone(),
            backend: None,
        })
    }

    pub fn gist_config(&self) -> gm::Config {
        let mut peer_id = [0u8; 16];
        peer_id[..4].copy_from_slice(&self.tunnel_addr.octets());
        peer_id[4..].copy_from_slice(&rand::random::<[u8; 12]>());
        gm::Config {
            peer_id,
            t1: self.gist_t1,
            t2: self.gist_t2,
            secret: rand::random(),
            // Keep routing state while the NSLP's soft state may still be
            // refreshed over it.
            idle: self.lifetime,
            ..gm::Config::default()
        }
    }

    pub fn nslp_config(&self) -> nm::Config {
        nm::Config {
            node: self.name.clone(),
            profile: self.profile,
            refresh: self.refresh,
            lifetime: self.lifetime,
            retry: self.nslp_retry,
            retry_max: self.nslp_retry_max,
            require_auth: self.require_auth,
            unsigned_tear_same_peer: self.unsigned_tear_same_peer,
            epoch: rand::random(),
        }
    }

    pub fn ledger(&self) -> crate::proto::rmf::Ledger {
        let mut l = crate::proto::rmf::Ledger::new();
        for link in &self.links {
            l.add_link(&link.ifname, link.capacity_bps);
        }
        l
    }

    pub fn seed(&self) -> u64 {
        rand::random()
    }

    /// Unsigned Session Authorization objects (zero MAC, filled in by
    /// `sign_pdu` once the PDU is built) for a message this node creates:
    /// one per provider on the path for a request going downstream, this
    /// node's own for an answer going upstream. Each lists the objects of
    /// `msg` that must not change on the way: RII, QSPEC, INFO_SPEC, VLSP.
    pub fn auth_objects(
        &self,
        flow: &Flow,
        dir: gm::Direction,
        msg: &crate::wire::nslp::NslpMessage,
    ) -> Vec<Vec<u8>> {
        use crate::wire::auth::{AuthEntity, SessionAuthObject, Timestamp};
        let vt = crate::wire::vlsp::vlsp_type(self.profile);
        let mut listed: Vec<u16> = msg
            .objects
            .iter()
            .map(|o| o.obj_type(self.profile))
            .filter(|t| [0x001, 0x006, 0x00b, vt].contains(t))
            .collect();
        listed.dedup();
        let signers: Vec<&Signer> = match dir {
            gm::Direction::Downstream => self
                .signers
                .get(&flow.dst)
                .map(|v| v.iter().collect())
                .unwrap_or_else(|| vec![&self.own_signer]),
            gm::Direction::Upstream => vec![&self.own_signer],
        };
        let now = Timestamp::now();
        signers
            .into_iter()
            .map(|s| {
                SessionAuthObject::hmac_template(
                    AuthEntity::Fqdn(s.entity.clone()),
                    Some(flow.src.into()),
                    Some(flow.dst.into()),
                    now,
                    Some(now.plus(s.window)),
                    &listed,
                    s.key_id,
                    s.transform,
                    self.profile,
                )
                .to_bytes(self.profile)
            })
            .collect()
    }

    /// Everything node `name` of `topo` needs.
    pub fn from_topology(topo: &crate::topology::Topology, name: &str) -> anyhow::Result<Self> {
        use crate::wire::auth::{KeyRing, VerifyPolicy};
        let node = topo
            .node(name)
            .ok_or_else(|| anyhow::anyhow!("no node {name} in topology {}", topo.name))?;
        let own = topo
            .provider(&node.provider)
            .ok_or_else(|| anyhow::anyhow!("node {name}: unknown provider {}", node.provider))?;
        let signer = |p: &crate::topology::Provider| Signer {
            provider: p.name.clone(),
            entity: p.entity.clone(),
            key_id: p.key_id,
            transform: p.transform,
            window: SIGNED_WINDOW.min(Duration::from_secs(p.auth.max_window_s)),
        };
        let mut keys = KeyRing::new();
        keys.insert(own.key_id, &own.key, own.transform);
        let mut signers = std::collections::HashMap::new();
        for v in &topo.vnodes {
            if v.host == name {
                continue;
            }
            let Some(addr) = topo.node_addr(&v.host) else {
                continue;
            };
            let on_path = topo.providers_on_path(name, &v.host);
            for p in &on_path {
                keys.insert(p.key_id, &p.key, p.transform);
            }
            signers.insert(addr, on_path.into_iter().map(signer).collect());
        }
        let links: Vec<LinkConf> = topo
            .links_of(name)
            .map(|(me, _, cap)| LinkConf {
                ifname: me.ifname.clone(),
                addr: me.addr,
                prefix_len: me.prefix_len,
                capacity_bps: cap,
            })
            .collect();
        let refresh = Duration::from_millis(topo.refresh_ms.max(100));
        let vnodes = topo
            .vnodes
            .iter()
            .map(|v| VnodeConf {
                name: v.name.clone(),
                vnet_id: topo
                    .vnets
                    .iter()
                    .find(|n| n.name == v.vnet)
                    .map_or(0, |n| n.id),
                vnode_id: v.id,
                vif_id: v.vif_id,
                host: v.host.clone(),
                host_addr: topo.node_addr(&v.host).unwrap_or(Ipv4Addr::UNSPECIFIED),
                bridge: v.bridge.clone(),
            })
            .collect();
        let run = crate::model::paths::RunDir::new(&topo.topo_name());
        Ok(Self {
            topology: topo.name.clone(),
            name: name.to_string(),
            netns: crate::kernel::substrate::ns_path(&crate::kernel::substrate::ns_name(
                &topo.name, name,
            )),
            api_socket: run.api_socket(name),
            script_dir: run.scripts_dir(name),
            profile: topo.profile,
            backend: topo.backend,
            tunnel: topo.tunnel,
            addrs: links.iter().map(|l| l.addr).collect(),
            tunnel_addr: topo.node_addr(name).unwrap_or(Ipv4Addr::UNSPECIFIED),
            links,
            routes: topo
                .routes(name)
                .into_iter()
                .map(|r| RouteConf {
                    dest: r.dest,
                    prefix_len: r.prefix_len,
                    via: r.via,
                    ifname: r.ifname,
                })
                .collect(),
            vnodes,
            sign_keys: keys.clone(),
            verify_keys: keys,
            verify_policy: VerifyPolicy {
                require_auth: !own.accept_unsigned,
                accepted_entities: own.accept.clone(),
                max_skew: Duration::from_secs(own.auth.max_skew_s),
                max_window: Duration::from_secs(own.auth.max_window_s),
            },
            replay_cache: own.auth.replay_cache,
            unsigned_tear_same_peer: own.auth.unsigned_tear_same_peer,
            signers,
            own_signer: signer(own),
            refresh,
            require_auth: !own.accept_unsigned,
            gist_t1: Duration::from_millis(500),
            gist_t2: Duration::from_secs(64),
            nslp_retry: Duration::from_secs(2),
            nslp_retry_max: Duration::from_secs(30),
            lifetime: refresh * 3,
            qos_enforce: true,
        })
    }
}

#[cfg(test)]
mod tests {
    /// The provider's `[provider.auth]` reaches the node: verification
    /// policy, replay cache, tear policy, and the window it signs with.
    #[test]
    fn provider_auth_policy_reaches_the_node() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
        let text = std::fs::read_to_string(&p).unwrap().replacen(
            "\n[[node]]",
            "\n[provider.auth]\nmax_skew_s = 5\nmax_window_s = 60\nunsigned_tear = \"same-peer\"\nreplay_cache = 7\n\n[[node]]",
            1,
        );
        let topo = crate::topology::Topology::parse(&text, &p).unwrap();
        let c = super::NodeConfig::from_topology(&topo, "tb4").unwrap();
        assert_eq!(c.verify_policy.max_skew.as_secs(), 5);
        assert_eq!(c.verify_policy.max_window.as_secs(), 60);
        assert_eq!(c.replay_cache, 7);
        assert!(c.nslp_config().unsigned_tear_same_peer);
        assert_eq!(c.own_signer.window.as_secs(), 60);
    }

    #[test]
    fn vlink_ids_never_reuse_a_vni_of_this_node() {
        let used = [crate::model::tunnel::vni_for(7)];
        // The generator first draws 0, then an ID folding onto VNI 7.
        let mut draws = [0u64, 7 + 0x00ff_ffff, 9].into_iter();
        let id = super::allocate_vlink_id(&used, || draws.next().unwrap());
        assert_eq!(id, 9);
    }
}
