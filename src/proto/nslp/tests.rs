use super::*;
use crate::wire::nslp::InfoClass;

/// tb1..tb4 as in the paper: addresses are the nodes' tunnel addresses.
const ADDR: [Ipv4Addr; 4] = [
    Ipv4Addr::new(172, 1, 2, 1),
    Ipv4Addr::new(172, 1, 2, 2),
    Ipv4Addr::new(172, 2, 3, 3),
    Ipv4Addr::new(172, 3, 4, 4),
];
const FLOW: Flow = Flow {
    src: Ipv4Addr::new(172, 1, 2, 1),
    dst: Ipv4Addr::new(172, 3, 4, 4),
    protocol: 17,
};
const SID: Sid = [0x11; 16];
const MBIT: u64 = 1_000_000;

fn vlsp(id: u64) -> VlspObject {
    VlspObject {
        vnet_id: 1,
        src_vnode: 10,
        dst_vnode: 20,
        src_vif: 1,
        dst_vif: 2,
        vlink_id: id,
        tunnel_type: crate::wire::vlsp::TunnelType::from_kind(
            crate::model::tunnel::TunnelKind::Vxlan,
        ),
    }
}

/// Four NSLP machines in a chain, messages delivered in memory, time
/// controlled by the test, tunnel ends completed immediately (or never).
struct Chain {
    n: Vec<Nslp>,
    now: Instant,
    /// Node that no longer answers (killed).
    dead: Option<usize>,
    auth: AuthVerdict,
    replies: Vec<(usize, u64, Result<LinkUp, ApiError>)>,
    events: Vec<(usize, EventKind, String)>,
    vlinks: Vec<(usize, bool)>,
    /// Class installs (true) and removals (false), per node.
    classes: Vec<(usize, bool)>,
    /// Node whose kernel refuses every class install.
    kernel_refuses: Option<usize>,
    /// Node whose kernel refuses every tunnel end.
    end_refuses: Option<usize>,
    sent: Vec<(usize, MsgType, Direction)>,
}

impl Chain {
    fn new(capacity_mid: u64) -> Self {
        let cfg = |i: usize| Config {
            node: format!("tb{}", i + 1),
            refresh: Duration::from_secs(1),
            lifetime: Duration::from_secs(3),
            ..Config::default()
        };
        let n = (0..4)
            .map(|i| {
                let mut l = Ledger::new();
                l.add_link("down", if i == 2 { capacity_mid } else { 100 * MBIT });
                l.add_link("up", 100 * MBIT);
                Nslp::new(cfg(i), l, 7 + i as u64)
            })
            .collect();
        Self {
            n,
            now: Instant::now(),
            dead: None,
            auth: AuthVerdict::Verified {
                entity: "vnp".into(),
                key_id: 1,
            },
            replies: vec![],
            events: vec![],
            vlinks: vec![],
            classes: vec![],
            kernel_refuses: None,
            end_refuses: None,
            sent: vec![],
        }
    }

    fn setup(&mut self, req_id: u64, sid: Sid, id: u64, rate: u64) {
        self.setup_dir(req_id, sid, id, rate, false)
    }

    fn setup_dir(&mut self, req_id: u64, sid: Sid, id: u64, rate: u64, bidirectional: bool) {
        self.n[0].setup(
            self.now,
            SetupRequest {
                req_id,
                sid,
                flow: FLOW,
                vlsp: vlsp(id),
                rate_bps: Rate::from_bps(rate),
                egress_link: "down".into(),
                authenticate: true,
                qspec: crate::wire::qspec::Qspec::bandwidth_request(
                    rate as f32 / 8.0,
                    crate::wire::profile::Profile::Rfc,
                ),
                bidirectional,
            },
        );
    }

