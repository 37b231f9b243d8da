//! Paths through the substrate: shortest paths (fewest hops), the static
//! routes each router gets, and the aggregation that keeps a long chain's
//! routing table short.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::{Endpoint, Provider, Route, Topology};

/// Merges sibling prefixes (two halves of one block) until none are left:
/// the result covers exactly the addresses the input covers, with as few
/// routes as that allows (a chain's 999 subnets behind one neighbour
/// become about ten routes).
pub fn aggregate(prefixes: Vec<(u32, u8)>) -> Vec<(u32, u8)> {
    // Longest prefixes first: a merge only ever yields a prefix one bit
    // shorter, so one pass per length reaches the same fixpoint as merging
    // in any order. Sorted vectors, not sets: every router of a 10 000-chain
    // aggregates ~10 000 subnets, 10^8 in all, so each must cost a few ns.
    let mut by_len: Vec<Vec<u32>> = vec![Vec::new(); 33];
    for (net, len) in prefixes {
        by_len[len.min(32) as usize].push(net);
    }
    let mut out = Vec::new();
    let mut carry: Vec<u32> = Vec::new();
    for len in (0..=32u8).rev() {
        let mut nets = std::mem::take(&mut by_len[len as usize]);
        nets.append(&mut carry);
        nets.sort_unstable();
        nets.dedup();
        if len == 0 {
            out.extend(nets.into_iter().map(|n| (n, 0)));
            continue;
        }
        let bit = 1u32 << (32 - len as u32);
        let mut i = 0;
        while i < nets.len() {
            let net = nets[i];
            if net & bit == 0 && nets.get(i + 1) == Some(&(net ^ bit)) {
                carry.push(net);
                i += 2;
            } else {
                out.push((net, len));
                i += 1;
            }
        }
    }
    out.sort_unstable();
    out
}

pub(crate) use crate::model::cidr::network;

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
        let g = Graph::new(self);
        let Some(f) = g.id(from) else {
            return HashMap::from([(from.to_string(), 0)]);
        };
        g.bfs(f)
            .into_iter()
            .enumerate()
            .filter(|&(_, d)| d != UNREACHED)
            .map(|(i, d)| (g.names[i].to_string(), d as usize))
            .collect()
    }

    /// The shortest path (fewest hops; ties broken by link order in the
    /// file) from `from` to `to`, both included.
    pub fn path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let g = Graph::new(self);
        let p = g.path(from, to)?;
        Some(p.into_iter().map(str::to_string).collect())
    }

    /// The address of `node` used for signaling flows and tunnel ends: its
    /// router address if it has one, else its first interface's.
    pub fn node_addr(&self, node: &str) -> Option<Ipv4Addr> {
        if let Some(a) = self.node(node).and_then(|n| n.router_addr) {
            return Some(a);
        }
        self.links_of(node).next().map(|(me, _, _)| me.addr)
    }

    /// Static routes of `node` to every subnet it is not attached to, via
    /// the first hop of the shortest path to a router on that subnet.
    pub fn routes(&self, node: &str) -> Vec<Route> {
        Graph::new(self).routes(node)
    }

    /// The providers whose nodes lie on the path from `from` to `to`, in
    /// path order (each signs its own authorization object).
    pub fn providers_on_path(&self, from: &str, to: &str) -> Vec<&Provider> {
        Graph::new(self).providers_on_path(from, to)
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

/// Not reached by a breadth-first search.
const UNREACHED: u32 = u32::MAX;

/// The link graph by node index, built once in linear time, so that each
/// path query on a large topology is linear too (a 10 000-router chain
/// asks one per router and virtual node: quadratic in all, not cubic).
pub struct Graph<'a> {
    topo: &'a Topology,
    index: HashMap<&'a str, usize>,
    names: Vec<&'a str>,
    /// Neighbours of each node, in the file order of the links.
    adj: Vec<Vec<usize>>,
    provider: Vec<Option<&'a Provider>>,
    /// Hop counts towards a target, kept per target asked for.
    towards: Mutex<HashMap<usize, Arc<Vec<u32>>>>,
    /// Each subnet once (its first link in file order): its prefix and the
    /// node indices of that link's ends.
    subnets: Vec<(u32, u8, usize, usize)>,
}

impl<'a> Graph<'a> {
    pub fn new(topo: &'a Topology) -> Self {
        let mut index: HashMap<&'a str, usize> = HashMap::new();
        let mut names = Vec::new();
        let ends = topo.links.iter().flat_map(|l| [&l.a.node, &l.b.node]);
        for n in topo.nodes.iter().map(|n| &n.name).chain(ends) {
            index.entry(n.as_str()).or_insert_with(|| {
                names.push(n.as_str());
                names.len() - 1
            });
        }
        let mut adj = vec![Vec::new(); names.len()];
        let mut subnets = Vec::new();
        let mut seen = HashSet::new();
        for l in &topo.links {
            let (a, b) = (index[l.a.node.as_str()], index[l.b.node.as_str()]);
            adj[a].push(b);
            adj[b].push(a);
            let net = network(l.a.addr, l.a.prefix_len);
            if seen.insert((net, l.a.prefix_len)) {
                subnets.push((net, l.a.prefix_len, a, b));
            }
        }
        let providers: HashMap<&str, &Provider> = topo
            .providers
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect();
        let mut provider = vec![None; names.len()];
        for n in &topo.nodes {
            provider[index[n.name.as_str()]] = providers.get(n.provider.as_str()).copied();
        }
        Self {
            topo,
            index,
            names,
            adj,
            provider,
            towards: Mutex::default(),
            subnets,
        }
    }

