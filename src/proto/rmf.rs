//! Resource Management Function: admission control against the capacities
//! of a node's egress links (paper §III, step 3; RFC 5974 §3.1.1).
//!
//! The ledger is plain data with no I/O, owned by one actor per node, so
//! decisions are serial and exact: N concurrent requests that together exceed
//! a link's capacity admit exactly as many as fit.

use serde::Serialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use thiserror::Error;

use crate::model::units::Rate;

/// The packets a reservation covers: the tunnel's outer flow as the MRI names
/// it (source and destination substrate address, UDP), narrowed to one
/// VXLAN network (VNI) when the reservation is for a virtual link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Classifier {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// VXLAN VNI (UDP destination port 4789) of the virtual link.
    pub vni: Option<u32>,
}

/// Puts admitted reservations into the data plane. The ledger decides, the
/// enforcer makes it so (run by the node's actors on the node core's
/// class actions); a node without enforcement uses [`NoEnforcer`].
pub trait Enforcer: Send {
    /// Installs (or changes the rate of) the reservation of `sid` on `link`.
    /// On error nothing of `sid`'s new reservation may be left behind.
    fn install(
        &mut self,
        sid: &[u8; 16],
        link: &str,
        rate: Rate,
        classifier: &Classifier,
    ) -> Result<(), String>;
    /// Takes `sid`'s reservation out of force (idempotent): nothing it
    /// installed carries its traffic any more. The HTB enforcer keeps the
    /// class idle for the link's next reservation (`kernel::tc::enforcer`).
    fn remove(&mut self, sid: &[u8; 16]);
    /// Interfaces were added, removed or renamed (`vlsp apply`): forget
    /// what was looked up about them.
    fn forget_interfaces(&mut self) {}
}

/// Admission control only: nothing is installed.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEnforcer;

impl Enforcer for NoEnforcer {
    fn install(&mut self, _: &[u8; 16], _: &str, _: Rate, _: &Classifier) -> Result<(), String> {
        Ok(())
    }
    fn remove(&mut self, _: &[u8; 16]) {}
}

/// Why a reservation was refused; maps to INFO_SPEC Transient Failure 0x07
/// "Reservation failure" on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdmitError {
    #[error(
        "link {link}: {requested} bit/s requested but only {available} of {capacity} bit/s are free"
    )]
    Insufficient {
        link: String,
        requested: u64,
        available: u64,
        capacity: u64,
    },
    #[error("no egress link {link} on this node (route points to an unknown interface)")]
    UnknownLink { link: String },
    #[error("link {link}: the kernel refused the reservation: {message}")]
    Enforcement { link: String, message: String },
}

/// One admitted reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub link: String,
    pub rate_bps: u64,
}

/// What an admission changed: nothing (an unchanged refresh, no kernel
/// work) or the session's reservation, which the enforcer must now install;
/// `previous` is what [`Ledger::undo`] restores if the kernel refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Unchanged,
    Changed { previous: Option<Reservation> },
}

/// Capacities and admitted reservations of one node's egress links. Plain
/// data: the kernel work an admission implies is the caller's (an action of
/// the node core, run by the actors, its result fed back).
#[derive(Debug, Default)]
pub struct Ledger {
    capacity: HashMap<String, u64>,
    used: HashMap<String, u64>,
    by_session: HashMap<[u8; 16], Reservation>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an egress link and its capacity in bit/s.
    pub fn add_link(&mut self, link: &str, capacity_bps: u64) {
        self.capacity.insert(link.to_string(), capacity_bps);
        self.used.entry(link.to_string()).or_insert(0);
    }

    /// Admits `rate_bps` for session `sid` on `link`, in memory and at
    /// once, so that concurrent requests are decided exactly. Admitting a
    /// session that already holds a reservation replaces it (a modifying
    /// RESERVE): the old rate is not counted against the new one, and an
    /// unchanged refresh is [`Admission::Unchanged`].
    pub fn admit(
        &mut self,
        sid: [u8; 16],
        link: &str,
        rate: Rate,
    ) -> Result<Admission, AdmitError> {
        let rate_bps = rate.bps();
        let capacity = *self
            .capacity
            .get(link)
            .ok_or_else(|| AdmitError::UnknownLink {
                link: link.to_string(),
            })?;
        let mine = match self.by_session.get(&sid) {
            Some(r) if r.link == link => r.rate_bps,
            _ => 0,
        };
        let used = self.used.get(link).copied().unwrap_or(0) - mine;
        let available = capacity.saturating_sub(used);
        if rate_bps > available {
            return Err(AdmitError::Insufficient {
                link: link.to_string(),
                requested: rate_bps,
                available,
                capacity,
            });
        }
        let unchanged = self
            .by_session
            .get(&sid)
            .is_some_and(|r| r.link == link && r.rate_bps == rate_bps);
        if unchanged {
            return Ok(Admission::Unchanged);
        }
        let previous = self.forget(&sid);
        *self.used.entry(link.to_string()).or_insert(0) += rate_bps;
        self.by_session.insert(
            sid,
            Reservation {
                link: link.to_string(),
                rate_bps,
            },
        );
        Ok(Admission::Changed { previous })
    }

