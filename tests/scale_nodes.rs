//! Root test of node groups: a chain of 200 routers whose NSIS nodes run in
//! three `vlsp node-group` processes. Every node answers `health` on its
//! own API socket, a signed link set up across routers of two groups
//! carries a ping, and after one group is killed with -9 and the testbed
//! is abandoned (as a killed `vlsp up` leaves it), `vlsp down` leaves no
//! process, namespace or link behind.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};
use vlsp::kernel::substrate;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

const ROUTERS: usize = 200;
/// VM1 and VM2's hosts: 61 routers apart, in groups 0 and 1 (of 67 each).
const FROM: usize = 30;
const TO: usize = 90;

fn gone_or_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z ")
}

#[test]
fn a_200_router_chain_in_three_node_groups_carries_a_link_and_goes_down_clean() {
    if !require_root("scale_nodes") {
        return;
    }
    let name = format!("tg{}", std::process::id() % 100_000);
    let text = vlsp::topology::chain(&name, ROUTERS, 3)
        .unwrap()
        .replace("host = \"r0\"", &format!("host = \"r{FROM}\""))
        .replace(
            &format!("host = \"r{}\"", ROUTERS - 1),
            &format!("host = \"r{TO}\""),
        );
    let t = vlsp::topology::Topology::parse(&text, Path::new("scale.toml")).unwrap();
    let _guard = Down(name.clone());
    let opts = Options {
        groups: 3,
        node_exe: Some(env!("CARGO_BIN_EXE_vlsp").into()),
        ..Options::default()
    };
    let t0 = Instant::now();
    let tb = Testbed::up(t, &opts).unwrap();
    eprintln!("{ROUTERS} routers up in {:?}", t0.elapsed());
    assert!(tb.nodes.is_empty() && tb.procs.is_empty());
    let sizes: Vec<usize> = tb.groups.iter().map(|g| g.names.len()).collect();
    assert_eq!(sizes, [67, 67, 66]);
    // Every node is up in its group, on its own API socket.
    for i in 0..ROUTERS {
        let node = format!("r{i}");
        let mut c = tb.client(&node).unwrap();
        match c.call(&Request::Health).unwrap() {
            Reply::Health { health } => {
                assert_eq!(health.node, node);
                assert!(health.problems().is_empty(), "{node}: {health:?}");
            }
            other => panic!("{node}: {other:?}"),
        }
    }
    let rss = tb.node_rss_kib();
    assert_eq!(rss.len(), 3, "{rss:?}");
    eprintln!("node group RSS (KiB): {rss:?}");
    // A signed link from group 0 to group 1 carries frames.
    let mut c = tb.client(&format!("r{FROM}")).unwrap();
    let reply = c.call(&setup_request("VM1", "VM2", 1_000_000)).unwrap();
    assert!(matches!(reply, Reply::LinkUp { .. }), "{reply:?}");
    let vm2 = Ipv4Addr::new(192, 168, 100, 2);
    substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(3)).unwrap();
    // Group 1 dies hard; the testbed process "dies" too (nothing of it
    // runs its cleanup): `vlsp down` has only the journals.
    let pids: Vec<u32> = tb.groups.iter().map(|g| g.pid()).collect();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[1] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::mem::forget(tb);
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(["down", &name])
        .status()
        .unwrap();
    assert!(st.success());
    let t1 = Instant::now();
    while !pids.iter().all(|p| gone_or_zombie(*p)) && t1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in &pids {
        assert!(gone_or_zombie(*p), "node group pid {p} still runs");
    }
    assert!(leftovers(&name).is_empty(), "{:?}", leftovers(&name));
    // No veth of the chain is left in this namespace either.
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&name), "{links}");
    assert!(!Path::new("/run/vlsp").join(&name).exists());
    // Reap the killed children (this process is their parent).
    for p in pids {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p as i32), None);
    }
}

/// `vlsp node-group` refuses a bad list of routers before it starts
/// anything: the error names the file (and the line), no ready file.
#[test]
fn node_group_refuses_a_bad_node_list_naming_file_and_line() {
    if !require_root("node_group_refuses_a_bad_node_list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vlsp-ng-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let topo = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
    let ready = dir.join("ready");
    let cases: [(&str, Option<&[u8]>, &str); 6] = [
        ("missing", None, "cannot read the node list"),
        ("empty", Some(b"\n   \n"), "no router named"),
        (
            "binary",
            Some(b"tb1\n\xff\xfe\x00\n"),
            "cannot read the node list",
        ),
        (
            "garbage",
            Some(b"tb1\n{ not a name }\n"),
            "line 2: \"{ not a name }\" is not a router",
        ),
        (
            "unknown",
            Some(b"tb1\ntb9\n"),
            "line 2: \"tb9\" is not a router",
        ),
        (
            "twice",
            Some(b"tb1\ntb2\n tb1\n"),
            "line 3: tb1 is listed twice (first on line 1)",
        ),
    ];
    for (name, body, want) in cases {
        let file = dir.join(name);
        if let Some(b) = body {
            std::fs::write(&file, b).unwrap();
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vlsp"))
            .arg("node-group")
            .arg("--topology")
            .arg(&topo)
            .arg("--nodes")
            .arg(&file)
            .arg("--ready-file")
            .arg(&ready)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(err.contains(&file.display().to_string()), "{name}: {err}");
        assert!(err.contains(want), "{name}: want {want:?} in {err}");
        assert!(!ready.exists(), "{name}: a ready file was written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
