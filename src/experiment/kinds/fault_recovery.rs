//! `fault-recovery` (issue 15): a signed reserved virtual link VM1→VM2
//! carries a flow at its reserved rate; a substrate link in the middle of
//! the reserved path fails (or the file's `[[fault]]` schedule runs); once
//! the reservation is on the new path a best-effort flood runs over its
//! substrate links. Per run: the reserved flow's outage at its
//! receiver, the time until every hop of the new path holds an HTB class
//! (and until the QNI says `repaired`), until the old branch's classes are
//! gone, and the reserved flow's share of its rate on the new path under
//! the flood. Then teardown and repair, so each run starts clean. Every run
//! twice over: with static routes (recomputed at once) and with OSPF.
//!
//! Rows: `recovery.csv` (one per run), `traffic.csv` (rates per 100 ms),
//! and the durations in `runs.csv`.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::experiment::file::{Experiment, ScheduledFault};
use crate::experiment::kinds::fault_recovery_metrics::{
    BIN, Hop, RATE_BIN, RateSample, Recovery, censored, coarsen, hops_along, hops_text,
    longest_gap_ms, marker, middle_link, parse_classes, path_of, share_pct, write_csv,
};
use crate::experiment::kinds::setup_teardown::{link_down, link_up};
use crate::experiment::progress;
use crate::experiment::rows::Row;
use crate::kernel::substrate;
use crate::kernel::traffic::{self, SendSpec, UDP_OVERHEAD, VXLAN_OVERHEAD};
use crate::node::api::{ClientError, Event, Reply, Request};
use crate::proto::nslp::EventKind;
use crate::testbed::{Options, Testbed};
use crate::topology::faults::{Fault, FaultState};
use crate::topology::{Routing, Topology};

/// Refresh period of the runs: the old branch's hops that no TEAR reaches
/// expire after 3 periods, within a short run (the default 30 s would make
/// every run last minutes).
pub const REFRESH: Duration = Duration::from_secs(1);
/// When the middle link fails unless the file schedules faults.
pub const DEFAULT_FAULT_MS: u64 = 1000;
/// How long after the fault repair and release are waited for.
const RECOVERY_LIMIT: Duration = Duration::from_secs(8);
/// Between two looks at the classes (each look runs `tc` once per
/// interface watched).
const POLL: Duration = Duration::from_millis(10);
/// Offered rate of the reserved flow's UDP payload (fits the VXLAN MTU).
const FLOW_PAYLOAD: usize = 1200;
const FLOOD_PAYLOAD: usize = 1400;
const FLOW_PORT: u16 = 5011;
const FLOOD_PORT: u16 = 5012;
/// Counted from this long after the repair: the flood's queue at the new
/// hops drains into the new class first.
const SETTLE: Duration = Duration::from_millis(500);

/// The kind: the runs with static routes, then with OSPF, on the same
/// topology; `recovery.csv` and `traffic.csv` are written even when a run
/// fails (with what was measured before it).
pub fn run_kind(e: &Experiment, topo: Topology, base: &Options, rows: &mut Vec<Row>) -> Result<()> {
    let mut recs = vec![];
    let mut samples = vec![];
    let mut out = Ok(());
    for routing in [Routing::Static, Routing::Ospf] {
        let mut t = topo.clone();
        t.routing = routing;
        let opts = Options {
            refresh: Some(REFRESH),
            ..base.clone()
        };
        out = variant(e, t, &opts, rows, &mut recs, &mut samples)
            .with_context(|| format!("fault-recovery with {routing} routing"));
        if out.is_err() || progress::stop_requested() {
            break;
        }
    }
    write_csv(&e.output.join("recovery.csv"), &recs)?;
    write_csv(&e.output.join("traffic.csv"), &samples)?;
    out
}

/// Where the traffic runs and which interfaces can hold the reservation.
struct Ends {
    vm1: String,
    vm2: (String, Ipv4Addr),
    qni: String,
    qnr: String,
    rate: u64,
    flood: u64,
    /// Every router interface (`tc` is asked about these).
    ifaces: Vec<Hop>,
}

