//! Paths that flip back during a repair, tears that loop back to the
//! initiator, and a router that is silent along a route (issue 15).

use super::*;

impl Net {
    /// 0 -> 1 -> 3, with 2 a way round to 3; the link set up.
    fn square() -> Self {
        let mut net = Net::new(4, &[0, 1, 3], None);
        net.next[2] = Some(3);
        net.setup();
        net
    }

    /// A refresh period later the initiator still holds the link.
    fn keeps_the_link(&mut self) {
        self.tick(31);
        assert!(
            !self.kinds(0).contains(&EventKind::LinkLost),
            "{:?}",
            self.events
        );
    }
}

#[test]
fn a_path_that_flips_back_before_the_repair_answers_tears_nothing_it_stands_on() {
    // 0 -> 1 -> 3; 0's route flips to 2 and back to 1 before anything of
    // the first repair went out (a link flapping faster than a handshake).
    let mut net = Net::square();
    for (old, new) in [(1, 2), (2, 1)] {
        net.next[0] = Some(new);
        net.peer_of[0] = Some(new);
        net.up[new] = Some(0);
        net.n[0].path_changed(net.now, SID, addr(old), addr(new), Some(link(new)));
        net.answered(0, new);
    }
    net.run();
    assert_eq!(
        net.kinds(0),
        [
            EventKind::PathChanged,
            EventKind::PathChanged,
            EventKind::Repaired
        ],
        "{:?}",
        net.events
    );
    // No tear went to 1, the branch the reservation stands on again.
    assert!(!net.reserves.contains(&(1, 0, true)), "{:?}", net.reserves);
    assert!(
        net.vlink_down.is_empty(),
        "the responder kept its tunnel end"
    );
    assert_eq!(net.role_phase(3), (Role::Qnr, Phase::Up));
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    net.keeps_the_link();
}

#[test]
fn a_path_that_flips_back_during_a_repair_tears_the_branch_it_left_and_keeps_its_own() {
    // 0 -> 1 -> 3; 0 moves to 2, whose RESERVE is lost before the
    // responder, then 0's route flips back to 1.
    let mut net = Net::square();
    net.cut.push((2, 3));
    net.reroute(0, 2);
    assert_eq!(net.n[2].sessions().count(), 1, "the repair reached 2");
    net.cut.clear();
    net.reroute(0, 1);
    net.assert_last_repaired();
    // The half-built branch via 2 is torn; the one via 1 is untouched.
    assert!(net.reserves.contains(&(2, 0, true)), "{:?}", net.reserves);
    assert!(!net.reserves.contains(&(1, 0, true)), "{:?}", net.reserves);
    assert_eq!(net.n[2].sessions().count(), 0);
    assert!(net.n[2].ledger().is_empty());
    assert!(net.vlink_down.is_empty());
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    net.keeps_the_link();
}

#[test]
fn a_tear_that_loops_back_to_the_initiator_ends_nothing() {
    // 0 -> 1 -> 3; the link 1-3 fails: 0 moves to 2, and 1's own route to
    // 3 now leads back through 0 (a ring while OSPF converges). 1 forwards
    // the old branch's tear along its route, to 0.
    let mut net = Net::square();
    net.cut.push((1, 3));
    net.next[1] = Some(0);
    net.reroute(0, 2);
    assert!(net.reserves.contains(&(0, 1, true)), "{:?}", net.reserves);
    assert_eq!(net.n[1].sessions().count(), 0, "old branch torn");
    assert_eq!(net.role_phase(0), (Role::Qni, Phase::Up));
    assert!(net.vlink_down.is_empty(), "{:?}", net.vlink_down);
    assert_eq!(net.classes(), classes(&[(0, 2), (2, 3)]));
    for _ in 0..3 {
        net.tick(31);
    }
    assert!(
        !net.kinds(0).contains(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
    assert_eq!(net.classes(), classes(&[(0, 2), (2, 3)]));
}

#[test]
fn with_static_routes_a_silent_peer_along_a_route_keeps_the_link_and_no_route_loses_it() {
    // A router that just started may not answer the re-query its
    // neighbour sends at once; the route to it exists.
    let mut net = Net::new(4, &[0, 1, 3], None);
    net.setup();
    net.n[0].peer_lost(net.now, SID, true);
    net.run();
    assert_eq!(net.kinds(0), [EventKind::Notify]);
    // The next refresh is answered: the link stays.
    net.keeps_the_link();
    assert_eq!(net.classes(), classes(&[(0, 1), (1, 3)]));
    // Still silent when the lifetime since it first fell silent is over:
    // lost, and the message says it waited.
    net.n[0].peer_lost(net.now, SID, true);
    net.now += net.n[0].cfg.lifetime;
    net.n[0].peer_lost(net.now, SID, true);
    net.run();
    assert_eq!(
        net.kinds(0).last(),
        Some(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
    // Without a route the loss is at once, as before.
    let mut net = Net::square();
    net.n[0].peer_lost(net.now, SID, false);
    net.run();
    assert_eq!(
        net.kinds(0).last(),
        Some(&EventKind::LinkLost),
        "{:?}",
        net.events
    );
}
