//! The `qos-isolation` experiment's traffic part: a reserved virtual link
//! VM1→VM2 carrying a flow at its reserved rate R, and a best-effort flood
//! from the QNI's substrate host to the QNR's at several times the
//! bottleneck capacity, once with the reservation installed in the kernel
//! and once without; the flow's goodput per interval shows the difference.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::experiment::file::Experiment;
use crate::experiment::kinds::setup_teardown::{Plan, link_down, link_up, measure};
use crate::experiment::plot::{LineChart, Reference, Series};
use crate::experiment::rows::Row;
use crate::experiment::stats::{Summary, summarize};
use crate::kernel::substrate;
use crate::kernel::traffic::{self, SendSpec, UDP_OVERHEAD, VXLAN_OVERHEAD};
use crate::node::api::Request;
use crate::testbed::{Options, Testbed};
use crate::topology::{Topology, Vnode};

/// Measurement interval.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// UDP payload of the reserved flow (fits the VXLAN link's 1450-byte MTU).
pub const FLOW_PAYLOAD: usize = 1200;
pub const FLOOD_PAYLOAD: usize = 1400;
const FLOW_PORT: u16 = 5001;
const FLOOD_PORT: u16 = 5002;

/// One interval of one flow: a row of `traffic.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// `reservation` or `no-reservation`.
    pub variant: String,
    /// `flow` (the virtual link's) or `flood` (best effort).
    pub flow: String,
    /// End of the interval, seconds from the start of traffic.
    pub t_s: f64,
    /// Received rate counted at substrate wire size.
    pub wire_bps: f64,
    /// Received UDP payload rate (application goodput).
    pub payload_bps: f64,
    /// Whether the flood was running during the whole interval.
    pub flooded: bool,
    pub rate_bps: u64,
    pub capacity_bps: u64,
}

/// The kind itself: setup/teardown runs with QoS enforcement on
/// (`qos-on`) and off (`qos-off`), each followed by the traffic part
/// (`reservation`, `no-reservation`), whose samples go to `traffic.csv`.
pub fn run_kind(e: &Experiment, topo: Topology, base: &Options, rows: &mut Vec<Row>) -> Result<()> {
    let mut samples = vec![];
    for (runs_variant, traffic_variant, no_qos) in [
        ("qos-on", "reservation", false),
        ("qos-off", "no-reservation", true),
    ] {
        let o = Options {
            no_qos,
            ..base.clone()
        };
        measure(topo.clone(), &o, Plan::of(e), true, runs_variant, rows)?;
        samples.extend(run(
            topo.clone(),
            &o,
            traffic_variant,
            e.rate_bps,
            e.flood_bps,
            Duration::from_secs(e.traffic_seconds),
        )?);
    }
    write_csv(&e.output.join("traffic.csv"), &samples)
}

/// Where the traffic runs: the virtual nodes at both ends of the path and
/// their hosts, and the rates.
struct Ends {
    vm1: Vnode,
    vm2: Vnode,
    qni: String,
    qnr_addr: Ipv4Addr,
    capacity: u64,
    flood: u64,
    ns: [PathBuf; 4],
}

impl Ends {
    fn of(topo: &Topology, rate_bps: u64, flood_bps: Option<u64>) -> Result<Self> {
        let (qni, _, qnr) = topo.signaling_roles()?;
        let (vm1, vm2, capacity) = super::traffic_ends(topo, "qos-isolation")?;
        if rate_bps >= capacity {
            bail!(
                "rate {rate_bps} bit/s must be below the bottleneck capacity {capacity} bit/s (set `capacity` or `rate` in the experiment)"
            );
        }
        let qnr_addr = topo
            .node_addr(&qnr)
            .ok_or_else(|| anyhow!("{qnr} has no address"))?;
        let ns = |n: &str| substrate::ns_path(&substrate::ns_name(&topo.name, n));
        Ok(Self {
            ns: [ns(&vm1.name), ns(&vm2.name), ns(&qni), ns(&qnr)],
            vm1,
            vm2,
            qni,
            qnr_addr,
            capacity,
            flood: flood_bps.unwrap_or(4 * capacity),
        })
    }
}

/// Runs one variant: up, link setup at `rate_bps`, traffic, teardown, down.
pub fn run(
    topo: Topology,
    opts: &Options,
    variant: &str,
    rate_bps: u64,
    flood_bps: Option<u64>,
    duration: Duration,
) -> Result<Vec<Sample>> {
    let ends = Ends::of(&topo, rate_bps, flood_bps)?;
    let tb = super::testbed_up(topo, opts)?;
    let out = traffic(&tb, &ends, variant, rate_bps, duration);
    let down = tb.down();
    let out = out?;
    down?;
    Ok(out)
}

