//! `throughput` (issue 17): `links` virtual links set up by C concurrent API
//! clients, then torn down by them, for each C of `concurrency`; optionally
//! with the clients spread over two initiators (links in both directions)
//! and paced at an offered rate (open loop). Each link joins its own pair
//! of virtual interfaces (link i: the i-th interface of both virtual nodes),
//! because an interface carries one link.
//!
//! Closed loop (clients send their next request when the reply is in),
//! Little's law ties the numbers: latency ≈ C / (setups per second), so at
//! C = 64 a p99 of 20 ms needs over 3000 setups per second; the paced
//! variant measures latency at a given load instead, from each setup's
//! scheduled time (a send delayed by the client's previous setup counts).
//!
//! Per run: setups and teardowns per second (successes over the phase's
//! wall time), p50/p99 of the per-request latency at the client, failures,
//! and the kernel time share: the time the nodes spent in kernel calls
//! (tunnel ends, HTB classes, deferred deletions; from measurement points)
//! over the phase's wall time: near or above 1 the kernel's RTNL lock,
//! which all namespaces share, is the limit.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::experiment::file::Experiment;
use crate::experiment::progress;
use crate::experiment::rows::Row;
use crate::model::measure::{Point, PointKind, now_ns};
use crate::model::units::Rate;
use crate::node::api::{Client, Reply, Request};
use crate::testbed::{Options, Testbed};
use crate::topology::Topology;

pub use super::throughput_report::report;

/// The two virtual nodes the links join, their routers, and the interface
/// ids link i uses at each (`vifs[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub a: String,
    pub a_host: String,
    pub b: String,
    pub b_host: String,
    pub vifs: Vec<(u64, u64)>,
}

impl Pair {
    /// The topology's first virtual node and the first one of the same
    /// virtual network on another router; refused when they have fewer
    /// than `links` interfaces each.
    pub fn of(topo: &Topology, links: usize) -> Result<Self> {
        let a = topo.vnodes.first().ok_or_else(|| {
            anyhow!(
                "topology {} has no virtual node: throughput links join two",
                topo.name
            )
        })?;
        let b = topo
            .vnodes
            .iter()
            .find(|v| v.vnet == a.vnet && v.host != a.host)
            .ok_or_else(|| {
                anyhow!(
                    "topology {}: no virtual node of {} on a router other than {}: throughput links join two",
                    topo.name,
                    a.vnet,
                    a.host
                )
            })?;
        let vifs: Vec<(u64, u64)> = a
            .interfaces
            .iter()
            .zip(&b.interfaces)
            .map(|(x, y)| (x.id, y.id))
            .collect();
        if vifs.len() < links {
            bail!(
                "topology {}: {} and {} have {} interface pairs, but the experiment sets up {links} links at once (an interface carries one link): declare more `interfaces` (see topologies/throughput-4node.toml) or lower `links`",
                topo.name,
                a.name,
                b.name,
                vifs.len()
            );
        }
        Ok(Self {
            a: a.name.clone(),
            a_host: a.host.clone(),
            b: b.name.clone(),
            b_host: b.host.clone(),
            vifs,
        })
    }
}

/// One link of a run: which router's API sets it up, from and to which
/// interface, and when it is due (paced runs; 0 = at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub index: usize,
    pub node: String,
    pub from: String,
    pub to: String,
    pub due_ns: u64,
}

/// How one variant runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub links: usize,
    pub clients: usize,
    /// Routers the clients are spread over (1 or 2).
    pub initiators: usize,
    /// Setups per second offered in all (open loop), or as fast as replies
    /// come (closed loop).
    pub offered: Option<u32>,
}

impl Load {
    /// The variant's name in `runs.csv`: `c=64`, `c=64x2`, `c=64@1000/s`.
    pub fn name(&self) -> String {
        let mut s = format!("c={}", self.clients);
        if self.initiators > 1 {
            s += &format!("x{}", self.initiators);
        }
        if let Some(r) = self.offered {
            s += &format!("@{r}/s");
        }
        s
    }

