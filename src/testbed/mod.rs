//! A running testbed: the substrate of a topology plus one signaling node
//! (actor system on its own thread, inside its namespace) per NSIS router.
//! What `vlsp up` runs, what the experiments and the integration tests use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::kernel::substrate::{self, Timings};
use crate::model::measure::Recorder;
use crate::node::api::{Client, Reply, Request};
use crate::node::{NodeConfig, NodeHandle, spawn_node};
use crate::topology::Topology;

/// Where a running topology keeps a copy of its file, so that commands
/// given only the topology's name (`vlsp link ...`) know its nodes.
pub fn saved_topology(name: &str) -> PathBuf {
    Path::new(crate::model::paths::RUN_DIR)
        .join(name)
        .join("topology.toml")
}

/// Loads a topology given as a file path or as the name of a running one.
pub fn resolve(arg: &str) -> Result<Topology> {
    let p = Path::new(arg);
    if p.exists() {
        return Ok(Topology::load(p)?);
    }
    let saved = saved_topology(arg);
    if saved.exists() {
        let src = std::fs::read_to_string(&saved)?;
        return Ok(Topology::parse(&src, p)?);
    }
    bail!("{arg} is neither a topology file nor a running topology (see `vlsp status`)")
}

/// Knobs the experiments turn.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep this many measurement points per node in memory (0: none).
    pub points: usize,
    /// Override the tunnel backend of every node.
    pub backend: Option<crate::model::tunnel::Backend>,
    /// Override the refresh period.
    pub refresh: Option<Duration>,
    /// Admission control only: do not install reservations in the kernel.
    pub no_qos: bool,
    /// Experiments: capture every substrate interface into pcap files here.
    pub pcap: Option<PathBuf>,
}

/// A substrate with its nodes running.
pub struct Testbed {
    pub topo: Topology,
    pub nodes: Vec<NodeHandle>,
    pub recorders: Vec<Recorder>,
    pub up_timings: Timings,
    /// QEMU virtual nodes, running.
    pub guests: Vec<crate::kernel::qemu::Guest>,
    /// Their accelerator (when there are any).
    pub accel: Option<crate::kernel::qemu::Accel>,
    /// Per guest: QEMU start → readiness marker on the console.
    pub boot_times: Vec<(String, Duration)>,
}

impl Testbed {
    /// Brings `topo` up: namespaces, links, routes, then the NSIS nodes.
    /// On failure everything is removed again.
    pub fn up(topo: Topology, opts: &Options) -> Result<Self> {
        substrate::require_root()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let up_timings = rt.block_on(substrate::up(&topo))?;
        drop(rt);
        std::fs::write(
            saved_topology(&topo.name),
            std::fs::read(&topo.source).unwrap_or_default(),
        )
        .ok();
        let mut tb = Self {
            topo,
            nodes: vec![],
            recorders: vec![],
            up_timings,
            guests: vec![],
            accel: None,
            boot_times: vec![],
        };
        if let Err(e) = tb.start_guests() {
            let name = tb.topo.name.clone();
            tb.stop();
            let _ = substrate::down(&name);
            return Err(
                e.context("starting the QEMU virtual nodes failed; the testbed was removed")
            );
        }
        for n in tb.topo.nodes.clone() {
            if !n.nsis {
                continue;
            }
            let mut cfg = NodeConfig::from_topology(&tb.topo, &n.name)?;
            if let Some(b) = opts.backend {
                cfg.backend = b;
            }
            cfg.qos_enforce = !opts.no_qos;
            if let Some(r) = opts.refresh {
                cfg.refresh = r;
                cfg.lifetime = r * 3;
            }
            let rec = if opts.points > 0 {
                Recorder::new(&n.name, opts.points)
            } else {
                Recorder::disabled(&n.name)
            };
            match spawn_node(cfg, rec.clone()) {
                Ok(h) => {
                    tb.nodes.push(h);
                    tb.recorders.push(rec);
                }
                Err(e) => {
                    let name = tb.topo.name.clone();
                    tb.stop();
                    let _ = substrate::down(&name);
                    return Err(e.context(format!(
                        "starting node {} failed; the testbed was removed",
                        n.name
                    )));
                }
            }
        }
        Ok(tb)
    }

    /// A client of `node`'s API socket.
    pub fn client(&self, node: &str) -> Result<Client> {
        Ok(Client::connect(
            &crate::node::api::socket_path(&self.topo.name, node),
            Duration::from_secs(60),
        )?)
    }

    /// The node hosting virtual node `vnode`.
    pub fn host_of(&self, vnode: &str) -> Result<String> {
        self.topo
            .vnodes
            .iter()
            .find(|v| v.name == vnode)
            .map(|v| v.host.clone())
            .ok_or_else(|| anyhow!("no virtual node {vnode} in {}", self.topo.name))
    }

