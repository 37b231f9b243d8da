//! The NSLP's sessions as the API shows them.

use super::NodeCore;
use crate::model::units::Rate;
use crate::node::api::{self, LinkState};
use crate::proto::gist::machine::Sid;

pub use crate::model::hex;

impl NodeCore {
    /// The link `vlink_id` of session `sid`, just set up.
    pub(super) fn link_info(&self, vlink_id: u64, sid: &Sid) -> api::LinkInfo {
        let (vlsp, rate) = self
            .nslp
            .sessions()
            .find(|(s, ..)| *s == sid)
            .map(|(_, _, _, v, rate)| (v.cloned(), rate))
            .unwrap_or((None, Rate::from_bps(0)));
        let v = vlsp.as_ref();
        api::LinkInfo {
            vlink_id,
            from: v
                .map(|v| self.cfg.vnode_name(v.src_vnode))
                .unwrap_or_default(),
            to: v
                .map(|v| self.cfg.vnode_name(v.dst_vnode))
                .unwrap_or_default(),
            from_vif: v.map_or(0, |v| v.src_vif),
            to_vif: v.map_or(0, |v| v.dst_vif),
            rate_bps: rate,
            session: hex(sid),
            tunnel: self.tunnel_of(v),
            backend: self.backend_of(sid),
            state: LinkState::up(),
        }
    }

    /// The tunnel kind the link's VLSP object asked for.
    fn tunnel_of(
        &self,
        v: Option<&crate::wire::vlsp::VlspObject>,
    ) -> crate::model::tunnel::TunnelKind {
        v.and_then(|v| v.tunnel_type.kind())
            .unwrap_or(self.cfg.tunnel)
    }

    /// Virtual interfaces carrying a virtual link this node knows of (at
    /// either end), so a new link picks a free one and a responder refuses
    /// a busy one.
    pub(super) fn vifs_in_use(&self) -> Vec<crate::node::config::VifUse> {
        self.nslp
            .sessions()
            .filter_map(|(_, _, _, v, _)| v)
            .flat_map(|v| {
                [
                    (v.src_vnode, v.src_vif, v.vlink_id),
                    (v.dst_vnode, v.dst_vif, v.vlink_id),
                ]
            })
            .collect()
    }

    /// The backend of this node's tunnel end for session `sid`.
    fn backend_of(&self, sid: &Sid) -> crate::model::tunnel::Backend {
        self.backends.get(sid).copied().unwrap_or(self.cfg.backend)
    }

    /// The core's part of `health` (sessions, links, C-mode); the sockets
    /// and the uptime are the actors' to fill.
    pub fn health(&self) -> api::Health {
        api::Health {
            node: self.cfg.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: 0.0,
            gist_udp: None,
            router_alert: false,
            ma_listener: None,
            cmode: self.cfg.cmode,
            sessions: self.nslp.sessions().count(),
            links: self.list().len(),
        }
    }

    /// Virtual links known to this node.
    pub fn list(&self) -> Vec<api::LinkInfo> {
        self.nslp
            .sessions()
            .filter_map(|(sid, role, phase, v, rate)| {
                let v = v?;
                Some(api::LinkInfo {
                    vlink_id: v.vlink_id,
                    from: self.cfg.vnode_name(v.src_vnode),
                    to: self.cfg.vnode_name(v.dst_vnode),
                    from_vif: v.src_vif,
                    to_vif: v.dst_vif,
                    rate_bps: rate,
                    session: hex(sid),
                    tunnel: self.tunnel_of(Some(v)),
                    backend: self.backend_of(sid),
                    state: LinkState {
                        role: Some(role),
                        phase,
                    },
                })
            })
            .collect()
    }
}
