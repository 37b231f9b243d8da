//! The enforcer: a node's reservations as HTB classes on its egress
//! interfaces, through one [`Tc`] socket in the node's namespace.
//!
//! A torn-down reservation's class is made idle, not deleted: its filter
//! goes, it takes prio [`super::IDLE_PRIO`] and keeps its rate (so what its
//! queue still holds drains as before), and the link's next reservation
//! takes it back at its own rate. A new HTB class is a new tc block, which the kernel binds by
//! searching one list of every block of every namespace
//! (`flow_indr_dev_setup_offload`); on a chain of 1000 routers that search
//! was some 40 % of the kernel threads' time and doubled an install
//! (issue 17). An idle class carries nothing new: no filter leads to it. At most [`IDLE_MAX`] a link stay idle, each still a
//! block on that list.

use std::collections::{HashMap, HashSet};

use super::{BE_MINOR, QosError, SIG_MINOR, Tc};
use crate::model::measure::{PointKind, Recorder};
use crate::proto::rmf::{Classifier, Enforcer};

/// Classes a link keeps idle at most: the most reservations it held at
/// once, up to this many.
pub const IDLE_MAX: usize = 64;

/// Installs a node's reservations as HTB classes on its egress interfaces.
/// Lives on the node's thread (the socket is in the node's namespace) and
/// removes everything it installed when dropped, i.e. when the node stops.
pub struct HtbEnforcer {
    tc: Tc,
    rec: Recorder,
    by_sid: HashMap<[u8; 16], (String, u16, u64)>,
    /// Class ids in the kernel per link: at work and idle.
    used_minors: HashMap<String, HashSet<u16>>,
    /// Idle classes per link, the next to reuse last.
    idle: HashMap<String, Vec<u16>>,
    /// Links looked at for classes an earlier instance of the node left
    /// ([`Self::sweep`]).
    swept: HashSet<String>,
    /// Capacities of the links `vlsp up` may have left unshaped (see
    /// [`HtbEnforcer::shaping_on_demand`]); a link leaves the map once
    /// shaped.
    unshaped: HashMap<String, u64>,
}

impl HtbEnforcer {
    /// Opens the netlink socket in the calling thread's namespace.
    pub fn open(rec: Recorder) -> Result<Self, QosError> {
        Ok(Self {
            tc: Tc::open()?,
            rec,
            by_sid: HashMap::new(),
            used_minors: HashMap::new(),
            idle: HashMap::new(),
            swept: HashSet::new(),
            unshaped: HashMap::new(),
        })
    }

    /// Links `(ifname, capacity)` to shape ([`Tc::shape`]) at their first
    /// reservation if `vlsp up` left them unshaped. Every HTB qdisc and
    /// class is a tc block, and the kernel binds each new block by a
    /// linear search of one list of all blocks of all namespaces
    /// (`flow_indr_dev_setup_offload`), so shaping every link of 10 000
    /// routers up front costs minutes; see `kernel::substrate::Shaping`.
    pub fn shaping_on_demand(mut self, links: impl IntoIterator<Item = (String, u64)>) -> Self {
        self.unshaped.extend(links);
        self
    }

