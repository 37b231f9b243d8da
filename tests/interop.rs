//! vlsp against an independent NSIS-ka-like peer (tests/interop/nsiska_peer.py,
//! stdlib Python written from the RFCs and NSIS-ka's captures, sharing no code
//! with vlsp's wire layer), in D-mode under the `nsis-ka` profile.
//!
//! The root tests run a 2-router topology in which one router is
//! `external = true`: `vlsp up` builds its namespace and link but starts no
//! node there, and the Python peer runs inside it instead.
//! - vlsp initiator (tb1) -> Python responder (tb2): the link comes up with a
//!   tunnel end on tb1; teardown removes it.
//! - Python initiator (tb1) -> vlsp responder (tb2): tb2 installs the tunnel
//!   end and answers with a RESPONSE the peer verifies; the peer's unsigned
//!   TEAR removes it. This one needs the provider policy of `[provider.auth]`
//!   (NSIS-ka's START_TIME = now + 6000 s, and `unsigned_tear = "same-peer"`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::*;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::Topology;

/// NSIS-ka's initiator needs this of the responder's provider.
const POLICY: &str = r#"[provider.auth]
max_skew_s = 7200            # NSIS-ka's client writes START_TIME = now + 6000 s
unsigned_tear = "same-peer"  # NSIS-ka's tearing RESERVE carries no SESSION_AUTH
"#;

const VNET: &str = "0x00000001000000020000000300000004";

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/nsiska_peer.py")
}

/// The 2-router topology with `external` naming the router the peer runs on,
/// with or without the provider policy NSIS-ka's initiator needs.
fn topology_text(name: &str, external: &str, policy: bool) -> String {
    let node = |n: &str| {
        if n == external {
            format!("[[node]]\nname = \"{n}\"\nexternal = true\n")
        } else {
            format!("[[node]]\nname = \"{n}\"\n")
        }
    };
    format!(
        r#"[topology]
name = "{name}"
profile = "nsis-ka"
backend = "netlink"
tunnel = "vxlan"
refresh_ms = 30000

[[provider]]
name = "kit"
key_id = 1
key = "12345678901234567890123456789012"
transform = "hmac-sha1-96"
entity = "vnp@example.net"
unsigned = "refuse"

{}
{}{}
[[link]]
a = "tb1:172.1.2.1/24"
b = "tb2:172.1.2.2/24"
capacity = "1gbit"

[[vnet]]
name = "vnet1"
id = "{VNET}"

[[vnode]]
name = "VM1"
vnet = "vnet1"
host = "tb1"
id = 1
address = "10.10.0.1/24"

[[vnode]]
name = "VM2"
vnet = "vnet1"
host = "tb2"
id = 2
address = "10.10.0.2/24"
"#,
        if policy { POLICY } else { "" },
        node("tb1"),
        node("tb2")
    )
}

fn topology(tag: &str, external: &str, policy: bool) -> Topology {
    let name = format!("t{tag}{}", std::process::id() % 100_000);
    let text = topology_text(&name, external, policy);
    Topology::parse(&text, Path::new("interop.toml")).unwrap_or_else(|e| {
        panic!("the interop topology is refused: {e} ([provider.auth] comes with the authorization-policy branch)")
    })
}

