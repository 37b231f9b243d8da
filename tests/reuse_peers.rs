//! Root integration test of the optional `VLSP_GIST_REUSE_PEERS=1` mode on
//! paper-4node: a later link between the same routers skips every hop's
//! handshake, still carries frames, and a tampered-with RESERVE on reused
//! state is still refused. Its own test binary: the variable is read by the
//! in-process nodes of this process only.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

fn setup(tb: &Testbed, auth: bool) -> Reply {
    let mut req = setup_request("VM1", "VM2", 1_000_000);
    if let Request::Setup { authenticate, .. } = &mut req {
        *authenticate = auth;
    }
    tb.client("tb1").unwrap().call(&req).unwrap()
}

#[test]
fn later_links_reuse_the_peers_and_still_carry_frames() {
    if !require_root("later_links_reuse_the_peers") {
        return;
    }
    // SAFETY: set before any node (or other thread of this test) starts.
    unsafe { std::env::set_var("VLSP_GIST_REUSE_PEERS", "1") };
    let t = unique_topology("paper-4node.toml", "rp");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);

    for i in 0..3 {
        let Reply::LinkUp { vlink } = setup(&tb, true) else {
            panic!("setup refused")
        };
        vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("link {i}: no frames cross it: {e:#}"));
        teardown_ok(&mut tb.client("tb1").unwrap(), vlink.vlink_id);
    }
    // The first link ran the handshakes; the next two reused every hop's peer
    // (tb1, tb2, tb3 as queriers; tb2, tb3, tb4 as responders).
    for n in ["tb1", "tb2", "tb3"] {
        assert_eq!(
            node_stats(&tb, n).gist.sessions_on_known_peer,
            2,
            "{n} as querier"
        );
    }
    for n in ["tb2", "tb3", "tb4"] {
        assert_eq!(
            node_stats(&tb, n).gist.sessions_adopted,
            2,
            "{n} as responder"
        );
    }
    // Reused routing state skips GIST's cookie exchange, not the NSLP's
    // authorization: an unsigned request on it is still refused at tb2.
    match setup(&tb, false) {
        Reply::Error { reason, .. } => {
            assert_eq!(reason, vlsp::proto::nslp::ErrorReason::AuthorizationFailure)
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(node_stats(&tb, "tb1").gist.sessions_on_known_peer, 3);
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}
