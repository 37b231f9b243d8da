//! Knowing a process again: a pid alone can be reused by the kernel after
//! the process exits, so a recorded pid is paired with the process's start
//! time (`/proc/<pid>/stat` field 22, clock ticks since boot), and nothing
//! is signalled unless both still match.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A process as recorded: its pid and when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    /// `starttime` from `/proc/<pid>/stat`.
    pub start: u64,
}

impl ProcessId {
    /// The running process `pid`, if it exists.
    pub fn of(pid: i32) -> Option<Self> {
        start_time(pid).map(|start| Self { pid, start })
    }

    /// True while `pid` still names the process that was recorded.
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// Sends SIGKILL and waits (up to a second) for the process to go,
    /// but only if the pid still names the recorded process; a pid reused
    /// by another process is left alone. Returns whether it signalled.
    pub fn kill_if_same(&self) -> bool {
        if !self.is_alive() {
            return false;
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        for _ in 0..100 {
            if !self.is_alive() || is_zombie(self.pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// The start time of process `pid`, from `/proc/<pid>/stat`.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_time_from_stat(&stat)
}

/// True when `pid` has exited and waits for its parent to reap it.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next().map(|f| f == "Z"))
            .unwrap_or(false)
    })
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn start_time_from_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state) onwards: field 22 is the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What the pid file records: a process, told apart from a later one with
/// the same pid by its start time (clock ticks after boot, /proc/PID/stat
/// field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: i32,
    pub start_time: u64,
}

impl PidRecord {
    /// This process.
    pub fn current() -> Result<Self> {
        let pid = std::process::id() as i32;
        let start_time = start_time(pid).context("cannot read this process's start time")?;
        Ok(Self { pid, start_time })
    }

    /// `"<pid> <start time>"`; `None` for anything else (an old pid file
    /// holding only a pid cannot be verified, so it is never trusted).
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split_whitespace();
        let pid = it.next()?.parse().ok().filter(|p: &i32| *p > 0)?;
        let start_time = it.next()?.parse().ok()?;
        it.next().is_none().then_some(Self { pid, start_time })
    }

    pub fn encode(&self) -> String {
        format!("{} {}\n", self.pid, self.start_time)
    }

    /// A pidfd of the recorded process if it still runs; `None` when it
    /// exited or its pid now belongs to another process.
    pub fn open(&self) -> Option<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just gave us this fd; we own it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Opened first, checked second: if the pid was reused before the
        // open, the start time differs; after it, the fd still names ours.
        (start_time(self.pid) == Some(self.start_time)).then_some(fd)
    }
}

/// Sends `sig` through a pidfd (0: only checks the process is there).
pub fn pidfd_signal(fd: &OwnedFd, sig: i32) -> bool {
    // SAFETY: pidfd_send_signal with a valid fd, a signal number and no info.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_names() {
        let line =
            "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 3 0 987654 1000 10";
        assert_eq!(start_time_from_stat(line), Some(987654));
        assert_eq!(start_time_from_stat("4242 (qemu) S 1 2"), None);
        assert_eq!(start_time_from_stat("garbage"), None);
    }

    #[test]
    fn a_reused_pid_is_left_alone_and_the_recorded_one_is_killed() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let me = ProcessId::of(pid).expect("child is running");
        assert!(me.is_alive());
        // The same pid with another start time: a process the kernel gave
        // the pid to later. It must not be signalled.
        let other = ProcessId {
            pid,
            start: me.start + 1,
        };
        assert!(!other.kill_if_same());
        assert!(child.try_wait().unwrap().is_none(), "child was signalled");
        assert!(me.kill_if_same());
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
    }
    #[test]
    fn start_time_is_field_22_even_with_a_strange_command_name() {
        let stat =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time_from_stat(stat), Some(987654));
        assert_eq!(start_time_from_stat("garbage"), None);
        let me = PidRecord::current().unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.start_time > 0);
    }

    #[test]
    fn pid_records_round_trip_and_old_pid_files_are_not_trusted() {
        let r = PidRecord {
            pid: 77,
            start_time: 123,
        };
        assert_eq!(PidRecord::parse(&r.encode()), Some(r));
        assert_eq!(PidRecord::parse("77\n"), None);
        assert_eq!(PidRecord::parse("0 5"), None);
        assert_eq!(PidRecord::parse("1 2 3"), None);
    }

    #[test]
    fn a_reused_pid_is_not_ours() {
        let me = PidRecord::current().unwrap();
        assert!(me.open().is_some(), "this process is itself");
        let reused = PidRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(reused.open().is_none(), "same pid, other start time");
    }
}
