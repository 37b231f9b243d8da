//! The routes and link states of the calling thread's namespace, read by
//! rtnetlink, and a watch that reports them again whenever the kernel
//! announces a route or link change (RTM_NEWROUTE/DELROUTE, RTM_NEWLINK).
//! The signaling core takes [`RouteTable`]s as plain input, so its reaction
//! to route changes is tested with tables made by hand.

use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_LINK};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
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
            if !up && name != "lo" {
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
    while messages.next().await.is_some() {
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
