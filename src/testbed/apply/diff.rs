//! The difference between a running topology and its edited file, as the
//! ordered steps that turn one into the other. Pure: two [`Topology`]
//! values in, steps out; what runs now is never consulted here.
//!
//! Identity: routers and virtual nodes by name, substrate links by their two
//! ends (router and address). A link keeps its veth when it survives, even
//! if its interface name moves (`eth2` becomes `eth1` when an earlier link
//! of the router goes): that is a rename, not a new link.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::topology::{Link, Route, Topology, Vnode};

/// What `apply` refuses to change on a running topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "[topology] {field} differs ({old} running, {new} in the file): apply changes routers, links, virtual nodes, capacities and keys only; change {field} with `vlsp down` and `vlsp up`"
    )]
    Setting {
        field: &'static str,
        old: String,
        new: String,
    },
    #[error(
        "virtual node {0} is a QEMU guest, and apply does not add, remove or change QEMU guests: leave it as it runs, or use `vlsp down` and `vlsp up`"
    )]
    Qemu(String),
}

/// One end of a substrate link, `router:ifname`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct End {
    pub node: String,
    pub ifname: String,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.ifname)
    }
}

/// One thing `apply` does, in the order of [`diff`]'s list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Tear a reserved virtual link down through its initiator (`--force`).
    TearDown {
        vlink_id: u64,
        from: String,
        to: String,
        initiator: String,
    },
    /// Stop a router's NSIS node (removed, no longer NSIS, or restarted).
    StopNode {
        node: String,
    },
    RemoveVnode {
        vnode: String,
        host: String,
    },
    RemoveLink {
        a: End,
        b: End,
    },
    RemoveRouter {
        node: String,
    },
    /// Rename an interface of a surviving link (the link blinks).
    Rename {
        node: String,
        from: String,
        to: String,
    },
    AddRouter {
        node: String,
    },
    AddLink {
        a: End,
        b: End,
        capacity_bps: u64,
    },
    /// Shape a surviving link's end to a new capacity.
    Reshape {
        end: End,
        old_bps: u64,
        capacity_bps: u64,
    },
    AddVnode {
        vnode: String,
        host: String,
    },
    /// Replace the router's static routes (added ones replace in place,
    /// so a route that stays never disappears).
    Routes {
        node: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Give a running node its new neighbours, capacities, routes and keys
    /// (its sessions stay).
    Reconfigure {
        node: String,
    },
    /// Start a router's NSIS node as a `vlsp node` process.
    StartNode {
        node: String,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = |b: u64| crate::model::units::Rate::from_bps(b);
        match self {
            Step::TearDown {
                vlink_id,
                from,
                to,
                initiator,
            } => write!(
                f,
                "tear down virtual link {} ({from} -> {to}) through {initiator}",
                crate::node::api::link_id_short(*vlink_id)
            ),
            Step::StopNode { node } => write!(f, "stop the NSIS node of {node}"),
            Step::RemoveVnode { vnode, host } => {
                write!(f, "remove virtual node {vnode} (on {host})")
            }
            Step::RemoveLink { a, b } => write!(f, "remove link {a} -- {b}"),
            Step::RemoveRouter { node } => write!(f, "remove router {node}"),
            Step::Rename { node, from, to } => {
                write!(f, "rename {node}:{from} to {to} (the link blinks)")
            }
            Step::AddRouter { node } => write!(f, "add router {node}"),
            Step::AddLink { a, b, capacity_bps } => {
                write!(f, "add link {a} -- {b} ({})", rate(*capacity_bps))
            }
            Step::Reshape {
                end,
                old_bps,
                capacity_bps,
            } => write!(
                f,
                "shape {end} to {} (was {})",
                rate(*capacity_bps),
                rate(*old_bps)
            ),
            Step::AddVnode { vnode, host } => write!(f, "add virtual node {vnode} (on {host})"),
            Step::Routes { node, add, remove } => {
                write!(f, "routes of {node}:")?;
                for r in add {
                    write!(f, " +{r}")?;
                }
                for r in remove {
                    write!(f, " -{r}")?;
                }
                Ok(())
            }
            Step::Reconfigure { node } => write!(
                f,
                "reconfigure the NSIS node of {node} (neighbours, capacities, routes, keys)"
            ),
            Step::StartNode { node } => write!(f, "start an NSIS node for {node}"),
        }
    }
}

/// What happens to a router's NSIS node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeChange {
    Start,
    Stop,
    /// Its own address or provider changes: a new node replaces it.
    Restart,
    Reconfigure,
}

/// A link's identity: its two ends by router and address, in order.
type LinkKey = ((String, Ipv4Addr), (String, Ipv4Addr));

fn key(l: &Link) -> LinkKey {
    let a = (l.a.node.clone(), l.a.addr);
    let b = (l.b.node.clone(), l.b.addr);
    if a <= b { (a, b) } else { (b, a) }
}

