//! A fake tunnel backend for tests: it records every call and fails the
//! calls it was told to fail, without touching the kernel.

use std::collections::{BTreeSet, HashMap};

use super::{TunnelEnd, TunnelOps, VlinkError};

/// Which operation of [`TunnelOps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelOp {
    Up,
    OutOfService,
    Delete,
}

/// One call as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelCall {
    pub op: TunnelOp,
    pub end: TunnelEnd,
    pub ok: bool,
}

/// Records calls and keeps the set of tunnel ends that would exist, with
/// the kernel's refusals (a second `up` of the same device is refused; an
/// `out_of_service` of a missing one too).
#[derive(Debug, Default)]
pub struct FakeTunnels {
    pub calls: Vec<TunnelCall>,
    /// Device names that exist (up or out of service).
    pub devices: BTreeSet<String>,
    /// Device names in service.
    pub in_service: BTreeSet<String>,
    /// Calls of each operation still to fail.
    failures: HashMap<TunnelOp, usize>,
}

impl FakeTunnels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next call of `op` fail (an injected error naming the end).
    pub fn fail_next(&mut self, op: TunnelOp) {
        *self.failures.entry(op).or_default() += 1;
    }

    fn injected(&mut self, op: TunnelOp, end: &TunnelEnd) -> Option<VlinkError> {
        let left = self.failures.get_mut(&op).filter(|n| **n > 0)?;
        *left -= 1;
        Some(VlinkError::Injected {
            what: match op {
                TunnelOp::Up => "set-up",
                TunnelOp::OutOfService => "taking out of service",
                TunnelOp::Delete => "deletion",
            },
            ifname: end.ifname(),
            node: end.node(),
        })
    }

    fn record(
        &mut self,
        op: TunnelOp,
        end: &TunnelEnd,
        r: Result<(), VlinkError>,
    ) -> Result<(), VlinkError> {
        self.calls.push(TunnelCall {
            op,
            end: end.clone(),
            ok: r.is_ok(),
        });
        r
    }

    fn apply(&mut self, op: TunnelOp, end: &TunnelEnd) -> Result<(), VlinkError> {
        if let Some(e) = self.injected(op, end) {
            return Err(e);
        }
        let name = end.ifname();
        match op {
            TunnelOp::Up => {
                if !self.devices.insert(name.clone()) {
                    return Err(VlinkError::Exists {
                        ifname: name,
                        node: end.node(),
                    });
                }
                self.in_service.insert(name);
            }
            TunnelOp::OutOfService => {
                if !self.devices.contains(&name) {
                    return Err(VlinkError::NoTunnel {
                        ifname: name,
                        node: end.node(),
                    });
                }
                self.in_service.remove(&name);
            }
            TunnelOp::Delete => {
                self.in_service.remove(&name);
                self.devices.remove(&name);
            }
        }
        Ok(())
    }
}

impl TunnelOps for FakeTunnels {
    async fn up(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        let r = self.apply(TunnelOp::Up, end);
        self.record(TunnelOp::Up, end, r)
    }
    async fn out_of_service(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        let r = self.apply(TunnelOp::OutOfService, end);
        self.record(TunnelOp::OutOfService, end, r)
    }
    async fn delete(&mut self, end: &TunnelEnd) -> Result<(), VlinkError> {
        let r = self.apply(TunnelOp::Delete, end);
        self.record(TunnelOp::Delete, end, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tunnel::TunnelKind;
    use std::net::Ipv4Addr;

    fn end(id: u64) -> TunnelEnd {
        TunnelEnd {
            vlink_id: id,
            kind: TunnelKind::Vxlan,
            local: Ipv4Addr::new(172, 1, 2, 1),
            remote: Ipv4Addr::new(172, 3, 4, 4),
            bridge: "br0".into(),
            backend: None,
        }
    }

    /// What the vlink worker does with any [`TunnelOps`]: set up, take out
    /// of service, delete.
    async fn lifecycle(t: &mut impl TunnelOps, e: &TunnelEnd) -> Result<(), VlinkError> {
        t.up(e).await?;
        t.out_of_service(e).await?;
        t.delete(e).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn records_the_lifecycle_and_the_kernels_refusals() {
        let mut f = FakeTunnels::new();
        let e = end(7);
        lifecycle(&mut f, &e).await.unwrap();
        let ops: Vec<_> = f.calls.iter().map(|c| c.op).collect();
        assert_eq!(
            ops,
            [TunnelOp::Up, TunnelOp::OutOfService, TunnelOp::Delete]
        );
        assert!(f.devices.is_empty());

        f.up(&e).await.unwrap();
        let again = f.up(&e).await.unwrap_err();
        assert!(matches!(again, VlinkError::Exists { .. }));
        assert!(again.to_string().contains(&e.ifname()));
        let missing = f.out_of_service(&end(8)).await.unwrap_err();
        assert!(matches!(missing, VlinkError::NoTunnel { .. }));
        assert!(missing.to_string().contains("172.1.2.1"));
        // Deleting a missing device is fine, as on the kernel.
        f.delete(&end(9)).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fails_what_it_is_told_to_fail_once() {
        let mut f = FakeTunnels::new();
        let e = end(1);
        f.fail_next(TunnelOp::Up);
        let err = f.up(&e).await.unwrap_err();
        assert!(matches!(err, VlinkError::Injected { .. }));
        assert!(err.to_string().contains(&e.ifname()) && err.to_string().contains("172.1.2.1"));
        assert!(!f.calls[0].ok);
        assert!(f.devices.is_empty(), "a failed set-up leaves nothing");
        f.up(&e).await.unwrap();
        assert!(f.in_service.contains(&e.ifname()));
        f.fail_next(TunnelOp::OutOfService);
        assert!(f.out_of_service(&e).await.is_err());
        assert!(f.in_service.contains(&e.ifname()), "still carrying frames");
    }
}
