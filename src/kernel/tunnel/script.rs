//! The script backend: a shell script calling `ip`, as the paper's NSIS-ka
//! did, so the cost of that approach can be measured beside ours. The
//! script runs from the node thread, so `ip` runs in its namespace.

use std::path::{Path, PathBuf};

use super::{TunnelEnd, TunnelOps, VlinkError};

/// Tunnel ends by script, kept in `script_dir`.
pub struct ScriptTunnels {
    script_dir: PathBuf,
}

impl ScriptTunnels {
    pub fn new(script_dir: &Path) -> Self {
        Self {
            script_dir: script_dir.to_path_buf(),
        }
    }

    /// Writes `body` to `script_dir/name` (once) and runs it with the tunnel
    /// end's parameters.
    async fn run(&self, name: &str, body: &str, end: &TunnelEnd) -> Result<(), VlinkError> {
        let path = self.script_dir.join(name);
        let spawn_err = |source| VlinkError::Spawn {
            script: path.clone(),
            node: end.node(),
            source,
        };
        if !path.exists() {
            std::fs::create_dir_all(&self.script_dir)
                .and_then(|_| std::fs::write(&path, body))
                .map_err(spawn_err)?;
        }
        let out = tokio::process::Command::new("sh")
            .arg(&path)
            .arg(end.ifname())
            .arg(end.kind.kernel_kind())
            .arg(end.vni().to_string())
            .arg(end.local.to_string())
            .arg(end.remote.to_string())
            .arg(&end.bridge)
            .output()
            .await
            .map_err(spawn_err)?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(script_error(path, end, out.status.to_string(), stderr))
    }
}

/// What a failed script's standard error means.
fn script_error(script: PathBuf, end: &TunnelEnd, status: String, stderr: String) -> VlinkError {
    if stderr.contains("File exists") {
        VlinkError::Exists {
            ifname: end.ifname(),
            node: end.node(),
        }
    } else if stderr.contains("Unknown device type") {
        VlinkError::Unsupported {
            kind: end.kind,
            node: end.node(),
            detail: stderr,
        }
    } else if stderr.contains("not Ethernet frames") {
        VlinkError::NotEthernet {
            kind: end.kind,
            node: end.node(),
        }
    } else if stderr.contains("Cannot find device") {
        VlinkError::NoTunnel {
            ifname: end.ifname(),
            node: end.node(),
        }
    } else {
        VlinkError::Script {
            script,
            ifname: end.ifname(),
            node: end.node(),
            status,
            stderr,
        }
    }
}

impl TunnelOps for ScriptTunnels {
    async fn up(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        self.run("vlink-up.sh", UP_SCRIPT, end).await
    }

    /// The paper's script removes the tunnel in one go; so does ours.
    async fn out_of_service(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        self.run("vlink-down.sh", DOWN_SCRIPT, end).await
    }

    /// Already done by [`Self::out_of_service`].
    async fn delete(&mut self, _end: &TunnelEnd) -> Result<(), VlinkError> {
        Ok(())
    }
}

/// The script backend's set-up script (arguments: ifname kind vni local remote bridge).
pub const UP_SCRIPT: &str = r#"#!/bin/sh
# vlsp script backend: set up one tunnel end, as the paper's NSIS-ka did with a shell script.
set -e
IF=$1 KIND=$2 VNI=$3 LOCAL=$4 REMOTE=$5 BR=$6
case "$KIND" in
  vxlan)  ip link add "$IF" type vxlan id "$VNI" local "$LOCAL" remote "$REMOTE" dstport 4789 ;;
  geneve) ip link add "$IF" type geneve id "$VNI" remote "$REMOTE" ;;
  gretap) ip link add "$IF" type gretap local "$LOCAL" remote "$REMOTE" ;;
  gre|ipip)
    # IP-carrying tunnels cannot join the bridge: only ask the kernel whether it has them.
    ip link add "$IF" type "$KIND" local "$LOCAL" remote "$REMOTE"
    ip link del "$IF"
    echo "$KIND carries IP packets, not Ethernet frames" >&2; exit 3 ;;
  *) echo "unknown tunnel kind $KIND" >&2; exit 2 ;;
esac
ip link set "$IF" master "$BR"
ip link set "$IF" up
"#;

/// The script backend's tear-down script (same arguments).
pub const DOWN_SCRIPT: &str = r#"#!/bin/sh
# vlsp script backend: remove one tunnel end.
set -e
IF=$1
ip link set "$IF" nomaster
ip link del "$IF"
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tunnel::TunnelKind;
    use std::net::Ipv4Addr;

    fn end() -> TunnelEnd {
        TunnelEnd {
            vlink_id: 0x1234,
            kind: TunnelKind::Vxlan,
            local: Ipv4Addr::new(172, 1, 2, 1),
            remote: Ipv4Addr::new(172, 3, 4, 4),
            bridge: "br0".into(),
            backend: None,
        }
    }

    #[test]
    fn script_errors_are_typed_and_name_the_node() {
        let e = end();
        let p = PathBuf::from("/x/vlink-up.sh");
        let failed = |stderr: &str| script_error(p.clone(), &e, "1".into(), stderr.into());
        let exists = failed("RTNETLINK answers: File exists");
        assert!(matches!(exists, VlinkError::Exists { .. }));
        assert!(exists.to_string().contains("172.1.2.1"));
        let ip_only = failed("ipip carries IP packets, not Ethernet frames");
        assert!(matches!(ip_only, VlinkError::NotEthernet { .. }));
        let missing = failed("Error: Unknown device type.");
        assert!(matches!(missing, VlinkError::Unsupported { .. }));
        let gone = failed("Cannot find device \"vl001235\"");
        assert!(matches!(gone, VlinkError::NoTunnel { .. }));
        let other = script_error(p, &e, "exit status: 2".into(), "boom".into());
        let msg = other.to_string();
        assert!(
            msg.contains("vlink-up.sh") && msg.contains(&e.ifname()) && msg.contains("172.1.2.1"),
            "{msg}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_script_reports_its_stderr() {
        let dir = std::env::temp_dir().join(format!("vlsp-script-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A script already in place is used as it is.
        std::fs::write(
            dir.join("vlink-up.sh"),
            "echo \"no luck for $1\" >&2; exit 3\n",
        )
        .unwrap();
        let mut s = ScriptTunnels::new(&dir);
        let err = s.up(&end()).await.unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        let msg = err.to_string();
        assert!(msg.contains("no luck for vl"), "{msg}");
        assert!(matches!(err, VlinkError::Script { .. }));
    }
}
