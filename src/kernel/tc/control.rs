//! The seam between the enforcer and the kernel's traffic control.

use super::{QosError, Tc};
use crate::proto::rmf::Classifier;

/// What the enforcer asks of the kernel's traffic control on one node's
/// links: [`Tc`] does it over netlink; [`FakeTc`] keeps the classes in
/// memory, so the enforcer's bookkeeping (idle classes, ids, what a killed
/// instance left) is tested without root.
pub trait TrafficControl: Send {
    /// [`Tc::shape`].
    fn shape(&mut self, ifname: &str, capacity_bps: u64) -> Result<(), QosError>;
    /// [`Tc::add`].
    fn add(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError>;
    /// [`Tc::reuse`].
    fn reuse(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError>;
    /// [`Tc::change`].
    fn change(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError>;
    /// [`Tc::idle`].
    fn idle(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError>;
    /// [`Tc::del_class`].
    fn del_class(&mut self, ifname: &str, minor: u16) -> Result<(), QosError>;
    /// [`Tc::del`].
    fn del(&mut self, ifname: &str, minor: u16) -> Result<(), QosError>;
    /// [`Tc::reservation_minors`].
    fn reservation_minors(&mut self, ifname: &str) -> Result<Vec<u16>, QosError>;
    /// Interfaces were renamed or made anew: names are looked up again.
    fn forget_interfaces(&mut self);
}

impl TrafficControl for Tc {
    fn shape(&mut self, ifname: &str, capacity_bps: u64) -> Result<(), QosError> {
        Tc::shape(self, ifname, capacity_bps)
    }
    fn add(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError> {
        Tc::add(self, ifname, minor, rate_bps, c)
    }
    fn reuse(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError> {
        Tc::reuse(self, ifname, minor, rate_bps, c)
    }
    fn change(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError> {
        Tc::change(self, ifname, minor, rate_bps)
    }
    fn idle(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError> {
        Tc::idle(self, ifname, minor, rate_bps)
    }
    fn del_class(&mut self, ifname: &str, minor: u16) -> Result<(), QosError> {
        Tc::del_class(self, ifname, minor)
    }
    fn del(&mut self, ifname: &str, minor: u16) -> Result<(), QosError> {
        Tc::del(self, ifname, minor)
    }
    fn reservation_minors(&mut self, ifname: &str) -> Result<Vec<u16>, QosError> {
        Tc::reservation_minors(self, ifname)
    }
    fn forget_interfaces(&mut self) {
        self.ifindexes.clear();
    }
}
