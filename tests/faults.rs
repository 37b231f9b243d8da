//! Faults on a running ring (root): a failed link moves the routes round
//! the other way and its repair moves them back (static and OSPF), a
//! stopped router forwards nothing, and `vlsp down` leaves no bird,
//! namespace or link, also after `kill -9` of `vlsp up`.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{
    Down, RING, leftovers, ns_output, ping, require_root, ring_reserved, subscribe,
    unique_topology, via, wait_for,
};
use vlsp::kernel::substrate::{self, ns_name};
use vlsp::testbed::{Options, Testbed, routing};
use vlsp::topology::faults::{Fault, FaultState};

/// The tests here run one at a time: each brings up a ring whose repairs
/// must land within a 1 s refresh period and OSPF's convergence, and two
/// rings on two cores stretch both past it (a lost link that is load, not
/// a defect).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn link_down(l: &str) -> Fault {
    Fault::LinkDown { link: l.into() }
}

fn link_up(l: &str) -> Fault {
    Fault::LinkUp { link: l.into() }
}

fn oper(topo: &str, node: &str, ifname: &str) -> String {
    ns_output(
        &ns_name(topo, node),
        &format!("cat /sys/class/net/{ifname}/operstate"),
    )
    .trim()
    .to_string()
}

/// r3's address on r2-r3, reached from r0.
const R3: Ipv4Addr = Ipv4Addr::new(10, 6, 2, 2);

#[test]
fn static_routes_go_round_a_failed_link_and_come_back() {
    let _one_at_a_time = serial();
    if !require_root("static_routes_go_round_a_failed_link") {
        return;
    }
    let t = unique_topology("ring-6node.toml", "fs");
    let name = t.name.clone();
    let _g = Down(name.clone());
    let mut tb = Testbed::up(t, &Options::default()).unwrap();
    assert_eq!(via(&name, "r0", "10.6.2.2"), "10.6.0.2", "via r1 first");
    let st = tb.fault(&link_down("r1-r2")).unwrap();
    assert_eq!(st.links_down.iter().collect::<Vec<_>>(), ["r1-r2"]);
    // Both ends are down in the kernel.
    assert_eq!(oper(&name, "r1", "eth1"), "down");
    assert_eq!(oper(&name, "r2", "eth0"), "down");
    // r0 goes the other way round now, and still reaches r3.
    assert_eq!(via(&name, "r0", "10.6.2.2"), "10.6.5.1");
    ping(&name, "r0", "r3", R3);
    // The state is in the run directory for `vlsp status`.
    assert_eq!(vlsp::testbed::faults::load(&tb.run), st);
    let st = tb.fault(&link_up("r2-r1")).unwrap();
    assert!(st.is_empty());
    assert_eq!(oper(&name, "r1", "eth1"), "up");
    assert_eq!(via(&name, "r0", "10.6.2.2"), "10.6.0.2", "back via r1");
    substrate::udp_ping(
        &name,
        "r1",
        "r2",
        Ipv4Addr::new(10, 6, 1, 2),
        Duration::from_secs(3),
    )
    .unwrap();
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
}

