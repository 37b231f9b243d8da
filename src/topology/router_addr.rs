//! Router addresses: an address per router that no link owns (a /32 on
//! `lo`), so the flow and tunnel ends of a virtual link do not die with the
//! link whose address they would otherwise borrow. Opt-in: without
//! `router_addr`/`router_addrs` a router is addressed by its first link,
//! which the paper's layout (and its byte checks) keep.

use std::net::Ipv4Addr;

use super::file::{File, Source, TopologyError};
use super::routes::network;
use super::{Link, Node};
use crate::model::cidr::parse_cidr;

/// Fills in every node's `router_addr`: its own key, else the next host
/// address of `[topology] router_addrs`. Refuses an address inside a
/// link's subnet or given twice.
pub(super) fn assign(
    f: &File,
    nodes: &mut [Node],
    links: &[Link],
    src: &Source,
) -> Result<(), TopologyError> {
    let range = match &f.topology.get_ref().router_addrs {
        None => None,
        Some(r) => match parse_cidr(r.get_ref()) {
            Some((a, len)) if len <= 30 => Some((network(a, len), len, r.span())),
            _ => {
                return Err(src.err(
                    r.span(),
                    format!(
                        "router_addrs = {:?}: write a range ADDRESS/PREFIX with a prefix of at most /30, e.g. \"10.255.0.0/24\"",
                        r.get_ref()
                    ),
                ));
            }
        },
    };
    let mut next = 1u32;
    let mut taken: Vec<Ipv4Addr> = Vec::new();
    for (n, d) in nodes.iter_mut().zip(&f.node) {
        let d = d.get_ref();
        let (addr, span) = match (&d.router_addr, &range) {
            (Some(a), _) => match a.get_ref().parse::<Ipv4Addr>() {
                Ok(ip) if !ip.is_unspecified() && !ip.is_loopback() && !ip.is_multicast() => {
                    (ip, a.span())
                }
                _ => {
                    return Err(src.err(
                        a.span(),
                        format!(
                            "router_addr = {:?} of {}: write one unicast IPv4 address outside 127.0.0.0/8, e.g. \"10.255.0.1\"",
                            a.get_ref(),
                            n.name
                        ),
                    ));
                }
            },
            (None, Some((net, len, span))) => {
                let hosts = (1u32 << (32 - *len as u32)) - 2;
                // Skip addresses other routers name by hand.
                while next <= hosts && taken_by_hand(f, net + next) {
                    next += 1;
                }
                if next > hosts {
                    return Err(src.err(
                        span.clone(),
                        format!(
                            "router_addrs has {hosts} host addresses, too few for {} routers: give a larger range",
                            nodes_len(f)
                        ),
                    ));
                }
                next += 1;
                (Ipv4Addr::from(net + next - 1), span.clone())
            }
            (None, None) => continue,
        };
        if taken.contains(&addr) {
            return Err(src.err(
                span,
                format!(
                    "router address {addr} of {} is another router's too: give each router its own",
                    n.name
                ),
            ));
        }
        for l in links {
            for e in [&l.a, &l.b] {
                if network(addr, e.prefix_len) == network(e.addr, e.prefix_len) {
                    return Err(src.err(
                        span,
                        format!(
                            "router address {addr} of {} lies in the subnet of link {}-{} ({}/{}): take one outside every link's subnet",
                            n.name, l.a.node, l.b.node, e.addr, e.prefix_len
                        ),
                    ));
                }
            }
        }
        taken.push(addr);
        n.router_addr = Some(addr);
    }
    Ok(())
}

fn taken_by_hand(f: &File, a: u32) -> bool {
    f.node.iter().any(|d| {
        d.get_ref()
            .router_addr
            .as_ref()
            .and_then(|s| s.get_ref().parse::<Ipv4Addr>().ok())
            == Some(Ipv4Addr::from(a))
    })
}

fn nodes_len(f: &File) -> usize {
    f.node.len()
}

#[cfg(test)]
mod tests {
    use crate::topology::Topology;
    use std::net::Ipv4Addr;
    use std::path::Path;

    fn ring(extra_header: &str, r2: &str) -> Result<Topology, String> {
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml"),
        )
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("router_addrs"))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen(
            "name = \"ring-6node\"",
            &format!("name = \"ring-6node\"\n{extra_header}"),
            1,
        )
        .replacen("name = \"r2\"", &format!("name = \"r2\"\n{r2}"), 1);
        Topology::parse(&src, Path::new("r.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_range_numbers_the_routers_in_file_order_around_hand_set_ones() {
        let t = ring(
            "router_addrs = \"10.255.0.0/24\"",
            "router_addr = \"10.255.0.2\"",
        )
        .unwrap();
        let got: Vec<_> = t.nodes.iter().map(|n| n.router_addr.unwrap()).collect();
        let want: Vec<Ipv4Addr> = [1, 3, 2, 4, 5, 6]
            .iter()
            .map(|i| Ipv4Addr::new(10, 255, 0, *i))
            .collect();
        assert_eq!(got, want);
        assert_eq!(t.node_addr("r2"), Some(Ipv4Addr::new(10, 255, 0, 2)));
        // Written back per router, so a saved topology parses to the same.
        let again = Topology::parse(&t.to_toml(), Path::new("s.toml")).unwrap();
        assert_eq!(again.nodes, t.nodes);
    }

    #[test]
    fn without_the_keys_a_router_is_its_first_links_address() {
        let t = ring("", "").unwrap();
        assert!(t.nodes.iter().all(|n| n.router_addr.is_none()));
        assert_eq!(t.node_addr("r2"), Some(Ipv4Addr::new(10, 6, 1, 2)));
    }

    #[test]
    fn clashes_and_bad_ranges_are_refused_with_the_reason() {
        let e = ring("", "router_addr = \"10.6.3.9\"").unwrap_err();
        assert!(e.contains("lies in the subnet of link r3-r4"), "{e}");
        let e = ring(
            "router_addrs = \"10.255.0.0/24\"",
            "router_addr = \"10.255.0.1\"\n[[node]]\nname = \"r9\"\nrouter_addr = \"10.255.0.1\"",
        )
        .unwrap_err();
        assert!(e.contains("another router's too"), "{e}");
        let e = ring("router_addrs = \"10.255.0.0/30\"", "").unwrap_err();
        assert!(e.contains("too few for"), "{e}");
        let e = ring("router_addrs = \"banana\"", "").unwrap_err();
        assert!(e.contains("ADDRESS/PREFIX"), "{e}");
        let e = ring("", "router_addr = \"127.0.0.1\"").unwrap_err();
        assert!(e.contains("outside 127.0.0.0/8"), "{e}");
    }
}
