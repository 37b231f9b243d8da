//! Root test of the route monitors' socket filter against the kernel's own
//! announcements: in a fresh namespace, a bridge, the VXLAN socket keeper
//! and a tunnel end come and go (the plumbing of a virtual link), and a
//! substrate interface goes down. A socket with the filter hears only the
//! substrate interface; one without hears everything (the premise).

mod common;

use common::{Netns, in_netns, ip_in as ip, require_root};
use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::os::fd::AsRawFd;

/// A link-announcement socket opened inside `ns`, with the filter or not.
fn listener(ns: &str, filtered: bool) -> Socket {
    in_netns(ns, || {
        let mut s = Socket::new(NETLINK_ROUTE).unwrap();
        s.bind(&SocketAddr::new(0, RTMGRP_LINK)).unwrap();
        s.set_non_blocking(true).unwrap();
        if filtered {
            vlsp::kernel::announce_filter::attach(s.as_raw_fd()).unwrap();
        }
        s
    })
}

/// (family is AF_BRIDGE, interface name) of every link announcement queued.
fn heard(s: &Socket) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = s.recv(&mut &mut buf[..], 0) {
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..off + len]);
            if let Ok(NetlinkMessage {
                payload:
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l),
                    ),
                ..
            }) = m
            {
                out.push((l.header.interface_family == AddressFamily::Bridge, name(&l)));
            }
            off += len.next_multiple_of(4).max(16);
        }
    }
    out
}

fn name(l: &LinkMessage) -> String {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn the_plumbing_of_a_virtual_link_never_reaches_a_filtered_monitor() {
    if !require_root("the_plumbing_of_a_virtual_link_never_reaches_a_filtered_monitor") {
        return;
    }
    let ns = Netns::add(format!("vlsp-annf-{}", std::process::id()));
    let n = ns.0.as_str();
    ip(n, "link add sub0 type veth peer name sub1");
    ip(n, "addr add 10.77.0.1/24 dev sub0");
    ip(n, "link set sub0 up");
    ip(n, "link set sub1 up");
    let all = listener(n, false);
    let filtered = listener(n, true);

    // A virtual link's plumbing, made and removed as a node does.
    ip(n, "link add br0v1 type bridge mcast_snooping 0");
    ip(n, "link set br0v1 up");
    ip(n, "link add vxkeep type vxlan id 0 dstport 4789 nolearning");
    ip(n, "link set vxkeep up");
    ip(
        n,
        "link add vl00a1ff type vxlan id 41471 local 10.77.0.1 remote 10.77.0.2 dstport 4789",
    );
    ip(n, "link set vl00a1ff master br0v1 up");
    ip(n, "link del vl00a1ff");
    // The substrate: an interface going down.
    ip(n, "link set sub0 down");

    let everything = heard(&all);
    let passed = heard(&filtered);
    for name in ["br0v1", "vxkeep", "vl00a1ff", "sub0"] {
        assert!(
            everything.iter().any(|(_, n)| n == name),
            "premise: {name} announced: {everything:?}"
        );
    }
    assert!(
        everything.iter().any(|(bridge, _)| *bridge),
        "premise: bridge-port notifications: {everything:?}"
    );
    assert!(!passed.is_empty(), "the substrate interface was heard");
    assert!(
        passed
            .iter()
            .all(|(bridge, n)| !bridge && n.starts_with("sub")),
        "only the substrate passed: {passed:?}"
    );
    assert!(passed.iter().any(|(_, n)| n == "sub0"), "{passed:?}");
}
