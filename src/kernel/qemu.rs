//! QEMU virtual nodes: a guest whose tap interface lives in its host
//! substrate node's namespace, on the bridge the virtual links' tunnel ends
//! join. The default guest is a kernel plus an initramfs built here from
//! Debian's `busybox-static` (a `newc` cpio archive, cached by the hash of
//! its inputs); its init configures the address from the topology and
//! prints a readiness marker on the serial console.
//!
//! Acceleration: KVM when a short probe boots a guest to userspace under it,
//! TCG otherwise (on some machines /dev/kvm exists but KVM guests hang).
//! Every boot has a deadline; errors carry the console log's tail.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::Digest;

/// Printed by the guest's init once its network is configured.
pub const READY: &str = "VLSP-GUEST-READY";
pub const QEMU: &str = "qemu-system-x86_64";
const BUSYBOX: &str = "/bin/busybox";
/// Modules the Debian cloud kernel needs for a virtio NIC (not built in).
const NIC_MODULES: [&str; 2] = ["virtio_pci", "virtio_net"];

// --------------------------------------------------------------- cpio newc

/// Writes one `newc` cpio entry (header, name, data, padded to 4 bytes).
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let namesize = name.len() + 1;
    let hdr = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0,
        0,
        1,
        0,
        data.len(),
        0,
        0,
        0,
        0,
        0
    );
    out.extend_from_slice(hdr.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// A file or directory of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir(String),
    File(String, u32, Vec<u8>),
    Symlink(String, String),
}

/// A `newc` cpio archive of `entries`, with the trailer.
pub fn cpio(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir(n) => cpio_entry(&mut out, ino, n, 0o040755, &[]),
            Entry::File(n, perm, d) => cpio_entry(&mut out, ino, n, 0o100000 | perm, d),
            Entry::Symlink(n, target) => cpio_entry(&mut out, ino, n, 0o120777, target.as_bytes()),
        }
    }
    cpio_entry(&mut out, 0, "TRAILER!!!", 0, &[]);
    out
}

// ------------------------------------------------------------- the image

/// What the guest's init sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNet {
    pub name: String,
    pub addr: std::net::Ipv4Addr,
    pub prefix_len: u8,
}

/// The init script: mounts, loads the NIC modules, configures eth0, prints
/// the marker, then leaves a shell on the serial console.
pub fn init_script(net: Option<&GuestNet>, modules: &[String]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n/bin/busybox --install -s\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n",
    );
    for m in modules {
        s += &format!("insmod /lib/modules/{m} 2>/dev/null\n");
    }
    s += "ip link set lo up\n";
    if let Some(n) = net {
        s += &format!(
            "i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n\
             [ -e /sys/class/net/eth0 ] || echo 'VLSP-GUEST-ERROR no eth0 (virtio_net missing from the kernel and the initramfs?)'\n\
             ip addr add {}/{} dev eth0\nip link set eth0 up\nhostname {}\n",
            n.addr, n.prefix_len, n.name
        );
    }
    s += &format!("echo {READY} $(hostname)\nexec setsid cttyhack sh\n");
    s
}

/// `/lib/modules/<version>` for a kernel image named `vmlinuz-<version>`.
pub fn modules_dir(kernel: &Path) -> Option<PathBuf> {
    let name = kernel.file_name()?.to_str()?;
    let version = name.strip_prefix("vmlinuz-")?;
    let d = Path::new("/lib/modules").join(version);
    d.exists().then_some(d)
}

/// The module files (relative to `dir`) to load, dependencies first, for
/// `wanted`, from `modules.dep`. Modules the kernel has built in are absent.
pub fn module_closure(dir: &Path, wanted: &[&str]) -> Vec<String> {
    let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap_or_default();
    let table: Vec<(String, Vec<String>)> = dep
        .lines()
        .filter_map(|l| {
            let (m, d) = l.split_once(':')?;
            Some((
                m.to_string(),
                d.split_whitespace().map(str::to_string).collect(),
            ))
        })
        .collect();
    let mut out: Vec<String> = vec![];
    for w in wanted {
        let Some((m, deps)) = table.iter().find(|(m, _)| {
            Path::new(m)
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.split('.').next() == Some(w))
        }) else {
            continue;
        };
        // modules.dep lists the deepest dependency last.
        for d in deps.iter().rev().chain(std::iter::once(m)) {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
    }
    out
}

