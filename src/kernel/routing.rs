//! A router's routes after the graph changed: the static routes replaced
//! by a new set (the ones vlsp added are `proto static`; others, the
//! kernel's connected routes and bird's, are not touched), and counts of
//! what is installed for `vlsp status`.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::kernel::links::link_index;
use crate::topology::Route;

/// Every IPv4 route of the main table in the namespace of `h`.
async fn main_routes(h: &Handle) -> Result<Vec<RouteMessage>> {
    let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let all: Vec<RouteMessage> = h
        .route()
        .get(filter)
        .execute()
        .try_collect()
        .await
        .context("listing routes")?;
    Ok(all
        .into_iter()
        .filter(|r| r.header.table == 254) // RT_TABLE_MAIN
        .collect())
}

fn dest_of(r: &RouteMessage) -> (Ipv4Addr, u8) {
    let d = r
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    (d, r.header.destination_prefix_length)
}

/// The routes of `protocol` in the namespace of `h`: destination, prefix
/// length and gateway.
pub async fn routes_of(
    h: &Handle,
    protocol: RouteProtocol,
) -> Result<Vec<(Ipv4Addr, u8, Option<Ipv4Addr>)>> {
    Ok(main_routes(h)
        .await?
        .iter()
        .filter(|r| r.header.protocol == protocol)
        .map(|r| {
            let gw = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                _ => None,
            });
            let (d, l) = dest_of(r);
            (d, l, gw)
        })
        .collect())
}

/// Routes in the namespace of `h` by protocol: (vlsp's static, bird's,
/// all of the main table).
pub async fn route_counts(h: &Handle) -> Result<(usize, usize, usize)> {
    let all = main_routes(h).await?;
    let n = |p: RouteProtocol| all.iter().filter(|r| r.header.protocol == p).count();
    Ok((n(RouteProtocol::Static), n(RouteProtocol::Bird), all.len()))
}

/// Makes `routes` the static routes of `node` (handle `h`): each one added
/// or replaced first, then the static routes not among them deleted, so a
/// destination that stays reachable never loses its route in between.
/// Routes through an interface that is down are skipped (the kernel
/// refuses them; the link is not in the graph either).
pub async fn replace_static(h: &Handle, node: &str, routes: &[Route]) -> Result<()> {
    for r in routes {
        let i = link_index(h, &r.ifname).await?;
        h.route()
            .add(crate::kernel::links::route_msg(
                r.dest,
                r.prefix_len,
                r.via,
                i,
            ))
            .replace()
            .execute()
            .await
            .with_context(|| {
                format!(
                    "route {}/{} via {} on {node}:{}",
                    r.dest, r.prefix_len, r.via, r.ifname
                )
            })?;
    }
    let keep: Vec<(Ipv4Addr, u8)> = routes.iter().map(|r| (r.dest, r.prefix_len)).collect();
    for old in main_routes(h).await? {
        if old.header.protocol != RouteProtocol::Static || keep.contains(&dest_of(&old)) {
            continue;
        }
        let (d, l) = dest_of(&old);
        // Gone already (its interface went down) is as good as deleted.
        if let Err(e) = h.route().del(old).execute().await
            && !e.to_string().contains("No such process")
        {
            return Err(anyhow::Error::from(e).context(format!("delete route {d}/{l} on {node}")));
        }
    }
    Ok(())
}
