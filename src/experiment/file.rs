//! Experiment files (TOML, in `experiments/`): what to measure on which
//! topology. Every error names `file:line:column`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::spanned::Spanned;
use crate::model::tunnel::Backend;
use crate::model::units::RATE_PATTERN;
use crate::topology::VnodeKind;

/// Kinds of experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Set a signed virtual link up and tear it down through the first
    /// router's API, `runs` times (paper Table I, Figs. 9-11).
    SetupTeardown,
    /// HMAC creation and verification of a signed RESERVE (Table II).
    Hmac,
    /// Setup with and without the Session Authorization object.
    AuthCompare,
    /// Setup time over generated chains of `chain` routers.
    ChainSweep,
    /// Setup time with each tunnel backend.
    Backends,
    /// A reserved flow against a best-effort flood.
    QosIsolation,
    /// A substrate link on a reserved flow's path fails: outage, repair
    /// and the old branch's release, with static routes and with OSPF.
    FaultRecovery,
    /// `links` virtual links set up, then torn down, by each number of
    /// concurrent API clients in `concurrency` (setups per second).
    Throughput,
}

/// A vlsp experiment file: what to measure on which topology
/// (`vlsp run FILE`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "vlsp experiment file")]
struct File {
    experiment: Spanned<Def>,
    /// Faults applied during each run's traffic, at their time (kind
    /// fault-recovery).
    #[serde(default)]
    fault: Vec<Spanned<FaultDef>>,
}

/// `[[fault]]`: `at_ms = 2000, link = "tb2-tb3", action = "down"` (or
/// `node = "tb3", action = "stop"`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FaultDef {
    /// When, in milliseconds after the start of a run's traffic (kind
    /// fault-recovery; the first fault is the one measured from).
    at_ms: u64,
    /// A substrate link, `A-B` (either order): with action down or up.
    #[schemars(example = &"tb2-tb3")]
    link: Option<String>,
    /// A router: with action stop or start.
    node: Option<String>,
    /// down / up (a link), stop / start (a router).
    #[schemars(pattern(r"^(down|up|stop|start)$"))]
    action: Spanned<String>,
}

/// A fault of the schedule: what, and when after the run's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledFault {
    pub at_ms: u64,
    pub fault: crate::topology::faults::Fault,
}

