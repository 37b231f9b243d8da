//! Root test: the 4-node chain under the `nsis-ka` profile, so GIST sends
//! what NSIS-ka sends (Queries and Confirms with IP TTL 103, Responses with
//! an NLI IP-TTL of 0 and D set, 4-byte Query-Cookies, 28-byte
//! Responder-Cookies) and vlsp nodes still understand each other end to end.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

#[test]
fn nsis_ka_profile_chain_sets_up_and_tears_down() {
    if !require_root("nsis_ka_profile_chain") {
        return;
    }
    let t = unique_topology_with("paper-4node.toml", "hk", |s| {
        s.replacen("profile = \"rfc\"", "profile = \"nsis-ka\"", 1)
    });
    assert_eq!(t.profile, vlsp::wire::profile::Profile::NsisKa);
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);

    let mut c = tb.client("tb1").unwrap();
    let reply = c.call(&setup_request("VM1", "VM2", 10_000_000)).unwrap();
    let Reply::LinkUp { vlink } = reply else {
        panic!("{reply:?}")
    };
    vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(3)).unwrap();
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        let Reply::Stats { stats } = tb.client(n).unwrap().call(&Request::Stats).unwrap() else {
            panic!("stats of {n}")
        };
        assert_eq!(stats.gist.stale_cookie + stats.gist.bad_cookie, 0, "{n}");
    }
    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}