    /// Delivers everything until no node has work left.
    fn run(&mut self) {
        loop {
            let mut any = false;
            for i in 0..4 {
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
            Action::Send {
                sid,
                flow,
                dir,
                msg,
                ..
            } => {
                self.sent.push((i, msg.msg_type, dir));
                // Flows towards tb4 go up the index, reverse flows down.
                let towards_tb4 = (flow.dst == ADDR[3]) == (dir == Direction::Downstream);
                let j = match towards_tb4 {
                    true if i < 3 => i + 1,
                    false if i > 0 => i - 1,
                    _ => return,
                };
                if self.dead == Some(j) {
                    return;
                }
                // Through the codec, as on the wire.
                let bytes = msg.to_bytes(crate::wire::profile::Profile::Rfc);
                let msg = NslpMessage::decode(&bytes, crate::wire::profile::Profile::Rfc).unwrap();
                let is_destination = dir == Direction::Downstream && flow.dst == ADDR[j];
                let reverse_flow = flow.dst == ADDR[0];
                let ctx = RecvContext {
                    auth: if is_destination {
                        self.auth.clone()
                    } else {
                        AuthVerdict::NotChecked
                    },
                    is_destination,
                    egress_link: if reverse_flow {
                        (j > 0).then(|| "up".to_string())
                    } else {
                        (j < 3).then(|| "down".to_string())
                    },
                    reverse_link: if reverse_flow {
                        (j < 3).then(|| "down".to_string())
                    } else {
                        (j > 0).then(|| "up".to_string())
                    },
                    local: ADDR[j],
                    peer: ADDR[i],
                };
                self.n[j].recv(self.now, sid, flow, dir, msg, ctx);
            }
            Action::VlinkUp { sid, .. } | Action::VlinkDown { sid, .. } => {
                let up = matches!(a, Action::VlinkUp { .. });
                let err = (up && self.end_refuses == Some(i))
                    .then(|| "RTNETLINK answers: File exists".to_string());
                if err.is_none() {
                    self.vlinks.push((i, up));
                }
                self.n[i].vlink_done(self.now, sid, ADDR[i], err);
            }
            Action::Reply { req_id, result } => self.replies.push((i, req_id, result)),
            Action::Event { kind, message, .. } => self.events.push((i, kind, message)),
            Action::InstallClass { sid, .. } => {
                let err = (self.kernel_refuses == Some(i))
                    .then(|| "RTNETLINK answers: No buffer space".to_string());
                if err.is_none() {
                    self.classes.push((i, true));
                }
                self.n[i].class_done(self.now, sid, err);
            }
            Action::RemoveClass { .. } => self.classes.push((i, false)),
            // The chain has one path: a named peer is the next node too.
            Action::SendTo {
                sid,
                flow,
                dir,
                msg,
                authenticate,
                ..
            } => self.act(
                i,
                Action::Send {
                    sid,
                    flow,
                    dir,
                    msg,
                    authenticate,
                },
            ),
            Action::Forget { .. } | Action::Point { .. } => {}
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = (0..4)
                .filter(|i| self.dead != Some(*i))
                .filter_map(|i| self.n[i].poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = t;
                    for i in 0..4 {
                        if self.dead != Some(i) {
                            self.n[i].handle_timeout(self.now);
                        }
                    }
                    self.run();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn sessions(&self, i: usize) -> usize {
        self.n[i].sessions().count()
    }
}

#[test]
fn setup_follows_fig6() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    use Direction::*;
    use MsgType::*;
    assert_eq!(
        c.sent,
        [
            (0, Reserve, Downstream),
            (1, Reserve, Downstream),
            (2, Reserve, Downstream),
            (3, Response, Upstream),
            (2, Response, Upstream),
            (1, Response, Upstream),
        ]
    );
    // tb1 makes its end while the RESERVE travels, tb4 before answering.
    assert_eq!(c.vlinks, [(0, true), (3, true)]);
    assert_eq!(c.replies.len(), 1);
    assert!(matches!(
        &c.replies[0],
        (
            0,
            1,
            Ok(LinkUp {
                vlink_id: 42,
                up: true,
                ..
            })
        )
    ));
    for i in 0..4 {
        assert_eq!(c.sessions(i), 1, "tb{} holds state", i + 1);
    }
    assert_eq!(c.n[1].ledger().used("down"), 10 * MBIT);
    assert_eq!(c.n[2].ledger().used("down"), 10 * MBIT);
}

#[test]
fn kernel_refusal_at_tb3_is_a_reservation_failure_and_leaves_nothing() {
    let mut c = Chain::new(100 * MBIT);
    c.kernel_refuses = Some(2);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    match &c.replies[..] {
        [(0, 1, Err(e))] => {
            assert_eq!(e.reason, ErrorReason::ReservationFailure);
            assert!(e.message.contains("kernel refused"), "{}", e.message);
        }
        r => panic!("{r:?}"),
    }
    // tb1 and tb2 installed and took their classes back; tb3 never had one.
    assert_eq!(c.classes, [(0, true), (1, true), (1, false), (0, false)]);
    // tb3 forwarded the RESERVE while its kernel worked: tb4 said yes and
    // tb3 turned that into the failure; tb1 takes its early end back, tb4's
    // goes with its soft state.
    assert_eq!(c.vlinks, [(0, true), (3, true), (0, false)]);
    for i in 0..3 {
        assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
        assert!(c.n[i].ledger().is_empty(), "tb{} ledger", i + 1);
    }
    assert_eq!(c.n[2].stats().refused[&RefusalReason::Admission], 1);
    c.advance(Duration::from_secs(4));
    assert_eq!(c.sessions(3), 0, "tb4's state expired");
    assert_eq!(c.vlinks, [(0, true), (3, true), (0, false), (3, false)]);
}

#[test]
fn reserve_goes_on_before_the_class_and_the_response_waits_for_it() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    // tb1 sends its RESERVE first, then asks for its class.
    let a: Vec<Action> = std::iter::from_fn(|| c.n[0].poll_action()).collect();
    let send = a.iter().position(|a| matches!(a, Action::Send { .. }));
    let install = a
        .iter()
        .position(|a| matches!(a, Action::InstallClass { .. }));
    assert!(send.unwrap() < install.unwrap(), "{a:?}");
    // Deliver the RESERVE but keep tb1's class pending: the RESPONSE comes
    // back and waits.
    for x in a {
        if !matches!(x, Action::InstallClass { .. }) {
            c.act(0, x);
        }
    }
    c.run();
    assert!(
        c.replies.is_empty(),
        "no reply before tb1's class is in place"
    );
    // tb1's end was made while the RESERVE travelled.
    assert_eq!(c.vlinks, [(0, true), (3, true)]);
    c.n[0].class_done(c.now, SID, None);
    c.run();
    assert!(matches!(
        &c.replies[..],
        [(0, 1, Ok(LinkUp { up: true, .. }))]
    ));
    assert_eq!(c.vlinks, [(0, true), (3, true)]);
    // The RESPONSE taken up again was counted once, when it arrived.
    assert_eq!(c.n[0].stats().responses_received, 1);
}

#[test]
fn kernel_refusal_at_tb1_after_the_response_tears_the_link_down() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    let a: Vec<Action> = std::iter::from_fn(|| c.n[0].poll_action()).collect();
    for x in a {
        if !matches!(x, Action::InstallClass { .. }) {
            c.act(0, x);
        }
    }
    c.run();
    c.n[0].class_done(
        c.now,
        SID,
        Some("RTNETLINK answers: No buffer space".into()),
    );
    c.run();
    match &c.replies[..] {
        [(0, 1, Err(e))] => {
            assert_eq!(e.reason, ErrorReason::Admission);
            assert!(e.message.contains("kernel refused"), "{}", e.message);
        }
        r => panic!("{r:?}"),
    }
    // The signed tear freed every node downstream, tunnel end included.
    assert_eq!(c.vlinks, [(0, true), (3, true), (0, false), (3, false)]);
    for i in 0..4 {
        assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
        assert!(c.n[i].ledger().is_empty(), "tb{} ledger", i + 1);
    }
    assert_eq!(c.n[0].stats().refused[&RefusalReason::Admission], 1);
}

#[test]
fn teardown_removes_everything() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    c.vlinks.clear();
    c.n[0].teardown(c.now, 2, 42);
    c.run();
    assert_eq!(
        c.vlinks,
        [(3, false), (0, false)],
        "tb4 first, tb1 after the RESPONSE"
    );
    assert!(matches!(
        &c.replies[1],
        (0, 2, Ok(LinkUp { up: false, .. }))
    ));
    for i in 0..4 {
        assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
        assert!(c.n[i].ledger().is_empty());
    }
}