/// The default kernel: Debian's cloud kernel, else any `/boot/vmlinuz-*`.
pub fn default_kernel() -> Result<PathBuf> {
    let mut ks: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    ks.retain(|p| {
        p.file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.starts_with("vmlinuz-"))
    });
    ks.sort();
    ks.iter()
        .rev()
        .find(|p| p.to_string_lossy().contains("cloud"))
        .or(ks.last())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "no guest kernel in /boot: `apt-get install linux-image-cloud-amd64` or set `kernel` on the virtual node"
            )
        })
}

/// Builds (or reuses from `cache`) the initramfs for `net` and `kernel`.
pub fn initramfs(cache: &Path, kernel: &Path, net: Option<&GuestNet>) -> Result<PathBuf> {
    let busybox = std::fs::read(BUSYBOX).with_context(|| {
        format!("{BUSYBOX} not found: `apt-get install busybox-static` (QEMU guests need it)")
    })?;
    let mdir = modules_dir(kernel);
    let mods = mdir
        .as_deref()
        .map(|d| module_closure(d, &NIC_MODULES))
        .unwrap_or_default();
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    for m in &mods {
        let d = mdir.as_ref().expect("closure needs the dir");
        let data =
            std::fs::read(d.join(m)).with_context(|| format!("module {}", d.join(m).display()))?;
        files.push((m.clone(), data));
    }
    let flat: Vec<String> = mods
        .iter()
        .map(|m| {
            Path::new(m)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let init = init_script(net, &flat);
    let mut h = sha2::Sha256::new();
    h.update(&busybox);
    h.update(init.as_bytes());
    for (m, d) in &files {
        h.update(m.as_bytes());
        h.update(d);
    }
    let hash = h.finalize();
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let out = cache.join(format!("initramfs-{hex}.cpio"));
    if out.exists() {
        return Ok(out);
    }
    let mut entries = vec![];
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "lib",
        "lib/modules",
        "tmp",
    ] {
        entries.push(Entry::Dir(d.into()));
    }
    entries.push(Entry::File("bin/busybox".into(), 0o755, busybox));
    entries.push(Entry::Symlink("bin/sh".into(), "busybox".into()));
    for (m, d) in files {
        let f = Path::new(&m)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        entries.push(Entry::File(format!("lib/modules/{f}"), 0o644, d));
    }
    entries.push(Entry::File("init".into(), 0o755, init.into_bytes()));
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, cpio(&entries))?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

// ----------------------------------------------------------- acceleration

/// Which accelerator a guest runs with, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accel {
    pub name: String,
    pub why: String,
}

/// Decides KVM or TCG once per boot of the machine (cached in
/// `/run/vlsp/accel.json`): KVM only if a guest reaches userspace under it
/// within `timeout`.
pub fn accel(kernel: &Path, timeout: Duration) -> Result<Accel> {
    let cache = Path::new(crate::model::paths::RUN_DIR).join("accel.json");
    if let Ok(s) = std::fs::read_to_string(&cache)
        && let Ok(a) = serde_json::from_str::<Accel>(&s)
    {
        return Ok(a);
    }
    let a = if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        Accel {
            name: "tcg".into(),
            why: "/dev/kvm cannot be opened".into(),
        }
    } else {
        let dir = Path::new(crate::model::paths::RUN_DIR).join("kvm-probe");
        let initrd = initramfs(&cache_dir(), kernel, None)?;
        let _ = std::fs::create_dir_all(&dir);
        let spec = GuestSpec {
            name: "kvm-probe".into(),
            kernel: kernel.to_path_buf(),
            initrd: Some(initrd),
            disk: None,
            memory_mb: 128,
            cpus: 1,
            accel: "kvm".into(),
            tap: None,
            mac: "52:54:00:00:00:01".into(),
            netns: None,
            dir: dir.clone(),
        };
        let t0 = Instant::now();
        let r = Guest::start(&spec).and_then(|mut g| {
            let r = g.wait_ready(timeout);
            g.stop();
            r
        });
        let _ = std::fs::remove_dir_all(&dir);
        match r {
            Ok(()) => Accel {
                name: "kvm".into(),
                why: format!("probe guest reached userspace in {:?}", t0.elapsed()),
            },
            Err(e) => Accel {
                name: "tcg".into(),
                why: format!(
                    "KVM probe failed ({}), using TCG",
                    e.to_string().lines().next().unwrap_or("")
                ),
            },
        }
    };
    let _ = std::fs::create_dir_all(crate::model::paths::RUN_DIR);
    let _ = std::fs::write(&cache, serde_json::to_string(&a)?);
    Ok(a)
}

/// Where built initramfs images are cached.
pub fn cache_dir() -> PathBuf {
    PathBuf::from("/var/cache/vlsp")
}

// ---------------------------------------------------------------- a guest

