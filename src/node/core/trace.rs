//! One debug line per message a node sends or takes in
//! (`VLSP_LOG=vlsp::node::core::trace=debug`): enough to follow a session
//! hop by hop when a repair is slow or a link is lost, without a capture.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::proto::gist::machine as gm;
use crate::wire::nslp::NslpMessage;

fn gist_kind(msg: &gm::Msg) -> &'static str {
    match msg {
        gm::Msg::Query { .. } => "Query",
        gm::Msg::Response { .. } => "Response",
        gm::Msg::Confirm { .. } => "Confirm",
        gm::Msg::Data { .. } => "Data",
        gm::Msg::NoRoutingState { .. } => "Error(No Routing State)",
    }
}

fn sid_short(sid: &[u8; 16]) -> String {
    crate::model::hex(&sid[..4])
}

/// A GIST PDU leaving the node.
pub(super) fn gist_out(node: &str, dst: SocketAddrV4, qmode: bool, msg: &gm::Msg) {
    tracing::debug!(
        node,
        %dst,
        qmode,
        sid = %sid_short(&msg.sid()),
        "GIST {} out",
        gist_kind(msg)
    );
}

/// A GIST PDU taken in.
pub(super) fn gist_in(node: &str, src: SocketAddrV4, msg: &gm::Msg) {
    tracing::debug!(node, %src, sid = %sid_short(&msg.sid()), "GIST {} in", gist_kind(msg));
}

/// An NSLP message handed to the NSLP (`dir` as GIST gave it).
pub(super) fn nslp_in(
    node: &str,
    peer: Ipv4Addr,
    sid: &[u8; 16],
    dir: gm::Direction,
    m: &NslpMessage,
) {
    tracing::debug!(
        node,
        %peer,
        sid = %sid_short(sid),
        ?dir,
        tear = m.flags.tear,
        rii = ?m.rii(),
        rsn = ?m.rsn().map(|r| r.0),
        "NSLP {:?} in",
        m.msg_type
    );
}