#[test]
fn a_stopped_router_forwards_nothing_and_runs_no_node() {
    let _one_at_a_time = serial();
    if !require_root("a_stopped_router_forwards_nothing") {
        return;
    }
    let t = unique_topology("ring-6node.toml", "fn");
    let name = t.name.clone();
    let _g = Down(name.clone());
    let mut tb = Testbed::up(t, &Options::default()).unwrap();
    assert!(tb.nodes.iter().any(|n| n.name == "r1"));
    tb.fault(&Fault::NodeStop { node: "r1".into() }).unwrap();
    assert!(
        !tb.nodes.iter().any(|n| n.name == "r1"),
        "its NSIS node halted"
    );
    let ns = ns_name(&name, "r1");
    // It stopped alone (by default the six nodes share one thread, named
    // after the first): its GIST (UDP and Router Alert), MA and API sockets
    // are closed, its neighbours still answer.
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(
        threads.iter().any(|t| t == "nodes-r0"),
        "the ring's nodes do not share a thread: {threads:?}"
    );
    assert_eq!(
        ns_output(&ns, "ss -Hanu; ss -Hanw; ss -Hltn"),
        "",
        "r1's sockets"
    );
    assert!(tb.client("r1").is_err(), "r1's API socket still answers");
    for other in ["r0", "r2"] {
        let r = tb.client(other).unwrap().call(&Request::Health).unwrap();
        assert!(matches!(r, Reply::Health { .. }), "{other}: {r:?}");
    }
    // Forwarding is per interface (`vlsp up` never sets `ip_forward`).
    let fwd = "cat /proc/sys/net/ipv4/conf/eth0/forwarding /proc/sys/net/ipv4/conf/eth1/forwarding";
    assert_eq!(
        ns_output(&ns, fwd).split_whitespace().collect::<Vec<_>>(),
        ["0", "0"]
    );
    assert_eq!(oper(&name, "r1", "eth0"), "down");
    assert_eq!(oper(&name, "r1", "eth1"), "down");
    // r0 reaches r2 (its address towards r3) the long way round; r1 is
    // unreachable.
    assert_eq!(via(&name, "r0", "10.6.2.1"), "10.6.5.1");
    ping(&name, "r0", "r2", Ipv4Addr::new(10, 6, 2, 1));
    assert!(
        substrate::udp_ping(
            &name,
            "r0",
            "r1",
            Ipv4Addr::new(10, 6, 0, 2),
            Duration::from_millis(500)
        )
        .is_err()
    );
    tb.fault(&Fault::NodeStart { node: "r1".into() }).unwrap();
    assert!(
        tb.nodes.iter().any(|n| n.name == "r1"),
        "its node runs again"
    );
    tb.client("r1").unwrap();
    // Its sockets are open again in its namespace (GIST UDP and RAO, MA).
    assert_ne!(ns_output(&ns, "ss -Hanu"), "", "r1's GIST UDP socket");
    assert_ne!(ns_output(&ns, "ss -Hanw"), "", "r1's Router Alert socket");
    assert_ne!(ns_output(&ns, "ss -Hltn"), "", "r1's MA listener");
    assert_eq!(
        ns_output(&ns, fwd).split_whitespace().collect::<Vec<_>>(),
        ["1", "1"]
    );
    assert_eq!(via(&name, "r0", "10.6.2.1"), "10.6.0.2");
    ping(&name, "r0", "r1", Ipv4Addr::new(10, 6, 0, 2));
    tb.down().unwrap();
}

