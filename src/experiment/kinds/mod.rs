//! The kinds of experiment: each measures one of the paper's tables or
//! figures (or a question the paper leaves open) and appends rows to
//! `runs.csv`. Every testbed kind repeats [`setup_teardown::measure`].

pub mod auth_compare;
pub mod backends;
pub mod chain_sweep;
pub mod fault_recovery;
pub mod fault_recovery_metrics;
pub mod fault_recovery_plot;
pub mod hmac;
pub mod qos_isolation;
pub mod setup_teardown;
// issue 17: setups per second under concurrent clients.
pub mod throughput;
mod throughput_report;

/// Brings `topo` up once the kernel has finished freeing the namespaces
/// of what ran before (a 1000-router chain's take it ~30 s, under the RTNL
/// lock): otherwise that cleanup lands in this measurement.
pub(crate) fn testbed_up(
    topo: crate::topology::Topology,
    opts: &crate::testbed::Options,
) -> anyhow::Result<crate::testbed::Testbed> {
    let t0 = std::time::Instant::now();
    let ms = std::time::Duration::from_millis;
    if let Some((from, to)) =
        crate::kernel::netns::settle_freed_namespaces(ms(300), ms(1500), ms(120_000))
    {
        eprintln!(
            "waited {:.1} s for the kernel to free removed network namespaces ({from} -> {to} held)",
            t0.elapsed().as_secs_f64()
        );
    }
    if crate::kernel::netns::namespaces_held().is_none() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            eprintln!(
                "cannot read net_namespace from /proc/slabinfo: not waiting for the kernel to free \
                 removed namespaces (a measurement may pay for the last one's cleanup)"
            )
        });
    }
    crate::testbed::Testbed::up(topo, opts)
}

/// The virtual nodes on the initiator's and the responder's routers, and
/// the narrowest substrate link's capacity: what a kind that sends traffic
/// over a reserved virtual link needs (`kind` names it in errors).
pub(crate) fn traffic_ends(
    topo: &crate::topology::Topology,
    kind: &str,
) -> anyhow::Result<(crate::topology::Vnode, crate::topology::Vnode, u64)> {
    let (qni, _, qnr) = topo.signaling_roles()?;
    let vm = |host: &str| {
        topo.vnodes
            .iter()
            .find(|v| v.host == host)
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!("no virtual node on {host}: {kind} needs one at each end")
            })
    };
    let (vm1, vm2) = (vm(&qni)?, vm(&qnr)?);
    let capacity = topo
        .links
        .iter()
        .map(|l| l.capacity_bps)
        .min()
        .ok_or_else(|| anyhow::anyhow!("topology {} has no links", topo.name))?;
    Ok((vm1, vm2, capacity))
}
