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
    // Sent messages of this session, in time order: what each node put on the wire.
    let sent: Vec<String> = ev
        .iter()
        .filter(|e| e.outgoing && e.sid == Some(sid))
        .map(label)
        .collect();
    eprintln!("{sent:#?}");
    // Three handshakes, each Query answered by a Response and confirmed.
    for (a, b) in [("tb1", "tb2"), ("tb2", "tb3"), ("tb3", "tb4")] {
        let q = sent
            .iter()
            .position(|s| s.starts_with(&format!("{a}>Query")))
            .unwrap_or_else(|| panic!("no Query from {a}: {sent:?}"));
        let r = sent
            .iter()
            .position(|s| s.starts_with(&format!("{b}>Response")))
            .unwrap_or_else(|| panic!("no Response from {b}: {sent:?}"));
        let cf = sent
            .iter()
            .position(|s| s.starts_with(&format!("{a}>Confirm")))
            .unwrap_or_else(|| panic!("no Confirm from {a}: {sent:?}"));
        assert!(q < r && r < cf, "{a}-{b} handshake out of order: {sent:?}");
    }
    // The RESERVE travels tb1 → tb2 → tb3 → tb4, the RESPONSE back.
    let rsv = |n: &str| {
        sent.iter()
            .position(|s| s.starts_with(&format!("{n}>")) && s.ends_with("(RESERVE)"))
            .unwrap_or_else(|| panic!("no RESERVE from {n}: {sent:?}"))
    };
    let rsp = |n: &str| {
        sent.iter()
            .position(|s| s.starts_with(&format!("{n}>")) && s.ends_with("(RESPONSE)"))
            .unwrap_or_else(|| panic!("no RESPONSE from {n}: {sent:?}"))
    };
    assert!(rsv("tb1") < rsv("tb2") && rsv("tb2") < rsv("tb3"));
    assert!(rsv("tb3") < rsp("tb4"));
    assert!(rsp("tb4") < rsp("tb3") && rsp("tb3") < rsp("tb2"));
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
