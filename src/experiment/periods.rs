//! The paper's measured periods (Fig. 8) for one run, derived from the
//! measurement points of the initiator (QNI), the responder (QNR), the
//! forwarding nodes in between (QNEs) and the external program.
//! See [`crate::model::measure`] for which instant each point is.

use crate::model::measure::{Point, PointKind as K, period};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Periods of one forwarding node (the paper reports them for tb3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopPeriods {
    pub node: String,
    /// [D] GIST handshake towards the next node: Query sent → Confirm sent.
    pub d_ns: Option<u64>,
    /// [E] RESERVE received → RESERVE sent downstream (includes [D]).
    pub e_ns: Option<u64>,
    /// [F] RESPONSE received from downstream → RESPONSE sent upstream.
    pub f_ns: Option<u64>,
    /// Installing the reservation in the kernel (HTB class + filter).
    pub qos_ns: Option<u64>,
    /// Admission done → class install started: the node's own sends of
    /// that turn, then the wait in its kernel thread's queue (the kernel
    /// threads share one CPU and can fall behind).
    pub class_wait_ns: Option<u64>,
    /// How long the RESPONSE waited here for the class: RESPONSE received →
    /// class installed on the kernel thread (the node lets it go on a few
    /// µs later, when it hears so); 0 when the class was in place first.
    /// The initiator's own wait is not counted.
    pub held_ns: Option<u64>,
}

/// Periods of one setup or teardown run, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunPeriods {
    /// [A] as the external program sees it: request sent → reply received.
    pub a_ns: Option<u64>,
    /// [A] inside the QNI: API request read → API reply written.
    pub a_node_ns: Option<u64>,
    /// [B] QNI: first signaling message sent → RESPONSE received.
    pub b_ns: Option<u64>,
    /// [C] QNR: tunnel-end setup (or removal).
    pub c_ns: Option<u64>,
    /// [G] QNR: RESERVE received → RESPONSE sent.
    pub g_ns: Option<u64>,
    /// [H] QNI: tunnel-end setup (or removal).
    pub h_ns: Option<u64>,
    /// QNI: GIST handshake with the first hop ([D] of the QNI).
    pub d_qni_ns: Option<u64>,
    /// HMAC creation on the QNI and verification on the QNR.
    pub hmac_sign_ns: Option<u64>,
    pub hmac_verify_ns: Option<u64>,
    /// Deferred removal of the tunnel device after teardown, on the QNI and
    /// the QNR (off the signaling path; reported on its own).
    pub delete_qni_ns: Option<u64>,
    pub delete_qnr_ns: Option<u64>,
    /// QNI: installing the reservation in the kernel on its egress link.
    pub qos_qni_ns: Option<u64>,
    /// The forwarding nodes, in path order.
    pub hops: Vec<HopPeriods>,
}

/// Which kind of run the points belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Setup,
    Teardown,
}

