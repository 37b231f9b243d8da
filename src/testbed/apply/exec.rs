//! Carries a plan out on the running topology, step by step in the plan's
//! order. A namespace is journaled before it is created and a node process
//! right after it starts, so `vlsp down` after a failure (or a `kill -9`)
//! part-way removes everything, whatever step was reached.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rtnetlink::Handle;

use super::diff::{End, Step};
use crate::kernel::netns::{handle_in, netns_add, netns_del, ns_name, ns_path};
use crate::kernel::{journal, links, live};
use crate::model::paths::RunDir;
use crate::node::api::{Client, Reply, Request};
use crate::topology::{Link, Topology};

/// What the steps need besides themselves.
pub struct Target<'a> {
    pub old: &'a Topology,
    pub new: &'a Topology,
    pub run: &'a RunDir,
    /// The new topology, saved where started nodes read it.
    pub next_file: &'a Path,
    /// The `vlsp` binary for started nodes.
    pub exe: PathBuf,
}

fn api(run: &RunDir, node: &str) -> Result<Client> {
    Client::connect(&run.api_socket(node), Duration::from_secs(60))
        .with_context(|| format!("the API of {node} ({})", run.api_socket(node).display()))
}

fn call(run: &RunDir, node: &str, req: &Request) -> Result<Reply> {
    api(run, node)?
        .call(req)
        .with_context(|| format!("the API of {node}"))
}

/// Namespaces opened once per run, with a netlink handle in each.
struct Spaces<'a> {
    topo: &'a str,
    files: HashMap<String, (File, Handle)>,
}

impl Spaces<'_> {
    fn get(&mut self, node: &str) -> Result<&(File, Handle)> {
        if !self.files.contains_key(node) {
            let p = ns_path(&ns_name(self.topo, node));
            let f = File::open(&p).with_context(|| {
                format!("namespace of {node} ({}): is the topology up?", p.display())
            })?;
            let h = handle_in(&f)?;
            self.files.insert(node.to_string(), (f, h));
        }
        Ok(&self.files[node])
    }

    fn forget(&mut self, node: &str) {
        self.files.remove(node);
    }

    /// Journals, then creates, the namespace of `node`, with `lo` up.
    async fn create(&mut self, node: &str) -> Result<()> {
        let ns = ns_name(self.topo, node);
        journal::journal_namespace(self.topo, &ns)?;
        netns_add(&ns)?;
        let (_, h) = self.get(node)?;
        links::set_up(h, "lo").await
    }
}

fn find_link<'a>(t: &'a Topology, a: &End, b: &End) -> Result<&'a Link> {
    t.links
        .iter()
        .find(|l| {
            l.a.node == a.node
                && l.a.ifname == a.ifname
                && l.b.node == b.node
                && l.b.ifname == b.ifname
        })
        .ok_or_else(|| anyhow!("no link {a} -- {b} in {}", t.name))
}

/// Runs `steps` in order, calling `done` after each.
pub fn carry_out(t: &Target, steps: &[Step], mut done: impl FnMut(&Step)) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (conn, root, _) = rtnetlink::new_connection().context("netlink socket")?;
        tokio::spawn(conn);
        let mut sp = Spaces {
            topo: &t.new.name,
            files: HashMap::new(),
        };
        for s in steps {
            step(t, &mut sp, &root, s).await.with_context(|| {
                format!(
                    "apply stopped at: {s}; `vlsp down {}` removes everything",
                    t.new.name
                )
            })?;
            done(s);
        }
        anyhow::Ok(())
    })
}