    /// The variants of an experiment: every concurrency with one initiator,
    /// then the largest with two and paced, as asked.
    pub fn variants(e: &Experiment) -> Vec<Load> {
        let one = |clients| Load {
            links: e.links,
            clients,
            initiators: 1,
            offered: None,
        };
        let mut v: Vec<Load> = e.concurrency.iter().map(|&c| one(c)).collect();
        let max = e.concurrency.iter().copied().max().unwrap_or(1);
        if e.many_initiators && max >= 2 {
            v.push(Load {
                initiators: 2,
                ..one(max)
            });
        }
        if let Some(r) = e.offered_rate.filter(|r| *r > 0) {
            v.push(Load {
                offered: Some(r),
                ..one(max)
            });
        }
        v
    }

    /// Each client's links, in the order it sends them: link i goes to
    /// client i mod C; client k signals from initiator k mod `initiators`
    /// (the second sets its links up in the other direction).
    pub fn jobs(&self, pair: &Pair) -> Vec<Vec<Job>> {
        let mut out: Vec<Vec<Job>> = vec![vec![]; self.clients];
        for (i, (va, vb)) in pair.vifs.iter().take(self.links).enumerate() {
            let k = i % self.clients;
            let (a, b) = (format!("{}:{va}", pair.a), format!("{}:{vb}", pair.b));
            let (node, from, to) = if k.is_multiple_of(self.initiators) {
                (pair.a_host.clone(), a, b)
            } else {
                (pair.b_host.clone(), b, a)
            };
            let due_ns = self
                .offered
                .map_or(0, |r| (i as u64 * 1_000_000_000) / u64::from(r.max(1)));
            out[k].push(Job {
                index: i,
                node,
                from,
                to,
                due_ns,
            });
        }
        out
    }
}

/// What one phase (all setups, or all teardowns) of a run saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseOutcome {
    /// First request sent, last reply received (`CLOCK_MONOTONIC` ns).
    pub start_ns: u64,
    pub end_ns: u64,
    /// Request to reply, of every request answered with success.
    pub latencies_ns: Vec<u64>,
    /// Why each failed request failed.
    pub failures: Vec<String>,
    /// Paced requests sent more than 1 ms after they were due.
    pub late: usize,
}

impl PhaseOutcome {
    /// Merges the clients' outcomes.
    fn merge(parts: impl IntoIterator<Item = PhaseOutcome>) -> Self {
        let mut m = PhaseOutcome {
            start_ns: u64::MAX,
            ..Default::default()
        };
        for p in parts {
            // Clients that sent nothing (none to send, or not connected).
            if p.end_ns > 0 {
                m.start_ns = m.start_ns.min(p.start_ns);
                m.end_ns = m.end_ns.max(p.end_ns);
            }
            m.latencies_ns.extend(p.latencies_ns);
            m.failures.extend(p.failures);
            m.late += p.late;
        }
        if m.start_ns == u64::MAX {
            m.start_ns = 0;
        }
        m
    }

    fn wall_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Successful requests per second of wall time.
    pub fn per_s(&self) -> f64 {
        let w = self.wall_ns();
        if w == 0 {
            0.0
        } else {
            self.latencies_ns.len() as f64 * 1e9 / w as f64
        }
    }
}

/// The `p`-quantile (0..=1) of `v` by nearest rank; NaN for none.
pub fn quantile(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1] as f64
}

