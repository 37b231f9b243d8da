//! Packet captures on the substrate: an AF_PACKET socket per node namespace
//! records every frame on every interface (both directions), written as one
//! pcap file per interface that tcpdump and Wireshark open. The GIST
//! messages in a capture give the paper's periods [D]..[G] a second time,
//! from the wire, to check the in-memory measurement points against.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use nix::sys::socket::{
    AddressFamily, LinkAddr, SockFlag, SockProtocol, SockType, setsockopt, socket, sockopt,
};

use crate::model::measure::now_ns;
use crate::model::ports::GIST_PORT;
use crate::wire::gist::{MessageType, scan_udp};

/// Bytes kept of each frame.
pub const SNAPLEN: usize = 2048;
const PACKET_OUTGOING: u8 = 4;

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub node: String,
    pub ifname: String,
    /// CLOCK_MONOTONIC, like the measurement points.
    pub mono_ns: u64,
    pub outgoing: bool,
    pub orig_len: usize,
    pub bytes: Vec<u8>,
}

/// A running capture on some nodes.
pub struct Capture {
    /// When `stop` was called (monotonic ns), 0 while capturing.
    stop: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Result<Vec<Frame>>>>,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC at start, for pcap timestamps.
    wall_offset_ns: i128,
}

impl Capture {
    /// Starts capturing in the namespaces of `nodes` of topology `topo`.
    pub fn start(topo: &str, nodes: &[String]) -> Result<Self> {
        let stop = Arc::new(AtomicU64::new(0));
        let mut threads = vec![];
        let mut ready = vec![];
        for n in nodes {
            let ns = crate::kernel::netns::ns_path(&crate::kernel::netns::ns_name(topo, n));
            let node = n.clone();
            let stop = stop.clone();
            let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
            ready.push(rx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("pcap-{n}"))
                    .spawn(move || capture_loop(&ns, &node, &stop, tx))?,
            );
        }
        for r in ready {
            r.recv()
                .map_err(|_| anyhow!("capture thread ended"))?
                .map_err(|e| anyhow!(e))?;
        }
        Ok(Self {
            stop,
            threads,
            wall_offset_ns: realtime_minus_monotonic(),
        })
    }

    /// Stops and returns every frame, in time order.
    pub fn stop(self) -> Result<(Vec<Frame>, i128)> {
        self.stop.store(now_ns().max(1), Ordering::SeqCst);
        let mut all = vec![];
        for t in self.threads {
            all.extend(t.join().map_err(|_| anyhow!("capture thread panicked"))??);
        }
        all.sort_by_key(|f| f.mono_ns);
        Ok((all, self.wall_offset_ns))
    }
}

fn capture_loop(
    ns: &Path,
    node: &str,
    stop: &AtomicU64,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<Vec<Frame>> {
    let open = || -> Result<_> {
        crate::kernel::netns::enter(ns)?;
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .context("AF_PACKET socket (needs root)")?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(0, 20_000),
        )?;
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(8 << 20));
        // Kernel timestamps: when the frame passed the interface, not when
        // this thread got around to reading it.
        setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
        Ok(fd)
    };
    let fd = match open() {
        Ok(fd) => {
            let _ = ready.send(Ok(()));
            fd
        }
        Err(e) => {
            let msg = format!("capture on {node}: {e:#}");
            let _ = ready.send(Err(msg.clone()));
            return Err(anyhow!(msg));
        }
    };
    use std::os::fd::AsRawFd;
    let mut names: BTreeMap<usize, String> = BTreeMap::new();
    let mut out = vec![];
    let mut buf = vec![0u8; 65536];
    // CLOCK_REALTIME → CLOCK_MONOTONIC, to compare with measurement points.
    let offset = realtime_minus_monotonic();
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    // Once stopped, what passed the interface before the stop is still read
    // (without waiting, for at most DRAIN under a flood) and kept, then the
    // loop ends: a frame queued just before the stop is not lost, and one
    // stamped after it is not kept.
    const DRAIN: std::time::Duration = std::time::Duration::from_millis(200);
    let mut stopped_at: Option<std::time::Instant> = None;
    loop {
        let stop_ns = stop.load(Ordering::Relaxed);
        let stopping = stop_ns != 0;
        if stopping {
            let t = *stopped_at.get_or_insert_with(std::time::Instant::now);
            if t.elapsed() > DRAIN {
                break;
            }
        }
        let flags = if stopping {
            nix::sys::socket::MsgFlags::MSG_DONTWAIT
        } else {
            nix::sys::socket::MsgFlags::empty()
        };
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let r =
            nix::sys::socket::recvmsg::<LinkAddr>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), flags);
        let r = match r {
            Ok(r) => r,
            Err(_) if stopping => break,
            Err(_) => continue,
        };
        let Some(addr) = r.address else {
            continue;
        };
        let n = r.bytes;
        let mut at = now_ns();
        if let Ok(mut it) = r.cmsgs()
            && let Some(nix::sys::socket::ControlMessageOwned::ScmTimestampns(ts)) = it.next()
        {
            let real = ts.tv_sec() as i128 * 1_000_000_000 + ts.tv_nsec() as i128;
            at = (real - offset).max(0) as u64;
        }
        // (1 ms of slack for the kernel stamp's conversion to monotonic.)
        if stopping && at > stop_ns + 1_000_000 {
            continue;
        }
        let idx = addr.ifindex();
        let ifname = names
            .entry(idx)
            .or_insert_with(|| {
                nix::net::if_::if_indextoname(idx as u32)
                    .map(|c| c.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| format!("if{idx}"))
            })
            .clone();
        out.push(Frame {
            node: node.to_string(),
            ifname,
            mono_ns: at,
            outgoing: addr.pkttype() == PACKET_OUTGOING,
            orig_len: n,
            bytes: buf[..n.min(SNAPLEN)].to_vec(),
        });
    }
    Ok(out)
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC now, in ns.
pub fn realtime_minus_monotonic() -> i128 {
    let real = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        .unwrap_or(0);
    real - now_ns() as i128
}

