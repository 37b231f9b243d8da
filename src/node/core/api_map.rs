//! The NSLP's sessions as the API shows them.

use super::NodeCore;
use crate::model::units::Rate;
use crate::node::api::{self, LinkState};
use crate::proto::gist::machine::Sid;

/// Lower-case hex of a session id.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl NodeCore {
    /// The link `vlink_id` of session `sid`, just set up.
    pub(super) fn link_info(&self, vlink_id: u64, sid: &Sid) -> api::LinkInfo {
        let (from, to, rate) = self
            .nslp
            .sessions()
            .find(|(s, ..)| *s == sid)
            .map(|(_, _, _, v, rate)| {
                let (f, t) = v
                    .map(|v| {
                        (
                            self.cfg.vnode_name(v.src_vnode),
                            self.cfg.vnode_name(v.dst_vnode),
                        )
                    })
                    .unwrap_or_default();
                (f, t, rate)
            })
            .unwrap_or((String::new(), String::new(), Rate::from_bps(0)));
        api::LinkInfo {
            vlink_id,
            from,
            to,
            rate_bps: rate,
            session: hex(sid),
            tunnel: self.cfg.tunnel,
            backend: self.backend_of(sid),
            state: LinkState::up(),
        }
    }

    /// The backend of this node's tunnel end for session `sid`.
    fn backend_of(&self, sid: &Sid) -> crate::model::tunnel::Backend {
        self.backends.get(sid).copied().unwrap_or(self.cfg.backend)
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
                    rate_bps: rate,
                    session: hex(sid),
                    tunnel: self.cfg.tunnel,
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
