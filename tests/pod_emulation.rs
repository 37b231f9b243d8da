//! Root test: a cluster with meshnet-cni, emulated on one machine from the
//! files `vlsp k8s render` writes. Each pod is a network namespace; each
//! meshnet `Topology` link a veth pair whose ends are named `local_intf` /
//! `peer_intf` and carry `local_ip`; each pod's volumes (ConfigMap, Secret,
//! emptyDir) are folders under the pod's root, and its init and main
//! containers run their rendered commands with paths moved under that root.
//! Then a signed link VM1 -> VM2, a ping across it, teardown; and `kill -9`
//! of a middle router's node is noticed by both ends within three refresh
//! periods. Nothing is left afterwards, also when the test fails.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vlsp::node::api::{Client, Reply, Request};
use vlsp::proto::nslp::EventKind;
use vlsp::testbed::k8s::MeshnetLink;

const BIN: &str = env!("CARGO_BIN_EXE_vlsp");

/// The emulated cluster: pod namespaces and container processes, all
/// removed when dropped.
struct Cluster {
    tag: String,
    dir: PathBuf,
    pods: Vec<String>,
    procs: BTreeMap<String, Child>,
}

impl Cluster {
    fn ns(&self, pod: &str) -> String {
        format!("{}-{pod}", self.tag)
    }

    fn root(&self, pod: &str) -> PathBuf {
        self.dir.join("pods").join(pod)
    }

    /// A path of the pod's file system, under its root.
    fn path(&self, pod: &str, p: &str) -> PathBuf {
        self.root(pod).join(p.trim_start_matches('/'))
    }

    fn ip(&self, pod: &str, args: &str) {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.ns(pod)])
            .args(args.split_whitespace());
        run(&mut cmd);
    }

    fn log(&self, pod: &str) -> String {
        std::fs::read_to_string(self.root(pod).join("node.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.procs.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.pods {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{}-{p}", self.tag)])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn yaml(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The rendered objects of one kind, by name.
fn objects(dir: &Path, kind: &str) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        if file == "all.yaml" || !file.ends_with(".yaml") {
            continue;
        }
        let v = yaml(&p);
        if v["kind"] == kind {
            m.insert(v["metadata"]["name"].as_str().unwrap().to_string(), v);
        }
    }
    m
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Puts a pod's volumes where its containers mount them: ConfigMap data
/// and Secret stringData as files, emptyDir as a folder.
fn mount_volumes(
    cl: &Cluster,
    pod: &Value,
    maps: &BTreeMap<String, Value>,
    secrets: &BTreeMap<String, Value>,
    container: &Value,
) {
    let name = pod["metadata"]["name"].as_str().unwrap();
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for m in container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let at = cl.path(name, m["mountPath"].as_str().unwrap());
        std::fs::create_dir_all(&at).unwrap();
        let vol = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        let files = if let Some(cm) = vol["configMap"]["name"].as_str() {
            maps[cm]["data"].clone()
        } else if let Some(s) = vol["secret"]["secretName"].as_str() {
            secrets[s]["stringData"].clone()
        } else {
            continue;
        };
        for (f, text) in files.as_object().unwrap() {
            std::fs::write(at.join(f), text.as_str().unwrap()).unwrap();
        }
    }
}

/// A container's command with its absolute paths under the pod's root and
/// `vlsp` as the binary under test.
fn command(cl: &Cluster, pod: &str, container: &Value) -> Vec<String> {
    let mut args = strs(&container["command"]);
    assert_eq!(args[0], "vlsp", "{container}");
    args[0] = BIN.into();
    for a in args.iter_mut().skip(1) {
        // `/path`, or `NAME=/path` (--key-file PROVIDER=PATH).
        let (pre, path) = match a.split_once("=/") {
            Some((k, p)) => (format!("{k}="), format!("/{p}")),
            None => (String::new(), a.clone()),
        };
        if path.starts_with('/') {
            *a = format!("{pre}{}", cl.path(pod, &path).display());
        }
    }
    args
}

fn in_ns(cl: &Cluster, pod: &str, args: &[String]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &cl.ns(pod)]).args(args);
    cmd
}

/// The next event on `c` (whose read timeout is `within`), and how long
/// after `since` it came; a panic naming the node when none came in time.
fn event_within(
    c: &mut Client,
    node: &str,
    since: Instant,
    within: Duration,
) -> (vlsp::node::api::Event, Duration) {
    let ev = c
        .next_event()
        .unwrap_or_else(|e| panic!("{node}: no event within {within:?}: {e}"));
    let after = since.elapsed();
    assert!(
        after <= within,
        "{node} noticed only after {after:?}: {ev:?}"
    );
    (ev, after)
}

