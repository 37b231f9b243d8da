use std::collections::HashMap;
use std::path::Path;

use super::manifest::{self, TopologyResource};
use super::*;

fn load(name: &str) -> Topology {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(name);
    Topology::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn paper() -> Rendered {
    render(&load("paper-4node.toml"), &RenderOptions::default()).unwrap()
}

#[test]
fn links_have_one_uid_seen_from_both_ends_with_swapped_names() {
    let r = paper();
    let mut ends: HashMap<u32, Vec<(&str, &MeshnetLink)>> = HashMap::new();
    let pods = r
        .routers
        .iter()
        .map(|x| (&x.pod, &x.topology))
        .chain(r.vnodes.iter().map(|v| (&v.pod, &v.topology)));
    for (pod, t) in pods {
        assert_eq!(&t.name, pod);
        for l in &t.links {
            ends.entry(l.uid).or_default().push((pod, l));
        }
    }
    // 3 substrate links + VM1, VM2.
    assert_eq!(ends.len(), 5);
    for (uid, e) in &ends {
        assert_eq!(e.len(), 2, "uid {uid}");
        let ((pa, a), (pb, b)) = (e[0], e[1]);
        assert_eq!((a.peer_pod.as_str(), b.peer_pod.as_str()), (pb, pa));
        assert_eq!((&a.local_intf, &a.local_ip), (&b.peer_intf, &b.peer_ip));
        assert_eq!((&a.peer_intf, &a.peer_ip), (&b.local_intf, &b.local_ip));
    }
    let tb1 = &r.router("tb1").unwrap().topology;
    assert_eq!(
        tb1.links[0],
        MeshnetLink {
            uid: 1,
            peer_pod: "tb2".into(),
            local_intf: "eth1".into(),
            peer_intf: "eth1".into(),
            local_ip: "172.1.2.1/24".into(),
            peer_ip: "172.1.2.2/24".into(),
        }
    );
    // VM1 hangs off tb1's vn0, which its init container bridges into br0.
    let vm1 = r.vnode("VM1").unwrap();
    assert_eq!(vm1.pod, "vm1");
    assert_eq!(vm1.topology.links[0].peer_pod, "tb1");
    assert_eq!(vm1.topology.links[0].local_intf, "eth1");
    assert_eq!(vm1.topology.links[0].peer_intf, "vn0");
    assert!(vm1.topology.links[0].peer_ip.is_empty());
    assert_eq!(vm1.init.wait, ["eth1"]);
    let init = &r.router("tb1").unwrap().init;
    assert_eq!(init.wait, ["eth1", "vn0"]);
    assert_eq!(
        init.bridge,
        [BridgePort {
            bridge: "br0".into(),
            port: "vn0".into()
        }]
    );
    assert!(init.forward && init.route.iter().all(|r| r.ifname == "eth1"));
}

#[test]
fn node_configs_name_pod_interfaces_and_no_key_is_in_a_config_or_command() {
    let t = load("multi-inp-10node.toml");
    let r = render(&t, &RenderOptions::default()).unwrap();
    assert_eq!(r.namespace, "vlsp-multi-inp-10node");
    let objects = manifest::objects(&r);
    let configs: Vec<String> = objects
        .iter()
        .filter(|o| o.value["kind"] == "ConfigMap" || o.value["kind"] == "Pod")
        .map(|o| manifest::to_yaml(&o.value))
        .collect();
    for p in &t.providers {
        let raw = String::from_utf8_lossy(&p.key).to_string();
        let hex = key_text(&p.key);
        for c in &configs {
            assert!(!c.contains(&raw) && !c.contains(&hex[4..]), "{c}");
        }
        let s = r.secrets.iter().find(|s| s.provider == p.name).unwrap();
        assert_eq!(nodefile_key(&s.files[KEY_FILE]), p.key);
    }
    let n3 = r.router("n3").unwrap();
    let f = NodeFile::parse("node.toml", &n3.node_config_toml).unwrap();
    assert_eq!(
        f.link.iter().map(|l| l.ifname.as_str()).collect::<Vec<_>>(),
        ["eth1", "eth2"]
    );
    assert!(f.route.iter().all(|r| r.ifname.starts_with("eth")));
    // n3 signs for nobody but keeps its own key; n0 (an initiator's host)
    // mounts the key of every provider on the path.
    assert!(n3.secret_files.iter().any(|(p, _, _)| p == "inp-b"));
    let n0 = r.router("n0").unwrap();
    let args = n0.node_args.join(" ");
    assert!(
        args.contains("--config /etc/vlsp/config/node.toml")
            && args.contains("--api /run/vlsp/api.sock"),
        "{args}"
    );
    for (p, file, _) in &n0.secret_files {
        let s = r.secrets.iter().find(|s| s.provider == *p).unwrap();
        assert!(args.contains(&format!("--key-file {p}={}/{file}", s.mount)));
    }
}

fn nodefile_key(text: &str) -> Vec<u8> {
    crate::node::nodefile::decode_key(text).unwrap()
}

#[test]
fn the_topology_resources_read_back() {
    let r = paper();
    let o = manifest::objects(&r);
    let t = o.iter().find(|o| o.file == "topology-tb2.yaml").unwrap();
    let back = TopologyResource::parse("topology-tb2.yaml", &manifest::to_yaml(&t.value)).unwrap();
    assert_eq!(back.api_version, "networkop.co.uk/v1beta1");
    assert_eq!(back.kind, "Topology");
    assert_eq!(back.metadata.namespace, "vlsp-paper-4node");
    assert_eq!(back.topology(), r.router("tb2").unwrap().topology);
    // Apply order: topologies before the pods whose CNI call reads them.
    let first_pod = o.iter().position(|o| o.value["kind"] == "Pod").unwrap();
    let last_topo = o
        .iter()
        .rposition(|o| o.value["kind"] == "Topology")
        .unwrap();
    assert!(last_topo < first_pod && o[0].value["kind"] == "Namespace");
}

#[test]
fn a_pod_mounts_its_config_and_keys_and_probes_its_node() {
    let r = paper();
    let o = manifest::objects(&r);
    let pod = &o.iter().find(|o| o.file == "pod-tb1.yaml").unwrap().value;
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["command"][0], "vlsp");
    let caps = &c["securityContext"]["capabilities"]["add"];
    for cap in ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"] {
        assert!(caps.as_array().unwrap().iter().any(|c| c == cap), "{cap}");
    }
    assert_eq!(c["readinessProbe"]["exec"]["command"][0], "vlsp", "{c:#}");
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["command"][2], "init");
    let vols = pod["spec"]["volumes"].as_array().unwrap();
    assert!(vols.iter().any(|v| v["configMap"]["name"] == "tb1-config"));
    assert!(
        vols.iter()
            .any(|v| v["secret"]["secretName"] == "vlsp-key-kit")
    );
}