/// Derives the periods of one run of session `sid` from `points` (all
/// nodes' and the client's, for this run only). `qni` and `qnr` are the end
/// nodes; `qnes` the forwarding NSIS nodes in path order.
pub fn derive(
    points: &[Point],
    sid: &[u8; 16],
    kind: RunKind,
    qni: &str,
    qnr: &str,
    qnes: &[String],
) -> RunPeriods {
    // Grouped once by node: scanning every point for each period of each
    // node was quadratic in the path's length, and on a chain of 1000 it
    // took longer than the run it measured.
    let mut by_node: HashMap<&str, Vec<Point>> = HashMap::new();
    for p in points.iter().filter(|p| &p.sid == sid) {
        by_node.entry(&p.node).or_default().push(p.clone());
    }
    let of = |node: &str, from: K, to: K| {
        let mine = by_node.get(node).map_or(&[][..], Vec::as_slice);
        period(mine, node, sid, from, to)
    };
    let first = |node: &str, kind: K| {
        by_node
            .get(node)
            .and_then(|ps| ps.iter().filter(|p| p.kind == kind).map(|p| p.at_ns).min())
    };
    let (vl_start, vl_done) = match kind {
        RunKind::Setup => (K::VlinkUpStart, K::VlinkUpDone),
        RunKind::Teardown => (K::VlinkDownStart, K::VlinkDownDone),
    };
    // [B] starts with the first signaling message: the GIST Query on setup
    // (a new session), the tearing RESERVE on teardown (routing state
    // exists), and on setup the RESERVE when there was no Query (a flow's
    // known peer reused, `VLSP_GIST_REUSE_PEERS`).
    let queried = by_node
        .get(qni)
        .is_some_and(|ps| ps.iter().any(|p| p.kind == K::GistQuerySent));
    let b_start = match kind {
        RunKind::Setup if queried => K::GistQuerySent,
        RunKind::Setup | RunKind::Teardown => K::ReserveSent,
    };
    RunPeriods {
        a_ns: of("client", K::ClientRequestSent, K::ClientReplyReceived),
        a_node_ns: of(qni, K::ApiRequestReceived, K::ApiReplySent),
        b_ns: of(qni, b_start, K::ResponseReceived),
        c_ns: of(qnr, vl_start, vl_done),
        g_ns: of(qnr, K::ReserveReceived, K::ResponseSent),
        h_ns: of(qni, vl_start, vl_done),
        d_qni_ns: of(qni, K::GistQuerySent, K::GistConfirmSent),
        hmac_sign_ns: of(qni, K::HmacSignStart, K::HmacSignDone),
        hmac_verify_ns: of(qnr, K::HmacVerifyStart, K::HmacVerifyDone),
        delete_qni_ns: of(qni, K::VlinkDeleteStart, K::VlinkDeleteDone),
        delete_qnr_ns: of(qnr, K::VlinkDeleteStart, K::VlinkDeleteDone),
        qos_qni_ns: of(qni, K::QosInstallStart, K::QosInstallDone),
        hops: qnes
            .iter()
            .map(|n| HopPeriods {
                node: n.clone(),
                d_ns: of(n, K::GistQuerySent, K::GistConfirmSent),
                e_ns: of(n, K::ReserveReceived, K::ReserveSent),
                f_ns: of(n, K::ResponseReceived, K::ResponseSent),
                qos_ns: of(n, K::QosInstallStart, K::QosInstallDone),
                class_wait_ns: of(n, K::AdmissionDone, K::QosInstallStart),
                held_ns: first(n, K::ResponseReceived)
                    .zip(first(n, K::QosInstallDone))
                    .map(|(got, done)| done.saturating_sub(got)),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn p(node: &str, at: u64, kind: K) -> Point {
        Point {
            at_ns: at,
            node: Arc::from(node),
            sid: [3; 16],
            kind,
        }
    }

    /// A setup on tb1..tb4 laid out like the paper's Fig. 8.
    #[test]
    fn setup_periods_follow_fig8() {
        let pts = vec![
            p("client", 0, K::ClientRequestSent),
            p("tb1", 10, K::ApiRequestReceived),
            p("tb1", 20, K::ReserveSent),
            p("tb1", 21, K::GistQuerySent),
            p("tb1", 30, K::GistConfirmSent),
            p("tb2", 32, K::ReserveReceived),
            p("tb2", 33, K::GistQuerySent),
            p("tb2", 40, K::GistConfirmSent),
            p("tb2", 41, K::ReserveSent),
            p("tb3", 43, K::ReserveReceived),
            p("tb3", 44, K::GistQuerySent),
            p("tb3", 50, K::GistConfirmSent),
            p("tb3", 51, K::ReserveSent),
            p("tb4", 53, K::ReserveReceived),
            p("tb4", 54, K::VlinkUpStart),
            p("tb4", 80, K::VlinkUpDone),
            p("tb4", 81, K::ResponseSent),
            p("tb3", 83, K::ResponseReceived),
            p("tb3", 84, K::ResponseSent),
            p("tb2", 86, K::ResponseReceived),
            p("tb2", 87, K::ResponseSent),
            p("tb1", 89, K::ResponseReceived),
            p("tb1", 90, K::VlinkUpStart),
            p("tb1", 110, K::VlinkUpDone),
            p("tb1", 111, K::ApiReplySent),
            p("client", 115, K::ClientReplyReceived),
        ];
        let r = derive_4(&pts);
        assert_eq!(r.a_ns, Some(115));
        assert_eq!(r.a_node_ns, Some(101));
        assert_eq!(r.b_ns, Some(68));
        assert_eq!(r.c_ns, Some(26));
        assert_eq!(r.g_ns, Some(28));
        assert_eq!(r.h_ns, Some(20));
        assert_eq!(r.d_qni_ns, Some(9));
        assert_eq!(
            r.hops[1],
            HopPeriods {
                node: "tb3".into(),
                d_ns: Some(6),
                e_ns: Some(8),
                f_ns: Some(1),
                qos_ns: None,
                class_wait_ns: None,
                held_ns: None,
            }
        );
        // The paper's check: [A] = [B] + [H] + overhead, [B] contains [C].
        assert!(r.a_ns.unwrap() >= r.b_ns.unwrap() + r.h_ns.unwrap());
        assert!(r.b_ns.unwrap() > r.c_ns.unwrap());
    }

    /// tb1 → tb2 → tb3 with no Query: a later session on a flow's known
    /// peer (`VLSP_GIST_REUSE_PEERS`).
    fn setup_without_a_query() -> Vec<Point> {
        vec![
            p("tb1", 20, K::ReserveSent),
            p("tb2", 22, K::ReserveReceived),
            p("tb2", 25, K::ReserveSent),
            p("tb2", 40, K::ResponseReceived),
            p("tb2", 41, K::ResponseSent),
            p("tb1", 43, K::ResponseReceived),
        ]
    }

    /// tb1 → tb2 → tb3 → tb4, the paper's path.
    fn derive_4(pts: &[Point]) -> RunPeriods {
        let qnes = ["tb2".into(), "tb3".into()];
        derive(pts, &[3; 16], RunKind::Setup, "tb1", "tb4", &qnes)
    }

    fn derive_3(pts: &[Point]) -> RunPeriods {
        derive(pts, &[3; 16], RunKind::Setup, "tb1", "tb3", &["tb2".into()])
    }

    /// No Query, so [B] starts with the RESERVE and no hop has a [D].
    #[test]
    fn setup_without_a_query_starts_b_at_the_reserve() {
        let r = derive_3(&setup_without_a_query());
        assert_eq!(r.b_ns, Some(23));
        assert_eq!(r.d_qni_ns, None);
        assert_eq!((r.hops[0].d_ns, r.hops[0].e_ns), (None, Some(3)));
    }

    /// Points of another session (a refresh's Query, a concurrent setup)
    /// around this one's neither start nor end its periods.
    #[test]
    fn another_sessions_points_are_left_out() {
        let other = |node: &str, at: u64, kind: K| Point {
            sid: [9; 16],
            ..p(node, at, kind)
        };
        let mut pts = setup_without_a_query();
        pts.extend([
            other("tb1", 5, K::GistQuerySent),
            other("tb2", 21, K::ReserveReceived),
            other("tb2", 23, K::ReserveSent),
            other("tb1", 42, K::ResponseReceived),
        ]);
        let r = derive_3(&pts);
        // The other session's Query would make this one's [B] start at a
        // Query (the grouping's check); its other points would end or
        // start this one's periods if `period` did not look at the session.
        assert_eq!(r.b_ns, Some(23));
        assert_eq!(r.hops[0].e_ns, Some(3));
        assert_eq!(r.hops[0].f_ns, Some(1));
    }

    /// tb2's class is installed after the RESPONSE came back (held 25 ns),
    /// tb3's before (held 0); tb4 forwards nothing, so it has no hop.
    #[test]
    fn a_response_is_held_until_the_class_of_its_router_is_in_place() {
        let pts = vec![
            p("tb2", 10, K::AdmissionDone),
            p("tb3", 20, K::AdmissionDone),
            p("tb3", 22, K::QosInstallStart),
            p("tb3", 30, K::QosInstallDone),
            p("tb3", 40, K::ResponseReceived),
            p("tb2", 45, K::ResponseReceived),
            p("tb2", 60, K::QosInstallStart),
            p("tb2", 70, K::QosInstallDone),
            p("tb2", 71, K::ResponseSent),
        ];
        let r = derive_4(&pts);
        let (tb2, tb3) = (&r.hops[0], &r.hops[1]);
        assert_eq!((tb2.class_wait_ns, tb2.held_ns), (Some(50), Some(25)));
        assert_eq!((tb3.class_wait_ns, tb3.held_ns), (Some(2), Some(0)));
        // tb3's RESPONSE now comes before its class is done too (held 5):
        // per run, the longest wait and the holds added up along the way back.
        let mut pts = pts;
        pts[4] = p("tb3", 25, K::ResponseReceived);
        let mut v = std::collections::BTreeMap::new();
        crate::experiment::rows::put_periods(&mut v, "setup_", &derive_4(&pts));
        assert_eq!(v.get("setup_class_wait_max"), Some(&0.05));
        assert_eq!(v.get("setup_response_held"), Some(&0.03));
    }

    #[test]
    fn missing_points_give_none_not_garbage() {
        let r = derive(
            &[],
            &[3; 16],
            RunKind::Teardown,
            "tb1",
            "tb4",
            &["tb2".into()],
        );
        assert_eq!(r.a_ns, None);
        assert_eq!(r.hops[0].d_ns, None);
        assert_eq!((r.hops[0].class_wait_ns, r.hops[0].held_ns), (None, None));
        let mut v = std::collections::BTreeMap::new();
        crate::experiment::rows::put_periods(&mut v, "teardown_", &r);
        assert!(v.is_empty(), "{v:?}");
    }
}