#[test]
fn admission_failure_at_tb3_leaves_no_state() {
    let mut c = Chain::new(5 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    let (_, _, r) = &c.replies[0];
    let e = r.as_ref().unwrap_err();
    assert_eq!(e.reason, ErrorReason::ReservationFailure);
    assert!(e.message.contains("tb3"), "{}", e.message);
    // tb1's end, made while the RESERVE travelled, is taken back; no other.
    assert_eq!(c.vlinks, [(0, true), (0, false)]);
    for i in 0..4 {
        assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
        assert!(c.n[i].ledger().is_empty());
    }
    assert_eq!(c.n[2].stats().refused[&RefusalReason::Admission], 1);
}

#[test]
fn unauthorized_request_installs_nothing() {
    let mut c = Chain::new(100 * MBIT);
    c.auth = AuthVerdict::Failed {
        reason: RefusalReason::AuthBadSignature,
        message: "HMAC mismatch for key 1".into(),
    };
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    let e = c.replies[0].2.as_ref().unwrap_err();
    assert_eq!(e.reason, ErrorReason::AuthorizationFailure);
    assert_eq!(
        c.vlinks,
        [(0, true), (0, false)],
        "only tb1's early end, taken back"
    );
    for i in 0..4 {
        assert_eq!(c.sessions(i), 0);
    }
    assert_eq!(c.n[3].stats().refused[&RefusalReason::AuthBadSignature], 1);
    // Unsigned requests are refused by default too.
    let mut c = Chain::new(100 * MBIT);
    c.auth = AuthVerdict::Unsigned;
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    assert!(c.replies[0].2.is_err());
    assert_eq!(c.n[3].stats().refused[&RefusalReason::AuthUnsigned], 1);
}

#[test]
fn unauthorized_tear_is_refused_and_the_link_stays() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    // The tear arrives at tb4 with a bad signature (forged or tampered).
    c.auth = AuthVerdict::Failed {
        reason: RefusalReason::AuthBadSignature,
        message: "HMAC mismatch".into(),
    };
    c.vlinks.clear();
    c.n[0].teardown(c.now, 2, 42);
    c.run();
    assert!(!c.vlinks.contains(&(3, false)), "tb4 kept its tunnel end");
    assert_eq!(c.sessions(3), 1, "tb4 kept its state");
    assert_eq!(c.n[3].stats().refused[&RefusalReason::AuthBadSignature], 1);
}

