//! What `up` puts inside the namespaces: veth links with the topology's
//! addresses, static routes along shortest paths, IP forwarding, link
//! shaping and a bridge per virtual interface on its host router.
//!
//! No link is ever created in the root namespace: a veth pair is created by
//! one netlink request that places each end directly in its namespace.

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use anyhow::{Context, Result, anyhow};
use futures_util::TryStreamExt;
use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::kernel::netns::with_netns;
use crate::topology::{Route, Topology, Vnode};

/// The index of interface `name` in the namespace of `h`.
pub async fn link_index(h: &Handle, name: &str) -> Result<u32> {
    Ok(h.link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .with_context(|| format!("no interface {name}"))?
        .ok_or_else(|| anyhow!("no interface {name}"))?
        .header
        .index)
}

/// Every interface of `h`'s namespace by name: one dump instead of a
/// lookup per interface.
pub async fn link_indices(h: &Handle) -> Result<HashMap<String, u32>> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut out = HashMap::new();
    let mut dump = h.link().get().execute();
    while let Some(m) = dump.try_next().await.context("dumping interfaces")? {
        for a in &m.attributes {
            if let LinkAttribute::IfName(n) = a {
                out.insert(n.clone(), m.header.index);
            }
        }
    }
    Ok(out)
}

fn index_of(index: &HashMap<String, u32>, node: &str, name: &str) -> Result<u32> {
    index
        .get(name)
        .copied()
        .ok_or_else(|| anyhow!("no interface {name} in {node}: was its veth created?"))
}

/// Sends one request per item, all in flight at once: one round trip for
/// all of a router's requests, not one per request.
async fn all_in_flight<T, F>(
    items: impl IntoIterator<Item = T>,
    request: impl FnMut(T) -> Result<F>,
) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    let reqs = items.into_iter().map(request).collect::<Result<Vec<_>>>()?;
    futures_util::future::try_join_all(reqs).await.map(drop)
}

/// The `IFLA_AF_SPEC` attribute (`AF_INET` → `IFLA_INET_CONF`) that sets
/// IPv4 forwarding of one interface, and, as the global `ip_forward`
/// sysctl would, ICMP redirects accepted only while not forwarding. The
/// kernel decides forwarding per input interface; the global sysctl only
/// flips every interface, and any `/proc/sys/net` path costs a lookup
/// through one dentry per namespace of the same name (17 ms per router at
/// 10 000 routers; `vlsp up` writes no sysctl in the routers).
/// netlink-packet-route's typed `DevConfRequest` skips zero values, so it
/// could not turn either off.
pub fn forwarding_attr(on: bool) -> LinkAttribute {
    const IFLA_AF_SPEC: u16 = 26;
    const AF_INET: u16 = 2;
    const IFLA_INET_CONF: u16 = 1;
    const IPV4_DEVCONF_FORWARDING: u16 = 1;
    const IPV4_DEVCONF_ACCEPT_REDIRECTS: u16 = 4;
    let mut v = Vec::with_capacity(24);
    for (len, kind) in [(24u16, AF_INET), (20, IFLA_INET_CONF)] {
        v.extend(len.to_ne_bytes());
        v.extend(kind.to_ne_bytes());
    }
    for (kind, value) in [
        (IPV4_DEVCONF_FORWARDING, on),
        (IPV4_DEVCONF_ACCEPT_REDIRECTS, !on),
    ] {
        v.extend(8u16.to_ne_bytes());
        v.extend(kind.to_ne_bytes());
        v.extend(u32::from(value).to_ne_bytes());
    }
    LinkAttribute::Other(DefaultNla::new(IFLA_AF_SPEC, v))
}

/// Brings interfaces `names` of `node` up, all requests in flight at once;
/// with `forward`, each request also turns IPv4 forwarding on for its
/// interface (see [`forwarding_attr`]).
pub async fn set_all_up(
    h: &Handle,
    node: &str,
    index: &HashMap<String, u32>,
    names: impl Iterator<Item = &str>,
    forward: bool,
) -> Result<()> {
    all_in_flight(names, |n| {
        let mut msg = LinkUnspec::new_with_index(index_of(index, node, n)?).up();
        if forward {
            msg = msg.append_extra_attribute(forwarding_attr(true));
        }
        let req = h.link().set(msg.build()).execute();
        Ok(async move { req.await.with_context(|| format!("set {node}:{n} up")) })
    })
    .await
}

/// Sets IPv4 forwarding of every interface of `h`'s namespace (a stopped
/// router forwards nothing: `vlsp fault node-stop`).
pub async fn set_forwarding(h: &Handle, node: &str, on: bool) -> Result<()> {
    let index = link_indices(h).await?;
    all_in_flight(index, |(n, i)| {
        let msg = LinkUnspec::new_with_index(i)
            .append_extra_attribute(forwarding_attr(on))
            .build();
        let req = h.link().set(msg).execute();
        Ok(async move {
            req.await.with_context(|| {
                format!(
                    "cannot turn IPv4 forwarding {} on {node}:{n}",
                    if on { "on" } else { "off" }
                )
            })
        })
    })
    .await
}

