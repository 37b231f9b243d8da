//! Declared failures of a running topology: which substrate links are down
//! and which routers are stopped, and the graph that is left. Pure: the
//! kernel work lives in `testbed::faults`, the static routes around the
//! faults come from [`Topology::routes_with`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Route, Topology};

/// One fault (or its repair) as the CLI and experiment files name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Fault {
    /// Both ends of the link down (`A-B`, the routers' names).
    LinkDown {
        link: String,
    },
    LinkUp {
        link: String,
    },
    /// The router silenced: its NSIS node halted, its links down, no
    /// forwarding.
    NodeStop {
        node: String,
    },
    NodeStart {
        node: String,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::LinkDown { link } => write!(f, "link-down {link}"),
            Fault::LinkUp { link } => write!(f, "link-up {link}"),
            Fault::NodeStop { node } => write!(f, "node-stop {node}"),
            Fault::NodeStart { node } => write!(f, "node-start {node}"),
        }
    }
}

/// A fault that names nothing of the topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("no link {0} in {1}: name a link by its routers, `A-B` (see `vlsp graph`)")]
    NoLink(String, String),
    #[error(
        "{0} names {2} links of {1}: between the same routers a fault cannot tell them apart; give the routers one link each"
    )]
    Ambiguous(String, String, usize),
    #[error("no router {0:?} in {1} (see `vlsp graph`)")]
    NoNode(String, String),
}

/// What is failed now: kept in the run directory (`faults.json`) so `vlsp
/// status` shows it and each `vlsp fault` builds on the last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultState {
    /// Links down, by their canonical name (`a-b` in file order).
    pub links_down: BTreeSet<String>,
    pub nodes_stopped: BTreeSet<String>,
}

impl FaultState {
    pub fn is_empty(&self) -> bool {
        self.links_down.is_empty() && self.nodes_stopped.is_empty()
    }

    /// The state after `f` (names checked against `topo`).
    pub fn with(&self, topo: &Topology, f: &Fault) -> Result<Self, FaultError> {
        let mut s = self.clone();
        match f {
            Fault::LinkDown { link } => {
                s.links_down.insert(topo.link_name(topo.link_index(link)?));
            }
            Fault::LinkUp { link } => {
                s.links_down.remove(&topo.link_name(topo.link_index(link)?));
            }
            Fault::NodeStop { node } => {
                topo.check_router(node)?;
                s.nodes_stopped.insert(node.clone());
            }
            Fault::NodeStart { node } => {
                topo.check_router(node)?;
                s.nodes_stopped.remove(node);
            }
        }
        Ok(s)
    }
}

impl Topology {
    /// The canonical name of link `i`: its routers as written, `a-b`.
    pub fn link_name(&self, i: usize) -> String {
        let l = &self.links[i];
        format!("{}-{}", l.a.node, l.b.node)
    }

    /// The link named `A-B` or `B-A`. Router names may hold `-` too, so
    /// every link's name is compared whole.
    pub fn link_index(&self, name: &str) -> Result<usize, FaultError> {
        let hits: Vec<usize> = (0..self.links.len())
            .filter(|&i| {
                let l = &self.links[i];
                name == format!("{}-{}", l.a.node, l.b.node)
                    || name == format!("{}-{}", l.b.node, l.a.node)
            })
            .collect();
        match hits.as_slice() {
            [i] => Ok(*i),
            [] => Err(FaultError::NoLink(name.into(), self.name.clone())),
            more => Err(FaultError::Ambiguous(
                name.into(),
                self.name.clone(),
                more.len(),
            )),
        }
    }

    fn check_router(&self, node: &str) -> Result<(), FaultError> {
        self.node(node)
            .map(|_| ())
            .ok_or_else(|| FaultError::NoNode(node.into(), self.name.clone()))
    }

    /// The topology the faults leave: without the links that are down and
    /// without every link of a stopped router.
    pub fn without(&self, faults: &FaultState) -> Topology {
        let mut t = self.clone();
        let names: Vec<String> = (0..self.links.len()).map(|i| self.link_name(i)).collect();
        let mut i = 0;
        t.links.retain(|l| {
            let keep = !faults.links_down.contains(&names[i])
                && !faults.nodes_stopped.contains(&l.a.node)
                && !faults.nodes_stopped.contains(&l.b.node);
            i += 1;
            keep
        });
        t
    }