impl Ends {
    fn of(topo: &Topology, e: &Experiment) -> Result<Self> {
        let (qni, _, qnr) = topo.signaling_roles()?;
        let (vm1, vm2, capacity) = super::traffic_ends(topo, "fault-recovery")?;
        if e.rate_bps >= capacity {
            bail!(
                "rate {} bit/s must be below the bottleneck capacity {capacity} bit/s (set `capacity` or `rate` in the experiment)",
                e.rate_bps
            );
        }
        let ifaces = topo
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .map(|x| Hop {
                node: x.node.clone(),
                dev: x.ifname.clone(),
            })
            .collect();
        Ok(Self {
            vm1: vm1.name,
            vm2: (vm2.name, vm2.addr),
            qni,
            qnr,
            rate: e.rate_bps,
            flood: e.flood_bps.unwrap_or(2 * capacity),
            ifaces,
        })
    }
}

fn ns(topo: &Topology, node: &str) -> PathBuf {
    substrate::ns_path(&substrate::ns_name(&topo.name, node))
}

/// The reservation classes on `ifaces` now (one `tc` per interface, in
/// one shell).
fn classes(topo: &Topology, ifaces: &[Hop]) -> Result<BTreeSet<Hop>> {
    let script: String = ifaces
        .iter()
        .map(|h| {
            format!(
                "echo '{}'; tc -n {} class show dev {} 2>/dev/null; ",
                marker(&h.node, &h.dev),
                substrate::ns_name(&topo.name, &h.node),
                h.dev
            )
        })
        .collect();
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .context("cannot run tc to read the reservation classes (is iproute2 installed?)")?;
    Ok(parse_classes(&String::from_utf8_lossy(&out.stdout)))
}

/// Every event of `node`, stamped on arrival, from a reader thread.
fn events(tb: &Testbed, node: &str) -> Result<mpsc::Receiver<(Instant, Event)>> {
    let mut c = tb.client(node)?;
    match c.call(&Request::Events)? {
        Reply::Subscribed => {}
        r => bail!("{node}: events answered {r:?}"),
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("events-{node}"))
        .spawn(move || {
            loop {
                match c.next_event() {
                    Ok(ev) => {
                        if tx.send((Instant::now(), ev)).is_err() {
                            break;
                        }
                    }
                    // A quiet minute is the read timeout, not the end.
                    Err(ClientError::Io { .. }) => continue,
                    Err(_) => break,
                }
            }
        })?;
    Ok(rx)
}

/// Runs of one routing kind on one testbed (warm-up runs first).
fn variant(
    e: &Experiment,
    topo: Topology,
    opts: &Options,
    rows: &mut Vec<Row>,
    recs: &mut Vec<Recovery>,
    samples: &mut Vec<RateSample>,
) -> Result<()> {
    let ends = Ends::of(&topo, e)?;
    let routing = topo.routing.to_string();
    let mut tb = super::testbed_up(topo, opts)?;
    let out = (|| -> Result<()> {
        let ev = events(&tb, &ends.qni)?;
        let pb = progress::bar(e.runs as u64, &format!("fault-recovery {routing}"));
        for i in 0..e.warmup + e.runs {
            if progress::stop_requested() {
                pb.abandon();
                return Ok(());
            }
            let run = i.saturating_sub(e.warmup) + 1;
            let (rec, got) = one_run(&mut tb, &ends, e, &ev, &routing, run)
                .with_context(|| format!("run {}", i + 1))?;
            if i >= e.warmup {
                rows.push(row(&rec));
                recs.push(rec);
                samples.extend(got);
                pb.inc(1);
            }
        }
        pb.finish();
        Ok(())
    })();
    let down = tb.down();
    out?;
    down?;
    Ok(())
}

