//! Paths through the substrate: shortest paths (fewest hops), the static
//! routes each router gets, and the aggregation that keeps a long chain's
//! routing table short.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;

use super::{Endpoint, Provider, Route, Topology};

/// Merges sibling prefixes (two halves of one block) until none are left:
/// the result covers exactly the addresses the input covers, with as few
/// routes as that allows (a chain's 999 subnets behind one neighbour
/// become about ten routes).
pub fn aggregate(prefixes: Vec<(u32, u8)>) -> Vec<(u32, u8)> {
    let mut set: BTreeSet<(u8, u32)> = prefixes.into_iter().map(|(n, l)| (l, n)).collect();
    loop {
        let mut merged = None;
        for &(len, net) in &set {
            if len == 0 {
                continue;
            }
            let bit = 1u32 << (32 - len as u32);
            let sibling = net ^ bit;
            if net & bit == 0 && set.contains(&(len, sibling)) {
                merged = Some((len, net, sibling));
                break;
            }
        }
        let Some((len, a, b)) = merged else { break };
        set.remove(&(len, a));
        set.remove(&(len, b));
        set.insert((len - 1, a));
    }
    let mut out: Vec<(u32, u8)> = set.into_iter().map(|(l, n)| (n, l)).collect();
    out.sort();
    out
}

pub(crate) fn network(a: Ipv4Addr, len: u8) -> u32 {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    };
    u32::from(a) & mask
}

impl Topology {
    /// The links of `node`: (its end, the other end, capacity).
    pub fn links_of<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = (&'a Endpoint, &'a Endpoint, u64)> + 'a {
        self.links.iter().filter_map(move |l| {
            if l.a.node == node {
                Some((&l.a, &l.b, l.capacity_bps))
            } else if l.b.node == node {
                Some((&l.b, &l.a, l.capacity_bps))
            } else {
                None
            }
        })
    }

    /// Hop counts from `from` (BFS).
    pub(crate) fn distances(&self, from: &str) -> HashMap<String, usize> {
        let mut d = HashMap::new();
        d.insert(from.to_string(), 0);
        let mut q = VecDeque::from([from.to_string()]);
        while let Some(n) = q.pop_front() {
            let k = d[&n];
            for (_, other, _) in self.links_of(&n) {
                if !d.contains_key(&other.node) {
                    d.insert(other.node.clone(), k + 1);
                    q.push_back(other.node.clone());
                }
            }
        }
        d
    }

    /// The shortest path (fewest hops; ties broken by link order in the
    /// file) from `from` to `to`, both included.
    pub fn path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let dist = self.distances(to);
        dist.get(from)?;
        let mut p = vec![from.to_string()];
        let mut cur = from.to_string();
        while cur != to {
            let k = dist[&cur];
            let next = self
                .links_of(&cur)
                .map(|(_, o, _)| o.node.clone())
                .find(|o| dist.get(o) == Some(&(k - 1)))?;
            p.push(next.clone());
            cur = next;
        }
        Some(p)
    }

    /// The address of `node` used for signaling flows and tunnel ends: its
    /// first interface's.
    pub fn node_addr(&self, node: &str) -> Option<Ipv4Addr> {
        self.links_of(node).next().map(|(me, _, _)| me.addr)
    }

    /// Static routes of `node` to every subnet it is not attached to, via
    /// the first hop of the shortest path to a router on that subnet.
    pub fn routes(&self, node: &str) -> Vec<Route> {
        // One breadth-first search from `node` gives every router's distance
        // and the neighbour it is reached through (linear in the topology,
        // so 1000-router chains stay fast).
        let mut adj: HashMap<&str, Vec<&str>> = HashMap::new();
        for l in &self.links {
            adj.entry(&l.a.node).or_default().push(&l.b.node);
            adj.entry(&l.b.node).or_default().push(&l.a.node);
        }
        let mut dist: HashMap<&str, (usize, &str)> = HashMap::new();
        dist.insert(node, (0, node));
        let mut queue = VecDeque::from([node]);
        while let Some(cur) = queue.pop_front() {
            let (d, first) = dist[cur];
            for &n in adj.get(cur).map(Vec::as_slice).unwrap_or_default() {
                if !dist.contains_key(n) {
                    dist.insert(n, (d + 1, if cur == node { n } else { first }));
                    queue.push_back(n);
                }
            }
        }
        let attached: HashSet<(u32, u8)> = self
            .links_of(node)
            .map(|(me, _, _)| (network(me.addr, me.prefix_len), me.prefix_len))
            .collect();
        // Neighbour -> (our end, its end) of the first link between us.
        let mut towards: HashMap<&str, (&Endpoint, &Endpoint)> = HashMap::new();
        for (me, other, _) in self.links_of(node) {
            towards.entry(other.node.as_str()).or_insert((me, other));
        }
        let mut seen = HashSet::new();
        // (via, ifname) -> destination prefixes
        let mut groups: BTreeMap<(Ipv4Addr, String), Vec<(u32, u8)>> = BTreeMap::new();
        for l in &self.links {
            let key = (network(l.a.addr, l.a.prefix_len), l.a.prefix_len);
            if attached.contains(&key) || !seen.insert(key) {
                continue;
            }
            // Go towards whichever end of that link is nearer.
            let next = match (dist.get(l.a.node.as_str()), dist.get(l.b.node.as_str())) {
                (Some(a), Some(b)) => {
                    if b.0 < a.0 {
                        b.1
                    } else {
                        a.1
                    }
                }
                (Some(a), None) => a.1,
                (None, Some(b)) => b.1,
                (None, None) => continue,
            };
            let Some(&(me, other)) = towards.get(next) else {
                continue;
            };
            groups
                .entry((other.addr, me.ifname.clone()))
                .or_default()
                .push(key);
        }
        let mut out = Vec::new();
        for ((via, ifname), prefixes) in groups {
            for (net, len) in aggregate(prefixes) {
                out.push(Route {
                    dest: Ipv4Addr::from(net),
                    prefix_len: len,
                    via,
                    ifname: ifname.clone(),
                });
            }
        }
        out
    }

    /// The providers whose nodes lie on the path from `from` to `to`, in
    /// path order (each signs its own authorization object).
    pub fn providers_on_path(&self, from: &str, to: &str) -> Vec<&Provider> {
        let mut out: Vec<&Provider> = Vec::new();
        for n in self.path(from, to).unwrap_or_default() {
            if let Some(p) = self.node(&n).and_then(|n| self.provider(&n.provider))
                && !out.iter().any(|x| x.name == p.name)
            {
                out.push(p);
            }
        }
        out
    }

    /// The QNI, QNEs (NSIS routers strictly between) and QNR of the first
    /// two virtual nodes' link (VM1 → VM2 in the shipped topologies).
    pub fn signaling_roles(&self) -> anyhow::Result<(String, Vec<String>, String)> {
        let mut v = self.vnodes.iter();
        let (a, b) = match (v.next(), v.next()) {
            (Some(a), Some(b)) => (a, b),
            _ => anyhow::bail!("{}: needs two virtual nodes", self.name),
        };
        let path = self
            .path(&a.host, &b.host)
            .ok_or_else(|| anyhow::anyhow!("{}: no path {} -> {}", self.name, a.host, b.host))?;
        let qnes = path[1..path.len() - 1]
            .iter()
            .filter(|n| self.node(n).is_some_and(|n| n.nsis))
            .cloned()
            .collect();
        Ok((a.host.clone(), qnes, b.host.clone()))
    }
}
