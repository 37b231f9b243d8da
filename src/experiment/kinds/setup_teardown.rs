//! `setup-teardown` (Table I, Figs. 9–11), and the measured run every other
//! testbed kind repeats: a virtual link set up and torn down through the
//! QNI's API, the periods [A]..[H] derived from the measurement points of
//! every node, warm-up runs first, a progress bar, and optionally the same
//! periods read off captured packets (`--pcap`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use crate::experiment::file::Experiment;
use crate::experiment::meta::GuestInfo;
use crate::experiment::periods::{RunKind, RunPeriods, derive};
use crate::experiment::rows::{RSS_KEY, Row, SESSION_KEY, put_periods};
use crate::experiment::{probe, progress};
use crate::kernel::capture;
use crate::model::measure::{Point, PointKind, Recorder, now_ns};
use crate::node::api::{Client, LinkInfo, Reply, Request};
use crate::testbed::{Options, Testbed};
use crate::topology::Topology;

/// How many runs of one variant, after how many warm-up runs, at what rate.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub runs: usize,
    pub warmup: usize,
    pub rate_bps: u64,
    /// Time the machine's speed after each measured run, to read a run
    /// against the signaling vCPU's state (`probe`).
    pub speed_probe: bool,
}

impl Plan {
    pub fn of(e: &Experiment) -> Self {
        Self {
            runs: e.runs,
            warmup: e.warmup,
            rate_bps: e.rate_bps,
            speed_probe: e.speed_probe,
        }
    }
}

/// The kind itself: one authenticated variant, its runs split over
/// `e.sessions` sessions (a fresh topology each; rows tagged with their
/// session, runs numbered on across sessions); returns the first
/// session's QEMU guests.
pub fn run(
    e: &Experiment,
    topo: Topology,
    base: &Options,
    rows: &mut Vec<Row>,
) -> Result<Option<GuestInfo>> {
    let plan = Plan::of(e);
    let mut guests = None;
    for (s, runs) in session_runs(plan.runs, e.sessions).into_iter().enumerate() {
        if e.sessions > 1 {
            eprintln!(
                "session {}/{}: {runs} runs on a fresh topology",
                s + 1,
                e.sessions
            );
        }
        let first = rows.len();
        let g = measure(
            topo.clone(),
            base,
            Plan { runs, ..plan },
            true,
            "auth",
            rows,
        )?;
        guests = guests.or(g);
        for (i, r) in rows[first..].iter_mut().enumerate() {
            r.run = first + i + 1;
            r.values.insert(SESSION_KEY.into(), (s + 1) as f64);
        }
    }
    Ok(guests)
}

/// `runs` split over `sessions` as evenly as can be, the first sessions
/// taking one more when it does not divide.
pub fn session_runs(runs: usize, sessions: usize) -> Vec<usize> {
    let s = sessions.max(1);
    (0..s)
        .map(|i| runs / s + usize::from(i < runs % s))
        .collect()
}

/// The virtual link a setup request created, or the node's refusal.
pub fn link_up(reply: Reply) -> Result<LinkInfo> {
    match reply {
        Reply::LinkUp { vlink } => Ok(vlink),
        Reply::Error { reason, message } => bail!("setup failed ({reason}): {message}"),
        r => bail!("unexpected reply {r:?}"),
    }
}

/// Ok when a teardown request removed the link, else the node's refusal.
pub fn link_down(reply: Reply) -> Result<()> {
    match reply {
        Reply::LinkDown { .. } => Ok(()),
        Reply::Error { reason, message } => bail!("teardown failed ({reason}): {message}"),
        r => bail!("unexpected reply {r:?}"),
    }
}

/// The virtual node hosted on `host` ("" when there is none).
fn vnode_on(topo: &Topology, host: &str) -> String {
    topo.vnodes
        .iter()
        .find(|v| v.host == host)
        .map(|v| v.name.clone())
        .unwrap_or_default()
}

/// The points recorded since the last drain, the client's first (node
/// processes hand theirs over their API socket).
fn drain(client: &Recorder, tb: &Testbed) -> Result<Vec<Point>> {
    let mut pts = client.drain();
    pts.extend(tb.drain_points()?);
    Ok(pts)
}