fn ends(l: &Link) -> (End, End) {
    let e = |x: &crate::topology::Endpoint| End {
        node: x.node.clone(),
        ifname: x.ifname.clone(),
    };
    (e(&l.a), e(&l.b))
}

fn route_text(r: &Route) -> String {
    format!("{}/{} via {} dev {}", r.dest, r.prefix_len, r.via, r.ifname)
}

/// The routers whose node changes, and how.
pub fn node_changes(old: &Topology, new: &Topology) -> BTreeMap<String, NodeChange> {
    let mut out = BTreeMap::new();
    let runs = |t: &Topology, n: &str| t.node(n).is_some_and(|n| n.runs_vlsp());
    let names: BTreeSet<&str> = old
        .nodes
        .iter()
        .chain(&new.nodes)
        .map(|n| n.name.as_str())
        .collect();
    for n in names {
        let change = match (runs(old, n), runs(new, n)) {
            (false, false) => continue,
            (true, false) => NodeChange::Stop,
            (false, true) => NodeChange::Start,
            (true, true) => {
                let own = |t: &Topology| {
                    (
                        t.node_addr(n),
                        t.node(n).map(|x| x.provider.clone()),
                        t.node(n)
                            .and_then(|x| t.provider(&x.provider))
                            .map(|p| (p.key_id, p.transform)),
                    )
                };
                if own(old) != own(new) {
                    NodeChange::Restart
                } else if fingerprint(old, n) != fingerprint(new, n) {
                    NodeChange::Reconfigure
                } else {
                    continue;
                }
            }
        };
        out.insert(n.to_string(), change);
    }
    out
}

/// Everything of the topology a node's configuration is made from,
/// besides the `[topology]` settings (which apply refuses to change).
fn fingerprint(t: &Topology, n: &str) -> String {
    let links: Vec<_> = t.links_of(n).collect();
    let hosts: Vec<_> = t
        .vnodes
        .iter()
        .map(|v| (v, t.node_addr(&v.host), t.providers_on_path(n, &v.host)))
        .collect();
    format!(
        "{links:?}{:?}{hosts:?}{:?}{:?}",
        t.routes(n),
        t.providers,
        t.vnets
    )
}

/// Refuses changes apply does not make (see [`Refusal`]).
pub fn check(old: &Topology, new: &Topology) -> Result<(), Refusal> {
    let setting = |field, o: String, n: String| {
        if o == n {
            Ok(())
        } else {
            Err(Refusal::Setting {
                field,
                old: o,
                new: n,
            })
        }
    };
    setting(
        "profile",
        format!("{:?}", old.profile),
        format!("{:?}", new.profile),
    )?;
    setting(
        "backend",
        format!("{:?}", old.backend),
        format!("{:?}", new.backend),
    )?;
    setting(
        "tunnel",
        format!("{:?}", old.tunnel),
        format!("{:?}", new.tunnel),
    )?;
    setting(
        "refresh_ms",
        old.refresh_ms.to_string(),
        new.refresh_ms.to_string(),
    )?;
    setting(
        "gist_mode",
        format!("{:?}", old.gist_mode),
        format!("{:?}", new.gist_mode),
    )?;
    for v in old.vnodes.iter().chain(&new.vnodes) {
        let same = old.vnodes.iter().find(|o| o.name == v.name)
            == new.vnodes.iter().find(|o| o.name == v.name);
        if v.qemu.is_some() && !same {
            return Err(Refusal::Qemu(v.name.clone()));
        }
    }
    Ok(())
}

/// Virtual nodes that go (removed, or changed and so re-made).
pub fn vnodes_removed<'a>(old: &'a Topology, new: &Topology) -> Vec<&'a Vnode> {
    old.vnodes
        .iter()
        .filter(|v| new.vnodes.iter().find(|n| n.name == v.name) != Some(*v))
        .collect()
}

