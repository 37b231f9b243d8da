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
    /// Given its root qdisc before the node started (`vlsp up` up to 300
    /// routers, or a node file's `shaped = true`); otherwise the node's
    /// kernel work adds it at the link's first reservation
    /// ([`nm::Config::unshaped`]).
    pub shaped: bool,
    /// The address of the link's other end, when known: the node's
    /// messages to it take a socket connected to it (`sockets::neighbour`).
    pub peer: Option<Ipv4Addr>,
}

pub use super::routes::{RouteConf, Routes};

/// A virtual node of the topology (hosted here or elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnodeConf {
    pub name: String,
    pub vnet_id: u128,
    pub vnode_id: u128,
    /// Its virtual interfaces, in the topology's order (the default pick
    /// is the first free one).
    pub vifs: Vec<VifConf>,
    /// Substrate node hosting it, and that node's tunnel address.
    pub host: String,
    pub host_addr: Ipv4Addr,
}

/// A virtual interface: the id VLSP objects name and its own bridge (in
/// the host's namespace), which a virtual link's tunnel end joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifConf {
    pub id: u64,
    pub bridge: String,
}

/// A virtual interface carrying a virtual link: (virtual node id, vif id,
/// VLink ID). One link per interface, so links never share a segment.
pub type VifUse = (u128, u64, u64);

/// `VM1` or `VM1:2` (virtual node, and the interface id if named).
pub fn split_vif(s: &str) -> Result<(&str, Option<u64>), String> {
    match s.split_once(':') {
        None => Ok((s, None)),
        Some((name, id)) => id.parse().map(|id| (name, Some(id))).map_err(|_| {
            format!("{s:?}: write a virtual node as NAME or NAME:INTERFACE_ID, e.g. VM1:2")
        }),
    }
}

impl VnodeConf {
    fn vif(&self, id: u64) -> Result<&VifConf, String> {
        self.vifs.iter().find(|v| v.id == id).ok_or_else(|| {
            format!(
                "virtual node {} has no interface {id} (it has {}): name one of those, or declare it in the topology's `interfaces`",
                self.name,
                self.vif_list(|_| true)
            )
        })
    }

    fn vif_list(&self, keep: impl Fn(u64) -> bool) -> String {
        let ids: Vec<String> = self
            .vifs
            .iter()
            .filter(|v| keep(v.id))
            .map(|v| v.id.to_string())
            .collect();
        if ids.is_empty() {
            "none".into()
        } else {
            ids.join(", ")
        }
    }

    /// The link using interface `id`, other than `vlink_id`. A virtual
    /// node with one interface has every link on it, whatever id a peer
    /// wrote (as before interfaces could be named; NSIS-ka's client writes
    /// its own).
    fn user_of(&self, id: u64, vlink_id: u64, busy: &[VifUse]) -> Option<u64> {
        let single = self.vifs.len() == 1;
        busy.iter()
            .find(|(n, i, l)| *n == self.vnode_id && (single || *i == id) && *l != vlink_id)
            .map(|u| u.2)
    }

    /// The interface a peer's VLSP object names: by id, or the only one.
    fn named_by_peer(&self, id: u64) -> Result<&VifConf, String> {
        match self.vifs.as_slice() {
            [only] => Ok(only),
            _ => self.vif(id),
        }
    }

    /// The interface a new link attaches to: `asked` if it exists and is
    /// free, else (none asked) the first free one.
    pub fn pick_vif(&self, asked: Option<u64>, busy: &[VifUse]) -> Result<u64, String> {
        let free = |id: u64| self.user_of(id, 0, busy).is_none();
        match asked {
            Some(id) => {
                self.vif(id)?;
                match self.user_of(id, 0, busy) {
                    None => Ok(id),
                    Some(l) => Err(format!(
                        "interface {}:{id} already carries virtual link {l}: name a free interface ({}) or tear that link down",
                        self.name,
                        self.vif_list(free)
                    )),
                }
            }
            None => self.vifs.iter().map(|v| v.id).find(|id| free(*id)).ok_or_else(|| {
                format!(
                    "every interface of virtual node {} carries a virtual link ({}): tear one down, or declare more `interfaces` for it in the topology",
                    self.name,
                    self.vif_list(|_| true)
                )
            }),
        }
    }
}

