//! The layering rule, checked from the source: a layer (a top-level folder of
//! `src/`) imports only layers below it, and no two files import each other
//! through a circle. Reads every `crate::...`, `super::...` and `self::...`
//! path outside test modules (relative ones resolved against the file's module).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom up. A file may import its own layer or any layer listed before it.
const LAYERS: [&str; 9] = [
    "model",
    "wire",
    "proto",
    "topology",
    "kernel",
    "node",
    "testbed",
    "experiment",
    "cli",
];

/// A violation, named by file and the path it imports.
#[derive(Debug, PartialEq)]
enum Violation {
    Upward { file: String, import: String },
    Unknown { file: String, import: String },
    Circle(Vec<String>),
}

fn layer(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == name)
}

/// The code of a file without its `#[cfg(test)]` modules and comments.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(d) = skip_depth.as_mut() {
            *d += t.matches('{').count() as i32 - t.matches('}').count() as i32;
            if *d <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test && (t.starts_with("mod ") || t.contains(" mod ")) && t.contains('{') {
            let d = t.matches('{').count() as i32 - t.matches('}').count() as i32;
            if d > 0 {
                skip_depth = Some(d);
            }
            pending_cfg_test = false;
            continue;
        }
        pending_cfg_test = false;
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every `crate::a::b::...` path in `code`, grouped imports expanded.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    paths_in(code, &[])
}

/// The module path of a file under `src/` (`proto/gist/mod.rs` is
/// `proto::gist`, `proto/gist/cookie.rs` is `proto::gist::cookie`).
fn module_of(file: &str) -> Vec<String> {
    let mut m: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if m.last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        m.pop();
    }
    m
}

/// Every absolute path in `code`: `crate::` ones as written, `super::` and
/// `self::` ones resolved against `module` (the file's module path).
fn paths_in(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut paths = vec![];
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let before = code[..i].chars().last();
        let starts = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let next = rest.chars().next().map_or(1, char::len_utf8);
        let (base, skip) = if !starts {
            (None, next)
        } else if let Some(r) = rest.strip_prefix("crate::") {
            (Some(vec![]), rest.len() - r.len())
        } else if rest.starts_with("super::") && !module.is_empty() {
            let mut base = module.to_vec();
            let mut r = rest;
            while let Some(more) = r.strip_prefix("super::") {
                base.pop();
                r = more;
            }
            (Some(base), rest.len() - r.len())
        } else if let Some(r) = rest.strip_prefix("self::").filter(|_| !module.is_empty()) {
            (Some(module.to_vec()), rest.len() - r.len())
        } else {
            (None, next)
        };
        if let Some(base) = base {
            paths.extend(expand(&rest[skip..], base));
        }
        i += skip;
    }
    paths
}

/// Reads one path (possibly `{a, b::c}` groups) at the start of `s`.
fn expand(s: &str, prefix: Vec<String>) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut items = vec![];
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&inner[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return items
            .into_iter()
            .filter(|i| !i.trim().is_empty())
            .flat_map(|i| expand(i, prefix.clone()))
            .collect();
    }
    let ident: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        return vec![prefix];
    }
    let mut p = prefix;
    p.push(ident.clone());
    match s[ident.len()..].strip_prefix("::") {
        Some(more) => expand(more, p),
        None => vec![p],
    }
}

