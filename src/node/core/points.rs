//! Which measurement point a GIST message marks when it leaves or arrives.

use crate::model::measure::PointKind;
use crate::proto::gist::machine as gm;

/// The measurement point of an NSLP message leaving (or arriving) in a
/// GIST Data: its first byte is the QoS NSLP message type.
pub fn nslp_point(nslp_data: &[u8], sent: bool) -> Option<PointKind> {
    Some(match (nslp_data.first()?, sent) {
        (1, true) => PointKind::ReserveSent,
        (3, true) => PointKind::ResponseSent,
        (4, true) => PointKind::NotifySent,
        (1, false) => PointKind::ReserveReceived,
        (3, false) => PointKind::ResponseReceived,
        (4, false) => PointKind::NotifyReceived,
        _ => return None,
    })
}

/// The point of GIST message `msg`, sent or received.
pub fn gist_point(msg: &gm::Msg, sent: bool) -> Option<PointKind> {
    match (msg, sent) {
        (gm::Msg::Query { .. }, true) => Some(PointKind::GistQuerySent),
        (gm::Msg::Response { .. }, true) => Some(PointKind::GistResponseSent),
        (gm::Msg::Confirm { .. }, true) => Some(PointKind::GistConfirmSent),
        (gm::Msg::Query { .. }, false) => Some(PointKind::GistQueryReceived),
        (gm::Msg::Response { .. }, false) => Some(PointKind::GistResponseReceived),
        (gm::Msg::Confirm { .. }, false) => Some(PointKind::GistConfirmReceived),
        (gm::Msg::Data { nslp_data, .. }, s) => nslp_point(nslp_data, s),
        _ => None,
    }
}