    /// [`Tc::add`]; on a link without the root qdisc (`ENOENT` for the
    /// parent class) that is to be shaped on demand, shapes it and retries.
    fn add(
        &mut self,
        link: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError> {
        match self.tc.add(link, minor, rate_bps, c) {
            Err(QosError::Kernel {
                errno: libc::ENOENT,
                ..
            }) if self.unshaped.contains_key(link) => {
                let capacity = self.unshaped.get(link).copied().unwrap_or_default();
                match self.tc.shape(link, capacity) {
                    // Shaped meanwhile (another node instance): fine.
                    Ok(())
                    | Err(QosError::Kernel {
                        errno: libc::EEXIST,
                        ..
                    }) => {}
                    // Left in `unshaped`: the next reservation tries again.
                    Err(e) => return Err(e),
                }
                self.unshaped.remove(link);
                self.tc.add(link, minor, rate_bps, c)
            }
            r => r,
        }
    }

    /// At the node's first reservation on `link`, removes the reservation
    /// classes (and their filters) that an earlier instance of the node
    /// left there when it ended without dropping its enforcer (killed,
    /// crashed): no other program makes reservation classes on a node's
    /// links. Left, each would refuse the class id it holds (`EEXIST`) and
    /// keep its filter putting a flow no longer reserved into its class.
    fn sweep(&mut self, link: &str) {
        if self.swept.contains(link) {
            return;
        }
        let found = match self.tc.reservation_minors(link) {
            Ok(found) => found,
            // Looked at again at the next reservation.
            Err(e) => {
                tracing::debug!("{}: {e}", self.rec.node());
                return;
            }
        };
        let mine = self.used_minors.get(link);
        let left: Vec<u16> = found
            .into_iter()
            .filter(|m| mine.is_none_or(|u| !u.contains(m)))
            .collect();
        if !left.is_empty() {
            let ids: Vec<String> = left.iter().map(|m| format!("1:{m:x}")).collect();
            tracing::warn!(
                "{}: {} reservation classes on {link} ({}) were left by an earlier instance of \
                 this node that did not stop cleanly (killed or crashed?); removing them and \
                 their filters",
                self.rec.node(),
                left.len(),
                ids.join(", ")
            );
        }
        for m in left {
            // An idle class has no filter: ENOENT for it is fine.
            match self.tc.del(link, m) {
                Ok(())
                | Err(QosError::Kernel {
                    errno: libc::ENOENT,
                    ..
                }) => {}
                Err(e) => tracing::warn!("{}: {e}", self.rec.node()),
            }
        }
        self.swept.insert(link.to_string());
    }

    fn free_minor(&self, link: &str) -> Option<u16> {
        let used = self.used_minors.get(link);
        (2..SIG_MINOR).find(|m| used.is_none_or(|u| !u.contains(m)))
    }

    /// A class for `sid` on `link`: an idle one put back to work, else a
    /// new one.
    fn take_class(
        &mut self,
        sid: &[u8; 16],
        link: &str,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), String> {
        self.sweep(link);
        if let Some(minor) = self.idle.get_mut(link).and_then(Vec::pop) {
            match self.tc.reuse(link, minor, rate_bps, c) {
                Ok(()) => {
                    self.by_sid
                        .insert(*sid, (link.to_string(), minor, rate_bps));
                    return Ok(());
                }
                // The interface or its tree is gone (made anew): none of
                // the link's idle classes is there any more.
                Err(e) if gone(&e) => {
                    tracing::debug!(
                        "{}: {e}; the idle classes of {link} are forgotten",
                        self.rec.node()
                    );
                    self.unuse(link, minor);
                    for m in self.idle.remove(link).unwrap_or_default() {
                        self.unuse(link, m);
                    }
                }
                // Anything else (this request refused, the socket): that
                // class alone is given up (`reuse` deleted it).
                Err(e) => {
                    tracing::debug!("{}: {e}; a new class is made", self.rec.node());
                    self.unuse(link, minor);
                }
            }
        }
        let minor = self
            .free_minor(link)
            .ok_or_else(|| format!("{link}: all {} class ids in use", BE_MINOR - 2))?;
        self.add(link, minor, rate_bps, c)
            .map_err(|e| e.to_string())?;
        self.used_minors
            .entry(link.to_string())
            .or_default()
            .insert(minor);
        self.by_sid
            .insert(*sid, (link.to_string(), minor, rate_bps));
        Ok(())
    }

    fn unuse(&mut self, link: &str, minor: u16) {
        if let Some(u) = self.used_minors.get_mut(link) {
            u.remove(&minor);
        }
    }

    /// Deletes class `1:minor` (and its filter, if `at_work`), and frees
    /// the id.
    fn delete(&mut self, link: &str, minor: u16, at_work: bool) {
        self.unuse(link, minor);
        let r = if at_work {
            self.tc.del(link, minor)
        } else {
            self.tc.del_class(link, minor)
        };
        if let Err(e) = r {
            tracing::warn!("{}: {e}", self.rec.node());
        }
    }

    /// Deletes every idle class (by the interface indexes known now).
    fn delete_idle(&mut self) {
        let idle: Vec<(String, u16)> = self
            .idle
            .drain()
            .flat_map(|(link, minors)| minors.into_iter().map(move |m| (link.clone(), m)))
            .collect();
        for (link, minor) in idle {
            self.delete(&link, minor, false);
        }
    }
}

/// Whether `e` says the interface or its HTB tree is gone.
fn gone(e: &QosError) -> bool {
    matches!(
        e,
        QosError::NoInterface { .. }
            | QosError::Kernel {
                errno: libc::ENOENT | libc::ENODEV,
                ..
            }
    )
}

impl Enforcer for HtbEnforcer {
    /// Interfaces were renamed or made anew: the idle classes are deleted
    /// by the indexes known until now (a renamed interface keeps its
    /// index, and its classes would no longer be found by name).
    fn forget_interfaces(&mut self) {
        self.delete_idle();
        self.tc.ifindexes.clear();
        self.swept.clear();
    }

    fn install(
        &mut self,
        sid: &[u8; 16],
        link: &str,
        rate: crate::model::units::Rate,
        c: &Classifier,
    ) -> Result<(), String> {
        let rate_bps = rate.bps();
        self.rec.mark(*sid, PointKind::QosInstallStart);
        let out = match self.by_sid.get(sid).cloned() {
            Some((l, minor, _)) if l == link => self
                .tc
                .change(link, minor, rate_bps)
                .map(|()| {
                    self.by_sid.insert(*sid, (l, minor, rate_bps));
                })
                .map_err(|e| e.to_string()),
            old => {
                if old.is_some() {
                    self.remove(sid);
                }
                self.take_class(sid, link, rate_bps, c)
            }
        };
        self.rec.mark(*sid, PointKind::QosInstallDone);
        out
    }

    fn remove(&mut self, sid: &[u8; 16]) {
        let Some((link, minor, rate_bps)) = self.by_sid.remove(sid) else {
            return;
        };
        if self.idle.get(&link).is_none_or(|p| p.len() < IDLE_MAX) {
            match self.tc.idle(&link, minor, rate_bps) {
                Ok(()) => {
                    self.idle.entry(link).or_default().push(minor);
                    return;
                }
                Err(e) => tracing::debug!(
                    "{}: {e}; class 1:{minor:x} is deleted instead",
                    self.rec.node()
                ),
            }
        }
        self.delete(&link, minor, true);
    }
}

impl Drop for HtbEnforcer {
    /// A stopped node leaves no class of its own, at work or idle.
    fn drop(&mut self) {
        let at_work: Vec<(String, u16)> = self
            .by_sid
            .drain()
            .map(|(_, (link, minor, _))| (link, minor))
            .collect();
        for (link, minor) in at_work {
            self.delete(&link, minor, true);
        }
        self.delete_idle();
    }
}
