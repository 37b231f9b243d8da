//! Helpers for the root integration tests: unique topology names and a
//! guard that tears the substrate down even when a test fails.

#![allow(dead_code)]

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vlsp::kernel::tc::SIGNALING_CLASS;
use vlsp::node::api::{Client, Event, Reply, Request};
use vlsp::proto::nslp::EventKind;
use vlsp::topology::Topology;

/// A signed setup request from `from` to `to` (one direction, the
/// topology's backend).
pub fn setup_request(from: &str, to: &str, rate_bps: u64) -> Request {
    Request::signed_setup(from, to, vlsp::model::units::Rate::from_bps(rate_bps))
}

/// A signed setup request with the direction and backend chosen.
pub fn setup_request_with(
    from: &str,
    to: &str,
    rate_bps: u64,
    bidirectional: bool,
    backend: Option<vlsp::model::tunnel::Backend>,
) -> Request {
    Request::Setup {
        from: from.into(),
        to: to.into(),
        rate_bps: vlsp::model::units::Rate::from_bps(rate_bps),
        bidirectional,
        backend,
        authenticate: true,
        tunnel: None,
    }
}

/// What a root test does when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootGuard {
    Run,
    /// Not root on a developer's machine: skip, with this notice.
    Skip(String),
    /// Not root under CI: a skipped kernel test would pass unseen, so fail.
    Fail(String),
}

/// The guard's decision, from who we are and the `CI` variable (CI counts
/// as set when non-empty, as CI systems set it).
pub fn root_guard(test: &str, is_root: bool, ci: Option<&str>) -> RootGuard {
    if is_root {
        RootGuard::Run
    } else if ci.is_some_and(|v| !v.is_empty()) {
        RootGuard::Fail(format!(
            "{test} needs root (network namespaces) and CI is set: run the tests as root \
             (e.g. sudo -E cargo test --release), or unset CI to skip them"
        ))
    } else {
        RootGuard::Skip(format!(
            "skipping {test}: needs root (network namespaces); under CI this fails instead"
        ))
    }
}

/// True when the test may touch the kernel. Not root: prints why it skips,
/// or panics when `CI` is set, so a CI run without root cannot pass.
pub fn require_root(test: &str) -> bool {
    let ci = std::env::var("CI").ok();
    match root_guard(test, nix::unistd::geteuid().is_root(), ci.as_deref()) {
        RootGuard::Run => true,
        RootGuard::Skip(why) => {
            eprintln!("{why}");
            false
        }
        RootGuard::Fail(why) => panic!("{why}"),
    }
}

/// A shipped topology under a unique name (so parallel tests never clash).
pub fn unique_topology(file: &str, tag: &str) -> Topology {
    unique_topology_with(file, tag, |s| s)
}

/// Like [`unique_topology`], with the file's text edited first.
pub fn unique_topology_with(file: &str, tag: &str, edit: impl Fn(String) -> String) -> Topology {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(file);
    let src = edit(std::fs::read_to_string(&p).unwrap());
    let orig = Topology::parse(&src, &p).unwrap();
    let name = format!("t{}{}", tag, std::process::id() % 100_000);
    let src = src.replacen(
        &format!("name = \"{}\"", orig.name),
        &format!("name = \"{name}\""),
        1,
    );
    Topology::parse(&src, &p).unwrap()
}

/// Removes the topology's namespaces when dropped.
pub struct Down(pub String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = vlsp::kernel::substrate::down(&self.0);
    }
}

