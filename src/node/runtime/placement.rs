//! Which CPUs the node runtime's threads run on (`VLSP_KERNEL_CPUS`;
//! issue 17). A hop's reservation class and a tunnel end are made on a
//! kernel thread beside the signaling. This kernel does not preempt a
//! thread inside a system call, and making a tunnel end is ~0.3 ms in one:
//! when the scheduler woke the kernel thread onto the CPU of the nodes'
//! signaling thread (it often did, with the other CPU idle), the signaling
//! waited for the whole tunnel end. So by default, with two CPUs or more
//! and the nodes sharing threads (`VLSP_NODES_PER_THREAD`, default 64),
//! the kernel work keeps to the last CPU and the signaling to the others;
//! the kernel serialises that work on its RTNL lock anyway. Interleaved
//! runs (README, *Scale*): chain of 200 -15 %, throughput up, paper-4node
//! setup unchanged and teardown -14 %. With a thread per node there is no
//! default (it was not measured with one; at stop 22 the first setup
//! across 301 routers then lost messages on links shaped on demand, since
//! fixed: `nslp::Config::unshaped`). `VLSP_KERNEL_CPUS=none` leaves every
//! thread where the scheduler puts it; a list names the kernel CPUs. A
//! runtime setting: the messages on the wire are the same.

use std::sync::OnceLock;

use anyhow::anyhow;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// The environment variable naming the kernel work's CPUs.
pub const ENV: &str = "VLSP_KERNEL_CPUS";

/// The CPUs of each kind of thread (both non-empty, disjoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Tunnel ends, reservation classes, deferred deletions, and the shared
    /// route listener (a node re-reads its route table on its own thread).
    pub kernel: Vec<usize>,
    /// The nodes' threads: every CPU the process may use but the above.
    pub signaling: Vec<usize>,
}

/// What a thread does, so where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Signaling,
    Kernel,
}

/// The placement a node start of this process accepted first: the threads
/// started later (a node's kernel thread starts at its first kernel work)
/// pin to what was checked, not to a variable read again.
static CHECKED: OnceLock<Option<Placement>> = OnceLock::new();

/// The placement `VLSP_KERNEL_CPUS` asks for (unset: the default above),
/// checked against the CPUs this process may run on; `None` for no
/// placement (`none`, or a single CPU). Read once per process, at the
/// first node start that accepts it. A value that cannot be honoured is
/// refused (and not kept), so a run never measures another placement than
/// asked for. `grouped`: whether the node starting shares a thread (the
/// default needs it; a C-mode node or `VLSP_NODES_PER_THREAD=1` does not).
/// The first node start that succeeds decides for the whole process.
pub fn placement(grouped: bool) -> anyhow::Result<Option<Placement>> {
    if let Some(p) = CHECKED.get() {
        return Ok(p.clone());
    }
    let p = from_env(grouped)?;
    Ok(CHECKED.get_or_init(|| p).clone())
}

fn from_env(grouped: bool) -> anyhow::Result<Option<Placement>> {
    let v = std::env::var(ENV).ok();
    // The process's mask (its main thread's), not a pinned caller's.
    let mask = sched_getaffinity(nix::unistd::getpid())
        .map_err(|e| anyhow!("{ENV}: cannot read the CPUs this process may run on: {e}"))?;
    let allowed: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| mask.is_set(c).unwrap_or(false))
        .collect();
    parse(v.as_deref(), &allowed, grouped).map_err(|e| anyhow!(e))
}

/// The value that leaves every thread where the scheduler puts it.
pub const NONE: &str = "none";

/// `grouped`: whether nodes share threads, which the default needs.
fn parse(v: Option<&str>, allowed: &[usize], grouped: bool) -> Result<Option<Placement>, String> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        // The default: the last CPU for the kernel work, when one is left.
        return Ok(match allowed.split_last() {
            Some((&last, rest)) if grouped && !rest.is_empty() => Some(Placement {
                kernel: vec![last],
                signaling: rest.to_vec(),
            }),
            _ => None,
        });
    };
    if v.eq_ignore_ascii_case(NONE) {
        return Ok(None);
    }
    let mut kernel = vec![];
    for item in v.split(',').map(str::trim) {
        let bad = || {
            format!(
                "{ENV}={v:?}: {item:?} is not a CPU number or range (write e.g. 1, 1,3 or 2-3, \
                 or {NONE})"
            )
        };
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let c: usize = item.parse().map_err(|_| bad())?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        for c in lo..=hi {
            if !allowed.contains(&c) {
                return Err(format!(
                    "{ENV}={v:?}: CPU {c} is not one this process may run on (it may use {}); \
                     name CPUs among those",
                    list(allowed)
                ));
            }
            kernel.push(c);
        }
    }
    kernel.sort_unstable();
    kernel.dedup();
    let signaling: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !kernel.contains(c))
        .collect();
    if signaling.is_empty() {
        return Err(format!(
            "{ENV}={v:?} leaves no CPU for the nodes' signaling (this process may use {}); \
             name fewer CPUs, or set it to {NONE}",
            list(allowed)
        ));
    }
    Ok(Some(Placement { kernel, signaling }))
}

