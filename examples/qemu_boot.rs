//! Boots one busybox guest (no network) with the accelerator the KVM probe
//! picks and prints the boot time: `cargo run --release --example qemu_boot`.
use std::time::Duration;
use vlsp::kernel::qemu::{Guest, GuestSpec, accel, cache_dir, default_kernel, initramfs};

fn main() -> anyhow::Result<()> {
    let kernel = default_kernel()?;
    let t = std::time::Instant::now();
    let initrd = initramfs(&cache_dir(), &kernel, None)?;
    println!("initramfs {} in {:?}", initrd.display(), t.elapsed());
    let a = accel(&kernel, Duration::from_secs(3))?;
    println!("accelerator: {} ({})", a.name, a.why);
    let dir = std::env::temp_dir().join("vlsp-qemu-boot");
    for i in 0..3 {
        let mut g = Guest::start(&GuestSpec {
            name: format!("boot{i}"),
            kernel: kernel.clone(),
            initrd: Some(initrd.clone()),
            disk: None,
            memory_mb: 256,
            cpus: 1,
            accel: a.name.clone(),
            tap: None,
            mac: "52:54:00:00:00:02".into(),
            netns: None,
            dir: dir.clone(),
        })?;
        g.wait_ready(Duration::from_secs(60))?;
        println!("boot {i}: ready after {:?}", g.started.elapsed());
        let (out, code) = g.exec("uname -r", Duration::from_secs(5))?;
        println!("  uname -r -> {code}: {}", out.trim());
        g.stop();
    }
    Ok(())
}
