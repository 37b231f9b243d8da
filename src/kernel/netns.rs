//! Named network namespaces: their names and paths, creating and removing
//! them the way `ip netns` does, and running code inside one.
//!
//! Kept on `nix` rather than `netns-rs` 0.2 (both measured on the
//! 1000-router chain; see the README): the crate makes the same syscalls on
//! the same throwaway thread, but `File::create`s `/run/netns/NAME` (an
//! existing name is truncated and mounted over instead of refused), reopens
//! each namespace after creating it, remounts the directory shared on every
//! call, and brings a second `nix` (0.29) into the build.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use rtnetlink::Handle;

use crate::model::paths::NETNS_DIR;

/// The namespace of router or virtual node `node` in topology `topo`.
pub fn ns_name(topo: &str, node: &str) -> String {
    format!("vlsp-{topo}-{node}")
}

/// The path of a namespace by name.
pub fn ns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Fails with one clear line unless we are root.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("vlsp needs root to create network namespaces: run it as root (e.g. with sudo)");
    }
    Ok(())
}

/// Makes /run/netns a shared mount point, as iproute2 does, so the
/// namespaces are visible to `ip netns` in every mount namespace.
fn share_netns_dir() -> Result<()> {
    std::fs::create_dir_all(NETNS_DIR).context("cannot create /run/netns")?;
    let shared = || {
        mount(
            Some(""),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    if shared().is_err() {
        mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("cannot bind-mount /run/netns")?;
        shared().context("cannot make /run/netns shared")?;
    }
    Ok(())
}

/// Creates a named network namespace the way `ip netns add` does: a bind
/// mount of a fresh namespace on `/run/netns/NAME`, made on a throwaway
/// thread so the caller's namespace never changes and nothing forks.
/// An existing name is refused, never reused.
pub fn netns_add(name: &str) -> Result<PathBuf> {
    share_netns_dir()?;
    let n = name.to_string();
    std::thread::spawn(move || create_here(&n))
        .join()
        .map_err(|_| anyhow!("namespace thread for {name} panicked"))??;
    Ok(ns_path(name))
}

/// Creates the named namespaces from `threads` threads (see
/// [`netns_add`]). Most of a namespace's creation is the kernel's
/// per-namespace setup, which runs in parallel; each thread unshares
/// again for the next name, so no thread is spawned per namespace and no
/// namespace file stays open.
pub fn netns_add_many(names: &[String], threads: usize) -> Result<()> {
    share_netns_dir()?;
    par_each(names, threads, || Ok(()), |(), n| create_here(n), drop).map(drop)
}

/// Unshares a new network namespace on the calling thread (which stays in
/// it: call it only on a throwaway thread) and bind-mounts it as `name`.
fn create_here(name: &str) -> Result<()> {
    let path = ns_path(name);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "namespace {name} already exists: run `vlsp down` for its topology, or `vlsp down --all`"
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    let r = unshare(CloneFlags::CLONE_NEWNET)
        .context("unshare(CLONE_NEWNET)")
        .and_then(|()| without_ipv6(name))
        .and_then(|()| {
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .with_context(|| format!("cannot bind-mount the namespace on {}", path.display()))
        });
    if r.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    r
}

/// The sysctls that switch IPv6 off in the calling thread's namespace,
/// under `/proc/sys/net`: `all` for the devices it has (`lo`), `default`
/// for every device made later.
pub const IPV6_OFF: [&str; 2] = [
    "ipv6/conf/all/disable_ipv6",
    "ipv6/conf/default/disable_ipv6",
];

/// Switches IPv6 off in the fresh namespace the calling thread is in. The
/// testbed signals and carries over IPv4 only, and with IPv6 on every new
/// device (a tunnel end per link, a bridge per virtual interface) gets a
/// link-local address, a multicast route and a walk of the whole IPv6
/// routing table under the RTNL lock, a walk that grows with the devices
/// already there (a third of a tunnel end's creation in `perf`; see the
/// README, Throughput). A kernel without IPv6 has nothing to switch off.
///
/// The files are opened through a proc instance of its own (`fsopen`,
/// detached, gone when closed), not through `/proc/sys`: every namespace
/// that has used `/proc/sys` keeps a `net` entry there, all with the same
/// name, so each lookup of a new namespace's walked all of them under one
/// spin lock (10 000 routers: the namespaces took 20–38 s instead of
/// 5–7). A kernel without `fsopen` (before 5.2) takes the shared
/// `/proc/sys`; one before 5.8 gives back the shared proc superblock, so
/// it is correct there but not faster.
fn without_ipv6(name: &str) -> Result<()> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    let sys = match private_proc() {
        Ok(proc) => openat(
            &proc,
            "sys",
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .with_context(|| format!("cannot open sys in a proc instance (namespace {name})"))?,
        Err(e) => {
            tracing::debug!(namespace = %name, "no proc instance of its own ({e}): /proc/sys");
            File::open("/proc/sys")
                .with_context(|| format!("cannot open /proc/sys in namespace {name}"))?
        }
    };
    ipv6_off_under(name, &sys)
}

/// Writes the [`IPV6_OFF`] sysctls under `sys` (a proc instance's `sys`).
fn ipv6_off_under(name: &str, sys: &File) -> Result<()> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    for key in IPV6_OFF {
        let path = format!("net/{key}");
        let f = match openat(
            sys,
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => File::from(fd),
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot switch IPv6 off in namespace {name} (/proc/sys/{path})")
                });
            }
        };
        std::io::Write::write_all(&mut &f, b"1").with_context(|| {
            format!("cannot switch IPv6 off in namespace {name} (/proc/sys/{path})")
        })?;
    }
    Ok(())
}

