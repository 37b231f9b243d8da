//! The JSON Schemas editors check topology and experiment files with: the
//! committed schemas/*.schema.json are what `vlsp schema` writes now, every
//! shipped file points at its schema on its first line and passes it, and
//! the schema refuses what vlsp refuses for the common mistakes (fixtures
//! in tests/data/schema/).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The two file kinds: `vlsp schema` argument, shipped folder, directive.
const KINDS: [(&str, &str); 2] = [("topology", "topologies"), ("experiment", "experiments")];

fn vlsp_schema(kind: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_vlsp"))
        .args(["schema", kind])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn committed(kind: &str) -> PathBuf {
    root().join(format!("schemas/{kind}.schema.json"))
}

fn validator(kind: &str) -> jsonschema::Validator {
    let s: Value = serde_json::from_str(&std::fs::read_to_string(committed(kind)).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", committed(kind).display()));
    assert!(
        jsonschema::meta::is_valid(&s),
        "{kind} schema is not a valid JSON Schema"
    );
    jsonschema::validator_for(&s).unwrap()
}

/// A TOML file as the JSON the schema describes.
fn as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let v: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::to_value(v).unwrap()
}

/// Schema errors of `path`, one line each.
fn errors(v: &jsonschema::Validator, path: &Path) -> Vec<String> {
    let inst = as_json(path);
    v.iter_errors(&inst)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .toml in {}", dir.display());
    v
}

/// vlsp's own verdict on a file of `kind`: the error, if refused.
fn vlsp_refusal(kind: &str, path: &Path) -> Option<String> {
    match kind {
        "topology" => vlsp::topology::Topology::load(path)
            .err()
            .map(|e| e.to_string()),
        _ => vlsp::experiment::Experiment::load(path)
            .err()
            .map(|e| format!("{e:#}")),
    }
}

#[test]
fn committed_schemas_are_what_vlsp_schema_writes() {
    for (kind, _) in KINDS {
        let want = vlsp_schema(kind);
        let have = std::fs::read_to_string(committed(kind)).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `vlsp schema {kind} -o schemas/{kind}.schema.json`",
            committed(kind).display()
        );
    }
}

#[test]
fn every_shipped_file_names_its_schema_and_passes_it() {
    for (kind, dir) in KINDS {
        let v = validator(kind);
        let directive = format!("#:schema ../schemas/{kind}.schema.json");
        for f in toml_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&f).unwrap();
            assert_eq!(
                text.lines().next(),
                Some(directive.as_str()),
                "{}: the first line must be `{directive}` (Taplo's schema directive)",
                f.display()
            );
            let errs = errors(&v, &f);
            assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
        }
    }
}

#[test]
fn the_schema_refuses_what_vlsp_refuses() {
    for (kind, _) in KINDS {
        let v = validator(kind);
        let files = toml_files(&root().join("tests/data/schema").join(kind));
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let refused = vlsp_refusal(kind, &f);
            let errs = errors(&v, &f);
            if name.starts_with("good-") {
                assert_eq!(refused, None, "{name}: vlsp refuses it");
                assert!(errs.is_empty(), "{name}: the schema refuses it: {errs:#?}");
            } else {
                assert!(refused.is_some(), "{name}: vlsp accepts it");
                assert!(!errs.is_empty(), "{name}: the schema accepts it");
            }
        }
    }
}

/// Rates: the schema's pattern reads what `Rate::parse` reads.
#[test]
fn rate_strings_pass_the_schema_as_vlsp_reads_them() {
    let v = validator("experiment");
    let with_rate =
        |r: &str| serde_json::json!({"experiment": {"name": "x", "kind": "hmac", "rate": r}});
    for r in [
        "10mbit", "500kbit", "1gbit", "64000", "1.5mbit", "125kbps", "1Gbit", "10M", "8bps",
        " 10mbit ",
    ] {
        assert!(vlsp::model::units::Rate::parse(r).is_ok(), "{r}");
        assert!(v.is_valid(&with_rate(r)), "schema refuses rate {r:?}");
    }
    for r in ["10 mbit", "fast", "mbit", "10furlongs", "-1mbit", ""] {
        assert!(vlsp::model::units::Rate::parse(r).is_err(), "{r}");
        assert!(!v.is_valid(&with_rate(r)), "schema accepts rate {r:?}");
    }
}

/// What an editor shows: descriptions from the doc comments, examples,
/// enums spelled as in the files, no unknown keys.
#[test]
fn the_schema_describes_keys_for_the_editor() {
    let t: Value = serde_json::from_str(&vlsp_schema("topology")).unwrap();
    assert_eq!(t["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(t["additionalProperties"], false);
    let hdr = &t["definitions"]["Header"];
    assert_eq!(hdr["additionalProperties"], false);
    assert!(
        hdr["properties"]["refresh_ms"]["description"]
            .as_str()
            .unwrap()
            .contains("refresh period"),
        "{hdr}"
    );
    let text = t.to_string();
    for word in [
        "\"nsis-ka\"",
        "\"hmac-sha256-128\"",
        "\"gretap\"",
        "\"qemu\"",
    ] {
        assert!(text.contains(word), "{word} missing");
    }
    assert!(text.contains("\"examples\""), "no examples");
    let e: Value = serde_json::from_str(&vlsp_schema("experiment")).unwrap();
    assert!(e.to_string().contains("\"setup-teardown\""));
}
