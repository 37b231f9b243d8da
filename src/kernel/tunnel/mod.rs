//! Tunnel ends of virtual links: the kernel state that turns an admitted
//! VLSP request into a working layer-2 link between two virtual nodes.
//!
//! A tunnel end is an Ethernet-carrying tunnel device (VXLAN on this kernel;
//! gretap and Geneve where the kernel has them) created in the substrate
//! node's namespace and enslaved to the bridge of the virtual interface the
//! VLSP object names, as the paper's Fig. 7 (`tun12` in `br0`). Every
//! virtual interface has its own bridge and carries one link, so links never
//! share an L2 segment (no loops; no 1023-port limit per node). The kind is
//! the one the VLSP object asks for; GRE and IP-in-IP carry IP, not
//! Ethernet, so for them the kernel is only asked whether it has the kind,
//! and the refusal says which it is. Both ends derive the device name and
//! the VXLAN/Geneve VNI from the VLink ID of the VLSP object, so they agree
//! without negotiating.
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

mod fake;
mod netlink;
mod script;

pub use fake::{FakeTunnels, TunnelCall, TunnelOp};
pub use netlink::{
    DOOMED_GROUP, NetlinkTunnels, SOCKET_KEEPER, delete_by_name, delete_many, ensure_bridge,
    keep_vxlan_socket, vlink_bridge,
};
pub use script::{DOWN_SCRIPT, ScriptTunnels, UP_SCRIPT};

use rtnetlink::Handle;
use serde::{Deserialize, Serialize};

use crate::model::tunnel::{Backend, TunnelKind, vni_for};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use thiserror::Error;

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

    /// Whether `name` is a tunnel end's device name ([`TunnelEnd::ifname`]).
    pub fn is_end_name(name: &str) -> bool {
        name.len() == 8
            && name.starts_with("vl")
            && name[2..].bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// How errors name the node this end is on.
    pub fn node(&self) -> String {
        self.local.to_string()
    }
}

/// Why a tunnel end could not be set up or removed. `node` names the
/// substrate node at fault (its address, from the tunnel end).
#[derive(Debug, Error)]
pub enum VlinkError {
    #[error(
        "tunnel end {ifname} already exists on node {node}: tear the virtual link down first (vlsp link teardown)"
    )]
    Exists { ifname: String, node: String },
    #[error(
        "bridge {bridge} not found on node {node}: is the virtual node attached here (check the topology's vnode host)?"
    )]
    NoBridge { bridge: String, node: String },
    #[error(
        "tunnel end {ifname} not found on node {node}: was the virtual link set up on this node?"
    )]
    NoTunnel { ifname: String, node: String },
    #[error(
        "the kernel of node {node} cannot create {kind} tunnels ({detail}): ask for a tunnel type it has (vxlan)"
    )]
    Unsupported {
        kind: TunnelKind,
        node: String,
        detail: String,
    },
    #[error(
        "node {node} has {kind} tunnels, but they carry IP packets, not the Ethernet frames of a virtual link: ask for vxlan, gretap or geneve"
    )]
    NotEthernet { kind: TunnelKind, node: String },
    #[error("netlink {op} of {ifname} on node {node} failed: {source}")]
    Netlink {
        op: &'static str,
        ifname: String,
        node: String,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("script {script} for {ifname} on node {node} failed ({status}): {stderr}")]
    Script {
        script: PathBuf,
        ifname: String,
        node: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run script {script} on node {node}: {source}")]
    Spawn {
        script: PathBuf,
        node: String,
        #[source]
        source: std::io::Error,
    },
    /// Only from [`FakeTunnels`], when a test asks for a failure.
    #[error("injected failure: {what} of {ifname} on node {node}")]
    Injected {
        what: &'static str,
        ifname: String,
        node: String,
    },
}

/// The kernel work behind a virtual link's tunnel end, as the node's vlink
/// worker needs it: [`Tunnels`] does it on the kernel (netlink or script
/// backend), [`FakeTunnels`] records it for tests.
pub trait TunnelOps {
    /// Creates the tunnel end, enslaves it to its bridge and brings it up.
    fn up(&mut self, end: &TunnelEnd) -> impl Future<Output = Result<(), VlinkError>>;
    /// Stops the tunnel end carrying frames, now and cheaply.
    fn out_of_service(&mut self, end: &TunnelEnd) -> impl Future<Output = Result<(), VlinkError>>;
    /// Removes the device (a missing one is fine).
    fn delete(&mut self, end: &TunnelEnd) -> impl Future<Output = Result<(), VlinkError>>;
}

/// Creates and removes tunnel ends in one node's namespace, with the
/// backend each end asks for (else the node's). Must be built on the node's
/// thread (or with a netlink socket opened in its namespace).
pub struct Tunnels {
    backend: Backend,
    netlink: Option<NetlinkTunnels>,
    script: ScriptTunnels,
}

impl Tunnels {
    /// `handle` is an rtnetlink handle whose socket lives in the node's
    /// namespace; `script_dir` is where the script backend keeps its scripts.
    pub fn new(backend: Backend, handle: Option<Handle>, script_dir: &Path) -> Self {
        Self {
            backend,
            netlink: handle.map(NetlinkTunnels::new),
            script: ScriptTunnels::new(script_dir),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The backend for `end`: its own choice, else the node's.
    pub fn backend_for(&self, end: &TunnelEnd) -> Backend {
        end.backend.unwrap_or(self.backend)
    }

    fn netlink(&mut self) -> &mut NetlinkTunnels {
        self.netlink
            .as_mut()
            .expect("netlink backend needs a netlink handle")
    }

    /// Creates the tunnel end, enslaves it to its bridge and brings it up.
    pub async fn up(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        match self.backend_for(end) {
            Backend::Netlink => self.netlink().up(end).await,
            Backend::Script => self.script.up(end).await,
        }
    }

    /// Takes the tunnel end out of service: its bridge port is disabled, so
    /// the virtual link stops carrying frames now. Cheap (no grace period).
    pub async fn out_of_service(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        match self.backend_for(end) {
            Backend::Netlink => self.netlink().out_of_service(end).await,
            Backend::Script => self.script.out_of_service(end).await,
        }
    }

    /// Removes the device. With the script backend this already happened in
    /// [`Self::out_of_service`]; a missing device is not an error.
    pub async fn delete(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        match self.backend_for(end) {
            Backend::Netlink => self.netlink().delete(end).await,
            Backend::Script => self.script.delete(end).await,
        }
    }
}

impl TunnelOps for Tunnels {
    async fn up(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        Tunnels::up(self, end).await
    }
    async fn out_of_service(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        Tunnels::out_of_service(self, end).await
    }
    async fn delete(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        Tunnels::delete(self, end).await
    }
}

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
    fn tunnel_end_names_are_told_apart() {
        assert!(TunnelEnd::is_end_name("vl00a1ff"));
        for other in ["vlan0", "vl00a1ffx", "eth0", "vl00g1ff", "br0v1"] {
            assert!(!TunnelEnd::is_end_name(other), "{other}");
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
