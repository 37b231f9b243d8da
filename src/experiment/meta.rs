//! `meta.json`: what ran, where, and how far it got.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::experiment::file::{Experiment, Kind};

/// The commit this binary was built from (by `build.rs`).
pub const BUILD_COMMIT: &str = env!("VLSP_COMMIT");

/// `vlsp --version`: `<version> (commit <hash>)`, which `vlsp ab` reads
/// to label each side with its own binary's commit.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VLSP_COMMIT"),
    ")"
);

/// What ran, where: `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// The experiment's `name`.
    pub experiment: String,
    pub kind: Kind,
    pub description: String,
    pub runs_requested: usize,
    /// Rows written to `runs.csv` (less than requested when stopped early).
    pub runs_done: usize,
    /// Sessions (fresh topologies) the runs were split over.
    #[serde(default = "one")]
    pub sessions: usize,
    /// The commit the binary was built from ([`BUILD_COMMIT`]; "-dirty"
    /// when tracked files differed from it, "unknown" when built outside
    /// git).
    pub commit: String,
    /// `uname -r`.
    pub kernel: String,
    /// CPU model and core count.
    pub cpu: String,
    pub date_utc: String,
    /// The experiment's backend, or "from topology".
    pub backend: String,
    pub topology_file: Option<String>,
    pub topology_sha256: Option<String>,
    /// Names of the QNI, QNEs and QNR, in path order (for the report).
    pub path: Vec<String>,
    pub command_line: String,
    pub failure: Option<String>,
    /// QEMU virtual nodes: accelerator (and why) and boot times.
    #[serde(default)]
    pub qemu_accel: Option<String>,
    #[serde(default)]
    pub qemu_boot_ms: Vec<(String, f64)>,
    /// GIST sent the first NSLP data in its Query (`VLSP_GIST_DATA_IN_QUERY=1`
    /// in the environment of the run, as the nodes read it): a mode that
    /// changes setup times, so a result must say whether it was on.
    #[serde(default)]
    pub gist_data_in_query: bool,
    /// Topologies up to this many routers had every link shaped at `up`;
    /// larger ones shape a link when a reservation first needs it
    /// ([`crate::kernel::substrate::SHAPE_EAGERLY_UP_TO`]). Absent in
    /// older records.
    #[serde(default)]
    pub shape_eagerly_up_to: Option<usize>,
    /// `VLSP_*` environment variables that switch optional modes on (e.g.
    /// `VLSP_NODES_PER_THREAD`, `VLSP_GIST_DATA_IN_QUERY`); keys left out.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// The memory allocator of the process that ran the experiment
    /// (`mimalloc` or `glibc`, [`crate::model::allocator`]): it moves long
    /// chains' times by several per cent. Absent in older records (glibc
    /// before stop 34).
    #[serde(default)]
    pub allocator: Option<String>,
}

/// Whether the nodes of this process run GIST's data-in-Query mode (read
/// as `crate::node::config` reads it).
fn gist_data_in_query() -> bool {
    crate::node::config::mode_on(crate::node::config::GIST_DATA_IN_QUERY_ENV)
}

fn one() -> usize {
    1
}

/// QEMU virtual nodes of a run: accelerator (and why), boot times in ms.
pub type GuestInfo = (String, Vec<(String, f64)>);

fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn sha256_file(p: &Path) -> Option<String> {
    use sha2::Digest;
    let b = std::fs::read(p).ok()?;
    Some(
        sha2::Sha256::digest(&b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect(),
    )
}

impl Meta {
    /// The record of `e` about to run on this machine, signaling along `path`.
    pub fn new(e: &Experiment, path: Vec<String>) -> Self {
        Self {
            experiment: e.name.clone(),
            kind: e.kind,
            description: e.description.clone(),
            runs_requested: e.runs,
            runs_done: 0,
            sessions: e.sessions,
            commit: BUILD_COMMIT.to_string(),
            kernel: sh("uname", &["-r"]),
            cpu: format!(
                "{} ({} cores)",
                cpu_model(),
                std::thread::available_parallelism().map_or(0, |n| n.get())
            ),
            date_utc: sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            backend: e
                .backend
                .map(|b| b.to_string())
                .unwrap_or_else(|| "from topology".into()),
            topology_file: e.topology.as_ref().map(|p| p.display().to_string()),
            topology_sha256: e.topology.as_deref().and_then(sha256_file),
            path,
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            failure: None,
            qemu_accel: None,
            qemu_boot_ms: vec![],
            gist_data_in_query: gist_data_in_query(),
            shape_eagerly_up_to: Some(crate::kernel::substrate::SHAPE_EAGERLY_UP_TO),
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("VLSP_") && !k.starts_with("VLSP_KEY"))
                .collect(),
            allocator: Some(crate::model::allocator::name().to_string()),
        }
    }

    /// Records the QEMU guests of the run, if there were any.
    pub fn set_guests(&mut self, guests: Option<GuestInfo>) {
        if let Some((accel, boot)) = guests {
            self.qemu_accel = Some(accel);
            self.qemu_boot_ms = boot;
        }
    }

    /// Reads `meta.json` of an experiment folder.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(dir.join("meta.json")).with_context(|| {
            format!(
                "{}: no meta.json (is this an experiment folder?)",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}/meta.json", dir.display()))
    }

    /// The forwarding node next to the responder (the paper's tb3), whose
    /// periods Fig. 11 shows; none on a path without forwarding nodes.
    pub fn last_qne(&self) -> Option<&str> {
        self.path
            .len()
            .checked_sub(2)
            .filter(|i| *i >= 1)
            .map(|i| self.path[i].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's record says which GIST mode and which shaping it ran with;
    /// records written before these fields still read.
    #[test]
    fn meta_records_gist_data_in_query_and_the_shaping_threshold() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper-table1.toml");
        let e = Experiment::load(&p).unwrap();
        let m = Meta::new(&e, vec![]);
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["gist_data_in_query"], gist_data_in_query());
        assert_eq!(v["shape_eagerly_up_to"], 300);
        let mut old = v.as_object().unwrap().clone();
        old.remove("gist_data_in_query");
        old.remove("shape_eagerly_up_to");
        let back: Meta = serde_json::from_value(old.into()).unwrap();
        assert!(!back.gist_data_in_query);
        assert_eq!(back.shape_eagerly_up_to, None);
    }
}
