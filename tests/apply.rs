//! `vlsp apply` on a running paper-4node (root): a router and two links
//! join while a virtual link VM1 -> VM2 keeps carrying frames; removing a
//! link on its path is refused, then done with --force (the virtual link
//! torn down first); `vlsp down` leaves no namespace, process or file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{leftovers, require_root, reservations};

fn vlsp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `vlsp down` when dropped, whatever failed.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = vlsp(&["down", &self.0]);
    }
}

const TB2_TB3: &str =
    "[[link]]\na = \"tb2:172.2.3.2/24\"\nb = \"tb3:172.2.3.3/24\"\ncapacity = \"1gbit\"\n";

/// The three files: paper-4node as `name`; with tb5 between tb2 and tb3;
/// and then without the tb2-tb3 link.
fn files(name: &str, dir: &Path) -> [PathBuf; 3] {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml"),
    )
    .unwrap()
    .replacen("name = \"paper-4node\"", &format!("name = \"{name}\""), 1);
    let grown = format!(
        "{src}\n[[node]]\nname = \"tb5\"\n[[link]]\na = \"tb2:172.2.5.2/24\"\nb = \"tb5:172.2.5.5/24\"\n[[link]]\na = \"tb5:172.5.3.5/24\"\nb = \"tb3:172.5.3.3/24\"\n"
    );
    assert!(grown.contains(TB2_TB3));
    let cut = grown.replacen(TB2_TB3, "", 1);
    let ps = ["a", "b", "c"].map(|f| dir.join(format!("{f}.toml")));
    for (p, s) in ps.iter().zip([src, grown, cut]) {
        std::fs::write(p, s).unwrap();
    }
    ps
}

/// Sets a virtual link VM1 -> VM2 up (a loaded machine may need a retry);
/// its id.
fn setup(name: &str) -> String {
    let mut last = String::new();
    for _ in 0..3 {
        let o = vlsp(&[
            "link",
            "setup",
            "--topology",
            name,
            "--from",
            "VM1",
            "--to",
            "VM2",
            "--rate",
            "10mbit",
        ]);
        last = text(&o);
        if o.status.success() {
            return last.split_whitespace().nth(2).unwrap().to_string();
        }
    }
    panic!("setup failed: {last}");
}

fn ping_once(name: &str, node: &str, addr: &str) -> bool {
    vlsp(&["exec", name, node, "--", "ping", "-c1", "-W2", addr])
        .status
        .success()
}

/// (transmitted, received) from ping's summary line.
fn ping_counts(out: &str) -> (u32, u32) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in {out}"));
    let n: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    (n[0], n[1])
}

#[test]
fn apply_grows_a_running_topology_refuses_to_strand_and_forces() {
    if !require_root("apply_grows_a_running_topology_refuses_to_strand_and_forces") {
        return;
    }
    let name = format!("ap{}", std::process::id() % 100_000);
    let dir = std::env::temp_dir().join(format!("vlsp-apply-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let [a, b, c] = files(&name, &dir);
    let (a, b, c) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
    );
    let o = vlsp(&["up", a, "--detach"]);
    assert!(o.status.success(), "{}", text(&o));
    let _down = Down(name.clone());
    let first = setup(&name);

    // The plan, and nothing changed by it.
    let o = vlsp(&["apply", b, "--dry-run", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(
        steps[0],
        serde_json::json!({"step": "add_router", "node": "tb5"})
    );
    assert!(plan["stranded"].as_array().unwrap().is_empty());
    assert!(!leftovers(&name).iter().any(|n| n.ends_with("-tb5")));

    // A flow VM1 -> VM2 runs while tb5 and its links join.
    let ns = format!("vlsp-{name}-VM1");
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "ping",
            "-i",
            "0.05",
            "-w",
            "6",
            "10.10.0.2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let o = vlsp(&["apply", b]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for s in [
        "add router tb5",
        "add link tb2:eth2 -- tb5:eth0",
        "start an NSIS node for tb5",
        "reconfigure the NSIS node of tb1",
    ] {
        assert!(out.contains(s), "{s}: {out}");
    }
    let flow = String::from_utf8_lossy(&ping.wait_with_output().unwrap().stdout).into_owned();
    let (sent, got) = ping_counts(&flow);
    assert!(
        sent >= 60 && got + 1 >= sent,
        "the flow lost frames: {flow}"
    );
    assert!(ping_once(&name, "tb1", "172.5.3.5"), "tb5 unreachable");
    let list = text(&vlsp(&["link", "list", "--topology", &name]));
    assert!(list.contains(&first), "the virtual link went: {list}");

    // Cutting tb2-tb3 strands it: refused, naming both, nothing changed.
    let o = vlsp(&["apply", c]);
    let out = text(&o);
    assert!(!o.status.success());
    assert!(
        out.contains(&format!("virtual link {first} (VM1 -> VM2)"))
            && out.contains("link tb2:eth1 -- tb3:eth0 on its path is removed")
            && out.contains("--force"),
        "{out}"
    );
    assert!(
        ping_once(&name, "tb2", "172.2.3.3"),
        "the refused apply changed something"
    );

    // --force tears it down through tb1, then cuts; a new link takes tb5.
    let o = vlsp(&["apply", c, "--force"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "tear down virtual link {first} (VM1 -> VM2) through tb1"
        )),
        "{out}"
    );
    assert!(!ping_once(&name, "tb2", "172.2.3.3"), "tb2-tb3 still there");
    let list = text(&vlsp(&["link", "list", "--topology", &name]));
    assert!(!list.contains(&first), "{list}");
    setup(&name);
    assert!(ping_once(&name, "VM1", "10.10.0.2"));
    assert_eq!(
        reservations(&name, "tb5").0,
        1,
        "the new link is not reserved on tb5"
    );

    let o = vlsp(&["down", &name]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(leftovers(&name).is_empty(), "{:?}", leftovers(&name));
    assert!(!Path::new("/run/vlsp").join(&name).exists());
    let run = format!("/run/vlsp/{name}/");
    let procs = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let procs = String::from_utf8_lossy(&procs.stdout);
    assert!(
        !procs.lines().any(|l| l.contains(&run)),
        "processes left: {procs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
