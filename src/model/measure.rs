//! In-memory measurement points, as the paper's §IV-A describes: a timestamp
//! is taken where the code passes a point and kept in memory; nothing is
//! written until the run is over, so file I/O never disturbs a measurement.
//!
//! Timestamps come from `CLOCK_MONOTONIC`, which is one clock for the whole
//! machine (network namespaces do not have clocks of their own), so points
//! recorded by the node threads of tb1..tb4 can be subtracted from each other.
//!
//! The paper's periods (Fig. 8) are derived from the points of one session:
//!
//! | period | node | from | to |
//! |---|---|---|---|
//! | [A] | external program on the initiator | API request sent | API reply received |
//! | [B] | initiator (tb1) | first GIST Query sent | QoS NSLP RESPONSE received |
//! | [C] | responder (tb4) | tunnel-end setup started | tunnel-end setup done |
//! | [D] | each forwarding node (tb3 in the paper) | GIST Query sent downstream | GIST Confirm sent |
//! | [E] | each forwarding node | RESERVE received | RESERVE sent downstream |
//! | [F] | each forwarding node | RESPONSE received from downstream | RESPONSE sent upstream |
//! | [G] | responder (tb4) | RESERVE received | RESPONSE sent |
//! | [H] | initiator (tb1) | tunnel-end setup started | tunnel-end setup done |
//!
//! [E]−[D] is the paper's RESERVE processing time q_i, [F] is r_i, [D] is g_i,
//! and [G]−[C] is q_h + r_h (the paper's 1.19 ms).

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Where in the code a point was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// External program: request written to the node's API socket.
    ClientRequestSent,
    /// External program: reply read from the API socket.
    ClientReplyReceived,
    /// Node: API request read.
    ApiRequestReceived,
    /// Node: API reply written.
    ApiReplySent,
    GistQuerySent,
    GistQueryReceived,
    GistResponseSent,
    GistResponseReceived,
    GistConfirmSent,
    GistConfirmReceived,
    ReserveSent,
    ReserveReceived,
    ResponseSent,
    ResponseReceived,
    NotifySent,
    NotifyReceived,
    /// Tunnel end (virtual link end) creation started / finished.
    VlinkUpStart,
    VlinkUpDone,
    /// Tunnel end removal started / finished (out of service).
    VlinkDownStart,
    VlinkDownDone,
    /// Deferred removal of the tunnel device started / finished.
    VlinkDeleteStart,
    VlinkDeleteDone,
    HmacSignStart,
    HmacSignDone,
    HmacVerifyStart,
    HmacVerifyDone,
    AdmissionStart,
    AdmissionDone,
    /// Reservation installed in the kernel (HTB class + filter) on this hop.
    QosInstallStart,
    QosInstallDone,
}

/// One recorded point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub at_ns: u64,
    /// Substrate node (or "client" for the external program).
    pub node: Arc<str>,
    /// GIST session id of the signaling session the point belongs to
    /// (all zero where none applies yet).
    pub sid: [u8; 16],
    pub kind: PointKind,
}

/// A point as it is kept until it is drained: its node is the recorder's.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at_ns: u64,
    sid: [u8; 16],
    kind: PointKind,
}

/// A cheap, cloneable handle that appends points to one shared buffer.
/// Each node gets its own recorder so that node threads never contend.
/// Taking a point touches as little memory as it can (issue 17: on a long
/// chain every hop's recorder has gone cold by the time the chain comes
/// back): a 32-byte [`Mark`] into room reserved up front, the node's name
/// added only when the points are drained, and the room kept then, so no
/// point of the next run waits for a reallocation or a fresh page.
#[derive(Debug, Clone)]
pub struct Recorder {
    node: Arc<str>,
    points: Arc<Mutex<Vec<Mark>>>,
    enabled: bool,
}

impl Recorder {
    /// A recorder for `node` with room for `capacity` points before it reallocates.
    pub fn new(node: &str, capacity: usize) -> Self {
        Self {
            node: Arc::from(node),
            points: Arc::new(Mutex::new(Vec::with_capacity(capacity))),
            enabled: true,
        }
    }

