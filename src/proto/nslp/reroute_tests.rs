//! Rerouting on small meshes: the flow's path is a table of next hops the
//! test changes; GIST is emulated (a node's responder peer is the node that
//! last ran a handshake with it), tunnel ends and classes complete at once.

use std::collections::HashMap;

use super::*;

const MBIT: u64 = 1_000_000;
const SID: Sid = [0x22; 16];

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 1)
}

fn vlsp() -> VlspObject {
    VlspObject {
        vnet_id: 1,
        src_vnode: 10,
        dst_vnode: 20,
        src_vif: 1,
        dst_vif: 2,
        vlink_id: 5,
        tunnel_type: crate::wire::vlsp::TunnelType::from_kind(
            crate::model::tunnel::TunnelKind::Vxlan,
        ),
    }
}

fn link(to: usize) -> String {
    format!("to{to}")
}

struct Net {
    n: Vec<Nslp>,
    now: Instant,
    /// Next hop of each node towards the flow's destination (the last node).
    next: Vec<Option<usize>>,
    /// GIST querier state: the peer each node's handshake found.
    peer_of: Vec<Option<usize>>,
    /// GIST responder state: the node that queried each node.
    up: Vec<Option<usize>>,
    events: Vec<(usize, EventKind)>,
    /// The link each node's class is installed on.
    class: HashMap<usize, String>,
    vlink_down: Vec<usize>,
    /// RESERVEs (tears included) each node received, with their sender.
    reserves: Vec<(usize, usize, bool)>,
    /// Links that lose everything sent over them (either way).
    cut: Vec<(usize, usize)>,
    /// A node's copy of the routes that lags the kernel's: (node, the
    /// neighbour it names), used where the NSLP is told an egress link.
    stale: HashMap<usize, usize>,
    /// API replies: (node, success, the node's class link at that time).
    replies: Vec<(usize, bool, Option<String>)>,
}

impl Net {
    /// `nodes` nodes, every one with a 100 Mbit/s link to every other
    /// (`small` overrides one capacity: (node, to, bit/s)).
    fn new(nodes: usize, path: &[usize], small: Option<(usize, usize, u64)>) -> Self {
        let n = (0..nodes)
            .map(|i| {
                let mut l = Ledger::new();
                for j in 0..nodes {
                    let cap = match small {
                        Some((a, b, c)) if a == i && b == j => c,
                        _ => 100 * MBIT,
                    };
                    l.add_link(&link(j), cap);
                }
                let cfg = Config {
                    node: format!("n{i}"),
                    ..Config::default()
                };
                Nslp::new(cfg, l, 3 + i as u64)
            })
            .collect();
        let mut next = vec![None; nodes];
        for w in path.windows(2) {
            next[w[0]] = Some(w[1]);
        }
        Self {
            n,
            now: Instant::now(),
            next,
            peer_of: vec![None; nodes],
            up: vec![None; nodes],
            events: vec![],
            class: HashMap::new(),
            vlink_down: vec![],
            reserves: vec![],
            cut: vec![],
            stale: HashMap::new(),
            replies: vec![],
        }
    }

    /// The egress link node `i`'s copy of the routes names.
    fn egress(&self, i: usize) -> Option<String> {
        self.stale.get(&i).copied().or(self.next[i]).map(link)
    }

    /// GIST's handshake of `i` was answered by `j` (the core tells the
    /// NSLP where that peer lies).
    fn answered(&mut self, i: usize, j: usize) {
        let hop = NextHop {
            link: link(j),
            local: addr(i),
        };
        self.n[i].next_peer_on(self.now, SID, hop);
    }

    fn last(&self) -> usize {
        self.n.len() - 1
    }

    fn flow(&self) -> Flow {
        Flow {
            src: addr(0),
            dst: addr(self.last()),
            protocol: 17,
        }
    }

    fn setup(&mut self) {
        let req = SetupRequest {
            req_id: 1,
            sid: SID,
            flow: self.flow(),
            vlsp: vlsp(),
            rate_bps: Rate::from_bps(10 * MBIT),
            egress_link: self.egress(0).unwrap(),
            authenticate: true,
            qspec: crate::wire::qspec::Qspec::bandwidth_request(
                10.0 * MBIT as f32 / 8.0,
                crate::wire::profile::Profile::Rfc,
            ),
            bidirectional: false,
        };
        self.n[0].setup(self.now, req);
        self.run();
    }

