//! The project's own traffic generator: paced UDP senders and counting
//! receivers, each on a thread inside a namespace, for the QoS experiments.
//!
//! Rates are *substrate wire rates*: a packet of `payload` bytes occupies
//! `payload + overhead` bytes on a substrate link (for a virtual link that
//! is the inner UDP/IP/Ethernet headers plus VXLAN/UDP/IP/Ethernet outside,
//! 92 bytes), which is what an HTB class on the substrate counts and what a
//! reservation's rate is measured against.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

/// Bytes a packet carried in a VXLAN virtual link occupies on a substrate
/// link beyond its UDP payload: inner UDP 8 + IP 20 + Ethernet 14, outer
/// VXLAN 8 + UDP 8 + IP 20 + Ethernet 14.
pub const VXLAN_OVERHEAD: usize = 92;
/// The same for a plain UDP packet on a substrate link: UDP, IP, Ethernet.
pub const UDP_OVERHEAD: usize = 42;

/// One paced sender.
#[derive(Debug, Clone)]
pub struct SendSpec {
    pub flow: String,
    /// Namespace file to send from.
    pub netns: PathBuf,
    pub dst: SocketAddrV4,
    pub payload: usize,
    pub overhead: usize,
    /// Offered substrate wire rate.
    pub wire_bps: u64,
    /// Active from `start` to `stop` after the common start instant.
    pub start: Duration,
    pub stop: Duration,
}

/// Counts of one flow in one interval, at the receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    pub packets: u64,
    pub payload_bytes: u64,
}

/// What a receiver saw.
#[derive(Debug, Clone)]
pub struct Received {
    pub flow: String,
    pub intervals: Vec<Interval>,
    /// Highest sequence number seen + 1 (the sender numbers from 0).
    pub highest: u64,
}

fn in_netns<T: Send + 'static>(
    netns: PathBuf,
    name: String,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<JoinHandle<Result<T>>> {
    Ok(std::thread::Builder::new().name(name).spawn(move || {
        crate::kernel::netns::enter(&netns)?;
        f()
    })?)
}

/// Starts a receiver counting per `interval` from `t0` for `duration`.
pub fn receive(
    flow: &str,
    netns: PathBuf,
    bind: SocketAddrV4,
    t0: Instant,
    interval: Duration,
    duration: Duration,
) -> Result<JoinHandle<Result<Received>>> {
    let flow = flow.to_string();
    let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let h = in_netns(netns, format!("rx-{flow}"), move || {
        let s = match UdpSocket::bind(bind) {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return Err(anyhow!("receiver {flow}: bind {bind}"));
            }
        };
        let _ =
            nix::sys::socket::setsockopt(&s.as_fd(), nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
        s.set_read_timeout(Some(Duration::from_millis(20)))?;
        let n = (duration.as_nanos() / interval.as_nanos()).max(1) as usize;
        let mut out = Received {
            flow: flow.clone(),
            intervals: vec![Interval::default(); n],
            highest: 0,
        };
        let mut buf = vec![0u8; 65536];
        while t0.elapsed() < duration {
            let Ok(len) = s.recv(&mut buf) else {
                continue;
            };
            let i = (t0.elapsed().as_nanos() / interval.as_nanos()) as usize;
            if let Some(iv) = out.intervals.get_mut(i) {
                iv.packets += 1;
                iv.payload_bytes += len as u64;
            }
            if len >= 8 {
                let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                out.highest = out.highest.max(seq + 1);
            }
        }
        Ok(out)
    })?;
    rx.recv()
        .map_err(|_| anyhow!("receiver thread ended before binding"))?
        .with_context(|| format!("receiver bound to {bind}"))?;
    Ok(h)
}

/// Starts a paced sender; returns the number of packets it handed to the
/// kernel (packets the kernel refused at once are not counted).
pub fn send(
    spec: SendSpec,
    t0: Instant,
    stop_all: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<u64>>> {
    in_netns(spec.netns.clone(), format!("tx-{}", spec.flow), move || {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_nonblocking(true)?;
        // A greedy sender must be able to fill the bottleneck's queue, not
        // just its own socket buffer.
        let _ = nix::sys::socket::setsockopt(
            &s.as_fd(),
            nix::sys::socket::sockopt::SndBufForce,
            &(32 << 20),
        );
        let wire = (spec.payload + spec.overhead) as f64 * 8.0;
        let pps = spec.wire_bps as f64 / wire;
        let mut pkt = vec![0u8; spec.payload.max(8)];
        let mut seq: u64 = 0;
        let mut sent: u64 = 0;
        let begin = t0 + spec.start;
        let end = t0 + spec.stop;
        while Instant::now() < begin {
            std::thread::sleep(Duration::from_millis(1));
        }
        while !stop_all.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let due = ((now - begin).as_secs_f64() * pps) as u64;
            while seq < due {
                pkt[..8].copy_from_slice(&seq.to_be_bytes());
                seq += 1;
                if s.send_to(&pkt, spec.dst).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Ok(sent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overheads_add_up() {
        assert_eq!(VXLAN_OVERHEAD, 8 + 20 + 14 + 8 + 8 + 20 + 14);
        assert_eq!(UDP_OVERHEAD, 8 + 20 + 14);
    }
}