    /// Stops one node's actor system (its namespace stays): a crashed
    /// NSIS daemon, for failure tests.
    pub fn kill_node(&mut self, name: &str) -> Result<()> {
        let i = self
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| anyhow!("no running node {name}"))?;
        self.nodes.remove(i).stop();
        Ok(())
    }

    fn stop(&mut self) {
        for n in self.nodes.drain(..) {
            n.stop();
        }
        for mut g in self.guests.drain(..) {
            g.stop();
        }
    }

    /// Boots every QEMU virtual node (all at once), joins each tap to its
    /// bridge, and waits for every guest's readiness marker.
    fn start_guests(&mut self) -> Result<()> {
        let qemu: Vec<_> = self
            .topo
            .vnodes
            .iter()
            .filter_map(|v| v.qemu.clone().map(|q| (v.clone(), q)))
            .collect();
        if qemu.is_empty() {
            return Ok(());
        }
        let name = self.topo.name.clone();
        let run = Path::new(crate::model::paths::RUN_DIR).join(&name);
        let console = run.join("console");
        let kernels = qemu
            .iter()
            .map(|(_, q)| match &q.kernel {
                Some(k) => Ok(k.clone()),
                None => crate::kernel::qemu::default_kernel(),
            })
            .collect::<Result<Vec<_>>>()?;
        let accel = crate::kernel::qemu::accel(&kernels[0], Duration::from_secs(3))?;
        std::fs::write(run.join("accel"), format!("{} ({})", accel.name, accel.why)).ok();
        for ((v, q), kernel) in qemu.iter().zip(kernels) {
            let initrd = match &q.disk {
                Some(_) => None,
                None => Some(crate::kernel::qemu::initramfs(
                    &crate::kernel::qemu::cache_dir(),
                    &kernel,
                    Some(&crate::kernel::qemu::GuestNet {
                        name: v.name.clone(),
                        addr: v.addr,
                        prefix_len: v.prefix_len,
                    }),
                )?),
            };
            let g = crate::kernel::qemu::Guest::start(&crate::kernel::qemu::GuestSpec {
                name: v.name.clone(),
                kernel,
                initrd,
                disk: q.disk.clone(),
                memory_mb: q.memory_mb,
                cpus: q.cpus,
                accel: accel.name.clone(),
                tap: Some(v.host_ifname.clone()),
                mac: crate::kernel::qemu::mac_for(v.id),
                netns: Some(substrate::ns_path(&substrate::ns_name(&name, &v.host))),
                dir: console.clone(),
            })?;
            if let Some(pid) = g.pid() {
                substrate::journal_qemu(&name, pid)?;
            }
            self.guests.push(g);
        }
        // QEMU creates each tap in the host's namespace; join it to the bridge.
        for (v, _) in &qemu {
            let ns = substrate::ns_name(&name, &v.host);
            let t0 = std::time::Instant::now();
            loop {
                let ok = std::process::Command::new("ip")
                    .args([
                        "-n",
                        &ns,
                        "link",
                        "set",
                        &v.host_ifname,
                        "master",
                        &v.bridge,
                        "up",
                    ])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    let g = self.guests.iter().find(|g| g.name == v.name);
                    bail!(
                        "virtual node {}: QEMU did not create tap {} in {} within 10 s\n--- console ---\n{}",
                        v.name,
                        v.host_ifname,
                        v.host,
                        g.map(|g| g.console_tail(20)).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let deadline = if accel.name == "kvm" {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(120)
        };
        loop {
            let mut all = true;
            for g in &mut self.guests {
                all &= g.poll_ready(deadline)?;
            }
            if all {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for g in &self.guests {
            self.boot_times
                .push((g.name.clone(), g.ready_after.unwrap_or_default()));
        }
        self.accel = Some(accel);
        Ok(())
    }

    /// A running QEMU virtual node.
    pub fn guest(&self, vnode: &str) -> Option<&crate::kernel::qemu::Guest> {
        self.guests.iter().find(|g| g.name == vnode)
    }

    /// Stops the nodes and removes the substrate.
    pub fn down(mut self) -> Result<Timings> {
        self.stop();
        substrate::down(&self.topo.name)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.nodes.is_empty() || !self.guests.is_empty() {
            self.stop();
            let _ = substrate::down(&self.topo.name);
        }
    }
}

/// Sets up a virtual link through `from`'s host; returns its VLink ID.
pub fn link_setup(
    topo: &str,
    from: &str,
    to: &str,
    rate_bps: u64,
    authenticate: bool,
    bidirectional: bool,
) -> Result<crate::node::api::LinkInfo> {
    let t = resolve(topo)?;
    let host = t
        .vnodes
        .iter()
        .find(|v| v.name == from)
        .map(|v| v.host.clone())
        .ok_or_else(|| anyhow!("no virtual node {from} in {}", t.name))?;
    let mut c = Client::connect(
        &crate::node::api::socket_path(&t.name, &host),
        Duration::from_secs(60),
    )
    .with_context(|| format!("API of {host}"))?;
    match c.call(&Request::Setup {
        from: from.into(),
        to: to.into(),
        rate_bps: crate::model::units::Rate::from_bps(rate_bps),
        bidirectional,
        backend: None,
        authenticate,
    })? {
        Reply::LinkUp { vlink } => Ok(vlink),
        Reply::Error { reason, message } => bail!("setup refused ({reason}): {message}"),
        other => bail!("unexpected reply {other:?}"),
    }
}