/// Pids of bird processes whose control socket is in `topo`'s run dir.
fn birds_of(topo: &str) -> Vec<i32> {
    let needle = format!("/run/vlsp/{topo}/");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c).replace('\0', " ");
                    c.contains("bird") && c.contains(&needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn ospf_routes_round_a_failed_link_and_down_stops_bird() {
    let _one_at_a_time = serial();
    if !require_root("ospf_routes_round_a_failed_link") {
        return;
    }
    if vlsp::kernel::bird::require_bird().is_err() {
        panic!("bird2 is not installed: apt-get install bird2 (.ci/install)");
    }
    let t = unique_topology("ring-6node-ospf.toml", "fo");
    let name = t.name.clone();
    let _g = Down(name.clone());
    let mut tb = Testbed::up(t, &Options::default()).unwrap();
    assert_eq!(birds_of(&name).len(), 6);
    let states = routing::router_states(&tb.topo, &tb.run);
    assert!(
        states
            .iter()
            .all(|s| s.full_neighbours == Some(2) && s.routes >= 4),
        "{states:?}"
    );
    // No static route of vlsp's: every remote subnet is bird's.
    let r0 = ns_output(&ns_name(&name, "r0"), "ip -4 route show proto static");
    assert!(r0.trim().is_empty(), "{r0}");
    let before = via(&name, "r0", "10.6.2.2");
    assert!(
        ["10.6.0.2", "10.6.5.1"].contains(&before.as_str()),
        "{before}"
    );
    // Fail the link on r0's way to r3's subnet; OSPF moves to the other side.
    let cut = if before == "10.6.0.2" {
        "r1-r2"
    } else {
        "r5-r4"
    };
    let st = tb.fault(&link_down(cut)).unwrap();
    let took = routing::wait_converged(
        &tb.topo,
        &st,
        &tb.run,
        &mut tb.birds,
        Duration::from_secs(30),
    )
    .unwrap();
    eprintln!("OSPF converged {took:?} after link-down {cut}");
    ping(&name, "r0", "r3", R3);
    let st = tb.fault(&link_up(cut)).unwrap();
    routing::wait_converged(
        &tb.topo,
        &st,
        &tb.run,
        &mut tb.birds,
        Duration::from_secs(30),
    )
    .unwrap();
    tb.down().unwrap();
    assert!(birds_of(&name).is_empty(), "bird left running");
    assert!(leftovers(&name).is_empty());
    let _ = FaultState::default();
}

#[test]
fn cli_faults_and_down_after_sigkill_leave_no_bird_namespace_or_link() {
    let _one_at_a_time = serial();
    if !require_root("cli_faults_and_down_after_sigkill") {
        return;
    }
    vlsp::kernel::bird::require_bird().expect("apt-get install bird2");
    let t = unique_topology("ring-6node-ospf.toml", "fk");
    let name = t.name.clone();
    let _g = Down(name.clone());
    let file = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(&file, t.to_toml()).unwrap();
    let exe = env!("CARGO_BIN_EXE_vlsp");
    let mut child = std::process::Command::new(exe)
        .args(["up", file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = std::path::Path::new("/run/vlsp").join(&name).join("ready");
    for _ in 0..1200 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready.exists(), "vlsp up did not come up");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(exe).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = run(&["fault", "--topology", &name, "link-down", "r2-r3"]);
    assert!(out.contains("links down [r2-r3]"), "{out}");
    assert_eq!(oper(&name, "r3", "eth0"), "down");
    let out = run(&["fault", "--topology", &name, "node-stop", "r4"]);
    assert!(out.contains("routers stopped [r4]"), "{out}");
    let status = run(&["status"]);
    assert!(
        status.contains("faults: links down [r2-r3], routers stopped [r4]"),
        "{status}"
    );
    assert!(status.contains("r0 ospf:"), "{status}");
    // A bad name is refused with the reason, and changes nothing.
    let o = std::process::Command::new(exe)
        .args(["fault", "--topology", &name, "link-down", "r0-r3"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no link r0-r3"));
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert_eq!(birds_of(&name).len(), 6, "bird outlives a killed vlsp up");
    std::fs::remove_file(&file).unwrap();
    run(&["down", &name]);
    assert!(
        birds_of(&name).is_empty(),
        "bird left: {:?}",
        birds_of(&name)
    );
    assert!(leftovers(&name).is_empty(), "left: {:?}", leftovers(&name));
    assert!(!std::path::Path::new("/run/vlsp").join(&name).exists());
}

// ------------------------------------------------- through `vlsp up`/`fault`

use std::time::Instant;
use vlsp::model::paths::{RunDir, TopoName};
use vlsp::node::api::{Client, Reply, Request};
use vlsp::proto::nslp::EventKind;
use vlsp::testbed::control;

const VM2: Ipv4Addr = Ipv4Addr::new(10, 60, 0, 2);

/// `vlsp up FILE` as a child process: the daemon `vlsp fault` talks to.
/// Dropped: killed, then `vlsp down` (what a user does after a crash).
struct Up {
    child: std::process::Child,
    name: String,
    file: std::path::PathBuf,
}

impl Up {
    /// A copy of `file` under a unique name, with R = 1 s (old branches
    /// cut off from the initiator expire within seconds) and `edit`.
    fn start(file: &str, tag: &str, edit: impl Fn(String) -> String) -> Up {
        let t = common::unique_topology_with(file, tag, |s| {
            edit(s.replacen("router_addrs = ", "refresh_ms = 1000\nrouter_addrs = ", 1))
        });
        let name = t.name.clone();
        let file = std::env::temp_dir().join(format!("{name}.toml"));
        std::fs::write(&file, t.to_toml()).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_vlsp"))
            .args(["up", file.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let up = Up { child, name, file };
        let ready = up.run().ready_file();
        let t0 = Instant::now();
        while !ready.exists() && t0.elapsed() < Duration::from_secs(90) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(ready.exists(), "vlsp up {} did not come up", up.name);
        up
    }

    fn run(&self) -> RunDir {
        RunDir::new(&TopoName::new(&self.name).unwrap())
    }

    fn vlsp(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_vlsp"))
            .args(args)
            .output()
            .unwrap()
    }

    /// `vlsp fault --topology NAME ARGS`, which must succeed.
    fn fault(&self, args: &[&str]) -> String {
        let mut all = vec!["fault", "--topology", &self.name];
        all.extend_from_slice(args);
        let o = self.vlsp(&all);
        assert!(
            o.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn client(&self, node: &str) -> Client {
        Client::connect(&self.run().api_socket(node), Duration::from_secs(30)).unwrap()
    }

    fn reserved(&self) -> Vec<(&'static str, usize)> {
        ring_reserved(&self.name)
    }

    /// Waits until the reservation classes are `want` (router, count)
    /// (routers not named: any); how long that took.
    fn wait_reserved(&self, want: &[(&str, usize)], limit: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            let now = self.reserved();
            if want
                .iter()
                .all(|w| now.iter().any(|n| n.0 == w.0 && n.1 == w.1))
            {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < limit,
                "classes {now:?}, want {want:?} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn frames_cross(&self, limit: Duration) -> Duration {
        frames_cross(&self.name, limit)
    }

    /// Waits until the classes are `want` (true) or none is left anywhere
    /// (false: the link was lost, and nothing leaked); anything else
    /// after `limit` fails.
    fn settles_on(&self, want: &[(&str, usize)], limit: Duration) -> bool {
        let t0 = Instant::now();
        loop {
            let now = self.reserved();
            if want
                .iter()
                .all(|w| now.iter().any(|n| n.0 == w.0 && n.1 == w.1))
            {
                return true;
            }
            if now.iter().all(|n| n.1 == 0) {
                return false;
            }
            assert!(
                t0.elapsed() < limit,
                "classes {now:?}, want {want:?} or none within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Probes VM1 -> VM2 on a thread from now on: joined, how long after
    /// now the first echo came back.
    fn probe_frames(&self, limit: Duration) -> std::thread::JoinHandle<Duration> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            std::panic::catch_unwind(|| frames_cross(&name, limit)).unwrap_or(Duration::MAX)
        })
    }

    fn healthy(&self, node: &str) -> Duration {
        let t0 = Instant::now();
        let mut c = Client::connect(&self.run().api_socket(node), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{node}: {e}"));
        let r = c.call(&Request::Health).unwrap();
        assert!(matches!(r, Reply::Health { .. }), "{node}: {r:?}");
        t0.elapsed()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.vlsp(&["down", &self.name]);
        let _ = std::fs::remove_file(&self.file);
        let _ = substrate::down(&self.name);
    }
}

/// VM1 -> VM2 over the virtual link, retried until `limit`; how long until
/// the first echo came back.
fn frames_cross(name: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        match substrate::udp_ping(name, "VM1", "VM2", VM2, Duration::from_millis(300)) {
            Ok(_) => return t0.elapsed(),
            Err(e) if t0.elapsed() > limit => {
                panic!("VM1 -> VM2 carries nothing for {limit:?}: {e:#}")
            }
            Err(_) => {}
        }
    }
}

/// What carries the virtual link, printed when it carries nothing: the
/// tunnel ends' devices, bridges, forwarding entries and routes, the
/// routers' links, and whether r0's tunnel end reaches r3's.
fn vlink_state(name: &str) -> String {
    let mut s = String::new();
    for r in ["r0", "r3"] {
        let cmd = "ip -d -br link; bridge fdb show | grep -v permanent; ip -4 route; \
                   tc -s class show | grep -A2 'class htb 1:[0-9a-f]* ' | head -40";
        s += &format!("--- {r}\n{}", ns_output(&ns_name(name, r), cmd));
    }
    for r in RING {
        let cmd =
            "ip -br link | grep -v lo; ip -4 route get 10.255.0.4; ip -4 route get 10.255.0.1";
        s += &format!("--- {r}\n{}", ns_output(&ns_name(name, r), cmd));
    }
    let lo = substrate::udp_ping(
        name,
        "r0",
        "r3",
        Ipv4Addr::new(10, 255, 0, 4),
        Duration::from_secs(1),
    );
    s += &format!("r0 -> r3 tunnel end: {lo:?}\n");
    s
}

/// Every router's counters (printed when a repair fails).
fn counters(up: &Up) -> String {
    RING.iter()
        .map(|r| format!("{r}: {:?}\n", up.client(r).call(&Request::Stats).unwrap()))
        .collect()
}

fn setup(up: &Up) -> u64 {
    let r = up
        .client("r0")
        .call(&common::setup_request("VM1", "VM2", 5_000_000))
        .unwrap();
    let Reply::LinkUp { vlink } = r else {
        panic!("setup failed: {r:?}")
    };
    vlink.vlink_id
}

/// The way round the ring r0 -> r3 goes: r1's side or r5's.
const VIA_R1: [(&str, usize); 5] = [("r0", 1), ("r1", 1), ("r2", 1), ("r4", 0), ("r5", 0)];
const VIA_R5: [(&str, usize); 5] = [("r0", 1), ("r1", 0), ("r2", 0), ("r4", 1), ("r5", 1)];

#[test]
fn cli_faults_move_the_reservation_and_the_virtual_link_keeps_carrying() {
    let _one_at_a_time = serial();
    if !require_root("cli_faults_move_the_reservation") {
        return;
    }
    let up = Up::start("ring-6node.toml", "fc", |s| s);
    let name = up.name.clone();
    let ev = subscribe(up.client("r0"));
    let vlink_id = setup(&up);
    up.wait_reserved(&VIA_R1, Duration::from_secs(2));
    up.frames_cross(Duration::from_secs(3));
    // The tunnel ends are the routers' own addresses, on lo.
    let lo = ns_output(&ns_name(&name, "r0"), "ip -4 addr show dev lo");
    assert!(lo.contains("10.255.0.1/32"), "{lo}");
    let mut seen = vec![];

    // link-down on the path: the reservation moves to r5's side.
    let t0 = Instant::now();
    up.fault(&["link-down", "r1-r2"]);
    let probe = up.probe_frames(Duration::from_secs(5));
    let (tc, changed) = wait_for(
        &ev,
        EventKind::PathChanged,
        Duration::from_secs(5),
        &mut seen,
    );
    let (tr, _) = wait_for(&ev, EventKind::Repaired, Duration::from_secs(5), &mut seen);
    let frames = probe.join().unwrap();
    eprintln!(
        "link-down r1-r2: path_changed {:?}, repaired {:?}, frames {:?} after the fault applied ({:?} after asking)",
        tc - t0,
        tr - t0,
        frames,
        t0.elapsed()
    );
    assert_eq!(changed.vlink_id, Some(vlink_id));
    assert!(changed.message.contains("10.6.5.1"), "{}", changed.message);
    up.wait_reserved(&VIA_R5, Duration::from_secs(5));
    assert!(
        seen.iter().all(|e| e.kind != EventKind::LinkLost),
        "{seen:?}"
    );

    // link-up: the static routes come back and the reservation with them;
    // nothing stays on r5's side.
    up.fault(&["link-up", "r1-r2"]);
    assert_eq!(via(&name, "r0", "10.255.0.4"), "10.6.0.2");
    // Issue 15: this repair back lost the link, r3 (where the paths
    // merge) refusing a branch's Data with "No Routing State" (fixed in
    // GIST: the merge point keeps the old peer's state until it expires)
    // and then refusing the initiator's RESERVE as a replay: a tear of a
    // branch the path had left ended r3's session, and the next RESERVE,
    // signed in the same second, was not newer by whole seconds (fixed:
    // the replay cache orders START_TIMEs with their fraction).
    std::thread::sleep(Duration::from_secs(4));
    let held = up.settles_on(&VIA_R1, Duration::from_secs(8));
    seen.extend(ev.try_iter().map(|(_, e)| e));
    assert!(
        held,
        "link lost after the repair back onto r1's side: {seen:?}\n{}",
        counters(&up)
    );
    up.wait_reserved(&VIA_R1, Duration::from_secs(1));
    up.frames_cross(Duration::from_secs(5));

    // node-stop of a transit router: the reservation moves and the virtual
    // link carries frames (its ends do not use r1's links' addresses).
    let t0 = Instant::now();
    let out = up.fault(&["node-stop", "r1"]);
    assert!(out.contains("routers stopped [r1]"), "{out}");
    let probe = up.probe_frames(Duration::from_secs(5));
    let before = seen.len();
    let (tr, _) = wait_for(&ev, EventKind::Repaired, Duration::from_secs(5), &mut seen);
    eprintln!(
        "node-stop r1: events before the repair {:?}",
        &seen[before..]
    );
    let frames = probe.join().unwrap();
    assert!(frames < Duration::MAX, "no frames after node-stop r1");
    eprintln!(
        "node-stop r1: repaired {:?} after asking, frames {frames:?} after the stop applied",
        tr - t0
    );
    // r2, cut off from r0, lets its branch expire (3 refresh periods).
    up.wait_reserved(
        &[("r0", 1), ("r2", 0), ("r4", 1), ("r5", 1)],
        Duration::from_secs(8),
    );
    assert!(
        seen.iter().all(|e| e.kind != EventKind::LinkLost),
        "{seen:?}"
    );

    // node-start: r1 runs again, routes and reservation return.
    up.fault(&["node-start", "r1"]);
    up.healthy("r1");
    assert_eq!(via(&name, "r0", "10.255.0.4"), "10.6.0.2");
    std::thread::sleep(Duration::from_secs(4));
    let held = up.settles_on(&VIA_R1, Duration::from_secs(8));
    seen.extend(ev.try_iter().map(|(_, e)| e));
    assert!(
        held,
        "link lost after node-start r1: {seen:?}\n{}",
        counters(&up)
    );
    up.wait_reserved(&VIA_R1, Duration::from_secs(1));
    up.frames_cross(Duration::from_secs(5));

    // Route flaps: 50 down/up cycles of the path's link as fast as the
    // daemon applies them; the nodes stay responsive throughout.
    let run = up.run();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        let sock = run.api_socket("r0");
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let mut c = Client::connect(&sock, Duration::from_secs(5)).unwrap();
                let r = c.call(&Request::Health).unwrap();
                assert!(matches!(r, Reply::Health { .. }), "{r:?}");
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(50));
            }
            worst
        })
    };
    let t0 = Instant::now();
    for _ in 0..50 {
        control::send(&run, &link_down("r1-r2")).unwrap();
        control::send(&run, &link_up("r1-r2")).unwrap();
    }
    let flaps = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let worst = prober.join().unwrap();
    eprintln!("50 flaps in {flaps:?}; slowest health answer at r0 {worst:?}");
    assert!(worst < Duration::from_secs(2), "{worst:?}");
    for r in RING {
        up.healthy(r);
    }
    // Settled: one class per hop of r1's side and none elsewhere, and the
    // link carries frames.
    std::thread::sleep(Duration::from_secs(4));
    let held = up.settles_on(&VIA_R1, Duration::from_secs(10));
    seen.extend(ev.try_iter().map(|(_, e)| e));
    let total: usize = up.reserved().iter().map(|r| r.1).sum();
    assert!(
        held && total == 3,
        "link lost during the flaps: classes {:?}; {seen:?}\n{}",
        up.reserved(),
        counters(&up)
    );
    let f = up.probe_frames(Duration::from_secs(5)).join().unwrap();
    eprintln!("after the flaps: frames {f:?}");
    assert!(
        f < Duration::MAX,
        "classes held after the flaps but no frames (the case seen at stop 14 whose cause is \
         still unknown: please report this output): {}\n{}",
        vlink_state(&name),
        counters(&up)
    );

    // Hostile requests on the control socket: refused with the name at
    // fault, nothing changed, the daemon still serving.
    for (f, said) in [
        (link_down("../x"), "../x"),
        (link_down("r0-r3"), "no link r0-r3"),
        (link_down("r2-r2"), "r2-r2"),
        (link_up("nosuch-r1"), "nosuch-r1"),
        (
            Fault::NodeStop {
                node: "../../etc".into(),
            },
            "no router \"../../etc\"",
        ),
        (Fault::NodeStart { node: "".into() }, "no router \"\""),
    ] {
        let e = control::send(&run, &f).unwrap_err().to_string();
        assert!(e.contains(said), "{f}: {e}");
    }
    let st = control::send(&run, &link_down("r4-r5")).unwrap();
    assert_eq!(st.links_down.iter().collect::<Vec<_>>(), ["r4-r5"]);
    control::send(&run, &link_up("r4-r5")).unwrap();
    for r in RING {
        up.healthy(r);
    }

    let o = up.vlsp(&["down", &name]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(leftovers(&name).is_empty(), "{:?}", leftovers(&name));
    assert!(!run.path().exists());
}

#[test]
fn cli_admission_failure_on_the_new_path_is_repair_failed_and_frees_it() {
    let _one_at_a_time = serial();
    if !require_root("cli_admission_failure_on_the_new_path") {
        return;
    }
    // r5's link to r4 has room for 1 Mbit/s only.
    let up = Up::start("ring-6node.toml", "fa", |s| {
        s.replacen(
            "b = \"r5:10.6.4.2/24\"\ncapacity = \"100mbit\"",
            "b = \"r5:10.6.4.2/24\"\ncapacity = \"1mbit\"",
            1,
        )
    });
    let ev = subscribe(up.client("r0"));
    setup(&up);
    up.wait_reserved(&VIA_R1, Duration::from_secs(2));
    let t0 = Instant::now();
    up.fault(&["link-down", "r1-r2"]);
    let mut seen = vec![];
    let (tf, failed) = wait_for(
        &ev,
        EventKind::RepairFailed,
        Duration::from_secs(5),
        &mut seen,
    );
    eprintln!("repair_failed after {:?}: {}", tf - t0, failed.message);
    assert!(failed.message.contains("r5"), "{}", failed.message);
    // Nothing stays on the failed branch, nor anywhere after expiry.
    up.wait_reserved(&[("r0", 0), ("r5", 0), ("r4", 0)], Duration::from_secs(2));
    up.wait_reserved(&RING.map(|r| (r, 0)), Duration::from_secs(8));
    match up.client("r0").call(&Request::List).unwrap() {
        Reply::Links { links } => assert!(links.is_empty(), "{links:?}"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn cli_ospf_link_down_moves_the_reservation_and_kill_9_leaves_nothing() {
    let _one_at_a_time = serial();
    if !require_root("cli_ospf_link_down_moves_the_reservation") {
        return;
    }
    vlsp::kernel::bird::require_bird().expect("apt-get install bird2");
    let mut up = Up::start("ring-6node-ospf.toml", "fp", |s| s);
    let name = up.name.clone();
    let ev = subscribe(up.client("r0"));
    setup(&up);
    up.frames_cross(Duration::from_secs(3));
    // bird originates a router's LSA at most once per MinLSInterval (5 s,
    // RFC 2328): a fault within 5 s of the adjacencies coming up has its
    // LSA postponed, OSPF then took 4.7 s to move r0's route, longer than
    // the reservation's lifetime at R = 1 s (r1 answering "no route" all
    // along), and the link was lost. Wait it out, as fault-recovery does.
    std::thread::sleep(Duration::from_secs(5));
    // OSPF picks either way round (equal costs): fail a link on the way
    // the reservation took.
    let (cut, after) = if up.reserved()[1].1 == 1 {
        ("r1-r2", VIA_R5)
    } else {
        ("r5-r4", VIA_R1)
    };
    let t0 = Instant::now();
    up.fault(&["link-down", cut]);
    let probe = up.probe_frames(Duration::from_secs(15));
    let mut seen = vec![];
    let end = Instant::now() + Duration::from_secs(15);
    let mut outcome = None;
    while let Ok((at, e)) = ev.recv_timeout(end.saturating_duration_since(Instant::now())) {
        if matches!(e.kind, EventKind::Repaired | EventKind::LinkLost) {
            outcome = Some((at, e));
            break;
        }
        seen.push(e);
    }
    let (tr, e) = outcome.expect("neither repaired nor link_lost within 15 s");
    // While OSPF converges a QNE may find no next peer and NOTIFY "path
    // truncated": transient under OSPF, the link is kept until r0's routes
    // move it.
    let frames = probe.join().unwrap();
    assert_eq!(
        e.kind,
        EventKind::Repaired,
        "ospf: {}; before: {seen:?}",
        e.message
    );
    eprintln!(
        "ospf link-down {cut}: repaired {:?} after asking, frames {frames:?} after the fault applied",
        tr - t0
    );
    assert!(frames < Duration::MAX, "no frames after the ospf repair");
    // The new side holds over refreshes.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        up.settles_on(&after, Duration::from_secs(8)),
        "ospf: link lost after the repair; events {seen:?}"
    );
    up.wait_reserved(&after, Duration::from_secs(1));
    assert_eq!(birds_of(&name).len(), 6);
    // The daemon dies without cleanup; `vlsp down` still removes it all.
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    let o = up.vlsp(&["down", &name]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        birds_of(&name).is_empty(),
        "bird left: {:?}",
        birds_of(&name)
    );
    assert!(leftovers(&name).is_empty(), "{:?}", leftovers(&name));
}