#[test]
fn what_cannot_run_in_a_pod_is_refused_by_name() {
    let e = render(&load("paper-4node-qemu.toml"), &RenderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("VM1") && e.contains("QEMU"), "{e}");
    let mut t = load("paper-4node.toml");
    t.nodes[2].external = true;
    let e = render(&t, &RenderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("tb3") && e.contains("external"), "{e}");
    let mut t = load("paper-4node.toml");
    t.vnodes[1].name = "tb1".into();
    let e = render(&t, &RenderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"tb1\"'s"), "{e}");
    let opts = RenderOptions {
        uid_base: (1 << 24) - 5000,
        ..RenderOptions::default()
    };
    assert!(render(&load("paper-4node.toml"), &opts).is_err());
}

#[test]
fn a_plain_router_forwards_and_runs_no_node() {
    let r = render(&load("plain-router.toml"), &RenderOptions::default()).unwrap();
    let p = r.router("plain").unwrap();
    assert!(!p.nsis && p.node_config_toml.is_empty() && p.node_args.is_empty());
    assert!(p.init.forward && !p.init.route.is_empty());
    let o = manifest::objects(&r);
    let pod = &o.iter().find(|o| o.file == "pod-plain.yaml").unwrap().value;
    assert_eq!(pod["spec"]["containers"][0]["command"][0], "sleep");
    let vm1 = &o.iter().find(|o| o.file == "pod-vm1.yaml").unwrap().value;
    let term = &vm1["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(term["labelSelector"]["matchLabels"]["vlsp/node"], "a1");
}

#[test]
fn every_shipped_topology_but_the_qemu_one_renders() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let t = Topology::load(&p).unwrap();
        let r = render(&t, &RenderOptions::default());
        let qemu = t.vnodes.iter().any(|v| v.qemu.is_some());
        assert_eq!(r.is_ok(), !qemu, "{}", p.display());
    }
}
