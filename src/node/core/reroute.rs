//! Route changes, the core's side: the kernel's routing table of the node's
//! namespace comes in ([`NodeCore::routes_changed`]); when the routes or the
//! substrate links' states differ from what the core used, the node's view
//! is updated and GIST re-queries every session it routes (RFC 5971 §7.1).
//! GIST's "path changed" goes to the NSLP with the new egress link; the
//! NSLP's tear of the old branch goes to the old peer by name.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::NodeCore;
use crate::kernel::routes::RouteTable;
use crate::node::config::RouteConf;
use crate::proto::gist::machine::{Direction, Flow, Msg, Sid};
use crate::proto::nslp::AuthVerdict;
use crate::wire::nslp::NslpMessage;

impl NodeCore {
    /// The kernel's routes or link states changed (or were read again).
    pub fn routes_changed(&mut self, table: RouteTable, now: Instant) {
        let routes: Vec<RouteConf> = table
            .routes
            .iter()
            .filter_map(|r| {
                Some(RouteConf {
                    dest: r.dest,
                    prefix_len: r.prefix_len,
                    via: r.via?,
                    ifname: r.ifname.clone(),
                })
            })
            .collect();
        let mut down: Vec<String> = table
            .down
            .into_iter()
            .filter(|d| self.cfg.links.iter().any(|l| &l.ifname == d))
            .collect();
        down.sort();
        let mut old = self.cfg.routes.clone();
        old.sort_by_key(|r| (r.dest, r.prefix_len));
        let mut new = routes.clone();
        new.sort_by_key(|r| (r.dest, r.prefix_len));
        if old == new && down == self.links_down {
            return;
        }
        tracing::info!(node = %self.cfg.name, ?down, "routes changed: re-querying the sessions' next peers");
        self.cfg.routes = routes;
        self.links_down = down;
        let cfg = &self.cfg;
        self.gist.routes_changed(now, |dst| cfg.local_addr_for(dst));
        self.pump(now, AuthVerdict::NotChecked);
    }

    /// Egress interface towards `dst` under the current routes, skipping
    /// substrate links that are down.
    pub(super) fn egress_link(&self, dst: Ipv4Addr) -> Option<String> {
        let attached = self.cfg.links.iter().find(|l| {
            let mask = u32::MAX.checked_shl(32 - l.prefix_len as u32).unwrap_or(0);
            u32::from(dst) & mask == u32::from(l.addr) & mask
        });
        match attached {
            Some(l) if self.links_down.contains(&l.ifname) => {
                // The attached subnet is cut: whatever route the kernel has.
                self.cfg
                    .routes
                    .iter()
                    .filter(|r| {
                        let mask = u32::MAX.checked_shl(32 - r.prefix_len as u32).unwrap_or(0);
                        u32::from(dst) & mask == u32::from(r.dest) & mask
                    })
                    .max_by_key(|r| r.prefix_len)
                    .map(|r| r.ifname.clone())
            }
            _ => self.cfg.egress_link(dst),
        }
    }

    /// GIST reports another next peer for `sid`.
    pub(super) fn path_changed(
        &mut self,
        now: Instant,
        sid: Sid,
        flow: Flow,
        old_peer: Ipv4Addr,
        new_peer: Ipv4Addr,
    ) {
        let link = self.egress_link(flow.dst);
        self.nslp.path_changed(now, sid, old_peer, new_peer, link);
    }

    /// The NSLP's message for a named peer (the session's upstream one, or
    /// the old branch's first node).
    pub(super) fn send_to(
        &mut self,
        sid: Sid,
        flow: Flow,
        dir: Direction,
        peer: Ipv4Addr,
        mut msg: NslpMessage,
        authenticate: bool,
    ) {
        if authenticate {
            for obj in self.cfg.auth_objects(&flow, dir, &msg) {
                msg.objects
                    .push(crate::wire::nslp::NslpObject::SessionAuth(obj));
            }
        }
        let bytes = msg.to_bytes(self.cfg.profile);
        let local = self.cfg.local_addr_for(peer);
        self.gist
            .send_to(peer, sid, flow, dir, local, bytes, authenticate);
    }

    /// A downstream Query for a flow that starts here came back: the route
    /// loops through the source (a transient state while routes change).
    /// Not answered, so the querier's probe finds no peer this way.
    pub(super) fn is_looped_query(&self, msg: &Msg) -> bool {
        matches!(msg, Msg::Query { flow, dir: Direction::Downstream, .. }
            if self.cfg.addrs.contains(&flow.src) && !self.cfg.addrs.contains(&flow.dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::routes::KernelRoute;
    use crate::model::measure::Recorder;
    use crate::node::config::NodeConfig;

    fn tb2() -> NodeCore {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
        let topo = crate::topology::Topology::load(&p).unwrap();
        let cfg = NodeConfig::from_topology(&topo, "tb2").unwrap();
        NodeCore::new(cfg.clone(), Recorder::new(&cfg.name, 0), 1)
    }

    fn table(core: &NodeCore) -> RouteTable {
        RouteTable {
            routes: core
                .cfg
                .routes
                .iter()
                .map(|r| KernelRoute {
                    dest: r.dest,
                    prefix_len: r.prefix_len,
                    via: Some(r.via),
                    ifname: r.ifname.clone(),
                })
                .collect(),
            down: vec![],
        }
    }

    #[test]
    fn an_unchanged_table_changes_nothing() {
        let mut core = tb2();
        let before = core.cfg.routes.clone();
        let t = table(&core);
        core.routes_changed(t, Instant::now());
        assert_eq!(core.cfg.routes, before);
        assert!(core.poll_transmit().is_none());
        assert!(core.links_down.is_empty());
    }

    #[test]
    fn a_down_link_and_a_new_route_move_the_egress() {
        let mut core = tb2();
        let tb4 = Ipv4Addr::new(172, 3, 4, 4);
        let towards_tb3 = core.egress_link(tb4).unwrap();
        let other = core
            .cfg
            .links
            .iter()
            .find(|l| l.ifname != towards_tb3)
            .unwrap()
            .ifname
            .clone();
        // The link to tb3 is down; the kernel now routes tb4's side back
        // through tb1 (as a routing oracle would, were there a way).
        let t = RouteTable {
            routes: [[172, 2, 3, 0], [172, 3, 4, 0]]
                .into_iter()
                .map(|d| KernelRoute {
                    dest: Ipv4Addr::from(d),
                    prefix_len: 24,
                    via: Some(Ipv4Addr::new(172, 1, 2, 1)),
                    ifname: other.clone(),
                })
                .collect(),
            down: vec![towards_tb3.clone(), "vx9".into()],
        };
        core.routes_changed(t, Instant::now());
        assert_eq!(core.links_down, [towards_tb3], "only substrate links count");
        assert_eq!(core.egress_link(tb4), Some(other.clone()));
        assert_eq!(core.egress_link(Ipv4Addr::new(172, 2, 3, 3)), Some(other));
    }
}