/// Names of our namespaces that still exist for `topo`.
pub fn leftovers(topo: &str) -> Vec<String> {
    let prefix = format!("vlsp-{topo}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `cmd` inside namespace `ns` and returns its standard output.
pub fn ns_output(ns: &str, cmd: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The gateway router `node` of testbed `topo` uses towards `dst` (`ip
/// route get`), or "none".
pub fn via(topo: &str, node: &str, dst: &str) -> String {
    let out = ns_output(
        &vlsp::kernel::substrate::ns_name(topo, node),
        &format!("ip -4 route get {dst}"),
    );
    out.split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .unwrap_or("none")
        .to_string()
}

/// Reservation classes at work (HTB classes other than the link's own,
/// and not idle) and u32 filters on every interface of `node`.
pub fn reservations(topo: &str, node: &str) -> (usize, usize) {
    let (at_work, _, filters) = classes(topo, node);
    (at_work, filters)
}

/// Reservation classes at work, idle reservation classes, and
/// reservation filters on every interface of `node`.
pub fn classes(topo: &str, node: &str) -> (usize, usize, usize) {
    let ns = vlsp::kernel::substrate::ns_name(topo, node);
    let classes = ns_output(
        &ns,
        "for d in $(ls /sys/class/net); do tc class show dev $d; done",
    );
    let filters = ns_output(
        &ns,
        "for d in $(ls /sys/class/net); do tc filter show dev $d; done",
    );
    (
        classes
            .lines()
            .filter(|l| vlsp::kernel::tc::is_reservation_line(l))
            .count(),
        classes
            .lines()
            .filter(|l| vlsp::kernel::tc::is_idle_line(l))
            .count(),
        // The signaling filters are the link's own.
        filters
            .lines()
            .filter(|l| l.contains("flowid") && !l.contains(&format!("flowid {SIGNALING_CLASS}")))
            .count(),
    )
}

/// The routers of `ring-6node` (VM1 on r0, VM2 on r3).
pub const RING: [&str; 6] = ["r0", "r1", "r2", "r3", "r4", "r5"];

/// Reservation classes per router of the ring.
pub fn ring_reserved(topo: &str) -> Vec<(&'static str, usize)> {
    RING.iter().map(|r| (*r, reservations(topo, r).0)).collect()
}

/// The events a node's API sends a subscriber, read on a thread (with
/// when each came) so a test can wait with a limit.
pub fn subscribe(mut c: Client) -> mpsc::Receiver<(Instant, Event)> {
    assert_eq!(c.call(&Request::Events).unwrap(), Reply::Subscribed);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(ev) = c.next_event() {
            if tx.send((Instant::now(), ev)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first event of `kind` within `limit`, and when it came (others seen
/// on the way are kept in `seen`).
pub fn wait_for(
    rx: &mpsc::Receiver<(Instant, Event)>,
    kind: EventKind,
    limit: Duration,
    seen: &mut Vec<Event>,
) -> (Instant, Event) {
    let end = Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, ev)) if ev.kind == kind => return (at, ev),
            Ok((_, ev)) => seen.push(ev),
            Err(_) => panic!("no {kind} event within {limit:?}; saw {seen:?}"),
        }
    }
}

/// A UDP echo from router `a` to `b`'s address `dst`, tried three times: the
/// first datagram after a fault or a route change may still meet old state.
pub fn ping(topo: &str, a: &str, b: &str, dst: std::net::Ipv4Addr) {
    let mut last = None;
    for _ in 0..3 {
        match vlsp::kernel::substrate::udp_ping(topo, a, b, dst, std::time::Duration::from_secs(2))
        {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
    }
    panic!("{a} -> {b} ({dst}): {:#}", last.unwrap());
}

/// The tunnel ends (VXLAN devices named `vl<vni>`) in namespace `ns`, not
/// the device that keeps the VXLAN socket open (`vxkeep`).
pub fn tunnel_ends_in(ns: &str) -> Vec<String> {
    ns_output(ns, "ip -o link show type vxlan")
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .filter(|n| vlsp::kernel::tunnel::TunnelEnd::is_end_name(n))
        .collect()
}

/// Tears link `vlink_id` down through `c` and asserts it went down.
pub fn teardown_ok(c: &mut Client, vlink_id: u64) {
    let r = c.call(&Request::Teardown { vlink_id }).unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
}

/// `node`'s counters (`vlsp link stats`).
pub fn node_stats(tb: &vlsp::testbed::Testbed, node: &str) -> vlsp::node::api::Stats {
    match tb.client(node).unwrap().call(&Request::Stats).unwrap() {
        Reply::Stats { stats } => stats,
        r => panic!("{r:?}"),
    }
}

/// A UDP socket in `node`'s namespace of testbed `topo`, bound to `addr`
/// (a socket keeps the namespace it was created in).
pub fn udp_socket_in(topo: &str, node: &str, addr: std::net::Ipv4Addr) -> std::net::UdpSocket {
    in_netns(&vlsp::kernel::netns::ns_name(topo, node), || {
        std::net::UdpSocket::bind(std::net::SocketAddrV4::new(addr, 0)).unwrap()
    })
}

/// Runs `f` inside namespace `ns` (what it opens stays there).
pub fn in_netns<T>(ns: &str, f: impl FnOnce() -> T) -> T {
    let file = std::fs::File::open(vlsp::kernel::netns::ns_path(ns)).unwrap();
    vlsp::kernel::netns::with_netns(&file, f).unwrap()
}

/// A namespace of the test's own, removed when dropped (also when the test
/// fails).
pub struct Netns(pub String);

impl Netns {
    /// Adds namespace `name`.
    pub fn add(name: String) -> Self {
        let st = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        Self(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Polls `cond` for up to `within` (kernel work after a reply is not
/// instantaneous); the last value.
pub fn eventually(within: Duration, cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ip -n NS ARGS` (split at whitespace); fails the test with ip's error.
pub fn ip_in(ns: &str, args: &str) {
    let out = std::process::Command::new("ip")
        .args(["-n", ns])
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
