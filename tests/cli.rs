//! The `vlsp` command line as a user meets it: names refused before they
//! touch anything, unknown topologies named, a running topology never
//! destroyed by a second `up`, output into a closed pipe without a panic,
//! and a testbed that fails to start leaving nothing behind.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn vlsp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vlsp-cli-{}-{name}", std::process::id()))
}

/// Runs vlsp with its standard output a pipe whose reader is gone.
fn closed_pipe(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone (`| true`)
    child.wait_with_output().unwrap()
}

#[test]
fn down_refuses_names_that_are_not_topology_names() {
    let sentinel = temp("sentinel");
    std::fs::create_dir_all(&sentinel).unwrap();
    std::fs::write(sentinel.join("keep"), "x").unwrap();
    let escape = format!("x/../../..{}", sentinel.display());
    let run_existed = Path::new("/run/vlsp").exists();
    for name in ["", "../x", "x/../../tmp", escape.as_str(), "Paper", "a b"] {
        let o = vlsp(&["down", name]);
        assert!(!o.status.success(), "down {name:?} succeeded");
        assert!(
            stderr(&o).contains("topology name"),
            "{name:?}: {}",
            stderr(&o)
        );
    }
    assert!(sentinel.join("keep").exists(), "down removed {sentinel:?}");
    assert_eq!(Path::new("/run/vlsp").exists(), run_existed);
    std::fs::remove_dir_all(&sentinel).unwrap();
}

#[test]
fn down_of_an_unknown_topology_says_so_and_fails() {
    let name = format!("nosuch{}", std::process::id());
    let o = vlsp(&["down", &name]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not up"), "{}", stderr(&o));
}

#[test]
fn validate_refuses_unusable_vnode_names_with_a_position() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml"),
    )
    .unwrap();
    let line = src.lines().position(|l| l == "name = \"VM1\"").unwrap() + 1;
    for bad in ["VM 1", "VM/1", &"V".repeat(60)] {
        let f = temp("vnode.toml");
        std::fs::write(
            &f,
            src.replacen("name = \"VM1\"", &format!("name = \"{bad}\""), 1),
        )
        .unwrap();
        let o = vlsp(&["validate", f.to_str().unwrap()]);
        std::fs::remove_file(&f).unwrap();
        assert!(!o.status.success(), "{bad:?} passed validate");
        let at = format!("{}:{line}:8:", f.display());
        assert!(stderr(&o).contains(&at), "{bad:?}: {}", stderr(&o));
    }
}