/// The reserved flow over the virtual link during `duration`, the flood in
/// its middle three fifths, between a setup and a teardown.
fn traffic(
    tb: &Testbed,
    ends: &Ends,
    variant: &str,
    rate_bps: u64,
    duration: Duration,
) -> Result<Vec<Sample>> {
    let [ns_vm1, ns_vm2, ns_qni, ns_qnr] = ends.ns.clone();
    let mut c = tb.client(&ends.qni)?;
    let vlink = link_up(c.call(&Request::Setup {
        from: ends.vm1.name.clone(),
        to: ends.vm2.name.clone(),
        rate_bps: crate::model::units::Rate::from_bps(rate_bps),
        bidirectional: false,
        backend: None,
        authenticate: true,
        tunnel: None,
    })?)?;
    let t0 = Instant::now() + Duration::from_millis(300);
    let (flood_from, flood_to) = (duration / 5, duration * 4 / 5);
    let flow_dst = SocketAddrV4::new(ends.vm2.addr, FLOW_PORT);
    let flood_dst = SocketAddrV4::new(ends.qnr_addr, FLOOD_PORT);
    let rx_flow = traffic::receive("flow", ns_vm2, flow_dst, t0, INTERVAL, duration)?;
    let rx_flood = traffic::receive("flood", ns_qnr, flood_dst, t0, INTERVAL, duration)?;
    let stop = Arc::new(AtomicBool::new(false));
    let tx_flow = traffic::send(
        SendSpec {
            flow: "flow".into(),
            netns: ns_vm1,
            dst: flow_dst,
            payload: FLOW_PAYLOAD,
            overhead: VXLAN_OVERHEAD,
            wire_bps: rate_bps,
            start: Duration::ZERO,
            stop: duration,
        },
        t0,
        stop.clone(),
    )?;
    let tx_flood = traffic::send(
        SendSpec {
            flow: "flood".into(),
            netns: ns_qni,
            dst: flood_dst,
            payload: FLOOD_PAYLOAD,
            overhead: UDP_OVERHEAD,
            wire_bps: ends.flood,
            start: flood_from,
            stop: flood_to,
        },
        t0,
        stop,
    )?;
    join(tx_flow, "flow sender")?;
    join(tx_flood, "flood sender")?;
    let got_flow = join(rx_flow, "flow receiver")?;
    let got_flood = join(rx_flood, "flood receiver")?;
    link_down(c.call(&Request::Teardown {
        vlink_id: vlink.vlink_id,
    })?)?;
    let label = Label {
        variant,
        rate_bps,
        capacity_bps: ends.capacity,
        flood: (flood_from, flood_to),
    };
    Ok([(&got_flow, VXLAN_OVERHEAD), (&got_flood, UDP_OVERHEAD)]
        .into_iter()
        .flat_map(|(got, overhead)| label.samples(got, overhead))
        .collect())
}

/// What every sample of one variant carries beside its rates.
struct Label<'a> {
    variant: &'a str,
    rate_bps: u64,
    capacity_bps: u64,
    /// When the flood ran, from the start of traffic.
    flood: (Duration, Duration),
}

impl Label<'_> {
    /// One sample per interval of `got`; `overhead` bytes per packet are
    /// added to the payload to count the substrate wire size.
    fn samples(&self, got: &traffic::Received, overhead: usize) -> Vec<Sample> {
        let secs = INTERVAL.as_secs_f64();
        let (flood_from, flood_to) = self.flood;
        got.intervals
            .iter()
            .enumerate()
            .map(|(i, iv)| {
                let start = INTERVAL * i as u32;
                let end = start + INTERVAL;
                Sample {
                    variant: self.variant.to_string(),
                    flow: got.flow.clone(),
                    t_s: end.as_secs_f64(),
                    wire_bps: (iv.payload_bytes + iv.packets * overhead as u64) as f64 * 8.0 / secs,
                    payload_bps: iv.payload_bytes as f64 * 8.0 / secs,
                    // the first half second of the flood fills the queues
                    flooded: start >= flood_from + Duration::from_millis(500) && end <= flood_to,
                    rate_bps: self.rate_bps,
                    capacity_bps: self.capacity_bps,
                }
            })
            .collect()
    }
}