    /// The link subnets `node` reaches but is not attached to, and the
    /// router addresses of the routers it reaches: what a converged OSPF
    /// has a route to.
    pub fn remote_subnets(&self, node: &str) -> Vec<(u32, u8)> {
        let reach = self.distances(node);
        let key = |a, l| (super::routes::network(a, l), l);
        let own: Vec<(u32, u8)> = self
            .links_of(node)
            .map(|(me, _, _)| key(me.addr, me.prefix_len))
            .collect();
        let mut out: Vec<(u32, u8)> = self
            .links
            .iter()
            .filter(|l| reach.contains_key(&l.a.node))
            .map(|l| key(l.a.addr, l.a.prefix_len))
            .filter(|s| !own.contains(s))
            .collect();
        // Other routers' own addresses (a /32 each) are destinations too.
        out.extend(
            self.nodes
                .iter()
                .filter(|n| n.name != node && reach.contains_key(&n.name))
                .filter_map(|n| Some((u32::from(n.router_addr?), 32))),
        );
        out.sort();
        out.dedup();
        out
    }

    /// Static routes of `node` around `faults`: shortest paths in what is
    /// left (subnets no longer reachable get no route).
    pub fn routes_with(&self, node: &str, faults: &FaultState) -> Vec<Route> {
        if faults.is_empty() {
            return self.routes(node);
        }
        let left = self.without(faults);
        // A link that is down keeps its interface names in the kernel, but
        // `routes` names interfaces from the links it sees: only live ones.
        left.routes(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::Path;

    fn ring() -> Topology {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml");
        Topology::load(&p).unwrap()
    }

    #[test]
    fn links_are_named_by_their_routers_either_way() {
        let t = ring();
        assert_eq!(t.link_index("r2-r3"), Ok(2));
        assert_eq!(t.link_index("r3-r2"), Ok(2));
        assert_eq!(t.link_name(5), "r5-r0");
        assert!(matches!(t.link_index("r0-r3"), Err(FaultError::NoLink(..))));
        let e = t.link_index("x").unwrap_err().to_string();
        assert!(e.contains("no link x in ring-6node"), "{e}");
    }

    #[test]
    fn a_failed_link_moves_the_routes_the_other_way_round() {
        let t = ring();
        // r0 reaches r2-r3's subnet (10.6.2.0/24) via r1 (10.6.0.2) first.
        let via = |routes: &[Route], dest: Ipv4Addr| {
            routes
                .iter()
                .find(|r| super::super::routes::network(dest, r.prefix_len) == u32::from(r.dest))
                .map(|r| r.via)
        };
        let r3 = Ipv4Addr::new(10, 6, 2, 2);
        assert_eq!(
            via(&t.routes("r0"), r3),
            Some(Ipv4Addr::new(10, 6, 0, 2)),
            "before"
        );
        let f = FaultState::default()
            .with(
                &t,
                &Fault::LinkDown {
                    link: "r1-r2".into(),
                },
            )
            .unwrap();
        assert_eq!(f.links_down.iter().collect::<Vec<_>>(), ["r1-r2"]);
        let after = t.routes_with("r0", &f);
        // Now the way to r3's side is through r5 (10.6.5.1).
        assert_eq!(
            via(&after, Ipv4Addr::new(10, 6, 3, 1)),
            Some(Ipv4Addr::new(10, 6, 5, 1))
        );
        // r1 reaches r2 round the ring: r1 -> r0 -> r5 -> ...
        assert!(
            t.routes_with("r1", &f)
                .iter()
                .all(|r| r.via == Ipv4Addr::new(10, 6, 0, 1))
        );
        // Repair: the routes are the original ones again.
        let back = f
            .with(
                &t,
                &Fault::LinkUp {
                    link: "r2-r1".into(),
                },
            )
            .unwrap();
        assert!(back.is_empty());
        assert_eq!(t.routes_with("r0", &back), t.routes("r0"));
    }

    #[test]
    fn a_stopped_router_is_routed_around() {
        let t = ring();
        let f = FaultState::default()
            .with(&t, &Fault::NodeStop { node: "r1".into() })
            .unwrap();
        let left = t.without(&f);
        assert_eq!(left.links.len(), 4);
        assert_eq!(
            left.path("r0", "r2").unwrap(),
            ["r0", "r5", "r4", "r3", "r2"]
        );
        // 4 subnets and the 5 other routers' addresses.
        assert_eq!(t.remote_subnets("r0").len(), 9);
        // r0 lost r0-r1; it reaches the 4 other links, one of them its
        // own, and r2..r5's addresses (r1 is out of reach).
        assert_eq!(left.remote_subnets("r0").len(), 7);
        assert!(
            FaultState::default()
                .with(&t, &Fault::NodeStop { node: "zz".into() })
                .is_err()
        );
    }

    #[test]
    fn faults_serialize_as_the_experiment_files_write_them() {
        let f: Fault = toml::from_str("action = \"link-down\"\nlink = \"r1-r2\"\n").unwrap();
        assert_eq!(
            f,
            Fault::LinkDown {
                link: "r1-r2".into()
            }
        );
        assert_eq!(f.to_string(), "link-down r1-r2");
        let s = FaultState::default().with(&ring(), &f).unwrap();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<FaultState>(&j).unwrap(), s);
    }
}
