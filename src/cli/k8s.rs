//! `vlsp k8s`: a topology on a Kubernetes cluster with meshnet-cni.
//! `render` writes the manifests; `init` is what each pod's init container
//! runs (it waits for the pod's meshnet interfaces, then routes, shaping
//! and bridges).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::out;
use crate::testbed::k8s::{self, InitPlan, RenderOptions};
use crate::topology::Topology;

#[derive(Subcommand)]
pub(super) enum K8sCmd {
    /// Write Kubernetes manifests for a topology: a Namespace, a Secret
    /// per provider, per router a ConfigMap, a meshnet Topology and a Pod,
    /// per virtual node a Topology and a Pod; DIR/all.yaml holds them all
    /// for `kubectl apply -f`.
    Render(RenderArgs),
    /// Inside a pod (init container): wait for the interfaces of the pod's
    /// init plan, then forwarding, link shaping, routes and bridges.
    Init(InitArgs),
}

#[derive(Args)]
pub(super) struct RenderArgs {
    /// Topology file.
    topology: PathBuf,
    /// Output folder (created; files of the same names are replaced).
    #[arg(short, long)]
    output: PathBuf,
    /// Container image with vlsp (built from the repository's Containerfile).
    #[arg(long, default_value = "vlsp:latest")]
    image: String,
    /// Namespace of every object [default: vlsp-<topology name>].
    #[arg(long)]
    namespace: Option<String>,
    /// First meshnet link uid; meshnet's inter-host VNI is 5000 + uid, so
    /// topologies sharing a cluster need disjoint uid ranges.
    #[arg(long, default_value_t = 1)]
    uid_base: u32,
    /// VLSP_LOG of the nodes.
    #[arg(long, default_value = "info")]
    log: String,
}

#[derive(Args)]
pub(super) struct InitArgs {
    /// The pod's init plan (ConfigMap key init.toml).
    #[arg(long)]
    plan: PathBuf,
    /// How long to wait for the interfaces.
    #[arg(long, default_value = "600", value_name = "SECONDS")]
    timeout: u64,
}

pub(super) fn k8s(cmd: K8sCmd) -> Result<()> {
    match cmd {
        K8sCmd::Render(a) => render(a),
        K8sCmd::Init(a) => init(a),
    }
}

fn render(a: RenderArgs) -> Result<()> {
    let topo = Topology::load(&a.topology)?;
    let opts = RenderOptions {
        image: a.image,
        namespace: a.namespace,
        uid_base: a.uid_base,
        log: a.log,
    };
    let r = k8s::render(&topo, &opts)
        .with_context(|| format!("{}: cannot be rendered", a.topology.display()))?;
    let files = k8s::manifest::write_dir(&r, &a.output)?;
    out!(
        "{}: {} routers, {} virtual nodes, {} files in {} (namespace {}); apply with `kubectl apply -f {}`",
        topo.name,
        r.routers.len(),
        r.vnodes.len(),
        files.len(),
        a.output.display(),
        r.namespace,
        a.output.join("all.yaml").display()
    );
    Ok(())
}

fn init(a: InitArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.plan)
        .with_context(|| format!("cannot read init plan {}", a.plan.display()))?;
    let plan = InitPlan::parse(&a.plan.display().to_string(), &text)?;
    plan.run(Duration::from_secs(a.timeout))?;
    out!(
        "pod {}: {} interfaces present, {} routes, {} bridges, {} links shaped",
        plan.pod,
        plan.wait.len(),
        plan.route.len(),
        plan.bridge.len(),
        plan.shape.len()
    );
    Ok(())
}