/// Adds addresses `(ifname, addr, prefix_len)` in `node`, all requests in
/// flight at once.
pub async fn add_addresses(
    h: &Handle,
    node: &str,
    index: &HashMap<String, u32>,
    addrs: impl Iterator<Item = (&str, Ipv4Addr, u8)>,
) -> Result<()> {
    all_in_flight(addrs, |(n, addr, len)| {
        let req = h
            .address()
            .add(index_of(index, node, n)?, addr.into(), len)
            .execute();
        Ok(async move {
            req.await
                .with_context(|| format!("address {addr}/{len} on {node}:{n}"))
        })
    })
    .await
}

/// Adds static `routes` in `node`, all requests in flight at once.
pub async fn add_routes(
    h: &Handle,
    node: &str,
    index: &HashMap<String, u32>,
    routes: Vec<Route>,
) -> Result<()> {
    all_in_flight(routes, |r| {
        let i = index_of(index, node, &r.ifname)?;
        let req = h
            .route()
            .add(route_msg(r.dest, r.prefix_len, r.via, i))
            .execute();
        Ok(async move {
            req.await.with_context(|| {
                format!("route {}/{} via {} on {node}", r.dest, r.prefix_len, r.via)
            })
        })
    })
    .await
}

/// Creates veth `a_name` (up) in namespace `a` and its peer `b_name` in `b`
/// with one request from the root namespace. The peer is brought up by the
/// caller from `b`: the kernel refuses IFF_UP on a peer created in another
/// namespace (ENOTCONN on 6.18).
pub async fn veth_between(
    root: &Handle,
    a: &File,
    a_name: &str,
    b: &File,
    b_name: &str,
) -> Result<()> {
    veth(root, a, a_name, b, b_name, true).await
}

/// As [`veth_between`], both ends left down: a root qdisc grafted on a
/// down interface costs no RCU grace period (on an up one the kernel
/// deactivates the device and waits one out: ~40 ms each under load).
pub async fn veth_between_down(
    root: &Handle,
    a: &File,
    a_name: &str,
    b: &File,
    b_name: &str,
) -> Result<()> {
    veth(root, a, a_name, b, b_name, false).await
}

async fn veth(
    root: &Handle,
    a: &File,
    a_name: &str,
    b: &File,
    b_name: &str,
    up: bool,
) -> Result<()> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(b_name.to_string())
        .setns_by_fd(b.as_raw_fd())
        .build();
    let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(a_name.to_string())
        .setns_by_fd(a.as_raw_fd());
    if up {
        msg = msg.up();
    }
    let msg = msg
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    root.link()
        .add(msg)
        .execute()
        .await
        .with_context(|| format!("create veth {a_name} <-> {b_name}"))
}

/// Takes interface `name` down (a veth's peer loses its carrier too).
pub async fn set_down(h: &Handle, name: &str) -> Result<()> {
    let i = link_index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).down().build())
        .execute()
        .await
        .with_context(|| format!("set {name} down"))
}

/// Brings interface `name` up.
pub async fn set_up(h: &Handle, name: &str) -> Result<()> {
    let i = link_index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .with_context(|| format!("set {name} up"))
}

/// Adds `addr/prefix_len` to interface `ifname` of node `node`.
pub async fn add_address(
    h: &Handle,
    node: &str,
    ifname: &str,
    addr: Ipv4Addr,
    prefix_len: u8,
) -> Result<()> {
    let i = link_index(h, ifname).await?;
    h.address()
        .add(i, addr.into(), prefix_len)
        .execute()
        .await
        .with_context(|| format!("address {addr}/{prefix_len} on {node}:{ifname}"))
}

/// The route message for `dest/prefix_len` via `via` out of interface
/// index `ifindex` (protocol static, which [`crate::kernel::routing`]
/// recognises as ours).
pub fn route_msg(
    dest: Ipv4Addr,
    prefix_len: u8,
    via: Ipv4Addr,
    ifindex: u32,
) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dest, prefix_len)
        .gateway(via)
        .output_interface(ifindex)
        .build()
}

/// Shapes each end of each link of router `node` to the link's capacity,
/// so the bottleneck is the topology's, not the veth's. One netlink socket,
/// opened inside the router's namespace.
pub fn shape_links(topo: &Topology, node: &str, ns: &File) -> Result<()> {
    with_netns(ns, || -> Result<()> {
        let mut tc = crate::kernel::tc::Tc::open()
            .with_context(|| format!("netlink socket for shaping on {node}"))?;
        for (me, _, capacity) in topo.links_of(node) {
            tc.shape(&me.ifname, capacity)
                .with_context(|| format!("shaping {node}:{} to {capacity} bit/s", me.ifname))?;
        }
        Ok(())
    })?
}