/// Nanoseconds the nodes spent in kernel calls within `[from, to]`: every
/// tunnel-end creation and removal, HTB class install and deferred device
/// deletion, each from its start point to the first matching done point
/// of the same node and session. Per node the union of those intervals
/// (a batch of deletions counts once), clipped to the window; summed over
/// the nodes.
pub fn kernel_ns(points: &[Point], from: u64, to: u64) -> u64 {
    use PointKind::*;
    let pairs = [
        (VlinkUpStart, VlinkUpDone),
        (VlinkDownStart, VlinkDownDone),
        (QosInstallStart, QosInstallDone),
        (VlinkDeleteStart, VlinkDeleteDone),
    ];
    type Marks = (Vec<u64>, Vec<u64>);
    let mut by: BTreeMap<(&str, [u8; 16], usize), Marks> = BTreeMap::new();
    for p in points {
        for (i, (s, d)) in pairs.iter().enumerate() {
            if p.kind == *s {
                by.entry((&*p.node, p.sid, i)).or_default().0.push(p.at_ns);
            } else if p.kind == *d {
                by.entry((&*p.node, p.sid, i)).or_default().1.push(p.at_ns);
            }
        }
    }
    let mut spans: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for ((node, ..), (mut starts, mut dones)) in by {
        starts.sort_unstable();
        dones.sort_unstable();
        let mut di = 0;
        for s in starts {
            while di < dones.len() && dones[di] < s {
                di += 1;
            }
            let Some(&d) = dones.get(di) else { break };
            di += 1;
            let (a, b) = (s.max(from), d.min(to));
            if b > a {
                spans.entry(node).or_default().push((a, b));
            }
        }
    }
    let mut total = 0;
    for mut v in spans.into_values() {
        v.sort_unstable();
        let mut end = 0;
        for (a, b) in v {
            let a = a.max(end);
            if b > a {
                total += b - a;
                end = b;
            }
        }
    }
    total
}

/// Messages sent again within `[from, to]`: per node and session, every
/// GIST Query and every RESERVE after the first, i.e. retransmissions
/// after a lost or unanswered one (a run is far shorter than the refresh
/// period, so no refresh counts). Returns (Queries, RESERVEs).
pub fn resent(points: &[Point], from: u64, to: u64) -> (u64, u64) {
    let mut seen: BTreeMap<(&str, [u8; 16], bool), u64> = BTreeMap::new();
    for p in points.iter().filter(|p| (from..=to).contains(&p.at_ns)) {
        let query = match p.kind {
            PointKind::GistQuerySent => true,
            PointKind::ReserveSent => false,
            _ => continue,
        };
        *seen.entry((&*p.node, p.sid, query)).or_default() += 1;
    }
    let mut out = (0, 0);
    for ((_, _, query), n) in seen {
        let again = n.saturating_sub(1);
        if query {
            out.0 += again;
        } else {
            out.1 += again;
        }
    }
    out
}

