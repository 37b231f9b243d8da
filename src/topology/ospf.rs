//! The bird2 configuration of one router for `routing = "ospf"`: OSPFv2 on
//! every substrate interface (point-to-point, the link's cost and timers,
//! BFD where asked; one area, or an area per provider with the links
//! between providers as the backbone), routes learnt by OSPF exported to
//! the kernel. The bridges of virtual nodes are left out: tunnels run
//! between router addresses, which OSPF carries as stub networks. Also the
//! `[ospf]` section's and the links' OSPF keys as read.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::file::{File, LinkDef, Source, TopologyError};
use super::routes::network;
use super::{Link, LinkOspf, OspfAreas, OspfSettings, Routing, Topology};
use crate::model::spanned::Spanned;

type Res<T> = Result<T, TopologyError>;

/// A dead interval `dead` (at `span`) of at least two hellos, so one lost
/// hello does not drop an adjacency; `what` names where the hello is set.
fn check_dead(dead: &Spanned<u32>, hello: u32, what: &str, src: &Source) -> Res<u32> {
    if *dead.get_ref() < 2 * hello {
        return Err(src.err(
            dead.span(),
            format!(
                "dead_s = {} is shorter than two hellos ({hello} s{what}): raise it to at least {}",
                dead.get_ref(),
                2 * hello
            ),
        ));
    }
    Ok(*dead.get_ref())
}

fn check_hello(h: &Spanned<u32>, src: &Source) -> Res<u32> {
    if !(1..=65535).contains(h.get_ref()) {
        return Err(src.err(h.span(), "hello_s must be 1..=65535 seconds"));
    }
    Ok(*h.get_ref())
}

/// `[ospf]`: timers (a hello alone raises the dead interval to 4 hellos),
/// BFD, areas.
pub(crate) fn settings(f: &File, src: &Source) -> Res<OspfSettings> {
    let mut o = OspfSettings::default();
    let Some(d) = &f.ospf else { return Ok(o) };
    let d = d.get_ref();
    if let Some(h) = &d.hello_s {
        o.hello_s = check_hello(h, src)?;
        o.dead_s = o.dead_s.max(o.hello_s * 4);
    }
    if let Some(x) = &d.dead_s {
        o.dead_s = check_dead(x, o.hello_s, "", src)?;
    }
    o.areas = d.areas.as_ref().map_or(o.areas, |a| *a.get_ref());
    o.bfd = d.bfd.as_ref().is_some_and(|b| *b.get_ref());
    if let Some(i) = &d.bfd_interval_ms {
        if !(10..=10_000).contains(i.get_ref()) {
            return Err(src.err(
                i.span(),
                format!(
                    "bfd_interval_ms = {}: use 10..=10000 ms (BFD sends and expects a packet this often)",
                    i.get_ref()
                ),
            ));
        }
        o.bfd_interval_ms = *i.get_ref();
    }
    if let Some(m) = &d.bfd_multiplier {
        if !(1..=255).contains(m.get_ref()) {
            return Err(src.err(
                m.span(),
                format!(
                    "bfd_multiplier = {}: use 1..=255 (packets missed before the neighbour is dead)",
                    m.get_ref()
                ),
            ));
        }
        o.bfd_multiplier = *m.get_ref();
    }
    Ok(o)
}

/// A link's own `hello_s`, `dead_s` and `bfd`, checked against the
/// `[ospf]` values they fall back to.
pub(crate) fn link_settings(d: &LinkDef, o: &OspfSettings, src: &Source) -> Res<LinkOspf> {
    let hello_s = d
        .hello_s
        .as_ref()
        .map(|h| check_hello(h, src))
        .transpose()?;
    let dead_s = match &d.dead_s {
        Some(x) => Some(check_dead(
            x,
            hello_s.unwrap_or(o.hello_s),
            if hello_s.is_some() {
                ", this link's hello_s"
            } else {
                ", [ospf] hello_s"
            },
            src,
        )?),
        None => None,
    };
    Ok(LinkOspf {
        hello_s,
        dead_s,
        bfd: d.bfd.as_ref().map(|b| *b.get_ref()),
    })
}