    fn id(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Hop counts from node `from` ([`UNREACHED`] where there is no path).
    fn bfs(&self, from: usize) -> Vec<u32> {
        let mut d = vec![UNREACHED; self.names.len()];
        d[from] = 0;
        let mut q = VecDeque::from([from]);
        while let Some(n) = q.pop_front() {
            for &o in &self.adj[n] {
                if d[o] == UNREACHED {
                    d[o] = d[n] + 1;
                    q.push_back(o);
                }
            }
        }
        d
    }

    fn towards(&self, to: usize) -> Arc<Vec<u32>> {
        let mut m = self.towards.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(to)
            .or_insert_with(|| Arc::new(self.bfs(to)))
            .clone()
    }

    /// As [`Topology::path`]; the hop counts towards `to` are kept, so
    /// asking for many paths to one node costs one search.
    pub fn path(&self, from: &str, to: &str) -> Option<Vec<&'a str>> {
        if from == to {
            return Some(vec![self.names[self.id(to)?]]);
        }
        let (f, t) = (self.id(from)?, self.id(to)?);
        let dist = self.towards(t);
        if dist[f] == UNREACHED {
            return None;
        }
        let mut p = vec![self.names[f]];
        let mut cur = f;
        while cur != t {
            cur = *self.adj[cur].iter().find(|&&o| dist[o] + 1 == dist[cur])?;
            p.push(self.names[cur]);
        }
        Some(p)
    }

