//! The enforcer: a node's reservations as HTB classes on its egress
//! interfaces, through one [`Tc`] socket in the node's namespace (or a
//! [`super::FakeTc`] in tests).
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

use super::{BE_MINOR, QosError, SIG_MINOR, Tc, TrafficControl};
use crate::model::measure::{PointKind, Recorder};
use crate::proto::rmf::{Classifier, Enforcer};

/// Classes a link keeps idle at most: the most reservations it held at
/// once, up to this many.
pub const IDLE_MAX: usize = 64;

/// Installs a node's reservations as HTB classes on its egress interfaces.
/// Lives on the node's thread (the socket is in the node's namespace) and
/// removes everything it installed when dropped, i.e. when the node stops.
pub struct HtbEnforcer<T: TrafficControl = Tc> {
    tc: T,
    rec: Recorder,
    by_sid: HashMap<[u8; 16], (String, u16, u64)>,
    /// Class ids in the kernel per link: at work and idle.
    used_minors: HashMap<String, HashSet<u16>>,
    /// Idle classes per link, the next to reuse last.
    idle: HashMap<String, Vec<u16>>,
    /// The node's links ([`Self::sweeping`]).
    links: Vec<String>,
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
        Ok(Self::with(Tc::open()?, rec))
    }
}

impl<T: TrafficControl> HtbEnforcer<T> {
    /// An enforcer working through `tc`.
    pub fn with(tc: T, rec: Recorder) -> Self {
        Self {
            tc,
            rec,
            by_sid: HashMap::new(),
            used_minors: HashMap::new(),
            idle: HashMap::new(),
            links: Vec::new(),
            swept: HashSet::new(),
            unshaped: HashMap::new(),
        }
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

    /// The node's links (`ifname`s): at its first reservation the
    /// enforcer removes what a killed earlier instance left on each
    /// ([`Self::sweep`]), not only on the link reserved.
    pub fn sweeping(mut self, links: impl IntoIterator<Item = String>) -> Self {
        self.links.extend(links);
        self
    }

    /// Before a class is taken on `link`: the node's links and `link` not
    /// looked at yet are, for reservation classes (and their filters) an
    /// earlier instance of the node left when it ended without dropping
    /// its enforcer (killed, crashed, a container restarted in the same
    /// namespace). No other program makes reservation classes on a node's
    /// links. Left, each would refuse the class id it holds (`EEXIST`) and
    /// its filter would put a flow no longer reserved into a class nobody
    /// owns. At the node's first reservation it owns no class; later (a
    /// link whose look failed, or a name new since), a class with an id
    /// the node holds on any link is left alone, as it may be the node's
    /// own under an interface's new name, and its id is not used on that
    /// link. Only one instance of a node runs at a time (its API socket
    /// and GIST ports are its own), so what the sweep removes is no live
    /// node's.
    fn sweep(&mut self, link: &str) {
        let mut todo: Vec<String> = self
            .links
            .iter()
            .filter(|l| !self.swept.contains(*l))
            .cloned()
            .collect();
        if !self.swept.contains(link) && !todo.iter().any(|l| l == link) {
            todo.push(link.to_string());
        }
        for l in todo {
            self.sweep_link(&l);
        }
    }

    fn sweep_link(&mut self, link: &str) {
        let node = self.rec.node().to_string();
        let found = match self.tc.reservation_minors(link) {
            Ok(found) => found,
            // No such interface: nothing on it to remove.
            Err(QosError::NoInterface { .. }) => {
                self.swept.insert(link.to_string());
                return;
            }
            Err(e) => {
                tracing::warn!(
                    "{node}: {e}; classes an earlier instance of this node left on {link}, if \
                     any, stay until its next reservation looks again"
                );
                return;
            }
        };
        let ours: HashSet<u16> = self.used_minors.values().flatten().copied().collect();
        let (kept, left): (Vec<u16>, Vec<u16>) = found.into_iter().partition(|m| ours.contains(m));
        if !kept.is_empty() {
            tracing::warn!(
                "{node}: classes on {link} ({}) have ids this node holds on its links; left in \
                 place (they may be its own under a new interface name), their ids not used on \
                 {link}",
                kept.iter()
                    .map(|m| format!("1:{m:x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.used_minors
                .entry(link.to_string())
                .or_default()
                .extend(kept);
        }
        if !left.is_empty() {
            let ids: Vec<String> = left.iter().map(|m| format!("1:{m:x}")).collect();
            tracing::warn!(
                "{node}: {} reservation class{} on {link} ({}) left by an earlier instance of \
                 this node that did not stop cleanly (killed or crashed?): removing {}",
                left.len(),
                if left.len() == 1 { "" } else { "es" },
                ids.join(", "),
                if left.len() == 1 {
                    "it and its filter, if any"
                } else {
                    "them and their filters"
                }
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
                // Its id is not handed out: the kernel would refuse it.
                Err(e) => {
                    tracing::warn!(
                        "{node}: {e}; class 1:{m:x} on {link} stays, and this node uses other \
                         ids there (remove it with `tc class del dev {link} classid 1:{m:x}`, \
                         its filter with `tc filter del dev {link} prio {m}`, in the node's \
                         namespace)"
                    );
                    self.used_minors
                        .entry(link.to_string())
                        .or_default()
                        .insert(m);
                }
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
        let r = if at_work {
            self.tc.del(link, minor)
        } else {
            self.tc.del_class(link, minor)
        };
        match r {
            Ok(()) => self.unuse(link, minor),
            Err(e) if gone(&e) => self.unuse(link, minor),
            // The class may still be there: its id is not handed out
            // again, or the kernel would refuse it (EEXIST).
            Err(e) => tracing::warn!(
                "{}: {e}; class 1:{minor:x} on {link} may stay, and its id is not used again",
                self.rec.node()
            ),
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

impl<T: TrafficControl> Enforcer for HtbEnforcer<T> {
    /// Interfaces were renamed or made anew: the idle classes are deleted
    /// by the indexes known until now (a renamed interface keeps its
    /// index, and its classes would no longer be found by name).
    fn forget_interfaces(&mut self) {
        self.delete_idle();
        self.tc.forget_interfaces();
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

impl<T: TrafficControl> Drop for HtbEnforcer<T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tc::fake::{FakeClass, FakeTc};
    use crate::model::units::Rate;

    const FLOW: Classifier = Classifier {
        src: std::net::Ipv4Addr::new(10, 0, 0, 1),
        dst: std::net::Ipv4Addr::new(10, 0, 0, 2),
        protocol: 17,
        vni: Some(7),
    };

    fn enforcer(tc: &FakeTc) -> HtbEnforcer<FakeTc> {
        HtbEnforcer::with(tc.clone(), Recorder::disabled("r1"))
    }

    fn install(e: &mut HtbEnforcer<FakeTc>, sid: u8, bps: u64) -> Result<(), String> {
        e.install(&[sid; 16], "eth1", Rate::from_bps(bps), &FLOW)
    }

    fn at_work(rate_bps: u64) -> FakeClass {
        FakeClass::at_work(rate_bps, &FLOW)
    }

    #[test]
    fn a_torn_down_class_waits_idle_and_the_next_reservation_takes_it_back() {
        let tc = FakeTc::with_links(&["eth1"], true);
        let mut e = enforcer(&tc);
        install(&mut e, 1, 1_000_000).unwrap();
        e.remove(&[1; 16]);
        let idle = &tc.link("eth1").classes[&2];
        assert!(idle.idle && idle.filter.is_none(), "{idle:?}");
        assert_eq!(idle.rate_bps, 1_000_000, "it drains at its old rate");
        install(&mut e, 2, 5_000_000).unwrap();
        assert_eq!(tc.link("eth1").classes[&2], at_work(5_000_000));
        assert_eq!(
            tc.calls(),
            [
                "dump eth1",
                "add eth1 1:2",
                "idle eth1 1:2",
                "reuse eth1 1:2"
            ],
            "one dump, then no new class"
        );
    }

    #[test]
    fn at_most_idle_max_classes_wait_on_a_link() {
        let tc = FakeTc::with_links(&["eth1"], true);
        let mut e = enforcer(&tc);
        let n = IDLE_MAX as u8 + 1;
        for sid in 0..n {
            install(&mut e, sid, 1_000_000).unwrap();
        }
        for sid in 0..n {
            e.remove(&[sid; 16]);
        }
        let classes = tc.link("eth1").classes;
        assert_eq!(classes.len(), IDLE_MAX, "the one beyond is deleted");
        assert!(classes.values().all(|c| c.idle));
    }

    fn idle_class(rate_bps: u64) -> FakeClass {
        FakeClass {
            rate_bps,
            idle: true,
            filter: None,
        }
    }

    #[test]
    fn what_a_killed_instance_left_on_every_link_goes_at_the_first_reservation() {
        let tc = FakeTc::with_links(&["eth0", "eth1"], true);
        tc.leave("eth1", 2, at_work(9_000_000));
        tc.leave("eth1", 3, idle_class(9_000_000));
        tc.leave("eth0", 2, at_work(9_000_000));
        let mut e = enforcer(&tc).sweeping(["eth0".to_string(), "eth1".to_string()]);
        install(&mut e, 1, 1_000_000).unwrap();
        let eth1 = tc.link("eth1").classes;
        assert_eq!(eth1.len(), 1, "{eth1:?}");
        assert_eq!(eth1[&2], at_work(1_000_000), "the new class takes 1:2");
        assert!(tc.link("eth0").classes.is_empty(), "the other link too");
        // Each link is looked at once, also after its interfaces were made
        // anew (a link's new interface has nothing left on it).
        install(&mut e, 2, 1_000_000).unwrap();
        e.forget_interfaces();
        install(&mut e, 3, 1_000_000).unwrap();
        let dumps: Vec<String> = tc
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("dump"))
            .collect();
        assert_eq!(dumps, ["dump eth0", "dump eth1"]);
        assert_eq!(tc.link("eth1").classes.len(), 3);
    }

    #[test]
    fn a_class_id_the_node_holds_is_never_swept_nor_taken_again() {
        let tc = FakeTc::with_links(&["eth1"], true);
        let mut e = enforcer(&tc).sweeping(["eth1".to_string()]);
        install(&mut e, 1, 1_000_000).unwrap();
        // A name the node had not seen: eth1's class 1:2 under it (a
        // rename), and a class a killed instance left.
        tc.add_link(
            "eth2",
            [(2, at_work(1_000_000)), (5, at_work(9_000_000))].into(),
        );
        e.install(&[2; 16], "eth2", Rate::from_bps(1_000_000), &FLOW)
            .unwrap();
        let eth2 = tc.link("eth2").classes;
        assert_eq!(eth2.keys().copied().collect::<Vec<_>>(), [2, 3], "{eth2:?}");
        assert_eq!(eth2[&2], at_work(1_000_000), "left as it was");
    }

    #[test]
    fn a_left_class_that_cannot_be_removed_keeps_its_id_out_of_use() {
        let tc = FakeTc::with_links(&["eth1"], true);
        tc.leave("eth1", 2, at_work(9_000_000));
        tc.refuse_next("del", libc::EPERM);
        let mut e = enforcer(&tc);
        install(&mut e, 1, 1_000_000).unwrap();
        let eth1 = tc.link("eth1").classes;
        assert!(eth1.contains_key(&2), "still there");
        assert_eq!(eth1[&3], at_work(1_000_000), "the next id is taken");
        drop(e);
        assert_eq!(
            tc.link("eth1").classes.keys().copied().collect::<Vec<_>>(),
            [2],
            "a stopping node removes its own classes only"
        );
    }

    #[test]
    fn a_class_of_its_own_that_cannot_be_deleted_keeps_its_id() {
        let tc = FakeTc::with_links(&["eth1"], true);
        let mut e = enforcer(&tc);
        for sid in 0..=IDLE_MAX as u8 {
            install(&mut e, sid, 1_000_000).unwrap();
        }
        for sid in 0..IDLE_MAX as u8 {
            e.remove(&[sid; 16]);
        }
        // The 65th is deleted, not made idle; the kernel refuses.
        tc.refuse_next("del", libc::EBUSY);
        e.remove(&[IDLE_MAX as u8; 16]);
        let stuck = 2 + IDLE_MAX as u16;
        assert!(tc.link("eth1").classes.contains_key(&stuck));
        // Idle ones are taken first; past them, a new id, not the stuck one.
        for sid in 100..100 + IDLE_MAX as u8 + 1 {
            install(&mut e, sid, 1_000_000).unwrap();
        }
        assert!(tc.link("eth1").classes.contains_key(&(stuck + 1)));
    }

    #[test]
    fn a_failed_look_is_tried_again_at_the_next_reservation() {
        let tc = FakeTc::with_links(&["eth1"], true);
        tc.leave("eth1", 2, at_work(9_000_000));
        tc.refuse_next("dump", libc::ENOBUFS);
        let mut e = enforcer(&tc);
        let err = install(&mut e, 1, 1_000_000).unwrap_err();
        assert!(err.contains("File exists"), "{err}");
        install(&mut e, 1, 1_000_000).unwrap();
        assert_eq!(tc.link("eth1").classes[&2], at_work(1_000_000));
    }

    #[test]
    fn an_unshaped_link_is_shaped_at_its_first_reservation() {
        let tc = FakeTc::with_links(&["eth1"], false);
        let mut e = enforcer(&tc).shaping_on_demand([("eth1".to_string(), 10_000_000)]);
        install(&mut e, 1, 1_000_000).unwrap();
        assert!(tc.link("eth1").shaped);
        assert_eq!(
            tc.calls(),
            ["dump eth1", "add eth1 1:2", "shape eth1", "add eth1 1:2"]
        );
    }

    #[test]
    fn a_stopped_enforcer_leaves_no_class_at_work_or_idle() {
        let tc = FakeTc::with_links(&["eth1"], true);
        let mut e = enforcer(&tc);
        install(&mut e, 1, 1_000_000).unwrap();
        install(&mut e, 2, 1_000_000).unwrap();
        e.remove(&[1; 16]);
        drop(e);
        assert!(tc.link("eth1").classes.is_empty(), "{:?}", tc.link("eth1"));
    }
}
