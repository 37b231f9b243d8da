//! `vlsp compare` on fixture folders (tests/data/compare/): the statistics
//! against scipy's and statsmodels', the verdicts (faster, slower,
//! equivalent, inconclusive), the exit codes of --fail-if-slower, the files
//! it writes, and refusals that name the folder at fault.
//!
//! Expected numbers: printed by tests/data/compare/fixtures.py with scipy
//! 1.17.1 (`ttest_ind(equal_var=False)`, `mannwhitneyu(method="auto")`,
//! `t.ppf`; Holm's correction written out in the script) and statsmodels
//! 0.15.0 (`ttost_ind(usevar="unequal")` on the logarithms).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compare")
        .join(name)
        .display()
        .to_string()
}

/// A scratch folder for one test, removed when dropped (also on failure).
struct Scratch(PathBuf);

impl Scratch {
    /// Unique per call: the tests run in parallel in one process.
    fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vlsp-compare-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn s(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vlsp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(args)
        .output()
        .unwrap()
}

/// `vlsp compare A B --format json` (files into a scratch folder).
fn json(a: &str, b: &str, extra: &[&str]) -> Value {
    let out = Scratch::new("json");
    let mut args = vec![
        "compare",
        a,
        b,
        "--format",
        "json",
        "-o",
        &out.0.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = vlsp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn metric<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {v}"))
}

#[track_caller]
fn close(v: &Value, want: f64, rel: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "got {got}, scipy says {want}"
    );
}

#[test]
fn same_code_is_equivalent() {
    let v = json(&data("base"), &data("same"), &[]);
    let s = metric(&v, "setup_A");
    close(&s["welch"]["t"], -0.165652665, 1e-8);
    close(&s["welch"]["df"], 20.97794134, 1e-8);
    close(&s["welch"]["p"], 0.8700163533, 1e-8);
    close(&s["welch"]["diff_ci95"][0], -44.27922879, 1e-7);
    close(&s["welch"]["diff_ci95"][1], 37.74589545, 1e-7);
    // A tie across the samples: the normal approximation.
    close(&s["mwu"]["u_b"], 74.5, 0.0);
    close(&s["mwu"]["p"], 0.9080526532, 1e-8);
    assert_eq!(s["mwu"]["method"], "asymptotic");
    let t = metric(&v, "teardown_A");
    close(&t["welch"]["p"], 0.6792443803, 1e-8);
    close(&t["mwu"]["u_b"], 74.0, 0.0);
    close(&t["mwu"]["p"], 0.9309425069, 1e-8);
    for m in [s, t] {
        close(&m["mwu_p_holm"], 1.0, 0.0);
        close(&m["welch_p_holm"], 1.0, 0.0);
        assert_eq!(m["verdict"], "equivalent");
    }
    // The equivalence test (statsmodels' ttost_ind on the logs, ±10%).
    let e = &s["tost"];
    close(&e["margin_pct"], 10.0, 0.0);
    close(&e["p"], 1.23464737e-10, 1e-6);
    close(&e["t_lower"], 11.22064807, 1e-8);
    close(&e["t_upper"], -11.53602796, 1e-8);
    close(&e["df"], 21.01212673, 1e-8);
    close(&e["ratio"], 0.9986799887, 1e-9);
    close(&e["ratio_ci"][0], 0.9843889045, 1e-9);
    close(&e["ratio_ci"][1], 1.013178547, 1e-9);
    close(&e["ci_level"], 0.9, 1e-12);
    close(&t["tost"]["p"], 8.768201256e-05, 1e-7);
    close(&t["tost"]["df"], 17.23784719, 1e-8);
    assert_eq!(v["primary_test"], "mann-whitney-u over runs");
    // One session a side: warned that drift between sessions is untested.
    assert!(
        v["warnings"][0].as_str().unwrap().contains("1 session(s)"),
        "{}",
        v["warnings"]
    );
    assert_eq!(s["level"]["unit"], "runs");
    assert_eq!(s["headline"], true);
    close(&v["margin_pct"], 10.0, 0.0);
    assert_eq!(v["interleaved"], false);
}

#[test]
fn a_slower_run_is_slower_and_holm_corrected() {
    let v = json(&data("base"), &data("slower"), &[]);
    let s = metric(&v, "setup_A");
    close(&s["welch"]["t"], 22.5220966, 1e-8);
    close(&s["welch"]["df"], 17.13219414, 1e-8);
    close(&s["welch"]["p"], 3.608936962e-14, 1e-6);
    close(&s["welch_p_holm"], 7.217873925e-14, 1e-6);
    close(&s["welch"]["diff_ci95"][0], 650.869646, 1e-8);
    close(&s["mwu"]["u_b"], 144.0, 0.0);
    close(&s["mwu"]["p_b_greater"], 1.0, 0.0);
    close(&s["mwu"]["p"], 3.658455354e-05, 1e-8);
    close(&s["mwu_p_holm"], 7.316910708e-05, 1e-8);
    close(&s["tost"]["p"], 1.0, 1e-12);
    close(&s["tost"]["ratio"], 1.308495109, 1e-9);
    close(&s["tost"]["t_upper"], 15.6539335, 1e-8);
    assert_eq!(s["verdict"], "slower");
    // Means 2325.667 and 3043.767 µs, medians 2305.85 and 3010.55 µs.
    close(&s["change_mean_pct"], 30.877167837, 1e-9);
    close(&s["change_median_pct"], 30.561398183, 1e-9);
    let t = metric(&v, "teardown_A");
    close(&t["mwu_p_holm"], 0.9309425069, 1e-8);
    assert_eq!(t["verdict"], "equivalent");
    // The other way round it is faster.
    let r = json(&data("slower"), &data("base"), &[]);
    assert_eq!(metric(&r, "setup_A")["verdict"], "faster");
}

#[test]
fn small_samples_without_ties_use_the_exact_distribution() {
    let v = json(&data("small-a"), &data("small-b"), &[]);
    let s = metric(&v, "setup_A");
    assert_eq!(s["mwu"]["method"], "exact");
    close(&s["mwu"]["u_b"], 23.0, 0.0);
    // 2 · 4/252 (scipy: 0.03174603175)
    close(&s["mwu"]["p"], 0.03174603175, 1e-9);
    close(&s["welch"]["p"], 0.02123064125, 1e-8);
    close(&s["welch"]["df"], 7.979765353, 1e-8);
    assert_eq!(s["verdict"], "slower");
    // At α = 0.01 it is not significant, and five runs cannot show
    // equivalence either (the 98% CI of the ratio reaches 1.50).
    let v = json(&data("small-a"), &data("small-b"), &["--alpha", "0.01"]);
    let s = metric(&v, "setup_A");
    assert_eq!(s["verdict"], "inconclusive");
    close(&s["tost"]["ratio_ci"][0], 0.9956220672, 1e-9);
    close(&s["tost"]["ratio_ci"][1], 1.500394756, 1e-9);
    close(&s["tost"]["p"], 0.913958079, 1e-8);
}

/// The case: a shift of 4% that Mann-Whitney finds significant is
/// equivalent under a 10% margin, slower under a 3% one.
#[test]
fn a_significant_shift_inside_the_margin_is_equivalent() {
    let v = json(&data("base"), &data("shifted"), &[]);
    let s = metric(&v, "setup_A");
    close(&s["mwu"]["p"], 0.001353941443, 1e-8);
    close(&s["mwu_p_holm"], 0.002707882886, 1e-8);
    close(&s["tost"]["p"], 4.449350363e-07, 1e-6);
    close(&s["tost"]["ratio"], 1.03862545, 1e-9);
    close(&s["tost"]["ratio_ci"][0], 1.023764917, 1e-9);
    close(&s["tost"]["ratio_ci"][1], 1.053701691, 1e-9);
    assert_eq!(s["verdict"], "equivalent");
    let v = json(&data("base"), &data("shifted"), &["--margin", "3%"]);
    let s = metric(&v, "setup_A");
    close(&s["tost"]["p"], 0.8346423188, 1e-8);
    close(&s["tost"]["t_upper"], 0.9957238942, 1e-8);
    assert_eq!(s["verdict"], "slower");
    let t = metric(&v, "teardown_A");
    close(&t["tost"]["p"], 0.131427496, 1e-7);
    assert_eq!(t["verdict"], "inconclusive");
    // A metric's own margin wins over --margin.
    let v = json(
        &data("base"),
        &data("shifted"),
        &["--margin", "3%", "--margin-for", "setup_*=10%"],
    );
    let s = metric(&v, "setup_A");
    close(&s["tost"]["margin_pct"], 10.0, 0.0);
    assert_eq!(s["verdict"], "equivalent");
    assert_eq!(metric(&v, "teardown_A")["verdict"], "inconclusive");
    // --fail-if-slower keeps its meaning: significantly slower and the
    // median grew by more than the threshold, whatever the margin.
    let out = Scratch::new("shift-exit");
    let o = vlsp(&[
        "compare",
        &data("base"),
        &data("shifted"),
        "--fail-if-slower",
        "2%",
        "-o",
        &out.s(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("equivalent") && text.contains("alternating blocks"),
        "{text}"
    );
}

#[test]
fn fail_if_slower_exit_codes() {
    let out = Scratch::new("exit");
    let run = |b: &str, pct: &str| {
        vlsp(&[
            "compare",
            &data("base"),
            &data(b),
            "--fail-if-slower",
            pct,
            "-o",
            &out.s(),
        ])
    };
    // setup_A's median grew by 30.6%: above 10%, below 40%.
    let o = run("slower", "10%");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("setup_A (+30.6%)") && err.contains("10%"),
        "{err}"
    );
    assert!(!err.contains("teardown_A"), "{err}");
    assert_eq!(run("slower", "40%").status.code(), Some(0));
    assert_eq!(run("same", "0%").status.code(), Some(0));
    // The table is printed either way.
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("setup_A") && text.contains("slower"),
        "{text}"
    );
    assert!(
        text.contains("1 slower, 0 faster, 1 equivalent, 0 inconclusive"),
        "{text}"
    );
    assert!(text.contains("+30.6%") && text.contains("+30.9%"), "{text}");
    // The ratio's interval says its level: the TOST's 1 − 2α, not the
    // 95 % of the means beside it.
    assert!(text.contains("Δ geo-mean [90% CI]"), "{text}");
    let strict = vlsp(&[
        "compare",
        &data("base"),
        &data("slower"),
        "--alpha",
        "0.01",
        "-o",
        &out.s(),
    ]);
    let text = String::from_utf8_lossy(&strict.stdout);
    assert!(text.contains("Δ geo-mean [98% CI]"), "{text}");
    // A threshold that is not a percentage is refused by the parser.
    assert_eq!(run("slower", "ten").status.code(), Some(2));
}

#[test]
fn writes_markdown_json_and_the_figure() {
    let out = Scratch::new("files");
    let o = vlsp(&[
        "compare",
        &data("base"),
        &data("slower"),
        "--format",
        "md",
        "-o",
        &out.s(),
    ]);
    assert!(o.status.success());
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.starts_with("### Comparison"), "{md}");
    assert!(
        md.contains("| setup_A (headline) | ms |") && md.contains("**slower**"),
        "{md}"
    );
    assert!(md.contains("| Δ geo-mean [90% CI] |"), "{md}");
    assert_eq!(
        std::fs::read_to_string(out.0.join("compare.md"))
            .unwrap()
            .trim_end(),
        md.trim_end()
    );
    let png = std::fs::read(out.0.join("compare.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(out.0.join("compare.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("setup_A"));
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(out.0.join("compare.json")).unwrap())
            .unwrap();
    assert_eq!(j["metrics"].as_array().unwrap().len(), 2);
    // --metrics narrows the family (and Holm's correction).
    let v = json(&data("base"), &data("slower"), &["--metrics", "setup_*"]);
    let s = metric(&v, "setup_A");
    close(&s["mwu_p_holm"], 3.658455354e-05, 1e-8);
    assert_eq!(v["metrics"].as_array().unwrap().len(), 1);
}

