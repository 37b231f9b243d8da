//! Admission (the RMF's ledger, exact and in memory) and the kernel work it
//! implies, as an action answered by [`Nslp::class_done`]. A setup's or a
//! QNE's RESERVE goes on at once while the class is installed (issue 17:
//! the install is off the critical path); the session's RESPONSE waits for
//! it, and a kernel refusal turns that RESPONSE into a reservation failure.
//! The other admissions (reverse reservation, repair), and the first over a
//! link the kernel shapes at that moment ([`Config::unshaped`]), park until
//! the class is in place; a kernel refusal takes the admission back and
//! refuses like a full link.

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
    /// A reservation moving onto the link its next peer lies on (issue
    /// 15), with the RESPONSE that waits for it, if any. `local`: this
    /// node's address on that link (the INFO_SPEC's ESI if it is refused).
    Move {
        from: String,
        answer: Option<Box<(NslpMessage, AuthVerdict)>>,
        local: Ipv4Addr,
    },
    /// Nothing parked: the RESERVE went on, the session holds its RESPONSE
    /// until the class is in place. `local`: this node's address towards
    /// the upstream peer (the INFO_SPEC's ESI if the kernel refuses).
    Running { local: Ipv4Addr },
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
    pub link: String,
    pub previous: Option<Reservation>,
    pub then: Parked,
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
            // The same RESERVE again while its first copy waits for the
            // link's shaping: that one goes on once the class is in place.
            Ok(Admission::Unchanged)
                if matches!(then, Parked::Forward(_))
                    && self
                        .installing
                        .get(&sid)
                        .is_some_and(|i| matches!(i.then, Parked::Forward(_))) => {}
            Ok(Admission::Unchanged) => self.resume(now, sid, then),
            Ok(Admission::Changed { previous }) => {
                let local = match &then {
                    _ if self.unshaped.contains(link) => None,
                    Parked::Setup(req) => Some(req.flow.src),
                    Parked::Forward(f) => Some(f.local),
                    _ => None,
                };
                if let Some(local) = local {
                    // Forward first: the glue sends what the RESERVE needs
                    // before it runs the install.
                    self.resume(now, sid, then);
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.class = ClassState::Installing;
                    }
                    self.park_install(
                        sid,
                        Installing {
                            link: link.to_string(),
                            previous,
                            then: Parked::Running { local },
                        },
                        rate,
                        classifier,
                    );
                    return;
                }
                self.park_install(
                    sid,
                    Installing {
                        link: link.to_string(),
                        previous,
                        then,
                    },
                    rate,
                    classifier,
                );
            }
        }
    }

    /// Asks the kernel for `i`'s class and parks `i` until it answers. An
    /// install still running for the session is superseded: its answer
    /// will be ignored ([`Self::class_done`]), an undo goes back to what
    /// was there before it, and a RESPONSE a move held waits for this
    /// install where one is held (else the next refresh answers it).
    pub(super) fn park_install(
        &mut self,
        sid: Sid,
        mut i: Installing,
        rate: Rate,
        classifier: Classifier,
    ) {
        if let Some(old) = self.installing.remove(&sid) {
            i.previous = old.previous;
            if let Parked::Move {
                answer: Some(a), ..
            } = old.then
                && matches!(i.then, Parked::Running { .. })
                && let Some(s) = self.sessions.get_mut(&sid)
                && s.held.is_none()
            {
                s.held = Some(*a);
            }
        }
        *self.in_flight.entry(sid).or_insert(0) += 1;
        let link = i.link.clone();
        self.installing.insert(sid, i);
        self.actions.push_back(Action::InstallClass {
            sid,
            link,
            rate,
            classifier,
        });
    }

    /// Frees `sid`'s reservation and has its class removed (after an
    /// install still running: the glue runs kernel work in order).
    pub(super) fn release(&mut self, sid: &Sid) {
        if self
            .installing
            .get(sid)
            .is_some_and(|i| matches!(i.then, Parked::Running { .. } | Parked::Move { .. }))
        {
            // Its outcome no longer matters to the ledger.
            self.installing.remove(sid);
        }
        if self.ledger.release(sid).is_some() {
            self.actions.push_back(Action::RemoveClass { sid: *sid });
        }
    }

    /// The class requested by [`Action::InstallClass`] is installed (or the
    /// kernel refused it with `err`, leaving nothing of it behind).
    pub fn class_done(&mut self, now: Instant, sid: Sid, err: Option<String>) {
        if let Some(n) = self.in_flight.get_mut(&sid) {
            *n -= 1;
            if *n > 0 {
                // A later install of this session was asked for: it decides.
                return;
            }
            self.in_flight.remove(&sid);
        }
        if err.is_none()
            && let Some(i) = self.installing.get(&sid)
        {
            self.unshaped.remove(&i.link);
        }
        let i = match self.installing.remove(&sid) {
            Some(i) if !matches!(i.then, Parked::Running { .. }) => i,
            running => return self.class_settled(now, sid, running, err),
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

    /// The class of a session whose RESERVE went on is in place (or
    /// refused: the admission is taken back and the session's RESPONSE
    /// becomes a failure); a RESPONSE held for it is handled now.
    /// `running` is `None` when the reservation was released meanwhile.
    fn class_settled(
        &mut self,
        now: Instant,
        sid: Sid,
        running: Option<Installing>,
        err: Option<String>,
    ) {
        let mut failed = None;
        if let (Some(i), Some(message)) = (running, err) {
            self.ledger.undo(sid, i.previous);
            self.refuse(RefusalReason::Admission);
            let e = AdmitError::Enforcement {
                link: i.link,
                message,
            };
            let local = match i.then {
                Parked::Running { local } => local,
                _ => unreachable!("only running installs settle here"),
            };
            failed = Some(ClassState::Failed(format!("{}: {e}", self.cfg.node), local));
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.class != ClassState::Installing {
            return;
        }
        s.class = failed.unwrap_or(ClassState::Ready);
        if let Some((msg, auth)) = s.held.take() {
            self.answer_response(now, sid, msg, &auth);
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
            Parked::Move { from, answer, .. } => {
                self.move_done(now, sid, &from, answer.map(|a| *a))
            }
            Parked::Running { .. } => {}
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
            Parked::Move { answer, local, .. } => {
                self.move_refused(now, sid, answer.map(|a| *a), local, &e)
            }
            Parked::Running { .. } => {}
        }
    }
}
