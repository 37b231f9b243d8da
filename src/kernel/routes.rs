//! The routes and link states of the calling thread's namespace, read by
//! rtnetlink, and a watch that reports them again whenever the kernel
//! announces a route or link change (RTM_NEWROUTE/DELROUTE, RTM_NEWLINK).
//! The signaling core takes [`RouteTable`]s as plain input, so its reaction
//! to route changes is tested with tables made by hand.

use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_LINK};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, RouteMessageBuilder};

/// One IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelRoute {
    pub dest: Ipv4Addr,
    pub prefix_len: u8,
    /// The next router; `None` for a route to an attached subnet.
    pub via: Option<Ipv4Addr>,
    pub ifname: String,
}

/// The namespace's routes and the interfaces that are down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Sorted, so two reads of the same state compare equal.
    pub routes: Vec<KernelRoute>,
    /// Interfaces administratively down or without carrier.
    pub down: Vec<String>,
}

/// Reads the main IPv4 table and the link states over `handle`.
pub async fn read(handle: &Handle) -> Result<RouteTable, rtnetlink::Error> {
    let mut names = std::collections::HashMap::new();
    let mut down = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await? {
        let name = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name {
            let up = l.header.flags.contains(LinkFlags::Up)
                && l.header.flags.contains(LinkFlags::LowerUp);
            if !up && name != "lo" && !is_plumbing(&l) {
                down.push(name.clone());
            }
            names.insert(l.header.index, name);
        }
    }
    let mut routes = Vec::new();
    let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut stream = handle.route().get(req).execute();
    while let Some(r) = stream.try_next().await? {
        if r.header.table != RouteHeader::RT_TABLE_MAIN {
            continue;
        }
        let (mut dest, mut via, mut oif) = (Ipv4Addr::UNSPECIFIED, None, None);
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dest = *d,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(*g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        let Some(ifname) = oif.and_then(|i| names.get(&i)).cloned() else {
            continue;
        };
        routes.push(KernelRoute {
            dest,
            prefix_len: r.header.destination_prefix_length,
            via,
            ifname,
        });
    }
    routes.sort();
    down.sort();
    Ok(RouteTable { routes, down })
}

/// Whether a link belongs to the virtual links' plumbing rather than the
/// substrate: a tunnel end, a virtual interface's bridge, a port of one
/// (or a bridge-port notification). Its state says nothing about routes,
/// and a burst of setups changes hundreds of them: rereading every link
/// and route after each (a dump growing with the links up) took a third
/// of a node's time at 64 concurrent setups.
fn is_plumbing(l: &LinkMessage) -> bool {
    l.header.interface_family == AddressFamily::Bridge
        || l.attributes.iter().any(|a| match a {
            LinkAttribute::Controller(_) => true,
            LinkAttribute::IfName(n) => crate::kernel::tunnel::TunnelEnd::is_end_name(n),
            LinkAttribute::LinkInfo(i) => i
                .iter()
                .any(|x| matches!(x, LinkInfo::Kind(InfoKind::Bridge))),
            _ => false,
        })
}

/// Whether a kernel announcement may change the [`RouteTable`]: route
/// changes, and link changes outside the plumbing.
fn relevant(p: &NetlinkPayload<RouteNetlinkMessage>) -> bool {
    match p {
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l),
        ) => !is_plumbing(l),
        _ => true,
    }
}

/// Calls `changed` with the table whenever the routes or link states of
/// the calling thread's namespace change (bursts of kernel messages within
/// `settle` give one call; the first call comes at the first change, even
/// one back to the state at start). Runs until `changed` returns false or
/// the netlink socket fails.
pub async fn watch(
    settle: Duration,
    mut changed: impl FnMut(RouteTable) -> bool,
) -> Result<(), std::io::Error> {
    let (mut conn, handle, mut messages) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE;
    conn.socket_mut()
        .socket_mut()
        .bind(&rtnetlink::sys::SocketAddr::new(0, groups))?;
    tokio::task::spawn_local(conn);
    // Not read before the first change: at start the caller knows the
    // routes it configured, and a chain of N routers has N routes in each
    // of N namespaces (10 000 routers: 10^8 routes read and kept for
    // nothing). The first table goes to `changed`, which compares.
    let mut last: Option<RouteTable> = None;
    while let Some((m, _)) = messages.next().await {
        if !relevant(&m.payload) {
            continue;
        }
        // Let the rest of a burst (a link going down removes many routes)
        // arrive, then read the state once.
        tokio::time::sleep(settle).await;
        while let Some(Some(_)) = messages.next().now_or_never() {}
        let now = read(&handle).await.map_err(std::io::Error::other)?;
        if last.as_ref() != Some(&now) {
            last = Some(now.clone());
            if !changed(now) {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, extra: Vec<LinkAttribute>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l.attributes.extend(extra);
        l
    }

    fn new_link(l: LinkMessage) -> NetlinkPayload<RouteNetlinkMessage> {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
    }

    #[test]
    fn plumbing_changes_do_not_reread_the_table() {
        // A substrate interface going down matters.
        assert!(relevant(&new_link(link("eth1", vec![]))));
        // Tunnel ends, bridge ports, bridges and port notifications do not.
        assert!(!relevant(&new_link(link("vl00a1ff", vec![]))));
        assert!(!relevant(&new_link(link(
            "vn0v7",
            vec![LinkAttribute::Controller(4)]
        ))));
        let bridge = link(
            "br0v7",
            vec![LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )])],
        );
        assert!(!relevant(&new_link(bridge)));
        let mut port = link("eth9", vec![]);
        port.header.interface_family = AddressFamily::Bridge;
        assert!(!relevant(&new_link(port)));
        // Route changes always do.
        let r = rtnetlink::packet_route::route::RouteMessage::default();
        assert!(relevant(&NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewRoute(r)
        )));
    }
}
