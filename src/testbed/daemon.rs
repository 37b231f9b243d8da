//! A testbed in the background: `vlsp up --detach` re-runs itself in a new
//! session and waits for it to be ready; `vlsp down` stops it and removes
//! what is left. The daemon's pid file holds its pid and its start time, and
//! a signal goes only through a pidfd to the process whose start time
//! matches, so a stale pid file whose pid was reused never leads to
//! signalling an unrelated process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::kernel::process::{PidRecord, pidfd_signal};
use crate::kernel::substrate::{self, Timings};
use crate::model::paths::{RunDir, TopoName};

/// Marks the testbed in this process as up: its pid file, then the ready
/// file a detaching parent waits for.
pub fn mark_ready(run: &RunDir) -> Result<()> {
    std::fs::write(run.pid_file(), PidRecord::current()?.encode())
        .with_context(|| format!("cannot write {}", run.pid_file().display()))?;
    std::fs::write(run.ready_file(), "")
        .with_context(|| format!("cannot write {}", run.ready_file().display()))
}

/// The pid of the daemon running this topology, verified to be it.
pub fn running_pid(run: &RunDir) -> Option<i32> {
    let rec = PidRecord::parse(&std::fs::read_to_string(run.pid_file()).ok()?)?;
    rec.open().map(|_| rec.pid)
}

/// Starts `vlsp up FILE --daemon-child [--no-qos]` in a new session with
/// its output in the daemon log, and waits until it is ready (its pid) or
/// failed (its log). The caller has checked that nothing of it is up.
pub fn detach(
    topology_file: &Path,
    no_qos: bool,
    process_per_node: bool,
    groups: usize,
    run: &RunDir,
) -> Result<u32> {
    std::fs::create_dir_all(run.path())
        .with_context(|| format!("cannot create {}", run.path().display()))?;
    // Left from an earlier run that died: not this run's word.
    for stale in [run.ready_file(), run.pid_file()] {
        let _ = std::fs::remove_file(stale);
    }
    let log = run.daemon_log();
    let out =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("up").arg(topology_file).arg("--daemon-child");
    if no_qos {
        cmd.arg("--no-qos");
    }
    if process_per_node {
        cmd.arg("--process-per-node");
    }
    if groups > 0 {
        cmd.arg("--groups").arg(groups.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn().context("cannot start the background process")?;
    wait_ready(child, run)
}

fn wait_ready(mut child: Child, run: &RunDir) -> Result<u32> {
    let name = run.name();
    let log = run.daemon_log();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Some(st) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("{name} failed to come up ({st}):\n{tail}");
        }
        if run.ready_file().exists() {
            return Ok(child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{name} did not come up within 30 s; see {}", log.display())
}

/// Blocks until SIGTERM or SIGINT (Ctrl-C).
pub fn wait_for_stop_signal() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        anyhow::Ok(())
    })
}

/// What `stop_daemon` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// No pid file.
    None,
    /// A pid file whose process is gone (or whose pid is someone else's
    /// now): nothing was signalled.
    Stale,
    /// Our daemon, asked to stop with SIGTERM; `exited` once it did.
    Stopped { pid: i32, exited: bool },
}

/// Stops the background `vlsp up` of `run` (it removes its own testbed on
/// SIGTERM), waiting up to 5 s for it to exit.
pub fn stop_daemon(run: &RunDir) -> Daemon {
    let Ok(text) = std::fs::read_to_string(run.pid_file()) else {
        return Daemon::None;
    };
    let Some(rec) = PidRecord::parse(&text) else {
        return Daemon::Stale;
    };
    let Some(fd) = rec.open() else {
        return Daemon::Stale;
    };
    if !pidfd_signal(&fd, libc::SIGTERM) {
        return Daemon::Stale;
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if !pidfd_signal(&fd, 0) {
            return Daemon::Stopped {
                pid: rec.pid,
                exited: true,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon::Stopped {
        pid: rec.pid,
        exited: false,
    }
}

/// Takes topology `name` down: stops its daemon (verified), then removes
/// every namespace its journal records and the run directory. An unknown
/// name is an error, and nothing is touched.
pub fn down(name: &TopoName) -> Result<(Daemon, Timings)> {
    let run = RunDir::new(name);
    if !run.path().exists() {
        bail!(
            "{name} is not up: there is no {} (see `vlsp status`)",
            run.path().display()
        );
    }
    substrate::require_root()?;
    // Taken before the daemon stops: on SIGTERM it removes the run
    // directory, journals included, but knows only the nodes it started
    // (not those `vlsp apply` started, nor what else runs in them).
    let mut lingering = super::procs::journaled(&run);
    lingering.extend(crate::kernel::journal::processes_in(name.as_str()));
    let d = stop_daemon(&run);
    // Node processes (`--process-per-node`) outlive a killed `vlsp up`.
    super::procs::kill_journaled(&run);
    for p in lingering {
        p.kill_if_same();
    }
    let t = substrate::down(name.as_str())?;
    Ok((d, t))
}

/// Every topology with a journal whose name follows the rule (others were
/// not made by this vlsp and are left alone).
pub fn journaled() -> Vec<TopoName> {
    substrate::journaled_topologies()
        .iter()
        .filter_map(|n| TopoName::new(n).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_pid_files_signal_nothing() {
        let root = std::env::temp_dir().join(format!("vlsp-daemon-{}", std::process::id()));
        let run = RunDir::under(&root, &TopoName::new("t").unwrap());
        std::fs::create_dir_all(run.path()).unwrap();
        assert_eq!(stop_daemon(&run), Daemon::None);
        // Our own pid with another start time: a reused pid. Were it
        // trusted, this test process would get SIGTERM.
        let me = PidRecord::current().unwrap();
        let stale = PidRecord {
            start_time: me.start_time + 1,
            ..me
        };
        std::fs::write(run.pid_file(), stale.encode()).unwrap();
        assert_eq!(stop_daemon(&run), Daemon::Stale);
        std::fs::write(run.pid_file(), format!("{}\n", me.pid)).unwrap();
        assert_eq!(stop_daemon(&run), Daemon::Stale);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