    /// The route of `i` now leads to `to`: GIST's re-query finds it.
    fn reroute(&mut self, i: usize, to: usize) {
        let old = self.peer_of[i].expect("an established peer");
        self.next[i] = Some(to);
        self.peer_of[i] = Some(to);
        self.up[to] = Some(i);
        self.n[i].path_changed(self.now, SID, addr(old), addr(to), Some(link(to)));
        self.answered(i, to);
        self.run();
    }

    fn deliver(&mut self, from: usize, to: usize, dir: Direction, msg: NslpMessage) {
        if self.cut.contains(&(from, to)) || self.cut.contains(&(to, from)) {
            return;
        }
        let bytes = msg.to_bytes(crate::wire::profile::Profile::Rfc);
        let msg = NslpMessage::decode(&bytes, crate::wire::profile::Profile::Rfc).unwrap();
        if msg.msg_type == MsgType::Reserve {
            self.reserves.push((to, from, msg.flags.tear));
        }
        let is_destination = dir == Direction::Downstream && to == self.last();
        let ctx = RecvContext {
            auth: if is_destination {
                AuthVerdict::Verified {
                    entity: "vnp".into(),
                    key_id: 1,
                }
            } else {
                AuthVerdict::NotChecked
            },
            is_destination,
            egress_link: self.egress(to),
            reverse_link: None,
            local: addr(to),
            peer: addr(from),
        };
        let flow = self.flow();
        self.n[to].recv(self.now, SID, flow, dir, msg, ctx);
    }

    fn run(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.n.len() {
                while let Some(a) = self.n[i].poll_action() {
                    any = true;
                    self.act(i, a);
                }
            }
            if !any {
                break;
            }
        }
    }

    fn act(&mut self, i: usize, a: Action) {
        match a {
            Action::Send { dir, msg, .. } => {
                let j = match dir {
                    Direction::Downstream => {
                        let Some(j) = self.next[i] else { return };
                        if self.peer_of[i] != Some(j) {
                            // Handshake: j's responder state names i.
                            self.peer_of[i] = Some(j);
                            self.up[j] = Some(i);
                            self.answered(i, j);
                        }
                        j
                    }
                    Direction::Upstream => match self.up[i] {
                        Some(j) => j,
                        None => return,
                    },
                };
                self.deliver(i, j, dir, msg);
            }
            Action::SendTo { peer, dir, msg, .. } => {
                let j = (0..self.n.len()).find(|j| addr(*j) == peer).unwrap();
                self.deliver(i, j, dir, msg);
            }
            Action::VlinkUp { sid, .. } => self.n[i].vlink_done(self.now, sid, addr(i), None),
            Action::VlinkDown { sid, .. } => {
                self.vlink_down.push(i);
                self.n[i].vlink_done(self.now, sid, addr(i), None);
            }
            Action::Event { kind, .. } => self.events.push((i, kind)),
            Action::InstallClass { sid, link, .. } => {
                self.class.insert(i, link);
                self.n[i].class_done(self.now, sid, None);
            }
            Action::RemoveClass { .. } => {
                self.class.remove(&i);
            }
            Action::Reply { result, .. } => {
                let class = self.class.get(&i).cloned();
                self.replies.push((i, result.is_ok(), class));
            }
            Action::Forget { .. } | Action::Point { .. } => {}
        }
    }

    fn classes(&self) -> Vec<(usize, String)> {
        let mut v: Vec<_> = self.class.iter().map(|(i, l)| (*i, l.clone())).collect();
        v.sort();
        v
    }

    /// The initiator's last event is a repair.
    fn assert_last_repaired(&self) {
        assert_eq!(
            self.kinds(0).last(),
            Some(&EventKind::Repaired),
            "{:?}",
            self.events
        );
    }

    /// Role and phase of the one session node `i` holds.
    fn role_phase(&self, i: usize) -> (Role, Phase) {
        let (_, role, phase, ..) = self.n[i]
            .sessions()
            .next()
            .unwrap_or_else(|| panic!("node {i} holds no session"));
        (role, phase)
    }

    fn kinds(&self, i: usize) -> Vec<EventKind> {
        self.events
            .iter()
            .filter(|(n, _)| *n == i)
            .map(|(_, k)| *k)
            .collect()
    }
}

