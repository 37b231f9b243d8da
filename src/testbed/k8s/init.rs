//! What a pod's init container does before the node starts (`vlsp k8s
//! init --plan /etc/vlsp/init.toml`): wait until every interface the pod's
//! meshnet Topology promises exists (meshnet adds a link only once both of
//! its pods are there, as KNE's init-wait knows), then do in the pod what
//! `vlsp up` does in a router's namespace: forwarding, each link shaped to
//! its capacity (the root HTB the node's reservations go under), the
//! static routes, and a bridge per virtual interface with its port.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rtnetlink::LinkUnspec;
use serde::{Deserialize, Serialize};

use crate::kernel::tc::QosError;
use crate::node::nodefile::RouteEntry;

/// The init container's plan (ConfigMap key `init.toml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitPlan {
    /// The pod it is for (named in messages).
    pub pod: String,
    /// Interfaces to wait for.
    pub wait: Vec<String>,
    /// Needs IPv4 forwarding (a router).
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub bridge: Vec<BridgePort>,
    #[serde(default)]
    pub shape: Vec<ShapedLink>,
    #[serde(default)]
    pub route: Vec<RouteEntry>,
}

/// A virtual interface's bridge and the port that joins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgePort {
    pub bridge: String,
    pub port: String,
}

/// A link shaped to its capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapedLink {
    pub ifname: String,
    pub capacity_bps: u64,
}

impl InitPlan {
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an init plan always serializes")
    }

    pub fn parse(file: &str, text: &str) -> Result<Self> {
        toml::from_str(text).with_context(|| format!("{file}: not an init plan"))
    }

    /// The interfaces of `wait` not in `present`.
    pub fn missing<'a>(&'a self, present: &[String]) -> Vec<&'a str> {
        self.wait
            .iter()
            .filter(|w| !present.contains(w))
            .map(String::as_str)
            .collect()
    }

    /// Waits for the interfaces, then sets the current namespace up.
    pub fn run(&self, timeout: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let present = interface_names()?;
            let missing = self.missing(&present);
            if missing.is_empty() {
                break;
            }
            if t0.elapsed() >= timeout {
                bail!(
                    "pod {}: interfaces {} did not appear within {} s: are the peer pods scheduled, and does meshnet-cni run on their k8s nodes (kubectl get topology {} -o yaml)?",
                    self.pod,
                    missing.join(", "),
                    timeout.as_secs(),
                    self.pod
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if self.forward {
            forward(&self.pod)?;
        }
        let mut tc = crate::kernel::tc::Tc::open()
            .with_context(|| format!("pod {}: netlink socket for tc", self.pod))?;
        for s in &self.shape {
            match tc.shape(&s.ifname, s.capacity_bps) {
                // A restarted init container: the first run shaped it.
                Err(QosError::Kernel { errno, .. }) if errno == libc::EEXIST => {}
                r => r.with_context(|| {
                    format!(
                        "pod {}: shaping {} to {} bit/s",
                        self.pod, s.ifname, s.capacity_bps
                    )
                })?,
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.links_and_routes())
    }

    async fn links_and_routes(&self) -> Result<()> {
        let (conn, h, _) = rtnetlink::new_connection().context("netlink socket")?;
        tokio::spawn(conn);
        let pod = &self.pod;
        for w in &self.wait {
            crate::kernel::links::set_up(&h, w).await?;
        }
        for b in &self.bridge {
            if crate::kernel::links::link_index(&h, &b.bridge)
                .await
                .is_err()
            {
                h.link()
                    .add(crate::kernel::tunnel::vlink_bridge(&b.bridge))
                    .execute()
                    .await
                    .with_context(|| format!("pod {pod}: bridge {}", b.bridge))?;
            }
            let br = crate::kernel::links::link_index(&h, &b.bridge).await?;
            let port = crate::kernel::links::link_index(&h, &b.port).await?;
            h.link()
                .set(LinkUnspec::new_with_index(port).controller(br).up().build())
                .execute()
                .await
                .with_context(|| format!("pod {pod}: {} into bridge {}", b.port, b.bridge))?;
        }
        if !self.bridge.is_empty() {
            // Tunnel ends will be made in this pod: keep the VXLAN socket open.
            if let Err(e) = crate::kernel::tunnel::keep_vxlan_socket(&h).await {
                tracing::warn!(
                    "pod {pod}: no VXLAN socket keeper ({e}): VXLAN tunnel ends pay for opening \
                     the socket"
                );
            }
        }
        for r in &self.route {
            let i = crate::kernel::links::link_index(&h, &r.ifname).await?;
            let msg = crate::kernel::links::route_msg(r.dest, r.prefix_len, r.via, i);
            // A restarted init container finds its routes there already.
            h.route()
                .add(msg)
                .replace()
                .execute()
                .await
                .with_context(|| {
                    format!(
                        "pod {pod}: route {}/{} via {} dev {}",
                        r.dest, r.prefix_len, r.via, r.ifname
                    )
                })?;
        }
        Ok(())
    }
}

/// Names of the current namespace's interfaces.
fn interface_names() -> Result<Vec<String>> {
    let mut v: Vec<String> = nix::ifaddrs::getifaddrs()
        .context("cannot list this namespace's interfaces")?
        .map(|i| i.interface_name)
        .collect();
    v.dedup();
    Ok(v)
}

/// IPv4 forwarding on: the pod's `net.ipv4.ip_forward` sysctl sets it (the
/// kubelet must allow it); written here where /proc/sys is writable.
fn forward(pod: &str) -> Result<()> {
    let p = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(p).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(p, "1").with_context(|| {
        format!(
            "pod {pod}: IPv4 forwarding is off and {p} is not writable: allow the sysctl net.ipv4.ip_forward on the kubelet (--allowed-unsafe-sysctls=net.ipv4.ip_forward)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_plan_reads_back_and_names_what_is_missing() {
        let p = InitPlan {
            pod: "n1".into(),
            wait: vec!["eth1".into(), "eth2".into(), "vn0".into()],
            forward: true,
            bridge: vec![BridgePort {
                bridge: "br0".into(),
                port: "vn0".into(),
            }],
            shape: vec![ShapedLink {
                ifname: "eth1".into(),
                capacity_bps: 1_000_000_000,
            }],
            route: vec![RouteEntry {
                dest: Ipv4Addr::new(10, 20, 2, 0),
                prefix_len: 24,
                via: Ipv4Addr::new(10, 20, 1, 2),
                ifname: "eth2".into(),
            }],
        };
        let back = InitPlan::parse("init.toml", &p.to_toml()).unwrap();
        assert_eq!(back, p);
        assert_eq!(p.missing(&["lo".into(), "eth1".into()]), ["eth2", "vn0"]);
        assert!(InitPlan::parse("init.toml", "pod = \"x\"\nwait = []\nwat = 1").is_err());
    }
}