/// Waits (up to about 400 ms) for the deferred tunnel-device deletions at
/// both ends: they are measured, and must not spill into the next run
/// through the kernel's RTNL lock.
fn wait_for_deletions(tb: &Testbed, nodes: [&str; 2]) -> Result<()> {
    for node in nodes {
        let mut n = tb.client(node)?;
        for _ in 0..400 {
            match n.call(&Request::Stats)? {
                Reply::Stats { stats } if stats.vlink_pending == 0 => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }
    Ok(())
}

/// Who signals: the QNI, the forwarding nodes in path order, the QNR.
struct Roles {
    qni: String,
    qnes: Vec<String>,
    qnr: String,
}

impl Roles {
    fn nsis(&self) -> Vec<String> {
        std::iter::once(self.qni.clone())
            .chain(self.qnes.iter().cloned())
            .chain(std::iter::once(self.qnr.clone()))
            .collect()
    }
}

/// Sends `req` from the external program's side, timestamped around the call.
fn timed_call(c: &mut Client, req: &Request) -> Result<(u64, Reply, u64)> {
    let t0 = now_ns();
    let reply = c.call(req)?;
    Ok((t0, reply, now_ns()))
}

/// What one run measured.
struct Measured {
    setup: RunPeriods,
    teardown: RunPeriods,
    sid: [u8; 16],
    /// Resident memory of each node process after the setup (KiB).
    rss_kib: Vec<(String, u64)>,
}

/// One setup + teardown through the QNI's API, measured.
fn one_run(tb: &Testbed, roles: &Roles, rate: u64, auth: bool) -> Result<Measured> {
    let Roles { qni, qnes, qnr } = roles;
    let mut c = tb.client(qni)?;
    tb.drain_points()?;
    let client = Recorder::new("client", 4);
    let setup = Request::Setup {
        from: vnode_on(&tb.topo, qni),
        to: vnode_on(&tb.topo, qnr),
        rate_bps: crate::model::units::Rate::from_bps(rate),
        bidirectional: false,
        backend: None,
        authenticate: auth,
        tunnel: None,
    };
    let (t0, reply, t1) = timed_call(&mut c, &setup)?;
    let vlink = link_up(reply)?;
    let sid = vlink
        .sid()
        .ok_or_else(|| anyhow!("bad session id {} in the reply", vlink.session))?;
    client.mark_at(t0, sid, PointKind::ClientRequestSent);
    client.mark_at(t1, sid, PointKind::ClientReplyReceived);
    // Memory of each node process with the link up (outside every period).
    let rss_kib = tb.node_rss_kib();
    let setup = derive(&drain(&client, tb)?, &sid, RunKind::Setup, qni, qnr, qnes);
    let teardown = Request::Teardown {
        vlink_id: vlink.vlink_id,
    };
    let (t2, reply, t3) = timed_call(&mut c, &teardown)?;
    link_down(reply)?;
    client.mark_at(t2, sid, PointKind::ClientRequestSent);
    client.mark_at(t3, sid, PointKind::ClientReplyReceived);
    wait_for_deletions(tb, [qni, qnr])?;
    let teardown = derive(
        &drain(&client, tb)?,
        &sid,
        RunKind::Teardown,
        qni,
        qnr,
        qnes,
    );
    Ok(Measured {
        setup,
        teardown,
        sid,
        rss_kib,
    })
}

fn guests(tb: &Testbed) -> Option<GuestInfo> {
    tb.accel.as_ref().map(|a| {
        (
            format!("{} ({})", a.name, a.why),
            tb.boot_times
                .iter()
                .map(|(n, d)| (n.clone(), d.as_secs_f64() * 1e3))
                .collect(),
        )
    })
}

/// Brings `topo` up, runs setup/teardown `plan.warmup` times unrecorded and
/// `plan.runs` times recorded as `variant` (appended to `rows`), and takes
/// the testbed down. Returns the QEMU guests, if any.
pub fn measure(
    topo: Topology,
    opts: &Options,
    plan: Plan,
    auth: bool,
    variant: &str,
    rows: &mut Vec<Row>,
) -> Result<Option<GuestInfo>> {
    let (qni, qnes, qnr) = topo.signaling_roles()?;
    let roles = Roles { qni, qnes, qnr };
    let tb = super::testbed_up(topo, opts)?;
    let guests = guests(&tb);
    for _ in 0..plan.warmup {
        one_run(&tb, &roles, plan.rate_bps, auth)?;
    }
    let nsis = roles.nsis();
    let capture = match &opts.pcap {
        Some(_) => Some(capture::Capture::start(&tb.topo.name, &nsis)?),
        None => None,
    };
    let first_row = rows.len();
    let mut sids = vec![];
    let pb = progress::bar(plan.runs as u64, variant);
    for run in 1..=plan.runs {
        if progress::stop_requested() {
            pb.abandon();
            bail!("interrupted after {} runs", run - 1);
        }
        let m = one_run(&tb, &roles, plan.rate_bps, auth)
            .with_context(|| format!("{variant} run {run}"))?;
        sids.push(m.sid);
        let mut values = BTreeMap::new();
        put_periods(&mut values, "setup_", &m.setup);
        put_periods(&mut values, "teardown_", &m.teardown);
        for (node, kib) in m.rss_kib {
            values.insert(format!("{RSS_KEY}{node}"), kib as f64);
        }
        if plan.speed_probe {
            // Between runs, so it delays no measurement; the next run finds
            // the caches as the probe left them (off by default: a
            // paper-4node setup is short enough to notice).
            let p = probe::speed_probe_us()
                .with_context(|| format!("{variant} run {run}: the speed probe after it"))?;
            values.insert(probe::KEY.into(), p);
        }
        rows.push(Row {
            variant: variant.to_string(),
            run,
            values,
        });
        pb.inc(1);
    }
    pb.finish();
    if let (Some(cap), Some(dir)) = (capture, &opts.pcap) {
        let wire = Wire {
            tb: &tb,
            nsis: &nsis,
            variant,
            dir,
        };
        wire.add_periods(cap, &mut rows[first_row..], &sids)?;
    }
    tb.down()?;
    Ok(guests)
}

/// The capture of one variant's runs.
struct Wire<'a> {
    tb: &'a Testbed,
    nsis: &'a [String],
    variant: &'a str,
    dir: &'a Path,
}

impl Wire<'_> {
    /// Writes the pcap files and adds the same periods seen on the wire,
    /// beside the measurement points, as `setup_wire_<X>_<node>` values.
    fn add_periods(
        &self,
        cap: capture::Capture,
        rows: &mut [Row],
        sids: &[[u8; 16]],
    ) -> Result<()> {
        let (frames, off) = cap.stop()?;
        let substrate: HashSet<(String, String)> = self
            .tb
            .topo
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .map(|e| (e.node.clone(), e.ifname.clone()))
            .collect();
        let out = self.dir.join(self.variant);
        let files = capture::write_pcaps(&out, &frames, off, Some(&substrate))?;
        let ev = capture::gist_events(&frames);
        for (row, sid) in rows.iter_mut().zip(sids) {
            for n in self.nsis.iter().skip(1) {
                let w = capture::wire_periods(&ev, n, sid);
                let mut set = |k: &str, v: Option<u64>| {
                    if let Some(v) = v {
                        row.values
                            .insert(format!("setup_wire_{k}_{n}"), v as f64 / 1e3);
                    }
                };
                set("D", w.d_ns);
                set("E", w.e_ns);
                set("F", w.f_ns);
                set("G", w.g_ns);
            }
        }
        eprintln!(
            "{}: {} frames captured, {} pcap files in {}",
            self.variant,
            frames.len(),
            files.len(),
            out.display()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_evenly_over_sessions() {
        assert_eq!(session_runs(100, 5), [20; 5]);
        assert_eq!(session_runs(7, 3), [3, 2, 2]);
        assert_eq!(session_runs(4, 1), [4]);
        assert_eq!(session_runs(4, 0), [4]);
    }
}