#[test]
fn concurrent_requests_admit_exactly_what_fits() {
    let mut c = Chain::new(25 * MBIT);
    for k in 0..10u8 {
        c.setup(k as u64, [k; 16], 100 + k as u64, 10 * MBIT);
    }
    c.run();
    let ok = c.replies.iter().filter(|r| r.2.is_ok()).count();
    assert_eq!(ok, 2);
    assert_eq!(c.n[2].ledger().used("down"), 20 * MBIT);
    assert_eq!(c.sessions(3), 2);
}

#[test]
fn refresh_keeps_the_link_and_killed_responder_is_noticed() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    // Several refresh periods: refreshes are answered, nothing expires.
    c.advance(Duration::from_millis(5500));
    assert!(c.events.is_empty(), "{:?}", c.events);
    for i in 0..4 {
        assert_eq!(c.sessions(i), 1);
    }
    // Kill tb4: tb1 notices within three refresh periods.
    c.dead = Some(3);
    c.vlinks.clear();
    c.advance(Duration::from_secs(3));
    assert!(
        c.events
            .iter()
            .any(|(i, k, _)| *i == 0 && *k == EventKind::LinkLost),
        "{:?}",
        c.events
    );
    assert!(c.vlinks.contains(&(0, false)), "tb1 removed its end");
    assert_eq!(c.sessions(0), 0);
    assert!(c.n[0].ledger().is_empty());
    // tb2 and tb3 freed their reservations (tear from tb1, or expiry).
    c.advance(Duration::from_secs(4));
    assert_eq!(c.sessions(1), 0);
    assert_eq!(c.sessions(2), 0);
}

#[test]
fn responder_state_expires_without_refresh() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    c.dead = Some(0); // tb1 gone: no more refreshes
    c.vlinks.clear();
    c.advance(Duration::from_secs(4));
    assert!(c.vlinks.contains(&(3, false)), "tb4 removed its end");
    assert!(
        c.events
            .iter()
            .any(|(i, k, _)| *i == 3 && *k == EventKind::Expired)
    );
    for i in 1..4 {
        assert_eq!(c.sessions(i), 0);
    }
}

