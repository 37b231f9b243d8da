//! Resource Management Function: admission control against the capacities
//! of a node's egress links (paper §III, step 3; RFC 5974 §3.1.1).
//!
//! The ledger is plain data with no I/O, owned by one actor per node, so
//! decisions are serial and exact: N concurrent requests that together exceed
//! a link's capacity admit exactly as many as fit.

use serde::Serialize;
use std::collections::HashMap;
use thiserror::Error;

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
}

/// One admitted reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub link: String,
    pub rate_bps: u64,
}

/// Capacities and admitted reservations of one node's egress links.
#[derive(Debug, Default, Clone)]
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

    /// Admits `rate_bps` for session `sid` on `link`. Admitting a session that
    /// already holds a reservation replaces it (a modifying RESERVE): the old
    /// rate is not counted against the new one.
    pub fn admit(&mut self, sid: [u8; 16], link: &str, rate_bps: u64) -> Result<(), AdmitError> {
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
        self.release(&sid);
        *self.used.entry(link.to_string()).or_insert(0) += rate_bps;
        self.by_session.insert(
            sid,
            Reservation {
                link: link.to_string(),
                rate_bps,
            },
        );
        Ok(())
    }

    /// Frees the reservation of `sid`, if any, and returns it.
    pub fn release(&mut self, sid: &[u8; 16]) -> Option<Reservation> {
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
    fn admits_exactly_what_fits() {
        let mut l = Ledger::new();
        l.add_link("eth1", 100_000_000);
        let admitted = (0..10u8)
            .filter(|&i| l.admit(sid(i), "eth1", 30_000_000).is_ok())
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(l.used("eth1"), 90_000_000);
        let err = l.admit(sid(50), "eth1", 20_000_000).unwrap_err();
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
        l.admit(sid(1), "eth0", 6).unwrap();
        // modifying the same session to 9 fits: its own 6 are not double counted
        l.admit(sid(1), "eth0", 9).unwrap();
        assert_eq!(l.used("eth0"), 9);
        assert!(l.admit(sid(2), "eth0", 2).is_err());
        assert_eq!(l.release(&sid(1)).unwrap().rate_bps, 9);
        assert_eq!(l.used("eth0"), 0);
        assert!(l.release(&sid(1)).is_none());
        assert!(l.is_empty());
    }

    #[test]
    fn unknown_link_is_refused() {
        let mut l = Ledger::new();
        assert!(matches!(
            l.admit(sid(1), "eth9", 1),
            Err(AdmitError::UnknownLink { .. })
        ));
    }
}