/// What OSPF runs on one link: its own values, else `[ospf]`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTimers {
    pub hello_s: u32,
    pub dead_s: u32,
    pub bfd: bool,
}

/// The timers and BFD of link `l`: a link's own hello without its own
/// dead interval raises `[ospf] dead_s` to 4 of its hellos, as in `[ospf]`.
pub fn link_timers(topo: &Topology, l: &Link) -> LinkTimers {
    let o = &topo.ospf;
    let hello_s = l.ospf.hello_s.unwrap_or(o.hello_s);
    let dead_s = l.ospf.dead_s.unwrap_or(if l.ospf.hello_s.is_some() {
        o.dead_s.max(4 * hello_s)
    } else {
        o.dead_s
    });
    LinkTimers {
        hello_s,
        dead_s,
        bfd: l.ospf.bfd.unwrap_or(o.bfd),
    }
}

/// Links of `node` that run BFD, in file order.
pub fn bfd_links<'a>(topo: &'a Topology, node: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
    topo.links
        .iter()
        .filter(move |l| (l.a.node == node || l.b.node == node) && link_timers(topo, l).bfd)
}

/// The OSPF area of link `l`: 0 with one area and for a link between two
/// providers; else its provider's area, 1 + the provider's place in the
/// file.
pub fn link_area(topo: &Topology, l: &Link) -> u32 {
    if topo.ospf.areas == OspfAreas::One {
        return 0;
    }
    let provider = |n: &str| topo.node(n).map(|n| n.provider.as_str());
    match (provider(&l.a.node), provider(&l.b.node)) {
        (Some(a), Some(b)) if a == b => topo
            .providers
            .iter()
            .position(|p| p.name == a)
            .map_or(0, |i| i as u32 + 1),
        _ => 0,
    }
}

/// The area of `node`'s router address: its provider's area when one of
/// its links is in it, else the backbone.
fn stub_area(topo: &Topology, node: &str) -> u32 {
    topo.links
        .iter()
        .filter(|l| l.a.node == node || l.b.node == node)
        .map(|l| link_area(topo, l))
        .max()
        .unwrap_or(0)
}

