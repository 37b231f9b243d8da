//! The QEMU virtual nodes of a testbed: boot them all at once, join each
//! tap to its bridge, wait for every guest's readiness marker.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::Testbed;
use crate::kernel::qemu::{self, Guest, GuestNet, GuestSpec};
use crate::kernel::substrate;
use crate::topology::{QemuConf, Vnode};

impl Testbed {
    /// Boots every QEMU virtual node and waits until all are ready.
    pub(super) fn start_guests(&mut self) -> Result<()> {
        let guests: Vec<(Vnode, QemuConf)> = self
            .topo
            .vnodes
            .iter()
            .filter_map(|v| v.qemu.clone().map(|q| (v.clone(), q)))
            .collect();
        if guests.is_empty() {
            return Ok(());
        }
        let kernels = guests
            .iter()
            .map(|(_, q)| match &q.kernel {
                Some(k) => Ok(k.clone()),
                None => qemu::default_kernel(),
            })
            .collect::<Result<Vec<_>>>()?;
        let accel = qemu::accel(&kernels[0], Duration::from_secs(3))?;
        std::fs::write(
            self.run.accel_file(),
            format!("{} ({})", accel.name, accel.why),
        )
        .ok();
        for ((v, q), kernel) in guests.iter().zip(kernels) {
            let g = self.boot(v, q, kernel, &accel.name)?;
            self.guests.push(g);
        }
        for (v, _) in &guests {
            self.join_tap(v)?;
        }
        let deadline = if accel.name == "kvm" {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(120)
        };
        self.wait_ready(deadline)?;
        self.accel = Some(accel);
        Ok(())
    }

    /// Starts one guest (journaled, so `down` stops it after a crash too).
    fn boot(&self, v: &Vnode, q: &QemuConf, kernel: PathBuf, accel: &str) -> Result<Guest> {
        let initrd = match &q.disk {
            Some(_) => None,
            None => Some(qemu::initramfs(
                &qemu::cache_dir(),
                &kernel,
                Some(&GuestNet {
                    name: v.name.clone(),
                    addr: v.addr,
                    prefix_len: v.prefix_len,
                }),
            )?),
        };
        let name = &self.topo.name;
        let g = Guest::start(&GuestSpec {
            name: v.name.clone(),
            kernel,
            initrd,
            disk: q.disk.clone(),
            memory_mb: q.memory_mb,
            cpus: q.cpus,
            accel: accel.to_string(),
            tap: Some(v.host_ifname.clone()),
            mac: qemu::mac_for(v.id),
            netns: Some(substrate::ns_path(&substrate::ns_name(name, &v.host))),
            dir: self.run.console_dir(),
        })?;
        if let Some(pid) = g.pid() {
            substrate::journal_qemu(name, pid)?;
        }
        Ok(g)
    }

    /// QEMU creates each tap in the host's namespace; join it to the bridge.
    fn join_tap(&self, v: &Vnode) -> Result<()> {
        let ns = substrate::ns_name(&self.topo.name, &v.host);
        let t0 = Instant::now();
        loop {
            let ok = std::process::Command::new("ip")
                .args([
                    "-n",
                    &ns,
                    "link",
                    "set",
                    &v.host_ifname,
                    "master",
                    &v.bridge,
                    "up",
                ])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let g = self.guests.iter().find(|g| g.name == v.name);
                bail!(
                    "virtual node {}: QEMU did not create tap {} in {} within 10 s\n--- console ---\n{}",
                    v.name,
                    v.host_ifname,
                    v.host,
                    g.map(|g| g.console_tail(20)).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_ready(&mut self, deadline: Duration) -> Result<()> {
        loop {
            let mut all = true;
            for g in &mut self.guests {
                all &= g.poll_ready(deadline)?;
            }
            if all {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for g in &self.guests {
            self.boot_times
                .push((g.name.clone(), g.ready_after.unwrap_or_default()));
        }
        Ok(())
    }
}