    /// As [`Topology::providers_on_path`].
    pub fn providers_on_path(&self, from: &str, to: &str) -> Vec<&'a Provider> {
        let mut out: Vec<&Provider> = Vec::new();
        for n in self.path(from, to).unwrap_or_default() {
            if let Some(p) = self.id(n).and_then(|i| self.provider[i])
                && !out.iter().any(|x| x.name == p.name)
            {
                out.push(p);
            }
        }
        out
    }

    /// As [`Topology::routes`]: one search from `node`, then one pass over
    /// the subnets. Index arithmetic only, no hashing per subnet: a
    /// 10 000-router chain asks this 10 000 times over 10 000 subnets.
    pub fn routes(&self, node: &str) -> Vec<Route> {
        let topo = self.topo;
        let Some(me_id) = self.id(node) else {
            return Vec::new();
        };
        // Neighbour -> (our end, its end) of the first link between us, by
        // slot; every router's distance and the slot it is reached through.
        let mut slots: Vec<(usize, &Endpoint, &Endpoint)> = Vec::new();
        let mut attached: Vec<(u32, u8)> = Vec::new();
        for (me, other, _) in topo.links_of(node) {
            attached.push((network(me.addr, me.prefix_len), me.prefix_len));
            let o = self.index[other.node.as_str()];
            if !slots.iter().any(|s| s.0 == o) {
                slots.push((o, me, other));
            }
        }
        let mut dist = vec![(UNREACHED, usize::MAX); self.names.len()];
        dist[me_id] = (0, usize::MAX);
        let mut queue = VecDeque::from([me_id]);
        while let Some(cur) = queue.pop_front() {
            let (d, first) = dist[cur];
            for &n in &self.adj[cur] {
                if dist[n].0 == UNREACHED {
                    let slot = if cur == me_id {
                        slots.iter().position(|s| s.0 == n).unwrap_or(usize::MAX)
                    } else {
                        first
                    };
                    dist[n] = (d + 1, slot);
                    queue.push_back(n);
                }
            }
        }
        let mut per_slot: Vec<Vec<(u32, u8)>> = vec![Vec::new(); slots.len()];
        for &(net, len, a, b) in &self.subnets {
            if attached.contains(&(net, len)) {
                continue;
            }
            // Go towards whichever end of that link is nearer.
            let (a, b) = (dist[a], dist[b]);
            let next = match (a.0 != UNREACHED, b.0 != UNREACHED) {
                (true, true) => {
                    if b.0 < a.0 {
                        b.1
                    } else {
                        a.1
                    }
                }
                (true, false) => a.1,
                (false, true) => b.1,
                (false, false) => continue,
            };
            if let Some(v) = per_slot.get_mut(next) {
                v.push((net, len));
            }
        }
        // (via, ifname) -> destination prefixes
        let mut groups: BTreeMap<(Ipv4Addr, &str), Vec<(u32, u8)>> = BTreeMap::new();
        for ((_, me, other), prefixes) in slots.iter().zip(per_slot) {
            if !prefixes.is_empty() {
                groups
                    .entry((other.addr, me.ifname.as_str()))
                    .or_default()
                    .extend(prefixes);
            }
        }
        // Every other router's own address, through the same first hop as
        // the router itself.
        for n in &topo.nodes {
            let (Some(addr), Some(&id)) = (n.router_addr, self.index.get(n.name.as_str())) else {
                continue;
            };
            if id == me_id || dist[id].0 == UNREACHED {
                continue;
            }
            if let Some(&(_, me, other)) = slots.get(dist[id].1) {
                groups
                    .entry((other.addr, me.ifname.as_str()))
                    .or_default()
                    .push((u32::from(addr), 32));
            }
        }
        let mut out = Vec::new();
        for ((via, ifname), prefixes) in groups {
            for (net, len) in aggregate(prefixes) {
                out.push(Route {
                    dest: Ipv4Addr::from(net),
                    prefix_len: len,
                    via,
                    ifname: ifname.to_string(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    #[test]
    fn every_router_of_a_10000_chain_gets_a_few_aggregated_routes() {
        let text = crate::topology::chain("g10k", 10_000, 1).unwrap();
        let t = Topology::parse(&text, Path::new("g10k.toml")).unwrap();
        let g = Graph::new(&t);
        let most = (0..10_000)
            .step_by(97)
            .chain([1, 9_998, 9_999])
            .map(|i| g.routes(&format!("r{i}")).len())
            .max()
            .unwrap();
        // Left and right of a router are one range of /24s each.
        assert!(most <= 2 * 14, "{most} routes");
        let r = g.routes("r5000");
        let left = u32::from(Ipv4Addr::new(10, 100, 0, 0));
        let covers = |a: u32| {
            r.iter()
                .filter(|r| network(Ipv4Addr::from(a), r.prefix_len) == u32::from(r.dest))
                .map(|r| r.ifname.clone())
                .collect::<Vec<_>>()
        };
        // r5000 sits on links 4999 (eth0) and 5000 (eth1).
        assert_eq!(covers(left), ["eth0"]);
        assert_eq!(covers(left + (4998 << 8)), ["eth0"]);
        assert!(covers(left + (4999 << 8)).is_empty());
        assert_eq!(covers(left + (5001 << 8)), ["eth1"]);
        assert_eq!(covers(left + (9998 << 8)), ["eth1"]);
    }

    /// Merging in any order, as `aggregate` did before it went by length.
    fn aggregate_naive(prefixes: Vec<(u32, u8)>) -> Vec<(u32, u8)> {
        let mut set: BTreeSet<(u8, u32)> = prefixes.into_iter().map(|(n, l)| (l, n)).collect();
        loop {
            let found = set.iter().find_map(|&(len, net)| {
                let bit = 1u32.checked_shl(32 - len as u32)?;
                (len > 0 && net & bit == 0 && set.contains(&(len, net ^ bit))).then_some((
                    len,
                    net,
                    net ^ bit,
                ))
            });
            let Some((len, a, b)) = found else { break };
            set.remove(&(len, a));
            set.remove(&(len, b));
            set.insert((len - 1, a));
        }
        let mut out: Vec<(u32, u8)> = set.into_iter().map(|(l, n)| (n, l)).collect();
        out.sort();
        out
    }

    #[test]
    fn aggregate_by_length_matches_merging_in_any_order() {
        let base = u32::from(Ipv4Addr::new(10, 100, 0, 0));
        let mut seed = 7u32;
        for round in 0..50 {
            let mut p = Vec::new();
            for _ in 0..(round * 7 + 1) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let len = 20 + (seed >> 28) as u8 % 9;
                p.push((
                    network(Ipv4Addr::from(base + (seed & 0xffff) * 16), len),
                    len,
                ));
            }
            assert_eq!(aggregate(p.clone()), aggregate_naive(p));
        }
        // 3000 consecutive /24s: a handful of blocks.
        let chain: Vec<_> = (0..3000).map(|i| (base + (i << 8), 24)).collect();
        let merged = aggregate(chain.clone());
        assert_eq!(merged, aggregate_naive(chain));
        assert_eq!(merged.len(), 8);
    }

    #[test]
    fn a_long_chain_gets_its_paths_routes_and_signers_from_one_graph() {
        let text = crate::topology::chain("g3000", 3000, 3).unwrap();
        let t = Topology::parse(&text, Path::new("g3000.toml")).unwrap();
        let g = Graph::new(&t);
        let p = g.path("r0", "r2999").unwrap();
        assert_eq!(p.len(), 3000);
        assert_eq!((p[0], p[1], p[2999]), ("r0", "r1", "r2999"));
        assert_eq!(t.path("r5", "r2").unwrap(), ["r5", "r4", "r3", "r2"]);
        let names: Vec<_> = g
            .providers_on_path("r0", "r2999")
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(names, ["inp0", "inp1", "inp2"]);
        // The middle router: everything left of it via eth0, right via eth1.
        let r = g.routes("r1500");
        assert_eq!(r, t.routes("r1500"));
        assert!(r.len() < 100, "{} routes", r.len());
        let left: HashSet<_> = r
            .iter()
            .filter(|r| r.ifname == "eth0")
            .map(|r| r.via)
            .collect();
        assert_eq!(left.len(), 1);
        assert_eq!(t.distances("r0").len(), 3000);
    }
}