fn classes(v: &[(usize, usize)]) -> Vec<(usize, String)> {
    v.iter().map(|(i, to)| (*i, link(*to))).collect()
}

#[test]
fn qni_moves_the_reservation_to_the_new_path_and_tears_the_old_branch() {
    // 0 -> 1 -> 3, then 0 -> 2 -> 3 (1 stays reachable).
    let mut net = Net::new(4, &[0, 1, 3], None);
    net.next[2] = Some(3);
    net.setup();
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    net.reroute(0, 2);
    assert_eq!(
        net.kinds(0),
        [EventKind::PathChanged, EventKind::Repaired],
        "{:?}",
        net.events
    );
    // The new hop holds the class, the old one has freed it.
    assert_eq!(net.classes(), classes(&[(0, 2), (2, 3)]));
    assert_eq!(net.n[1].sessions().count(), 0, "old branch torn");
    assert!(net.n[1].ledger().is_empty());
    // The old branch's tear reached the responder from 1, which is no
    // longer its upstream peer: ignored, the link stays up.
    assert!(net.reserves.contains(&(3, 1, true)));
    assert!(net.vlink_down.is_empty(), "no tunnel end removed");
    assert_eq!(net.role_phase(3), (Role::Qnr, Phase::Up));
    assert!(net.events.iter().all(|(i, _)| *i == 0), "{:?}", net.events);
    // Refreshes go the new way and are answered.
    net.now += Duration::from_secs(31);
    for i in 0..4 {
        net.n[i].handle_timeout(net.now);
    }
    net.run();
    assert!(net.kinds(0).iter().all(|k| *k != EventKind::LinkLost));
    assert_eq!(net.classes(), classes(&[(0, 2), (2, 3)]));
}

#[test]
fn admission_failure_on_the_new_path_is_repair_failed_and_frees_everything() {
    // The new hop 2 has 1 Mbit/s towards 3: the 10 Mbit/s do not fit.
    let mut net = Net::new(4, &[0, 1, 3], Some((2, 3, MBIT)));
    net.next[2] = Some(3);
    net.setup();
    net.reroute(0, 2);
    let k = net.kinds(0);
    assert!(k.contains(&EventKind::PathChanged), "{k:?}");
    assert!(k.contains(&EventKind::RepairFailed), "{k:?}");
    assert!(k.contains(&EventKind::LinkLost), "{k:?}");
    assert!(net.classes().is_empty(), "{:?}", net.classes());
    // The responder still had the old branch as its path: the old
    // branch's tear removed its end too.
    assert!(net.vlink_down.contains(&3) && net.vlink_down.contains(&0));
    for i in 0..4 {
        assert_eq!(net.n[i].sessions().count(), 0, "n{i} is clean");
        assert!(net.n[i].ledger().is_empty(), "n{i} ledger");
    }
}

#[test]
fn qne_where_the_path_diverges_re_reserves_with_the_stored_reserve() {
    // 0 -> 1 -> 2 -> 4, then 1 -> 3 -> 4.
    let mut net = Net::new(5, &[0, 1, 2, 4], None);
    net.next[3] = Some(4);
    net.setup();
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 2), (2, 4)]));
    net.reroute(1, 3);
    assert_eq!(net.kinds(1), [EventKind::PathChanged, EventKind::Repaired]);
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3), (3, 4)]));
    assert_eq!(net.n[2].sessions().count(), 0);
    assert!(net.vlink_down.is_empty());
    assert!(net.kinds(0).is_empty(), "the initiator is not bothered");
    // The repairing RESERVE carried the QNI's VLSP and QSPEC.
    assert!(net.reserves.contains(&(3, 1, false)) && net.reserves.contains(&(4, 3, false)));
}

#[test]
fn qne_whose_next_peer_is_now_upstream_does_nothing() {
    let mut net = Net::new(4, &[0, 1, 3], None);
    net.setup();
    net.n[1].path_changed(net.now, SID, addr(3), addr(0), Some(link(0)));
    net.run();
    assert!(net.events.is_empty(), "{:?}", net.events);
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
}

