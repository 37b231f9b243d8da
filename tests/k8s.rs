//! `vlsp k8s render` as a cluster would get it: the files the binary writes
//! for multi-inp-10node, read back as YAML (no root, no cluster); and, as
//! root, `vlsp k8s init` doing in a namespace what a pod's init container does.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vlsp::testbed::k8s::manifest::TopologyResource;
use vlsp::testbed::k8s::{InitPlan, MeshnetLink};
use vlsp::topology::Topology;

/// A fresh output folder, removed when dropped.
struct OutDir(PathBuf);

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn render(topology: &str) -> (OutDir, Topology) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("topologies").join(topology);
    let dir = OutDir(std::env::temp_dir().join(format!(
        "vlsp-k8s-test-{}-{}",
        std::process::id(),
        topology.trim_end_matches(".toml")
    )));
    let out = Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(["k8s", "render"])
        .arg(&file)
        .arg("-o")
        .arg(&dir.0)
        .args(["--image", "registry.example/vlsp:test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, Topology::load(&file).unwrap())
}

fn yaml(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every object file (not all.yaml), by file name.
fn objects(dir: &Path) -> BTreeMap<String, Value> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "all.yaml")
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                yaml(&p),
            )
        })
        .collect()
}

#[test]
fn multi_provider_manifests_wire_every_link_once_and_keep_keys_in_secrets() {
    let (dir, topo) = render("multi-inp-10node.toml");
    let objs = objects(&dir.0);
    let count = |k: &str| objs.values().filter(|v| v["kind"] == k).count();
    assert_eq!(count("Namespace"), 1);
    assert_eq!(count("Secret"), topo.providers.len());
    let ns = "vlsp-multi-inp-10node";
    assert!(
        objs.values()
            .all(|v| v["metadata"]["namespace"] == ns || v["kind"] == "Namespace")
    );

    // Every router has its pod, config map and Topology resource.
    for n in &topo.nodes {
        let pod = &objs[&format!("pod-{}.yaml", n.name)];
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            "registry.example/vlsp:test"
        );
        let cm = &objs[&format!("configmap-{}.yaml", n.name)];
        let node_toml = cm["data"]["node.toml"].as_str().unwrap();
        assert!(
            node_toml.contains(&format!("name = \"{}\"", n.name)),
            "{node_toml}"
        );
        InitPlan::parse("init.toml", cm["data"]["init.toml"].as_str().unwrap()).unwrap();
        assert!(objs.contains_key(&format!("topology-{}.yaml", n.name)));
    }
    for v in &topo.vnodes {
        let pod = v.name.to_lowercase();
        assert!(objs.contains_key(&format!("pod-{pod}.yaml")));
        assert!(objs.contains_key(&format!("topology-{pod}.yaml")));
    }

    // A link's uid is unique to it and the same at both of its ends, which
    // name each other.
    let mut ends: HashMap<u32, Vec<(String, MeshnetLink)>> = HashMap::new();
    for (file, _) in objs.iter().filter(|(_, v)| v["kind"] == "Topology") {
        let text = std::fs::read_to_string(dir.0.join(file)).unwrap();
        let t = TopologyResource::parse(file, &text).unwrap();
        for l in t.spec.links {
            ends.entry(l.uid)
                .or_default()
                .push((t.metadata.name.clone(), l));
        }
    }
    let links = topo.links.len()
        + topo
            .vnodes
            .iter()
            .map(|v| v.interfaces.len())
            .sum::<usize>();
    assert_eq!(ends.len(), links);
    for (uid, e) in &ends {
        assert_eq!(e.len(), 2, "uid {uid} has {} ends", e.len());
        let ((pa, a), (pb, b)) = (&e[0], &e[1]);
        assert_eq!((&a.peer_pod, &b.peer_pod), (pb, pa), "uid {uid}");
        assert_eq!((&a.local_intf, &a.peer_intf), (&b.peer_intf, &b.local_intf));
        assert_eq!((&a.local_ip, &a.peer_ip), (&b.peer_ip, &b.local_ip));
    }

    // Secrets hold the keys; no key is in a config map or a command line.
    for p in &topo.providers {
        let s = &objs[&format!("secret-vlsp-key-{}.yaml", p.name)];
        let text = s["stringData"]["key"].as_str().unwrap();
        assert_eq!(
            vlsp::node::nodefile::decode_key(text).unwrap(),
            p.key,
            "{}",
            p.name
        );
        let raw = String::from_utf8_lossy(&p.key).to_string();
        for (file, v) in objs.iter().filter(|(_, v)| v["kind"] != "Secret") {
            let all = serde_json::to_string(v).unwrap();
            assert!(
                !all.contains(&raw) && !all.contains(text),
                "{file} holds {}'s key",
                p.name
            );
        }
    }
    // all.yaml: the same objects, namespace first.
    let all = std::fs::read_to_string(dir.0.join("all.yaml")).unwrap();
    assert_eq!(all.matches("\n---\n").count() + 1, objs.len());
    assert!(
        all.starts_with("---\napiVersion: v1\nkind: Namespace\n"),
        "{}",
        &all[..80]
    );
}

