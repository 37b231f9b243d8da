//! The rules a topology file must keep, one function each, checked in file
//! order before anything is created. Every refusal names the position of
//! the value at fault and says what to change.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::file::{
    DEFAULT_REFRESH_MS, File, LinkDef, MIN_REFRESH_MS, NodeDef, ProviderDef, Source, TopologyError,
    VifDef, VnodeDef, line_col,
};
use super::routes::network;
use super::{
    AuthPolicy, DEFAULT_CAPACITY, DEFAULT_COST, Endpoint, Link, Node, OspfSettings, Provider,
    QemuConf, Topology, Vif, Vnet, Vnode, VnodeKind,
};
use crate::model::cidr::parse_cidr;
use crate::model::paths::{TopoName, check_ifname, check_node_name};
use crate::model::spanned::Spanned;
use crate::model::units::Rate;
use crate::wire::profile::Profile;

type Res<T> = Result<T, TopologyError>;

/// Builds the topology from its sections, refusing the first rule broken.
pub(crate) fn build(f: &File, src: &Source) -> Res<Topology> {
    let hdr = f.topology.get_ref();
    let name = topology_name(&hdr.name, src)?;
    let refresh_ms = refresh(hdr.refresh_ms.as_ref(), src)?;
    if !hdr.tunnel.carries_ethernet() {
        return Err(src.err(
            f.topology.span(),
            format!(
                "tunnel = \"{}\" carries IP packets, not the Ethernet frames of a virtual link: use vxlan, gretap or geneve",
                hdr.tunnel
            ),
        ));
    }
    let providers = providers(f, hdr.profile, src)?;
    let mut nodes = nodes(f, &providers, src)?;
    let ospf = super::ospf::settings(f, src)?;
    let links = links(&f.link, &nodes, &ospf, src)?;
    super::router_addr::assign(f, &mut nodes, &links, src)?;
    let vnets = vnets(f, src)?;
    let vnodes = vnodes(&f.vnode, &nodes, &vnets, src)?;
    let t = Topology {
        source: src.path.to_path_buf(),
        name,
        description: hdr.description.clone(),
        profile: hdr.profile,
        backend: hdr.backend,
        tunnel: hdr.tunnel,
        refresh_ms,
        gist_mode: hdr.gist_mode,
        routing: hdr.routing,
        ospf,
        providers,
        nodes,
        links,
        vnets,
        vnodes,
    };
    connected(&t, f, src)?;
    super::ospf::check_areas(&t, f, src)?;
    Ok(t)
}

/// The topology name: the one rule of [`TopoName`].
fn topology_name(name: &Spanned<String>, src: &Source) -> Res<String> {
    TopoName::new(name.get_ref())
        .map(|n| n.as_str().to_string())
        .map_err(|e| src.err(name.span(), e.to_string()))
}

/// `refresh_ms`: at least [`MIN_REFRESH_MS`] (0 would mean refreshing
/// without pause; the nodes never refresh faster).
fn refresh(r: Option<&Spanned<u64>>, src: &Source) -> Res<u64> {
    match r {
        None => Ok(DEFAULT_REFRESH_MS),
        Some(r) if *r.get_ref() < MIN_REFRESH_MS => Err(src.err(
            r.span(),
            format!(
                "refresh_ms = {}: the refresh period must be at least {MIN_REFRESH_MS} ms; remove the line for the default {DEFAULT_REFRESH_MS}",
                r.get_ref()
            ),
        )),
        Some(r) => Ok(*r.get_ref()),
    }
}

fn providers(f: &File, profile: Profile, src: &Source) -> Res<Vec<Provider>> {
    let mut out: Vec<Provider> = Vec::new();
    for p in &f.provider {
        let pv = provider(p, profile, src)?;
        if out.iter().any(|x| x.name == pv.name) {
            return Err(src.err(
                p.get_ref().name.span(),
                format!(
                    "duplicate provider {:?}: give each provider its own name",
                    pv.name
                ),
            ));
        }
        out.push(pv);
    }
    if out.is_empty() {
        return Err(src.err(
            f.topology.span(),
            "no [[provider]]: add at least one provider with a key",
        ));
    }
    Ok(out)
}

