//! Root test of `vlsp node`: the paper's four routers, each node its own
//! process started with `ip netns exec` in the router's namespace (one from
//! a node config file with its key in the environment), a signed virtual
//! link set up through the initiator's API socket, frames across it, and
//! SIGTERM tearing it down before the processes exit.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vlsp::kernel::substrate;
use vlsp::node::api::{Client, Reply, Request};

/// Kills (SIGKILL) every node process still running when dropped, so a
/// failing test leaves no process behind.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sigterm(c: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

fn wait_exit(name: &str, c: &mut Child, within: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st;
        }
        assert!(
            t0.elapsed() < within,
            "{name} did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn vxlans(topo: &str, node: &str) -> Vec<String> {
    tunnel_ends_in(&substrate::ns_name(topo, node))
}

fn log_of(dir: &Path, n: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default()
}

/// `vlsp node health --api SOCK`, as a readiness probe runs it.
fn health(bin: &str, sock: &Path) -> std::process::Output {
    Command::new(bin)
        .args(["node", "health", "--api"])
        .arg(sock)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn four_node_processes_set_up_a_signed_link_and_tear_it_down_on_sigterm() {
    if !require_root("node_process") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "p");
    let topo = t.name.clone();
    let _guard = Down(topo.clone());
    let dir = PathBuf::from(format!("/tmp/vlsp-node-process-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let topo_file = dir.join("topology.toml");
    std::fs::write(&topo_file, t.to_toml()).unwrap();
    substrate::up(&t).await.unwrap();

    let bin = env!("CARGO_BIN_EXE_vlsp");
    // tb4 runs from its own config file, its key in the environment.
    let printed = Command::new(bin)
        .args(["node", "--print-config", "--name", "tb4", "--topology"])
        .arg(&topo_file)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let tb4_conf = dir.join("tb4.toml");
    std::fs::write(&tb4_conf, &printed.stdout).unwrap();
    let kit = t.provider("kit").unwrap();
    assert!(
        !String::from_utf8_lossy(&printed.stdout)
            .contains(&String::from_utf8_lossy(&kit.key).to_string()),
        "the printed config holds no key"
    );
    let hex: String = kit.key.iter().map(|b| format!("{b:02x}")).collect();

    let mut procs = Procs(vec![]);
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &substrate::ns_name(&topo, n), bin, "node"]);
        if n == "tb4" {
            cmd.arg("--config").arg(&tb4_conf);
            cmd.env("VLSP_KEY_KIT", format!("hex:{hex}"));
        } else {
            cmd.arg("--topology").arg(&topo_file).args(["--name", n]);
        }
        cmd.arg("--api")
            .arg(dir.join(format!("{n}.sock")))
            .arg("--ready-file")
            .arg(dir.join(format!("{n}.ready")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{n}.log"))).unwrap());
        procs.0.push((n.to_string(), cmd.spawn().unwrap()));
    }
    let t0 = Instant::now();
    for (n, c) in &mut procs.0 {
        while !dir.join(format!("{n}.ready")).exists() {
            if let Some(st) = c.try_wait().unwrap() {
                panic!("{n} exited ({st}):\n{}", log_of(&dir, n));
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{n} not ready:\n{}",
                log_of(&dir, n)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // The readiness probe: healthy while it runs, naming its sockets.
    let probe = health(bin, &dir.join("tb3.sock"));
    assert!(probe.status.success(), "{probe:?}");
    let said = String::from_utf8_lossy(&probe.stdout);
    assert!(
        said.contains("node=tb3 healthy") && said.contains("gist_udp=0.0.0.0:270"),
        "{said}"
    );
    assert!(said.contains("links=0"), "{said}");

    let mut c = Client::connect(&dir.join("tb1.sock"), Duration::from_secs(30)).unwrap();
    let reply = c.call(&setup_request("VM1", "VM2", 10_000_000)).unwrap();
    let Reply::LinkUp { vlink } = reply else {
        panic!("{reply:?}\ntb1:\n{}", log_of(&dir, "tb1"))
    };
    let Reply::Health { health: h } = c.call(&Request::Health).unwrap() else {
        panic!("no health reply")
    };
    assert_eq!((h.node.as_str(), h.links, h.sessions), ("tb1", 1, 1));
    assert!(h.router_alert && h.ma_listener.is_some() && h.problems().is_empty());
    drop(c);
    assert!(
        !vxlans(&topo, "tb4").is_empty(),
        "the responder's tunnel end exists"
    );
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);
    let rtt = substrate::udp_ping(&topo, "VM1", "VM2", vm2, Duration::from_secs(3)).unwrap();
    eprintln!("VM1 -> VM2 across node processes: {rtt:?}");

    // SIGTERM the initiator: it sends TEAR before it exits, so the
    // responder's tunnel end goes long before any lifetime (90 s) ends.
    let (_, tb1) = &mut procs.0[0];
    sigterm(tb1);
    let st = wait_exit("tb1", tb1, Duration::from_secs(10));
    assert!(st.success(), "tb1: {st}\n{}", log_of(&dir, "tb1"));
    let t1 = Instant::now();
    while !vxlans(&topo, "tb4").is_empty() {
        assert!(
            t1.elapsed() < Duration::from_secs(5),
            "tb4 still holds the tunnel of vlink {} after tb1's TEAR:\n{}",
            vlink.vlink_id,
            log_of(&dir, "tb4")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Gone: the probe fails and says which socket it asked.
    let probe = health(bin, &dir.join("tb1.sock"));
    assert!(!probe.status.success(), "{probe:?}");
    let err = String::from_utf8_lossy(&probe.stderr);
    assert!(err.contains("tb1.sock"), "{err}");
    let log1 = log_of(&dir, "tb1");
    assert!(
        log1.contains("node=tb1 event=ready") && log1.contains("event=stopped"),
        "{log1}"
    );
    assert!(!log1.contains('\u{1b}'), "no colours in logs: {log1}");

    for (n, c) in procs.0.iter_mut().skip(1) {
        sigterm(c);
        let st = wait_exit(n, c, Duration::from_secs(10));
        assert!(st.success(), "{n}: {st}\n{}", log_of(&dir, n));
        assert!(!dir.join(format!("{n}.ready")).exists());
        assert!(!dir.join(format!("{n}.sock")).exists());
    }
    procs.0.clear();
    substrate::down(&topo).unwrap();
    assert!(leftovers(&topo).is_empty(), "{:?}", leftovers(&topo));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `vlsp up --process-per-node`: the testbed's nodes as `vlsp node`
/// children; the journal of their pids lets a later `down` kill them all
/// (here: after one was already killed with -9), and nothing is left.
#[test]
fn process_per_node_testbed_carries_a_link_and_its_journal_kills_every_node() {
    if !require_root("process_per_node") {
        return;
    }
    use vlsp::testbed::{Options, Testbed, procs};
    let t = unique_topology("paper-4node.toml", "q");
    let topo = t.name.clone();
    let _guard = Down(topo.clone());
    let opts = Options {
        process_per_node: true,
        node_exe: Some(env!("CARGO_BIN_EXE_vlsp").into()),
        points: 256,
        ..Options::default()
    };
    let tb = Testbed::up(t, &opts).unwrap();
    assert!(tb.nodes.is_empty());
    assert_eq!(tb.procs.len(), 4);
    let mut c = tb.client("tb1").unwrap();
    let reply = c.call(&setup_request("VM1", "VM2", 10_000_000)).unwrap();
    let Reply::LinkUp { vlink } = reply else {
        panic!("{reply:?}")
    };
    // The node processes hand their measurement points over (Table I in
    // process mode): every router marked the session.
    let sid = vlink.sid().unwrap();
    let points = tb.drain_points().unwrap();
    for n in ["tb1", "tb2", "tb3", "tb4"] {
        assert!(
            points.iter().any(|p| &*p.node == n && p.sid == sid),
            "no point of {n} for the link: {points:?}"
        );
    }
    assert!(tb.drain_points().unwrap().iter().all(|p| p.sid != sid));
    let rss = tb.node_rss_kib();
    assert_eq!(rss.len(), 4, "{rss:?}");
    assert!(rss.iter().all(|(_, kib)| *kib > 1000), "{rss:?}");
    eprintln!("vlsp node RSS (KiB): {rss:?}");
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);
    substrate::udp_ping(&topo, "VM1", "VM2", vm2, Duration::from_secs(3)).unwrap();
    // A middle router's process dies hard; the journal still names the rest.
    let tb2 = nix::unistd::Pid::from_raw(tb.procs[1].pid() as i32);
    nix::sys::signal::kill(tb2, nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pids: Vec<u32> = tb.procs.iter().map(|p| p.pid()).collect();
    assert_eq!(procs::kill_journaled(&tb.run), 3);
    std::thread::sleep(Duration::from_millis(200));
    for p in pids {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // Gone, or a zombie until the testbed reaps it.
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "{p} still runs: {stat}"
        );
    }
    tb.down().unwrap();
    assert!(leftovers(&topo).is_empty(), "{:?}", leftovers(&topo));
}