/// The run's durations for `runs.csv` (µs, as every kind writes them).
fn row(r: &Recovery) -> Row {
    let mut values = std::collections::BTreeMap::new();
    for (k, v) in [
        ("outage", Some(r.outage_ms)),
        ("repair", r.repair_ms),
        ("repaired_event", r.repaired_event_ms),
        ("old_branch_freed", r.old_branch_freed_ms),
    ] {
        if let Some(v) = v {
            values.insert(k.to_string(), v * 1e3);
        }
    }
    Row {
        variant: r.routing.clone(),
        run: r.run,
        values,
    }
}

/// The faults of a run: the file's schedule, or the middle link of the
/// reservation's path going down.
fn schedule(e: &Experiment, old_path: &[String]) -> Result<Vec<ScheduledFault>> {
    if !e.faults.is_empty() {
        return Ok(e.faults.clone());
    }
    Ok(vec![ScheduledFault {
        at_ms: DEFAULT_FAULT_MS,
        fault: Fault::LinkDown {
            link: middle_link(old_path)?,
        },
    }])
}

/// The flood's target on the new path: the router before the QNR, at its
/// address on the link to the QNR, so that the flood crosses every new
/// link but the last (on a two-router path, the QNR itself).
fn flood_target(left: &Topology, new_path: &[String]) -> Result<(String, Ipv4Addr)> {
    let n = new_path.len();
    let (at, towards) = if n >= 3 {
        (&new_path[n - 2], &new_path[n - 1])
    } else {
        (&new_path[n - 1], &new_path[0])
    };
    left.links_of(at)
        .find(|(_, peer, _)| peer.node == *towards)
        .map(|(me, _, _)| (at.clone(), me.addr))
        .ok_or_else(|| anyhow!("no link {at}-{towards} left for the flood"))
}

/// What the watcher saw after the fault, from the fault's instant.
#[derive(Default)]
struct Watched {
    repair: Option<Duration>,
    repaired_event: Option<Duration>,
    old_freed: Option<Duration>,
    /// Repair failed or the link was lost before it.
    failed: Option<String>,
    /// The link was lost after its repair (a refresh unanswered under the
    /// flood).
    lost_later: Option<String>,
}

/// Watches the classes and the QNI's events until the new path holds the
/// reservation (then calls `on_repair`) and the old branch is gone (or the
/// limit).
fn watch(
    topo: &Topology,
    ifaces: &[Hop],
    new: &BTreeSet<Hop>,
    old_only: &BTreeSet<Hop>,
    ev: &mpsc::Receiver<(Instant, Event)>,
    t_fault: Instant,
    on_repair: &mut dyn FnMut() -> Result<()>,
) -> Result<Watched> {
    let mut w = Watched::default();
    while t_fault.elapsed() < RECOVERY_LIMIT {
        for (at, e) in ev.try_iter() {
            match e.kind {
                EventKind::Repaired => {
                    w.repaired_event
                        .get_or_insert(at.saturating_duration_since(t_fault));
                }
                EventKind::RepairFailed | EventKind::LinkLost => {
                    w.lost(&e);
                }
                _ => {}
            }
        }
        let now = classes(topo, ifaces)?;
        let t = t_fault.elapsed();
        if w.repair.is_none() && new.is_subset(&now) && w.failed.is_none() {
            w.repair = Some(t);
            on_repair()?;
        }
        if w.old_freed.is_none() && now.is_disjoint(old_only) {
            w.old_freed = Some(t);
        }
        let done = w.repair.is_some() && w.repaired_event.is_some();
        if (done || w.failed.is_some()) && w.old_freed.is_some() {
            break;
        }
        std::thread::sleep(POLL);
    }
    Ok(w)
}

impl Watched {
    fn repaired(&self) -> bool {
        self.failed.is_none() && self.repair.is_some() && self.repaired_event.is_some()
    }

    /// A `repair_failed` or `link_lost`: before or after the repair.
    fn lost(&mut self, e: &Event) {
        let why = format!("{}: {}", e.kind, e.message);
        if self.repaired() {
            self.lost_later.get_or_insert(why);
        } else {
            self.failed.get_or_insert(why);
        }
    }
}