fn provider(p: &Spanned<ProviderDef>, profile: Profile, src: &Source) -> Res<Provider> {
    let d = p.get_ref();
    let pname = d.name.get_ref().clone();
    let (Some(key_id), Some(key)) = (d.key_id, d.key.as_ref()) else {
        return Err(src.err(
            p.span(),
            format!(
                "provider {pname:?} has no key: add `key_id = N` and `key = \"...\"` (its pre-shared HMAC key)"
            ),
        ));
    };
    let key = provider_key(key).ok_or_else(|| {
        src.err(
            p.span(),
            format!("provider {pname:?}: key \"hex:...\" must be hexadecimal"),
        )
    })?;
    if key.len() < 16 {
        return Err(src.err(
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
            return Err(src.err(
                p.span(),
                format!("provider {pname:?}: unsigned = {other:?}; use \"refuse\" or \"accept\""),
            ));
        }
    };
    Ok(Provider {
        entity: d.entity.clone().unwrap_or_else(|| format!("vnp@{pname}")),
        name: pname,
        key_id,
        key,
        transform: d.transform,
        accept: d.accept.clone(),
        accept_unsigned,
        auth: auth_policy(d, profile, src)?,
    })
}

/// Upper bounds of `[provider.auth]`: a day of skew, a week of window, ten
/// million sessions (about a gigabyte of replay cache).
const MAX_SKEW_S: u64 = 86_400;
const MAX_WINDOW_S: u64 = 7 * 86_400;
const MAX_REPLAY_CACHE: u64 = 10_000_000;

/// `[provider.auth]`, each key checked against its range.
fn auth_policy(d: &ProviderDef, profile: Profile, src: &Source) -> Res<AuthPolicy> {
    let mut pol = AuthPolicy::defaults(profile);
    let Some(a) = &d.auth else {
        return Ok(pol);
    };
    let pname = d.name.get_ref();
    let a = a.get_ref();
    let ranged = |v: &Option<Spanned<u64>>, key: &str, lo: u64, hi: u64| -> Res<Option<u64>> {
        match v {
            Some(x) if !(lo..=hi).contains(x.get_ref()) => Err(src.err(
                x.span(),
                format!(
                    "provider {pname:?}: {key} = {} is out of range; use {lo} to {hi}",
                    x.get_ref()
                ),
            )),
            Some(x) => Ok(Some(*x.get_ref())),
            None => Ok(None),
        }
    };
    if let Some(s) = ranged(&a.max_skew_s, "max_skew_s", 0, MAX_SKEW_S)? {
        pol.max_skew_s = s;
    }
    if let Some(w) = ranged(&a.max_window_s, "max_window_s", 1, MAX_WINDOW_S)? {
        pol.max_window_s = w;
    }
    if let Some(c) = ranged(&a.replay_cache, "replay_cache", 1, MAX_REPLAY_CACHE)? {
        pol.replay_cache = c as usize;
    }
    if let Some(t) = &a.unsigned_tear {
        pol.unsigned_tear_same_peer = match t.get_ref().as_str() {
            "refuse" => false,
            "same-peer" => true,
            other => {
                return Err(src.err(
                    t.span(),
                    format!(
                        "provider {pname:?}: unsigned_tear = {other:?}; use \"refuse\" or \"same-peer\""
                    ),
                ));
            }
        };
    }
    Ok(pol)
}

/// A key as written: `hex:` and an even number of hex digits, or the text's
/// bytes.
fn provider_key(key: &str) -> Option<Vec<u8>> {
    match key.strip_prefix("hex:") {
        Some(h) => crate::model::unhex(h),
        None => Some(key.as_bytes().to_vec()),
    }
}

fn nodes(f: &File, providers: &[Provider], src: &Source) -> Res<Vec<Node>> {
    let mut out: Vec<Node> = Vec::new();
    for n in &f.node {
        let d = n.get_ref();
        let nname = d.name.get_ref().clone();
        check_node_name("node", &nname).map_err(|e| src.err(d.name.span(), e.to_string()))?;
        if out.iter().any(|x| x.name == nname) {
            return Err(src.err(
                d.name.span(),
                format!("duplicate node {nname:?}: node names must be unique"),
            ));
        }
        let external = d.external.as_ref().is_some_and(|e| *e.get_ref());
        if let Some(e) = d.external.as_ref().filter(|_| external && !d.nsis) {
            return Err(src.err(
                e.span(),
                format!(
                    "node {nname} has external = true and nsis = false: an external router runs another NSIS implementation, so drop `nsis = false` (or `external`, for a plain router)"
                ),
            ));
        }
        out.push(Node {
            provider: node_provider(d, providers, src)?,
            name: nname,
            nsis: d.nsis,
            external,
            router_addr: None,
        });
    }
    if out.is_empty() {
        return Err(src.err(f.topology.span(), "no [[node]]: add the substrate routers"));
    }
    Ok(out)
}

/// The node's provider: named and defined, or the only one there is.
fn node_provider(d: &NodeDef, providers: &[Provider], src: &Source) -> Res<String> {
    let nname = d.name.get_ref();
    match &d.provider {
        Some(p) if providers.iter().any(|x| x.name == *p.get_ref()) => Ok(p.get_ref().clone()),
        Some(p) => Err(src.err(
            p.span(),
            format!(
                "unknown provider {:?} for node {nname}: define it in a [[provider]] section",
                p.get_ref()
            ),
        )),
        None if providers.len() == 1 => Ok(providers[0].name.clone()),
        None => Err(src.err(
            d.name.span(),
            format!("node {nname} needs `provider = \"...\"`: the topology has several providers"),
        )),
    }
}

/// What the link rules remember of the links before.
#[derive(Default)]
struct LinkState {
    if_count: HashMap<String, usize>,
    addrs: HashMap<Ipv4Addr, Range<usize>>,
    subnets: Vec<(u32, u8, Range<usize>)>,
}

fn links(
    defs: &[Spanned<LinkDef>],
    nodes: &[Node],
    ospf: &OspfSettings,
    src: &Source,
) -> Res<Vec<Link>> {
    let mut st = LinkState::default();
    let mut out = Vec::new();
    for l in defs {
        let d = l.get_ref();
        if let Some(s) = d.delay.as_ref().or(d.loss.as_ref()) {
            return Err(src.err(
                s.span(),
                "link delay and loss need the netem qdisc, which this kernel lacks (sch_netem): remove `delay`/`loss`",
            ));
        }
        let a = link_end(&d.a, nodes, &mut st, src)?;
        let b = link_end(&d.b, nodes, &mut st, src)?;
        one_subnet(&a, &b, d.b.span(), src)?;
        own_subnet(&a, &st.subnets, d.b.span(), src)?;
        st.subnets
            .push((network(a.addr, a.prefix_len), a.prefix_len, l.span()));
        let capacity_bps = match &d.capacity {
            None => DEFAULT_CAPACITY,
            Some(c) => Rate::parse(c.get_ref())
                .map_err(|e| src.err(c.span(), e.to_string()))?
                .bps(),
        };
        let cost = match &d.cost {
            None => DEFAULT_COST,
            Some(c) if (1..=65535).contains(c.get_ref()) => *c.get_ref(),
            Some(c) => {
                return Err(src.err(
                    c.span(),
                    format!("cost = {}: an OSPF cost is 1..=65535", c.get_ref()),
                ));
            }
        };
        out.push(Link {
            a,
            b,
            capacity_bps,
            cost,
            ospf: super::ospf::link_settings(d, ospf, src)?,
        });
    }
    Ok(out)
}

/// One end, `node:address/prefix`: a known node, an address of its own;
/// its interface is the node's next `ethN`.
fn link_end(
    e: &Spanned<String>,
    nodes: &[Node],
    st: &mut LinkState,
    src: &Source,
) -> Res<Endpoint> {
    let text = e.get_ref();
    let Some((node, cidr)) = text.split_once(':') else {
        return Err(src.err(
            e.span(),
            format!(
                "link end {text:?} must look like \"node:address/prefix\", e.g. \"tb1:172.1.2.1/24\""
            ),
        ));
    };
    if !nodes.iter().any(|n| n.name == node) {
        return Err(src.err(
            e.span(),
            format!("unknown node {node:?} in link: define it in a [[node]] section"),
        ));
    }
    let Some((addr, len)) = parse_cidr(cidr) else {
        return Err(src.err(
            e.span(),
            format!("bad address {cidr:?}: write it as a.b.c.d/len"),
        ));
    };
    if len > 30 {
        return Err(src.err(
            e.span(),
            format!("prefix /{len} leaves no room for two ends: use /30 or shorter"),
        ));
    }
    if let Some(prev) = st.addrs.get(&addr) {
        let (pl, pc) = line_col(src.text, prev.start);
        return Err(src.err(
            e.span(),
            format!(
                "address {addr} is already used at line {pl}, column {pc}: every interface needs its own address"
            ),
        ));
    }
    st.addrs.insert(addr, e.span());
    let k = st.if_count.entry(node.to_string()).or_insert(0);
    let ifname = format!("eth{k}");
    *k += 1;
    check_ifname(&ifname)
        .map_err(|err| src.err(e.span(), format!("node {node} has too many links: {err}")))?;
    Ok(Endpoint {
        node: node.to_string(),
        addr,
        prefix_len: len,
        ifname,
    })
}

/// Both ends on different nodes and in one subnet.
fn one_subnet(a: &Endpoint, b: &Endpoint, bspan: Range<usize>, src: &Source) -> Res<()> {
    if a.node == b.node {
        return Err(src.err(
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
        return Err(src.err(
            bspan,
            format!(
                "{}/{} and {}/{} are not in one subnet: both ends of a link share a subnet",
                a.addr, a.prefix_len, b.addr, b.prefix_len
            ),
        ));
    }
    Ok(())
}

/// No two links share (or overlap in) a subnet.
fn own_subnet(
    a: &Endpoint,
    subnets: &[(u32, u8, Range<usize>)],
    bspan: Range<usize>,
    src: &Source,
) -> Res<()> {
    let net = network(a.addr, a.prefix_len);
    for (onet, olen, ospan) in subnets {
        let l = (*olen).min(a.prefix_len);
        if network(Ipv4Addr::from(net), l) == network(Ipv4Addr::from(*onet), l) {
            let (pl, _) = line_col(src.text, ospan.start);
            return Err(src.err(
                bspan,
                format!(
                    "subnet {}/{} overlaps the link at line {pl}: give every link its own subnet",
                    Ipv4Addr::from(net),
                    a.prefix_len
                ),
            ));
        }
    }
    Ok(())
}

fn vnets(f: &File, src: &Source) -> Res<Vec<Vnet>> {
    let mut out: Vec<Vnet> = Vec::new();
    for v in &f.vnet {
        let d = v.get_ref();
        let Some(id) = parse_id(d.id.get_ref()) else {
            return Err(src.err(
                d.id.span(),
                "vnet id must be a non-negative integer or a \"0x...\" string (128 bits)",
            ));
        };
        if out.iter().any(|x| x.name == *d.name.get_ref()) {
            return Err(src.err(
                d.name.span(),
                format!(
                    "duplicate vnet {:?}: give each virtual network its own name",
                    d.name.get_ref()
                ),
            ));
        }
        out.push(Vnet {
            name: d.name.get_ref().clone(),
            id,
        });
    }
    Ok(out)
}

fn vnodes(
    defs: &[Spanned<VnodeDef>],
    nodes: &[Node],
    vnets: &[Vnet],
    src: &Source,
) -> Res<Vec<Vnode>> {
    let mut out: Vec<Vnode> = Vec::new();
    let mut per_host: HashMap<String, usize> = HashMap::new();
    for v in defs {
        let d = v.get_ref();
        vnode_name(d, nodes, &out, src)?;
        vnode_host(d, nodes, vnets, src)?;
        let qemu = qemu_conf(v, src)?;
        let id = vnode_id(d, &out, src)?;
        let host = d.host.get_ref().clone();
        let k = per_host.entry(host.clone()).or_insert(0);
        let interfaces = vifs(v, *k, qemu.is_some(), &out, src)?;
        *k += 1;
        let first = interfaces[0].clone();
        out.push(Vnode {
            name: d.name.get_ref().clone(),
            vnet: d.vnet.get_ref().clone(),
            host,
            id,
            vif_id: first.id,
            addr: first.addr,
            prefix_len: first.prefix_len,
            kind: d.kind,
            bridge: first.bridge,
            host_ifname: first.host_ifname,
            interfaces,
            qemu,
        });
    }
    Ok(out)
}

/// Most virtual interfaces one virtual node may declare (each is a veth
/// pair and a bridge on the host).
pub const MAX_VIFS: usize = 4096;

/// A virtual node's interfaces: `address` (and `vif_id`, default 1) for
/// one, or `interfaces = [...]` for several; ids unique in the node,
/// addresses in the virtual network, names within the kernel's limits.
fn vifs(
    v: &Spanned<VnodeDef>,
    nth: usize,
    qemu: bool,
    before: &[Vnode],
    src: &Source,
) -> Res<Vec<Vif>> {
    let d = v.get_ref();
    let vname = d.name.get_ref();
    let defs: Vec<(u64, &Spanned<String>, Range<usize>)> = match (&d.address, &d.interfaces) {
        (Some(a), None) => vec![(d.vif_id.as_ref().map_or(1, |i| *i.get_ref()), a, a.span())],
        (None, Some(list)) => {
            if let Some(i) = &d.vif_id {
                return Err(src.err(
                    i.span(),
                    format!("virtual node {vname}: vif_id goes with address; with `interfaces` give each its `id`"),
                ));
            }
            let l = list.get_ref();
            if l.is_empty() || l.len() > MAX_VIFS {
                return Err(src.err(
                    list.span(),
                    format!("virtual node {vname}: declare 1..={MAX_VIFS} interfaces"),
                ));
            }
            if qemu && l.len() > 1 {
                return Err(src.err(
                    list.span(),
                    format!("virtual node {vname}: a QEMU guest has one virtual interface here; declare one, or use kind = \"netns\""),
                ));
            }
            l.iter()
                .map(|i: &Spanned<VifDef>| (*i.get_ref().id.get_ref(), &i.get_ref().addr, i.span()))
                .collect()
        }
        (Some(_), Some(list)) => {
            return Err(src.err(
                list.span(),
                format!("virtual node {vname} has both `address` and `interfaces`: keep one"),
            ));
        }
        (None, None) => {
            return Err(src.err(
                v.span(),
                format!("virtual node {vname} has no interface: add `address = \"a.b.c.d/len\"` or `interfaces = [{{ id = 1, addr = \"a.b.c.d/len\" }}]`"),
            ));
        }
    };
    let mut out: Vec<Vif> = Vec::with_capacity(defs.len());
    for (index, (id, addr, span)) in defs.into_iter().enumerate() {
        if out.iter().any(|x| x.id == id) {
            return Err(src.err(
                span,
                format!("virtual node {vname}: interface id {id} is declared twice; give each its own id"),
            ));
        }
        let (addr, prefix_len) = vif_address(d, addr, before, &out, src)?;
        let (bridge, host_ifname, ifname) = Vif::names(nth, index, qemu);
        for i in [&bridge, &host_ifname, &ifname] {
            check_ifname(i).map_err(|e| {
                src.err(
                    span.clone(),
                    format!(
                        "virtual node {vname}: too many virtual nodes or interfaces on {}: {e}",
                        d.host.get_ref()
                    ),
                )
            })?;
        }
        out.push(Vif {
            id,
            addr,
            prefix_len,
            bridge,
            host_ifname,
            ifname,
        });
    }
    Ok(out)
}

/// A virtual node's name: a valid namespace name, unlike every other.
fn vnode_name(d: &VnodeDef, nodes: &[Node], before: &[Vnode], src: &Source) -> Res<()> {
    let vname = d.name.get_ref();
    check_node_name("virtual node", vname).map_err(|e| src.err(d.name.span(), e.to_string()))?;
    if before.iter().any(|x| x.name == *vname) || nodes.iter().any(|n| n.name == *vname) {
        return Err(src.err(
            d.name.span(),
            format!("duplicate name {vname:?}: virtual nodes and routers need distinct names"),
        ));
    }
    Ok(())
}

/// Its vnet exists, its host exists and runs NSIS.
fn vnode_host(d: &VnodeDef, nodes: &[Node], vnets: &[Vnet], src: &Source) -> Res<()> {
    let vname = d.name.get_ref();
    if !vnets.iter().any(|x| x.name == *d.vnet.get_ref()) {
        return Err(src.err(
            d.vnet.span(),
            format!(
                "unknown vnet {:?} for virtual node {vname}: define it in a [[vnet]] section",
                d.vnet.get_ref()
            ),
        ));
    }
    let host = d.host.get_ref();
    match nodes.iter().find(|n| &n.name == host) {
        None => Err(src.err(
            d.host.span(),
            format!(
                "virtual node {vname} is on node {host:?}, which does not exist: use one of the [[node]] names"
            ),
        )),
        Some(n) if !n.nsis => Err(src.err(
            d.host.span(),
            format!(
                "virtual node {vname} is on {host}, a plain router without NSIS: its host must run NSIS to set up virtual links"
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// A virtual node's id: unique in the topology (links name their ends by
/// it, so two alike would be mistaken for each other).
fn vnode_id(d: &VnodeDef, before: &[Vnode], src: &Source) -> Res<u128> {
    let Some(id) = parse_id(d.id.get_ref()) else {
        return Err(src.err(
            d.id.span(),
            "vnode id must be a non-negative integer or a \"0x...\" string (128 bits)",
        ));
    };
    if let Some(other) = before.iter().find(|x| x.id == id) {
        return Err(src.err(
            d.id.span(),
            format!(
                "virtual node id {id} is already {}'s: give every virtual node its own id",
                other.name
            ),
        ));
    }
    Ok(id)
}

/// An interface address: well formed, and used by no other interface of
/// the virtual network.
fn vif_address(
    d: &VnodeDef,
    a: &Spanned<String>,
    before: &[Vnode],
    mine: &[Vif],
    src: &Source,
) -> Res<(Ipv4Addr, u8)> {
    let Some((addr, len)) = parse_cidr(a.get_ref()) else {
        return Err(src.err(
            a.span(),
            format!("bad address {:?}: write it as a.b.c.d/len", a.get_ref()),
        ));
    };
    let taken = before
        .iter()
        .filter(|x| x.vnet == *d.vnet.get_ref())
        .flat_map(|x| x.interfaces.iter())
        .chain(mine)
        .any(|x| x.addr == addr);
    if taken {
        return Err(src.err(
            a.span(),
            format!("address {addr} is already used in this virtual network"),
        ));
    }
    Ok((addr, len))
}

/// A QEMU guest's memory, CPUs and images (relative to the file).
fn qemu_conf(v: &Spanned<VnodeDef>, src: &Source) -> Res<Option<QemuConf>> {
    let d = v.get_ref();
    if d.kind == VnodeKind::Netns {
        return Ok(None);
    }
    let vname = d.name.get_ref();
    if !(32..=65536).contains(&d.memory_mb) || !(1..=64).contains(&d.cpus) {
        return Err(src.err(
            v.span(),
            format!("virtual node {vname}: memory_mb must be 32..=65536 and cpus 1..=64"),
        ));
    }
    let dir = src.path.parent().unwrap_or(Path::new("."));
    let file_opt = |f: &Option<Spanned<String>>, what: &str| -> Res<Option<PathBuf>> {
        let Some(f) = f else { return Ok(None) };
        let p = dir.join(f.get_ref());
        if p.exists() {
            Ok(Some(p))
        } else {
            Err(src.err(
                f.span(),
                format!("virtual node {vname}: {what} {} not found", p.display()),
            ))
        }
    };
    Ok(Some(QemuConf {
        memory_mb: d.memory_mb,
        cpus: d.cpus,
        kernel: file_opt(&d.kernel, "kernel")?,
        disk: file_opt(&d.disk, "disk")?,
    }))
}

/// Every router reaches every other.
fn connected(t: &Topology, f: &File, src: &Source) -> Res<()> {
    let first = &t.nodes[0].name;
    let reach: HashSet<String> = t.distances(first).into_keys().collect();
    let Some(n) = t.nodes.iter().find(|n| !reach.contains(&n.name)) else {
        return Ok(());
    };
    let span = f
        .node
        .iter()
        .find(|d| *d.get_ref().name.get_ref() == n.name)
        .map(|d| d.span())
        .unwrap_or(0..0);
    Err(src.err(
        span,
        format!(
            "node {} cannot be reached from {first}: add a [[link]] that connects it",
            n.name
        ),
    ))
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
