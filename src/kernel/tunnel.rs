//! Tunnel ends of virtual links: the kernel state that turns an admitted
//! VLSP request into a working layer-2 link between two virtual nodes.
//!
//! A tunnel end is an Ethernet-carrying tunnel device (VXLAN on this kernel;
//! gretap and Geneve where the kernel has them) created in the substrate
//! node's namespace and enslaved to the bridge that the virtual node's
//! interface is attached to, exactly as the paper's Fig. 7 (`tun12` in
//! `br0`). Both ends derive the device name and the VXLAN/Geneve VNI from the
//! VLink ID of the VLSP object, so they agree without negotiating.
//!
//! Two backends, chosen per topology or per request:
//! - `netlink` (default): one rtnetlink request creates the device, enslaves it
//!   to the bridge and brings it up; no process is spawned.
//! - `script`: a shell script calling `ip`, as the paper's NSIS-ka did, so the
//!   cost of that approach can be measured beside ours.
//!
//! Teardown is split in two, because the kernel's device deletion waits for an
//! RCU grace period (~24 ms here) while holding the RTNL lock that every
//! namespace shares: [`Tunnels::out_of_service`] sets the tunnel end's bridge
//! port to *disabled*, which stops frames at once and waits for nothing
//! (taking the port out of the bridge, or the link down, would each wait for
//! a grace period), and [`Tunnels::delete`] removes the device afterwards, off
//! the critical path; its cost is reported as a figure of its own.

use futures_util::TryStreamExt;
use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkGeneve, LinkGre, LinkUnspec, LinkVxlan};
use serde::{Deserialize, Serialize};

use crate::model::ports::VXLAN_PORT;
use crate::model::tunnel::{Backend, TunnelKind, vni_for};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use thiserror::Error;

const IFLA_PROTINFO: u16 = 12;
const BR_STATE_DISABLED: u8 = 0;

/// One end of a virtual link, everything the kernel needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelEnd {
    /// The VLink ID from the VLSP object.
    pub vlink_id: u64,
    pub kind: TunnelKind,
    /// This substrate node's address (outer source).
    pub local: Ipv4Addr,
    /// The other tunnel end's substrate address (outer destination).
    pub remote: Ipv4Addr,
    /// Bridge of the virtual interface this end connects to.
    pub bridge: String,
    /// This link's backend, when a request chose one (else the node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
}

impl TunnelEnd {
    /// VNI (24 bits, never 0) derived from the VLink ID, the same at both ends.
    pub fn vni(&self) -> u32 {
        vni_for(self.vlink_id)
    }

    /// Device name, `vl` + the VNI in hex: at most 8 characters, well
    /// inside IFNAMSIZ, and unique per node because the VNI is.
    pub fn ifname(&self) -> String {
        format!("vl{:06x}", self.vni())
    }
}