/// `areas = "per-provider"` needs a backbone: at least one link between
/// providers, and those links connected among themselves (OSPF carries
/// routes between areas only through one contiguous area 0).
pub(crate) fn check_areas(t: &Topology, f: &File, src: &Source) -> Result<(), TopologyError> {
    if t.routing != Routing::Ospf || t.ospf.areas != OspfAreas::PerProvider {
        return Ok(());
    }
    let span = f
        .ospf
        .as_ref()
        .and_then(|o| o.get_ref().areas.as_ref())
        .map_or(0..0, |a| a.span());
    match backbone_parts(t) {
        parts if parts.is_empty() => Err(src.err(
            span,
            "areas = \"per-provider\": no link joins two providers, so there is no backbone (area 0); use areas = \"one\"",
        )),
        parts if parts.len() > 1 => {
            let text: Vec<String> = parts.iter().map(|p| p.join(", ")).collect();
            Err(src.err(
                span,
                format!(
                    "areas = \"per-provider\": the links between providers (area 0) fall apart into {} pieces not joined by each other: {}; OSPF routes between areas only through one connected area 0: add a link between providers that joins them, or use areas = \"one\"",
                    parts.len(),
                    text.join(" | ")
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The backbone's links (named `a-b`), by connected piece.
fn backbone_parts(t: &Topology) -> Vec<Vec<String>> {
    let bb: Vec<&Link> = t.links.iter().filter(|l| link_area(t, l) == 0).collect();
    let mut piece: Vec<usize> = (0..bb.len()).collect();
    // Merge pieces that share a router until nothing changes (a handful
    // of links: no union-find needed).
    loop {
        let mut changed = false;
        for i in 0..bb.len() {
            for j in 0..bb.len() {
                let touch = [&bb[i].a.node, &bb[i].b.node]
                    .iter()
                    .any(|n| **n == bb[j].a.node || **n == bb[j].b.node);
                if touch && piece[j] > piece[i] {
                    piece[j] = piece[i];
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut parts: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (l, p) in bb.iter().zip(piece) {
        parts
            .entry(p)
            .or_default()
            .push(format!("{}-{}", l.a.node, l.b.node));
    }
    parts.into_values().collect()
}

/// OSPF distances (sum of link costs) from `from` to every router.
fn costs_from(topo: &Topology, from: &str) -> HashMap<String, u64> {
    let mut d: HashMap<String, u64> = HashMap::new();
    let mut q = BinaryHeap::from([std::cmp::Reverse((0u64, from.to_string()))]);
    while let Some(std::cmp::Reverse((k, n))) = q.pop() {
        if d.contains_key(&n) {
            continue;
        }
        d.insert(n.clone(), k);
        for l in &topo.links {
            let other = if l.a.node == n {
                &l.b.node
            } else if l.b.node == n {
                &l.a.node
            } else {
                continue;
            };
            if !d.contains_key(other) {
                q.push(std::cmp::Reverse((k + u64::from(l.cost), other.clone())));
            }
        }
    }
    d
}

/// Cost from router `n` (its distances `d`) to subnet `key`.
fn to_subnet(topo: &Topology, d: &HashMap<String, u64>, key: (u32, u8)) -> Option<u64> {
    // A router address is a stub network of its router, at no extra cost.
    if let Some(n) = topo
        .nodes
        .iter()
        .find(|n| key.1 == 32 && n.router_addr.map(u32::from) == Some(key.0))
    {
        return d.get(&n.name).copied();
    }
    topo.links
        .iter()
        .filter(|l| (network(l.a.addr, l.a.prefix_len), l.a.prefix_len) == key)
        .flat_map(|l| {
            [&l.a, &l.b]
                .into_iter()
                .filter_map(|e| d.get(&e.node).map(|c| c + u64::from(l.cost)))
        })
        .min()
}

/// For each subnet `node` reaches but is not on: the gateways that start
/// a shortest OSPF path to it (several when costs tie). A converged OSPF
/// routes every such subnet through one of them.
pub fn shortest_next_hops(topo: &Topology, node: &str) -> BTreeMap<(u32, u8), Vec<Ipv4Addr>> {
    let mine = costs_from(topo, node);
    let mut from_neighbour: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut out = BTreeMap::new();
    for key in topo.remote_subnets(node) {
        let Some(best) = to_subnet(topo, &mine, key) else {
            continue;
        };
        let mut hops = vec![];
        for (me, other, _) in topo.links_of(node) {
            let cost = topo
                .links
                .iter()
                .find(|l| (&l.a == me && &l.b == other) || (&l.b == me && &l.a == other))
                .map_or(0, |l| u64::from(l.cost));
            let d = from_neighbour
                .entry(other.node.clone())
                .or_insert_with(|| costs_from(topo, &other.node));
            if to_subnet(topo, d, key).is_some_and(|c| c + cost == best) {
                hops.push(other.addr);
            }
        }
        out.insert(key, hops);
    }
    out
}

/// What a converged OSPF may route each subnet through: one area, the
/// shortest paths' gateways; areas per provider, any live neighbour (OSPF
/// prefers a path inside an area to a shorter one through the backbone,
/// which the shortest paths do not model).
pub fn acceptable_next_hops(topo: &Topology, node: &str) -> BTreeMap<(u32, u8), Vec<Ipv4Addr>> {
    let mut hops = shortest_next_hops(topo, node);
    if topo.ospf.areas == OspfAreas::PerProvider {
        let all: BTreeSet<Ipv4Addr> = topo.links_of(node).map(|(_, o, _)| o.addr).collect();
        for h in hops.values_mut() {
            *h = all.iter().copied().collect();
        }
    }
    hops
}

/// bird's configuration for router `node`; `log` is the file bird logs to.
pub fn bird_config(topo: &Topology, node: &str, log: &str) -> String {
    let id = topo
        .node_addr(node)
        .map(|a| a.to_string())
        .unwrap_or_else(|| "0.0.0.1".into());
    let mut c = String::new();
    let _ = writeln!(c, "# generated by vlsp for {} in {}", node, topo.name);
    let _ = writeln!(c, "log \"{log}\" all;");
    let _ = writeln!(c, "router id {id};");
    c.push_str("protocol device { scan time 10; }\n");
    // Only OSPF's routes go to the kernel (connected ones are the
    // kernel's), those within an area and between areas (`_IA`); one path per destination, so a flow and its signaling
    // take the same way (no ECMP).
    c.push_str("protocol kernel {\n  ipv4 { import none; export where source = RTS_OSPF || source = RTS_OSPF_IA; };\n}\n");
    // `ecmp no`: equal-cost ties (two ways round a ring to a router
    // address) still give one next hop, as the kernel export above wants.
    if bfd_links(topo, node).next().is_some() {
        // BFD sessions for the OSPF neighbours that ask for them (`bfd
        // yes` below); one interval both ways.
        let _ = writeln!(
            c,
            "protocol bfd {{\n  interface \"*\" {{ interval {} ms; multiplier {}; }};\n}}",
            topo.ospf.bfd_interval_ms, topo.ospf.bfd_multiplier
        );
    }
    c.push_str("protocol ospf v2 vlsp {\n  ecmp no;\n  ipv4 { import all; export none; };\n");
    let mut areas: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for l in &topo.links {
        let me = if l.a.node == node {
            &l.a
        } else if l.b.node == node {
            &l.b
        } else {
            continue;
        };
        let t = link_timers(topo, l);
        areas.entry(link_area(topo, l)).or_default().push(format!(
            "    interface \"{}\" {{ type ptp; cost {}; hello {}; dead {};{} }};",
            me.ifname,
            l.cost,
            t.hello_s,
            t.dead_s,
            if t.bfd { " bfd yes;" } else { "" }
        ));
    }
    if let Some(a) = topo.node(node).and_then(|n| n.router_addr) {
        // The router address on `lo`, advertised whatever link is up.
        areas
            .entry(stub_area(topo, node))
            .or_default()
            .push(format!("    stubnet {a}/32 {{ cost 1; }};"));
    }
    if areas.is_empty() {
        areas.insert(0, vec![]);
    }
    for (area, lines) in areas {
        let _ = writeln!(c, "  area {area} {{");
        for l in lines {
            let _ = writeln!(c, "{l}");
        }
        c.push_str("  };\n");
    }
    c.push_str("}\n");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_link_of_the_router_is_an_ospf_interface_with_its_cost() {
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml"),
        )
        .unwrap()
        .replacen(
            "capacity = \"100mbit\"",
            "capacity = \"100mbit\"\ncost = 7",
            1,
        )
        .replacen(
            "name = \"ring-6node\"",
            "name = \"ring-6node\"\nrouting = \"ospf\"",
            1,
        ) + "[ospf]\nhello_s = 2\ndead_s = 9\n";
        let t = Topology::parse(&src, Path::new("r.toml")).unwrap();
        let c = bird_config(&t, "r0", "/run/x.log");
        assert_eq!(
            c,
            "# generated by vlsp for r0 in ring-6node\n\
             log \"/run/x.log\" all;\n\
             router id 10.255.0.1;\n\
             protocol device { scan time 10; }\n\
             protocol kernel {\n  ipv4 { import none; export where source = RTS_OSPF || source = RTS_OSPF_IA; };\n}\n\
             protocol ospf v2 vlsp {\n  ecmp no;\n  ipv4 { import all; export none; };\n  area 0 {\n\
             \x20   interface \"eth0\" { type ptp; cost 7; hello 2; dead 9; };\n\
             \x20   interface \"eth1\" { type ptp; cost 10; hello 2; dead 9; };\n\
             \x20   stubnet 10.255.0.1/32 { cost 1; };\n  };\n}\n"
        );
        // and it survives the round trip through the saved topology
        let back = Topology::parse(&t.to_toml(), Path::new("s.toml")).unwrap();
        assert_eq!(bird_config(&back, "r0", "/run/x.log"), c);
    }

    fn areas_topology(edit: impl Fn(String) -> String) -> Result<Topology, String> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ospf-areas-5node.toml");
        let src = edit(std::fs::read_to_string(&p).unwrap());
        Topology::parse(&src, &p).map_err(|e| e.to_string())
    }

    #[test]
    fn per_provider_areas_put_each_providers_links_in_its_area_and_the_rest_in_area_0() {
        let t = areas_topology(|s| s).unwrap();
        let head = "log \"/l\" all;\n";
        let common = "protocol device { scan time 10; }\n\
             protocol kernel {\n  ipv4 { import none; export where source = RTS_OSPF || source = RTS_OSPF_IA; };\n}\n\
             protocol ospf v2 vlsp {\n  ecmp no;\n  ipv4 { import all; export none; };\n";
        // r0: an east router (area 1) with a link to west (area 0), an ABR.
        assert_eq!(
            bird_config(&t, "r0", "/l"),
            format!(
                "# generated by vlsp for r0 in ospf-areas-5node\n{head}router id 10.255.1.1;\n{common}\
                 \x20 area 0 {{\n\
                 \x20   interface \"eth1\" {{ type ptp; cost 10; hello 1; dead 4; }};\n  }};\n\
                 \x20 area 1 {{\n\
                 \x20   interface \"eth0\" {{ type ptp; cost 20; hello 1; dead 4; }};\n\
                 \x20   stubnet 10.255.1.1/32 {{ cost 1; }};\n  }};\n}}\n"
            )
        );
        // r4: inside west only.
        assert_eq!(
            bird_config(&t, "r4", "/l"),
            format!(
                "# generated by vlsp for r4 in ospf-areas-5node\n{head}router id 10.255.1.5;\n{common}\
                 \x20 area 2 {{\n\
                 \x20   interface \"eth0\" {{ type ptp; cost 10; hello 1; dead 4; }};\n\
                 \x20   stubnet 10.255.1.5/32 {{ cost 1; }};\n  }};\n}}\n"
            )
        );
        // r3 holds the backbone together: both links to east in area 0.
        let r3 = bird_config(&t, "r3", "/l");
        assert_eq!(r3.matches("area 0 {").count(), 1, "{r3}");
        assert!(
            r3.contains("area 0 {\n    interface \"eth0\" { type ptp; cost 10; hello 1; dead 4; };\n    interface \"eth1\""),
            "{r3}"
        );
        // The saved topology keeps the areas.
        let back = Topology::parse(&t.to_toml(), Path::new("s.toml")).unwrap();
        assert_eq!(bird_config(&back, "r0", "/l"), bird_config(&t, "r0", "/l"));
        // "one" (the default) is area 0 everywhere.
        let one = areas_topology(|s| s.replace("areas = \"per-provider\"", "")).unwrap();
        let c = bird_config(&one, "r0", "/l");
        assert!(c.contains("  area 0 {\n") && !c.contains("area 1"), "{c}");
    }

    #[test]
    fn per_provider_areas_refuse_a_backbone_in_pieces_and_name_its_links() {
        // r3-r0 moved to r4-r0: the links between providers, r2-r3 and
        // r4-r0, share no router.
        let m = areas_topology(|s| {
            s.replace(
                "a = \"r3:10.7.3.1/24\"\nb = \"r0:10.7.3.2/24\"",
                "a = \"r4:10.7.3.1/24\"\nb = \"r0:10.7.3.2/24\"",
            )
        })
        .unwrap_err();
        assert!(
            m.contains("area 0) fall apart into 2 pieces")
                && m.contains("r2-r3 | r4-r0")
                && m.contains("add a link between providers that joins them")
                && m.contains("areas = \"one\""),
            "{m}"
        );
        // One provider: no backbone at all.
        let m = areas_topology(|s| s.replace("provider = \"west\"", "provider = \"east\""))
            .unwrap_err();
        assert!(m.contains("no link joins two providers"), "{m}");
        // Static routing does not care.
        areas_topology(|s| {
            s.replace("provider = \"west\"", "provider = \"east\"")
                .replace("routing = \"ospf\"", "routing = \"static\"")
        })
        .unwrap();
        let m = areas_topology(|s| s.replace("\"per-provider\"", "\"per-inp\"")).unwrap_err();
        assert!(m.contains("per-provider"), "{m}");
    }

    #[test]
    fn ties_allow_either_way_round_the_ring() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml");
        let t = Topology::load(&p).unwrap();
        let hops = shortest_next_hops(&t, "r0");
        // 4 remote subnets and 5 other routers' addresses.
        assert_eq!(hops.len(), 9);
        let r3 = (u32::from(Ipv4Addr::new(10, 255, 0, 4)), 32u8);
        assert_eq!(
            hops[&r3],
            [Ipv4Addr::new(10, 6, 0, 2), Ipv4Addr::new(10, 6, 5, 1)]
        );
        // r2-r3 (10.6.2.0/24) costs 30 via r1 and 40 via r5.
        let r1 = Ipv4Addr::new(10, 6, 0, 2);
        let r5 = Ipv4Addr::new(10, 6, 5, 1);
        let at = |a, b, c| (u32::from(Ipv4Addr::new(a, b, c, 0)), 24u8);
        assert_eq!(hops[&at(10, 6, 2)], [r1]);
        assert_eq!(hops[&at(10, 6, 3)], [r5]);
        assert_eq!(hops[&at(10, 6, 1)], [r1]);
    }

    /// ring-6node with OSPF, `[ospf]` extra keys and the first link's
    /// extra keys.
    fn ring_with(ospf: &str, first_link: &str) -> Result<Topology, TopologyError> {
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml"),
        )
        .unwrap()
        .replacen(
            "capacity = \"100mbit\"",
            &format!("capacity = \"100mbit\"\n{first_link}"),
            1,
        )
        .replacen(
            "name = \"ring-6node\"",
            "name = \"ring-6node\"\nrouting = \"ospf\"",
            1,
        ) + "[ospf]\n"
            + ospf;
        Topology::parse(&src, Path::new("r.toml"))
    }

    #[test]
    fn a_link_may_set_its_own_timers_and_bfd() {
        let t = ring_with(
            "hello_s = 2\ndead_s = 9\n",
            "hello_s = 1\ndead_s = 3\nbfd = true",
        )
        .unwrap();
        let c = bird_config(&t, "r0", "/l");
        // BFD only where a link asks for it: eth0 (r0-r1), not eth1.
        assert!(
            c.contains(
                "protocol bfd {\n  interface \"*\" { interval 100 ms; multiplier 3; };\n}\nprotocol ospf"
            ),
            "{c}"
        );
        assert!(
            c.contains(
                "    interface \"eth0\" { type ptp; cost 10; hello 1; dead 3; bfd yes; };\n\
                 \x20   interface \"eth1\" { type ptp; cost 10; hello 2; dead 9; };\n"
            ),
            "{c}"
        );
        // r3 has no link with BFD: no BFD protocol at all.
        let r3 = bird_config(&t, "r3", "/l");
        assert!(!r3.contains("bfd"), "{r3}");
        // A hello alone raises [ospf]'s dead to 4 of its hellos.
        let t = ring_with("", "hello_s = 3").unwrap();
        assert_eq!(
            link_timers(&t, &t.links[0]),
            LinkTimers {
                hello_s: 3,
                dead_s: 12,
                bfd: false
            }
        );
        // The saved topology keeps the link's own values, not the effective ones.
        let back = Topology::parse(&t.to_toml(), Path::new("s.toml")).unwrap();
        assert_eq!(back.links, t.links);
        assert_eq!(back.links[0].ospf.dead_s, None);
    }

    #[test]
    fn bfd_on_every_link_from_ospf_section() {
        let t = ring_with(
            "bfd = true\nbfd_interval_ms = 50\nbfd_multiplier = 4\n",
            "bfd = false",
        )
        .unwrap();
        let c = bird_config(&t, "r0", "/x.log");
        assert_eq!(
            c,
            "# generated by vlsp for r0 in ring-6node\n\
             log \"/x.log\" all;\n\
             router id 10.255.0.1;\n\
             protocol device { scan time 10; }\n\
             protocol kernel {\n  ipv4 { import none; export where source = RTS_OSPF || source = RTS_OSPF_IA; };\n}\n\
             protocol bfd {\n  interface \"*\" { interval 50 ms; multiplier 4; };\n}\n\
             protocol ospf v2 vlsp {\n  ecmp no;\n  ipv4 { import all; export none; };\n  area 0 {\n\
             \x20   interface \"eth0\" { type ptp; cost 10; hello 1; dead 4; };\n\
             \x20   interface \"eth1\" { type ptp; cost 10; hello 1; dead 4; bfd yes; };\n\
             \x20   stubnet 10.255.0.1/32 { cost 1; };\n  };\n}\n"
        );
        let back = Topology::parse(&t.to_toml(), Path::new("s.toml")).unwrap();
        assert_eq!(back.ospf, t.ospf);
        assert_eq!(bird_config(&back, "r0", "/x.log"), c);
        bird_parses(&t, "r0", "bfd");
    }

    /// bird itself reads `node`'s configuration (when bird is installed).
    fn bird_parses(t: &Topology, node: &str, tag: &str) {
        // Debian's bird2 (no kernel-layer lookup from this layer).
        let bird = Path::new("/usr/sbin/bird");
        if !bird.is_file() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("vlsp-conf-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("bird.conf");
        std::fs::write(
            &conf,
            bird_config(t, node, &dir.join("l").display().to_string()),
        )
        .unwrap();
        let out = std::process::Command::new(bird)
            .arg("-p")
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn link_timers_and_bfd_values_are_checked_at_their_line() {
        let m = ring_with("hello_s = 2\n", "dead_s = 3").unwrap_err();
        assert_eq!(m.line, 37, "{m}");
        assert!(
            m.message
                == "dead_s = 3 is shorter than two hellos (2 s, [ospf] hello_s): raise it to at least 4",
            "{m}"
        );
        let m = ring_with("", "hello_s = 5\ndead_s = 9").unwrap_err();
        assert!(
            m.message
                .contains("(5 s, this link's hello_s): raise it to at least 10"),
            "{m}"
        );
        let m = ring_with("", "hello_s = 0").unwrap_err();
        assert!(m.message.contains("hello_s must be 1..=65535"), "{m}");
        let m = ring_with("bfd_interval_ms = 5\n", "").unwrap_err();
        assert!(
            m.message.contains("bfd_interval_ms = 5: use 10..=10000 ms"),
            "{m}"
        );
        let m = ring_with("bfd_multiplier = 0\n", "").unwrap_err();
        assert!(m.message.contains("bfd_multiplier = 0: use 1..=255"), "{m}");
        let m = ring_with("", "bfd = \"yes\"").unwrap_err();
        assert!(m.to_string().contains("r.toml:"), "{m}");
    }

    #[test]
    fn ospf_timers_are_checked() {
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml"),
        )
        .unwrap();
        let m = Topology::parse(
            &format!("{base}[ospf]\nhello_s = 2\ndead_s = 3\n"),
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("shorter than two hellos"), "{m}");
        let m = Topology::parse(
            &base.replacen(
                "capacity = \"100mbit\"",
                "capacity = \"100mbit\"\ncost = 0",
                1,
            ),
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("1..=65535"), "{m}");
    }
}