/// `[experiment]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Def {
    /// Names the results folder (results/NAME) unless `output` is given.
    #[schemars(example = &"paper-table1")]
    name: String,
    /// Free text, written to meta.json.
    #[serde(default)]
    description: String,
    /// What to measure.
    kind: Kind,
    /// Topology file, relative to the experiment file (needed by every
    /// kind but hmac and chain-sweep).
    #[schemars(example = &"../topologies/paper-4node.toml")]
    topology: Option<Spanned<String>>,
    /// Measured runs (at least 1).
    #[serde(default = "hundred")]
    #[schemars(range(min = 1))]
    runs: usize,
    /// Runs before the measured ones, not recorded (in every session).
    #[serde(default = "five")]
    warmup: usize,
    /// `setup-teardown`: split the runs over this many sessions, each on a
    /// freshly brought-up topology (new node threads, sockets, kernel
    /// state). Runs of one session share its state, so only sessions are
    /// independent replicates: `vlsp compare` tests session medians when
    /// both folders have 3 or more. `chain-sweep`: run every length once
    /// per session, in rounds, so that a change of the machine's speed
    /// falls on short and long chains alike.
    #[serde(default = "one")]
    #[schemars(range(min = 1), example = &5)]
    sessions: usize,
    /// Reserved rate of the virtual link, in tc's units (bit = bits/s,
    /// bps = bytes/s).
    #[serde(default = "ten_mbit")]
    #[schemars(pattern(RATE_PATTERN), example = &"10mbit")]
    rate: Spanned<String>,
    /// Tunnel backend (default: the topology's).
    #[serde(default)]
    backend: Option<Backend>,
    /// Output folder, relative to the current directory.
    output: Option<String>,
    /// Chain lengths for `chain-sweep` (each at least 2).
    #[serde(default)]
    #[schemars(example = &[2, 4, 8])]
    chain: Vec<usize>,
    /// Extra high-count run for `hmac`.
    #[serde(default)]
    high_count: Option<usize>,
    /// `setup-teardown`, `chain-sweep`: after each measured run, time the
    /// signaling code of a 20-router chain in memory (~5 ms, no kernel)
    /// and record it as `speed_probe_us`: the machine's speed at the
    /// time, to read the run against (each vCPU of this machine kind
    /// switches between two speeds 1.6-2x apart within a second).
    #[serde(default)]
    speed_probe: bool,
    /// Install reservations in the kernel (default true); false measures
    /// admission control alone.
    #[serde(default = "yes")]
    qos: bool,
    /// Override the capacity of every substrate link.
    #[schemars(pattern(RATE_PATTERN), example = &"100mbit")]
    capacity: Option<Spanned<String>>,
    /// `qos-isolation`, `fault-recovery`: best-effort flood rate (default
    /// 4x the capacity).
    #[schemars(pattern(RATE_PATTERN))]
    flood: Option<Spanned<String>>,
    /// `qos-isolation`: seconds of traffic per variant; `fault-recovery`:
    /// per run (2 to 600).
    #[serde(default = "ten")]
    traffic_seconds: u64,
    /// `fault-recovery`: seconds of traffic per run with OSPF (default
    /// `traffic_seconds`): OSPF's repair takes seconds, and a run that
    /// ends before it cuts the outage and the share after it short.
    ospf_traffic_seconds: Option<u64>,
    /// Run every virtual node as this kind ("netns" or "qemu").
    vnodes: Option<VnodeKind>,
    /// Run each router's node as a `vlsp node` process (default: threads).
    #[serde(default)]
    process_per_node: bool,
    /// `throughput`: virtual links set up (then torn down) per run; the
    /// topology's first two virtual nodes need this many interfaces each.
    #[serde(default = "links")]
    #[schemars(range(min = 1))]
    links: usize,
    /// `throughput`: numbers of concurrent API clients, one variant each.
    #[serde(default)]
    #[schemars(example = &[1, 4, 16, 64])]
    concurrency: Vec<usize>,
    /// `throughput`: also run the largest concurrency with its clients
    /// spread over both virtual nodes' routers (two initiators at once).
    #[serde(default)]
    many_initiators: bool,
    /// `throughput`: also run the largest concurrency paced at this many
    /// setups per second in all (open loop), for latency at a given load.
    #[serde(default)]
    offered_rate: Option<u32>,
}

/// The JSON Schema of experiment files (draft 7, which Taplo reads).
pub fn schema() -> serde_json::Value {
    let g = schemars::generate::SchemaSettings::draft07().into_generator();
    serde_json::to_value(g.into_root_schema_for::<File>()).expect("a schema serializes")
}

fn yes() -> bool {
    true
}
fn ten() -> u64 {
    10
}
fn one() -> usize {
    1
}
fn hundred() -> usize {
    100
}
fn five() -> usize {
    5
}
fn links() -> usize {
    256
}
fn ten_mbit() -> Spanned<String> {
    Spanned::new(0..0, "10mbit".into())
}

/// A validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub file: PathBuf,
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub topology: Option<PathBuf>,
    pub runs: usize,
    pub warmup: usize,
    /// Sessions the runs are split over (fresh topology each).
    pub sessions: usize,
    pub rate_bps: u64,
    pub backend: Option<Backend>,
    pub output: PathBuf,
    pub chain: Vec<usize>,
    pub high_count: Option<usize>,
    /// Time the machine's speed after each run (`probe`): the runs of a
    /// shared VM are read against it.
    pub speed_probe: bool,
    pub qos: bool,
    pub capacity_bps: Option<u64>,
    pub flood_bps: Option<u64>,
    pub traffic_seconds: u64,
    /// `fault-recovery` with OSPF: its own traffic period.
    pub ospf_traffic_seconds: Option<u64>,
    pub vnodes: Option<VnodeKind>,
    /// Each router's node as a `vlsp node` process (`process_per_node`,
    /// or `vlsp run --process-per-node`).
    pub process_per_node: bool,
    /// Capture every substrate interface (`vlsp run --pcap`).
    pub pcap: bool,
    /// `[[fault]]` schedule, by time.
    pub faults: Vec<ScheduledFault>,
    /// `throughput`: links per run, client counts, two initiators, pacing.
    pub links: usize,
    pub concurrency: Vec<usize>,
    pub many_initiators: bool,
    pub offered_rate: Option<u32>,
}