/// Everything needed to start one guest.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub name: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// A qcow2 (or raw) disk instead of the initramfs (its own init must
    /// print the readiness marker on ttyS0).
    pub disk: Option<PathBuf>,
    pub memory_mb: u32,
    pub cpus: u32,
    pub accel: String,
    /// Tap interface QEMU creates in `netns`.
    pub tap: Option<String>,
    pub mac: String,
    /// Namespace file of the host substrate node.
    pub netns: Option<PathBuf>,
    /// Folder for the console log and the console socket.
    pub dir: PathBuf,
}

/// A running guest.
pub struct Guest {
    pub name: String,
    child: Option<Child>,
    pub console_log: PathBuf,
    console_sock: PathBuf,
    pub started: Instant,
    /// Start → readiness marker seen.
    pub ready_after: Option<Duration>,
}

impl Guest {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts QEMU (inside `spec.netns` when given, so its tap is created
    /// there). Returns at once; see [`Guest::wait_ready`].
    pub fn start(spec: &GuestSpec) -> Result<Self> {
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("cannot create {}", spec.dir.display()))?;
        let console_log = spec.dir.join(format!("{}.console.log", spec.name));
        let console_sock = spec.dir.join(format!("{}.console.sock", spec.name));
        let _ = std::fs::remove_file(&console_log);
        let _ = std::fs::remove_file(&console_sock);
        let mut cmd = Command::new(QEMU);
        cmd.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-accel", &spec.accel])
        .args(["-m", &spec.memory_mb.to_string()])
        .args(["-smp", &spec.cpus.to_string()])
        .arg("-chardev")
        .arg(format!(
            "socket,id=con0,path={},server=on,wait=off,logfile={}",
            console_sock.display(),
            console_log.display()
        ))
        .args(["-serial", "chardev:con0"]);
        match &spec.disk {
            Some(d) => {
                cmd.arg("-drive")
                    .arg(format!("file={},if=virtio,snapshot=on", d.display()));
            }
            None => {
                cmd.arg("-kernel").arg(&spec.kernel);
                if let Some(i) = &spec.initrd {
                    cmd.arg("-initrd").arg(i);
                }
                cmd.args(["-append", "console=ttyS0 panic=-1 quiet rdinit=/init"]);
            }
        }
        match &spec.tap {
            Some(tap) => {
                cmd.arg("-netdev")
                    .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
                    .arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={}", spec.mac));
            }
            None => {
                cmd.args(["-net", "none"]);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let ns = spec
            .netns
            .as_ref()
            .map(std::fs::File::open)
            .transpose()
            .context("open the host node's namespace")?;
        // SAFETY: setns is an async-signal-safe syscall; nothing is
        // allocated between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(ns) = &ns {
                    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| anyhow!("cannot start {QEMU}: {e} (`apt-get install qemu-system-x86`)"))?;
        Ok(Self {
            name: spec.name.clone(),
            child: Some(child),
            console_log,
            console_sock,
            started: Instant::now(),
            ready_after: None,
        })
    }

    /// The console log's last lines, for error messages.
    pub fn console_tail(&self, lines: usize) -> String {
        let s = std::fs::read_to_string(&self.console_log).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }

    fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => {
                let mut err = String::new();
                if let Some(mut e) = c.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                Some(format!("{st}: {}", err.trim()))
            }
            _ => None,
        }
    }

    /// Waits for the readiness marker on the console, at most `deadline`.
    pub fn wait_ready(&mut self, deadline: Duration) -> Result<()> {
        while !self.poll_ready(deadline)? {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// True once the marker is on the console; an error when QEMU exited,
    /// the guest reported an error, or `deadline` (from start) passed.
    pub fn poll_ready(&mut self, deadline: Duration) -> Result<bool> {
        if self.ready_after.is_some() {
            return Ok(true);
        }
        {
            let log = std::fs::read_to_string(&self.console_log).unwrap_or_default();
            if let Some(l) = log.lines().find(|l| l.contains("VLSP-GUEST-ERROR")) {
                bail!(
                    "guest {}: {l}\n--- console ({}) ---\n{}",
                    self.name,
                    self.console_log.display(),
                    self.console_tail(20)
                );
            }
            if log.contains(READY) {
                self.ready_after = Some(self.started.elapsed());
                return Ok(true);
            }
            if let Some(why) = self.exited() {
                bail!(
                    "guest {}: QEMU exited before the guest was ready ({why})\n--- console ({}) ---\n{}",
                    self.name,
                    self.console_log.display(),
                    self.console_tail(20)
                );
            }
            if self.started.elapsed() > deadline {
                bail!(
                    "guest {}: not ready within {deadline:?}\n--- console ({}) ---\n{}",
                    self.name,
                    self.console_log.display(),
                    self.console_tail(20)
                );
            }
            Ok(false)
        }
    }

    /// Runs `cmd` in the guest's console shell and returns its output and
    /// exit status.
    pub fn exec(&self, cmd: &str, timeout: Duration) -> Result<(String, i32)> {
        let mut s = UnixStream::connect(&self.console_sock).with_context(|| {
            format!(
                "guest {}: console {}",
                self.name,
                self.console_sock.display()
            )
        })?;
        // Drop what the console printed before (the shell's banner, echoes).
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        let mut junk = [0u8; 4096];
        while matches!(s.read(&mut junk), Ok(n) if n > 0) {}
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        let tag = format!("VLSP-DONE-{}", rand::random::<u32>());
        // The echo of the command line contains "$?" unexpanded, so only
        // the real end marker matches "<tag> <digits>".
        writeln!(s, "{cmd}; echo {tag} $?")?;
        let mut r = BufReader::new(s);
        let t0 = Instant::now();
        let mut out = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => bail!("guest {}: console closed", self.name),
                Ok(_) => {
                    let l = line.trim_end();
                    if let Some(rest) = l.strip_prefix(&format!("{tag} "))
                        && let Ok(code) = rest.trim().parse::<i32>()
                    {
                        return Ok((out, code));
                    }
                    if !l.contains(&tag) {
                        out += l;
                        out.push('\n');
                    }
                }
                Err(_) => {}
            }
            if t0.elapsed() > timeout {
                bail!(
                    "guest {}: `{cmd}` did not finish within {timeout:?}; output so far:\n{out}",
                    self.name
                );
            }
        }
    }

    /// Stops QEMU (SIGTERM, then SIGKILL after a second) and reaps it.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(1) {
            if let Ok(Some(_)) = c.try_wait() {
                let _ = std::fs::remove_file(&self.console_sock);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        let _ = std::fs::remove_file(&self.console_sock);
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills a QEMU recorded in a journal (after a crash), but only if `pid`
/// is still that process: its start time must match the recorded one, so a
/// pid the kernel has given to another process since is left alone.
/// Journals older than start times (`start` = `None`) fall back to the
/// process name. Returns whether it signalled.
pub fn kill_recorded(pid: i32, start: Option<u64>) -> bool {
    match start {
        Some(start) => crate::kernel::process::ProcessId { pid, start }.kill_if_same(),
        None => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !comm.trim().starts_with("qemu") {
                return false;
            }
            crate::kernel::process::ProcessId::of(pid).is_some_and(|p| p.kill_if_same())
        }
    }
}

