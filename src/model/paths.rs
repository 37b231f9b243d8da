//! Where vlsp keeps state on the host, defined once.

use std::path::PathBuf;

/// Every running topology's state lives below this directory.
pub const RUN_DIR: &str = "/run/vlsp";

/// Where `ip netns` (and vlsp) bind-mount named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Directory holding a running topology's sockets and state.
pub fn run_dir(topology: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(topology)
}
