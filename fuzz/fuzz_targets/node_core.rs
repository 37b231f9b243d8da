//! The node core's receive path, sans-IO: a fresh core for one node of
//! paper-4node is fed a sequence of records (datagrams from a neighbour,
//! API lines, time passing) and must never panic; every tunnel end and
//! class it asks for is granted, so state can grow as far as inputs take
//! it; and that state stays bounded: at most one session per record.
//!
//! Record: op (1 byte), length (1 byte, times 4 for datagrams), bytes.
//! op % 4: 0 datagram to the node, 1 API line, 2 time passes
//! (bytes[0] seconds), 3 a datagram as the GIST socket would intercept it.
#![no_main]
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vlsp::kernel::sockets::Incoming;
use vlsp::model::measure::Recorder;
use vlsp::node::NodeConfig;
use vlsp::node::api::Request;
use vlsp::node::core::{CoreAction, NodeCore};
use vlsp::topology::Topology;

fn configs() -> &'static [NodeConfig] {
    static C: OnceLock<Vec<NodeConfig>> = OnceLock::new();
    C.get_or_init(|| {
        let src = include_str!("../../topologies/paper-4node.toml");
        let topo = Topology::parse(src, Path::new("paper-4node.toml")).expect("topology");
        ["tb1", "tb2", "tb3", "tb4"]
            .iter()
            .map(|n| NodeConfig::from_topology(&topo, n).expect("node config"))
            .collect()
    })
}

/// Runs what the core asks for, granting every tunnel end and class.
fn settle(core: &mut NodeCore, now: Instant) {
    for _ in 0..64 {
        while core.poll_transmit().is_some() {}
        let Some(a) = core.poll_action() else {
            return;
        };
        match a {
            CoreAction::TunnelUp { sid, .. } | CoreAction::TunnelDown { sid, .. } => {
                core.tunnel_done(sid, None, now)
            }
            CoreAction::InstallClass { sid, .. } => core.class_done(sid, None, now),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, mut rest)) = data.split_first() else {
        return;
    };
    let node = which as usize % 4;
    let cfg = configs()[node].clone();
    // Datagrams come from a neighbour's address on the chain.
    let me = cfg.addrs[0];
    let peer = match node {
        0 => Ipv4Addr::new(172, 1, 2, 2),
        1 => Ipv4Addr::new(172, 1, 2, 1),
        2 => Ipv4Addr::new(172, 2, 3, 2),
        _ => Ipv4Addr::new(172, 3, 4, 3),
    };
    let mut core = NodeCore::new(cfg, Recorder::new("fuzz", 0), 7);
    let mut now = Instant::now();
    let mut records = 0usize;
    let mut token = 0;
    while let [op, len, tail @ ..] = rest {
        let n = (*len as usize) * if op % 4 == 1 { 1 } else { 4 };
        let n = n.min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        records += 1;
        match op % 4 {
            0 | 3 => core.handle_datagram(
                Incoming {
                    src: SocketAddrV4::new(peer, 270),
                    dst: if op % 4 == 0 { me } else { Ipv4Addr::new(10, 10, 0, 2) },
                    ttl: Some(64),
                    intercepted: op % 4 == 3,
                    payload: bytes.to_vec(),
                    at_ns: 0,
                },
                now,
            ),
            1 => {
                if let Ok(req) = std::str::from_utf8(bytes)
                    .map_err(|_| ())
                    .and_then(|t| serde_json::from_str::<Request>(t).map_err(|_| ()))
                {
                    // The API refuses what `check` refuses before the core.
                    if req.check().is_ok() && !matches!(req, Request::DumpPoints) {
                        token += 1;
                        core.handle_api(token, req, 0, now);
                    }
                }
            }
            _ => {
                now += Duration::from_secs(u64::from(bytes.first().copied().unwrap_or(1)));
                core.handle_timeout(now);
            }
        }
        settle(&mut core, now);
        let sessions = core.nslp().sessions().count();
        assert!(
            sessions <= records,
            "{sessions} sessions after {records} records"
        );
        assert!(core.nslp().ledger().len() <= sessions.max(1) * 2);
    }
});