#[test]
fn cut_path_without_alternative_reaches_the_initiator_as_link_lost() {
    let mut net = Net::new(4, &[0, 1, 2, 3], None);
    net.setup();
    // 1's probe found no peer towards 3 (GIST's PeerLost).
    net.n[1].peer_lost(net.now, SID, false);
    net.run();
    let k = net.kinds(0);
    assert!(k.contains(&EventKind::LinkLost), "{k:?}");
    assert!(!net.class.contains_key(&0) && !net.class.contains_key(&1));
}

impl Net {
    /// Every node's timers at `now + secs`.
    fn tick(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        for i in 0..self.n.len() {
            self.n[i].handle_timeout(self.now);
        }
        self.run();
    }
}

#[test]
fn transient_no_route_at_a_qne_keeps_the_link_and_a_later_refresh_succeeds() {
    // 0 -> 1 -> 2 -> 3 -> 4; 2 loses its route for a while (OSPF converging).
    let mut net = Net::new(5, &[0, 1, 2, 3, 4], None);
    net.setup();
    let before = net.classes();
    assert_eq!(before, classes(&[(0, 1), (1, 2), (2, 3), (3, 4)]));
    net.next[2] = None;
    net.tick(31);
    assert_eq!(net.kinds(0), [EventKind::Notify], "{:?}", net.events);
    assert!(net.vlink_down.is_empty());
    // The hop between (1) forwarded the answer and kept its reservation.
    assert_eq!(net.n[1].sessions().count(), 1);
    assert_eq!(net.classes(), before);
    // The route is back: the next refresh goes through and is answered.
    net.next[2] = Some(3);
    net.tick(31);
    net.tick(31);
    assert!(
        !net.kinds(0).contains(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
    assert!(net.vlink_down.is_empty());
    assert_eq!(net.classes(), before);
    assert_eq!(net.role_phase(4), (Role::Qnr, Phase::Up));
}

#[test]
fn no_route_for_longer_than_the_lifetime_loses_the_link() {
    let mut net = Net::new(4, &[0, 1, 2, 3], None);
    net.setup();
    net.next[1] = None;
    for _ in 0..4 {
        net.tick(31);
    }
    let k = net.kinds(0);
    assert!(k.contains(&EventKind::LinkLost), "{k:?}");
    assert!(net.vlink_down.contains(&0));
}

#[test]
fn repair_answered_no_route_stays_pending_and_completes_at_a_refresh() {
    // 0 -> 1 -> 3, then 0 -> 2, whose route towards 3 is not there yet.
    let mut net = Net::new(4, &[0, 1, 3], None);
    net.setup();
    net.reroute(0, 2);
    assert_eq!(net.kinds(0), [EventKind::PathChanged, EventKind::Notify]);
    assert!(net.vlink_down.is_empty());
    net.next[2] = Some(3);
    net.tick(31);
    assert_eq!(
        net.kinds(0),
        [
            EventKind::PathChanged,
            EventKind::Notify,
            EventKind::Repaired
        ],
        "{:?}",
        net.events
    );
    assert_eq!(net.classes(), classes(&[(0, 2), (2, 3)]));
    assert_eq!(net.n[1].sessions().count(), 0, "old branch torn");
    assert!(net.vlink_down.is_empty());
}

#[test]
fn repair_back_onto_a_hop_that_still_holds_the_old_branch_keeps_refreshing() {
    // 0 -> 1 -> 2 -> 5; 1 may go 1 -> 3 -> 5, and 0 may go 0 -> 4 -> 5.
    let mut net = Net::new(6, &[0, 1, 2, 5], None);
    net.next[3] = Some(5);
    net.next[4] = Some(5);
    net.setup();
    // 1's path flips away and back: its RESERVEs to 2 are updates (RSN 2).
    net.reroute(1, 3);
    net.reroute(1, 2);
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 2), (2, 5)]));
    net.tick(31);
    // 1-2 fails: 0 moves to 4; 1 frees its state on 0's tear, but its
    // tear never reaches 2, which keeps the old branch.
    net.cut.push((1, 2));
    net.reroute(0, 4);
    assert_eq!(net.n[1].sessions().count(), 0);
    assert_eq!(
        net.n[2].sessions().count(),
        1,
        "2 still holds the old branch"
    );
    // 1-2 is back before 2's state expired, and the route with it: 1 sets
    // the session up anew, and its RESERVEs must not look older to 2.
    net.cut.clear();
    net.reroute(0, 1);
    net.assert_last_repaired();
    for _ in 0..5 {
        net.tick(31);
    }
    assert!(
        !net.kinds(0).contains(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 2), (2, 5)]));
    assert!(net.vlink_down.is_empty());
}

