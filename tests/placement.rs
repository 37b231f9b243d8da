//! Root integration test of `VLSP_KERNEL_CPUS`: unset, with the nodes
//! sharing threads, the kernel threads (tunnel ends, reservation classes,
//! deferred deletions, the route monitor) run on the last CPU and the
//! nodes' threads on the others, and a link still carries frames; a value
//! that cannot be honoured stops the bring-up with the variable named. Its
//! own test binary: the variables are read by this process's nodes only,
//! and the first bring-up that succeeds decides the placement for the
//! process.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vlsp::node::api::Reply;
use vlsp::testbed::{Options, Testbed};

/// `/proc` CPU list ("0-1,3") as numbers.
fn cpus(list: &str) -> Vec<usize> {
    let mut out = vec![];
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

fn allowed(status: &str) -> Vec<usize> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in status");
    cpus(line)
}

/// Every thread of this process: (name, CPUs it may run on).
fn threads() -> Vec<(String, Vec<usize>)> {
    let mut out = vec![];
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(t.path().join("comm")),
            std::fs::read_to_string(t.path().join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        out.push((comm.trim().to_string(), allowed(&status)));
    }
    out
}

#[test]
fn kernel_work_and_signaling_run_on_their_own_cpus() {
    if !require_root("kernel_work_and_signaling_run_on_their_own_cpus") {
        return;
    }
    let all = allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let everything = all
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // SAFETY (both set_var): set while no node of this process runs.
    unsafe {
        std::env::set_var(vlsp::node::NODES_PER_THREAD_ENV, "8");
        std::env::set_var(vlsp::node::KERNEL_CPUS_ENV, &everything);
    }
    // Naming every CPU leaves none for the signaling: refused, named, and
    // nothing stays behind.
    let t = unique_topology("paper-4node.toml", "kc");
    let name = t.name.clone();
    let _first = Down(name.clone());
    let e = match Testbed::up(t, &Options::default()) {
        Ok(_) => panic!("{}={everything} was accepted", vlsp::node::KERNEL_CPUS_ENV),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("VLSP_KERNEL_CPUS") && e.contains("leaves no CPU for the nodes' signaling"),
        "{e}"
    );
    assert!(leftovers(&name).is_empty(), "{:?}", leftovers(&name));
    if all.len() < 2 {
        let why = format!("this test needs 2 CPUs to split them (the process may use {all:?})");
        assert!(std::env::var("CI").is_err(), "{why}");
        eprintln!("skipping the split: {why}");
        return;
    }
    let kernel = *all.last().unwrap();
    let signaling: Vec<usize> = all.iter().copied().filter(|&c| c != kernel).collect();
    // Unset: the default, the last CPU for the kernel work (the four
    // routers on one thread).
    unsafe { std::env::remove_var(vlsp::node::KERNEL_CPUS_ENV) };
    one_link_and_check_the_threads("nodes-", kernel, &signaling);
    // Then a thread each, the CPU named (the process keeps its placement).
    unsafe {
        std::env::set_var(vlsp::node::KERNEL_CPUS_ENV, kernel.to_string());
        std::env::set_var(vlsp::node::NODES_PER_THREAD_ENV, "1");
    }
    one_link_and_check_the_threads("node-", kernel, &signaling);
}

/// Brings paper-4node up, sets a link up (frames cross it) and down, and
/// checks every runtime thread's CPUs: node threads (named `node_prefix…`)
/// on `signaling`, kernel threads on `kernel`.
fn one_link_and_check_the_threads(node_prefix: &str, kernel: usize, signaling: &[usize]) {
    let t = unique_topology("paper-4node.toml", "kc");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let Reply::LinkUp { vlink } = tb
        .client("tb1")
        .unwrap()
        .call(&setup_request("VM1", "VM2", 1_000_000))
        .unwrap()
    else {
        panic!("setup refused")
    };
    let vm2 = Ipv4Addr::new(10, 10, 0, 2);
    vlsp::kernel::substrate::udp_ping(&name, "VM1", "VM2", vm2, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("no frames cross the link: {e:#}"));
    teardown_ok(&mut tb.client("tb1").unwrap(), vlink.vlink_id);
    // A reaper thread starts when its node queues its first deletion.
    let reaper = || threads().iter().any(|(n, _)| n == "reap-tb1");
    for _ in 0..100 {
        if reaper() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let ts = threads();
    let mut seen = std::collections::BTreeSet::new();
    for (n, on) in &ts {
        let want = if n.starts_with(node_prefix) {
            signaling.to_vec()
        } else if n.starts_with("vlink-")
            || n.starts_with("classes-")
            || n.starts_with("reap-")
            || n == "route-monitor"
        {
            vec![kernel]
        } else {
            continue;
        };
        assert_eq!(on, &want, "thread {n}");
        seen.insert(n.split('-').next().unwrap().to_string());
    }
    let node_kind = node_prefix.trim_end_matches('-');
    for kind in [node_kind, "vlink", "classes", "reap", "route"] {
        assert!(seen.contains(kind), "no {kind}-* thread among {ts:?}");
    }
    // tb1..tb3 installed a class (tb4, the responder, has no egress hop) on
    // the class thread of their node thread: one shared when grouped, else
    // one each; the two ends made their tunnel ends on threads of their own.
    let named = |prefix: &str| -> Vec<&str> {
        let mut v: Vec<&str> = ts
            .iter()
            .filter_map(|(n, _)| n.strip_prefix(prefix))
            .collect();
        v.sort();
        v
    };
    let want: &[&str] = if node_kind == "nodes" {
        &["tb1"]
    } else {
        &["tb1", "tb2", "tb3"]
    };
    assert_eq!(named("classes-"), want, "class threads among {ts:?}");
    assert_eq!(
        named("vlink-"),
        ["tb1", "tb4"],
        "tunnel threads among {ts:?}"
    );
    tb.down().unwrap();
    assert!(leftovers(&name).is_empty());
    // Every thread of the testbed ends with it (and the next call counts
    // threads by name: one still ending was counted twice there).
    let ours = |n: &str| {
        ["nodes-", "node-", "vlink-", "classes-", "reap-"]
            .iter()
            .any(|p| n.starts_with(p))
    };
    let left = || -> Vec<_> { threads().into_iter().filter(|(n, _)| ours(n)).collect() };
    eventually(Duration::from_secs(5), || left().is_empty());
    assert!(left().is_empty(), "threads left after down: {:?}", left());
}
