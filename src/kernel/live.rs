//! Changes to a running substrate (`vlsp apply`): remove and rename
//! interfaces, replace routes without a gap, reshape a link. Creation
//! reuses [`crate::kernel::links`]; every namespace involved was journaled
//! before it was created, so whatever these leave goes with `vlsp down`.

use std::fs::File;

use anyhow::{Context, Result};
use rtnetlink::{Handle, LinkUnspec};

use crate::kernel::links::link_index;
use crate::kernel::netns::with_netns;

/// Deletes interface `name` (a veth goes with its peer); already gone is
/// fine.
pub async fn delete_link(h: &Handle, node: &str, name: &str) -> Result<()> {
    let Ok(i) = link_index(h, name).await else {
        return Ok(());
    };
    h.link()
        .del(i)
        .execute()
        .await
        .with_context(|| format!("delete {node}:{name}"))
}

/// Renames `from` to `to` (down, rename, up: the kernel renames only a
/// down interface). Its addresses and qdiscs stay; its routes go with the
/// down, so the caller puts the node's routes back afterwards.
pub async fn rename_link(h: &Handle, node: &str, from: &str, to: &str) -> Result<()> {
    let i = link_index(h, from)
        .await
        .with_context(|| format!("rename {node}:{from}"))?;
    let what = || format!("rename {node}:{from} to {to}");
    h.link()
        .set(LinkUnspec::new_with_index(i).down().build())
        .execute()
        .await
        .with_context(what)?;
    h.link()
        .set(LinkUnspec::new_with_index(i).name(to.to_string()).build())
        .execute()
        .await
        .with_context(what)?;
    h.link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .with_context(what)
}

/// Shapes an existing link end to a new capacity (the classes change in
/// place; reservations under them stay).
pub fn reshape(ns: &File, node: &str, ifname: &str, capacity_bps: u64) -> Result<()> {
    with_netns(ns, || -> Result<()> {
        let mut tc = crate::kernel::tc::Tc::open()
            .with_context(|| format!("netlink socket for shaping on {node}"))?;
        tc.reshape(ifname, capacity_bps)
            .with_context(|| format!("shaping {node}:{ifname} to {capacity_bps} bit/s"))
    })?
}

/// Shapes a new link end (see [`crate::kernel::links::shape_links`]).
pub fn shape(ns: &File, node: &str, ifname: &str, capacity_bps: u64) -> Result<()> {
    with_netns(ns, || -> Result<()> {
        let mut tc = crate::kernel::tc::Tc::open()
            .with_context(|| format!("netlink socket for shaping on {node}"))?;
        tc.shape(ifname, capacity_bps)
            .with_context(|| format!("shaping {node}:{ifname} to {capacity_bps} bit/s"))
    })?
}