/// A new proc instance, mounted nowhere (its file descriptor is its only
/// way in). Its sysctl files act on the calling thread's namespace.
fn private_proc() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // linux/mount.h
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let fd = |r: libc::c_long| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            // SAFETY: a descriptor the kernel just returned, owned by no one else.
            Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(r as i32) })
        }
    };
    // SAFETY: the syscalls take a NUL-terminated name, descriptors and
    // null pointers as documented in fsopen(2), fsconfig(2), fsmount(2).
    let ctx = fd(unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) })?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&ctx);
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            raw,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    fd(unsafe { libc::syscall(libc::SYS_fsmount, raw, FSMOUNT_CLOEXEC, 0) })
}

/// Removes a named namespace (its links go with it). A missing one is fine.
pub fn netns_del(name: &str) -> Result<()> {
    let p = ns_path(name);
    if !p.exists() {
        return Ok(());
    }
    let _ = umount2(&p, MntFlags::MNT_DETACH);
    std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))
}

/// Removes the named namespaces from `threads` threads; returns what could
/// not be removed, one line each. The kernel frees the namespaces
/// afterwards in its cleanup work, batching their devices' RCU grace
/// periods.
pub fn netns_del_many(names: &[String], threads: usize) -> Vec<String> {
    let errors = std::sync::Mutex::new(vec![]);
    let _ = par_each(
        names,
        threads,
        || Ok(()),
        |(), n| {
            if let Err(e) = netns_del(n) {
                errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{n}: {e:#}"));
            }
            Ok(())
        },
        drop,
    );
    errors.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Threads for the substrate's kernel work. Much of it serialises on the
/// kernel's locks (RTNL, the mount lock), but a namespace's set-up and a
/// netlink request's round trip overlap across threads; measured on two
/// cores (README, Scale), four beat two and eight.
pub fn workers() -> usize {
    std::env::var("VLSP_SUBSTRATE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Runs `f` on every item from `threads` scoped threads, each with its
/// own state from `init` (a runtime, a socket); returns what `done` makes
/// of each thread's state on that thread (a runtime must not be dropped
/// in the caller's async context). Stops
/// handing out items at the first error, and returns that error. The
/// threads start in the caller's namespace; whatever namespace `f` leaves
/// a thread in ends with it.
pub fn par_each<T: Sync, S, R: Send>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> Result<S> + Sync,
    f: impl Fn(&mut S, &T) -> Result<()> + Sync,
    done: impl Fn(S) -> R + Sync,
) -> Result<Vec<R>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = threads.clamp(1, items.len().max(1));
    let results: Vec<Result<R>> = std::thread::scope(|sc| {
        let run = || -> Result<R> {
            let mut st = init()?;
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(&mut st, item) {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(done(st))
        };
        let hs: Vec<_> = (0..threads).map(|_| sc.spawn(run)).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a worker thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Moves the calling thread into the namespace at `path` (for node threads).
pub fn enter(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    setns(f.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns into {}", path.display()))?;
    Ok(())
}

/// Runs `f` with the calling thread inside `ns`, then returns to where it
/// was. `f` must be synchronous: no `.await` may happen inside.
pub fn with_netns<T>(ns: &File, f: impl FnOnce() -> T) -> Result<T> {
    let home = File::open("/proc/thread-self/ns/net").context("open /proc/thread-self/ns/net")?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).context("setns")?;
    let out = f();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).context("setns back")?;
    Ok(out)
}

/// A netlink handle whose socket lives in namespace `ns` (created there,
/// driven from anywhere). Needs a tokio runtime.
pub fn handle_in(ns: &File) -> Result<Handle> {
    let (conn, handle, _) = with_netns(ns, rtnetlink::new_connection)?.context("netlink socket")?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Writes a sysctl of the namespace `ns` (from a thread inside it).
pub fn sysctl_in(ns: &File, key: &str, value: &str) -> Result<()> {
    let ns = ns.try_clone()?;
    let key = key.to_string();
    let value = value.to_string();
    std::thread::spawn(move || -> Result<()> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        std::fs::write(Path::new("/proc/sys").join(&key), value)
            .with_context(|| format!("sysctl {key}"))
    })
    .join()
    .map_err(|_| anyhow!("sysctl thread panicked"))?
}

/// Network namespaces the kernel still holds, removed or not (its
/// `net_namespace` slab; root only, `None` where unreadable).
pub fn namespaces_held() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/slabinfo").ok()?;
    parse_slab_namespaces(&s)
}

fn parse_slab_namespaces(slabinfo: &str) -> Option<u64> {
    let l = slabinfo.lines().find(|l| l.starts_with("net_namespace "))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Waits while the kernel is still freeing removed namespaces (it does so
/// in the background, seconds for a thousand, holding the RTNL lock that
/// every link and class change needs): when their count falls within
/// `probe`, until it has not fallen for `quiet`, at most `max`. Returns
/// the counts before and after when it waited, so a measurement does not
/// pay for the previous one's cleanup.
pub fn settle_freed_namespaces(
    probe: std::time::Duration,
    quiet: std::time::Duration,
    max: std::time::Duration,
) -> Option<(u64, u64)> {
    let t0 = std::time::Instant::now();
    let first = namespaces_held()?;
    let (mut last, mut since) = (first, t0);
    loop {
        let window = if last == first { probe } else { quiet };
        if since.elapsed() >= window || t0.elapsed() >= max {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = namespaces_held()?;
        if n < last {
            (last, since) = (n, std::time::Instant::now());
        }
    }
    (last < first).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only (under `CI` without root it fails rather than skips).
    fn root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        assert!(root || std::env::var("CI").is_err(), "needs root under CI");
        root
    }

    #[test]
    fn ipv6_goes_off_in_a_new_namespace_through_its_own_proc_and_through_the_shared_one() {
        if !root() {
            return;
        }
        let read = |which: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"))
                .map(|v| v.trim().to_string())
                .ok()
        };
        let host = (read("all"), read("default"));
        if host.0.is_none() {
            return; // a kernel without IPv6: nothing to switch off
        }
        for own in [true, false] {
            let seen = std::thread::spawn(move || {
                unshare(CloneFlags::CLONE_NEWNET).unwrap();
                let sys = if own {
                    let proc = private_proc().expect("fsopen of a proc instance");
                    File::from(
                        nix::fcntl::openat(
                            &proc,
                            "sys",
                            nix::fcntl::OFlag::O_DIRECTORY,
                            nix::sys::stat::Mode::empty(),
                        )
                        .unwrap(),
                    )
                } else {
                    File::open("/proc/sys").unwrap()
                };
                ipv6_off_under("test", &sys).unwrap();
                // This thread's namespace, as /proc/sys shows it to it.
                (read("all"), read("default"))
            })
            .join()
            .unwrap();
            let one = Some("1".to_string());
            assert_eq!(seen, (one.clone(), one), "own proc instance: {own}");
            assert_eq!(
                (read("all"), read("default")),
                host,
                "the host's own changed"
            );
        }
    }

    #[test]
    fn par_each_visits_every_item_once_and_stops_at_an_error() {
        let items: Vec<usize> = (0..1000).collect();
        let states = par_each(
            &items,
            4,
            || Ok(vec![]),
            |v, &i| {
                v.push(i);
                Ok(())
            },
            |v| v,
        )
        .unwrap();
        let mut all: Vec<usize> = states.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, items);
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let seen = AtomicUsize::new(0);
        let errored = AtomicBool::new(false);
        let e = par_each(
            &items,
            3,
            || Ok(()),
            |(), &i| {
                seen.fetch_add(1, Ordering::Relaxed);
                if i == 10 {
                    errored.store(true, Ordering::SeqCst);
                    bail!("item {i} failed")
                }
                // Items after the failing one wait for it and then take a
                // millisecond, as namespaces take time: without that the
                // other threads ran through all 1000 while the one that took
                // item 10 waited for a core (seen on 2 cores).
                while i > 10 && !errored.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                Ok(())
            },
            drop,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "item 10 failed");
        assert!(seen.into_inner() < 1000);
        assert!(par_each(&[] as &[u8], 4, || Ok(()), |(), _| Ok(()), drop).is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(ns_name("paper-4node", "tb1"), "vlsp-paper-4node-tb1");
        assert_eq!(ns_path("x"), PathBuf::from("/run/netns/x"));
    }

    #[test]
    fn slab_line_gives_the_namespaces_held() {
        let slab = "slabinfo - version: 2.1\n\
                    # name <active_objs> <num_objs> ...\n\
                    net_namespace         42     56   4288    7    8 : tunables 0 0 0\n";
        assert_eq!(parse_slab_namespaces(slab), Some(42));
        assert_eq!(parse_slab_namespaces("kmalloc-64 1 2 3\n"), None);
    }
}
