//! Traffic control in memory, for tests without root: the reservation
//! classes and their filters on a node's links after each request, with
//! [`super::Tc`]'s answers (`EEXIST` for a class id taken, `ENOENT` for one
//! missing or a link not shaped yet) and its side effects on them (`add` on
//! a taken id loses that id's filters in its undo). Not modelled: interface
//! indexes and renames, and partial effects of a refused request (one
//! refused with [`FakeTc::refuse_next`] changes nothing). Clones share one
//! state, so a test keeps a handle while an enforcer owns the other.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{QosError, TrafficControl};
use crate::proto::rmf::Classifier;

/// One reservation class on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeClass {
    pub rate_bps: u64,
    /// Idle: prio [`super::IDLE_PRIO`], no filter.
    pub idle: bool,
    /// The u32 filter at the class's priority, if any.
    pub filter: Option<Classifier>,
}

impl FakeClass {
    /// A reservation's class with its filter for `c`.
    pub fn at_work(rate_bps: u64, c: &Classifier) -> Self {
        Self {
            rate_bps,
            idle: false,
            filter: Some(*c),
        }
    }
}

/// A link: shaped (root HTB and its own classes) or not, and its
/// reservation classes by minor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeLink {
    pub shaped: bool,
    pub classes: BTreeMap<u16, FakeClass>,
}

#[derive(Debug, Default)]
struct State {
    links: BTreeMap<String, FakeLink>,
    calls: Vec<String>,
    /// Requests to refuse, by name ("add", "reuse", "dump", …), with an
    /// errno, each once.
    refuse: Vec<(&'static str, i32)>,
}

/// The fake; see the module.
#[derive(Debug, Clone, Default)]
pub struct FakeTc(Arc<Mutex<State>>);

impl FakeTc {
    /// Interfaces `names`, shaped or not.
    pub fn with_links(names: &[&str], shaped: bool) -> Self {
        let t = Self::default();
        for n in names {
            t.state().links.insert(
                n.to_string(),
                FakeLink {
                    shaped,
                    ..FakeLink::default()
                },
            );
        }
        t
    }

    /// An interface that appears (made, or renamed to `name`), holding
    /// `classes`.
    pub fn add_link(&self, name: &str, classes: BTreeMap<u16, FakeClass>) {
        self.state().links.insert(
            name.to_string(),
            FakeLink {
                shaped: true,
                classes,
            },
        );
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Link `name` as the kernel holds it now.
    pub fn link(&self, name: &str) -> FakeLink {
        self.state().links.get(name).cloned().unwrap_or_default()
    }

    /// Puts class `minor` on `name` as another program (an earlier,
    /// killed instance of the node) left it.
    pub fn leave(&self, name: &str, minor: u16, class: FakeClass) {
        if let Some(l) = self.state().links.get_mut(name) {
            l.classes.insert(minor, class);
        }
    }

    /// The requests made so far, oldest first ("add eth1 1:2", …).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// The next request named `op` is refused with `errno`.
    pub fn refuse_next(&self, op: &'static str, errno: i32) {
        self.state().refuse.push((op, errno));
    }

    /// Logs the request and finds its link: refused as injected, or for an
    /// unknown interface.
    fn begin(
        &self,
        op: &'static str,
        ifname: &str,
        minor: Option<u16>,
    ) -> Result<MutexGuard<'_, State>, QosError> {
        let mut s = self.state();
        s.calls.push(match minor {
            Some(m) => format!("{op} {ifname} 1:{m:x}"),
            None => format!("{op} {ifname}"),
        });
        if let Some(i) = s.refuse.iter().position(|(o, _)| *o == op) {
            let (_, errno) = s.refuse.remove(i);
            return Err(kernel(op, ifname, errno));
        }
        if !s.links.contains_key(ifname) {
            return Err(QosError::NoInterface {
                ifname: ifname.to_string(),
            });
        }
        Ok(s)
    }
}

fn kernel(what: &str, ifname: &str, errno: i32) -> QosError {
    QosError::Kernel {
        what: what.to_string(),
        ifname: ifname.to_string(),
        errno,
    }
}

impl TrafficControl for FakeTc {
    fn shape(&mut self, ifname: &str, _capacity_bps: u64) -> Result<(), QosError> {
        let mut s = self.begin("shape", ifname, None)?;
        let l = s.links.get_mut(ifname).expect("checked in begin");
        if l.shaped {
            return Err(kernel("shape", ifname, libc::EEXIST));
        }
        l.shaped = true;
        Ok(())
    }

