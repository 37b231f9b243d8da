//! How long a thread woken onto an idle CPU waits before it runs, by how
//! long that CPU was idle (issue 17, stop 35). A waiter pinned to the last
//! CPU this process may use blocks on a channel; the main thread, pinned to
//! the first, sleeps for the gap, then sends and measures until the waiter
//! has run. "Idle" means this program left the CPU alone for the gap; on a
//! quiet machine nothing else runs there either. On this machine kind (a
//! virtual machine) an idle vCPU is halted by the host, and waking it costs
//! far more than on bare metal: what the kernel thread of a node pays when
//! the first setup after a quiet spell hands it work.
//!
//! `cargo run --release --example vcpu_wake -- [ROUNDS]` (default 200 per
//! gap). Needs two CPUs; not root.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

const GAPS_US: [u64; 4] = [100, 1_000, 5_000, 35_000];

fn pin(cpu: usize) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(200), |a| a.parse())?;
    anyhow::ensure!(rounds > 0, "ROUNDS must be at least 1");
    let mask = sched_getaffinity(Pid::from_raw(0))?;
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| mask.is_set(c).unwrap_or(false))
        .collect();
    let (first, last) = match (cpus.first(), cpus.last()) {
        (Some(&f), Some(&l)) if f != l => (f, l),
        _ => anyhow::bail!("needs two CPUs; this process may use {cpus:?}"),
    };
    let epoch = Instant::now();
    let ran = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<()>();
    let (ready_tx, ready) = mpsc::channel::<anyhow::Result<()>>();
    let seen = ran.clone();
    let waiter = std::thread::spawn(move || {
        // Pinned before the first round is timed; a failure ends the run.
        let _ = ready_tx.send(pin(last));
        while rx.recv().is_ok() {
            seen.store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
        }
    });
    ready.recv()??;
    pin(first)?;
    println!(
        "wake -> run of a thread on CPU {last}, woken from CPU {first}, by idle time before \
         ({rounds} rounds each):"
    );
    for gap in GAPS_US {
        let mut d = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_micros(gap));
            ran.store(0, Ordering::Release);
            let sent = epoch.elapsed().as_nanos() as u64;
            tx.send(())?;
            let t = loop {
                match ran.load(Ordering::Acquire) {
                    0 => std::hint::spin_loop(),
                    t => break t,
                }
            };
            d.push(t.saturating_sub(sent));
        }
        d.sort_unstable();
        let q = |p: usize| d[(d.len() - 1) * p / 100] as f64 / 1000.0;
        println!(
            "  idle {:>6} µs: p10 {:6.1}  median {:6.1}  p90 {:6.1} µs",
            gap,
            q(10),
            q(50),
            q(90)
        );
    }
    drop(tx);
    waiter
        .join()
        .map_err(|_| anyhow::anyhow!("the waiting thread panicked"))?;
    Ok(())
}