    /// Takes back an admission the kernel refused: `sid` holds `previous`
    /// again (or nothing).
    pub fn undo(&mut self, sid: [u8; 16], previous: Option<Reservation>) {
        self.forget(&sid);
        if let Some(r) = previous {
            *self.used.entry(r.link.clone()).or_insert(0) += r.rate_bps;
            self.by_session.insert(sid, r);
        }
    }

    /// Frees the reservation of `sid`, if any, and returns it (the caller
    /// removes it from the data plane).
    pub fn release(&mut self, sid: &[u8; 16]) -> Option<Reservation> {
        self.forget(sid)
    }

    fn forget(&mut self, sid: &[u8; 16]) -> Option<Reservation> {
        let r = self.by_session.remove(sid)?;
        if let Some(u) = self.used.get_mut(&r.link) {
            *u -= r.rate_bps;
        }
        Some(r)
    }

    /// The reservation held by `sid`.
    pub fn get(&self, sid: &[u8; 16]) -> Option<&Reservation> {
        self.by_session.get(sid)
    }

    /// Bit/s admitted on `link`.
    pub fn used(&self, link: &str) -> u64 {
        self.used.get(link).copied().unwrap_or(0)
    }

    /// Number of reservations held.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> [u8; 16] {
        [n; 16]
    }

    #[test]
    fn admission_says_when_the_kernel_has_work_and_undo_restores() {
        let mut l = Ledger::new();
        l.add_link("eth0", 10);
        assert_eq!(
            l.admit(sid(1), "eth0", Rate::from_bps(5)).unwrap(),
            Admission::Changed { previous: None }
        );
        // an unchanged refresh does no kernel work
        assert_eq!(
            l.admit(sid(1), "eth0", Rate::from_bps(5)).unwrap(),
            Admission::Unchanged
        );
        // a modification re-installs; the kernel refuses it: the old one stays
        let prev = match l.admit(sid(1), "eth0", Rate::from_bps(6)).unwrap() {
            Admission::Changed { previous } => previous,
            a => panic!("{a:?}"),
        };
        assert_eq!(l.used("eth0"), 6);
        l.undo(sid(1), prev);
        assert_eq!(l.used("eth0"), 5);
        assert_eq!(l.get(&sid(1)).unwrap().rate_bps, 5);
        // a new reservation the kernel refuses leaves nothing
        l.admit(sid(3), "eth0", Rate::from_bps(4)).unwrap();
        l.undo(sid(3), None);
        assert_eq!(l.used("eth0"), 5);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn admits_exactly_what_fits() {
        let mut l = Ledger::new();
        l.add_link("eth1", 100_000_000);
        let admitted = (0..10u8)
            .filter(|&i| l.admit(sid(i), "eth1", Rate::from_bps(30_000_000)).is_ok())
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(l.used("eth1"), 90_000_000);
        let err = l
            .admit(sid(50), "eth1", Rate::from_bps(20_000_000))
            .unwrap_err();
        assert_eq!(
            err,
            AdmitError::Insufficient {
                link: "eth1".into(),
                requested: 20_000_000,
                available: 10_000_000,
                capacity: 100_000_000
            }
        );
        assert!(err.to_string().contains("eth1"));
    }

    #[test]
    fn release_frees_and_modify_replaces() {
        let mut l = Ledger::new();
        l.add_link("eth0", 10);
        l.admit(sid(1), "eth0", Rate::from_bps(6)).unwrap();
        // modifying the same session to 9 fits: its own 6 are not double counted
        l.admit(sid(1), "eth0", Rate::from_bps(9)).unwrap();
        assert_eq!(l.used("eth0"), 9);
        assert!(l.admit(sid(2), "eth0", Rate::from_bps(2)).is_err());
        assert_eq!(l.release(&sid(1)).unwrap().rate_bps, 9);
        assert_eq!(l.used("eth0"), 0);
        assert!(l.release(&sid(1)).is_none());
        assert!(l.is_empty());
    }

    #[test]
    fn unknown_link_is_refused() {
        let mut l = Ledger::new();
        assert!(matches!(
            l.admit(sid(1), "eth9", Rate::from_bps(1)),
            Err(AdmitError::UnknownLink { .. })
        ));
    }
}
