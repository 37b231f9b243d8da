//! A running node takes a changed topology (`vlsp apply`): new
//! neighbours, capacities, routes, virtual nodes and keys, while its GIST
//! and NSLP sessions stay. Its own address and provider stay too (they are
//! in its GIST peer identity and its signer): a change there is refused,
//! and apply starts a new node instead.

use std::path::Path;

use super::NodeCore;
use crate::node::api::Reply;
use crate::node::config::NodeConfig;
use crate::proto::nslp::ErrorReason;
use crate::topology::Topology;

impl NodeCore {
    /// Parses `toml` and adopts this node's part of it.
    pub fn reconfigure_from(&mut self, toml: &str) -> Reply {
        let bad = |m: String| Reply::error(ErrorReason::BadRequest, m);
        let t = match Topology::parse(toml, Path::new("reconfigure")) {
            Ok(t) => t,
            Err(e) => return bad(format!("the topology of a reconfigure request: {e}")),
        };
        match NodeConfig::from_topology(&t, &self.cfg.name) {
            Ok(new) => match self.reconfigure(new) {
                Ok(message) => Reply::Done { message },
                Err(m) => bad(m),
            },
            Err(e) => bad(format!("{e:#}")),
        }
    }

    /// Adopts `new`'s topology-made fields; what the node was started with
    /// (API socket, script directory, backend, timers, QoS) stays.
    pub fn reconfigure(&mut self, new: NodeConfig) -> Result<String, String> {
        let name = self.cfg.name.clone();
        if new.tunnel_addr != self.cfg.tunnel_addr {
            return Err(format!(
                "node {name}: its address would change from {} to {}: restart the node instead",
                self.cfg.tunnel_addr, new.tunnel_addr
            ));
        }
        if new.own_signer != self.cfg.own_signer {
            return Err(format!(
                "node {name}: its provider would change: restart the node instead"
            ));
        }
        for l in &new.links {
            self.nslp.ledger_mut().add_link(&l.ifname, l.capacity_bps);
        }
        let c = &mut self.cfg;
        c.links = new.links;
        c.routes = new.routes;
        c.addrs = new.addrs;
        c.vnodes = new.vnodes;
        c.sign_keys = new.sign_keys;
        c.verify_keys = new.verify_keys;
        c.verify_policy = new.verify_policy;
        c.unsigned_tear_same_peer = new.unsigned_tear_same_peer;
        c.signers = new.signers;
        Ok(format!(
            "node {name} reconfigured: {} links, {} routes, {} virtual nodes",
            c.links.len(),
            c.routes.len(),
            c.vnodes.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::measure::Recorder;

    fn topo(src: &str) -> Topology {
        Topology::parse(src, Path::new("t.toml")).unwrap()
    }

    fn paper() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_node_takes_new_links_and_keys_but_not_a_new_address() {
        let old = topo(&paper());
        let cfg = NodeConfig::from_topology(&old, "tb2").unwrap();
        let mut core = NodeCore::new(cfg, Recorder::disabled("tb2"), 1);
        let grown = format!(
            "{}\n[[node]]\nname = \"tb5\"\n[[link]]\na = \"tb2:172.2.5.2/24\"\nb = \"tb5:172.2.5.5/24\"\ncapacity = \"10mbit\"\n",
            paper()
        );
        match core.reconfigure_from(&grown) {
            Reply::Done { message } => assert!(message.contains("3 links"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(core.config().links[2].ifname, "eth2");
        assert!(core.config().addrs.contains(&"172.2.5.2".parse().unwrap()));
        assert_eq!(
            core.config()
                .egress_link("172.2.5.5".parse().unwrap())
                .as_deref(),
            Some("eth2")
        );
        // tb2's first link goes: its address would move.
        let moved = paper().replacen(
            "[[link]]\na = \"tb1:172.1.2.1/24\"\nb = \"tb2:172.1.2.2/24\"\ncapacity = \"1gbit\"\n",
            "[[link]]\na = \"tb1:172.1.2.1/24\"\nb = \"tb3:172.1.2.3/24\"\ncapacity = \"1gbit\"\n",
            1,
        );
        match core.reconfigure_from(&moved) {
            Reply::Error { message, .. } => {
                assert!(message.contains("restart the node"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            core.reconfigure_from("not toml ["),
            Reply::Error { .. }
        ));
    }
}