#[test]
fn rendered_pods_wired_as_meshnet_would_carry_a_signed_link_and_notice_a_killed_router() {
    if !require_root("pod_emulation") {
        return;
    }
    let refresh = Duration::from_millis(1000);
    let t = unique_topology_with("paper-4node.toml", "k", |s| {
        s.replace(
            "refresh_ms = 30000",
            &format!("refresh_ms = {}", refresh.as_millis()),
        )
    });
    assert_eq!(t.refresh_ms, refresh.as_millis() as u64);
    let tag = format!("pe{}", std::process::id() % 100_000);
    let dir = std::env::temp_dir().join(format!("vlsp-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cl = Cluster {
        tag,
        dir: dir.clone(),
        pods: vec![],
        procs: BTreeMap::new(),
    };
    let topo_file = dir.join("topology.toml");
    std::fs::write(&topo_file, t.to_toml()).unwrap();
    let out = dir.join("k8s");
    run(Command::new(BIN)
        .args(["k8s", "render"])
        .arg(&topo_file)
        .arg("-o")
        .arg(&out));

    let pods = objects(&out, "Pod");
    let maps = objects(&out, "ConfigMap");
    let secrets = objects(&out, "Secret");
    let topologies = objects(&out, "Topology");
    assert_eq!(pods.len(), 6, "tb1..tb4, VM1, VM2: {:?}", pods.keys());
    assert_eq!(
        pods.keys().collect::<Vec<_>>(),
        topologies.keys().collect::<Vec<_>>()
    );

    // The pods' namespaces, then meshnet's part: a veth pair per link uid.
    for p in pods.keys() {
        run(Command::new("ip").args(["netns", "add", &cl.ns(p)]));
        cl.pods.push(p.clone());
        cl.ip(p, "link set lo up");
    }
    let mut wired = BTreeSet::new();
    for (pod, topo) in &topologies {
        let links: Vec<MeshnetLink> =
            serde_json::from_value(topo["spec"]["links"].clone()).unwrap();
        for l in &links {
            if wired.insert(l.uid) {
                let peer = cl.ns(&l.peer_pod);
                cl.ip(
                    pod,
                    &format!(
                        "link add {} type veth peer name {} netns {peer}",
                        l.local_intf, l.peer_intf
                    ),
                );
            }
            if !l.local_ip.is_empty() {
                cl.ip(
                    pod,
                    &format!("addr add {} dev {}", l.local_ip, l.local_intf),
                );
            }
            cl.ip(pod, &format!("link set {} up", l.local_intf));
        }
    }
    assert_eq!(wired.len(), 5, "3 substrate links and 2 virtual node links");

    // Each pod: sysctls, volumes, the init container, then the node.
    for (name, pod) in &pods {
        for s in pod["spec"]["securityContext"]["sysctls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let kv = format!(
                "{}={}",
                s["name"].as_str().unwrap(),
                s["value"].as_str().unwrap()
            );
            run(&mut in_ns(&cl, name, &["sysctl".into(), "-qw".into(), kv]));
        }
        for init in pod["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            mount_volumes(&cl, pod, &maps, &secrets, &init);
            run(&mut in_ns(&cl, name, &command(&cl, name, &init)));
        }
        let main = &pod["spec"]["containers"][0];
        if strs(&main["command"]).first().map(String::as_str) != Some("vlsp") {
            continue; // a virtual node's pod: its init container did it all
        }
        mount_volumes(&cl, pod, &maps, &secrets, main);
        let mut cmd = in_ns(&cl, name, &command(&cl, name, main));
        cmd.arg("--ready-file").arg(cl.root(name).join("ready"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(cl.root(name).join("node.log")).unwrap());
        cl.procs.insert(name.clone(), cmd.spawn().unwrap());
    }
    assert_eq!(cl.procs.len(), 4, "a node in each router's pod");
    let api = |cl: &Cluster, pod: &str| {
        let main = &pods[pod]["spec"]["containers"][0];
        let args = command(cl, pod, main);
        let i = args.iter().position(|a| a == "--api").unwrap();
        PathBuf::from(&args[i + 1])
    };
    // Ready: the ready file, then the rendered readiness probe passes.
    let t0 = Instant::now();
    for pod in cl.procs.keys().cloned().collect::<Vec<_>>() {
        while !cl.root(&pod).join("ready").exists() {
            let c = cl.procs.get_mut(&pod).unwrap();
            if let Some(st) = c.try_wait().unwrap() {
                panic!("{pod} exited ({st}):\n{}", cl.log(&pod));
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{pod} not ready:\n{}",
                cl.log(&pod)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let probe = &pods[&pod]["spec"]["containers"][0]["readinessProbe"]["exec"];
        let out = in_ns(&cl, &pod, &command(&cl, &pod, probe))
            .output()
            .unwrap();
        assert!(out.status.success(), "{pod}'s readiness probe: {out:?}");
    }

    // A signed link VM1 -> VM2, a ping across it, teardown.
    let mut c = Client::connect(&api(&cl, "tb1"), Duration::from_secs(30)).unwrap();
    let Reply::LinkUp { vlink } = c.call(&setup_request("VM1", "VM2", 10_000_000)).unwrap() else {
        panic!("no link:\n{}", cl.log("tb1"))
    };
    let vm2_links: Vec<MeshnetLink> =
        serde_json::from_value(topologies["vm2"]["spec"]["links"].clone()).unwrap();
    let vm2 = vm2_links[0].local_ip.split('/').next().unwrap().to_string();
    let ping = in_ns(
        &cl,
        "vm1",
        &["ping".into(), "-c2".into(), "-W2".into(), vm2.clone()],
    )
    .output()
    .unwrap();
    assert!(ping.status.success(), "VM1 -> VM2 {vm2}: {ping:?}");
    let vxlans = |cl: &Cluster, pod: &str| tunnel_ends_in(&cl.ns(pod));
    assert!(!vxlans(&cl, "tb4").is_empty());
    let reply = c
        .call(&Request::Teardown {
            vlink_id: vlink.vlink_id,
        })
        .unwrap();
    assert!(matches!(reply, Reply::LinkDown { .. }), "{reply:?}");
    let t1 = Instant::now();
    while !vxlans(&cl, "tb4").is_empty() {
        assert!(
            t1.elapsed() < Duration::from_secs(5),
            "tb4 keeps its tunnel end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Again, and then tb2's node dies hard: tb1 loses the link, tb4's
    // state expires, both within three refresh periods.
    let Reply::LinkUp { vlink } = c.call(&setup_request("VM1", "VM2", 10_000_000)).unwrap() else {
        panic!("no second link:\n{}", cl.log("tb1"))
    };
    let within = refresh * 3 + Duration::from_millis(500);
    let mut events = Client::connect(&api(&cl, "tb1"), within).unwrap();
    assert_eq!(events.call(&Request::Events).unwrap(), Reply::Subscribed);
    std::thread::sleep(refresh * 2); // refreshes keep it up meanwhile
    assert!(!vxlans(&cl, "tb4").is_empty(), "refreshes kept the link");
    let tb2 = cl.procs.get_mut("tb2").unwrap();
    tb2.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    tb2.wait().unwrap();
    // The initiator: its refresh goes unanswered, the link is lost.
    let (ev, after) = event_within(&mut events, "tb1", killed, within);
    eprintln!("tb1 noticed tb2's death after {after:?}: {ev:?}");
    assert_eq!(
        (ev.kind, ev.vlink_id),
        (EventKind::LinkLost, Some(vlink.vlink_id)),
        "{ev:?}"
    );
    // The responder: its end goes too. tb2's kernel still forwards, so
    // tb1's TEAR finds tb3 and tb4 around the dead daemon (Q-mode
    // discovery); without it tb4's state would expire (lifetime 3 R).
    let links = |pod: &str| {
        let mut c = Client::connect(&api(&cl, pod), Duration::from_secs(5)).unwrap();
        match c.call(&Request::List).unwrap() {
            Reply::Links { links } => links.len(),
            r => panic!("{pod}: {r:?}"),
        }
    };
    while links("tb4") > 0 || !vxlans(&cl, "tb4").is_empty() {
        assert!(
            killed.elapsed() <= within,
            "tb4 still holds the link {:?} after tb2's death:\n{}",
            killed.elapsed(),
            cl.log("tb4")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("tb4 freed its end {:?} after tb2's death", killed.elapsed());
    assert!(vxlans(&cl, "tb1").is_empty());
    assert_eq!(links("tb3"), 0, "tb3 freed its state too");

    // Nothing left: processes, namespaces, files.
    let nss: Vec<String> = cl.pods.iter().map(|p| cl.ns(p)).collect();
    drop(events);
    drop(c);
    drop(cl);
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(nss.iter().all(|n| !left.contains(n)), "{left:?}");
    assert!(!dir.exists());
}