    /// A recorder that drops everything (for runs that measure nothing).
    pub fn disabled(node: &str) -> Self {
        Self {
            node: Arc::from(node),
            points: Arc::new(Mutex::new(Vec::new())),
            enabled: false,
        }
    }

    /// The node this recorder belongs to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Records `kind` for session `sid` now.
    pub fn mark(&self, sid: [u8; 16], kind: PointKind) {
        self.mark_at(now_ns(), sid, kind);
    }

    /// Records `kind` at a timestamp taken earlier.
    pub fn mark_at(&self, at_ns: u64, sid: [u8; 16], kind: PointKind) {
        if !self.enabled {
            return;
        }
        // A poisoned lock only means another thread panicked mid-push; the
        // data are still a valid Vec.
        self.points
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Mark { at_ns, sid, kind });
    }

    /// Takes every point recorded so far.
    pub fn drain(&self) -> Vec<Point> {
        let mut marks = self.points.lock().unwrap_or_else(|e| e.into_inner());
        marks
            .drain(..)
            .map(|m| Point {
                at_ns: m.at_ns,
                node: self.node.clone(),
                sid: m.sid,
                kind: m.kind,
            })
            .collect()
    }
}

/// Time between the first `from` and the first `to` (taken at or after
/// `from`) recorded by `node` for `sid`, in nanoseconds.
pub fn period(
    points: &[Point],
    node: &str,
    sid: &[u8; 16],
    from: PointKind,
    to: PointKind,
) -> Option<u64> {
    let mine = |p: &&Point| &*p.node == node && &p.sid == sid;
    let start = points
        .iter()
        .filter(mine)
        .filter(|p| p.kind == from)
        .map(|p| p.at_ns)
        .min()?;
    let end = points
        .iter()
        .filter(mine)
        .filter(|p| p.kind == to && p.at_ns >= start)
        .map(|p| p.at_ns)
        .min()?;
    Some(end - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_across_threads() {
        let a = now_ns();
        let b = std::thread::spawn(now_ns).join().unwrap();
        assert!(b >= a);
    }

    #[test]
    fn period_takes_first_end_after_start() {
        let r = Recorder::new("tb3", 8);
        let sid = [7; 16];
        r.mark_at(100, sid, PointKind::ReserveReceived);
        r.mark_at(90, sid, PointKind::ReserveSent); // an earlier session's send: ignored
        r.mark_at(250, sid, PointKind::ReserveSent);
        r.mark_at(300, sid, PointKind::ReserveSent);
        r.mark_at(120, [1; 16], PointKind::ReserveSent); // other session
        let pts = r.drain();
        assert_eq!(
            period(
                &pts,
                "tb3",
                &sid,
                PointKind::ReserveReceived,
                PointKind::ReserveSent
            ),
            Some(150)
        );
        assert_eq!(
            period(
                &pts,
                "tb4",
                &sid,
                PointKind::ReserveReceived,
                PointKind::ReserveSent
            ),
            None
        );
        assert!(r.drain().is_empty());
    }

    /// Draining hands out the node's points and keeps the room reserved
    /// for the next run's (no reallocation while a run takes points).
    #[test]
    fn draining_names_the_node_and_keeps_the_room() {
        let r = Recorder::new("tb2", 8);
        for at in 1..=3 {
            r.mark_at(at, [at as u8; 16], PointKind::GistQuerySent);
        }
        let pts = r.drain();
        assert_eq!(pts.len(), 3);
        assert!(pts.iter().all(|p| &*p.node == "tb2"));
        assert_eq!(pts[2].sid, [3; 16]);
        let kept = r.points.lock().unwrap();
        assert!(
            kept.is_empty() && kept.capacity() >= 8,
            "{}",
            kept.capacity()
        );
    }

    #[test]
    fn disabled_recorder_keeps_nothing() {
        let r = Recorder::disabled("tb1");
        r.mark([0; 16], PointKind::ApiRequestReceived);
        assert!(r.drain().is_empty());
    }
}