    fn add(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError> {
        let mut s = self.begin("add", ifname, Some(minor))?;
        let l = s.links.get_mut(ifname).expect("checked in begin");
        if !l.shaped {
            return Err(kernel("add", ifname, libc::ENOENT));
        }
        if let Some(k) = l.classes.get_mut(&minor) {
            // `Tc::add` sends the class and its filter together; the class
            // is refused, the filter joins that priority's, and the undo
            // deletes every filter at that priority.
            k.filter = None;
            return Err(kernel("add", ifname, libc::EEXIST));
        }
        l.classes.insert(minor, FakeClass::at_work(rate_bps, c));
        Ok(())
    }

    fn reuse(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError> {
        let mut s = self.begin("reuse", ifname, Some(minor))?;
        let l = s.links.get_mut(ifname).expect("checked in begin");
        match l.classes.get_mut(&minor) {
            Some(k) => {
                *k = FakeClass::at_work(rate_bps, c);
                Ok(())
            }
            None => Err(kernel("reuse", ifname, libc::ENOENT)),
        }
    }

    fn change(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError> {
        let mut s = self.begin("change", ifname, Some(minor))?;
        let l = s.links.get_mut(ifname).expect("checked in begin");
        match l.classes.get_mut(&minor) {
            Some(k) => {
                k.rate_bps = rate_bps;
                Ok(())
            }
            None => Err(kernel("change", ifname, libc::ENOENT)),
        }
    }

    fn idle(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError> {
        let mut s = self.begin("idle", ifname, Some(minor))?;
        let l = s.links.get_mut(ifname).expect("checked in begin");
        let Some(k) = l.classes.get_mut(&minor) else {
            return Err(kernel("idle", ifname, libc::ENOENT));
        };
        // As `Tc::idle`: the filter's deletion and the change, each
        // answered; the first error is the answer.
        let unfiltered = k.filter.take().map(|_| ()).ok_or(libc::ENOENT);
        k.rate_bps = rate_bps;
        k.idle = true;
        unfiltered.map_err(|e| kernel("idle", ifname, e))
    }

    fn del_class(&mut self, ifname: &str, minor: u16) -> Result<(), QosError> {
        let mut s = self.begin("del_class", ifname, Some(minor))?;
        let l = s.links.get_mut(ifname).expect("checked in begin");
        l.classes
            .remove(&minor)
            .map(|_| ())
            .ok_or_else(|| kernel("del_class", ifname, libc::ENOENT))
    }

    fn del(&mut self, ifname: &str, minor: u16) -> Result<(), QosError> {
        let mut s = self.begin("del", ifname, Some(minor))?;
        let l = s.links.get_mut(ifname).expect("checked in begin");
        // As `Tc::del`: the filter, then the class; the class's error
        // first, else the filter's.
        let Some(k) = l.classes.remove(&minor) else {
            return Err(kernel("del", ifname, libc::ENOENT));
        };
        k.filter
            .map(|_| ())
            .ok_or_else(|| kernel("del", ifname, libc::ENOENT))
    }

    fn reservation_minors(&mut self, ifname: &str) -> Result<Vec<u16>, QosError> {
        let s = self.begin("dump", ifname, None)?;
        Ok(s.links[ifname].classes.keys().copied().collect())
    }

    fn forget_interfaces(&mut self) {
        self.state().calls.push("forget_interfaces".to_string());
    }
}