/// `0-1,3` style, as `/proc/*/status` writes CPU lists.
fn list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// The CPUs the nodes' signaling threads keep to, once a node start has
/// decided the placement (`None` before, or with no placement): where a
/// measurement of the signaling's speed must run (`experiment::probe`).
pub fn signaling_cpus() -> Option<Vec<usize>> {
    CHECKED.get()?.as_ref().map(|p| p.signaling.clone())
}

/// [`pin`] with the process's placement, for a thread started by the
/// runtime (its node's start checked the placement already).
pub fn pin_current(role: Role) {
    match CHECKED.get() {
        Some(p) => pin(p.as_ref(), role),
        None => tracing::warn!(
            "thread {}: started before any node's start checked {ENV}; it runs where the \
             scheduler puts it",
            this_thread()
        ),
    }
}

fn this_thread() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string()
}

/// Keeps the calling thread (and the threads it starts later, which inherit
/// its mask) on `role`'s CPUs. A failure only warns: the thread then runs
/// where the scheduler puts it.
fn pin(p: Option<&Placement>, role: Role) {
    let Some(p) = p else { return };
    let cpus = match role {
        Role::Signaling => &p.signaling,
        Role::Kernel => &p.kernel,
    };
    let mut set = CpuSet::new();
    for &c in cpus {
        if let Err(e) = set.set(c) {
            tracing::warn!("thread {}: CPU {c} ({ENV}): {e}", this_thread());
        }
    }
    if let Err(e) = sched_setaffinity(Pid::from_raw(0), &set) {
        tracing::warn!(
            "thread {}: cannot keep it on CPUs {} ({ENV}): {e}",
            this_thread(),
            list(cpus)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str, allowed: &[usize]) -> Placement {
        parse(Some(v), allowed, true).unwrap().unwrap()
    }

    #[test]
    fn kernel_cpus_and_the_rest_for_signaling() {
        assert_eq!(
            ok("1", &[0, 1]),
            Placement {
                kernel: vec![1],
                signaling: vec![0]
            }
        );
        let p = ok(" 2-3, 1 ,3", &[0, 1, 2, 3, 5]);
        assert_eq!(p.kernel, vec![1, 2, 3]);
        assert_eq!(p.signaling, vec![0, 5]);
    }

    #[test]
    fn by_default_grouped_nodes_leave_the_last_cpu_to_the_kernel_work() {
        let last = Placement {
            kernel: vec![3],
            signaling: vec![0, 2],
        };
        assert_eq!(parse(None, &[0, 2, 3], true), Ok(Some(last.clone())));
        assert_eq!(parse(Some("  "), &[0, 2, 3], true), Ok(Some(last)));
        // A thread per node: no default; asked for, it is honoured.
        assert_eq!(parse(None, &[0, 1], false), Ok(None));
        assert_eq!(
            parse(Some("1"), &[0, 1], false),
            Ok(Some(Placement {
                kernel: vec![1],
                signaling: vec![0]
            }))
        );
        // One CPU: nothing to split.
        assert_eq!(parse(None, &[5], true), Ok(None));
        assert_eq!(parse(None, &[], true), Ok(None));
        assert_eq!(parse(Some("none"), &[0, 1], true), Ok(None));
        assert_eq!(parse(Some(" None "), &[0, 1], true), Ok(None));
    }

    #[test]
    fn values_that_cannot_be_honoured_are_refused_by_name() {
        for (v, want) in [
            ("x", "\"x\" is not a CPU number or range"),
            ("1;2", "is not a CPU number"),
            ("-1", "is not a CPU number"),
            ("3-1", "\"3-1\" is not a CPU number"),
            ("1,", "\"\" is not a CPU number"),
            (
                "4",
                "CPU 4 is not one this process may run on (it may use 0-1)",
            ),
            (
                "0-1",
                "leaves no CPU for the nodes' signaling (this process may use 0-1)",
            ),
            ("99999999999999999999", "is not a CPU number"),
        ] {
            let e = parse(Some(v), &[0, 1], true).unwrap_err();
            assert!(
                e.starts_with(&format!("{ENV}=")) && e.contains(want),
                "{v}: {e}"
            );
        }
        // One CPU: nothing can be split off.
        assert!(
            parse(Some("0"), &[0], true)
                .unwrap_err()
                .contains("leaves no CPU")
        );
    }

    #[test]
    fn cpu_lists_read_like_proc() {
        assert_eq!(list(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
        assert_eq!(list(&[3]), "3");
        assert_eq!(list(&[]), "");
    }
}