/// The text of an experiment file, to turn byte spans into `file:line:col`.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn at(&self, span: Range<usize>, msg: impl Into<String>) -> anyhow::Error {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.len(), |i| before.len() - i - 1)
            + 1;
        anyhow!("{}:{line}:{col}: {}", self.path.display(), msg.into())
    }

    fn rate(&self, r: &Spanned<String>) -> Result<u64> {
        crate::model::units::parse_rate(r.get_ref()).map_err(|m| self.at(r.span(), m))
    }

    fn opt_rate(&self, r: &Option<Spanned<String>>) -> Result<Option<u64>> {
        r.as_ref().map(|r| self.rate(r)).transpose()
    }

    /// The topology file, resolved against the experiment file's folder.
    fn topology(&self, t: &Option<Spanned<String>>) -> Result<Option<PathBuf>> {
        let Some(t) = t else { return Ok(None) };
        let p = self
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join(t.get_ref());
        if !p.exists() {
            return Err(self.at(
                t.span(),
                format!(
                    "topology file {} not found (paths are relative to the experiment file)",
                    p.display()
                ),
            ));
        }
        Ok(Some(p))
    }

    /// The `[[fault]]` schedule, sorted by time.
    fn faults(&self, defs: &[Spanned<FaultDef>]) -> Result<Vec<ScheduledFault>> {
        use crate::topology::faults::Fault;
        let mut out = vec![];
        for d in defs {
            let (span, d) = (d.span(), d.get_ref());
            let act = d.action.get_ref().as_str();
            let fault = match (&d.link, &d.node, act) {
                (Some(l), None, "down") => Fault::LinkDown { link: l.clone() },
                (Some(l), None, "up") => Fault::LinkUp { link: l.clone() },
                (None, Some(n), "stop") => Fault::NodeStop { node: n.clone() },
                (None, Some(n), "start") => Fault::NodeStart { node: n.clone() },
                (Some(_), Some(_), _) | (None, None, _) => {
                    return Err(self.at(
                        span,
                        "a [[fault]] names one `link = \"A-B\"` or one `node = \"R\"`",
                    ));
                }
                _ => {
                    return Err(self.at(
                        d.action.span(),
                        format!("action {act:?}: a link takes \"down\" or \"up\", a node \"stop\" or \"start\""),
                    ));
                }
            };
            out.push(ScheduledFault {
                at_ms: d.at_ms,
                fault,
            });
        }
        out.sort_by_key(|f| f.at_ms);
        Ok(out)
    }

    /// The checks that need more than one field; errors point at the table.
    fn validate(
        &self,
        d: &Def,
        topology: bool,
        faults: &[ScheduledFault],
        span: Range<usize>,
    ) -> Result<()> {
        if !topology && !matches!(d.kind, Kind::Hmac | Kind::ChainSweep) {
            return Err(self.at(span, "this kind of experiment needs `topology = \"...\"`"));
        }
        if d.kind == Kind::ChainSweep && (d.chain.is_empty() || d.chain.iter().any(|n| *n < 2)) {
            return Err(self.at(
                span,
                "chain-sweep needs `chain = [2, 4, ...]` with lengths of at least 2",
            ));
        }
        if d.runs == 0 {
            return Err(self.at(span, "runs must be at least 1"));
        }
        if d.sessions == 0 || d.sessions > d.runs {
            return Err(self.at(
                span,
                "sessions must be 1 to `runs` (the runs are split over them)",
            ));
        }
        if d.sessions > 1 && !matches!(d.kind, Kind::SetupTeardown | Kind::ChainSweep) {
            return Err(self.at(
                span,
                "sessions > 1 is only for kinds setup-teardown and chain-sweep so far; remove \
                 `sessions`",
            ));
        }
        if d.speed_probe && !matches!(d.kind, Kind::SetupTeardown | Kind::ChainSweep) {
            return Err(self.at(
                span,
                "speed_probe is taken after each run of kinds setup-teardown and chain-sweep only; \
                 remove `speed_probe`",
            ));
        }
        if !faults.is_empty() && d.kind != Kind::FaultRecovery {
            return Err(self.at(
                span,
                "[[fault]] is applied during a run's traffic: only kind fault-recovery takes it; remove the [[fault]] tables",
            ));
        }
        if d.kind == Kind::Throughput
            && (d.links == 0 || d.concurrency.is_empty() || d.concurrency.contains(&0))
        {
            return Err(self.at(
                span,
                "throughput needs `links = N` (at least 1) and `concurrency = [1, 4, ...]` (each at least 1)",
            ));
        }
        Ok(())
    }
}