impl Net {
    /// Every node's routes come from a routing protocol (OSPF).
    fn converging(mut self) -> Self {
        for n in &mut self.n {
            n.cfg.routing_converges = true;
        }
        self
    }
}

#[test]
fn path_truncated_while_routes_converge_keeps_the_link_until_the_initiator_reroutes() {
    // 0 -> 1 -> 2 -> 4; 1 loses its next peer while OSPF converges, then
    // 0's own routes move it to 0 -> 3 -> 4.
    let mut net = Net::new(5, &[0, 1, 2, 4], None).converging();
    net.next[3] = Some(4);
    net.setup();
    net.n[1].peer_lost(net.now, SID, false);
    net.run();
    assert_eq!(net.kinds(0), [EventKind::Notify], "{:?}", net.events);
    assert!(net.vlink_down.is_empty(), "the link is kept");
    net.reroute(0, 3);
    assert_eq!(
        net.kinds(0),
        [
            EventKind::Notify,
            EventKind::PathChanged,
            EventKind::Repaired
        ],
        "{:?}",
        net.events
    );
    // 2, cut off from the tear (1 holds nothing), lets its branch expire.
    for _ in 0..3 {
        net.tick(31);
    }
    assert!(!net.kinds(0).contains(&EventKind::LinkLost));
    assert_eq!(net.classes(), classes(&[(0, 3), (3, 4)]));
}

