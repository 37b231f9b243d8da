//! Root integration test: a capture on every substrate interface shows the
//! paper's sequence for a setup on paper-4node — a GIST handshake per hop
//! (Query, Response, Confirm), the RESERVE forwarded hop by hop tb1 → tb4,
//! the RESPONSE back tb4 → tb1 — and the pcap files open as pcap.

mod common;

use common::*;
use vlsp::kernel::capture::{Capture, gist_events, label, wire_periods, write_pcaps};
use vlsp::node::api::Reply;
use vlsp::testbed::{Options, Testbed};

#[test]
fn capture_shows_the_papers_sequence() {
    if !require_root("capture_sequence") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "s");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let nodes: Vec<String> = ["tb1", "tb2", "tb3", "tb4"].map(String::from).to_vec();
    let cap = Capture::start(&name, &nodes).unwrap();
    let mut c = tb.client("tb1").unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_request("VM1", "VM2", 1_000_000)).unwrap() else {
        panic!()
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (frames, off) = cap.stop().unwrap();
    let ev = gist_events(&frames);
    let sid = vlink.sid().unwrap();
    // What each node saw of this session, in its own capture's time order.
    // Orders are compared within one node only: each namespace's capture
    // stamps its frames from one clock at one place in its stack, while two
    // nodes' stamps of causally ordered frames can come a few µs out of
    // order (a send is stamped at transmit, a receive before the socket).
    let at = |n: &str| -> Vec<String> {
        let mut v: Vec<_> = ev
            .iter()
            .filter(|e| e.node == n && e.sid == Some(sid))
            .collect();
        v.sort_by_key(|e| e.mono_ns);
        v.into_iter().map(label).collect()
    };
    let seen: Vec<(String, Vec<String>)> = nodes.iter().map(|n| (n.clone(), at(n))).collect();
    eprintln!("{seen:#?}");
    let pos = |n: &str, what: &str| -> usize {
        let v = &seen.iter().find(|(m, _)| m == n).unwrap().1;
        v.iter()
            .position(|s| s.starts_with(&format!("{n}{what}")))
            .unwrap_or_else(|| panic!("{n} did not see {what}: {v:?}"))
    };
    let ends = |n: &str, dir: &str, nslp: &str| -> usize {
        let v = &seen.iter().find(|(m, _)| m == n).unwrap().1;
        v.iter()
            .position(|s| s.starts_with(&format!("{n}{dir}")) && s.ends_with(nslp))
            .unwrap_or_else(|| panic!("{n} did not see {dir}{nslp}: {v:?}"))
    };
    // Three handshakes, each Query answered by a Response and confirmed,
    // in that order at both ends.
    for (a, b) in [("tb1", "tb2"), ("tb2", "tb3"), ("tb3", "tb4")] {
        assert!(
            pos(a, ">Query") < pos(a, "<Response") && pos(a, "<Response") < pos(a, ">Confirm"),
            "{a}-{b} handshake out of order at {a}: {seen:?}"
        );
        assert!(
            pos(b, "<Query") < pos(b, ">Response") && pos(b, ">Response") < pos(b, "<Confirm"),
            "{a}-{b} handshake out of order at {b}: {seen:?}"
        );
    }
    // The RESERVE travels tb1 -> tb2 -> tb3 -> tb4, the RESPONSE back: every
    // node forwards what it received, and the QNR answers what it received.
    for n in ["tb2", "tb3"] {
        assert!(
            ends(n, "<", "(RESERVE)") < ends(n, ">", "(RESERVE)"),
            "{n}: {seen:?}"
        );
        assert!(
            ends(n, ">", "(RESERVE)") < ends(n, "<", "(RESPONSE)"),
            "{n}: {seen:?}"
        );
        assert!(
            ends(n, "<", "(RESPONSE)") < ends(n, ">", "(RESPONSE)"),
            "{n}: {seen:?}"
        );
    }
    assert!(ends("tb1", ">", "(RESERVE)") < ends("tb1", "<", "(RESPONSE)"));
    assert!(ends("tb4", "<", "(RESERVE)") < ends("tb4", ">", "(RESPONSE)"));
    // The wire gives [D], [E], [F] at tb3 and [G] at tb4.
    let p3 = wire_periods(&ev, "tb3", &sid);
    let p4 = wire_periods(&ev, "tb4", &sid);
    assert!(
        p3.d_ns.is_some() && p3.e_ns.is_some() && p3.f_ns.is_some(),
        "{p3:?}"
    );
    assert!(p4.g_ns.is_some(), "{p4:?}");
    // pcap files: one per interface, each starting with the pcap magic.
    let dir = std::env::temp_dir().join(format!("vlsp-pcap-{}", std::process::id()));
    let files = write_pcaps(&dir, &frames, off, None).unwrap();
    assert!(files.len() >= 6, "{files:?}");
    for f in &files {
        let b = std::fs::read(f).unwrap();
        assert_eq!(b[..4], [0x4d, 0x3c, 0xb2, 0xa1], "{}", f.display());
    }
    if let Ok(out) = std::process::Command::new("tcpdump")
        .args(["-nr", files[0].to_str().unwrap()])
        .output()
    {
        assert!(
            out.status.success(),
            "tcpdump reads {}: {:?}",
            files[0].display(),
            out
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    tb.down().unwrap();
}

/// Frames that passed the interface before `stop` are in the capture, even
/// when `stop` comes right after them (the capture thread may not have read
/// them yet): a burst of datagrams tb2 sends tb1, then at once the stop.
#[test]
fn frames_queued_before_the_stop_are_kept() {
    if !require_root("capture_queued_before_stop") {
        return;
    }
    use std::net::{Ipv4Addr, SocketAddrV4};
    let t = unique_topology("paper-4node.toml", "q");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let sock = udp_socket_in(&name, "tb2", Ipv4Addr::UNSPECIFIED);
    let ours = |frames: &[vlsp::kernel::capture::Frame], node: &str, outgoing: bool| {
        frames
            .iter()
            .filter(|f| f.node == node && f.outgoing == outgoing)
            .filter(|f| f.bytes.windows(18).any(|w| w == b"queued-before-stop"))
            .count()
    };
    for round in 0..20 {
        let cap = Capture::start(&name, &["tb1".to_string(), "tb2".to_string()]).unwrap();
        for i in 0..50u16 {
            // tb2 → tb1 over their link (the port is closed: the frame
            // still passes both interfaces).
            let mut p = b"queued-before-stop".to_vec();
            p.extend_from_slice(&i.to_be_bytes());
            sock.send_to(&p, SocketAddrV4::new(Ipv4Addr::new(172, 1, 2, 1), 9))
                .unwrap();
        }
        // Received frames are queued on tb1's capture socket in tb1's
        // receive path, which may trail the send a little.
        std::thread::sleep(std::time::Duration::from_millis(1));
        let (frames, _) = cap.stop().unwrap();
        assert_eq!(ours(&frames, "tb2", true), 50, "round {round}: sent by tb2");
        assert_eq!(
            ours(&frames, "tb1", false),
            50,
            "round {round}: received by tb1"
        );
    }
    tb.down().unwrap();
}