async fn step(t: &Target<'_>, sp: &mut Spaces<'_>, root: &Handle, s: &Step) -> Result<()> {
    match s {
        Step::TearDown {
            vlink_id,
            initiator,
            ..
        } => match call(
            t.run,
            initiator,
            &Request::Teardown {
                vlink_id: *vlink_id,
            },
        )? {
            Reply::LinkDown { .. } => {}
            Reply::Error { reason, message } => {
                bail!(
                    "{initiator} refused to tear virtual link {vlink_id} down ({reason}): {message}"
                )
            }
            other => bail!("unexpected reply from {initiator}: {other:?}"),
        },
        Step::StopNode { node } => stop_node(t.run, node)?,
        Step::RemoveVnode { vnode, host } => {
            let v = t
                .old
                .vnodes
                .iter()
                .find(|v| &v.name == vnode)
                .ok_or_else(|| anyhow!("no virtual node {vnode} running"))?;
            let (_, h) = sp.get(host)?;
            for i in &v.interfaces {
                live::delete_link(h, host, &i.host_ifname).await?;
                live::delete_link(h, host, &i.bridge).await?;
            }
            sp.forget(vnode);
            netns_del(&ns_name(&t.new.name, vnode))?;
        }
        Step::RemoveLink { a, .. } => {
            let (_, h) = sp.get(&a.node)?;
            live::delete_link(h, &a.node, &a.ifname).await?;
        }
        Step::RemoveRouter { node } => {
            sp.forget(node);
            netns_del(&ns_name(&t.new.name, node))?;
            let _ = std::fs::remove_file(t.run.api_socket(node));
        }
        Step::Rename { node, from, to } => {
            let (_, h) = sp.get(node)?;
            live::rename_link(h, node, from, to).await?;
        }
        Step::AddRouter { node } => {
            // Its links switch forwarding on as they are added (no sysctl).
            sp.create(node).await?;
        }
        Step::AddLink { a, b, .. } => {
            let l = find_link(t.new, a, b)?;
            let fa = sp.get(&a.node)?.0.try_clone()?;
            let fb = sp.get(&b.node)?.0.try_clone()?;
            links::veth_between(root, &fa, &a.ifname, &fb, &b.ifname).await?;
            links::set_up(&sp.get(&b.node)?.1, &b.ifname).await?;
            for e in [&l.a, &l.b] {
                let (f, h) = sp.get(&e.node)?;
                links::add_address(h, &e.node, &e.ifname, e.addr, e.prefix_len).await?;
                live::shape(f, &e.node, &e.ifname, l.capacity_bps)?;
                // Forwarding is per interface (see `links::forwarding_attr`).
                links::set_forwarding(h, &e.node, true).await?;
            }
        }
        Step::Reshape {
            end, capacity_bps, ..
        } => {
            let (f, _) = sp.get(&end.node)?;
            live::reshape(f, &end.node, &end.ifname, *capacity_bps)?;
        }
        Step::AddVnode { vnode, host } => {
            let v = t
                .new
                .vnodes
                .iter()
                .find(|v| &v.name == vnode)
                .ok_or_else(|| anyhow!("no virtual node {vnode} in the file"))?;
            sp.create(vnode).await?;
            let fh = sp.get(host)?.0.try_clone()?;
            let fv = sp.get(vnode)?.0.try_clone()?;
            for i in &v.interfaces {
                links::veth_between(root, &fh, &i.host_ifname, &fv, &i.ifname).await?;
                let (_, h) = sp.get(vnode)?;
                links::set_up(h, &i.ifname).await?;
                links::add_address(h, vnode, &i.ifname, i.addr, i.prefix_len).await?;
            }
            links::bridge_vnode(&sp.get(host)?.1, v).await?;
        }
        Step::Routes { node, .. } => {
            let (_, h) = sp.get(node)?;
            crate::kernel::routing::replace_static(h, node, &t.new.routes(node)).await?;
        }
        Step::Reconfigure { node } => {
            let req = Request::Reconfigure {
                topology: t.new.to_toml(),
            };
            match call(t.run, node, &req)? {
                Reply::Done { .. } => {}
                Reply::Error { message, .. } => bail!("{node} refused the new topology: {message}"),
                other => bail!("unexpected reply from {node}: {other:?}"),
            }
        }
        Step::StartNode { node } => {
            // Dropping the handle leaves the process running: it is
            // journaled, and `vlsp down` stops it.
            crate::testbed::procs::spawn_detached(&t.exe, &t.new.name, t.next_file, node, t.run)?;
        }
    }
    Ok(())
}

/// Asks `node` to stop and waits until its API socket no longer answers.
fn stop_node(run: &RunDir, node: &str) -> Result<()> {
    let sock = run.api_socket(node);
    if !sock.exists() {
        return Ok(());
    }
    let Ok(mut c) = Client::connect(&sock, Duration::from_secs(10)) else {
        // Nothing listens: the node is gone already.
        let _ = std::fs::remove_file(&sock);
        return Ok(());
    };
    match c.call(&Request::Shutdown) {
        Ok(Reply::Done { .. }) => {}
        Ok(other) => bail!("{node} did not stop: {other:?}"),
        Err(e) => bail!("{node} did not stop: {e}"),
    }
    let t0 = Instant::now();
    while Client::connect(&sock, Duration::from_secs(1)).is_ok() {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("the node of {node} still answers 10 s after it was asked to stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&sock);
    Ok(())
}
