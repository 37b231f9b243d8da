//! The netlink backend: one rtnetlink request creates the device, enslaves
//! it to the bridge and brings it up; no process is spawned.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{InfoBridge, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkGeneve, LinkGre, LinkIpIp, LinkUnspec, LinkVxlan};

use super::{TunnelEnd, TunnelOps, VlinkError};
use crate::model::ports::VXLAN_PORT;
use crate::model::tunnel::TunnelKind;

const IFLA_PROTINFO: u16 = 12;
const NLA_F_NESTED: u16 = 0x8000;
const IFLA_BRPORT_STATE: u16 = 1;
const IFLA_BRPORT_FLUSH: u16 = 24;
const BR_STATE_DISABLED: u8 = 0;

/// IFLA_PROTINFO, nested (`bridge link set dev X state 0` plus a flush of
/// the port's forwarding entries): IFLA_BRPORT_STATE, a u8 padded to 4,
/// then IFLA_BRPORT_FLUSH, a flag. A disabled port keeps the MAC addresses
/// it learned, so a new link between the same virtual nodes would send
/// their frames to the old, disabled port until the reaper deletes it.
const DISABLE_AND_FLUSH: [u8; 12] = [
    5,
    0,
    IFLA_BRPORT_STATE as u8,
    0,
    BR_STATE_DISABLED,
    0,
    0,
    0, // state
    4,
    0,
    IFLA_BRPORT_FLUSH as u8,
    0, // flush
];

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Tunnel ends by rtnetlink, in the namespace of its handle's socket.
pub struct NetlinkTunnels {
    handle: Handle,
    bridges: HashMap<String, u32>,
}

impl NetlinkTunnels {
    pub fn new(handle: Handle) -> Self {
        Self {
            handle,
            bridges: HashMap::new(),
        }
    }

    async fn index_of(&self, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
        link_index(&self.handle, name).await
    }

    async fn bridge_index(&mut self, end: &TunnelEnd) -> Result<u32, VlinkError> {
        if let Some(i) = self.bridges.get(&end.bridge) {
            return Ok(*i);
        }
        match self.index_of(&end.bridge).await {
            Ok(Some(i)) => {
                self.bridges.insert(end.bridge.clone(), i);
                Ok(i)
            }
            _ => Err(VlinkError::NoBridge {
                bridge: end.bridge.clone(),
                node: end.node(),
            }),
        }
    }
}

impl NetlinkTunnels {
    /// An IP-carrying tunnel (GRE, IP-in-IP) cannot join a bridge: ask the
    /// kernel whether it has the kind at all (a throwaway device, removed
    /// at once), so the refusal says which of the two is the matter.
    async fn probe_ip_tunnel(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        let name = end.ifname();
        let msg = match end.kind {
            TunnelKind::Ipip => LinkIpIp::new(&name)
                .local(end.local)
                .remote(end.remote)
                .build(),
            _ => LinkGre::new(&name)
                .local(end.local)
                .remote(end.remote)
                .build(),
        };
        match self.handle.link().add(msg).execute().await {
            Ok(()) => {
                delete_by_name(&self.handle, &name).await?;
                Err(VlinkError::NotEthernet {
                    kind: end.kind,
                    node: end.node(),
                })
            }
            Err(e) => Err(create_error(e, end)),
        }
    }
}

/// What a refused creation of `end`'s device means.
fn create_error(e: rtnetlink::Error, end: &TunnelEnd) -> VlinkError {
    match errno(&e) {
        Some(libc::EEXIST) => VlinkError::Exists {
            ifname: end.ifname(),
            node: end.node(),
        },
        Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => VlinkError::Unsupported {
            kind: end.kind,
            node: end.node(),
            detail: e.to_string(),
        },
        _ => VlinkError::Netlink {
            op: "create",
            ifname: end.ifname(),
            node: end.node(),
            source: Box::new(e),
        },
    }
}

impl TunnelOps for NetlinkTunnels {
    async fn up(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        if !end.kind.carries_ethernet() {
            return self.probe_ip_tunnel(end).await;
        }
        let br = self.bridge_index(end).await?;
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
            TunnelKind::Gre | TunnelKind::Ipip => unreachable!("probed above"),
        };
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| create_error(e, end))
    }

    async fn out_of_service(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        let name = end.ifname();
        let idx = self
            .index_of(&name)
            .await
            .map_err(|e| VlinkError::Netlink {
                op: "find",
                ifname: name.clone(),
                node: end.node(),
                source: Box::new(e),
            })?
            .ok_or_else(|| VlinkError::NoTunnel {
                ifname: name.clone(),
                node: end.node(),
            })?;
        // RTM_SETLINK for AF_BRIDGE with the port's attributes nested in
        // IFLA_PROTINFO. (The IFLA_INFO_SLAVE_DATA route is silently
        // ignored by 6.18.)
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = idx;
        msg.attributes.push(LinkAttribute::Other(DefaultNla::new(
            IFLA_PROTINFO | NLA_F_NESTED,
            DISABLE_AND_FLUSH.to_vec(),
        )));
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| VlinkError::Netlink {
                op: "disable bridge port",
                ifname: name,
                node: end.node(),
                source: Box::new(e),
            })
    }

    async fn delete(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        delete_by_name(&self.handle, &end.ifname())
            .await
            .map_err(|e| match e {
                VlinkError::Netlink {
                    op, ifname, source, ..
                } => VlinkError::Netlink {
                    op,
                    ifname,
                    node: end.node(),
                    source,
                },
                e => e,
            })
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
            node: "(this node)".into(),
            source: Box::new(e),
        }),
    }
}

