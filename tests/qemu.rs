//! Root integration test of QEMU virtual nodes: the mixed topology comes up
//! with VM1 and VM2 as guests, a virtual link set up through the API carries
//! a ping from the guest VM1 to the guest VM2 (driven over VM1's serial
//! console), and teardown plus down leave no QEMU, tap or namespace.

mod common;

use common::*;
use std::time::Duration;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

fn qemu_pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.starts_with("qemu-system"))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn qemu_guests_ping_over_the_virtual_link_and_leave_nothing() {
    if !require_root("qemu_guests") {
        return;
    }
    if std::process::Command::new(vlsp::kernel::qemu::QEMU)
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install qemu-system-x86 (see .ci/install)"
        );
        eprintln!(
            "skipping qemu_guests: {} not installed",
            vlsp::kernel::qemu::QEMU
        );
        return;
    }
    let before = qemu_pids();
    let t = unique_topology("paper-4node-qemu.toml", "v");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    eprintln!(
        "guests ready: {:?} with {:?}",
        tb.boot_times,
        tb.accel.as_ref().map(|a| &a.name)
    );
    assert_eq!(tb.guests.len(), 2);
    // No namespaces for the guests; their taps sit on the hosts' bridges.
    assert!(
        !leftovers(&name)
            .iter()
            .any(|n| n.ends_with("-VM1") || n.ends_with("-VM2"))
    );
    let tb1 = ns_output(
        &vlsp::kernel::substrate::ns_name(&name, "tb1"),
        "ip -br link show master br0",
    );
    assert!(tb1.contains("vq0"), "VM1's tap on br0: {tb1}");

    let vm1 = tb.guest("VM1").unwrap();
    let (out, code) = vm1
        .exec("ping -c 1 -W 1 10.10.0.2", Duration::from_secs(10))
        .unwrap();
    assert_ne!(code, 0, "no virtual link yet, yet VM2 answered: {out}");

    let mut c = tb.client("tb1").unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_request("VM1", "VM2", 10_000_000)).unwrap() else {
        panic!()
    };
    let (out, code) = vm1
        .exec("ping -c 3 -W 5 10.10.0.2", Duration::from_secs(30))
        .unwrap();
    eprintln!("{out}");
    assert_eq!(code, 0, "VM1 pings VM2 over the virtual link: {out}");
    assert!(out.contains("bytes from 10.10.0.2"), "{out}");

    let r = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(r, Reply::LinkDown { .. }), "{r:?}");
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
    let after: Vec<String> = qemu_pids()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(after.is_empty(), "QEMU processes left: {after:?}");
}