#[test]
fn path_truncated_while_routes_converge_recovers_at_a_refresh_without_a_route_change_here() {
    // 1 loses its next peer; its route comes back (via 3) before 0's
    // next refresh, which sets the session up again along it.
    let mut net = Net::new(5, &[0, 1, 2, 4], None).converging();
    net.next[3] = Some(4);
    net.setup();
    net.n[1].peer_lost(net.now, SID, false);
    net.run();
    net.next[1] = Some(3);
    net.tick(31);
    net.tick(31);
    assert!(
        !net.kinds(0).contains(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
    assert!(net.classes().contains(&(3, link(4))), "{:?}", net.classes());
}

#[test]
fn a_peer_lost_at_the_initiator_while_routes_converge_is_retried_within_the_lifetime() {
    let mut net = Net::new(4, &[0, 1, 3], None).converging();
    net.setup();
    net.n[0].peer_lost(net.now, SID, false);
    net.run();
    assert_eq!(net.kinds(0), [EventKind::Notify]);
    // The path stays cut: lost once the lifetime has passed.
    net.next[0] = None;
    for _ in 0..4 {
        net.tick(31);
    }
    assert!(
        net.kinds(0).contains(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
    assert!(net.vlink_down.contains(&0));
}

// Issue 15: a node admitted on its copy of the routes, which lagged the
// kernel's; the RESERVE left towards another peer.

impl Net {
    fn all_clean(&self) {
        for i in 0..self.n.len() {
            assert_eq!(self.n[i].sessions().count(), 0, "n{i} holds a session");
            assert!(self.n[i].ledger().is_empty(), "n{i} holds a reservation");
        }
        assert!(self.classes().is_empty(), "{:?}", self.classes());
    }

    fn tears(&self) -> usize {
        self.reserves.iter().filter(|(.., tear)| *tear).count()
    }
}

#[test]
fn a_setup_admitted_on_a_lagging_route_ends_on_the_link_its_reserve_left_by() {
    // 0's routes still say 0 -> 2; the kernel sent the Query to 1.
    let mut net = Net::new(4, &[0, 1, 3], None);
    net.stale.insert(0, 2);
    net.setup();
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    assert_eq!(net.n[0].ledger().used(&link(2)), 0, "the old link is freed");
    assert_eq!(net.n[0].ledger().used(&link(1)), 10 * MBIT);
    assert_eq!(net.n[0].stats().egress_moved, 1);
    // The link came up once the class was on the right link; the peer
    // is the same: no path change, no tear.
    assert_eq!(net.replies, [(0, true, Some(link(1)))]);
    assert!(net.events.is_empty(), "{:?}", net.events);
    assert_eq!(net.tears(), 0);
    // Refreshes change nothing more.
    net.tick(31);
    net.tick(31);
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    assert_eq!(net.n[0].stats().egress_moved, 1);
    assert!(net.events.is_empty(), "{:?}", net.events);
}

#[test]
fn a_qne_admitted_on_a_lagging_route_moves_before_it_forwards_the_response() {
    let mut net = Net::new(4, &[0, 1, 3], None);
    net.stale.insert(1, 2);
    net.setup();
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    assert_eq!(net.n[1].ledger().used(&link(2)), 0);
    assert_eq!(net.n[1].stats().egress_moved, 1);
    assert_eq!(net.replies, [(0, true, Some(link(1)))]);
    assert_eq!(net.tears(), 0);
    // Its copy of the routes still lags at the next refresh, which it
    // admits there again: the refresh's answer moves it back.
    net.tick(31);
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    assert!(net.events.is_empty(), "{:?}", net.events);
}

#[test]
fn an_established_reservation_follows_its_peer_onto_another_link_without_a_tear() {
    // A re-query (after a route change) answered by the same peer, now
    // on 0's link "to2": no path change, the reservation moves at once.
    let mut net = Net::new(4, &[0, 1, 3], None);
    net.setup();
    let sent = net.reserves.len();
    net.answered(0, 2);
    net.run();
    assert_eq!(net.classes(), classes(&[(0, 2), (1, 3)]));
    assert_eq!(net.n[0].ledger().used(&link(1)), 0);
    assert_eq!(net.n[0].stats().egress_moved, 1);
    assert!(net.events.is_empty(), "{:?}", net.events);
    assert_eq!(
        net.reserves.len(),
        sent,
        "nothing sent: the peer is the same"
    );
    // The same answer again changes nothing.
    net.answered(0, 2);
    net.run();
    assert_eq!(net.n[0].stats().egress_moved, 1);
}

#[test]
fn a_move_the_peers_link_cannot_hold_refuses_the_setup_and_frees_everything() {
    let mut net = Net::new(4, &[0, 1, 3], Some((0, 1, MBIT)));
    net.stale.insert(0, 2);
    net.setup();
    assert_eq!(net.replies, [(0, false, None)]);
    assert_eq!(net.n[0].stats().egress_moved, 0);
    net.all_clean();
}

#[test]
fn a_move_a_qne_cannot_make_turns_the_response_into_a_reservation_failure() {
    let mut net = Net::new(4, &[0, 1, 3], Some((1, 3, MBIT)));
    net.stale.insert(1, 2);
    net.setup();
    assert_eq!(net.replies.len(), 1);
    assert!(!net.replies[0].1, "{:?}", net.replies);
    for i in 0..3 {
        assert_eq!(net.n[i].sessions().count(), 0, "n{i} holds a session");
        assert!(net.n[i].ledger().is_empty(), "n{i} holds a reservation");
    }
    // As for a kernel refusal at a QNE: the responder, which said yes,
    // lets its state expire.
    for _ in 0..4 {
        net.tick(31);
    }
    net.all_clean();
}

#[test]
fn a_move_an_established_reservation_cannot_make_is_repair_failed() {
    let mut net = Net::new(4, &[0, 1, 3], Some((0, 2, MBIT)));
    net.setup();
    net.answered(0, 2);
    net.run();
    let k = net.kinds(0);
    assert!(k.contains(&EventKind::RepairFailed), "{k:?}");
    assert!(k.contains(&EventKind::LinkLost), "{k:?}");
    assert!(net.vlink_down.contains(&0) && net.vlink_down.contains(&3));
    net.all_clean();
}

#[test]
fn a_qne_whose_move_fails_on_an_established_reservation_tears_on_and_notifies() {
    let mut net = Net::new(5, &[0, 1, 2, 4], Some((1, 3, MBIT)));
    net.setup();
    net.answered(1, 3);
    net.run();
    assert!(net.kinds(1).contains(&EventKind::RepairFailed));
    assert!(
        net.kinds(0).contains(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
    net.all_clean();
}

/// Paths that flip back, loop, or meet a silent router (issue 15, stop 17).
mod flips;