#[test]
fn refusals_name_the_folder() {
    let o = vlsp(&["compare", "/nonexistent-vlsp-folder", &data("base")]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent-vlsp-folder") && err.contains("runs.csv"),
        "{err}"
    );
    let o = vlsp(&[
        "compare",
        &data("base"),
        &data("same"),
        "--a-variant",
        "script",
        "--no-files",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no variant \"script\""), "{err}");
}

/// One folder alone is compared against the committed results of its
/// experiment: a copy of them has no difference at all.
#[test]
fn one_folder_is_compared_with_the_committed_results() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/paper-table1");
    let copy = Scratch::new("baseline");
    for f in ["runs.csv", "meta.json"] {
        std::fs::copy(committed.join(f), copy.0.join(f)).unwrap();
    }
    let o = vlsp(&[
        "compare",
        &copy.s(),
        "--format",
        "json",
        "--fail-if-slower",
        "0%",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["a"]["dir"]
            .as_str()
            .unwrap()
            .ends_with("results/paper-table1")
    );
    let ms = v["metrics"].as_array().unwrap();
    assert!(ms.len() > 20, "{}", ms.len());
    for m in ms {
        assert_ne!(m["verdict"], "slower", "{m}");
        assert_ne!(m["verdict"], "faster", "{m}");
        close(&m["mwu"]["p"], 1.0, 1e-12);
    }
    assert!(copy.0.join("compare/compare.png").is_file());
}

