//! Which reserved virtual links a plan would strand (a link, router or
//! node on its path goes, or a virtual node it ends at), and which only
//! move to another path. Pure: the running links are given.

use serde::Serialize;

use super::diff::{End, Step};
use crate::topology::Topology;

/// A reserved virtual link, as its hosts' APIs list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vlink {
    pub vlink_id: u64,
    /// Virtual node names (the initiator hosts `from`).
    pub from: String,
    pub to: String,
}

/// A virtual link the plan would cut, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stranded {
    pub vlink_id: u64,
    pub from: String,
    pub to: String,
    /// The router whose API tears it down (hosts `from`).
    pub initiator: String,
    pub because: String,
}

/// A virtual link that stays up but whose path changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rerouted {
    pub vlink_id: u64,
    pub old_path: Vec<String>,
    pub new_path: Vec<String>,
}

fn host(t: &Topology, vnode: &str) -> Option<String> {
    t.vnodes
        .iter()
        .find(|v| v.name == vnode)
        .map(|v| v.host.clone())
}

/// The links a path crosses, as the routes take them (the first link
/// between two neighbours in file order).
fn hops(t: &Topology, path: &[String]) -> Vec<(End, End)> {
    path.windows(2)
        .filter_map(|w| {
            t.links_of(&w[0])
                .find(|(_, o, _)| o.node == w[1])
                .map(|(me, o, _)| {
                    (
                        End {
                            node: me.node.clone(),
                            ifname: me.ifname.clone(),
                        },
                        End {
                            node: o.node.clone(),
                            ifname: o.ifname.clone(),
                        },
                    )
                })
        })
        .collect()
}

/// Why `steps` would cut `v`, if they would: a removal first (that is
/// what the user edited), a node restart otherwise.
fn cut(old: &Topology, steps: &[Step], v: &Vlink, path: &[String]) -> Option<String> {
    let (stops, rest): (Vec<&Step>, Vec<&Step>) = steps
        .iter()
        .partition(|s| matches!(s, Step::StopNode { .. }));
    for s in rest.into_iter().chain(stops) {
        let why = match s {
            Step::RemoveVnode { vnode, .. } if *vnode == v.from || *vnode == v.to => {
                format!("virtual node {vnode} it ends at is removed or re-made")
            }
            Step::RemoveRouter { node } if path.contains(node) => {
                format!("router {node} on its path is removed")
            }
            Step::StopNode { node } if path.contains(node) => {
                format!("the NSIS node of {node} on its path stops or restarts")
            }
            Step::RemoveLink { a, b }
                if hops(old, path)
                    .iter()
                    .any(|(x, y)| (x == a && y == b) || (x == b && y == a)) =>
            {
                format!("link {a} -- {b} on its path is removed")
            }
            Step::Rename { node, from, to }
                if hops(old, path)
                    .iter()
                    .any(|(x, y)| [x, y].iter().any(|e| e.node == *node && e.ifname == *from)) =>
            {
                format!("interface {node}:{from} on its path is renamed to {to}")
            }
            _ => continue,
        };
        return Some(why);
    }
    None
}

/// The running virtual links `steps` would strand, and those that only move.
pub fn affected(
    old: &Topology,
    new: &Topology,
    steps: &[Step],
    vlinks: &[Vlink],
) -> (Vec<Stranded>, Vec<Rerouted>) {
    let mut stranded = vec![];
    let mut moved = vec![];
    for v in vlinks {
        let (Some(hf), Some(ht)) = (host(old, &v.from), host(old, &v.to)) else {
            continue;
        };
        let path = old.path(&hf, &ht).unwrap_or_default();
        if let Some(because) = cut(old, steps, v, &path) {
            stranded.push(Stranded {
                vlink_id: v.vlink_id,
                from: v.from.clone(),
                to: v.to.clone(),
                initiator: hf,
                because,
            });
            continue;
        }
        let new_path = new.path(&hf, &ht).unwrap_or_default();
        if new_path != path {
            moved.push(Rerouted {
                vlink_id: v.vlink_id,
                old_path: path,
                new_path,
            });
        }
    }
    (stranded, moved)
}

#[cfg(test)]
mod tests {
    use super::super::diff::diff;
    use super::super::diff::tests::{paper, parse, with_tb5};
    use super::*;

    fn vm1_vm2() -> Vec<Vlink> {
        vec![Vlink {
            vlink_id: 7,
            from: "VM1".into(),
            to: "VM2".into(),
        }]
    }

    #[test]
    fn a_router_beside_the_path_strands_nothing() {
        let (old, new) = (parse(&paper()), parse(&with_tb5(&paper())));
        let steps = diff(&old, &new).unwrap();
        assert_eq!(affected(&old, &new, &steps, &vm1_vm2()), (vec![], vec![]));
    }

    #[test]
    fn removing_a_link_on_the_path_strands_the_link_and_names_both() {
        let old = parse(&with_tb5(&paper()));
        let src = with_tb5(&paper()).replacen(
            "[[link]]\na = \"tb2:172.2.3.2/24\"\nb = \"tb3:172.2.3.3/24\"\ncapacity = \"1gbit\"\n",
            "",
            1,
        );
        let new = parse(&src);
        let steps = diff(&old, &new).unwrap();
        let (s, m) = affected(&old, &new, &steps, &vm1_vm2());
        assert!(m.is_empty());
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].vlink_id, s[0].initiator.as_str()), (7, "tb1"));
        assert_eq!(
            s[0].because,
            "link tb2:eth1 -- tb3:eth0 on its path is removed"
        );
    }

    #[test]
    fn a_shorter_way_moves_the_link_without_stranding_it() {
        let old = parse(&paper());
        let src = format!(
            "{}\n[[link]]\na = \"tb1:172.1.4.1/24\"\nb = \"tb4:172.1.4.4/24\"\n",
            paper()
        );
        let new = parse(&src);
        let steps = diff(&old, &new).unwrap();
        let (s, m) = affected(&old, &new, &steps, &vm1_vm2());
        assert!(s.is_empty(), "{s:?}");
        assert_eq!(m[0].new_path, ["tb1", "tb4"]);
    }

    #[test]
    fn removing_the_vnode_a_link_ends_at_strands_it() {
        let old = parse(&paper());
        let src = paper().replacen(
            "[[vnode]]\nname = \"VM2\"\nvnet = \"vnet1\"\nhost = \"tb4\"\nid = 2\naddress = \"10.10.0.2/24\"\n",
            "",
            1,
        );
        let new = parse(&src);
        let steps = diff(&old, &new).unwrap();
        let (s, _) = affected(&old, &new, &steps, &vm1_vm2());
        assert_eq!(
            s[0].because,
            "virtual node VM2 it ends at is removed or re-made"
        );
    }
}
