//! Admission (the RMF's ledger, exact and in memory) and the kernel work it
//! implies, as an action: a changed reservation parks what the machine was
//! doing until the glue reports the class installed ([`Nslp::class_done`]);
//! a kernel refusal takes the admission back and refuses like a full link.

use std::time::Instant;

use super::*;
use crate::proto::rmf::{Admission, Reservation};

/// What waits for a class install.
#[derive(Debug, Clone)]
pub(super) enum Parked {
    /// The QNI's setup, before its RESERVE goes out.
    Setup(SetupRequest),
    /// A QNE's RESERVE, before it is forwarded.
    Forward(Box<Forward>),
    /// The responder's reverse reservation, before its RESERVE goes out.
    Reverse {
        forward: Sid,
        flow: Flow,
        rate: Rate,
        vlink_id: u64,
    },
    /// A re-reservation after a path change, before its RESERVE goes out.
    Repair,
}

/// A QNE's RESERVE waiting for its class.
#[derive(Debug, Clone)]
pub(super) struct Forward {
    pub flow: Flow,
    pub rsn: u32,
    pub epoch: u32,
    pub rii: Option<u32>,
    pub is_refresh: bool,
    pub msg: NslpMessage,
    pub local: Ipv4Addr,
    /// The GIST peer it came from (the session's upstream peer).
    pub peer: Ipv4Addr,
    pub known: bool,
    pub rate: Option<Rate>,
}

/// An admission whose class is being installed.
#[derive(Debug, Clone)]
pub(super) struct Installing {
    link: String,
    previous: Option<Reservation>,
    then: Parked,
}

impl Nslp {
    /// Admits `rate_bps` for `sid` on `link`, then goes on with `then` at
    /// once, or (a changed reservation) after the kernel installed its class
    /// ([`Action::InstallClass`], answered by [`Self::class_done`]), or
    /// refuses it.
    pub(super) fn admit_then(
        &mut self,
        now: Instant,
        sid: Sid,
        link: &str,
        rate: Rate,
        classifier: Classifier,
        then: Parked,
    ) {
        self.actions.push_back(Action::Point {
            sid,
            kind: PointKind::AdmissionStart,
        });
        let r = self.ledger.admit(sid, link, rate);
        self.actions.push_back(Action::Point {
            sid,
            kind: PointKind::AdmissionDone,
        });
        match r {
            Err(e) => self.admission_refused(now, sid, then, e),
            Ok(Admission::Unchanged) => self.resume(now, sid, then),
            Ok(Admission::Changed { previous }) => {
                self.installing.insert(
                    sid,
                    Installing {
                        link: link.to_string(),
                        previous,
                        then,
                    },
                );
                self.actions.push_back(Action::InstallClass {
                    sid,
                    link: link.to_string(),
                    rate,
                    classifier,
                });
            }
        }
    }

    /// Frees `sid`'s reservation and has its class removed.
    pub(super) fn release(&mut self, sid: &Sid) {
        if self.ledger.release(sid).is_some() {
            self.actions.push_back(Action::RemoveClass { sid: *sid });
        }
    }

    /// The class requested by [`Action::InstallClass`] is installed (or the
    /// kernel refused it with `err`, leaving nothing of it behind).
    pub fn class_done(&mut self, now: Instant, sid: Sid, err: Option<String>) {
        let Some(i) = self.installing.remove(&sid) else {
            return;
        };
        match err {
            None => self.resume(now, sid, i.then),
            Some(message) => {
                self.ledger.undo(sid, i.previous);
                let e = AdmitError::Enforcement {
                    link: i.link,
                    message,
                };
                self.admission_refused(now, sid, i.then, e);
            }
        }
    }

    /// Goes on with what an admission held up.
    pub(super) fn resume(&mut self, now: Instant, sid: Sid, then: Parked) {
        match then {
            Parked::Setup(req) => self.setup_admitted(now, req),
            Parked::Forward(f) => self.qne_forward(now, sid, *f),
            Parked::Reverse {
                forward,
                flow,
                rate,
                ..
            } => self.reverse_admitted(now, forward, sid, flow, rate),
            Parked::Repair => self.repair_admitted(now, sid),
        }
    }

    /// Refuses what an admission held up: by capacity, link or kernel.
    pub(super) fn admission_refused(
        &mut self,
        now: Instant,
        sid: Sid,
        then: Parked,
        e: AdmitError,
    ) {
        self.refuse(RefusalReason::Admission);
        match then {
            Parked::Setup(req) => self.actions.push_back(Action::Reply {
                req_id: req.req_id,
                result: Err(ApiError {
                    reason: ErrorReason::Admission,
                    message: format!("{}: {e}", self.cfg.node),
                }),
            }),
            Parked::Forward(f) => {
                if f.known {
                    // A refresh or modification that no longer fits: the
                    // session goes (its old reservation is freed too).
                    self.drop_session(sid);
                }
                let text = format!("{}: {e}", self.cfg.node);
                self.answer(
                    sid,
                    f.flow,
                    f.rii,
                    InfoSpec::reservation_failure(f.local, &text),
                    None,
                    false,
                );
            }
            Parked::Reverse { vlink_id, .. } => self.actions.push_back(Action::Event {
                vlink_id: Some(vlink_id),
                kind: EventKind::ReverseRefused,
                message: format!("{}: reverse reservation: {e}", self.cfg.node),
            }),
            Parked::Repair => self.repair_failed(now, sid, &e.to_string()),
        }
    }
}