/// Why a tunnel end could not be set up or removed.
#[derive(Debug, Error)]
pub enum VlinkError {
    #[error(
        "tunnel end {ifname} already exists on this node: tear the virtual link down first (vlsp link teardown)"
    )]
    Exists { ifname: String },
    #[error(
        "bridge {bridge} not found on this node: is the virtual node attached here (check the topology's vnode host)?"
    )]
    NoBridge { bridge: String },
    #[error("this kernel cannot create {kind} tunnels ({detail}); use tunnel = \"vxlan\"")]
    Unsupported { kind: TunnelKind, detail: String },
    #[error("netlink {op} of {ifname} failed: {source}")]
    Netlink {
        op: &'static str,
        ifname: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("script {script} failed ({status}): {stderr}")]
    Script {
        script: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("cannot run script {script}: {source}")]
    Spawn {
        script: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Creates and removes tunnel ends in one node's namespace. Must be built on
/// the node's thread (or with a netlink socket opened in its namespace).
pub struct Tunnels {
    backend: Backend,
    handle: Option<Handle>,
    script_dir: PathBuf,
    bridges: HashMap<String, u32>,
}

impl Tunnels {
    /// `handle` is an rtnetlink handle whose socket lives in the node's
    /// namespace; `script_dir` is where the script backend keeps its scripts.
    pub fn new(backend: Backend, handle: Option<Handle>, script_dir: &Path) -> Self {
        Self {
            backend,
            handle,
            script_dir: script_dir.to_path_buf(),
            bridges: HashMap::new(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The backend for `end`: its own choice, else the node's.
    pub fn backend_for(&self, end: &TunnelEnd) -> Backend {
        end.backend.unwrap_or(self.backend)
    }

    fn handle(&self) -> &Handle {
        self.handle
            .as_ref()
            .expect("netlink backend needs a netlink handle")
    }

    async fn bridge_index(&mut self, bridge: &str) -> Result<u32, VlinkError> {
        if let Some(i) = self.bridges.get(bridge) {
            return Ok(*i);
        }
        let found = self
            .handle()
            .link()
            .get()
            .match_name(bridge.to_string())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(Some(m)) => {
                self.bridges.insert(bridge.to_string(), m.header.index);
                Ok(m.header.index)
            }
            _ => Err(VlinkError::NoBridge {
                bridge: bridge.to_string(),
            }),
        }
    }

    /// Creates the tunnel end, enslaves it to its bridge and brings it up.
    pub async fn up(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        match self.backend_for(end) {
            Backend::Netlink => self.up_netlink(end).await,
            Backend::Script => self.run_script("vlink-up.sh", UP_SCRIPT, end).await,
        }
    }

    async fn up_netlink(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        let br = self.bridge_index(&end.bridge).await?;
        let name = end.ifname();
        // One request: create, enslave (IFLA_MASTER) and set IFF_UP.
        let msg = match end.kind {
            TunnelKind::Vxlan => LinkVxlan::new(&name, end.vni())
                .local(end.local)
                .remote(end.remote)
                .port(VXLAN_PORT)
                .learning(true)
                .controller(br)
                .up()
                .build(),
            TunnelKind::Geneve => LinkGeneve::new(&name, end.vni())
                .local(end.local)
                .remote(end.remote)
                .controller(br)
                .up()
                .build(),
            TunnelKind::Gretap => LinkGre::new_gretap(&name)
                .local(end.local)
                .remote(end.remote)
                .controller(br)
                .up()
                .build(),
        };
        match self.handle().link().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) => Err(match errno(&e) {
                Some(libc::EEXIST) => VlinkError::Exists { ifname: name },
                Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => VlinkError::Unsupported {
                    kind: end.kind,
                    detail: e.to_string(),
                },
                _ => VlinkError::Netlink {
                    op: "create",
                    ifname: name,
                    source: e,
                },
            }),
        }
    }

    /// Takes the tunnel end out of service: its bridge port is disabled, so
    /// the virtual link stops carrying frames now. Cheap (no grace period).
    pub async fn out_of_service(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        match self.backend_for(end) {
            Backend::Netlink => {
                let name = end.ifname();
                let idx = self
                    .handle()
                    .link()
                    .get()
                    .match_name(name.clone())
                    .execute()
                    .try_next()
                    .await
                    .map_err(|e| VlinkError::Netlink {
                        op: "find",
                        ifname: name.clone(),
                        source: e,
                    })?
                    .map(|m| m.header.index)
                    .ok_or_else(|| VlinkError::NoBridge {
                        bridge: end.bridge.clone(),
                    })?;
                // What `bridge link set dev X state 0` sends: RTM_SETLINK for
                // AF_BRIDGE with IFLA_PROTINFO holding the state byte. (The
                // IFLA_INFO_SLAVE_DATA route is silently ignored by 6.18.)
                let mut msg = LinkMessage::default();
                msg.header.interface_family = AddressFamily::Bridge;
                msg.header.index = idx;
                msg.attributes.push(LinkAttribute::Other(DefaultNla::new(
                    IFLA_PROTINFO,
                    vec![BR_STATE_DISABLED],
                )));
                self.handle()
                    .link()
                    .set(msg)
                    .execute()
                    .await
                    .map_err(|e| VlinkError::Netlink {
                        op: "disable bridge port",
                        ifname: name,
                        source: e,
                    })
            }
            // The paper's script removes the tunnel in one go; so does ours.
            Backend::Script => self.run_script("vlink-down.sh", DOWN_SCRIPT, end).await,
        }
    }

    /// Removes the device. With the script backend this already happened in
    /// [`Self::out_of_service`]; a missing device is not an error.
    pub async fn delete(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        if self.backend_for(end) == Backend::Script {
            return Ok(());
        }
        delete_by_name(self.handle(), &end.ifname()).await
    }

    /// Writes `body` to `script_dir/name` (once) and runs it with the tunnel
    /// end's parameters, from the node thread so `ip` runs in its namespace.
    async fn run_script(
        &mut self,
        name: &str,
        body: &str,
        end: &TunnelEnd,
    ) -> Result<(), VlinkError> {
        let path = self.script_dir.join(name);
        if !path.exists() {
            std::fs::create_dir_all(&self.script_dir)
                .and_then(|_| std::fs::write(&path, body))
                .map_err(|source| VlinkError::Spawn {
                    script: path.clone(),
                    source,
                })?;
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
            .map_err(|source| VlinkError::Spawn {
                script: path.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if stderr.contains("File exists") {
                return Err(VlinkError::Exists {
                    ifname: end.ifname(),
                });
            }
            if stderr.contains("Unknown device type") {
                return Err(VlinkError::Unsupported {
                    kind: end.kind,
                    detail: stderr,
                });
            }
            Err(VlinkError::Script {
                script: path,
                status: out.status.to_string(),
                stderr,
            })
        }
    }
}

/// Removes the device `ifname` (a missing one is fine). Holds the kernel's
/// RTNL lock for an RCU grace period: call it off the signaling thread.
pub async fn delete_by_name(handle: &Handle, ifname: &str) -> Result<(), VlinkError> {
    let msg = LinkUnspec::new_with_name(ifname).build();
    match handle.link().del_with_message(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(VlinkError::Netlink {
            op: "delete",
            ifname: ifname.to_string(),
            source: e,
        }),
    }
}

/// Ensures `bridge` exists and is up in the namespace of `handle`.
pub async fn ensure_bridge(handle: &Handle, bridge: &str) -> Result<u32, VlinkError> {
    let get = handle
        .link()
        .get()
        .match_name(bridge.to_string())
        .execute()
        .try_next()
        .await;
    if let Ok(Some(m)) = get {
        return Ok(m.header.index);
    }
    handle
        .link()
        .add(LinkBridge::new(bridge).up().build())
        .execute()
        .await
        .map_err(|e| VlinkError::Netlink {
            op: "create bridge",
            ifname: bridge.to_string(),
            source: e,
        })?;
    let m = handle
        .link()
        .get()
        .match_name(bridge.to_string())
        .execute()
        .try_next()
        .await
        .ok()
        .flatten()
        .ok_or_else(|| VlinkError::NoBridge {
            bridge: bridge.to_string(),
        })?;
    Ok(m.header.index)
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

    #[test]
    fn vni_is_24_bit_and_never_zero() {
        assert_eq!(vni_for(0), 1);
        assert_eq!(vni_for(1), 2);
        assert_eq!(vni_for(0x00ff_fffe), 0x00ff_ffff);
        assert_eq!(vni_for(0x00ff_ffff), 1);
        assert_eq!(vni_for(u64::MAX), (1 + u64::MAX % 0x00ff_ffff) as u32);
        for id in [0u64, 7, 1 << 40, u64::MAX] {
            let v = vni_for(id);
            assert!((1..=0x00ff_ffff).contains(&v));
        }
    }

    #[test]
    fn ifname_fits_ifnamsiz() {
        let end = TunnelEnd {
            vlink_id: u64::MAX,
            kind: TunnelKind::Vxlan,
            local: Ipv4Addr::new(172, 1, 2, 1),
            remote: Ipv4Addr::new(172, 3, 4, 4),
            bridge: "br0".into(),
            backend: None,
        };
        assert!(end.ifname().len() <= 15);
        assert_eq!(end.ifname(), format!("vl{:06x}", end.vni()));
    }

    #[test]
    fn backend_parses() {
        assert_eq!("netlink".parse::<Backend>().unwrap(), Backend::Netlink);
        assert_eq!("script".parse::<Backend>().unwrap(), Backend::Script);
        assert!("ip".parse::<Backend>().unwrap_err().contains("netlink"));
    }
}