/// Why a run is not measured when the reservation's classes, followed from
/// the initiator, do not reach the responder: the node whose class points
/// off the way and the classes left elsewhere. Not a state of the testbed
/// to wait out: each class must sit on the link its RESERVE left by.
fn off_path(hops: &BTreeSet<Hop>, path: &[String], qnr: &str) -> String {
    let stray: Vec<String> = hops
        .iter()
        .filter(|h| !path.contains(&h.node))
        .map(Hop::to_string)
        .collect();
    let at = match path {
        [.., node, to] => hops.iter().find(|h| h.node == *node).map(|h| {
            format!(
                "{node}'s class is on {} (towards {to}, which holds none)",
                h.dev
            )
        }),
        _ => None,
    }
    .unwrap_or_else(|| format!("{} holds no class", path[0]));
    let elsewhere = if stray.is_empty() {
        String::new()
    } else {
        format!(", while {} lie on another way", stray.join(" "))
    };
    format!(
        "the reservation's classes {} lead {} rather than to {qnr}: {at}{elsewhere}. A class not on the link its RESERVE left by is a defect of vlsp (issue 15), not a state to wait out: please report it with this message and the nodes' logs",
        hops_text(hops),
        path.join("-"),
    )
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

/// One run: setup, traffic with the faults, teardown, the faults undone.
fn one_run(
    tb: &mut Testbed,
    ends: &Ends,
    e: &Experiment,
    ev: &mpsc::Receiver<(Instant, Event)>,
    routing: &str,
    run: usize,
) -> Result<(Recovery, Vec<RateSample>)> {
    let topo = tb.topo.clone();
    while ev.try_recv().is_ok() {}
    let mut c = tb.client(&ends.qni)?;
    let vlink = link_up(c.call(&Request::Setup {
        from: ends.vm1.clone(),
        to: ends.vm2.0.clone(),
        rate_bps: crate::model::units::Rate::from_bps(ends.rate),
        bidirectional: false,
        backend: None,
        authenticate: true,
        tunnel: None,
    })?)?;
    let old = classes(&topo, &ends.ifaces)?;
    let old_path = path_of(&topo, &ends.qni, &old)?;
    if old_path.last() != Some(&ends.qnr) {
        bail!("{}", off_path(&old, &old_path, &ends.qnr));
    }
    let faults = schedule(e, &old_path)?;
    let mut after = FaultState::default();
    for f in &faults {
        after = after.with(&topo, &f.fault)?;
    }
    let left = topo.without(&after);
    let new_path = left.path(&ends.qni, &ends.qnr).ok_or_else(|| {
        anyhow!(
            "after {} no path is left from {} to {}",
            faults[0].fault,
            ends.qni,
            ends.qnr
        )
    })?;
    let new = hops_along(&left, &new_path)?;
    let old_only: BTreeSet<Hop> = old.difference(&new).cloned().collect();
    let (flood_node, flood_addr) = flood_target(&left, &new_path)?;

    let d = Duration::from_secs(match tb.topo.routing {
        Routing::Ospf => e.ospf_traffic_seconds.unwrap_or(e.traffic_seconds),
        Routing::Static => e.traffic_seconds,
    });
    let t0 = Instant::now() + Duration::from_millis(300);
    let flow_dst = SocketAddrV4::new(ends.vm2.1, FLOW_PORT);
    let flood_dst = SocketAddrV4::new(flood_addr, FLOOD_PORT);
    let rx_flow = traffic::receive("reserved", ns(&topo, &ends.vm2.0), flow_dst, t0, BIN, d)?;
    let rx_flood = traffic::receive("flood", ns(&topo, &flood_node), flood_dst, t0, BIN, d)?;
    let stop = Arc::new(AtomicBool::new(false));
    let spec = |flow: &str, from: &str, dst, payload, overhead, wire_bps| SendSpec {
        flow: flow.into(),
        netns: ns(&topo, from),
        dst,
        payload,
        overhead,
        wire_bps,
        start: Duration::ZERO,
        stop: d,
    };
    let tx_flow = traffic::send(
        spec(
            "reserved",
            &ends.vm1,
            flow_dst,
            FLOW_PAYLOAD,
            VXLAN_OVERHEAD,
            ends.rate,
        ),
        t0,
        stop.clone(),
    )?;
    // The flood starts once the new path holds the reservation: started
    // with the traffic it drowns the repair's own signaling (GIST and
    // NSLP share the best-effort class), see the README.
    let mut tx_flood = None;
    let mut start_flood = || -> Result<()> {
        let mut f = spec(
            "flood",
            &ends.qni,
            flood_dst,
            FLOOD_PAYLOAD,
            UDP_OVERHEAD,
            ends.flood,
        );
        f.start = t0.elapsed();
        tx_flood = Some(traffic::send(f, t0, stop.clone())?);
        Ok(())
    };
    let watched = (|| -> Result<(Instant, Watched)> {
        let mut t_fault = None;
        for f in &faults {
            let at = t0 + Duration::from_millis(f.at_ms);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let now = Instant::now();
            tb.fault(&f.fault)?;
            t_fault.get_or_insert(now);
        }
        let t_fault = t_fault.expect("a schedule has a fault");
        let w = watch(
            &topo,
            &ends.ifaces,
            &new,
            &old_only,
            ev,
            t_fault,
            &mut start_flood,
        )?;
        Ok((t_fault, w))
    })();
    if watched.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    let sent = [
        join(tx_flow, "reserved flow sender"),
        tx_flood.map_or(Ok(0), |h| join(h, "flood sender")),
    ];
    let got_flow = join(rx_flow, "reserved flow receiver");
    let got_flood = join(rx_flood, "flood receiver");
    let (t_fault, mut w) = watched?;
    for (_, e) in ev.try_iter() {
        if matches!(e.kind, EventKind::RepairFailed | EventKind::LinkLost) {
            w.lost(&e);
        }
    }
    for s in sent {
        s?;
    }
    let (got_flow, got_flood) = (got_flow?, got_flood?);

    // Clean for the next run: the link down (it may be gone already when
    // the repair failed), the faults undone, routing converged, no class.
    let torn = c.call(&Request::Teardown {
        vlink_id: vlink.vlink_id,
    });
    if w.failed.is_none() && w.lost_later.is_none() {
        link_down(torn?)?;
    }
    undo(tb, &after)?;
    wait_clean(tb, &ends.ifaces)?;

    let fault_at = t_fault.saturating_duration_since(t0);
    let pkts: Vec<u64> = got_flow.intervals.iter().map(|i| i.packets).collect();
    let wire = |got: &traffic::Received, overhead: usize| -> Vec<u64> {
        got.intervals
            .iter()
            .map(|i| i.payload_bytes + i.packets * overhead as u64)
            .collect()
    };
    let flow_wire = wire(&got_flow, VXLAN_OVERHEAD);
    let share = w.repair.and_then(|r| {
        let from = (fault_at + r + SETTLE).as_nanos() / BIN.as_nanos();
        share_pct(&flow_wire, BIN, from as usize, flow_wire.len(), ends.rate)
    });
    let per = (RATE_BIN.as_nanos() / BIN.as_nanos()) as usize;
    let mut rates = vec![];
    for (flow, bins) in [
        ("reserved", flow_wire.clone()),
        ("flood", wire(&got_flood, UDP_OVERHEAD)),
    ] {
        for (i, b) in coarsen(&bins, per).iter().enumerate() {
            rates.push(RateSample {
                routing: routing.to_string(),
                run,
                flow: flow.into(),
                t_s: ((i + 1) as f64 * RATE_BIN.as_secs_f64()).min(d.as_secs_f64()),
                wire_bps: *b as f64 * 8.0 / RATE_BIN.as_secs_f64(),
            });
        }
    }
    let rec = Recovery {
        routing: routing.to_string(),
        run,
        fault: faults[0].fault.to_string(),
        fault_at_ms: fault_at.as_secs_f64() * 1e3,
        repaired: w.repaired(),
        lost_after_repair: w.lost_later.is_some(),
        repair_ms: ms(w.repair),
        repaired_event_ms: ms(w.repaired_event),
        old_branch_freed_ms: ms(w.old_freed),
        outage_ms: longest_gap_ms(&pkts, BIN),
        censored: censored(
            &pkts,
            ((fault_at + w.repair.unwrap_or_default()).as_nanos() / BIN.as_nanos()) as usize,
            w.repair.is_some() && share.is_none(),
        ),
        reserved_share_after_pct: share,
        old_hops: hops_text(&old),
        new_hops: hops_text(&new),
    };
    if let Some(f) = w.failed.as_ref().or(w.lost_later.as_ref()) {
        tracing::warn!("{routing} run {run}: {f}");
    }
    Ok((rec, rates))
}

/// bird re-originates a router's LSA at most once per MinLSInterval (5 s,
/// RFC 2328, fixed in bird): a fault sooner after the repair of the last
/// one has its LSA postponed to the end of that interval, so the runs wait
/// it out after OSPF converged and measure a first fault, not a flap.
const MIN_LS_INTERVAL: Duration = Duration::from_secs(5);

/// Repairs what `state` failed; with OSPF, waits until it has converged
/// on the whole topology again and bird may originate LSAs at once.
fn undo(tb: &mut Testbed, state: &FaultState) -> Result<()> {
    for l in &state.links_down {
        tb.fault(&Fault::LinkUp { link: l.clone() })?;
    }
    for n in &state.nodes_stopped {
        tb.fault(&Fault::NodeStart { node: n.clone() })?;
    }
    if tb.topo.routing == Routing::Ospf {
        let (topo, run) = (tb.topo.clone(), tb.run.clone());
        crate::testbed::routing::wait_converged(
            &topo,
            &FaultState::default(),
            &run,
            &mut tb.birds,
            Duration::from_secs(30),
        )
        .context("OSPF after repairing the faults")?;
        std::thread::sleep(MIN_LS_INTERVAL);
    }
    Ok(())
}

/// Waits until no router holds a reservation class (the old branch's last
/// hops expire within 3 refresh periods).
fn wait_clean(tb: &Testbed, ifaces: &[Hop]) -> Result<()> {
    let end = Instant::now() + REFRESH * 6;
    loop {
        let left = classes(&tb.topo, ifaces)?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!(
                "reservation classes {} are still there {} s after the teardown: the next run would not start clean",
                hops_text(&left),
                (REFRESH * 6).as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn join<T>(h: std::thread::JoinHandle<Result<T>>, what: &str) -> Result<T> {
    h.join()
        .map_err(|_| anyhow!("{what} thread panicked"))?
        .with_context(|| what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(node: &str, dev: &str) -> Hop {
        Hop {
            node: node.into(),
            dev: dev.into(),
        }
    }

    #[test]
    fn a_class_off_the_path_names_the_node_the_interfaces_and_asks_for_a_report() {
        // The run that stopped at static run 9: r0's class towards r5, the
        // rest of the path's classes on r1 and r2.
        let hops: BTreeSet<Hop> = [hop("r0", "eth1"), hop("r1", "eth1"), hop("r2", "eth1")]
            .into_iter()
            .collect();
        let path = ["r0".to_string(), "r5".to_string()];
        let m = off_path(&hops, &path, "r3");
        assert!(
            m.contains("r0's class is on eth1 (towards r5, which holds none)"),
            "{m}"
        );
        assert!(
            m.contains("while r1:eth1 r2:eth1 lie on another way"),
            "{m}"
        );
        assert!(m.contains("defect") && m.contains("report"), "{m}");
    }
}