use crate::model::cidr::in_subnet;

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

/// Optional mode (issue 17): the first RESERVE of a session rides in its
/// GIST Query when this variable is `1`.
pub const GIST_DATA_IN_QUERY_ENV: &str = "VLSP_GIST_DATA_IN_QUERY";
/// Optional mode (issue 17): later sessions of a flow reuse its GIST peer
/// when this variable is `1`.
pub const GIST_REUSE_PEERS_ENV: &str = "VLSP_GIST_REUSE_PEERS";

/// Whether the environment switches optional mode `var` on (`1`).
pub fn mode_on(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
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
    pub routes: Routes,
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
    /// Propose GIST C-mode (TCP messaging associations) in our Queries.
    pub cmode: bool,
    /// Routes come from a routing daemon (OSPF) that may still converge.
    pub routing_converges: bool,
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
    /// (our address on the link, the router at its other end) for each of
    /// the node's links (the other ends the links name, else the routes'
    /// next hops), in the order first named: where a path-coupled
    /// session's next GIST peer can be. A neighbour that runs no NSIS gets
    /// a socket that is never used.
    pub fn neighbours(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let mut out: Vec<(Ipv4Addr, Ipv4Addr)> = vec![];
        let named = self.links.iter().filter_map(|l| l.peer);
        for a in named.chain(self.routes.iter().map(|r| r.via)) {
            if !a.is_unspecified() && !self.addrs.contains(&a) && !out.iter().any(|n| n.1 == a) {
                out.push((self.local_addr_for(a), a));
            }
        }
        out
    }

    /// Our address on the interface used to reach `dst`.
    pub fn local_addr_for(&self, dst: Ipv4Addr) -> Ipv4Addr {
        if let Some(l) = self
            .links
            .iter()
            .find(|l| in_subnet(dst, l.addr, l.prefix_len))
        {
            return l.addr;
        }
        if let Some(r) = self.routes.lookup(dst)
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
        self.routes.lookup(dst).map(|r| r.ifname.clone())
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

    /// Resolves an API setup request. `from` and `to` may name the
    /// interface (`VM1:2`); without it the first free one is taken.
    /// `tunnel` overrides the topology's tunnel type. Errors say what to
    /// change.
    #[allow(clippy::too_many_arguments)]
    pub fn setup_request(
        &self,
        req_id: u64,
        from: &str,
        to: &str,
        rate_bps: crate::model::units::Rate,
        authenticate: bool,
        bidirectional: bool,
        tunnel: Option<TunnelKind>,
        vnis_in_use: &[u32],
        vifs_in_use: &[VifUse],
    ) -> Result<SetupRequest, String> {
        let (from, from_vif) = split_vif(from)?;
        let (to, to_vif) = split_vif(to)?;
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
        let src_vif = src.pick_vif(from_vif, vifs_in_use)?;
        let dst_vif = dst.pick_vif(to_vif, vifs_in_use)?;
        let vlink_id = allocate_vlink_id(vnis_in_use, rand::random);
        let vlsp = VlspObject {
            vnet_id: src.vnet_id,
            src_vnode: src.vnode_id,
            dst_vnode: dst.vnode_id,
            src_vif,
            dst_vif,
            vlink_id,
            tunnel_type: crate::wire::vlsp::TunnelType::from_kind(tunnel.unwrap_or(self.tunnel)),
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

    /// The tunnel end this node sets up for `vlsp`: `Ok(None)` if neither
    /// of the link's virtual nodes is hosted here. It joins the bridge of
    /// the interface the object names, with the tunnel type it asks for.
    /// With `busy` (a set-up, not a teardown), an interface already
    /// carrying another link is refused, as are an unknown interface and a
    /// tunnel type without a kernel kind; the error says what to do.
    pub fn tunnel_end(
        &self,
        vlsp: &VlspObject,
        flow: &Flow,
        initiator: bool,
        busy: Option<&[VifUse]>,
    ) -> Result<Option<TunnelEnd>, String> {
        let (mine, vif, remote) = if initiator {
            (vlsp.src_vnode, vlsp.src_vif, flow.dst)
        } else {
            (vlsp.dst_vnode, vlsp.dst_vif, flow.src)
        };
        let Some(v) = self
            .vnodes
            .iter()
            .find(|v| v.vnode_id == mine && v.vnet_id == vlsp.vnet_id && v.host == self.name)
        else {
            return Ok(None);
        };
        let at = |e: String| format!("{}: {e}", self.name);
        let bridge = v.named_by_peer(vif).map_err(at)?.bridge.clone();
        if let Some(l) = busy.and_then(|b| v.user_of(vif, vlsp.vlink_id, b)) {
            return Err(at(format!(
                "interface {}:{vif} already carries virtual link {l}: ask for a free interface ({}) or tear that link down",
                v.name,
                v.vif_list(|id| busy.is_some_and(|b| v.user_of(id, vlsp.vlink_id, b).is_none()))
            )));
        }
        let kind = vlsp.tunnel_type.kind().ok_or_else(|| {
            at(format!(
                "the VLSP object asks for tunnel type {:?}, which this node has no kernel tunnel for: ask for vxlan, gretap or geneve",
                vlsp.tunnel_type
            ))
        })?;
        Ok(Some(TunnelEnd {
            vlink_id: vlsp.vlink_id,
            kind,
            local: self.tunnel_addr,
            remote,
            bridge,
            backend: None,
        }))
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
            // Optional mode (issue 17), off unless VLSP_GIST_DATA_IN_QUERY=1.
            data_in_query: mode_on(GIST_DATA_IN_QUERY_ENV),
            // Optional mode (issue 17), off unless VLSP_GIST_REUSE_PEERS=1;
            // D-mode only: Data over a messaging association carry no NLI,
            // which a responder needs to know the peer it confirmed.
            reuse_peers: mode_on(GIST_REUSE_PEERS_ENV) && !self.cmode,
            ..gm::Config::for_profile(self.profile)
        }
    }

    pub fn ma_config(&self) -> crate::proto::gist::ma::MaConfig {
        crate::proto::gist::ma::MaConfig {
            propose: self.cmode,
            ..Default::default()
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
            routing_converges: self.routing_converges,
            unshaped: self
                .links
                .iter()
                .filter(|l| !l.shaped)
                .map(|l| l.ifname.clone())
                .collect(),
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
        Self::from_graph(topo, &crate::topology::Graph::new(topo), name)
    }

    /// As [`Self::from_topology`], with one [`crate::topology::Graph`] shared
    /// by all the nodes a testbed starts (linear per node, not quadratic).
    pub fn from_graph(
        topo: &crate::topology::Topology,
        graph: &crate::topology::Graph,
        name: &str,
    ) -> anyhow::Result<Self> {
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
            let on_path = graph.providers_on_path(name, &v.host);
            for p in &on_path {
                keys.insert(p.key_id, &p.key, p.transform);
            }
            signers.insert(addr, on_path.into_iter().map(signer).collect());
        }
        let shaped = crate::kernel::substrate::Shaping::for_size(topo.nodes.len())
            == crate::kernel::substrate::Shaping::Eager;
        let links: Vec<LinkConf> = topo
            .links_of(name)
            .map(|(me, other, cap)| LinkConf {
                ifname: me.ifname.clone(),
                addr: me.addr,
                prefix_len: me.prefix_len,
                capacity_bps: cap,
                shaped,
                peer: Some(other.addr),
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
                vifs: v
                    .interfaces
                    .iter()
                    .map(|i| VifConf {
                        id: i.id,
                        bridge: i.bridge.clone(),
                    })
                    .collect(),
                host: v.host.clone(),
                host_addr: topo.node_addr(&v.host).unwrap_or(Ipv4Addr::UNSPECIFIED),
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
            addrs: links
                .iter()
                .map(|l| l.addr)
                .chain(topo.node(name).and_then(|n| n.router_addr))
                .collect(),
            tunnel_addr: topo.node_addr(name).unwrap_or(Ipv4Addr::UNSPECIFIED),
            links,
            routes: graph
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
            cmode: topo.gist_mode == crate::topology::GistMode::C,
            routing_converges: topo.routing == crate::topology::Routing::Ospf,
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

    /// A node's neighbours are its links' other ends; without them (a node
    /// file that names none), its routes' next hops; never itself.
    #[test]
    fn the_neighbours_are_the_other_ends_of_the_links() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
        let topo =
            crate::topology::Topology::parse(&std::fs::read_to_string(&p).unwrap(), &p).unwrap();
        let mut c = super::NodeConfig::from_topology(&topo, "tb2").unwrap();
        let a = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        assert_eq!(
            c.neighbours(),
            [
                (a("172.1.2.2"), a("172.1.2.1")),
                (a("172.2.3.2"), a("172.2.3.3"))
            ]
        );
        for l in &mut c.links {
            l.peer = None;
        }
        // tb2's routes: to tb3-tb4's subnet via tb3, and none via tb1.
        assert_eq!(c.neighbours(), [(a("172.2.3.2"), a("172.2.3.3"))]);
        c.links[0].peer = Some(c.addrs[0]);
        assert_eq!(c.neighbours(), [(a("172.2.3.2"), a("172.2.3.3"))]);
    }

    /// `vlsp up` shapes every link up front up to 300 routers; beyond, the
    /// node's first RESERVE over a link waits for its root qdisc.
    #[test]
    fn links_of_a_large_topology_are_shaped_at_their_first_reservation() {
        let config = |routers: usize| {
            let text = crate::topology::chain("c", routers, 1).unwrap();
            let topo =
                crate::topology::Topology::parse(&text, std::path::Path::new("c.toml")).unwrap();
            super::NodeConfig::from_topology(&topo, "r1").unwrap()
        };
        let small = config(300);
        assert!(small.links.iter().all(|l| l.shaped));
        assert!(small.nslp_config().unshaped.is_empty());
        let large = config(301);
        assert!(large.links.iter().all(|l| !l.shaped));
        let mut unshaped = large.nslp_config().unshaped;
        unshaped.sort();
        assert_eq!(unshaped, ["eth0", "eth1"]);
    }

    #[test]
    fn vlink_ids_never_reuse_a_vni_of_this_node() {
        let used = [crate::model::tunnel::vni_for(7)];
        // The generator first draws 0, then an ID folding onto VNI 7.
        let mut draws = [0u64, 7 + 0x00ff_ffff, 9].into_iter();
        let id = super::allocate_vlink_id(&used, || draws.next().unwrap());
        assert_eq!(id, 9);
    }

    fn vif_topology() -> (super::NodeConfig, super::NodeConfig) {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/vif-4node.toml");
        let t = crate::topology::Topology::load(&p).unwrap();
        (
            super::NodeConfig::from_topology(&t, "tb1").unwrap(),
            super::NodeConfig::from_topology(&t, "tb4").unwrap(),
        )
    }

    fn request(
        cfg: &super::NodeConfig,
        from: &str,
        to: &str,
        busy: &[super::VifUse],
    ) -> Result<crate::proto::nslp::SetupRequest, String> {
        let rate = crate::model::units::Rate::from_bps(1);
        cfg.setup_request(1, from, to, rate, true, false, None, &[], busy)
    }

    #[test]
    fn a_link_takes_the_first_free_interface_or_the_one_named() {
        let (tb1, _) = vif_topology();
        let r = request(&tb1, "VM1", "VM2", &[]).unwrap();
        assert_eq!((r.vlsp.src_vif, r.vlsp.dst_vif), (1, 1));
        // VM1:1 and VM2:1 carry link 7: the next link takes 2 and 2.
        let busy = [(1, 1, 7), (2, 1, 7)];
        let r = request(&tb1, "VM1", "VM2", &busy).unwrap();
        assert_eq!((r.vlsp.src_vif, r.vlsp.dst_vif), (2, 2));
        let r = request(&tb1, "VM1:3", "VM2:2", &busy).unwrap();
        assert_eq!((r.vlsp.src_vif, r.vlsp.dst_vif), (3, 2));
        let e = request(&tb1, "VM1:1", "VM2", &busy).unwrap_err();
        assert!(
            e.contains("VM1:1") && e.contains("link 7") && e.contains("free interface (2, 3)"),
            "{e}"
        );
        let e = request(&tb1, "VM1:9", "VM2", &[]).unwrap_err();
        assert!(e.contains("no interface 9") && e.contains("1, 2, 3"), "{e}");
        let e = request(&tb1, "VM1:x", "VM2", &[]).unwrap_err();
        assert!(e.contains("NAME:INTERFACE_ID"), "{e}");
        let all = [(1, 1, 7), (1, 2, 8), (1, 3, 9)];
        let e = request(&tb1, "VM1", "VM2", &all).unwrap_err();
        assert!(e.contains("every interface of virtual node VM1"), "{e}");
    }

    #[test]
    fn the_responders_tunnel_end_joins_the_named_interfaces_bridge() {
        let (tb1, tb4) = vif_topology();
        let r = request(&tb1, "VM1:2", "VM2:3", &[]).unwrap();
        let end = tb4
            .tunnel_end(&r.vlsp, &r.flow, false, Some(&[]))
            .unwrap()
            .unwrap();
        assert_eq!((end.bridge.as_str(), end.kind), ("br0v2", tb4.tunnel));
        let mine = tb1
            .tunnel_end(&r.vlsp, &r.flow, true, Some(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(mine.bridge, "br0v1");
        // Busy with another link: refused; its own link: fine (a refresh).
        let other = [(2, 3, r.vlsp.vlink_id ^ 1)];
        let e = tb4
            .tunnel_end(&r.vlsp, &r.flow, false, Some(&other))
            .unwrap_err();
        assert!(e.starts_with("tb4: interface VM2:3 already carries"), "{e}");
        let own = [(2, 3, r.vlsp.vlink_id)];
        assert!(tb4.tunnel_end(&r.vlsp, &r.flow, false, Some(&own)).is_ok());
        // A teardown finds its end even when the interface looks busy.
        assert!(
            tb4.tunnel_end(&r.vlsp, &r.flow, false, None)
                .unwrap()
                .is_some()
        );
        // The tunnel type asked for is the one built; one without a
        // kernel kind is refused before the kernel.
        let mut ipip = r.vlsp.clone();
        ipip.tunnel_type = crate::wire::vlsp::TunnelType::IpInIp;
        let end = tb4
            .tunnel_end(&ipip, &r.flow, false, Some(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(end.kind, crate::model::tunnel::TunnelKind::Ipip);
        let mut vlan = r.vlsp.clone();
        vlan.tunnel_type = crate::wire::vlsp::TunnelType::Vlan;
        let e = tb4
            .tunnel_end(&vlan, &r.flow, false, Some(&[]))
            .unwrap_err();
        assert!(e.contains("Vlan") && e.contains("vxlan"), "{e}");
        let mut unknown = r.vlsp.clone();
        unknown.dst_vif = 42;
        let e = tb4
            .tunnel_end(&unknown, &r.flow, false, Some(&[]))
            .unwrap_err();
        assert!(e.contains("VM2 has no interface 42"), "{e}");
        // Transit: neither virtual node is hosted here.
        assert_eq!(tb1.tunnel_end(&r.vlsp, &r.flow, false, None), Ok(None));
    }

    #[test]
    fn a_single_interface_takes_whatever_id_a_peer_names_but_one_link() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
        let t = crate::topology::Topology::load(&p).unwrap();
        let tb1 = super::NodeConfig::from_topology(&t, "tb1").unwrap();
        let tb4 = super::NodeConfig::from_topology(&t, "tb4").unwrap();
        let mut r = request(&tb1, "VM1", "VM2", &[]).unwrap();
        r.vlsp.dst_vif = 7;
        let end = tb4.tunnel_end(&r.vlsp, &r.flow, false, Some(&[])).unwrap();
        assert_eq!(end.unwrap().bridge, "br0");
        // Another link on VM2 (whatever id it named) makes it busy.
        let e = tb4
            .tunnel_end(&r.vlsp, &r.flow, false, Some(&[(2, 1, 99)]))
            .unwrap_err();
        assert!(e.contains("carries virtual link 99"), "{e}");
        let e = request(&tb1, "VM1", "VM2", &[(2, 0, 99)]).unwrap_err();
        assert!(e.contains("every interface of virtual node VM2"), "{e}");
    }
}
