//! Root integration tests of the substrate: namespaces, veth links,
//! addresses, routes, and cleanup (also after a crash).

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::kernel::substrate;

#[tokio::test(flavor = "current_thread")]
async fn paper_4node_up_ping_down() {
    if !require_root("paper_4node_up_ping_down") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "s");
    let _guard = Down(t.name.clone());
    let host_v6 = |which: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6")).ok()
    };
    let host_before = (host_v6("all"), host_v6("default"));
    let timings = substrate::up(&t).await.unwrap();
    eprintln!("up {}:\n{timings}", t.name);
    // Every router and virtual node has its namespace.
    assert_eq!(leftovers(&t.name).len(), 6);
    // tb1 reaches tb4's far address through tb2 and tb3 (routes, forwarding).
    let rtt = substrate::udp_ping(
        &t.name,
        "tb1",
        "tb4",
        Ipv4Addr::new(172, 3, 4, 4),
        Duration::from_secs(2),
    )
    .unwrap();
    eprintln!("tb1 -> tb4 UDP round trip {rtt:?}");
    // And back the other way.
    substrate::udp_ping(
        &t.name,
        "tb4",
        "tb1",
        Ipv4Addr::new(172, 1, 2, 1),
        Duration::from_secs(2),
    )
    .unwrap();
    // IPv6 is off in every namespace (no address on any device, new
    // devices included): the testbed is IPv4-only and IPv6 made each
    // tunnel end's creation dearer under the RTNL lock.
    for node in ["tb1", "VM1"] {
        let ns = substrate::ns_name(&t.name, node);
        let v6 = ns_output(
            &ns,
            "ip -6 addr; cat /proc/sys/net/ipv6/conf/default/disable_ipv6",
        );
        assert_eq!(v6.trim(), "1", "{node}: {v6}");
    }
    // Switched off through a proc instance of the namespace's own, never
    // in the namespace `up` was called from.
    assert_eq!(
        (host_v6("all"), host_v6("default")),
        host_before,
        "switching IPv6 off in the testbed's namespaces changed the host's own"
    );
    // The routers hosting virtual nodes keep the VXLAN socket open with a
    // device that carries nothing (VNI 0, no remote, in no bridge), and
    // their bridges do no multicast snooping (both: cheaper tunnel ends).
    for node in ["tb1", "tb4"] {
        let ns = substrate::ns_name(&t.name, node);
        let keeper = ns_output(&ns, "ip -d link show vxkeep");
        assert!(
            keeper.contains("state UNKNOWN") || keeper.contains(",UP"),
            "{node}: {keeper}"
        );
        assert!(
            keeper.contains("vxlan id 0 ") && keeper.contains("dstport 4789"),
            "{keeper}"
        );
        assert!(
            !keeper.contains("master") && !keeper.contains("remote"),
            "{keeper}"
        );
        let br = ns_output(&ns, "ip -d link show type bridge");
        assert!(br.contains("mcast_snooping 0"), "{node}: {br}");
    }
    let tb2 = ns_output(
        &substrate::ns_name(&t.name, "tb2"),
        "ip link show type vxlan",
    );
    assert!(tb2.trim().is_empty(), "tb2 hosts no virtual node: {tb2}");
    // VM1 reaches its host's bridge side: it is attached.
    let st = substrate::status();
    assert!(
        st.iter()
            .any(|s| s.topology == t.name && s.namespaces.iter().all(|n| n.1))
    );
    let d = substrate::down(&t.name).unwrap();
    eprintln!("down:\n{d}");
    assert!(
        leftovers(&t.name).is_empty(),
        "left: {:?}",
        leftovers(&t.name)
    );
    assert!(!substrate::journal_path(&t.name).unwrap().exists());
}

#[tokio::test(flavor = "current_thread")]
async fn second_up_of_same_topology_is_refused_and_rolls_back_nothing_of_the_first() {
    if !require_root("second_up_refused") {
        return;
    }
    let t = unique_topology("plain-router.toml", "c");
    let _guard = Down(t.name.clone());
    substrate::up(&t).await.unwrap();
    let err = substrate::up(&t).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("already exists") && msg.contains("vlsp down"),
        "{msg}"
    );
    substrate::down(&t.name).unwrap();
    assert!(leftovers(&t.name).is_empty());
}

/// `vlsp up` killed with SIGKILL leaves its namespaces; `vlsp down NAME`
/// removes all of them from the journal, without the topology file.
#[test]
fn down_after_sigkill_leaves_nothing() {
    if !require_root("down_after_sigkill") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "x");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let src = std::fs::read_to_string(&t.source).unwrap().replacen(
        "name = \"paper-4node\"",
        &format!("name = \"{name}\""),
        1,
    );
    let file = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(&file, src).unwrap();
    let exe = env!("CARGO_BIN_EXE_vlsp");
    let mut child = std::process::Command::new(exe)
        .args(["up", file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = std::path::Path::new("/run/vlsp").join(&name).join("ready");
    for _ in 0..200 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(ready.exists(), "vlsp up did not come up");
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert_eq!(
        leftovers(&name).len(),
        6,
        "the crash left the namespaces behind"
    );
    std::fs::remove_file(&file).unwrap(); // the topology file is gone too
    let st = std::process::Command::new(exe)
        .args(["down", &name])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(leftovers(&name).is_empty(), "left: {:?}", leftovers(&name));
}

#[test]
fn root_guard_fails_under_ci_and_skips_otherwise() {
    assert_eq!(root_guard("t", true, Some("true")), RootGuard::Run);
    assert_eq!(root_guard("t", true, None), RootGuard::Run);
    assert!(
        matches!(root_guard("t", false, Some("true")), RootGuard::Fail(m) if m.contains("t needs root"))
    );
    assert!(matches!(
        root_guard("t", false, Some("1")),
        RootGuard::Fail(_)
    ));
    assert!(matches!(
        root_guard("t", false, Some("")),
        RootGuard::Skip(_)
    ));
    assert!(matches!(root_guard("t", false, None), RootGuard::Skip(_)));
}

/// Run by [`root_guard_panics_for_nobody_under_ci`] in a child process.
#[test]
fn guard_child() {
    if std::env::var_os("VLSP_GUARD_CHILD").is_some() {
        require_root("guard_child");
    }
}

/// The real guard, in a child process dropped to `nobody` with CI set,
/// fails the test instead of letting it pass.
#[test]
fn root_guard_panics_for_nobody_under_ci() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "root_guard_panics_for_nobody_under_ci: needs root to drop to nobody; the decision itself is tested without root"
        );
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "guard_child", "--test-threads=1"])
        .env("VLSP_GUARD_CHILD", "1")
        .env("CI", "true")
        .uid(65534)
        .gid(65534)
        .output();
    let out = match out {
        Ok(o) => o,
        // A checkout that `nobody` may not enter (e.g. under /root).
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!(
                "root_guard_panics_for_nobody_under_ci: nobody cannot run the test binary here ({e})"
            );
            return;
        }
        Err(e) => panic!("cannot run the test binary as nobody: {e}"),
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the guard passed for nobody under CI:\n{text}"
    );
    assert!(
        text.contains("guard_child needs root") && text.contains("CI is set"),
        "{text}"
    );
}
