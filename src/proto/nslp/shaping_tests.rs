//! Links shaped on demand (`Config::unshaped`, `vlsp up` beyond 300
//! routers): the first RESERVE over such a link waits for its class, since
//! the kernel drops what crosses the link while its root qdisc is added.

use super::*;

/// Node `i`'s downstream link gets its root qdisc at its first reservation.
fn shapes_on_demand(c: &mut Chain, i: usize) {
    let mut l = Ledger::new();
    l.add_link("down", 100 * MBIT);
    l.add_link("up", 100 * MBIT);
    let cfg = Config {
        node: format!("tb{}", i + 1),
        refresh: Duration::from_secs(1),
        lifetime: Duration::from_secs(3),
        unshaped: vec!["down".into()],
        ..Config::default()
    };
    c.n[i] = Nslp::new(cfg, l, 7 + i as u64);
}

/// What node `i` asks for now.
fn actions(c: &mut Chain, i: usize) -> Vec<Action> {
    std::iter::from_fn(|| c.n[i].poll_action()).collect()
}

/// Delivers tb1's work (its RESERVE reaches tb2) and returns tb2's.
fn tb2_actions_on_the_reserve(c: &mut Chain) -> Vec<Action> {
    for a in actions(c, 0) {
        c.act(0, a);
    }
    actions(c, 1)
}

/// A chain whose tb2 holds the first RESERVE of link 42 for its shaping.
fn parked_at_tb2() -> Chain {
    let mut c = Chain::new(100 * MBIT);
    shapes_on_demand(&mut c, 1);
    c.setup(1, SID, 42, 10 * MBIT);
    let a = tb2_actions_on_the_reserve(&mut c);
    // Nothing goes on until the class (and with it the qdisc) is in place.
    assert!(
        a.iter().any(|a| matches!(a, Action::InstallClass { .. })),
        "{a:?}"
    );
    assert!(!a.iter().any(is_send), "parked: {a:?}");
    c
}

fn is_send(a: &Action) -> bool {
    matches!(a, Action::Send { .. } | Action::SendTo { .. })
}

#[test]
fn first_reserve_over_a_link_shaped_on_demand_waits_for_its_class() {
    let mut c = parked_at_tb2();
    c.n[1].class_done(c.now, SID, None);
    let a = actions(&mut c, 1);
    assert!(a.iter().any(is_send), "the RESERVE goes on: {a:?}");
    for x in a {
        c.act(1, x);
    }
    c.run();
    assert!(
        matches!(&c.replies[..], [(0, 1, Ok(LinkUp { up: true, .. }))]),
        "{:?}",
        c.replies
    );
    // Shaped now: the next RESERVE over it goes on before its class.
    c.setup(2, [2; 16], 43, 10 * MBIT);
    let a = tb2_actions_on_the_reserve(&mut c);
    let send = a.iter().position(is_send);
    let install = a
        .iter()
        .position(|a| matches!(a, Action::InstallClass { .. }));
    assert!(send.unwrap() < install.unwrap(), "{a:?}");
}

#[test]
fn a_setup_parked_for_its_link_shaping_refuses_a_duplicate() {
    let mut c = Chain::new(100 * MBIT);
    shapes_on_demand(&mut c, 0);
    c.setup(1, SID, 42, 10 * MBIT);
    let a = actions(&mut c, 0);
    assert!(!a.iter().any(is_send), "parked: {a:?}");
    c.setup(2, [2; 16], 42, 10 * MBIT);
    let a = actions(&mut c, 0);
    assert!(
        a.iter().any(|a| matches!(
            a,
            Action::Reply { req_id: 2, result: Err(e) } if e.reason == ErrorReason::Exists
        )),
        "{a:?}"
    );
}

#[test]
fn a_tear_drops_a_reserve_parked_for_its_links_shaping() {
    let mut c = parked_at_tb2();
    // A TEAR from upstream before tb2's class is in place (our QNI waits
    // for the RESPONSE first; another implementation need not).
    let ctx = RecvContext {
        auth: AuthVerdict::NotChecked,
        is_destination: false,
        egress_link: Some("down".into()),
        reverse_link: Some("up".into()),
        local: ADDR[1],
        peer: ADDR[0],
    };
    let tear = NslpMessage::tear(1, 1, None);
    c.n[1].recv(c.now, SID, FLOW, Direction::Downstream, tear, ctx);
    c.n[1].class_done(c.now, SID, None);
    let a = actions(&mut c, 1);
    assert!(
        !a.iter().any(is_send),
        "the parked RESERVE stays here: {a:?}"
    );
    assert!(
        a.iter().any(|a| matches!(a, Action::RemoveClass { .. })),
        "its class goes: {a:?}"
    );
    assert!(c.n[1].ledger().is_empty());
    assert_eq!(c.sessions(1), 0);
}

#[test]
fn a_reserve_repeated_while_parked_goes_on_once() {
    let mut c = Chain::new(100 * MBIT);
    shapes_on_demand(&mut c, 1);
    c.setup(1, SID, 42, 10 * MBIT);
    let a = actions(&mut c, 0);
    let reserve = a.iter().find(|a| is_send(a)).cloned().unwrap();
    for x in a {
        c.act(0, x);
    }
    // The same datagram again (a duplicate on the wire) while tb2 waits.
    c.act(0, reserve);
    let a = actions(&mut c, 1);
    assert!(!a.iter().any(is_send), "{a:?}");
    c.n[1].class_done(c.now, SID, None);
    let a = actions(&mut c, 1);
    assert_eq!(a.iter().filter(|a| is_send(a)).count(), 1, "{a:?}");
}

#[test]
fn a_link_whose_shaping_failed_still_holds_the_next_reserve() {
    let mut c = Chain::new(100 * MBIT);
    shapes_on_demand(&mut c, 1);
    c.kernel_refuses = Some(1);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    match &c.replies[..] {
        [(0, 1, Err(e))] => assert!(e.message.contains("tb2"), "{}", e.message),
        r => panic!("{r:?}"),
    }
    assert!(
        !c.sent
            .contains(&(1, MsgType::Reserve, Direction::Downstream)),
        "tb2 forwarded nothing: {:?}",
        c.sent
    );
    // The link is still to be shaped: the next RESERVE waits again.
    c.kernel_refuses = None;
    c.setup(2, [2; 16], 43, 10 * MBIT);
    let a = tb2_actions_on_the_reserve(&mut c);
    assert!(
        a.iter().any(|a| matches!(a, Action::InstallClass { .. })),
        "{a:?}"
    );
    assert!(!a.iter().any(is_send), "{a:?}");
}