/// `vlsp ab` with two stand-in binaries (shell scripts that answer `run EXP
/// --runs N --output DIR` with a runs.csv): the blocks alternate A B B A,
/// the verdict tests one median per block, and --fail-if-slower exits 1.
#[test]
fn ab_alternates_blocks_and_tests_block_medians() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("ab");
    let log = dir.0.join("calls.log");
    let exp = dir.0.join("exp.toml");
    std::fs::write(&exp, "# stand-in\n").unwrap();
    // Values: base + 10 · (call number) + run: every block differs a little.
    let script = |name: &str, base: u32| {
        let p = dir.0.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nset -e\n[ \"$1\" = --version ] && {{ echo 'vlsp 0.0.0 (commit {name}{name}{name}{name})'; exit 0; }}\n{HELP}\
                 echo {name} >> '{log}'\nk=$(wc -l < '{log}')\nmkdir -p \"$6\"\n\
                 {{ echo variant,run,setup_A_us; i=1; while [ $i -le \"$4\" ]; do \
                 echo auth,$i,$(({base} + 10 * k + i)); i=$((i + 1)); done; }} > \"$6/runs.csv\"\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    let (a, b) = (script("A", 1000), script("B", 3000));
    let out = dir.0.join("out");
    let o = vlsp(&[
        "ab",
        exp.to_str().unwrap(),
        "--a-bin",
        &a,
        "--b-bin",
        &b,
        "--blocks",
        "4",
        "--runs-per-block",
        "3",
        "--fail-if-slower",
        "10%",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let calls = std::fs::read_to_string(&log).unwrap().replace('\n', " ");
    assert_eq!(calls.trim(), "A B B A A B B A");
    assert!(out.join("blocks/03-B/runs.csv").is_file());
    // One row of medians per block; every run pooled beside it.
    let medians = std::fs::read_to_string(out.join("a/runs.csv")).unwrap();
    assert_eq!(medians.lines().count(), 1 + 4, "{medians}");
    // Block 1 (call 1): 1011, 1012, 1013 -> median 1012.
    assert!(medians.contains("auth,1,1012"), "{medians}");
    let all = std::fs::read_to_string(out.join("a/all-runs.csv")).unwrap();
    assert_eq!(all.lines().count(), 1 + 12);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("4 block medians"), "{text}");
    assert!(text.contains("| 2 | B | 3022.0 |"), "{text}");
    assert!(text.contains("1 slower"), "{text}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("setup_A") && err.contains("10%"), "{err}");
    assert!(out.join("compare/compare.png").is_file());
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare/compare.json")).unwrap())
            .unwrap();
    assert_eq!(j["interleaved"], true);
    // Each side is labelled with its own binary's commit.
    assert_eq!(
        (j["a"]["commit"].as_str(), j["b"]["commit"].as_str()),
        (Some("AAAA"), Some("BBBB"))
    );
    assert!(
        text.contains("commit AAAA") && text.contains("commit BBBB"),
        "{text}"
    );
    // 4 against 4 block medians, completely separated: exact p = 2/70.
    let s = metric(&j, "setup_A");
    close(&s["mwu"]["p"], 2.0 / 70.0, 1e-12);
    // The verdict's test is paired: pairs (1012, 3022), (1042, 3032),
    // (1052, 3062), (1082, 3072) in run order A B B A A B B A.
    assert_eq!(s["level"]["unit"], "blocks");
    assert_eq!(s["level"]["pairs"], 4);
    let d: Vec<f64> = [
        (1012.0, 3022.0),
        (1042.0, 3032.0),
        (1052.0, 3062.0),
        (1082.0, 3072.0),
    ]
    .iter()
    .map(|(a, b): &(f64, f64)| (b / a).ln())
    .collect();
    let m = d.iter().sum::<f64>() / 4.0;
    let sd = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 3.0).sqrt();
    close(&s["replicate"]["t"], m / (sd / 2.0), 1e-9);
    close(&s["replicate"]["df"], 3.0, 0.0);
}

/// A stand-in vlsp for the hostile `vlsp ab` tests: `--version` as given,
/// `run` as given (shell).
/// A stand-in's answer to `run --help` (ab asks it whether `--sessions`
/// exists; the answer is not a block).
const HELP: &str =
    "if [ \"$1\" = run ] && [ \"$2\" = --help ]; then echo '  --sessions <N>'; exit 0; fi\n";

fn stand_in(dir: &Path, name: &str, version: &str, run: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("#!/bin/sh\nif [ \"$1\" = --version ]; then {version}; fi\n{HELP}{run}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// A --b-bin that does not exist, exits non-zero, or writes garbage: a
/// clear error naming it, and no comparison (not even an old one).
#[test]
fn ab_refuses_a_broken_binary_by_name() {
    let dir = Scratch::new("ab-hostile");
    let exp = dir.0.join("exp.toml");
    std::fs::write(&exp, "# stand-in\n").unwrap();
    let good = stand_in(
        &dir.0,
        "good",
        "echo 'vlsp 0.0.0 (commit 1111)'; exit 0",
        "mkdir -p \"$6\"; printf 'variant,run,setup_A_us\\nauth,1,100\\nauth,2,101\\n' > \"$6/runs.csv\"",
    );
    let failing = stand_in(&dir.0, "failing", "exit 1", "exit 1");
    let crashing = stand_in(
        &dir.0,
        "crashing",
        "echo 'vlsp 0.0.0 (commit 2222)'; exit 0",
        "echo 'boom: no namespace' >&2; exit 3",
    );
    let garbage = stand_in(
        &dir.0,
        "garbage",
        "echo 'vlsp 0.0.0 (commit 3333)'; exit 0",
        "mkdir -p \"$6\"; printf 'variant,run,setup_A_us\\nauth,1,fast\\n' > \"$6/runs.csv\"",
    );
    let empty = stand_in(
        &dir.0,
        "empty",
        "echo 'vlsp 0.0.0 (commit 4444)'; exit 0",
        "mkdir -p \"$6\"; printf 'variant,run\\nauth,1\\n' > \"$6/runs.csv\"",
    );
    let out = dir.0.join("out");
    // An old comparison in the output folder (of an earlier `vlsp ab`,
    // which marked it) must not survive a failure.
    std::fs::create_dir_all(out.join("compare")).unwrap();
    std::fs::write(out.join(".vlsp-ab"), "").unwrap();
    std::fs::write(out.join("compare/compare.md"), "old").unwrap();
    let ab = |b: &str| {
        vlsp(&[
            "ab",
            exp.to_str().unwrap(),
            "--a-bin",
            &good,
            "--b-bin",
            b,
            "--blocks",
            "2",
            "--runs-per-block",
            "2",
            "-o",
            out.to_str().unwrap(),
        ])
    };
    for (bin, want) in [
        ("/nonexistent/vlsp-b".to_string(), "is not a file"),
        (failing.clone(), "is not a working vlsp binary"),
        (crashing.clone(), "boom: no namespace"),
        (garbage.clone(), "no readable"),
        (empty.clone(), "without measurements"),
    ] {
        let o = ab(&bin);
        assert_eq!(o.status.code(), Some(1), "{bin}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&bin) && err.contains(want), "{bin}: {err}");
        // Blocks had started: the old results were cleared first.
        if ["boom", "no readable", "without measurements"].contains(&want) {
            assert!(!out.join("compare").exists(), "{bin}: old comparison left");
            assert!(!out.join("a").exists() && !out.join("b").exists(), "{bin}");
        }
        assert!(
            o.stdout.is_empty(),
            "{bin}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // Failures after the first block say that nothing was compared.
    let err = String::from_utf8_lossy(&ab(&crashing).stderr).to_string();
    assert!(
        err.contains("block 2 (B) failed: no comparison written"),
        "{err}"
    );
}
