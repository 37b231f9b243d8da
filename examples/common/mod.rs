//! What the diagnostic examples share.

use std::time::{Duration, Instant};

use vlsp::model::measure::Point;
use vlsp::model::units::Rate;
use vlsp::node::api::{Client, Reply, Request};
use vlsp::testbed::Testbed;

/// One signed 1 Mbit/s setup of `from` → `to` through `c` and its
/// teardown: how long the setup call took, and the points every node
/// recorded during the setup alone.
pub fn setup_points(
    tb: &Testbed,
    c: &mut Client,
    from: &str,
    to: &str,
) -> anyhow::Result<(Duration, Vec<Point>)> {
    tb.drain_points()?;
    let s = Instant::now();
    let r = c.call(&Request::signed_setup(from, to, Rate::from_bps(1_000_000)))?;
    let took = s.elapsed();
    let Reply::LinkUp { vlink } = r else {
        anyhow::bail!("setup {from} -> {to} failed: {r:?}");
    };
    let pts = tb.drain_points()?;
    match c.call(&Request::Teardown {
        vlink_id: vlink.vlink_id,
    })? {
        Reply::LinkDown { .. } => Ok((took, pts)),
        r => anyhow::bail!("teardown of {from} -> {to} failed: {r:?}"),
    }
}
