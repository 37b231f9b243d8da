//! How fast this machine runs the signaling code right now (issue 17).
//!
//! Each vCPU of this machine kind switches between two speeds 1.6-2x apart
//! within a second, for pure user-space code too (the host's doing: a busy
//! loop on the other vCPU does not cause it), so a sweep's slope says as
//! much about the signaling vCPU's state as about the nodes. The probe runs
//! the real node cores (codecs, HMACs, GIST and NSLP machines, measurement
//! points) of a short chain in memory, with no kernel, runtime or sockets,
//! and reports the median time a router takes per signed setup: a run
//! recorded beside it can be read against the machine's speed at the time.
//! [`CoreChain`] is also `examples/core_chain`'s harness: what a hop costs
//! the protocol's code alone.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::kernel::sockets::Incoming;
use crate::model::measure::Recorder;
use crate::model::units::Rate;
use crate::node::NodeConfig;
use crate::node::api::{Reply, Request};
use crate::node::core::{CoreAction, NodeCore, Transmit};
use crate::topology::{Topology, chain};

/// The value's name (`runs.csv` adds the unit: `speed_probe_us`): the
/// probe taken right after the run.
pub const KEY: &str = "speed_probe";

/// Routers of the probe's chain: enough for every role (initiator,
/// forwarding nodes, responder), few enough to stay in the caches, so the
/// probe reads the CPU's speed, not the chain's memory.
const ROUTERS: usize = 20;
/// Setups timed per probe (~5 ms in all on this machine kind).
const ROUNDS: usize = 15;

/// A chain of node cores in one thread, joined in memory: a datagram is
/// handed to the next core at once; tunnel ends and classes are done as
/// soon as asked for.
pub struct CoreChain {
    nodes: Vec<NodeCore>,
    /// The nodes' measurement points, drained after each round as the
    /// experiment runner does.
    recs: Vec<Recorder>,
    owner: HashMap<Ipv4Addr, usize>,
    queue: VecDeque<(usize, Incoming)>,
    replies: Vec<Reply>,
    /// Datagrams handed over so far.
    pub delivered: usize,
}

impl CoreChain {
    /// `n` routers of a generated chain (at least 2), VM1 on the first and
    /// VM2 on the last.
    pub fn new(n: usize) -> anyhow::Result<Self> {
        let src = chain("probe", n, 1)?;
        let topo = Topology::parse(&src, Path::new("probe.toml"))?;
        let mut owner = HashMap::new();
        let (mut nodes, mut recs) = (vec![], vec![]);
        for i in 0..n {
            let cfg = NodeConfig::from_topology(&topo, &format!("r{i}"))?;
            let rec = Recorder::new(&cfg.name, 64);
            recs.push(rec.clone());
            let core = NodeCore::new(cfg, rec, 11 + i as u64);
            for a in core.addrs() {
                owner.insert(*a, i);
            }
            nodes.push(core);
        }
        Ok(Self {
            nodes,
            recs,
            owner,
            queue: VecDeque::new(),
            replies: vec![],
            delivered: 0,
        })
    }

    /// Where a datagram from node `i` goes: D-mode to the address's owner,
    /// Q-mode (Router Alert) to the neighbour on the way, which intercepts
    /// it unless it is the destination.
    fn next_hop(&self, i: usize, t: &Transmit) -> Option<(usize, bool)> {
        let j = *self.owner.get(t.dst.ip())?;
        if !t.qmode || j == i + 1 || j + 1 == i {
            return Some((j, false));
        }
        let k = if j > i { i + 1 } else { i.checked_sub(1)? };
        Some((k, true))
    }

    /// Node `i`'s output, at once, as its actor sends it after a message.
    fn flush(&mut self, i: usize, now: Instant) {
        loop {
            let mut any = false;
            while let Some(t) = self.nodes[i].poll_transmit() {
                any = true;
                if let Some((j, intercepted)) = self.next_hop(i, &t) {
                    let src = self.nodes[i].config().local_addr_for(*t.dst.ip());
                    self.queue.push_back((j, t.arriving(src, intercepted)));
                }
            }
            while let Some(a) = self.nodes[i].poll_action() {
                any = true;
                match a {
                    CoreAction::TunnelUp { sid, .. } | CoreAction::TunnelDown { sid, .. } => {
                        self.nodes[i].tunnel_done(sid, None, now)
                    }
                    CoreAction::InstallClass { sid, .. } => {
                        self.nodes[i].class_done(sid, None, now)
                    }
                    CoreAction::RemoveClass { .. } | CoreAction::Event(_) => {}
                    CoreAction::Reply { reply, .. } => self.replies.push(reply),
                }
            }
            if !any {
                break;
            }
        }
    }

