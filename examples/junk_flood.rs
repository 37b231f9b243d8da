//! How much junk a node absorbs while it still sets up links (issue 12).
//! Brings up a copy of paper-4node, floods tb4's GIST port from tb3's
//! namespace at full speed for SECONDS, and meanwhile sets up and tears down
//! VM1 -> VM2 from tb1 again and again; then prints what was sent, what
//! tb4's kernel and node received, dropped and shed, and the setup times.
//!
//! `sudo target/release/examples/junk_flood [SECONDS] [junk|lookalike] [SENDERS]`
//! (root: network namespaces). `junk`: 20-byte datagrams that fail the
//! cheap check; `lookalike`: 268-byte datagrams with a valid GIST header and
//! garbage objects, which reach the queue and the decoder.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vlsp::kernel::netns::{ns_name, ns_path, with_netns};
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::Topology;

/// Udp InDatagrams and RcvbufErrors of a namespace (from /proc/net/snmp).
fn udp_counters(ns: &str) -> Result<(u64, u64)> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        bail!("no Udp lines in /proc/net/snmp of {ns}");
    };
    let get = |k: &str| -> u64 {
        names
            .split_whitespace()
            .position(|n| n == k)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((get("InDatagrams"), get("RcvbufErrors")))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let kind = args.get(2).map(String::as_str).unwrap_or("junk");
    let senders: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let payload: Vec<u8> = match kind {
        "junk" => vec![0xa5; 20],
        "lookalike" => {
            let mut p = vec![0x4e, 0x04, 0xbd, 0xa5, 1, 1, 0, 64, 0, 1, 3, 0x80];
            p.extend((0..256).map(|i| i as u8));
            p
        }
        k => bail!("unknown flood kind {k:?}: junk or lookalike"),
    };
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml");
    let name = format!("jf{}", std::process::id() % 100_000);
    let src = std::fs::read_to_string(&file)?.replacen(
        "name = \"paper-4node\"",
        &format!("name = \"{name}\""),
        1,
    );
    let topo = Topology::parse(&src, &file)?;
    let tb = Testbed::up(topo, &Options::default()).context("bringing the testbed up")?;
    let ns3 = std::fs::File::open(ns_path(&ns_name(&name, "tb3")))?;
    let ns4 = ns_name(&name, "tb4");
    let tb4 = SocketAddrV4::new(Ipv4Addr::new(172, 3, 4, 4), 270);
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let (in0, drop0) = udp_counters(&ns4)?;
    let mut setups: Vec<Duration> = vec![];
    let mut failures: Vec<String> = vec![];
    let t0 = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..senders {
            let sock = with_netns(&ns3, || std::net::UdpSocket::bind("0.0.0.0:0"))??;
            let (stop, sent, payload) = (&stop, &sent, &payload);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    if sock.send_to(payload, tb4).is_ok() {
                        n += 1;
                    }
                }
                sent.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        while t0.elapsed() < Duration::from_secs(secs) {
            let t = Instant::now();
            let mut c = tb.client("tb1")?;
            let r = c.call(&Request::Setup {
                from: "VM1".into(),
                to: "VM2".into(),
                rate_bps: vlsp::model::units::Rate::from_bps(1_000_000),
                bidirectional: false,
                backend: None,
                tunnel: None,
                authenticate: true,
            })?;
            match r {
                Reply::LinkUp { vlink } => {
                    setups.push(t.elapsed());
                    c.call(&Request::Teardown {
                        vlink_id: vlink.vlink_id,
                    })?;
                }
                r => failures.push(format!("{r:?}")),
            }
        }
        stop.store(true, Ordering::Relaxed);
        Ok(())
    })?;
    let flood = t0.elapsed().as_secs_f64();
    let (in1, drop1) = udp_counters(&ns4)?;
    let st = match tb.client("tb4")?.call(&Request::Stats)? {
        Reply::Stats { stats } => stats,
        r => bail!("stats of tb4: {r:?}"),
    };
    tb.down()?;
    let sent = sent.load(Ordering::Relaxed);
    let read = st.junk + st.shed_overload + st.malformed;
    println!("flood: {kind}, {senders} sender(s) on tb3, {flood:.1} s");
    println!(
        "sent {sent} ({:.0}/s); tb4 kernel: {} datagrams delivered to sockets, {} dropped (receive buffer full)",
        sent as f64 / flood,
        in1 - in0,
        drop1 - drop0
    );
    println!(
        "tb4 node: read {read} flood datagrams ({:.0}/s): junk {}, shed {}, malformed {}",
        read as f64 / flood,
        st.junk,
        st.shed_overload,
        st.malformed
    );
    setups.sort();
    if setups.is_empty() {
        println!("no setup succeeded during the flood: {failures:?}");
    } else {
        println!(
            "{} link setups during the flood ({} failed): median {:.1} ms, max {:.1} ms",
            setups.len(),
            failures.len(),
            setups[setups.len() / 2].as_secs_f64() * 1e3,
            setups[setups.len() - 1].as_secs_f64() * 1e3
        );
    }
    if !failures.is_empty() {
        println!("failures: {failures:?}");
    }
    Ok(())
}