#[test]
fn generate_refuses_what_does_not_fit() {
    let o = vlsp(&["generate", "chain", "100000"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("39937"), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("10.256."));
    let o = vlsp(&["generate", "chain", "10", "--providers", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("providers"), "{}", stderr(&o));
    let o = vlsp(&["generate", "chain", "10", "--name", "../x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("topology name"), "{}", stderr(&o));
}

#[test]
fn output_into_a_closed_pipe_is_not_a_panic() {
    for args in [
        &["generate", "chain", "5000"][..],
        &["status"][..],
        &["validate", "topologies/paper-4node.toml"][..],
    ] {
        let o = closed_pipe(args);
        assert!(
            o.status.success() && !stderr(&o).contains("panicked"),
            "{args:?}: {:?} {}",
            o.status,
            stderr(&o)
        );
    }
}

/// `vlsp up` of a topology that is up refuses and leaves the running one
/// alone; `down` stops it; a second `down` says it is not up.
#[test]
fn a_second_up_is_refused_and_the_first_keeps_running() {
    if !require_root("a_second_up_is_refused") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "l");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let file = temp("up.toml");
    std::fs::write(&file, t.to_toml()).unwrap();
    let f = file.to_str().unwrap();
    let o = vlsp(&["up", f, "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pid_file = Path::new("/run/vlsp").join(&name).join("pid");
    let pid_before = std::fs::read_to_string(&pid_file).unwrap();
    for args in [&["up", f, "--detach"][..], &["up", f][..]] {
        let o = vlsp(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains("already up"), "{}", stderr(&o));
        assert_eq!(
            leftovers(&name).len(),
            6,
            "the running topology was touched"
        );
        assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid_before);
    }
    let o = vlsp(&[
        "link",
        "setup",
        "--topology",
        &name,
        "--from",
        "VM1",
        "--to",
        "VM2",
        "--rate",
        "1mbit",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // `vlsp link list | true`: the reader is gone before the lines come.
    let o = closed_pipe(&["link", "list", "--topology", &name]);
    assert!(
        o.status.success() && !stderr(&o).contains("panicked"),
        "{:?} {}",
        o.status,
        stderr(&o)
    );
    let o = vlsp(&["down", &name]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(leftovers(&name).is_empty(), "left: {:?}", leftovers(&name));
    let o = vlsp(&["down", &name]);
    assert!(!o.status.success() && stderr(&o).contains("is not up"));
    std::fs::remove_file(&file).unwrap();
    let _ = std::fs::remove_file(Path::new("/run/vlsp").join(format!("{name}.log")));
}

/// A node that cannot start (its API socket path is taken by a directory)
/// fails `Testbed::up` after the substrate is up: nothing may be left.
#[test]
fn a_testbed_that_fails_to_start_leaves_no_namespace() {
    if !require_root("a_testbed_that_fails_to_start") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "m");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let sock = Path::new("/run/vlsp").join(&name).join("tb1.sock");
    std::fs::create_dir_all(sock.join("blocker")).unwrap();
    let err = vlsp::testbed::Testbed::up(t, &vlsp::testbed::Options::default())
        .err()
        .expect("tb1 cannot bind its API socket");
    let msg = format!("{err:#}");
    assert!(msg.contains("tb1") && msg.contains("removed"), "{msg}");
    assert!(leftovers(&name).is_empty(), "left: {:?}", leftovers(&name));
    assert!(!Path::new("/run/vlsp").join(&name).join("journal").exists());
}

/// `validate --json` says where a file is wrong (and still fails); a
/// malformed link id is refused before any node is asked.
#[test]
fn json_verdicts_and_malformed_link_ids() {
    let o = vlsp(&["validate", "--json", "topologies/paper-4node.toml"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(o.status.success() && v["valid"] == true, "{v}");
    assert_eq!(v["counts"]["vnodes"], 2, "{v}");
    let bad =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema/topology/unknown-key.toml");
    let o = vlsp(&["validate", "--json", bad.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!o.status.success() && v["valid"] == false, "{v}");
    assert!(
        v["line"].as_u64().unwrap() > 0 && v["message"].as_str().unwrap().contains("capcity"),
        "{v}"
    );
    let o = vlsp(&["link", "teardown", "xyz", "--topology", "nosuch"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a link id"), "{}", stderr(&o));
}

/// The listing verbs' `--json` parses, ids are short hex, and `link
/// teardown` needs nothing but a prefix of the id: the node that set the
/// link up is found by asking every router.
#[test]
fn listings_speak_json_and_links_tear_down_by_short_id() {
    if !require_root("listings_speak_json") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "j");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let file = temp("json.toml");
    std::fs::write(&file, t.to_toml()).unwrap();
    let o = vlsp(&["up", file.to_str().unwrap(), "--detach"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = |args: &[&str]| -> serde_json::Value {
        let o = vlsp(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&o.stdout)))
    };
    let setup = |json_flag: bool| {
        let mut a = vec![
            "link",
            "setup",
            "--topology",
            &name,
            "--from",
            "VM1",
            "--to",
            "VM2",
            "--rate",
            "1mbit",
        ];
        if json_flag {
            a.push("--json");
        }
        vlsp(&a)
    };
    let o = setup(true);
    assert!(o.status.success(), "{}", stderr(&o));
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = l["id"].as_str().unwrap().to_string();
    assert_eq!(id, format!("{:016x}", l["vlink_id"].as_u64().unwrap()));
    assert_eq!(
        (l["from"].as_str(), l["to"].as_str()),
        (Some("VM1"), Some("VM2"))
    );

    let list = json(&["link", "list", "--topology", &name, "--json"]);
    let mine: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["id"] == id.as_str())
        .collect();
    assert!(
        mine.len() >= 2,
        "VM1's host and VM2's host both know it: {list}"
    );
    assert!(
        mine.iter()
            .any(|x| x["node"] == "tb1" && x["state"] == "qni/up"),
        "{list}"
    );
    let o = vlsp(&["link", "list", "--topology", &name]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("link {} VM1", &id[..8])), "{text}");
    assert!(!text.contains(&l["vlink_id"].to_string()), "{text}");

    let stats = json(&[
        "link",
        "stats",
        "--topology",
        &name,
        "--node",
        "tb1",
        "--json",
    ]);
    assert_eq!(stats["node"], "tb1", "{stats}");
    let status = json(&["status", "--json"]);
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["topology"] == name.as_str()),
        "{status}"
    );

    // By 8 hex digits, without --from: tb1 (VM1's host) tears it down.
    let o = vlsp(&["link", "teardown", &id[..8], "--topology", &name]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&id[..8]) && out.contains("tb1"), "{out}");
    assert_eq!(
        json(&["link", "list", "--topology", &name, "--json"]),
        serde_json::json!([])
    );
    let o = vlsp(&["link", "teardown", &id[..8], "--topology", &name]);
    assert!(
        !o.status.success() && stderr(&o).contains("no virtual link has id"),
        "{}",
        stderr(&o)
    );

    // A second link, torn down by its whole id as JSON.
    let o = setup(true);
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = l["id"].as_str().unwrap();
    let v = json(&["link", "teardown", id, "--topology", &name, "--json"]);
    assert_eq!(
        (v["id"].as_str(), v["removed"].as_bool()),
        (Some(id), Some(true)),
        "{v}"
    );

    let o = vlsp(&["down", &name]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(leftovers(&name).is_empty(), "left: {:?}", leftovers(&name));
    std::fs::remove_file(&file).unwrap();
    let _ = std::fs::remove_file(Path::new("/run/vlsp").join(format!("{name}.log")));
}

/// `VLSP_ALLOCATOR` names an allocator or stops the program before it does
/// anything (a typo would otherwise measure the default without saying so).
#[test]
fn the_allocator_variable_is_checked() {
    let validate = |v: &str| {
        Command::new(env!("CARGO_BIN_EXE_vlsp"))
            .args(["validate", "topologies/paper-4node.toml"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("VLSP_ALLOCATOR", v)
            .output()
            .unwrap()
    };
    for ok in ["glibc", "mimalloc", ""] {
        let o = validate(ok);
        assert!(o.status.success(), "{ok:?}: {}", stderr(&o));
    }
    for bad in ["jemalloc", "GLIBC"] {
        let o = validate(bad);
        assert!(!o.status.success(), "{bad:?} accepted");
        let e = stderr(&o);
        assert!(
            e.contains("VLSP_ALLOCATOR") && e.contains("glibc") && e.contains("mimalloc"),
            "{bad:?}: {e}"
        );
    }
}