/// The device group tunnel ends join just before [`delete_many`] removes
/// them ("vld" in ASCII); nothing else uses it.
pub const DOOMED_GROUP: u32 = 0x766c_6400;

/// Removes the devices `ifnames` together (missing ones are fine): each
/// joins [`DOOMED_GROUP`] (cheap: no grace period), then one request
/// deletes the group, so the kernel waits for one RCU grace period under
/// the RTNL lock for all of them instead of one each (a burst of 256
/// teardowns held the lock ~6 s one by one).
pub async fn delete_many(handle: &Handle, ifnames: &[String]) -> Result<(), VlinkError> {
    if let [one] = ifnames {
        return delete_by_name(handle, one).await;
    }
    let fail = |op, ifname: &str, e| VlinkError::Netlink {
        op,
        ifname: ifname.to_string(),
        node: "(this node)".into(),
        source: Box::new(e),
    };
    let joins = ifnames.iter().map(|name| async move {
        let msg = LinkUnspec::new_with_name(name)
            .append_extra_attribute(LinkAttribute::Group(DOOMED_GROUP))
            .build();
        match handle.link().set(msg).execute().await {
            Err(e) if errno(&e) != Some(libc::ENODEV) => {
                Err(fail("join the deletion group", name, e))
            }
            _ => Ok(()),
        }
    });
    for r in futures_util::future::join_all(joins).await {
        r?;
    }
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::Group(DOOMED_GROUP));
    match handle.link().del_with_message(msg).execute().await {
        Ok(()) => Ok(()),
        // No device left in the group: all were gone already.
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(fail("delete", &ifnames.join(" "), e)),
    }
}

/// A VXLAN device that carries nothing (VNI 0, which no link gets; no
/// remote; in no bridge), kept up in a namespace that hosts virtual nodes.
/// The first VXLAN device opened in a namespace opens the kernel's UDP
/// socket for the port (~0.25 ms here, on the path of the first tunnel end
/// after every teardown of the last one); later devices with the same port
/// share it (~0.1 ms to bring one up). The name is not a tunnel end's.
pub const SOCKET_KEEPER: &str = "vxkeep";

/// Creates [`SOCKET_KEEPER`] in the namespace of `handle` (one already
/// there, e.g. from another virtual node of the host, is left as it is).
/// Callers warn and go on when it fails: it only makes tunnel ends cheaper
/// (a kernel without VXLAN still carries gretap or geneve links).
pub async fn keep_vxlan_socket(handle: &Handle) -> Result<(), VlinkError> {
    let msg = LinkVxlan::new(SOCKET_KEEPER, 0)
        .port(VXLAN_PORT)
        .learning(false)
        .up()
        .build();
    match handle.link().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(VlinkError::Netlink {
            op: "create",
            ifname: SOCKET_KEEPER.into(),
            node: "(this node)".into(),
            source: Box::new(e),
        }),
    }
}

/// A virtual interface's bridge (its VM's port and its links' tunnel
/// ends): up, multicast snooping off. A virtual link is one L2 segment that
/// floods multicast like a hub; snooping would only add per-port multicast
/// state, set up under the RTNL lock each time a tunnel end joins (~45 µs of
/// ~300 here, on the path of every setup).
pub fn vlink_bridge(name: &str) -> LinkMessage {
    LinkBridge::new(name)
        .append_info_data(InfoBridge::MulticastSnooping(false))
        .up()
        .build()
}

/// Ensures `bridge` exists and is up in the namespace of `handle`.
pub async fn ensure_bridge(handle: &Handle, bridge: &str) -> Result<u32, VlinkError> {
    if let Ok(Some(i)) = link_index(handle, bridge).await {
        return Ok(i);
    }
    handle
        .link()
        .add(vlink_bridge(bridge))
        .execute()
        .await
        .map_err(|e| VlinkError::Netlink {
            op: "create bridge",
            ifname: bridge.to_string(),
            node: "(this node)".into(),
            source: Box::new(e),
        })?;
    link_index(handle, bridge)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| VlinkError::NoBridge {
            bridge: bridge.to_string(),
            node: "(this node)".into(),
        })
}

/// The index of link `name` in the handle's namespace; `None` if there is
/// no such link.
async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    match handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(m) => Ok(m.map(|m| m.header.index)),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}