#[test]
fn duplicate_setup_and_unknown_teardown_are_refused() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, MBIT);
    c.run();
    c.setup(2, [2; 16], 42, MBIT);
    c.n[0].teardown(c.now, 3, 99);
    c.run();
    assert_eq!(
        c.replies[1].2.as_ref().unwrap_err().reason,
        ErrorReason::Exists
    );
    assert_eq!(
        c.replies[2].2.as_ref().unwrap_err().reason,
        ErrorReason::UnknownLink
    );
}

#[test]
fn old_rsn_is_discarded() {
    assert!(serial_lt(1, 2));
    assert!(serial_lt(u32::MAX, 0));
    assert!(!serial_lt(2, 1));
    assert!(!serial_lt(5, 5));
}

#[test]
fn lost_reserve_is_retransmitted_then_given_up() {
    let mut c = Chain::new(100 * MBIT);
    c.dead = Some(1);
    c.setup(1, SID, 42, MBIT);
    c.run();
    c.advance(Duration::from_secs(31));
    let reserves = c
        .sent
        .iter()
        .filter(|s| s.0 == 0 && s.1 == MsgType::Reserve)
        .count();
    // 0, 2, 6, 14 s (then 30 s is the limit): the first send plus 3
    // retries, and at 30 s a TEAR that frees whatever the path holds.
    assert_eq!(reserves, 5);
    let e = c.replies[0].2.as_ref().unwrap_err();
    assert_eq!(e.reason, ErrorReason::Timeout);
    assert!(c.n[0].ledger().is_empty());
    let _ = InfoClass::Success;
}

#[test]
fn bidirectional_link_reserves_the_reverse_path_and_tears_it_down() {
    let mut c = Chain::new(100 * MBIT);
    c.setup_dir(1, SID, 42, 10 * MBIT, true);
    c.run();
    assert!(matches!(c.replies[..], [(0, 1, Ok(_))]), "{:?}", c.replies);
    // Every node holds both directions; the reverse is reserved on the
    // links towards tb1 by tb4, tb3 and tb2.
    for i in 0..4 {
        assert_eq!(c.sessions(i), 2, "tb{}", i + 1);
    }
    for i in 1..4 {
        assert_eq!(c.n[i].ledger().used("up"), 10 * MBIT, "tb{}", i + 1);
    }
    assert_eq!(c.n[0].ledger().used("up"), 0);
    // The reverse RESERVE carries the forward session as bound session.
    assert!(c.events.is_empty(), "{:?}", c.events);
    // Refreshes keep both halves alive past several lifetimes.
    c.advance(Duration::from_secs(10));
    for i in 0..4 {
        assert_eq!(c.sessions(i), 2, "tb{} after refreshes", i + 1);
    }
    c.n[0].teardown(c.now, 2, 42);
    c.run();
    c.advance(Duration::from_secs(5));
    for i in 0..4 {
        assert_eq!(c.sessions(i), 0, "tb{} after teardown", i + 1);
        assert!(c.n[i].ledger().is_empty(), "tb{} ledger", i + 1);
    }
}

#[test]
fn refused_reverse_leaves_the_forward_link_up() {
    let mut c = Chain::new(100 * MBIT);
    // tb2's link towards tb1 has no room for the reverse direction.
    c.n[1] = {
        let mut l = Ledger::new();
        l.add_link("down", 100 * MBIT);
        l.add_link("up", MBIT);
        Nslp::new(
            Config {
                node: "tb2".into(),
                refresh: Duration::from_secs(1),
                lifetime: Duration::from_secs(3),
                ..Config::default()
            },
            l,
            99,
        )
    };
    c.setup_dir(1, SID, 42, 10 * MBIT, true);
    c.run();
    assert!(matches!(c.replies[..], [(0, 1, Ok(_))]), "{:?}", c.replies);
    assert!(
        c.events
            .iter()
            .any(|(i, k, _)| *i == 3 && *k == EventKind::ReverseRefused),
        "{:?}",
        c.events
    );
    // Only the forward half remains, and nothing of the reverse is reserved.
    for i in 0..4 {
        assert_eq!(c.sessions(i), 1, "tb{}", i + 1);
        assert_eq!(c.n[i].ledger().used("up"), 0, "tb{}", i + 1);
    }
}