/// The Python peer running in a namespace; its output lines as they come.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Peer {
    fn start(ns: &str, args: &[&str]) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-u"])
            .arg(peer_script())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start python3 in the namespace: is python3 installed (.ci/install)?");
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stdin = child.stdin.take();
        Peer {
            child,
            stdin,
            lines,
            seen: vec![],
        }
    }

    /// Waits for a line starting with `tag`; false when the peer ended or
    /// `within` passed first.
    fn wait_for(&mut self, tag: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    eprintln!("peer: {l}");
                    let hit = l.starts_with(tag);
                    self.seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    fn say(&mut self, line: &str) {
        let s = self.stdin.as_mut().expect("stdin");
        writeln!(s, "{line}").expect("the peer's stdin");
    }

    /// Waits for the peer to exit (killing it after `within`); its status.
    fn finish(&mut self, within: Duration) -> bool {
        self.wait_for("\u{0}", within);
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    fn errors(&self) -> Vec<&String> {
        self.seen
            .iter()
            .filter(|l| l.starts_with("ERROR"))
            .collect()
    }

    fn report(&self) -> String {
        format!("the peer said:\n  {}", self.seen.join("\n  "))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vxlan_devices(topo: &str, node: &str) -> usize {
    let ns = vlsp::kernel::substrate::ns_name(topo, node);
    tunnel_ends_in(&ns).len()
}

/// Without the network: the peer's encoder rebuilds NSIS-ka's 2-node
/// D-mode capture byte for byte, and its HMAC check takes NSIS-ka's
/// signatures and refuses the RFC-style one.
#[test]
fn the_python_peer_rebuilds_nsiska_vectors() {
    let out = Command::new("python3")
        .arg(peer_script())
        .arg("selftest")
        .output();
    let Ok(out) = out else {
        eprintln!("skipping: no python3 (install it with .ci/install)");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("rebuilt byte for byte").count(), 7, "{text}");
}

/// `external = true` keeps the router in the substrate but out of vlsp's
/// nodes, survives the saved topology, and contradicts `nsis = false`.
#[test]
fn external_routers_are_parsed_saved_and_checked() {
    let src = topology_text("ext", "tb2", false);
    let t = Topology::parse(&src, Path::new("i.toml")).unwrap_or_else(|e| panic!("{e}"));
    let tb2 = t.node("tb2").unwrap();
    assert!(tb2.nsis && tb2.external && !tb2.runs_vlsp());
    assert!(t.node("tb1").unwrap().runs_vlsp());
    let back = Topology::parse(&t.to_toml(), Path::new("s.toml")).unwrap();
    assert_eq!(back.nodes, t.nodes);
    let bad = src.replacen("external = true", "external = true\nnsis = false", 1);
    let e = Topology::parse(&bad, Path::new("i.toml")).unwrap_err();
    assert!(
        e.message.contains("external = true and nsis = false"),
        "{e}"
    );
    assert_eq!(
        e.line,
        src.lines().position(|l| l == "external = true").unwrap() + 1
    );
}

#[test]
fn vlsp_initiator_sets_up_and_tears_down_with_the_python_responder() {
    if !require_root("interop_vlsp_initiator") {
        return;
    }
    let t = topology("ir", "tb2", false);
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    assert_eq!(
        tb.nodes.len(),
        1,
        "tb2 is external: only tb1 runs a vlsp node"
    );
    let ns2 = vlsp::kernel::substrate::ns_name(&name, "tb2");
    let mut peer = Peer::start(
        &ns2,
        &[
            "respond",
            "--local",
            "172.1.2.2",
            "--timeout",
            "60",
            "--exit-after-tear",
        ],
    );
    assert!(
        peer.wait_for("EVENT responder listening", Duration::from_secs(10)),
        "the Python responder did not start; {}",
        peer.report()
    );

    let mut c = tb.client("tb1").unwrap();
    let reply = c.call(&setup_request("VM1", "VM2", 1_000_000)).unwrap();
    let Reply::LinkUp { vlink } = reply else {
        panic!("vlsp -> Python: setup failed: {reply:?}; {}", peer.report())
    };
    assert!(
        peer.wait_for("UP", Duration::from_secs(5)),
        "{}",
        peer.report()
    );
    assert_eq!(vxlan_devices(&name, "tb1"), 1, "tunnel end on tb1");

    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(
        matches!(r, Reply::LinkDown { .. }),
        "{r:?}; {}",
        peer.report()
    );
    let clean = peer.finish(Duration::from_secs(10));
    assert!(
        peer.seen.iter().any(|l| l.starts_with("DOWN")),
        "the Python responder saw no TEAR; {}",
        peer.report()
    );
    assert!(
        clean && peer.errors().is_empty(),
        "the Python responder found errors; {}",
        peer.report()
    );
    assert!(eventually(Duration::from_secs(5), || vxlan_devices(
        &name, "tb1"
    ) == 0));
    drop(c);
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

#[test]
fn python_initiator_sets_up_and_tears_down_with_the_vlsp_responder() {
    if !require_root("interop_python_initiator") {
        return;
    }
    let t = topology("ii", "tb1", true);
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    assert_eq!(
        tb.nodes.len(),
        1,
        "tb1 is external: only tb2 runs a vlsp node"
    );
    let ns1 = vlsp::kernel::substrate::ns_name(&name, "tb1");
    // VXLAN as vlsp numbers it in the nsis-ka profile (NSIS-ka's own client
    // asks for 11, IP-in-IP, which cannot carry the vnodes' Ethernet bridge).
    let mut peer = Peer::start(
        &ns1,
        &[
            "initiate",
            "--local",
            "172.1.2.1",
            "--peer",
            "172.1.2.2",
            "--vnet",
            VNET,
            "--src-vnode",
            "1",
            "--dst-vnode",
            "2",
            "--vlink",
            "0x4242",
            "--tunnel",
            "0xf0",
            "--max-skew",
            "60",
        ],
    );
    let up = peer.wait_for("UP", Duration::from_secs(30));
    let stats = tb
        .client("tb2")
        .unwrap()
        .call(&Request::Stats)
        .map(|s| format!("{s:?}"))
        .unwrap_or_default();
    assert!(
        up,
        "Python -> vlsp: no verified RESPONSE; {}\ntb2's stats: {stats}",
        peer.report()
    );
    assert_eq!(
        vxlan_devices(&name, "tb2"),
        1,
        "tb2 answered success without a tunnel end"
    );
    peer.say("tear");
    assert!(
        peer.wait_for("DOWN", Duration::from_secs(10)),
        "{}",
        peer.report()
    );
    let clean = peer.finish(Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(5), || vxlan_devices(&name, "tb2") == 0),
        "the unsigned TEAR from the same peer did not remove tb2's tunnel end (unsigned_tear = \"same-peer\"); {}",
        peer.report()
    );
    assert!(
        clean && peer.errors().is_empty(),
        "the Python initiator found errors; {}",
        peer.report()
    );
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}