/// Creates the bridges of virtual node `v` on its host (handle `h`), one
/// per virtual interface, and, for a namespace node, attaches each
/// interface's veth to its own bridge; a QEMU guest's tap joins later, when
/// QEMU has created it.
pub async fn bridge_vnode(h: &Handle, v: &Vnode) -> Result<()> {
    for i in &v.interfaces {
        h.link()
            .add(crate::kernel::tunnel::vlink_bridge(&i.bridge))
            .execute()
            .await
            .with_context(|| format!("bridge {} on {}", i.bridge, v.host))?;
        if v.qemu.is_some() {
            continue;
        }
        let br = link_index(h, &i.bridge).await?;
        let port = link_index(h, &i.host_ifname).await?;
        h.link()
            .set(LinkUnspec::new_with_index(port).controller(br).up().build())
            .execute()
            .await
            .with_context(|| format!("attach {} to {} on {}", i.host_ifname, i.bridge, v.host))?;
    }
    // Tunnel ends will be made here: keep the VXLAN socket open.
    if let Err(e) = crate::kernel::tunnel::keep_vxlan_socket(h).await {
        tracing::warn!(
            "{}: no VXLAN socket keeper ({e}): VXLAN tunnel ends there pay for opening the socket",
            v.host
        );
    }
    Ok(())
}

/// The kernel's ARP table is one for all namespaces, its size limits set in
/// the root namespace only: past `gc_thresh3` entries (1024 by default) it
/// refuses new neighbours, and a datagram to an unresolved next hop is
/// dropped as `NEIGH_CREATEFAIL` (a UDP sender sees no error). Signaling
/// resolves two neighbours per hop, so a path of more than 512 routers
/// stalled at its 513th. The thresholds `(gc_thresh2, gc_thresh3)` that
/// make room for `links` links (both ends, tunnels and bridges besides),
/// never below `current`.
pub fn neighbour_thresholds(current: (u64, u64), links: usize) -> (u64, u64) {
    let need = 2 * links as u64 + 1024;
    (current.0.max(need), current.1.max(2 * need))
}

/// Raises the root namespace's ARP table limits for `links` links (see
/// [`neighbour_thresholds`]); returns the new ones when it changed them.
pub fn make_room_for_neighbours(links: usize) -> Result<Option<(u64, u64)>> {
    let dir = std::path::Path::new("/proc/sys/net/ipv4/neigh/default");
    let read = |k: &str| -> Result<u64> {
        let p = dir.join(k);
        let s = std::fs::read_to_string(&p).with_context(|| format!("{}", p.display()))?;
        s.trim()
            .parse()
            .with_context(|| format!("{}: not a number: {s:?}", p.display()))
    };
    let current = (read("gc_thresh2")?, read("gc_thresh3")?);
    let want = neighbour_thresholds(current, links);
    if want == current {
        return Ok(None);
    }
    // thresh3 first: the kernel keeps thresh2 <= thresh3 only by convention.
    for (k, v) in [("gc_thresh3", want.1), ("gc_thresh2", want.0)] {
        std::fs::write(dir.join(k), v.to_string()).with_context(|| {
            format!("raising net.ipv4.neigh.default.{k} to {v} for {links} links (run as root in the root namespace)")
        })?;
    }
    Ok(Some(want))
}

#[cfg(test)]
mod neighbour_tests {
    use super::{forwarding_attr, neighbour_thresholds};
    use rtnetlink::packet_core::Emitable;

    #[test]
    fn forwarding_attr_bytes() {
        let a = forwarding_attr(true);
        let mut b = vec![0u8; a.buffer_len()];
        a.emit(&mut b);
        // IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { FORWARDING = 1,
        // ACCEPT_REDIRECTS = 0 } } }
        let ne = |v: &[u16]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
        let mut want = ne(&[28, 26, 24, 2, 20, 1, 8, 1]);
        want.extend(1u32.to_ne_bytes());
        want.extend(ne(&[8, 4]));
        want.extend(0u32.to_ne_bytes());
        assert_eq!(b, want);
        forwarding_attr(false).emit(&mut b);
        assert_eq!(b[16..20], 0u32.to_ne_bytes());
        assert_eq!(b[24..], 1u32.to_ne_bytes());
    }

    #[test]
    fn thresholds_cover_two_neighbours_per_link_and_never_shrink() {
        // The defaults (512, 1024) stop a 600-router chain at hop 513.
        let (t2, t3) = neighbour_thresholds((512, 1024), 599);
        assert!(t2 >= 2 * 599 && t3 >= t2, "{t2} {t3}");
        assert_eq!(neighbour_thresholds((512, 1024), 10_000), (21_024, 42_048));
        assert_eq!(
            neighbour_thresholds((50_000, 90_000), 100),
            (50_000, 90_000)
        );
    }
}
