//! `vlsp fault`: fail or repair a link or a router of a running topology.
//! The request goes to the topology's `vlsp up` over its control socket
//! ([`crate::testbed::control`]), which owns the nodes.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::out;
use crate::model::paths::{RunDir, TopoName};
use crate::testbed::control;
use crate::topology::faults::Fault;

#[derive(Args)]
pub(super) struct FaultArgs {
    /// Name of the running topology.
    #[arg(long)]
    topology: String,
    #[command(subcommand)]
    what: FaultCmd,
}

#[derive(Subcommand)]
enum FaultCmd {
    /// Take both ends of a substrate link down (`A-B`, by its routers).
    LinkDown { link: String },
    /// Bring a failed link back.
    LinkUp { link: String },
    /// Silence a router: its NSIS node halts, its links go down, it stops
    /// forwarding.
    NodeStop { node: String },
    /// Start a stopped router again (its NSIS node starts with no state).
    NodeStart { node: String },
}

pub(super) fn fault(a: FaultArgs) -> Result<()> {
    let run = RunDir::new(&TopoName::new(&a.topology)?);
    let f = match a.what {
        FaultCmd::LinkDown { link } => Fault::LinkDown { link },
        FaultCmd::LinkUp { link } => Fault::LinkUp { link },
        FaultCmd::NodeStop { node } => Fault::NodeStop { node },
        FaultCmd::NodeStart { node } => Fault::NodeStart { node },
    };
    let st = control::send(&run, &f)?;
    out!(
        "{}: {f} applied; links down [{}], routers stopped [{}]",
        a.topology,
        st.links_down.iter().cloned().collect::<Vec<_>>().join(", "),
        st.nodes_stopped
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