/// The steps from `old` to `new` (no teardowns: those depend on what runs).
pub fn diff(old: &Topology, new: &Topology) -> Result<Vec<Step>, Refusal> {
    check(old, new)?;
    let mut steps = vec![];
    let nodes = node_changes(old, new);
    for (n, c) in &nodes {
        if matches!(c, NodeChange::Stop | NodeChange::Restart) {
            steps.push(Step::StopNode { node: n.clone() });
        }
    }
    let gone_vnodes = vnodes_removed(old, new);
    for v in &gone_vnodes {
        steps.push(Step::RemoveVnode {
            vnode: v.name.clone(),
            host: v.host.clone(),
        });
    }
    let new_links: BTreeMap<LinkKey, &Link> = new.links.iter().map(|l| (key(l), l)).collect();
    let old_links: BTreeMap<LinkKey, &Link> = old.links.iter().map(|l| (key(l), l)).collect();
    for l in &old.links {
        if !new_links.contains_key(&key(l)) {
            let (a, b) = ends(l);
            steps.push(Step::RemoveLink { a, b });
        }
    }
    for n in &old.nodes {
        if new.node(&n.name).is_none() {
            steps.push(Step::RemoveRouter {
                node: n.name.clone(),
            });
        }
    }
    // Renames of surviving links' ends: (node, old name, new name).
    let mut renames = vec![];
    let mut reshapes = vec![];
    for l in &old.links {
        let Some(n) = new_links.get(&key(l)) else {
            continue;
        };
        for (o, e) in [(&l.a, &n.a), (&l.b, &n.b), (&l.a, &n.b), (&l.b, &n.a)] {
            if o.node != e.node || o.addr != e.addr {
                continue;
            }
            if o.ifname != e.ifname {
                renames.push((o.node.clone(), o.ifname.clone(), e.ifname.clone()));
            }
            if l.capacity_bps != n.capacity_bps {
                reshapes.push(Step::Reshape {
                    end: End {
                        node: e.node.clone(),
                        ifname: e.ifname.clone(),
                    },
                    old_bps: l.capacity_bps,
                    capacity_bps: n.capacity_bps,
                });
            }
        }
    }
    renames.sort();
    let renamed: BTreeSet<String> = renames.iter().map(|r| r.0.clone()).collect();
    steps.extend(order_renames(renames));
    for n in &new.nodes {
        if old.node(&n.name).is_none() {
            steps.push(Step::AddRouter {
                node: n.name.clone(),
            });
        }
    }
    for l in &new.links {
        if !old_links.contains_key(&key(l)) {
            let (a, b) = ends(l);
            steps.push(Step::AddLink {
                a,
                b,
                capacity_bps: l.capacity_bps,
            });
        }
    }
    steps.extend(reshapes);
    for v in &new.vnodes {
        if old.vnodes.iter().find(|o| o.name == v.name) != Some(v) {
            steps.push(Step::AddVnode {
                vnode: v.name.clone(),
                host: v.host.clone(),
            });
        }
    }
    for n in &new.nodes {
        let before = if old.node(&n.name).is_some() {
            old.routes(&n.name)
        } else {
            vec![]
        };
        let after = new.routes(&n.name);
        if before == after && !renamed.contains(&n.name) {
            continue;
        }
        steps.push(Step::Routes {
            node: n.name.clone(),
            add: after
                .iter()
                .filter(|r| renamed.contains(&n.name) || !before.contains(r))
                .map(route_text)
                .collect(),
            remove: before
                .iter()
                .filter(|r| {
                    !after
                        .iter()
                        .any(|a| a.dest == r.dest && a.prefix_len == r.prefix_len)
                })
                .map(route_text)
                .collect(),
        });
    }
    for (n, c) in &nodes {
        steps.push(match c {
            NodeChange::Reconfigure => Step::Reconfigure { node: n.clone() },
            NodeChange::Start | NodeChange::Restart => Step::StartNode { node: n.clone() },
            NodeChange::Stop => continue,
        });
    }
    Ok(steps)
}