/// A run's row values: rates, latency quantiles (µs, as every duration in
/// `runs.csv`), failures and kernel shares.
pub fn values(
    load: &Load,
    setup: &PhaseOutcome,
    teardown: &PhaseOutcome,
    points: &[Point],
) -> BTreeMap<String, f64> {
    let mut v = BTreeMap::new();
    v.insert("concurrency".into(), load.clients as f64);
    v.insert("initiators".into(), load.initiators as f64);
    v.insert("links".into(), load.links as f64);
    v.insert("offered_per_s".into(), load.offered.map_or(0.0, f64::from));
    for (name, p) in [("setup", setup), ("teardown", teardown)] {
        v.insert(format!("{name}s_per_s"), p.per_s());
        v.insert(format!("{name}_wall"), p.wall_ns() as f64 / 1e3);
        v.insert(format!("{name}_p50"), quantile(&p.latencies_ns, 0.5) / 1e3);
        v.insert(format!("{name}_p99"), quantile(&p.latencies_ns, 0.99) / 1e3);
        v.insert(format!("{name}_max"), quantile(&p.latencies_ns, 1.0) / 1e3);
        v.insert(format!("{name}_failures"), p.failures.len() as f64);
        v.insert(format!("{name}_late"), p.late as f64);
        let share = if p.wall_ns() == 0 {
            0.0
        } else {
            kernel_ns(points, p.start_ns, p.end_ns) as f64 / p.wall_ns() as f64
        };
        v.insert(format!("{name}_kernel_share"), share);
        let (queries, reserves) = resent(points, p.start_ns, p.end_ns);
        v.insert(format!("{name}_queries_resent"), queries as f64);
        v.insert(format!("{name}_reserves_resent"), reserves as f64);
    }
    v.retain(|_, x| x.is_finite());
    v
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `at_ns`.
fn sleep_until(at_ns: u64) {
    let now = now_ns();
    if at_ns > now {
        std::thread::sleep(Duration::from_nanos(at_ns - now));
    }
}

/// A setup's latency: from its request to its reply, or, paced (`due`
/// is when it was scheduled), from when it was due. A paced client whose
/// previous setup overran sends late; timing from the send would leave
/// out the wait it made (coordinated omission) and flatter the latency at
/// the offered load.
pub fn setup_latency(due: Option<u64>, sent: u64, got: u64) -> u64 {
    got.saturating_sub(due.map_or(sent, |d| d.min(sent)))
}

/// One client's setups: its connection stays open for all of them; `t0`,
/// when paced, is the time the jobs' `due_ns` count from.
/// Returns the phase outcome and the ids of the links it set up.
fn client_setups(
    c: &mut Client,
    jobs: &[Job],
    rate: Rate,
    t0: Option<u64>,
) -> (PhaseOutcome, Vec<u64>) {
    let mut out = PhaseOutcome {
        start_ns: u64::MAX,
        ..Default::default()
    };
    let mut ids = vec![];
    for j in jobs {
        let due = t0.map(|t0| t0 + j.due_ns);
        if let Some(due) = due {
            sleep_until(due);
        }
        let sent = now_ns();
        if due.is_some_and(|due| sent > due + 1_000_000) {
            out.late += 1;
        }
        let req = Request::Setup {
            from: j.from.clone(),
            to: j.to.clone(),
            rate_bps: rate,
            bidirectional: false,
            backend: None,
            authenticate: true,
            tunnel: None,
        };
        let r = c.call(&req);
        let got = now_ns();
        out.start_ns = out.start_ns.min(sent);
        out.end_ns = out.end_ns.max(got);
        match r {
            Ok(Reply::LinkUp { vlink }) => {
                out.latencies_ns.push(setup_latency(due, sent, got));
                ids.push(vlink.vlink_id);
            }
            Ok(other) => out.failures.push(format!(
                "setup {} -> {} on {}: {other:?}",
                j.from, j.to, j.node
            )),
            Err(e) => out
                .failures
                .push(format!("setup {} -> {} on {}: {e}", j.from, j.to, j.node)),
        }
    }
    (out, ids)
}

/// One client's teardowns of the links it set up.
fn client_teardowns(c: &mut Client, ids: &[u64], node: &str) -> PhaseOutcome {
    let mut out = PhaseOutcome {
        start_ns: u64::MAX,
        ..Default::default()
    };
    for &vlink_id in ids {
        let sent = now_ns();
        let r = c.call(&Request::Teardown { vlink_id });
        let got = now_ns();
        out.start_ns = out.start_ns.min(sent);
        out.end_ns = out.end_ns.max(got);
        match r {
            Ok(Reply::LinkDown { .. }) => out.latencies_ns.push(got - sent),
            Ok(other) => out
                .failures
                .push(format!("teardown of {vlink_id:016x} on {node}: {other:?}")),
            Err(e) => out
                .failures
                .push(format!("teardown of {vlink_id:016x} on {node}: {e}")),
        }
    }
    out
}

/// What one run measured.
pub struct RunOutcome {
    pub setup: PhaseOutcome,
    pub teardown: PhaseOutcome,
}

/// One run: every client connects, all set their links up at once, then
/// all tear theirs down at once.
pub fn one_run(tb: &Testbed, pair: &Pair, load: &Load, rate: Rate) -> Result<RunOutcome> {
    one_run_with(tb, pair, load, rate, || Ok(()))
}

/// [`one_run`], calling `between` when every setup is answered and before
/// any teardown is sent (a test looks at the kernel then).
pub fn one_run_with(
    tb: &Testbed,
    pair: &Pair,
    load: &Load,
    rate: Rate,
    between: impl FnOnce() -> Result<()>,
) -> Result<RunOutcome> {
    let plans = load.jobs(pair);
    // The clients and this thread: connected, setups done, teardowns go.
    let barrier = Barrier::new(plans.len() + 1);
    let t0 = now_ns() + 50_000_000;
    let (results, checked) = std::thread::scope(|s| {
        let hs: Vec<_> = plans
            .iter()
            .map(|jobs| {
                let barrier = &barrier;
                s.spawn(move || -> Result<(PhaseOutcome, PhaseOutcome)> {
                    let node = jobs
                        .first()
                        .map_or(pair.a_host.as_str(), |j| j.node.as_str());
                    // Every client connects (or fails to) before any sends;
                    // a failed one still meets the others at each barrier.
                    let c = tb.client(node);
                    barrier.wait();
                    let (setup, mut c, ids) = match c {
                        Ok(mut c) => {
                            let paced = load.offered.map(|_| t0);
                            let (o, ids) = client_setups(&mut c, jobs, rate, paced);
                            (o, Some(c), ids)
                        }
                        Err(e) => (
                            PhaseOutcome {
                                failures: vec![format!("client of {node}: {e:#}"); jobs.len()],
                                ..Default::default()
                            },
                            None,
                            vec![],
                        ),
                    };
                    barrier.wait();
                    barrier.wait();
                    let teardown = match c.as_mut() {
                        Some(c) => client_teardowns(c, &ids, node),
                        None => PhaseOutcome::default(),
                    };
                    Ok((setup, teardown))
                })
            })
            .collect();
        barrier.wait();
        barrier.wait();
        let checked = between();
        barrier.wait();
        let results: Vec<Result<(PhaseOutcome, PhaseOutcome)>> = hs
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a client thread panicked"))?)
            .collect();
        (results, checked)
    });
    let mut setups = vec![];
    let mut teardowns = vec![];
    for r in results {
        let (s, t) = r?;
        setups.push(s);
        teardowns.push(t);
    }
    checked?;
    Ok(RunOutcome {
        setup: PhaseOutcome::merge(setups),
        teardown: PhaseOutcome::merge(teardowns),
    })
}

/// Waits (up to `limit`) until no node holds a link, a reservation or a
/// pending tunnel-end operation, so a run starts on a clean substrate;
/// names what is left otherwise.
pub fn wait_clean(tb: &Testbed, limit: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + limit;
    let nodes: Vec<String> = tb.nodes.iter().map(|n| n.name.clone()).collect();
    for node in &nodes {
        let mut c = tb.client(node)?;
        loop {
            let left = match c.call(&Request::Stats)? {
                Reply::Stats { stats } => (stats.reservations, stats.vlink_pending),
                r => bail!("node {node}: stats answered {r:?}"),
            };
            if left == (0, 0) {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "node {node} still holds {} reservations and {} tunnel-end operations {:?} after the run: links were left behind",
                    left.0,
                    left.1,
                    limit
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// The kind: brings the topology up once, runs every variant's warm-up
/// and measured runs on it, and takes it down.
pub fn run(e: &Experiment, topo: Topology, base: &Options, rows: &mut Vec<Row>) -> Result<()> {
    let pair = Pair::of(&topo, e.links)?;
    let rate = Rate::from_bps(e.rate_bps);
    let tb = super::testbed_up(topo, base)?;
    for load in Load::variants(e) {
        let variant = load.name();
        for w in 0..e.warmup {
            one_run(&tb, &pair, &load, rate)
                .with_context(|| format!("{variant} warm-up {}", w + 1))?;
            wait_clean(&tb, Duration::from_secs(120))?;
        }
        tb.drain_points()?;
        let pb = progress::bar(e.runs as u64, &variant);
        for run in 1..=e.runs {
            if progress::stop_requested() {
                pb.abandon();
                bail!("interrupted in {variant} after {} runs", run - 1);
            }
            let m =
                one_run(&tb, &pair, &load, rate).with_context(|| format!("{variant} run {run}"))?;
            wait_clean(&tb, Duration::from_secs(120))?;
            let points = tb.drain_points()?;
            for f in m.setup.failures.iter().chain(&m.teardown.failures).take(3) {
                tracing::warn!("{variant} run {run}: {f}");
            }
            rows.push(Row {
                variant: variant.clone(),
                run,
                values: values(&load, &m.setup, &m.teardown, &points),
            });
            pb.inc(1);
        }
        pb.finish();
    }
    tb.down()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pair(n: u64) -> Pair {
        Pair {
            a: "VM1".into(),
            a_host: "tb1".into(),
            b: "VM2".into(),
            b_host: "tb4".into(),
            vifs: (1..=n).map(|i| (i, i)).collect(),
        }
    }

    fn load(links: usize, clients: usize, initiators: usize) -> Load {
        Load {
            links,
            clients,
            initiators,
            offered: None,
        }
    }

    #[test]
    fn links_are_dealt_round_robin_each_on_its_own_interfaces() {
        let jobs = load(5, 2, 1).jobs(&pair(8));
        let idx: Vec<Vec<usize>> = jobs
            .iter()
            .map(|c| c.iter().map(|j| j.index).collect())
            .collect();
        assert_eq!(idx, [vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(jobs[1][1].from, "VM1:4");
        assert_eq!(jobs[1][1].to, "VM2:4");
        assert!(
            jobs.iter()
                .flatten()
                .all(|j| j.node == "tb1" && j.due_ns == 0)
        );
    }

    #[test]
    fn a_second_initiator_signals_the_other_way() {
        let jobs = load(4, 4, 2).jobs(&pair(4));
        assert_eq!(
            jobs.iter()
                .map(|c| (c[0].node.as_str(), c[0].from.as_str(), c[0].to.as_str()))
                .collect::<Vec<_>>(),
            [
                ("tb1", "VM1:1", "VM2:1"),
                ("tb4", "VM2:2", "VM1:2"),
                ("tb1", "VM1:3", "VM2:3"),
                ("tb4", "VM2:4", "VM1:4")
            ]
        );
    }

    #[test]
    fn paced_links_are_due_at_the_offered_rate() {
        let l = Load {
            offered: Some(1000),
            ..load(4, 2, 1)
        };
        let due: Vec<u64> = l.jobs(&pair(4)).concat().iter().map(|j| j.due_ns).collect();
        assert_eq!(due, [0, 2_000_000, 1_000_000, 3_000_000]);
        assert_eq!(l.name(), "c=2@1000/s");
        assert_eq!(load(1, 64, 2).name(), "c=64x2");
    }

    #[test]
    fn a_paced_setup_is_timed_from_when_it_was_due() {
        // Closed loop: from the send.
        assert_eq!(setup_latency(None, 1_000, 4_000), 3_000);
        // Paced and sent late (the client waited on its previous setup):
        // the wait counts.
        assert_eq!(setup_latency(Some(500), 1_000, 4_000), 3_500);
        // Paced and on time (the send is a little after the due time).
        assert_eq!(setup_latency(Some(1_000), 1_010, 4_000), 3_000);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    fn pt(node: &str, sid: u8, kind: PointKind, at_ns: u64) -> Point {
        Point {
            at_ns,
            node: Arc::from(node),
            sid: [sid; 16],
            kind,
        }
    }

    #[test]
    fn kernel_time_pairs_starts_with_dones_and_clips_to_the_window() {
        use PointKind::*;
        let pts = vec![
            pt("tb1", 1, VlinkUpStart, 100),
            pt("tb1", 1, VlinkUpDone, 150),
            pt("tb4", 1, VlinkUpStart, 120),
            pt("tb4", 1, VlinkUpDone, 140),
            pt("tb2", 1, QosInstallStart, 90), // clipped to 100
            pt("tb2", 1, QosInstallDone, 110),
            pt("tb1", 2, VlinkDownStart, 190),
            pt("tb1", 2, VlinkDownDone, 260), // clipped to 200
            pt("tb1", 3, VlinkUpStart, 180),  // never done: not counted
            pt("tb1", 1, ReserveSent, 130),
            // Overlaps tb1's first call: only 150..160 is more time.
            pt("tb1", 4, VlinkDeleteStart, 110),
            pt("tb1", 4, VlinkDeleteDone, 160),
        ];
        assert_eq!(kernel_ns(&pts, 100, 200), 60 + 20 + 10 + 10);
        assert_eq!(kernel_ns(&pts, 300, 400), 0);
    }

    #[test]
    fn resent_counts_every_query_and_reserve_after_the_first_per_node_and_session() {
        use PointKind::*;
        let pts = vec![
            pt("tb1", 1, GistQuerySent, 100),
            pt("tb1", 1, GistQuerySent, 600), // retransmitted
            pt("tb2", 1, GistQuerySent, 120), // another node: its own first
            pt("tb1", 2, GistQuerySent, 130), // another session
            pt("tb1", 1, ReserveSent, 700),
            pt("tb2", 1, ReserveSent, 710),
            pt("tb2", 1, ReserveSent, 900),    // retransmitted
            pt("tb2", 1, ReserveSent, 1100),   // and again
            pt("tb1", 3, GistQuerySent, 2000), // outside the window
            pt("tb1", 3, GistQuerySent, 2500),
        ];
        assert_eq!(resent(&pts, 0, 1500), (1, 2));
        assert_eq!(resent(&pts, 0, 300), (0, 0));
    }

    #[test]
    fn a_run_becomes_rates_quantiles_and_shares() {
        let setup = PhaseOutcome {
            start_ns: 0,
            end_ns: 500_000_000,
            latencies_ns: vec![2_000_000; 100],
            failures: vec!["x".into()],
            late: 0,
        };
        let teardown = PhaseOutcome {
            start_ns: 1_000_000_000,
            end_ns: 1_250_000_000,
            latencies_ns: vec![1_000_000; 100],
            ..Default::default()
        };
        let pts = vec![
            pt("tb1", 1, PointKind::VlinkUpStart, 0),
            pt("tb1", 1, PointKind::VlinkUpDone, 250_000_000),
        ];
        let v = values(&load(100, 4, 1), &setup, &teardown, &pts);
        assert_eq!(v["setups_per_s"], 200.0);
        assert_eq!(v["teardowns_per_s"], 400.0);
        assert_eq!(v["setup_p99"], 2000.0);
        assert_eq!(v["setup_failures"], 1.0);
        assert_eq!(v["setup_kernel_share"], 0.5);
        assert_eq!(v["teardown_kernel_share"], 0.0);
        assert_eq!(v["concurrency"], 4.0);
    }

    #[test]
    fn merged_phases_span_every_client() {
        let a = PhaseOutcome {
            start_ns: 10,
            end_ns: 20,
            latencies_ns: vec![5],
            ..Default::default()
        };
        let b = PhaseOutcome {
            start_ns: 5,
            end_ns: 15,
            failures: vec!["f".into()],
            late: 2,
            ..Default::default()
        };
        let idle = PhaseOutcome {
            start_ns: u64::MAX,
            ..Default::default()
        };
        let m = PhaseOutcome::merge([a, b, idle]);
        assert_eq!((m.start_ns, m.end_ns, m.late), (5, 20, 2));
        assert_eq!((m.latencies_ns.len(), m.failures.len()), (1, 1));
    }
}
