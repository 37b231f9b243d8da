//! GIST C-mode (messaging associations over TCP, issue 13 item 4).
//! Without root: our C-mode Query proposes exactly what NSIS-ka's does, and
//! NSIS-ka's C-mode Response, Confirm and Data (tests/data/nsiska-vectors)
//! read as the machine needs them. As root: a link set up and torn down on
//! paper-4node with `gist_mode = "c"`, carrying frames, with one TCP MA per
//! router pair that a second link reuses.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::node::api::{Reply, Request};
use vlsp::proto::gist::codec::{decode_framed, encode_framed};
use vlsp::proto::gist::ma::{
    MA_HOLD, MA_PORT, Stack, offered_tcp_port, query_config, query_proposal,
};
use vlsp::proto::gist::machine::{Direction, Flow, Msg, Nli};
use vlsp::testbed::{Options, Testbed};
use vlsp::wire::gist::{Body, Framing, GistPdu};

const TSV: &str = include_str!("data/nsiska-vectors/gist-messages.tsv");

/// The payload of vector `index` of `scenario`, and whether it is TCP.
fn vector(scenario: &str, index: &str) -> (Vec<u8>, bool) {
    let l = TSV
        .lines()
        .find(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            c.len() == 9 && c[0] == scenario && c[1] == index
        })
        .unwrap_or_else(|| panic!("vector {scenario} #{index}"));
    let c: Vec<&str> = l.split('\t').collect();
    let bytes = vlsp::model::unhex(c[8]).expect("hex");
    (bytes, c[2] == "tcp")
}

const LINK1: &str = "nsiska-both-cmode-4node.link1-a-r1";

#[test]
fn our_cmode_query_proposes_what_nsiska_proposes() {
    let (q, tcp) = vector(LINK1, "23");
    assert!(!tcp);
    let Body::Query {
        stack: Some((sp, sc)),
        ..
    } = GistPdu::decode_udp(&q).unwrap().body
    else {
        panic!("NSIS-ka's C-mode Query carries SP and SCD")
    };
    assert_eq!(sp, query_proposal());
    assert_eq!(sc, query_config(MA_HOLD));
    // Byte for byte: SP (16 bytes) and SCD (20) end both Queries.
    let ours = encode_framed(
        &Msg::Query {
            flow: Flow {
                src: Ipv4Addr::new(10, 99, 1, 1),
                dst: Ipv4Addr::new(10, 99, 3, 1),
                protocol: 17,
            },
            dir: Direction::Downstream,
            sid: [1; 16],
            nli: Nli {
                peer_id: [2; 16],
                ip_ttl: 103,
                rs_validity_ms: 30_000,
                addr: Ipv4Addr::new(10, 99, 1, 1),
            },
            query_cookie: vec![1, 2, 3, 4],
            nslp_data: None,
        },
        &Stack {
            proposal: Some(query_proposal()),
            config: Some(query_config(MA_HOLD)),
        },
        Framing::Udp,
    )
    .unwrap();
    let theirs = &q[q.len() - 36..];
    assert_eq!(theirs[..4], [0x00, 0x03, 0x00, 0x03], "SP header");
    assert_eq!(ours[ours.len() - 36..], *theirs);
}

#[test]
fn nsiska_cmode_response_confirm_and_data_read_as_the_machine_needs() {
    // The Response offers TCP on port 30000.
    let (r, _) = vector(LINK1, "24");
    let (msg, stack) = decode_framed(&r, Framing::Udp).unwrap().unwrap();
    assert!(matches!(msg, Msg::Response { .. }));
    assert_eq!(offered_tcp_port(&stack), Some(MA_PORT));
    // The Confirm, first message on the MA, keeps both stack objects.
    let (c, tcp) = vector(LINK1, "25");
    assert!(tcp);
    let (msg, stack) = decode_framed(&c, Framing::Tcp).unwrap().unwrap();
    assert!(matches!(msg, Msg::Confirm { .. }));
    assert!(stack.proposal.is_some() && stack.config.is_some());
    // C-mode Data carry no NLI; they re-encode byte for byte.
    let (d, tcp) = vector(LINK1, "26");
    assert!(tcp);
    let (msg, stack) = decode_framed(&d, Framing::Tcp).unwrap().unwrap();
    assert!(matches!(msg, Msg::Data { nli: None, .. }), "{msg:?}");
    assert_eq!(encode_framed(&msg, &stack, Framing::Tcp).unwrap(), d);
}

fn links(tb: &Testbed, node: &str) -> usize {
    match tb.client(node).unwrap().call(&Request::List).unwrap() {
        Reply::Links { links } => links.len(),
        r => panic!("{r:?}"),
    }
}

/// Established TCP connections to or from the MA port in `node`'s
/// namespace, as (local, remote) in /proc's hex notation.
fn mas(topo: &str, node: &str) -> BTreeSet<(String, String)> {
    let ns = vlsp::kernel::substrate::ns_name(topo, node);
    let port = format!(":{MA_PORT:04X}");
    ns_output(&ns, "cat /proc/thread-self/net/tcp")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[3] == "01" && (f[1].ends_with(&port) || f[2].ends_with(&port)))
                .then(|| (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

fn setup(c: &mut vlsp::node::api::Client) -> u64 {
    let reply = c.call(&setup_request("VM1", "VM2", 10_000_000)).unwrap();
    let Reply::LinkUp { vlink } = reply else {
        panic!("{reply:?}")
    };
    vlink.vlink_id
}

#[test]
fn cmode_setup_reuses_one_ma_per_hop_and_teardown_leaves_nothing() {
    if !require_root("cmode_setup") {
        return;
    }
    let t = unique_topology_with("vif-4node.toml", "c", |s| {
        s.replacen(
            "refresh_ms = 30000",
            "refresh_ms = 30000\ngist_mode = \"c\"",
            1,
        )
    });
    assert_eq!(t.gist_mode, vlsp::topology::GistMode::C);
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);
    let mut c = tb.client("tb1").unwrap();

    let first = setup(&mut c);
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 1, "{n} holds the session");
    }
    vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(3)).unwrap();
    // One MA on each substrate link: the ends see one, the routers two.
    let before: Vec<_> = ["tb1", "tb2", "tb3", "tb4"]
        .iter()
        .map(|n| mas(&name, n))
        .collect();
    let counts: Vec<usize> = before.iter().map(BTreeSet::len).collect();
    assert_eq!(counts, [1, 2, 2, 1], "{before:?}");

    // A second link (on the virtual nodes' second interfaces) goes over the
    // same MAs.
    let second = setup(&mut c);
    assert_ne!(first, second);
    for (i, n) in ["tb1", "tb2", "tb3", "tb4"].iter().enumerate() {
        assert_eq!(links(&tb, n), 2, "{n} holds both sessions");
        assert_eq!(mas(&name, n), before[i], "{n} reuses its MAs");
    }

    for id in [first, second] {
        let r = c.call(&Request::Teardown { vlink_id: id }).unwrap();
        assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    }
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert_eq!(links(&tb, n), 0, "{n} is clean");
        assert_eq!(reservations(&name, n), (0, 0), "{n} has no classes left");
    }
    assert!(
        vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_millis(300))
            .is_err()
    );
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}