impl Experiment {
    /// Reads an experiment file; errors name `file:line:column`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let src = Source { path, text: &text };
        let f: File = toml::from_str(&text)
            .map_err(|e| src.at(e.span().unwrap_or(0..0), e.message().trim()))?;
        let span = f.experiment.span();
        let faults = src.faults(&f.fault)?;
        let d = f.experiment.into_inner();
        let topology = src.topology(&d.topology)?;
        src.validate(&d, topology.is_some(), &faults, span.clone())?;
        let rate_bps = src.rate(&d.rate)?;
        let capacity_bps = src.opt_rate(&d.capacity)?;
        let flood_bps = src.opt_rate(&d.flood)?;
        if matches!(d.kind, Kind::QosIsolation | Kind::FaultRecovery)
            && !(2..=600).contains(&d.traffic_seconds)
        {
            return Err(src.at(span, "traffic_seconds must be 2..=600"));
        }
        if let Some(o) = d.ospf_traffic_seconds
            && (d.kind != Kind::FaultRecovery || !(2..=600).contains(&o))
        {
            return Err(src.at(
                span,
                format!("ospf_traffic_seconds = {o}: only for kind fault-recovery, 2..=600"),
            ));
        }
        Ok(Self {
            file: path.to_path_buf(),
            output: PathBuf::from(
                d.output
                    .clone()
                    .unwrap_or_else(|| format!("results/{}", d.name)),
            ),
            name: d.name,
            description: d.description,
            kind: d.kind,
            topology,
            runs: d.runs,
            warmup: d.warmup,
            sessions: d.sessions,
            rate_bps,
            backend: d.backend,
            chain: d.chain,
            high_count: d.high_count,
            speed_probe: d.speed_probe,
            qos: d.qos,
            capacity_bps,
            flood_bps,
            traffic_seconds: d.traffic_seconds,
            ospf_traffic_seconds: d.ospf_traffic_seconds,
            vnodes: d.vnodes,
            process_per_node: d.process_per_node,
            pcap: false,
            faults,
            links: d.links,
            concurrency: d.concurrency,
            many_initiators: d.many_initiators,
            offered_rate: d.offered_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_experiment_files_name_the_place() {
        let dir = crate::experiment::scratch::Scratch::new("expf");
        let p = dir.join("e.toml");
        std::fs::write(
            &p,
            "[experiment]\nname = \"x\"\nkind = \"setup-teardown\"\ntopology = \"nope.toml\"\n",
        )
        .unwrap();
        let m = format!("{:#}", Experiment::load(&p).unwrap_err());
        assert!(m.contains("e.toml:4:12") && m.contains("not found"), "{m}");
        std::fs::write(&p, "[experiment]\nname = \"x\"\nkind = \"sideways\"\n").unwrap();
        let m = format!("{:#}", Experiment::load(&p).unwrap_err());
        assert!(m.contains("e.toml:3:8") && m.contains("sideways"), "{m}");
        std::fs::write(
            &p,
            "[experiment]\nname = \"x\"\nkind = \"hmac\"\nrate = \"fast\"\n",
        )
        .unwrap();
        let m = format!("{:#}", Experiment::load(&p).unwrap_err());
        assert!(m.contains("e.toml:4:8"), "{m}");
    }

    /// The checks across fields refuse the file and say what to write.
    #[test]
    fn kind_specific_checks() {
        let dir = crate::experiment::scratch::Scratch::new("expk");
        let p = dir.join("e.toml");
        let load = |body: &str| {
            std::fs::write(&p, format!("[experiment]\nname = \"x\"\n{body}")).unwrap();
            Experiment::load(&p).map_err(|e| format!("{e:#}"))
        };
        for (body, want) in [
            ("kind = \"backends\"\n", "needs `topology"),
            ("kind = \"chain-sweep\"\nchain = [1, 4]\n", "at least 2"),
            ("kind = \"hmac\"\nruns = 0\n", "runs must be at least 1"),
            (
                "kind = \"hmac\"\nruns = 4\nsessions = 5\n",
                "sessions must be 1 to",
            ),
            (
                "kind = \"hmac\"\nsessions = 5\n",
                "only for kinds setup-teardown and chain-sweep",
            ),
            (
                "kind = \"hmac\"\nspeed_probe = true\n",
                "setup-teardown and chain-sweep only; remove `speed_probe`",
            ),
        ] {
            let m = load(body).unwrap_err();
            assert!(m.contains("e.toml:") && m.contains(want), "{body}: {m}");
        }
        let e = load("kind = \"chain-sweep\"\nchain = [2, 4]\nruns = 9\nsessions = 3\n").unwrap();
        assert_eq!(e.sessions, 3, "a sweep runs its lengths in rounds");
        assert!(!e.speed_probe, "no probe unless asked for");
        let e = load("kind = \"chain-sweep\"\nchain = [2, 4]\nspeed_probe = true\n").unwrap();
        assert!(e.speed_probe);
        let e = load("kind = \"chain-sweep\"\nchain = [2, 4]\nrate = \"5mbit\"\n").unwrap();
        assert_eq!(
            (e.rate_bps, e.runs, e.warmup, e.sessions),
            (5_000_000, 100, 5, 1)
        );
        assert_eq!(e.output, PathBuf::from("results/x"));
    }

    #[test]
    fn fault_schedules_are_read_in_time_order() {
        use crate::topology::faults::Fault;
        let dir = crate::experiment::scratch::Scratch::new("expfault");
        let p = dir.join("e.toml");
        let load = |body: &str| {
            std::fs::write(
                &p,
                format!(
                    "[experiment]\nname = \"x\"\nkind = \"fault-recovery\"\ntopology = \"{}/topologies/ring-6node.toml\"\n{body}",
                    env!("CARGO_MANIFEST_DIR")
                ),
            )
            .unwrap();
            Experiment::load(&p).map_err(|e| format!("{e:#}"))
        };
        let e = load(
            "[[fault]]\nat_ms = 5000\nlink = \"tb2-tb3\"\naction = \"up\"\n[[fault]]\nat_ms = 2000\nlink = \"tb2-tb3\"\naction = \"down\"\n[[fault]]\nat_ms = 3000\nnode = \"tb3\"\naction = \"stop\"\n",
        )
        .unwrap();
        assert_eq!(
            e.faults
                .iter()
                .map(|f| (f.at_ms, f.fault.to_string()))
                .collect::<Vec<_>>(),
            [
                (2000, "link-down tb2-tb3".to_string()),
                (3000, "node-stop tb3".into()),
                (5000, "link-up tb2-tb3".into())
            ]
        );
        assert_eq!(
            e.faults[0].fault,
            Fault::LinkDown {
                link: "tb2-tb3".into()
            }
        );
        let m = load("[[fault]]\nat_ms = 1\nlink = \"a-b\"\naction = \"stop\"\n").unwrap_err();
        assert!(
            m.contains("e.toml:8:10") && m.contains("\"down\" or \"up\""),
            "{m}"
        );
        let m = load("[[fault]]\nat_ms = 1\naction = \"down\"\n").unwrap_err();
        assert!(m.contains("names one"), "{m}");
        std::fs::write(
            &p,
            "[experiment]\nname = \"x\"\nkind = \"hmac\"\n[[fault]]\nat_ms = 1\nlink = \"a-b\"\naction = \"down\"\n",
        )
        .unwrap();
        let m = format!("{:#}", Experiment::load(&p).unwrap_err());
        assert!(m.contains("only kind fault-recovery"), "{m}");
    }
}