    /// An API request to the first router, carried out to its one reply.
    fn api(&mut self, req: Request) -> anyhow::Result<Reply> {
        let what = match &req {
            Request::Setup { .. } => "the setup",
            Request::Teardown { .. } => "the teardown",
            _ => "the request",
        };
        let now = Instant::now();
        self.nodes[0].handle_api(1, req, 0, now);
        self.flush(0, now);
        while let Some((j, inc)) = self.queue.pop_front() {
            self.delivered += 1;
            self.nodes[j].handle_datagram(inc, now);
            self.flush(j, now);
        }
        let mut r = std::mem::take(&mut self.replies);
        anyhow::ensure!(
            r.len() == 1,
            "in-memory chain: one API reply expected to {what}, got {r:?}"
        );
        Ok(r.remove(0))
    }

    /// One signed setup of VM1 → VM2 and its teardown: the time each took.
    pub fn round(&mut self) -> anyhow::Result<(Duration, Duration)> {
        let t = Instant::now();
        let setup = Request::signed_setup("VM1", "VM2", Rate::from_bps(10_000_000));
        let vlink = match self.api(setup)? {
            Reply::LinkUp { vlink } => vlink,
            r => anyhow::bail!("the in-memory setup failed: {r:?}"),
        };
        let up = t.elapsed();
        let t = Instant::now();
        match self.api(Request::Teardown {
            vlink_id: vlink.vlink_id,
        })? {
            Reply::LinkDown { .. } => {}
            r => anyhow::bail!("the in-memory teardown failed: {r:?}"),
        }
        let down = t.elapsed();
        for rec in &self.recs {
            rec.drain();
        }
        Ok((up, down))
    }
}

/// The probe: the median time per router of [`ROUNDS`] signed setups on a
/// chain of [`ROUTERS`] node cores in memory, in µs, after one round that
/// warms the caches up; on the CPUs of the nodes' signaling threads once
/// a testbed of this process has placed them (the two vCPUs need not run
/// at the same speed), else where the caller runs (with no placement, or
/// with each node a process of its own).
pub fn speed_probe_us() -> anyhow::Result<f64> {
    let Some(cpus) = crate::node::runtime::signaling_cpus() else {
        return probe_here();
    };
    std::thread::Builder::new()
        .name("speed-probe".into())
        .spawn(move || {
            let mut set = nix::sched::CpuSet::new();
            for &c in &cpus {
                set.set(c)
                    .map_err(|e| anyhow::anyhow!("speed probe: CPU {c}: {e}"))?;
            }
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| {
                anyhow::anyhow!("speed probe: cannot run on the signaling CPUs {cpus:?}: {e}")
            })?;
            probe_here()
        })
        .map_err(|e| anyhow::anyhow!("speed probe: cannot start its thread: {e}"))?
        .join()
        .map_err(|_| anyhow::anyhow!("the speed probe's thread panicked"))?
}

fn probe_here() -> anyhow::Result<f64> {
    let mut c = CoreChain::new(ROUTERS)?;
    c.round()?;
    let mut per_router = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let (up, _) = c.round()?;
        per_router.push(up.as_secs_f64() * 1e6 / ROUTERS as f64);
    }
    Ok(crate::experiment::stats::Summary::from_samples(KEY, "us", &per_router, None).median)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory chain carries a signed setup end to end and back, and
    /// its teardown, with the datagrams of the paper's exchange: per
    /// router a Query, Response, Confirm, Data and the RESPONSE, then the
    /// tearing RESERVE and its RESPONSE.
    #[test]
    fn the_in_memory_chain_sets_a_signed_link_up_and_tears_it_down() {
        let mut c = CoreChain::new(5).unwrap();
        for _ in 0..3 {
            let before = c.delivered;
            c.round().unwrap();
            // 4 hops: Query, Response, Confirm, Data down, RESPONSE up;
            // tear: RESERVE down, RESPONSE up.
            assert_eq!(c.delivered - before, 4 * 5 + 4 * 2);
        }
        for n in &c.nodes {
            assert_eq!(n.nslp().sessions().count(), 0, "{}", n.config().name);
            assert!(n.nslp().ledger().is_empty());
        }
    }

    #[test]
    fn the_probe_reads_a_time_per_router() {
        let p = speed_probe_us().unwrap();
        assert!(p.is_finite() && p > 0.0 && p < 10_000.0, "{p}");
    }
}