/// Orders renames so that no target name is still held by an interface
/// waiting for its own rename; a cycle goes through a temporary name.
fn order_renames(mut todo: Vec<(String, String, String)>) -> Vec<Step> {
    let mut out = vec![];
    let mut tmp = 0;
    while !todo.is_empty() {
        let free = (0..todo.len()).find(|&i| {
            let (n, _, to) = &todo[i];
            !todo.iter().any(|(m, from, _)| m == n && from == to)
        });
        let i = match free {
            Some(i) => i,
            None => {
                // A cycle: park the first one under a name no link has.
                let (n, from, to) = todo[0].clone();
                let park = format!("vlspmv{tmp}");
                tmp += 1;
                out.push(Step::Rename {
                    node: n.clone(),
                    from,
                    to: park.clone(),
                });
                todo[0] = (n, park, to);
                continue;
            }
        };
        let (node, from, to) = todo.remove(i);
        out.push(Step::Rename { node, from, to });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    pub(crate) fn paper() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml"),
        )
        .unwrap()
    }

    /// paper-4node plus tb5 between tb2 and tb3.
    pub(crate) fn with_tb5(src: &str) -> String {
        format!(
            "{src}\n[[node]]\nname = \"tb5\"\n[[link]]\na = \"tb2:172.2.5.2/24\"\nb = \"tb5:172.2.5.5/24\"\n[[link]]\na = \"tb5:172.5.3.5/24\"\nb = \"tb3:172.5.3.3/24\"\n"
        )
    }

    pub(crate) fn parse(src: &str) -> Topology {
        Topology::parse(src, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn show(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_same_topology_needs_nothing() {
        let t = parse(&paper());
        assert!(diff(&t, &t.clone()).unwrap().is_empty());
    }

    #[test]
    fn adding_a_router_adds_it_its_links_and_routes_and_reconfigures_the_rest() {
        let old = parse(&paper());
        let new = parse(&with_tb5(&paper()));
        let s = show(&diff(&old, &new).unwrap());
        assert_eq!(s[0], "add router tb5");
        assert_eq!(s[1], "add link tb2:eth2 -- tb5:eth0 (1gbit)");
        assert_eq!(s[2], "add link tb5:eth1 -- tb3:eth2 (1gbit)");
        // Every router learns the two new subnets; nothing is removed.
        assert!(
            s.iter()
                .any(|x| x.starts_with("routes of tb1: +172.2.5.0/24"))
        );
        assert!(!s.iter().any(|x| x.contains(" -1")), "{s:#?}");
        assert!(s.contains(&"start an NSIS node for tb5".to_string()));
        for n in ["tb1", "tb2", "tb3", "tb4"] {
            assert!(
                s.iter()
                    .any(|x| x.starts_with(&format!("reconfigure the NSIS node of {n}")))
            );
        }
        assert!(!s.iter().any(|x| x.contains("remove") || x.contains("stop")));
    }

    #[test]
    fn removing_a_link_renames_later_interfaces_and_restarts_a_node_whose_address_moves() {
        let old = parse(&with_tb5(&paper()));
        let src = with_tb5(&paper()).replacen(
            "[[link]]\na = \"tb2:172.2.3.2/24\"\nb = \"tb3:172.2.3.3/24\"\ncapacity = \"1gbit\"\n",
            "",
            1,
        );
        let new = parse(&src);
        let steps = diff(&old, &new).unwrap();
        let s = show(&steps);
        assert_eq!(s[0], "stop the NSIS node of tb3");
        assert_eq!(s[1], "remove link tb2:eth1 -- tb3:eth0");
        assert_eq!(
            &s[2..5],
            [
                "rename tb2:eth2 to eth1 (the link blinks)",
                "rename tb3:eth1 to eth0 (the link blinks)",
                "rename tb3:eth2 to eth1 (the link blinks)",
            ]
        );
        assert!(s.contains(&"start an NSIS node for tb3".to_string()));
        assert_eq!(node_changes(&old, &new)["tb3"], NodeChange::Restart);
        assert_eq!(node_changes(&old, &new)["tb2"], NodeChange::Reconfigure);
    }

    #[test]
    fn capacity_and_key_changes_touch_only_shaping_and_node_configuration() {
        let old = parse(&paper());
        let src = paper()
            .replacen("capacity = \"1gbit\"", "capacity = \"100mbit\"", 1)
            .replace(
                "12345678901234567890123456789012",
                "abcdefabcdefabcdefabcdefabcdefab",
            );
        let s = show(&diff(&old, &parse(&src)).unwrap());
        assert_eq!(
            &s[..2],
            [
                "shape tb1:eth0 to 100mbit (was 1gbit)",
                "shape tb2:eth0 to 100mbit (was 1gbit)"
            ]
        );
        assert_eq!(s.len(), 6, "{s:#?}");
        assert!(s[2..].iter().all(|x| x.starts_with("reconfigure")));
    }

    #[test]
    fn settings_and_qemu_guests_are_refused() {
        let old = parse(&paper());
        let new = parse(&paper().replacen("refresh_ms = 30000", "refresh_ms = 1000", 1));
        let e = diff(&old, &new).unwrap_err();
        assert!(
            e.to_string()
                .contains("refresh_ms differs (30000 running, 1000 in the file)")
        );
        let q = paper().replacen(
            "address = \"10.10.0.2/24\"",
            "address = \"10.10.0.2/24\"\nkind = \"qemu\"",
            1,
        );
        assert_eq!(
            diff(&old, &parse(&q)).unwrap_err(),
            Refusal::Qemu("VM2".into())
        );
    }

    #[test]
    fn rename_cycles_go_through_a_parked_name() {
        let r = |n: &str, a: &str, b: &str| (n.to_string(), a.to_string(), b.to_string());
        let s = show(&order_renames(vec![
            r("x", "eth0", "eth1"),
            r("x", "eth1", "eth0"),
        ]));
        assert_eq!(
            s,
            [
                "rename x:eth0 to vlspmv0 (the link blinks)",
                "rename x:eth1 to eth0 (the link blinks)",
                "rename x:vlspmv0 to eth1 (the link blinks)"
            ]
        );
        let s = show(&order_renames(vec![
            r("x", "eth1", "eth2"),
            r("x", "eth2", "eth3"),
        ]));
        assert_eq!(s[0], "rename x:eth2 to eth3 (the link blinks)");
    }
}
