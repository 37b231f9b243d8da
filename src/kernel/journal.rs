//! The crash-safe record of what a topology created.
//!
//! Before a namespace is created its name is appended (and fsync'd) to a
//! journal at `/run/vlsp/<topology>/journal`, so `vlsp down` removes exactly
//! what was created — after a crash or `kill -9` too, and whether or not the
//! topology file still exists. A QEMU guest is recorded as
//! `qemu:<pid>:<start time>`, so a pid the kernel has since given to another
//! process is never signalled (older journals hold `qemu:<pid>` alone).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::kernel::process::ProcessId;
use crate::model::paths::{RUN_DIR, RunDir};

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A network namespace, by name.
    Namespace(String),
    /// A QEMU process; `start` is `None` in journals written before start
    /// times were recorded.
    Qemu { pid: i32, start: Option<u64> },
    /// A helper process in a namespace (a routing daemon), with its start
    /// time: `down` kills it before the namespaces go.
    Process { pid: i32, start: u64 },
}

impl Entry {
    /// Reads one journal line; `None` for a line that is neither form.
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        if let Some(p) = line.strip_prefix("proc:") {
            let (pid, start) = p.split_once(':')?;
            return Some(Entry::Process {
                pid: pid.parse().ok()?,
                start: start.parse().ok()?,
            });
        }
        let Some(q) = line.strip_prefix("qemu:") else {
            return Some(Entry::Namespace(line.to_string()));
        };
        let (pid, start) = match q.split_once(':') {
            Some((p, s)) => (p, Some(s.parse().ok()?)),
            None => (q, None),
        };
        Some(Entry::Qemu {
            pid: pid.parse().ok()?,
            start,
        })
    }

    /// The line that records this entry.
    pub fn line(&self) -> String {
        match self {
            Entry::Namespace(n) => n.clone(),
            Entry::Qemu { pid, start: None } => format!("qemu:{pid}"),
            Entry::Qemu {
                pid,
                start: Some(s),
            } => format!("qemu:{pid}:{s}"),
            Entry::Process { pid, start } => format!("proc:{pid}:{start}"),
        }
    }
}

/// The append-only record of a topology's namespaces. `topo` must be a
/// valid topology name: anything else (`""`, `../x`) has no journal, so it
/// can never name a path outside the run directory.
pub fn journal_path(topo: &str) -> Option<PathBuf> {
    RunDir::of(topo).ok().map(|r| r.journal())
}

/// Records a QEMU process of `topo` with its start time, so `down` kills it
/// even after a crash, and only it. A process already gone leaves nothing
/// to kill and is not recorded (its start shows the reason).
pub fn journal_qemu(topo: &str, pid: u32) -> Result<()> {
    let Some(id) = ProcessId::of(pid as i32) else {
        return Ok(());
    };
    append(
        topo,
        &Entry::Qemu {
            pid: id.pid,
            start: Some(id.start),
        },
    )
}

/// Records helper process `pid` of `topo` (a routing daemon) with its
/// start time; one already gone is not recorded.
pub fn journal_process(topo: &str, pid: i32) -> Result<()> {
    let Some(id) = ProcessId::of(pid) else {
        return Ok(());
    };
    append(
        topo,
        &Entry::Process {
            pid: id.pid,
            start: id.start,
        },
    )
}

/// Records namespace `ns` of `topo`; call it before creating the namespace.
pub fn journal_namespace(topo: &str, ns: &str) -> Result<()> {
    append(topo, &Entry::Namespace(ns.to_string()))
}

/// Records namespaces `names` of `topo` with one write and one sync; call
/// it before creating any of them (`down` skips those never created).
pub fn journal_namespaces(topo: &str, names: &[String]) -> Result<()> {
    let lines: Vec<Entry> = names.iter().cloned().map(Entry::Namespace).collect();
    append_all(topo, &lines)
}

fn append(topo: &str, entry: &Entry) -> Result<()> {
    append_all(topo, std::slice::from_ref(entry))
}

fn append_all(topo: &str, entries: &[Entry]) -> Result<()> {
    let p = RunDir::of(topo)
        .with_context(|| format!("cannot journal for topology {topo:?}"))?
        .journal();
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(p.parent().expect("has a parent"))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)?;
        let mut text = String::new();
        for e in entries {
            text.push_str(&e.line());
            text.push('\n');
        }
        f.write_all(text.as_bytes())?;
        f.sync_data()
    };
    write().with_context(|| format!("cannot write the journal {}", p.display()))
}

/// The lines recorded for `topo`.
pub fn journal_read(topo: &str) -> Vec<String> {
    journal_path(topo)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The entries recorded for `topo` (unreadable lines skipped).
pub fn entries(topo: &str) -> Vec<Entry> {
    journal_read(topo)
        .iter()
        .filter_map(|l| Entry::parse(l))
        .collect()
}

/// Processes living in a namespace `topo` journaled (matched by the
/// namespace's device and inode), whatever started them: a node `vlsp
/// apply` started just before a `kill -9` (its pid not yet in
/// `node-pids`), a command run with `vlsp exec`. `vlsp down` kills them
/// before it removes the namespaces, so nothing outlives the topology.
pub fn processes_in(topo: &str) -> Vec<ProcessId> {
    use std::os::unix::fs::MetadataExt;
    let ours: Vec<(u64, u64)> = entries(topo)
        .iter()
        .filter_map(|e| match e {
            Entry::Namespace(ns) => std::fs::metadata(crate::kernel::netns::ns_path(ns)).ok(),
            Entry::Qemu { .. } | Entry::Process { .. } => None,
        })
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let me = std::process::id() as i32;
    let Ok(d) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    d.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| ours.contains(&(m.dev(), m.ino())))
        })
        .filter_map(ProcessId::of)
        .collect()
}

/// Topologies with a journal (up, or left behind by a crash).
pub fn journaled_topologies() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(RUN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("journal").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| RunDir::of(n).is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for e in [
            Entry::Namespace("vlsp-t-tb1".into()),
            Entry::Qemu {
                pid: 42,
                start: Some(123_456),
            },
            Entry::Qemu {
                pid: 7,
                start: None,
            },
            Entry::Process { pid: 9, start: 77 },
        ] {
            assert_eq!(Entry::parse(&e.line()), Some(e.clone()));
        }
        assert_eq!(Entry::parse(""), None);
        assert_eq!(Entry::parse("qemu:x"), None);
        assert_eq!(Entry::parse("qemu:1:y"), None);
        assert_eq!(Entry::parse("proc:1"), None);
    }
}
