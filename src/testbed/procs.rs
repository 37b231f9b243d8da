//! `vlsp up --process-per-node`: each router's node as a `vlsp node` child
//! process inside its namespace instead of a thread. The children's pids
//! (with start times) are journaled in the run directory, so `vlsp down`
//! removes them even after the testbed or any child was killed with -9.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::kernel::process::{PidRecord, pidfd_signal, start_time};
use crate::kernel::substrate;
use crate::model::paths::RunDir;

/// A node running as its own process.
pub struct NodeProc {
    pub name: String,
    pub api_socket: PathBuf,
    child: Child,
}

/// The journal of node processes: one `<pid> <start time>` line each.
pub fn pids_file(run: &RunDir) -> PathBuf {
    run.path().join("node-pids")
}

fn log_file(run: &RunDir, node: &str) -> PathBuf {
    run.path().join(format!("{node}.node.log"))
}

/// Starts `exe node --topology SAVED --name NODE ...` in NODE's namespace
/// and waits (up to 20 s) for its ready file.
pub fn spawn(
    exe: &Path,
    topo: &str,
    saved: &Path,
    node: &str,
    run: &RunDir,
    no_qos: bool,
    points: usize,
) -> Result<NodeProc> {
    let how = How {
        no_qos,
        points,
        detach: false,
    };
    spawn_with(exe, topo, saved, node, run, how)
}

/// [`spawn`] in a session of its own, for a node that outlives the
/// command starting it (`vlsp apply`); `vlsp down` kills it by the journal.
pub fn spawn_detached(
    exe: &Path,
    topo: &str,
    saved: &Path,
    node: &str,
    run: &RunDir,
) -> Result<NodeProc> {
    let how = How {
        no_qos: false,
        points: 0,
        detach: true,
    };
    spawn_with(exe, topo, saved, node, run, how)
}

/// How a node process is started.
struct How {
    /// `--no-qos`: admission control only.
    no_qos: bool,
    /// Measurement points it keeps (0: none).
    points: usize,
    /// In a session of its own.
    detach: bool,
}

fn spawn_with(
    exe: &Path,
    topo: &str,
    saved: &Path,
    node: &str,
    run: &RunDir,
    how: How,
) -> Result<NodeProc> {
    let How {
        no_qos,
        points,
        detach,
    } = how;
    let api_socket = run.api_socket(node);
    let ready = run.path().join(format!("{node}.node-ready"));
    let _ = std::fs::remove_file(&ready);
    let log = log_file(run, node);
    let err =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &substrate::ns_name(topo, node)])
        .arg(exe)
        .args(["node", "--name", node, "--topology"])
        .arg(saved)
        .arg("--api")
        .arg(&api_socket)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--script-dir")
        .arg(run.scripts_dir(node));
    if no_qos {
        cmd.arg("--no-qos");
    }
    if points > 0 {
        cmd.arg("--points").arg(points.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
    if detach {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{} node` for {node}", exe.display()))?;
    // `ip netns exec` execs the node: same pid, same start time.
    journal_pid(run, child.id() as i32)?;
    let t0 = Instant::now();
    while !ready.exists() {
        if let Some(st) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("node {node} exited during start-up ({st}):\n{tail}");
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("node {node} not ready within 20 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(NodeProc {
        name: node.to_string(),
        api_socket,
        child,
    })
}

/// Appends process `pid` (with its start time) to the run's journal of
/// node processes, which `vlsp down` kills.
pub fn journal_pid(run: &RunDir, pid: i32) -> Result<()> {
    use std::io::Write as _;
    let Some(start_time) = start_time(pid) else {
        return Ok(());
    };
    let rec = PidRecord { pid, start_time };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pids_file(run))
        .with_context(|| format!("cannot journal {}", pids_file(run).display()))?;
    f.write_all(rec.encode().as_bytes())?;
    Ok(())
}

/// Resident memory (`VmRSS`) of process `pid` in KiB.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    vm_rss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

impl NodeProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory (`VmRSS` of /proc/PID/status) in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.pid())
    }

    /// SIGTERM (the node tears its links down), then SIGKILL after 10 s.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The journaled node processes (whether or not they still run).
pub fn journaled(run: &RunDir) -> Vec<crate::kernel::process::ProcessId> {
    std::fs::read_to_string(pids_file(run))
        .unwrap_or_default()
        .lines()
        .filter_map(PidRecord::parse)
        .map(|r| crate::kernel::process::ProcessId {
            pid: r.pid,
            start: r.start_time,
        })
        .collect()
}

/// SIGKILLs every journaled node process still running (verified by its
/// start time, so a reused pid is never signalled); how many were.
pub fn kill_journaled(run: &RunDir) -> usize {
    let Ok(text) = std::fs::read_to_string(pids_file(run)) else {
        return 0;
    };
    let mut n = 0;
    for rec in text.lines().filter_map(PidRecord::parse) {
        if let Some(fd) = rec.open()
            && !is_zombie(rec.pid)
            && pidfd_signal(&fd, libc::SIGKILL)
        {
            n += 1;
        }
    }
    n
}

/// The `VmRSS:` line of a /proc/PID/status text, in KiB.
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut w = line["VmRSS:".len()..].split_whitespace();
    let n = w.next()?.parse().ok()?;
    (w.next() == Some("kB")).then_some(n)
}

/// Exited but not reaped yet (its parent still lives): nothing to kill.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_the_vmrss_line() {
        let status = "Name:\tvlsp\nVmPeak:\t  20000 kB\nVmRSS:\t    9876 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(9876));
        assert_eq!(vm_rss_kib("Name:\tkthreadd\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\t12 MB\n"), None);
        // This test's own process has some.
        let me = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_rss_kib(&me).unwrap() > 0);
    }
}