/// The file a module path lives in (longest prefix that is a file).
fn module_file(src: &Path, path: &[String]) -> Option<String> {
    for n in (1..=path.len()).rev() {
        let rel: PathBuf = path[..n].iter().collect();
        for cand in [rel.with_extension("rs"), rel.join("mod.rs")] {
            if src.join(&cand).is_file() {
                return Some(cand.to_string_lossy().into_owned());
            }
        }
    }
    None
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Checks a source tree: `(relative file, text)` pairs plus the directory to
/// resolve module paths against.
fn check(src: &Path, files: &[(String, String)]) -> Vec<Violation> {
    let mut bad = vec![];
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in files {
        let first = file.split('/').next().unwrap_or("");
        let own = match file.as_str() {
            "lib.rs" | "main.rs" => None,
            _ => layer(first),
        };
        for path in paths_in(&code(text), &module_of(file)) {
            let Some(top) = path.first() else { continue };
            let Some(target) = layer(top) else {
                bad.push(Violation::Unknown {
                    file: file.clone(),
                    import: path.join("::"),
                });
                continue;
            };
            if let Some(own) = own
                && target > own
            {
                bad.push(Violation::Upward {
                    file: file.clone(),
                    import: path.join("::"),
                });
            }
            if let Some(to) = module_file(src, &path)
                && &to != file
            {
                graph.entry(file.clone()).or_default().insert(to);
            }
        }
    }
    if let Some(c) = find_circle(&graph) {
        bad.push(Violation::Circle(c));
    }
    bad
}

/// A circle in the file graph, if any (depth-first search with colours).
fn find_circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn dfs(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let i = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[i..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = dfs(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = dfs(n, g, &mut state, &mut vec![])
        {
            return Some(c);
        }
    }
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn src_files() -> Vec<(String, String)> {
    let src = src_dir();
    let mut paths = vec![];
    rust_files(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn layers_import_only_downward_and_files_form_no_circle() {
    let bad = check(&src_dir(), &src_files());
    assert!(
        bad.is_empty(),
        "layering broken (order, bottom up: {}):\n{}",
        LAYERS.join(" < "),
        bad.iter()
            .map(|v| format!("  {v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_top_level_folder_is_a_layer() {
    for e in std::fs::read_dir(src_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                layer(&name).is_some(),
                "src/{name}/ is not in LAYERS: place it in the order"
            );
        }
    }
}

#[test]
fn an_upward_import_added_on_purpose_is_caught() {
    let mut files = src_files();
    let (_, text) = files
        .iter_mut()
        .find(|(f, _)| f == "wire/vlsp.rs")
        .expect("src/wire/vlsp.rs exists");
    text.push_str("\nuse crate::kernel::tunnel::Tunnels;\n");
    let bad = check(&src_dir(), &files);
    assert!(bad.contains(&Violation::Upward {
        file: "wire/vlsp.rs".into(),
        import: "kernel::tunnel::Tunnels".into()
    }));
}

#[test]
fn a_circle_added_on_purpose_is_caught() {
    let mut files = src_files();
    for (f, text) in files.iter_mut() {
        if f == "model/units.rs" {
            text.push_str("\nuse crate::model::ports::GIST_PORT;\n");
        }
        if f == "model/ports.rs" {
            text.push_str("\nuse crate::model::units::parse_rate;\n");
        }
    }
    let bad = check(&src_dir(), &files);
    assert!(
        bad.iter().any(|v| matches!(v, Violation::Circle(_))),
        "{bad:?}"
    );
}

#[test]
fn relative_paths_resolve_against_the_files_module() {
    let text =
        "use super::machine::{Flow, Sid};\nuse super::super::wire::x;\nfn f() { self::g(); }\n";
    let paths: Vec<_> = paths_in(&code(text), &module_of("proto/gist/cookie.rs"))
        .iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "proto::gist::machine::Flow",
            "proto::gist::machine::Sid",
            "proto::wire::x",
            "proto::gist::cookie::g"
        ]
    );
    assert_eq!(module_of("proto/gist/mod.rs"), ["proto", "gist"]);
}

#[test]
fn grouped_imports_and_test_modules_are_read_right() {
    let text = "use crate::{wire::gist::{A, B}, model::units};\n\
                fn f() { crate::kernel::x(); }\n\
                // crate::cli::ignored\n\
                #[cfg(test)]\nmod tests {\n    use crate::cli::Y;\n}\n";
    let paths = crate_paths(&code(text));
    let tops: Vec<_> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        tops,
        [
            "wire::gist::A",
            "wire::gist::B",
            "model::units",
            "kernel::x"
        ]
    );
}