fn join<T>(h: std::thread::JoinHandle<Result<T>>, what: &str) -> Result<T> {
    h.join()
        .map_err(|_| anyhow!("{what} thread panicked"))?
        .with_context(|| what.to_string())
}

pub fn write_csv(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    for s in samples {
        w.serialize(s)?;
    }
    w.flush()?;
    Ok(())
}

pub fn read_csv(path: &Path) -> Result<Vec<Sample>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    r.deserialize()
        .map(|s| s.with_context(|| format!("{}: bad row", path.display())))
        .collect()
}

/// Per-interval shares of R (percent) of the flow while flooded.
pub fn shares(samples: &[Sample], variant: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.variant == variant && s.flow == "flow" && s.flooded)
        .map(|s| 100.0 * s.wire_bps / s.rate_bps as f64)
        .collect()
}

/// The flood's received rate (Mbit/s) in each flooded interval of `variant`.
fn flood_mbps(samples: &[Sample], variant: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.variant == variant && s.flow == "flood" && s.flooded)
        .map(|s| s.wire_bps / 1e6)
        .collect()
}

/// Adds the traffic metrics and figure for an experiment folder; returns
/// the Markdown section.
pub fn report(dir: &Path, sums: &mut Vec<Summary>) -> Result<String> {
    let p = dir.join("traffic.csv");
    if !p.exists() {
        return Ok("\n(no traffic.csv: the traffic part did not run)\n".into());
    }
    let samples = read_csv(&p)?;
    let Some(first) = samples.first() else {
        return Ok(String::new());
    };
    let (rate, cap) = (first.rate_bps, first.capacity_bps);
    let on = shares(&samples, "reservation");
    let off = shares(&samples, "no-reservation");
    sums.extend(summarize("reserved_share_pct", "%", &on, None));
    sums.extend(summarize("unreserved_share_pct", "%", &off, None));
    for v in ["reservation", "no-reservation"] {
        let f = flood_mbps(&samples, v);
        sums.extend(summarize(&format!("flood_mbps_{v}"), "Mbit/s", &f, None));
    }
    figure(dir, &samples, rate, cap)?;
    // An empty column reads as 0 here, not NaN.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(format!(
        "\n## QoS isolation\n\nA flow at R = {:.1} Mbit/s over the virtual link VM1→VM2 while a best-effort flood offers several times the bottleneck capacity ({:.1} Mbit/s) on the same substrate links. Rates count packets at their size on the substrate (payload + {VXLAN_OVERHEAD} bytes of inner headers and VXLAN encapsulation), which is what the reservation's HTB class meters.\n\n| | flow's share of R while flooded | flood |\n|---|---|---|\n| reservation installed | {:.1} % | {:.1} Mbit/s |\n| admission control only | {:.1} % | {:.1} Mbit/s |\n\n![QoS isolation](qos_isolation.png)\n",
        rate as f64 / 1e6,
        cap as f64 / 1e6,
        mean(&on),
        mean(&flood_mbps(&samples, "reservation")),
        mean(&off),
        mean(&flood_mbps(&samples, "no-reservation")),
    ))
}

/// The received rates of both flows in both variants over time.
fn figure(dir: &Path, samples: &[Sample], rate: u64, cap: u64) -> Result<()> {
    let series = |variant: &str, flow: &str, name: &str| Series {
        name: name.to_string(),
        points: samples
            .iter()
            .filter(|s| s.variant == variant && s.flow == flow)
            .map(|s| (s.t_s, s.wire_bps / 1e6))
            .collect(),
        markers: false,
    };
    LineChart {
        title: format!(
            "Reserved virtual link under a best-effort flood (R = {} Mbit/s, bottleneck {} Mbit/s)",
            rate as f64 / 1e6,
            cap as f64 / 1e6
        ),
        x_label: "time [s]".into(),
        y_label: "received rate at substrate wire size [Mbit/s]".into(),
        series: vec![
            series("reservation", "flow", "VM1→VM2, reservation in the kernel"),
            series("no-reservation", "flow", "VM1→VM2, admission only"),
            series("reservation", "flood", "flood, with the reservation"),
            series("no-reservation", "flood", "flood, without"),
        ],
        references: vec![
            Reference {
                name: "R".into(),
                value: rate as f64 / 1e6,
            },
            Reference {
                name: "capacity".into(),
                value: cap as f64 / 1e6,
            },
        ],
        y_from_zero: true,
    }
    .render(&dir.join("qos_isolation"))?;
    Ok(())
}