/// A stable locally administered MAC for a virtual node id.
pub fn mac_for(id: u128) -> String {
    let b = (id as u32).to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_newc_layout() {
        let a = cpio(&[Entry::File("init".into(), 0o755, b"hi".to_vec())]);
        // magic, ino 1, mode 100755, ... filesize 2, ..., namesize 5
        assert_eq!(&a[..6], b"070701");
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], b"000081ed");
        assert_eq!(&a[54..62], b"00000002", "filesize");
        assert_eq!(&a[94..102], b"00000005", "namesize");
        assert_eq!(&a[110..115], b"init\0");
        // header 110 + name 5 = 115, padded to 116; data at 116
        assert_eq!(&a[116..118], b"hi");
        assert_eq!(a.len() % 4, 0);
        let trailer = a.windows(10).position(|w| w == b"TRAILER!!!").unwrap();
        assert_eq!(trailer, 120 + 110);
    }

    #[test]
    fn init_configures_the_topology_address_and_prints_the_marker() {
        let s = init_script(
            Some(&GuestNet {
                name: "VM1".into(),
                addr: "10.10.0.1".parse().unwrap(),
                prefix_len: 24,
            }),
            &["virtio.ko".into()],
        );
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains("insmod /lib/modules/virtio.ko"));
        assert!(s.contains("ip addr add 10.10.0.1/24 dev eth0"));
        assert!(s.contains(&format!("echo {READY}")));
    }

    #[test]
    fn module_closure_loads_dependencies_first() {
        let d = std::env::temp_dir().join(format!("vlsp-moddep-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("modules.dep"),
            "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio.ko:\n",
        )
        .unwrap();
        let c = module_closure(&d, &["virtio_pci", "virtio_net"]);
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(
            c,
            [
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_pci.ko",
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
            ]
        );
    }

    #[test]
    fn macs_are_local_and_stable() {
        assert_eq!(mac_for(1), "52:54:00:00:00:01");
        assert_eq!(mac_for(0x0102_0304), "52:54:01:02:03:04");
    }
}