#[test]
fn responder_refuses_a_vni_already_in_use_and_keeps_the_first_link() {
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, MBIT);
    c.run();
    // Another link whose VLink ID folds to the same 24-bit VNI.
    let twin = 42 + 0x00ff_ffff;
    assert_eq!(
        crate::model::tunnel::vni_for(twin),
        crate::model::tunnel::vni_for(42)
    );
    c.setup(2, [0x22; 16], twin, MBIT);
    c.run();
    match &c.replies[..] {
        [(0, 1, Ok(_)), (0, 2, Err(e))] => {
            assert_eq!(e.reason, ErrorReason::ReservationFailure);
            assert!(e.message.contains("VNI"), "{}", e.message);
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(c.n[3].stats().refused[&RefusalReason::VniInUse], 1);
    assert_eq!(c.sessions(3), 1, "tb4 keeps only the first link");
    // The second link's early end on tb1 is taken back; none on tb4.
    assert_eq!(c.vlinks, [(0, true), (3, true), (0, true), (0, false)]);
    assert_eq!(c.n[1].ledger().len(), 1, "tb2 freed the refused one");
}

/// An unsigned TEAR (NSIS-ka tears unsigned): refused by default; under
/// `unsigned_tear = "same-peer"` accepted only from the GIST peer whose
/// signed RESERVE set the session up, refused from any other.
#[test]
fn unsigned_tear_passes_only_under_the_policy_and_from_the_same_peer() {
    // Default policy: refused, the link stays.
    let mut c = Chain::new(100 * MBIT);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    c.auth = AuthVerdict::Unsigned;
    c.vlinks.clear();
    c.n[0].teardown(c.now, 2, 42);
    c.run();
    assert_eq!(c.sessions(3), 1, "tb4 kept its state");
    assert_eq!(c.n[3].stats().refused[&RefusalReason::AuthUnsigned], 1);

    // Under the policy: a tear from another peer (tb1 straight to tb4) is
    // refused; the one tb3 forwards (the peer of the signed setup) passes.
    let mut c = Chain::new(100 * MBIT);
    c.n[3].cfg.unsigned_tear_same_peer = true;
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    let ctx = |peer| RecvContext {
        auth: AuthVerdict::Unsigned,
        is_destination: true,
        egress_link: None,
        reverse_link: Some("up".into()),
        local: ADDR[3],
        peer,
    };
    let forged = NslpMessage::tear(7, 99, Some(5));
    c.n[3].recv(
        c.now,
        SID,
        FLOW,
        Direction::Downstream,
        forged,
        ctx(ADDR[0]),
    );
    c.run();
    // A tear from a peer that is not the session's upstream one is for a
    // branch the path left (RFC 5974's SII-Handle): ignored, not answered.
    assert_eq!(c.sessions(3), 1, "a tear from another peer changes nothing");
    assert!(
        !c.n[3]
            .stats()
            .refused
            .contains_key(&RefusalReason::AuthUnsigned)
    );
    c.auth = AuthVerdict::Unsigned;
    c.vlinks.clear();
    c.n[0].teardown(c.now, 2, 42);
    c.run();
    assert_eq!(c.vlinks, [(3, false), (0, false)]);
    for i in 0..4 {
        assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
    }
    // It never opens a setup: an unsigned RESERVE is still refused.
    c.setup(3, [0x22; 16], 43, 10 * MBIT);
    c.run();
    assert!(c.replies.last().unwrap().2.is_err());
    assert_eq!(c.sessions(3), 0);
}

#[test]
fn initiator_end_refused_while_the_reserve_travels_undoes_the_link() {
    let mut c = Chain::new(100 * MBIT);
    c.end_refuses = Some(0);
    c.setup(1, SID, 42, 10 * MBIT);
    c.run();
    match &c.replies[..] {
        [(0, 1, Err(e))] => {
            assert_eq!(e.reason, ErrorReason::Vlink);
            assert!(e.message.contains("File exists"), "{}", e.message);
        }
        r => panic!("{r:?}"),
    }
    // tb4's end came up for the RESPONSE and went with the signed tear.
    assert_eq!(c.vlinks, [(3, true), (3, false)]);
    for i in 0..4 {
        assert_eq!(c.sessions(i), 0, "tb{} is clean", i + 1);
        assert!(c.n[i].ledger().is_empty(), "tb{} ledger", i + 1);
    }
}

#[path = "shaping_tests.rs"]
mod shaping;