/// pcap global header: nanosecond timestamps, Ethernet.
pub fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&(SNAPLEN as u32).to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// One pcap record.
pub fn pcap_record(out: &mut Vec<u8>, wall_ns: u64, orig_len: usize, data: &[u8]) {
    out.extend_from_slice(&((wall_ns / 1_000_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((wall_ns % 1_000_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(orig_len as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// Writes `<dir>/<node>-<ifname>.pcap` per interface (only the `(node,
/// ifname)` pairs in `only`, when given); returns the files.
pub fn write_pcaps(
    dir: &Path,
    frames: &[Frame],
    wall_offset_ns: i128,
    only: Option<&std::collections::HashSet<(String, String)>>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for f in frames {
        if only.is_some_and(|o| !o.contains(&(f.node.clone(), f.ifname.clone()))) {
            continue;
        }
        let b = files
            .entry((f.node.clone(), f.ifname.clone()))
            .or_insert_with(|| pcap_header().to_vec());
        let wall = (f.mono_ns as i128 + wall_offset_ns).max(0) as u64;
        pcap_record(b, wall, f.orig_len, &f.bytes);
    }
    let mut out = vec![];
    for ((node, ifname), bytes) in files {
        let p = dir.join(format!("{node}-{ifname}.pcap"));
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(&bytes))
            .with_context(|| format!("cannot write {}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

// ------------------------------------------------------------ the analysis

/// A GIST message seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GistEvent {
    pub node: String,
    pub ifname: String,
    pub mono_ns: u64,
    pub outgoing: bool,
    pub gist: MessageType,
    /// QoS NSLP message type carried (first byte of NSLP-Data), if any.
    pub nslp: Option<u8>,
    pub sid: Option<[u8; 16]>,
}

/// QoS NSLP message types (RFC 5974 §5.1.1).
pub const NSLP_RESERVE: u8 = 1;
pub const NSLP_RESPONSE: u8 = 3;

/// The GIST message in an Ethernet frame (IPv4, options allowed, UDP 270).
pub fn gist_in_frame(f: &Frame) -> Option<GistEvent> {
    let b = &f.bytes;
    if b.len() < 14 || b[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &b[14..];
    let ihl = (*ip.first()? & 0x0f) as usize * 4;
    if ip.len() < ihl + 8 || ip[9] != 17 {
        return None;
    }
    let udp = &ip[ihl..];
    let (sport, dport) = (
        u16::from_be_bytes([udp[0], udp[1]]),
        u16::from_be_bytes([udp[2], udp[3]]),
    );
    if sport != GIST_PORT && dport != GIST_PORT {
        return None;
    }
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    let payload = udp.get(8..ulen.min(udp.len()))?;
    let v = scan_udp(payload).ok()?;
    let sid = v
        .sid
        .and_then(|r| payload.get(r.start + 4..r.start + 20))
        .and_then(|s| s.try_into().ok());
    let nslp = v.nslp_data.and_then(|r| payload.get(r.start).copied());
    Some(GistEvent {
        node: f.node.clone(),
        ifname: f.ifname.clone(),
        mono_ns: f.mono_ns,
        outgoing: f.outgoing,
        gist: v.header.msg_type,
        nslp,
        sid,
    })
}

/// [D]..[G] of one node for one session, from the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WirePeriods {
    /// Query sent → Confirm sent.
    pub d_ns: Option<u64>,
    /// RESERVE received → RESERVE sent.
    pub e_ns: Option<u64>,
    /// RESPONSE received → RESPONSE sent.
    pub f_ns: Option<u64>,
    /// RESERVE received → RESPONSE sent (the responder's [G]).
    pub g_ns: Option<u64>,
}

/// Derives the wire periods of `node` for session `sid` from `events`.
pub fn wire_periods(events: &[GistEvent], node: &str, sid: &[u8; 16]) -> WirePeriods {
    let mine: Vec<&GistEvent> = events
        .iter()
        .filter(|e| e.node == node && e.sid.as_ref() == Some(sid))
        .collect();
    let first = |pred: &dyn Fn(&GistEvent) -> bool, after: u64| {
        mine.iter()
            .filter(|e| e.mono_ns >= after && pred(e))
            .map(|e| e.mono_ns)
            .min()
    };
    let span =
        |a: Option<u64>, b: &dyn Fn(&GistEvent) -> bool| a.and_then(|a| first(b, a).map(|b| b - a));
    let q_out = first(&|e| e.outgoing && e.gist == MessageType::Query, 0);
    let rsv_in = first(&|e| !e.outgoing && e.nslp == Some(NSLP_RESERVE), 0);
    let rsp_in = first(&|e| !e.outgoing && e.nslp == Some(NSLP_RESPONSE), 0);
    WirePeriods {
        d_ns: span(q_out, &|e| e.outgoing && e.gist == MessageType::Confirm),
        e_ns: span(rsv_in, &|e| e.outgoing && e.nslp == Some(NSLP_RESERVE)),
        f_ns: span(rsp_in, &|e| e.outgoing && e.nslp == Some(NSLP_RESPONSE)),
        g_ns: span(rsv_in, &|e| e.outgoing && e.nslp == Some(NSLP_RESPONSE)),
    }
}

/// Every GIST message of `frames`.
pub fn gist_events(frames: &[Frame]) -> Vec<GistEvent> {
    frames.iter().filter_map(gist_in_frame).collect()
}

/// Compact label of an event for sequence checks, e.g. "tb1>Query(RESERVE)".
pub fn label(e: &GistEvent) -> String {
    let nslp = match e.nslp {
        Some(NSLP_RESERVE) => "(RESERVE)",
        Some(NSLP_RESPONSE) => "(RESPONSE)",
        Some(_) => "(NSLP)",
        None => "",
    };
    format!(
        "{}{}{:?}{nslp}",
        e.node,
        if e.outgoing { ">" } else { "<" },
        e.gist
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_header_is_nanosecond_ethernet() {
        let h = pcap_header();
        assert_eq!(h[0..4], [0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(h[4..8], [2, 0, 4, 0]);
        assert_eq!(h[20..24], [1, 0, 0, 0]);
        let mut r = vec![];
        pcap_record(&mut r, 1_500_000_000_123, 60, &[0xaa; 4]);
        assert_eq!(r[0..4], 1500u32.to_le_bytes());
        assert_eq!(r[4..8], 123u32.to_le_bytes());
        assert_eq!(r[8..12], 4u32.to_le_bytes());
        assert_eq!(r[12..16], 60u32.to_le_bytes());
        assert_eq!(r[16..], [0xaa; 4]);
    }

    fn ev(node: &str, t: u64, out: bool, g: MessageType, n: Option<u8>) -> GistEvent {
        GistEvent {
            node: node.into(),
            ifname: "eth0".into(),
            mono_ns: t,
            outgoing: out,
            gist: g,
            nslp: n,
            sid: Some([1; 16]),
        }
    }

    #[test]
    fn wire_periods_of_a_forwarding_node() {
        use MessageType::*;
        let e = vec![
            ev("tb3", 10, false, Query, Some(NSLP_RESERVE)),
            ev("tb3", 12, true, Query, Some(NSLP_RESERVE)),
            ev("tb3", 20, false, Response, None),
            ev("tb3", 21, true, Confirm, None),
            ev("tb3", 40, false, Data, Some(NSLP_RESPONSE)),
            ev("tb3", 41, true, Data, Some(NSLP_RESPONSE)),
        ];
        let p = wire_periods(&e, "tb3", &[1; 16]);
        assert_eq!(p.d_ns, Some(9));
        assert_eq!(p.e_ns, Some(2));
        assert_eq!(p.f_ns, Some(1));
        assert_eq!(label(&e[1]), "tb3>Query(RESERVE)");
        assert_eq!(wire_periods(&e, "tb3", &[2; 16]), WirePeriods::default());
    }
}
