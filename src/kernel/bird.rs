//! bird2, the OSPF daemon of `routing = "ospf"`: one per router namespace,
//! in the foreground (`-f`) as a child of `vlsp up`, with its own control
//! socket (`birdc -s`) in the run directory. Its pid and start time are
//! journaled before anything waits on it, so `vlsp down` kills it even
//! after `kill -9` of `vlsp up` (see [`crate::kernel::journal`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::kernel::journal;

/// The `bird` binary, or an error that says how to install it.
pub fn require_bird() -> Result<PathBuf> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join("bird");
        if p.is_file() && Path::new(dir).join("birdc").is_file() {
            return Ok(p);
        }
    }
    bail!(
        "routing = \"ospf\" runs bird2 in every router, but bird/birdc are not installed: `apt-get install bird2` (or .ci/install), or use routing = \"static\""
    )
}

/// A running bird.
pub struct Bird {
    pub node: String,
    pub socket: PathBuf,
    child: Child,
}

impl Bird {
    /// Its process id (bird itself: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts bird with configuration `conf` in namespace `ns` (of topology
/// `topo`), its control socket at `socket`, its stderr into `log`.
pub fn start(
    topo: &str,
    node: &str,
    ns: &str,
    conf: &Path,
    socket: &Path,
    log: &Path,
) -> Result<Bird> {
    let bird = require_bird()?;
    let err =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(&bird)
        .arg("-f")
        .arg("-c")
        .arg(conf)
        .arg("-s")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);
    // Its own process group: a Ctrl-C meant for `vlsp up` does not kill
    // bird before `vlsp up` has taken the topology down in order.
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start bird for {node}"))?;
    // `ip netns exec` execs bird: same pid, and its start time is bird's.
    if let Err(e) = journal::journal_process(topo, child.id() as i32) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(Bird {
        node: node.to_string(),
        socket: socket.to_path_buf(),
        child,
    })
}

impl Bird {
    /// Still running (not exited with a configuration error, say).
    pub fn check_running(&mut self, log: &Path) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            bail!("bird of {} exited ({st}):\n{tail}", self.node);
        }
        Ok(())
    }

    /// SIGTERM (bird withdraws its routes), SIGKILL after 2 s.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `birdc -s SOCKET ARGS...` and returns its output.
pub fn birdc(socket: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("birdc")
        .arg("-s")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run birdc (apt-get install bird2)")?;
    if !out.status.success() {
        bail!(
            "birdc -s {} {}: {}",
            socket.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// OSPF neighbours in state Full, from `birdc show ospf neighbors`.
pub fn full_neighbours(show_neighbors: &str) -> usize {
    show_neighbors
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w.starts_with("Full")))
        .count()
}

/// The bird of `socket`'s Full neighbours (0 when it does not answer).
pub fn full_neighbours_of(socket: &Path) -> usize {
    birdc(socket, &["show", "ospf", "neighbors"])
        .map(|s| full_neighbours(&s))
        .unwrap_or(0)
}

/// BFD sessions in state Up, from `birdc show bfd sessions` (columns: IP
/// address, interface, state, ...).
pub fn bfd_sessions_up(show_sessions: &str) -> usize {
    show_sessions
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("Up"))
        .count()
}

/// The bird of `socket`'s BFD sessions Up (0 when it does not answer or
/// runs no BFD).
pub fn bfd_sessions_up_of(socket: &Path) -> usize {
    birdc(socket, &["show", "bfd", "sessions"])
        .map(|s| bfd_sessions_up(&s))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_neighbours_are_counted_from_birdc_output() {
        let out = "BIRD 2.0.12 ready.\nvlsp:\nRouter ID   \tPri\t     State     \tDTime\tInterface  Router IP\n\
                   10.6.1.1  \t  1\tFull/PtP  \t3.456\teth0       10.6.0.2\n\
                   10.6.4.2  \t  1\tInit/PtP  \t3.001\teth1       10.6.5.1\n";
        assert_eq!(full_neighbours(out), 1);
        assert_eq!(full_neighbours(""), 0);
    }

    #[test]
    fn bfd_sessions_up_are_counted_from_birdc_output() {
        let out = "BIRD 2.0.12 ready.\nbfd1:\n\
                   IP address                Interface  State      Since         Interval  Timeout\n\
                   10.6.0.2                  eth0       Up         06:01:02.345    0.100    0.300\n\
                   10.6.5.1                  eth1       Down       06:01:02.345    1.000    0.000\n";
        assert_eq!(bfd_sessions_up(out), 1);
        assert_eq!(bfd_sessions_up("BIRD 2.0.12 ready.\n"), 0);
    }
}
