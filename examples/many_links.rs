//! A virtual node with more links than a bridge has ports (1023): VM1 on
//! tb1 and VM2 on tb2 declare N virtual interfaces each (default 1100),
//! and N virtual links VM1 -> VM2 are set up, one per pair of interfaces,
//! each its own bridge on each host. Reports the times and pings the first
//! and the last link (root).
//! `cargo run --release --example many_links [N]`

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};
use vlsp::topology::Topology;

/// The address of interface `i` (from 0) of virtual node `host` (1 or 2).
fn addr(i: usize, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 100 + (i / 256) as u8, (i % 256) as u8, host)
}

fn topology(n: usize) -> String {
    let vifs = |host: u8| {
        (0..n)
            .map(|i| format!("{{ id = {}, addr = \"{}/24\" }}", i + 1, addr(i, host)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"[topology]
name = "many{n}"
[[provider]]
name = "p"
key_id = 1
key = "12345678901234567890123456789012"
[[node]]
name = "tb1"
[[node]]
name = "tb2"
[[link]]
a = "tb1:172.1.2.1/24"
b = "tb2:172.1.2.2/24"
capacity = "100gbit"
[[vnet]]
name = "v"
id = 1
[[vnode]]
name = "VM1"
vnet = "v"
host = "tb1"
id = 1
interfaces = [{}]
[[vnode]]
name = "VM2"
vnet = "v"
host = "tb2"
id = 2
interfaces = [{}]
"#,
        vifs(1),
        vifs(2)
    )
}

fn main() -> anyhow::Result<()> {
    vlsp::kernel::substrate::require_root()?;
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1100);
    anyhow::ensure!(n <= 256 * 100, "at most 25600 interfaces here");
    let t = Topology::parse(&topology(n), Path::new("many.toml"))?;
    let name = t.name.clone();
    let _ = vlsp::kernel::substrate::down(&name);
    let t0 = Instant::now();
    let tb = Testbed::up(t, &Options::default())?;
    println!(
        "up with {n} interfaces per virtual node: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let mut c = tb.client("tb1")?;
    let t0 = Instant::now();
    let mut up = 0;
    for _ in 0..n {
        let r = c.call(&Request::Setup {
            from: "VM1".into(),
            to: "VM2".into(),
            rate_bps: vlsp::model::units::Rate::from_bps(1_000_000),
            bidirectional: false,
            backend: None,
            authenticate: true,
            tunnel: None,
        })?;
        match r {
            Reply::LinkUp { .. } => up += 1,
            r => anyhow::bail!("link {}: {r:?}", up + 1),
        }
    }
    let setup = t0.elapsed();
    println!(
        "{up} links VM1 -> VM2 up in {:.1} s ({:.2} ms each)",
        setup.as_secs_f64(),
        setup.as_secs_f64() * 1e3 / up as f64
    );
    for i in [0, n - 1] {
        let rtt = vlsp::kernel::substrate::udp_ping(
            &name,
            "VM1",
            "VM2",
            addr(i, 2),
            Duration::from_secs(3),
        )?;
        println!("ping over link {}: {rtt:?}", i + 1);
    }
    if let Reply::Stats { stats } = c.call(&Request::Stats)? {
        println!("tb1 stats: {}", serde_json::to_string(&stats.nslp)?);
    }
    let t0 = Instant::now();
    tb.down()?;
    println!("down: {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
