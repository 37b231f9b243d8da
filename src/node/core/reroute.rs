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
use crate::proto::nslp::{AuthVerdict, NextHop};
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
        let mut old = self.cfg.routes.to_vec();
        old.sort_by_key(|r| (r.dest, r.prefix_len));
        let mut new = routes.clone();
        new.sort_by_key(|r| (r.dest, r.prefix_len));
        if old == new && down == self.links_down {
            return;
        }
        tracing::info!(node = %self.cfg.name, ?down, "routes changed: re-querying the sessions' next peers");
        self.cfg.routes = routes.into();
        self.links_down = down;
        let cfg = &self.cfg;
        self.gist.routes_changed(now, |dst| cfg.local_addr_for(dst));
        self.pump(now, AuthVerdict::NotChecked);
    }

    /// Egress interface towards `dst` under the current routes, skipping
    /// substrate links that are down.
    pub(super) fn egress_link(&self, dst: Ipv4Addr) -> Option<String> {
        let attached = (self.cfg.links.iter())
            .find(|l| crate::model::cidr::in_subnet(dst, l.addr, l.prefix_len));
        match attached {
            Some(l) if self.links_down.contains(&l.ifname) => {
                // The attached subnet is cut: whatever route the kernel has.
                self.cfg.routes.lookup(dst).map(|r| r.ifname.clone())
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
        // The link the new peer lies on (the routes' copy may lag the
        // kernel's, which routed the Query).
        let link = self
            .egress_link(new_peer)
            .or_else(|| self.egress_link(flow.dst));
        self.nslp.path_changed(now, sid, old_peer, new_peer, link);
    }

    /// The link towards GIST's current next (downstream) peer of `sid`.
    pub(super) fn next_peer_link(&self, sid: &Sid) -> Option<String> {
        let peer = self.gist.next_peer(sid, Direction::Downstream)?;
        self.egress_link(peer)
    }

    /// GIST's handshake for `sid` was answered: the NSLP moves the
    /// reservation onto the link of the peer that answered if it sits on
    /// another (issue 15: admitted on a copy of the routes that lagged).
    pub(super) fn next_peer_answered(&mut self, now: Instant, sid: Sid) {
        let Some(peer) = self.gist.next_peer(&sid, Direction::Downstream) else {
            return;
        };
        let Some(link) = self.egress_link(peer) else {
            return;
        };
        let local = self.cfg.local_addr_for(peer);
        self.nslp.next_peer_on(now, sid, NextHop { link, local });
        self.pump(now, AuthVerdict::NotChecked);
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

/// Issue 15 on six cores of `ring-6node`, byte for byte: the "kernel"
/// routes each datagram by the routes the topology gave (as the nodes'
/// namespaces do), while r0's core holds a copy that lags them.
#[cfg(test)]
mod egress_race {
    use std::net::SocketAddrV4;
    use std::time::Duration;

    use super::*;
    use crate::kernel::routes::KernelRoute;
    use crate::kernel::sockets::Incoming;
    use crate::model::measure::Recorder;
    use crate::node::api::{Reply, Request};
    use crate::node::config::{NodeConfig, RouteConf};
    use crate::node::core::{CoreAction, Transmit};

    struct Ring {
        cores: Vec<NodeCore>,
        /// The kernel's routes of each node (the topology's).
        kernel: Vec<Vec<RouteConf>>,
        now: Instant,
        flight: Vec<(usize, Incoming)>,
        /// Each node's reservation class: the link it is on.
        class: Vec<Option<String>>,
        replies: Vec<(usize, Reply)>,
    }

    use crate::model::cidr::in_subnet;

    impl Ring {
        fn new() -> Self {
            let p =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml");
            let topo = crate::topology::Topology::load(&p).unwrap();
            let cores: Vec<NodeCore> = (0..6)
                .map(|i| {
                    let cfg = NodeConfig::from_topology(&topo, &format!("r{i}")).unwrap();
                    NodeCore::new(cfg.clone(), Recorder::new(&cfg.name, 0), 7 + i as u64)
                })
                .collect();
            let kernel = cores.iter().map(|c| c.cfg.routes.to_vec()).collect();
            Self {
                cores,
                kernel,
                now: Instant::now(),
                flight: vec![],
                class: vec![None; 6],
                replies: vec![],
            }
        }

        fn owner(&self, a: Ipv4Addr) -> Option<usize> {
            self.cores.iter().position(|c| c.addrs().contains(&a))
        }

        /// The kernel of `i`: the interface address a datagram to `dst`
        /// leaves from, and the neighbour it reaches.
        fn route(&self, i: usize, dst: Ipv4Addr) -> Option<(Ipv4Addr, usize)> {
            let cfg = &self.cores[i].cfg;
            if let Some(l) = cfg
                .links
                .iter()
                .find(|l| in_subnet(dst, l.addr, l.prefix_len))
            {
                return Some((l.addr, self.owner(dst)?));
            }
            let r = self.kernel[i]
                .iter()
                .filter(|r| in_subnet(dst, r.dest, r.prefix_len))
                .max_by_key(|r| r.prefix_len)?;
            let l = cfg.links.iter().find(|l| l.ifname == r.ifname)?;
            Some((l.addr, self.owner(r.via)?))
        }

        fn send(&mut self, i: usize, t: Transmit) {
            let dst = *t.dst.ip();
            let Some((src, hop)) = self.route(i, dst) else {
                return;
            };
            // Q-mode: the next GIST node intercepts; D-mode: the owner.
            let (to, intercepted) = if t.qmode {
                (hop, !self.cores[hop].addrs().contains(&dst))
            } else {
                (self.owner(dst).unwrap(), false)
            };
            let inc = Incoming {
                src: SocketAddrV4::new(src, crate::model::ports::GIST_PORT),
                dst,
                ttl: Some(t.ttl),
                intercepted,
                payload: t.bytes,
                at_ns: 0,
            };
            self.flight.push((to, inc));
        }

        fn act(&mut self, i: usize, a: CoreAction) {
            let now = self.now;
            match a {
                CoreAction::TunnelUp { sid, .. } | CoreAction::TunnelDown { sid, .. } => {
                    self.cores[i].tunnel_done(sid, None, now)
                }
                CoreAction::InstallClass { sid, link, .. } => {
                    self.class[i] = Some(link);
                    self.cores[i].class_done(sid, None, now);
                }
                CoreAction::RemoveClass { .. } => self.class[i] = None,
                CoreAction::Reply { reply, .. } => self.replies.push((i, reply)),
                CoreAction::Event(_) => {}
            }
        }

        /// Runs until nothing moves (timers within `d`).
        fn run(&mut self, d: Duration) {
            let end = self.now + d;
            loop {
                let mut any = false;
                for i in 0..6 {
                    while let Some(t) = self.cores[i].poll_transmit() {
                        any = true;
                        self.send(i, t);
                    }
                    while let Some(a) = self.cores[i].poll_action() {
                        any = true;
                        self.act(i, a);
                    }
                }
                for (j, inc) in std::mem::take(&mut self.flight) {
                    any = true;
                    self.cores[j].handle_datagram(inc, self.now);
                }
                if any {
                    continue;
                }
                let next = self.cores.iter().filter_map(|c| c.poll_timeout()).min();
                match next {
                    Some(t) if t <= end => {
                        self.now = self.now.max(t);
                        let now = self.now;
                        for c in &mut self.cores {
                            c.handle_timeout(now);
                        }
                    }
                    _ => break,
                }
            }
        }

        fn setup(&mut self) -> Reply {
            let req = Request::Setup {
                from: "VM1".into(),
                to: "VM2".into(),
                rate_bps: crate::model::units::Rate::from_bps(10_000_000),
                bidirectional: false,
                backend: None,
                authenticate: true,
                tunnel: None,
            };
            self.cores[0].handle_api(1, req, 0, self.now);
            self.run(Duration::from_secs(1));
            self.replies.pop().expect("a reply").1
        }

        /// r0's interface towards `r` (1 or 5).
        fn r0_link_to(&self, r: usize) -> String {
            let peer = self.cores[r].cfg.links.iter().map(|l| l.addr);
            let r0 = &self.cores[0].cfg;
            peer.filter_map(|a| r0.links.iter().find(|l| in_subnet(a, l.addr, l.prefix_len)))
                .map(|l| l.ifname.clone())
                .next()
                .unwrap()
        }

        /// r0's copy of the routes sends everything through `ifname`.
        fn lag_r0(&mut self, ifname: &str) {
            let l = self.cores[0]
                .cfg
                .links
                .iter()
                .find(|l| l.ifname == ifname)
                .unwrap();
            let via = if l.addr.octets()[3] == 1 {
                Ipv4Addr::from(u32::from(l.addr) + 1)
            } else {
                Ipv4Addr::from(u32::from(l.addr) - 1)
            };
            let routes = self.kernel[0]
                .iter()
                .map(|r| KernelRoute {
                    dest: r.dest,
                    prefix_len: r.prefix_len,
                    via: Some(via),
                    ifname: ifname.to_string(),
                })
                .collect();
            let now = self.now;
            self.cores[0].routes_changed(
                RouteTable {
                    routes,
                    down: vec![],
                },
                now,
            );
            self.run(Duration::from_secs(1));
        }

        /// The link r0's kernel sends the flow's packets out of (towards r3).
        fn kernel_egress(&self) -> String {
            let r3 = self.cores[3].cfg.tunnel_addr;
            let (src, _) = self.route(0, r3).unwrap();
            let r0 = &self.cores[0].cfg;
            r0.links
                .iter()
                .find(|l| l.addr == src)
                .unwrap()
                .ifname
                .clone()
        }
    }

    #[test]
    fn a_setup_on_a_lagging_copy_of_the_routes_ends_on_the_kernels_link() {
        let mut ring = Ring::new();
        let kernel = ring.kernel_egress();
        let other = if kernel == ring.r0_link_to(1) {
            ring.r0_link_to(5)
        } else {
            ring.r0_link_to(1)
        };
        ring.lag_r0(&other);
        assert_eq!(
            ring.cores[0].egress_link(ring.cores[3].cfg.tunnel_addr),
            Some(other)
        );
        match ring.setup() {
            Reply::LinkUp { .. } => {}
            r => panic!("{r:?}"),
        }
        assert_eq!(
            ring.class[0].as_deref(),
            Some(kernel.as_str()),
            "r0's class"
        );
        assert_eq!(ring.cores[0].nslp().stats().egress_moved, 1);
        assert_eq!(ring.cores[0].nslp().ledger().used(&kernel), 10_000_000);
        // Two more hops towards r3 hold a class; the other side none.
        assert_eq!(ring.class.iter().filter(|c| c.is_some()).count(), 3);
    }

    #[test]
    fn a_lagging_copy_at_a_re_query_answered_by_the_same_peer_moves_nothing() {
        let mut ring = Ring::new();
        let kernel = ring.kernel_egress();
        assert!(matches!(ring.setup(), Reply::LinkUp { .. }));
        assert_eq!(ring.class[0].as_deref(), Some(kernel.as_str()));
        let other = if kernel == ring.r0_link_to(1) {
            ring.r0_link_to(5)
        } else {
            ring.r0_link_to(1)
        };
        // The copy now says the other way, the kernel does not: GIST's
        // re-query finds the same peer, so the class stays.
        ring.lag_r0(&other);
        ring.run(Duration::from_secs(40));
        assert_eq!(ring.class[0].as_deref(), Some(kernel.as_str()));
        assert_eq!(ring.cores[0].nslp().stats().egress_moved, 0);
        assert_eq!(ring.cores[0].nslp().ledger().used(&kernel), 10_000_000);
    }
}
