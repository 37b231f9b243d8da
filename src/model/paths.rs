//! Where vlsp keeps state on the host, defined once: the rule for names
//! that become paths, namespace and interface names, and [`RunDir`], the
//! one owner of every path below `/run/vlsp/<topology>/`.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Every running topology's state lives below this directory.
pub const RUN_DIR: &str = "/run/vlsp";

/// Where `ip netns` (and vlsp) bind-mount named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Longest topology name. A name becomes a directory below [`RUN_DIR`]
/// and part of every namespace name (`vlsp-<topology>-<node>`) and socket
/// path: `/run/vlsp/<24>/console/<15>.console.sock` is 72 bytes, well
/// inside a UNIX socket path's 108.
pub const TOPOLOGY_NAME_MAX: usize = 24;

/// Longest router or virtual node name: the kernel's interface name limit
/// (IFNAMSIZ 16 with its NUL), so a node name may also name an interface.
pub const NODE_NAME_MAX: usize = 15;

/// Longest interface name the kernel takes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Why a name was refused; the message says the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error(
        "topology name {0:?} must be 1-{TOPOLOGY_NAME_MAX} characters of lowercase letters, digits and '-', starting with a letter or digit (it names /run/vlsp/<name>/ and the namespaces vlsp-<name>-<node>)"
    )]
    Topology(String),
    #[error(
        "{kind} name {name:?} must be 1-{NODE_NAME_MAX} characters of letters, digits, '-' or '_', starting with a letter or digit (it names a namespace, a socket and files)"
    )]
    Node { kind: &'static str, name: String },
    #[error(
        "interface name {0:?} must be 1-{IFNAME_MAX} characters of letters, digits, '-', '_' or '.' (the kernel's IFNAMSIZ)"
    )]
    Interface(String),
}

/// A topology name that is safe as a path component and inside namespace
/// names: the one rule, used by `validate` and by every command that is
/// given a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopoName(String);

impl TopoName {
    /// `[a-z0-9][a-z0-9-]{0,23}`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let ok = !name.is_empty()
            && name.len() <= TOPOLOGY_NAME_MAX
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(NameError::Topology(name.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TopoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TopoName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks a router or virtual node name (`kind` says which, for the
/// message): `[A-Za-z0-9][A-Za-z0-9_-]{0,14}`.
pub fn check_node_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= NODE_NAME_MAX
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::Node {
            kind,
            name: name.to_string(),
        })
    }
}

/// Checks a name the kernel will take as an interface name.
pub fn check_ifname(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(NameError::Interface(name.to_string()))
    }
}

/// A running topology's directory, `/run/vlsp/<topology>/`, and every path
/// in it. Built only from a [`TopoName`], so no path can leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    name: TopoName,
    dir: PathBuf,
}

impl RunDir {
    /// The run directory of `name` below [`RUN_DIR`].
    pub fn new(name: &TopoName) -> Self {
        Self::under(Path::new(RUN_DIR), name)
    }

    /// The run directory of `name` below `root` (tests).
    pub fn under(root: &Path, name: &TopoName) -> Self {
        Self {
            name: name.clone(),
            dir: root.join(name.as_str()),
        }
    }

    /// Checks `name` and gives its run directory below [`RUN_DIR`].
    pub fn of(name: &str) -> Result<Self, NameError> {
        Ok(Self::new(&TopoName::new(name)?))
    }

    pub fn name(&self) -> &TopoName {
        &self.name
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The append-only record of the topology's namespaces and QEMU pids.
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// The API socket of router `node`.
    pub fn api_socket(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.sock"))
    }

    /// The effective topology, so commands given only the name know it.
    pub fn topology_file(&self) -> PathBuf {
        self.dir.join("topology.toml")
    }

    /// The background `vlsp up`: its pid and start time.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }

    /// Written once the whole testbed is up.
    pub fn ready_file(&self) -> PathBuf {
        self.dir.join("ready")
    }

    /// The QEMU accelerator chosen, and why.
    pub fn accel_file(&self) -> PathBuf {
        self.dir.join("accel")
    }

    /// The QEMU guests' console logs and sockets (kept by `down`).
    pub fn console_dir(&self) -> PathBuf {
        self.dir.join("console")
    }

    /// The serial console socket of QEMU guest `vnode`.
    pub fn console_socket(&self, vnode: &str) -> PathBuf {
        self.console_dir().join(format!("{vnode}.console.sock"))
    }

    /// The serial console log of QEMU guest `vnode`.
    pub fn console_log(&self, vnode: &str) -> PathBuf {
        self.console_dir().join(format!("{vnode}.console.log"))
    }

    /// Tunnel-end scripts of router `node` (the script backend).
    pub fn scripts_dir(&self, node: &str) -> PathBuf {
        self.dir.join("scripts").join(node)
    }

    /// The output of a background `vlsp up`: beside the directory, so it
    /// outlives `down` for a post-mortem.
    pub fn daemon_log(&self) -> PathBuf {
        self.dir.with_extension("log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_names_that_could_escape_or_overflow_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "x/../../tmp",
            "a/b",
            "-x",
            "Paper",
            "a b",
            "a_b",
            "a.b",
            "abcdefghijklmnopqrstuvwxy",
            "é",
        ] {
            assert!(TopoName::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["paper-4node", "multi-inp-10node", "t1", "0", "sweep1000"] {
            assert_eq!(TopoName::new(good).unwrap().as_str(), good);
        }
        let msg = TopoName::new("../x").unwrap_err().to_string();
        assert!(msg.contains("lowercase") && msg.contains("1-24"), "{msg}");
    }

    #[test]
    fn node_and_interface_names_fit_the_kernel() {
        assert!(check_node_name("node", "VM1").is_ok());
        assert!(check_node_name("node", "tb-1_a").is_ok());
        for bad in ["", "VM 1", "a/b", "-a", &"x".repeat(16), "é"] {
            assert!(check_node_name("node", bad).is_err(), "{bad:?}");
        }
        assert!(check_ifname("vl00abcd").is_ok());
        assert!(check_ifname("eth0.100").is_ok());
        assert!(check_ifname(&"e".repeat(16)).is_err());
        assert!(check_ifname("a b").is_err());
    }

    #[test]
    fn every_path_stays_inside_the_run_directory() {
        let r = RunDir::under(Path::new("/r"), &TopoName::new("p4").unwrap());
        assert_eq!(r.path(), Path::new("/r/p4"));
        assert_eq!(r.journal(), Path::new("/r/p4/journal"));
        assert_eq!(r.api_socket("tb1"), Path::new("/r/p4/tb1.sock"));
        assert_eq!(r.pid_file(), Path::new("/r/p4/pid"));
        assert_eq!(r.ready_file(), Path::new("/r/p4/ready"));
        assert_eq!(r.topology_file(), Path::new("/r/p4/topology.toml"));
        assert_eq!(
            r.console_socket("VM1"),
            Path::new("/r/p4/console/VM1.console.sock")
        );
        assert_eq!(r.scripts_dir("tb1"), Path::new("/r/p4/scripts/tb1"));
        assert_eq!(r.daemon_log(), Path::new("/r/p4.log"));
        assert!(RunDir::of("x/../../tmp").is_err());
        assert_eq!(RunDir::of("p4").unwrap().path(), Path::new("/run/vlsp/p4"));
    }
}