#[test]
fn a_topology_that_cannot_run_in_pods_is_refused_naming_the_node() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = OutDir(std::env::temp_dir().join(format!("vlsp-k8s-qemu-{}", std::process::id())));
    let out = Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(["k8s", "render"])
        .arg(root.join("topologies/paper-4node-qemu.toml"))
        .arg("-o")
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("VM1") && err.contains("QEMU"), "{err}");
    assert!(!dir.0.exists(), "nothing is written for a refused topology");
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {}", args.join(" "));
}

#[test]
fn init_waits_for_the_pods_interfaces_then_routes_shapes_and_bridges() {
    if !common::require_root("k8s init") {
        return;
    }
    let ns = common::Netns::add(format!("vlsp-k8sinit-{}", std::process::id()));
    // What meshnet would have made: eth1 with its address, and the
    // virtual node's link end vn0 (its peer here stands in for the VM pod).
    ip(&[
        "-n", &ns.0, "link", "add", "eth1", "type", "veth", "peer", "name", "peer1",
    ]);
    ip(&[
        "-n", &ns.0, "link", "add", "vn0", "type", "veth", "peer", "name", "vmside",
    ]);
    ip(&["-n", &ns.0, "addr", "add", "10.99.1.1/24", "dev", "eth1"]);
    ip(&["-n", &ns.0, "link", "set", "peer1", "up"]);
    let plan = r#"pod = "r1"
wait = ["eth1", "vn0"]
forward = true

[[bridge]]
bridge = "br0"
port = "vn0"

[[shape]]
ifname = "eth1"
capacity_bps = 100000000

[[route]]
dest = "10.99.8.0"
prefix_len = 22
via = "10.99.1.2"
ifname = "eth1"
"#;
    let file = std::env::temp_dir().join(format!("{}-init.toml", ns.0));
    std::fs::write(&file, plan).unwrap();
    let init = |plan: &Path, timeout: &str| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                env!("CARGO_BIN_EXE_vlsp"),
                "k8s",
                "init",
            ])
            .arg("--plan")
            .arg(plan)
            .args(["--timeout", timeout])
            .output()
            .unwrap()
    };
    let out = init(&file, "10");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sh = |cmd: &str| common::ns_output(&ns.0, cmd);
    assert!(
        sh("ip route show 10.99.8.0/22").contains("via 10.99.1.2 dev eth1"),
        "{}",
        sh("ip route")
    );
    assert!(
        sh("ip link show vn0").contains("master br0"),
        "{}",
        sh("ip link")
    );
    assert!(
        sh("tc qdisc show dev eth1").contains("htb 1:"),
        "{}",
        sh("tc qdisc")
    );
    assert_eq!(sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    // Run again (a restarted init container): the same state, no error.
    let out = init(&file, "10");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An interface that never comes: refused in time, naming it.
    let never = std::env::temp_dir().join(format!("{}-never.toml", ns.0));
    std::fs::write(&never, "pod = \"r1\"\nwait = [\"eth1\", \"eth9\"]\n").unwrap();
    let out = init(&never, "1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("eth9") && err.contains("r1"),
        "{err}"
    );
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&never);
}
