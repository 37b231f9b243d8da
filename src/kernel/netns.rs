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
    let p = path.clone();
    let r = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("cannot bind-mount the namespace on {}", p.display()))?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("namespace thread for {name} panicked"))?;
    if let Err(e) = r {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(ns_name("paper-4node", "tb1"), "vlsp-paper-4node-tb1");
        assert_eq!(ns_path("x"), PathBuf::from("/run/netns/x"));
    }
}
