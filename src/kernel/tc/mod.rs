//! Reservations in the kernel data plane: an HTB tree per substrate egress
//! interface, one class per admitted reservation, and a u32 filter that puts
//! the virtual link's tunnel packets into it. A torn-down reservation's class
//! stays idle for the link's next one (`enforcer`).
//!
//! ```text
//! 1:      root htb: unclassified to 1:ffff, the node's own GIST direct
//! └ 1:1   the link's capacity (rate = ceil = capacity)
//!   ├ 1:ffff   best effort: rate capacity/100, may borrow up to capacity
//!   ├ 1:fffe   other signaling, routing control (GIST UDP 270, C-mode
//!   │          TCP, OSPF, BFD): small guaranteed rate, borrows first
//!   └ 1:N      one reservation: rate = ceil = its TMOD-1 rate, prio 0;
//!              idle between two (no filter, prio 7)
//! ```
//!
//! Signaling has its own class so a best-effort flood on a shaped link
//! cannot drown the RESERVEs that repair a reservation. Routing control
//! shares it (as DiffServ's CS6 is kept from best effort): OSPF hellos lost
//! in a flood end the adjacency and the routes a repair stands on.
//!
//! No crate builds HTB classes, so the messages are built here from
//! `netlink-packet-route` types with the HTB option structs encoded by hand
//! (`tc_htb_glob`, `tc_htb_opt` from `linux/pkt_sched.h`), and sent on a plain
//! blocking netlink socket: a node's actor calls it inline, so admission and
//! installation stay one serial decision, without a `tc` process.

use std::collections::HashMap;

use rtnetlink::packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::tc::{
    TcAttribute, TcFilterU32Option, TcHandle, TcHeader, TcMessage, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use thiserror::Error;

use crate::proto::rmf::Classifier;

mod control;
mod dump;
mod enforcer;
mod fake;
pub use control::TrafficControl;
pub use dump::get_classes;
pub use enforcer::HtbEnforcer;
pub use fake::{FakeClass, FakeLink, FakeTc};

/// Major number of the root HTB qdisc.
pub const MAJOR: u16 = 1;
/// The class holding the link's whole capacity.
pub const TOP_MINOR: u16 = 1;
/// The best-effort class: everything no reservation claims.
pub const BE_MINOR: u16 = 0xffff;
/// The signaling class: GIST and QoS NSLP messages.
pub const SIG_MINOR: u16 = 0xfffe;
/// The node's own signaling as its socket's `SO_PRIORITY`: the root HTB's
/// handle (1:0), which `htb_classify` sends to the direct queue, served
/// before every class with no filter run (issue 17; README, stop 24). Not
/// counted against the shaped capacity. Only CAP_NET_ADMIN or CAP_NET_RAW
/// can set it (forwarded packets get 0..15 from the TOS); the filters put
/// other senders' signaling into [`SIGNALING_CLASS`].
pub const SIGNALING_PRIORITY: i32 = (MAJOR as i32) << 16;
/// Filter priority of the signaling filters: before every reservation's
/// (those use their minor, 2 and up), as a Query's flow addresses may
/// match a reservation's classifier.
pub const SIG_PRIO: u16 = 1;
/// The signaling class's handle as `tc class show` prints it, for code
/// and tests that read `tc` output.
pub const SIGNALING_CLASS: &str = "1:fffe";

/// The HTB priority of an idle class, which no reservation's class has
/// (theirs is 0): what tells an idle class in `tc` output.
pub const IDLE_PRIO: u32 = 7;

/// Whether a line of `tc class show` is a reservation's class at work:
/// one of a reservation's handles ([`is_reservation_class`]), not idle.
pub fn is_reservation_line(line: &str) -> bool {
    line.strip_prefix("class htb ").is_some_and(|rest| {
        is_reservation_class(rest.split_whitespace().next().unwrap_or("")) && !is_idle_line(line)
    })
}

/// Whether a line of `tc class show` is an idle reservation class (see
/// `enforcer`): "prio 7".
pub fn is_idle_line(line: &str) -> bool {
    line.strip_prefix("class htb ").is_some_and(|rest| {
        is_reservation_class(rest.split_whitespace().next().unwrap_or(""))
            && rest.contains(" prio 7 ")
    })
}

/// Whether `handle` (`tc`'s `MAJOR:MINOR`, minor in hex) is a
/// reservation's class: under the root HTB, and none of the link's own
/// (capacity, best effort, signaling).
pub fn is_reservation_class(handle: &str) -> bool {
    let Some((major, minor)) = handle.split_once(':') else {
        return false;
    };
    let (Ok(major), Ok(minor)) = (
        u16::from_str_radix(major, 16),
        u16::from_str_radix(minor, 16),
    ) else {
        return false;
    };
    major == MAJOR && ![TOP_MINOR, BE_MINOR, SIG_MINOR].contains(&minor)
}
/// UDP port of VXLAN (IANA), as the tunnels use it.
pub const VXLAN_PORT: u16 = 4789;

const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
const TC_LINKLAYER_ETHERNET: u8 = 1;
const ETH_P_IP: u16 = 0x0800;
/// Scheduler ticks per microsecond (`/proc/net/psched`: 1000/64); the kernel
/// turns HTB buffer ticks into ns by shifting left 6.
const TICKS_PER_US: f64 = 15.625;
const MTU_BURST: u64 = 1600;

/// Why the kernel did not do what was asked.
#[derive(Debug, Error)]
pub enum QosError {
    #[error("netlink socket: {0} (is this a network namespace we may configure? run as root)")]
    Socket(#[from] std::io::Error),
    #[error("no interface {ifname} in this namespace")]
    NoInterface { ifname: String },
    #[error(
        "{what} on {ifname}: kernel says {} (errno {errno}){}",
        std::io::Error::from_raw_os_error(*errno),
        hint(*errno)
    )]
    Kernel {
        what: String,
        ifname: String,
        errno: i32,
    },
    #[error("{what} on {ifname}: no acknowledgement from the kernel")]
    NoAck { what: String, ifname: String },
}

fn hint(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "; is the link shaped (root HTB 1:)? `vlsp up` shapes every substrate link",
        libc::EEXIST => "; a class or qdisc with this handle is already there",
        libc::EOPNOTSUPP | libc::ENOSYS => {
            "; this kernel lacks sch_htb or cls_u32 (see ../shared/tools/probe-kernel.sh)"
        }
        _ => "",
    }
}

// ------------------------------------------------------------ pure builders

/// `struct tc_htb_glob`: version 3, rate-to-quantum 10, unclassified
/// packets to the best-effort class, no direct queue statistics.
pub fn htb_glob() -> [u8; 20] {
    let mut b = [0u8; 20];
    b[0..4].copy_from_slice(&3u32.to_ne_bytes());
    b[4..8].copy_from_slice(&10u32.to_ne_bytes());
    b[8..12].copy_from_slice(&u32::from(BE_MINOR).to_ne_bytes());
    b
}

/// Bytes the class may send at once: 10 ms of its rate, at least two
/// full-size frames.
fn burst_bytes(rate_bps: u64) -> u64 {
    (rate_bps / 8 / 100).max(2 * MTU_BURST)
}

/// Time to send `bytes` at `rate_bps`, in scheduler ticks.
fn ticks(bytes: u64, rate_bps: u64) -> u32 {
    let us = bytes as f64 * 8.0 * 1e6 / rate_bps.max(1) as f64;
    (us * TICKS_PER_US).min(u32::MAX as f64) as u32
}

/// `struct tc_ratespec` (12 bytes) with the Ethernet link layer, which
/// spares the kernel a rate table.
fn ratespec(rate_bps: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[1] = TC_LINKLAYER_ETHERNET;
    let bytes_ps = (rate_bps / 8).min(u32::MAX as u64) as u32;
    b[8..12].copy_from_slice(&bytes_ps.to_ne_bytes());
    b
}

/// `struct tc_htb_opt` (44 bytes) for a class with `rate_bps` guaranteed
/// and `ceil_bps` at most.
pub fn htb_opt(rate_bps: u64, ceil_bps: u64) -> [u8; 44] {
    let mut b = [0u8; 44];
    b[0..12].copy_from_slice(&ratespec(rate_bps));
    b[12..24].copy_from_slice(&ratespec(ceil_bps));
    b[24..28].copy_from_slice(&ticks(burst_bytes(rate_bps), rate_bps).to_ne_bytes());
    b[28..32].copy_from_slice(&ticks(burst_bytes(ceil_bps), ceil_bps).to_ne_bytes());
    let quantum = (rate_bps / 8 / 10).clamp(MTU_BURST, 200_000) as u32;
    b[32..36].copy_from_slice(&quantum.to_ne_bytes());
    b
}

/// The signaling class's guaranteed rate: 1 % of the link, at least
/// 256 kbit/s (a burst of repair RESERVEs), at most the link.
pub fn sig_rate(capacity_bps: u64) -> u64 {
    (capacity_bps / 100).max(256_000).min(capacity_bps)
}

fn handle(minor: u16) -> TcHandle {
    TcHandle {
        major: MAJOR,
        minor,
    }
}

fn header(ifindex: u32, handle: TcHandle, parent: TcHandle, info: u32) -> TcHeader {
    TcHeader {
        index: ifindex as i32,
        handle,
        parent,
        info,
        ..Default::default()
    }
}

/// The root HTB qdisc `1:`.
pub fn root_qdisc(ifindex: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewQueueDiscipline(TcMessage::from_parts(
        header(ifindex, handle(0), TcHandle::ROOT, 0),
        vec![
            TcAttribute::Kind("htb".into()),
            TcAttribute::Options(vec![TcOption::Other(DefaultNla::new(
                TCA_HTB_INIT,
                htb_glob().to_vec(),
            ))]),
        ],
    ))
}

/// HTB class `1:minor` under `1:parent`.
pub fn class(
    ifindex: u32,
    minor: u16,
    parent: u16,
    rate_bps: u64,
    ceil_bps: u64,
) -> RouteNetlinkMessage {
    class_prio(ifindex, minor, parent, rate_bps, ceil_bps, 0)
}

/// As [`class`], with HTB priority `prio` (0 borrows spare capacity first).
pub fn class_prio(
    ifindex: u32,
    minor: u16,
    parent: u16,
    rate_bps: u64,
    ceil_bps: u64,
    prio: u32,
) -> RouteNetlinkMessage {
    let mut opt = htb_opt(rate_bps, ceil_bps);
    opt[40..44].copy_from_slice(&prio.to_ne_bytes());
    let mut opts = vec![TcOption::Other(DefaultNla::new(
        TCA_HTB_PARMS,
        opt.to_vec(),
    ))];
    // Rates beyond 32 bits of bytes/s (34 Gbit/s) travel separately.
    if rate_bps / 8 > u32::MAX as u64 {
        opts.push(TcOption::Other(DefaultNla::new(
            TCA_HTB_RATE64,
            (rate_bps / 8).to_ne_bytes().to_vec(),
        )));
    }
    if ceil_bps / 8 > u32::MAX as u64 {
        opts.push(TcOption::Other(DefaultNla::new(
            TCA_HTB_CEIL64,
            (ceil_bps / 8).to_ne_bytes().to_vec(),
        )));
    }
    RouteNetlinkMessage::NewTrafficClass(TcMessage::from_parts(
        header(ifindex, handle(minor), handle(parent), 0),
        vec![TcAttribute::Kind("htb".into()), TcAttribute::Options(opts)],
    ))
}

/// `tcm_info` of a filter: priority in the upper half, the EtherType in
/// network order in the lower.
fn filter_info(prio: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(ETH_P_IP.to_be())
}

/// The u32 match keys for `c`, at fixed offsets of an IPv4 header without
/// options (as `tc ... match ip dport` assumes): source, destination,
/// protocol, and for a virtual link the VXLAN port and the VNI (bytes 4..7
/// of the VXLAN header, which follows the 8-byte UDP header).
pub fn u32_keys(c: &Classifier) -> Vec<TcU32Key> {
    let key = |off: i32, val: u32, mask: u32| {
        let mut k = TcU32Key::default();
        k.off = off;
        k.val = val & mask;
        k.mask = mask;
        k
    };
    let mut keys = vec![
        key(12, u32::from(c.src), u32::MAX),
        key(16, u32::from(c.dst), u32::MAX),
        key(8, u32::from(c.protocol) << 16, 0x00ff_0000),
    ];
    if let Some(vni) = c.vni {
        keys.push(key(20, u32::from(VXLAN_PORT), 0x0000_ffff));
        keys.push(key(32, vni << 8, 0xffff_ff00));
    }
    keys
}

/// The u32 keys of each signaling filter: GIST over UDP to port 270 (a
/// plain IPv4 header, and one with the Router Alert option a Q-mode Query
/// carries, IHL 6), C-mode TCP from or to the MA port, OSPF (IP protocol
/// 89) and BFD control (UDP 3784, RFC 5881).
pub fn signaling_keys() -> Vec<Vec<TcU32Key>> {
    let key = |off: i32, val: u32, mask: u32| {
        let mut k = TcU32Key::default();
        k.off = off;
        k.val = val & mask;
        k.mask = mask;
        k
    };
    let ihl = |words: u32| key(0, words << 24, 0x0f00_0000);
    let proto = |p: u32| key(8, p << 16, 0x00ff_0000);
    let gist = u32::from(crate::model::ports::GIST_PORT);
    let ma = u32::from(crate::proto::gist::ma::MA_PORT);
    vec![
        vec![ihl(5), proto(17), key(20, gist, 0x0000_ffff)],
        vec![ihl(6), proto(17), key(24, gist, 0x0000_ffff)],
        vec![ihl(5), proto(6), key(20, ma, 0x0000_ffff)],
        vec![ihl(5), proto(6), key(20, ma << 16, 0xffff_0000)],
        // Any host's protocol-89 packets ride here too: the class is small
        // and only borrows, so a flood of them takes no reservation's rate.
        vec![proto(OSPF_PROTOCOL)],
        vec![ihl(5), proto(17), key(20, BFD_PORT, 0x0000_ffff)],
    ]
}

/// OSPF's IP protocol number (RFC 2328).
const OSPF_PROTOCOL: u32 = 89;
/// BFD control packets' UDP destination port (single hop, RFC 5881).
const BFD_PORT: u32 = 3784;

/// A u32 filter at priority `minor` sending `c`'s packets to class `1:minor`.
pub fn filter(ifindex: u32, minor: u16, c: &Classifier) -> RouteNetlinkMessage {
    u32_filter(ifindex, minor, minor, u32_keys(c))
}

/// A u32 filter at priority `prio` sending packets that match all `keys`
/// to class `1:minor`.
pub fn u32_filter(ifindex: u32, prio: u16, minor: u16, keys: Vec<TcU32Key>) -> RouteNetlinkMessage {
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = keys.len() as u8;
    sel.keys = keys;
    RouteNetlinkMessage::NewTrafficFilter(TcMessage::from_parts(
        header(ifindex, TcHandle::UNSPEC, handle(0), filter_info(prio)),
        vec![
            TcAttribute::Kind("u32".into()),
            TcAttribute::Options(vec![
                TcOption::U32(TcFilterU32Option::ClassId(handle(minor))),
                TcOption::U32(TcFilterU32Option::Selector(sel)),
            ]),
        ],
    ))
}

/// Deletes every filter at priority `minor`.
pub fn del_filter(ifindex: u32, minor: u16) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelTrafficFilter(TcMessage::from_parts(
        header(ifindex, TcHandle::UNSPEC, handle(0), filter_info(minor)),
        vec![],
    ))
}

/// Deletes class `1:minor`.
pub fn del_class(ifindex: u32, minor: u16) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelTrafficClass(TcMessage::from_parts(
        header(ifindex, handle(minor), handle(TOP_MINOR), 0),
        vec![],
    ))
}

/// A request as bytes, ready for the socket.
pub fn serialize(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut h = NetlinkHeader::default();
    h.flags = flags;
    h.sequence_number = seq;
    let mut m = NetlinkMessage::new(h, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    let mut buf = vec![0u8; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

// ------------------------------------------------------------- the socket

/// The same socket error again, for each request it failed.
fn copy_io(e: &std::io::Error) -> std::io::Error {
    e.raw_os_error().map_or_else(
        || std::io::Error::new(e.kind(), e.to_string()),
        std::io::Error::from_raw_os_error,
    )
}

/// A blocking rtnetlink socket in the namespace it was opened in.
pub struct Tc {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
    ifindexes: HashMap<String, u32>,
}

impl Tc {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, QosError> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Self {
            sock,
            seq: 0,
            buf: vec![0u8; 16384],
            ifindexes: HashMap::new(),
        })
    }

    /// Index of `ifname`, looked up once in the calling thread's namespace
    /// (substrate interfaces live as long as the node).
    fn ifindex(&mut self, ifname: &str) -> Result<u32, QosError> {
        if let Some(i) = self.ifindexes.get(ifname) {
            return Ok(*i);
        }
        let i = nix::net::if_::if_nametoindex(ifname).map_err(|_| QosError::NoInterface {
            ifname: ifname.to_string(),
        })?;
        self.ifindexes.insert(ifname.to_string(), i);
        Ok(i)
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        create: bool,
        what: &str,
        ifname: &str,
    ) -> Result<(), QosError> {
        let [r] = self.requests([(msg, create, what)], ifname);
        r
    }

    /// Sends the requests in one `sendmsg` (the kernel runs them in
    /// order) and returns each one's answer: one system call and one
    /// wake-up for all instead of one each.
    fn requests<const N: usize>(
        &mut self,
        reqs: [(RouteNetlinkMessage, bool, &str); N],
        ifname: &str,
    ) -> [Result<(), QosError>; N] {
        let first = self.seq.wrapping_add(1);
        let mut bytes = vec![];
        let whats = reqs.each_ref().map(|(_, _, what)| what.to_string());
        for (msg, create, _) in reqs {
            self.seq = self.seq.wrapping_add(1);
            let mut flags = NLM_F_REQUEST | NLM_F_ACK;
            if create {
                flags |= NLM_F_CREATE | NLM_F_EXCL;
            }
            bytes.extend(serialize(msg, flags, self.seq));
            bytes.resize(bytes.len().next_multiple_of(4), 0);
        }
        let mut out: [Option<Result<(), QosError>>; N] = [const { None }; N];
        let no_ack = |what: &str| QosError::NoAck {
            what: what.to_string(),
            ifname: ifname.to_string(),
        };
        if let Err(e) = self.sock.send(&bytes, 0) {
            return std::array::from_fn(|_| Err(copy_io(&e).into()));
        }
        while out.iter().any(Option::is_none) {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) => {
                    return std::array::from_fn(|i| {
                        out[i].take().unwrap_or_else(|| Err(copy_io(&e).into()))
                    });
                }
            };
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(self.buf[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > n {
                    break;
                }
                let seq = u32::from_ne_bytes(self.buf[off + 8..off + 12].try_into().unwrap());
                let i = seq.wrapping_sub(first) as usize;
                if i < N
                    && out[i].is_none()
                    && let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(
                        &self.buf[off..off + len],
                    )
                    && let NetlinkPayload::Error(e) = m.payload
                {
                    out[i] = Some(match e.code {
                        None => Ok(()),
                        Some(c) => Err(QosError::Kernel {
                            what: whats[i].clone(),
                            ifname: ifname.to_string(),
                            errno: -c.get(),
                        }),
                    });
                }
                off += (len + 3) & !3;
            }
            if n == 0 {
                break;
            }
        }
        std::array::from_fn(|i| out[i].take().unwrap_or_else(|| Err(no_ack(&whats[i]))))
    }

    /// Shapes `ifname` to `capacity_bps`: root HTB, the capacity class and
    /// the best-effort class.
    pub fn shape(&mut self, ifname: &str, capacity_bps: u64) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        self.request(root_qdisc(i), true, "root HTB qdisc 1:", ifname)?;
        self.request(
            class(i, TOP_MINOR, 0, capacity_bps, capacity_bps),
            true,
            "HTB class 1:1 (link capacity)",
            ifname,
        )?;
        let be_rate = (capacity_bps / 100).max(8 * MTU_BURST);
        self.request(
            class_prio(i, BE_MINOR, TOP_MINOR, be_rate, capacity_bps, 1),
            true,
            "HTB class 1:ffff (best effort)",
            ifname,
        )?;
        self.request(
            class_prio(
                i,
                SIG_MINOR,
                TOP_MINOR,
                sig_rate(capacity_bps),
                capacity_bps,
                0,
            ),
            true,
            "HTB class 1:fffe (signaling)",
            ifname,
        )?;
        for keys in signaling_keys() {
            self.request(
                u32_filter(i, SIG_PRIO, SIG_MINOR, keys),
                true,
                "u32 filter prio 1 (signaling)",
                ifname,
            )?;
        }
        Ok(())
    }

    /// Changes the capacity of a link shaped by [`Tc::shape`] in place
    /// (`vlsp apply`): the capacity class and the best-effort ceiling.
    pub fn reshape(&mut self, ifname: &str, capacity_bps: u64) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        let top = class(i, TOP_MINOR, 0, capacity_bps, capacity_bps);
        match self.request(top, false, "HTB class 1:1 (change)", ifname) {
            // Not shaped yet (`Shaping::OnDemand`): shaped now.
            Err(QosError::Kernel {
                errno: libc::ENOENT,
                ..
            }) => return self.shape(ifname, capacity_bps),
            r => r?,
        }
        let be_rate = (capacity_bps / 100).max(8 * MTU_BURST);
        let be = class_prio(i, BE_MINOR, TOP_MINOR, be_rate, capacity_bps, 1);
        self.request(be, false, "HTB class 1:ffff (change)", ifname)?;
        let sig = class_prio(
            i,
            SIG_MINOR,
            TOP_MINOR,
            sig_rate(capacity_bps),
            capacity_bps,
            0,
        );
        self.request(sig, false, "HTB class 1:fffe (change)", ifname)
    }

    /// Adds class `1:minor` at `rate_bps` and the filter for `c`; on error
    /// nothing is left.
    pub fn add(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        // Class and filter in one round trip; the kernel takes a filter
        // whose class is missing, so each undoes the other's success.
        let [class_made, filter_made] = self.class_and_filter(ifname, i, minor, rate_bps, c, true);
        match (class_made, filter_made) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), f) => {
                if f.is_ok() {
                    let _ = self.request(del_filter(i, minor), false, "", ifname);
                }
                Err(e)
            }
            (Ok(()), Err(e)) => {
                let _ = self.request(del_class(i, minor), false, "", ifname);
                Err(e)
            }
        }
    }

    /// Changes the rate of class `1:minor`.
    pub fn change(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        self.put_class(ifname, i, minor, rate_bps, false)
    }

    /// Creates (`create`) or changes class `1:minor` on interface `i` with
    /// rate = ceil = `rate_bps`.
    fn put_class(
        &mut self,
        ifname: &str,
        i: u32,
        minor: u16,
        rate_bps: u64,
        create: bool,
    ) -> Result<(), QosError> {
        let what = if create {
            format!("HTB class 1:{minor:x}")
        } else {
            format!("HTB class 1:{minor:x} (change)")
        };
        self.request(
            class(i, minor, TOP_MINOR, rate_bps, rate_bps),
            create,
            &what,
            ifname,
        )
    }

    /// Class `1:minor` at `rate_bps` (made if `make`, else changed, prio 0)
    /// and the filter for `c`, in one round trip: each one's answer.
    fn class_and_filter(
        &mut self,
        ifname: &str,
        i: u32,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
        make: bool,
    ) -> [Result<(), QosError>; 2] {
        let what = if make {
            format!("HTB class 1:{minor:x}")
        } else {
            format!("HTB class 1:{minor:x} (reuse)")
        };
        self.requests(
            [
                (class(i, minor, TOP_MINOR, rate_bps, rate_bps), make, &what),
                (
                    filter(i, minor, c),
                    true,
                    &format!("u32 filter prio {minor}"),
                ),
            ],
            ifname,
        )
    }

    /// Puts idle class `1:minor` back to work: rate `rate_bps`, prio 0 and
    /// the filter for `c`, in one round trip. Its block is bound already, so
    /// the kernel searches no list of blocks. On error nothing is left.
    pub fn reuse(
        &mut self,
        ifname: &str,
        minor: u16,
        rate_bps: u64,
        c: &Classifier,
    ) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        let [changed, filtered] = self.class_and_filter(ifname, i, minor, rate_bps, c, false);
        match (changed, filtered) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), _) | (Ok(()), Err(e)) => {
                let _ = self.del(ifname, minor);
                Err(e)
            }
        }
    }

    /// Makes class `1:minor` idle, in one round trip: its filter removed
    /// (nothing leads to it any more), then prio [`IDLE_PRIO`] at the rate
    /// it had. What its queue still holds drains at that rate: lowered to
    /// HTB's least, one such packet would leave the class a minute in debt
    /// for its next reservation.
    pub fn idle(&mut self, ifname: &str, minor: u16, rate_bps: u64) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        let [unfiltered, idled] = self.requests(
            [
                (
                    del_filter(i, minor),
                    false,
                    &format!("delete u32 filter prio {minor}"),
                ),
                (
                    class_prio(i, minor, TOP_MINOR, rate_bps, rate_bps, IDLE_PRIO),
                    false,
                    &format!("HTB class 1:{minor:x} (idle)"),
                ),
            ],
            ifname,
        );
        unfiltered.and(idled)
    }

    /// Removes class `1:minor` alone (an idle class has no filter).
    pub fn del_class(&mut self, ifname: &str, minor: u16) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        self.request(
            del_class(i, minor),
            false,
            &format!("delete HTB class 1:{minor:x}"),
            ifname,
        )
    }

    /// Removes the filter and class `1:minor`.
    pub fn del(&mut self, ifname: &str, minor: u16) -> Result<(), QosError> {
        let i = self.ifindex(ifname)?;
        let f = self.request(
            del_filter(i, minor),
            false,
            &format!("delete u32 filter prio {minor}"),
            ifname,
        );
        self.request(
            del_class(i, minor),
            false,
            &format!("delete HTB class 1:{minor:x}"),
            ifname,
        )?;
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn idle_classes_are_told_from_reservations_in_tc_output() {
        let idle = "class htb 1:2 parent 1:1 prio 7 rate 5Mbit ceil 5Mbit burst 6250b cburst 6250b";
        let slow = "class htb 1:3 parent 1:1 prio 0 rate 8bit ceil 8bit burst 3028b cburst 3028b";
        let own = "class htb 1:ffff parent 1:1 prio 7 rate 8bit ceil 8bit";
        assert!(is_idle_line(idle) && !is_reservation_line(idle));
        assert!(is_reservation_line(slow) && !is_idle_line(slow));
        assert!(!is_idle_line(own) && !is_reservation_line(own));
        assert!(!is_idle_line("qdisc htb 1: root") && !is_reservation_line(""));
    }

    #[test]
    fn htb_glob_bytes() {
        assert_eq!(
            htb_glob(),
            [
                3, 0, 0, 0, // version
                10, 0, 0, 0, // rate2quantum
                0xff, 0xff, 0, 0, // defcls 0xffff
                0, 0, 0, 0, // debug
                0, 0, 0, 0, // direct_pkts
            ]
        );
    }

    #[test]
    fn htb_opt_bytes_for_8_mbit() {
        // 8 Mbit/s = 1_000_000 B/s; burst 10 ms = 10_000 B = 10 ms = 156_250 ticks
        let b = htb_opt(8_000_000, 8_000_000);
        let rate = [0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0x42, 0x0f, 0x00];
        assert_eq!(
            b[0..12],
            rate,
            "rate: cell_log, linklayer=ethernet, overhead, cell_align, mpu, 1e6 B/s"
        );
        assert_eq!(b[12..24], rate, "ceil");
        assert_eq!(b[24..28], 156_250u32.to_ne_bytes(), "buffer");
        assert_eq!(b[28..32], 156_250u32.to_ne_bytes(), "cbuffer");
        assert_eq!(b[32..36], 100_000u32.to_ne_bytes(), "quantum = rate/10");
        assert_eq!(b[36..44], [0; 8], "level, prio");
        // small rates keep two full frames of burst and a frame of quantum
        let s = htb_opt(64_000, 64_000);
        assert_eq!(s[32..36], 1600u32.to_ne_bytes());
        assert_eq!(s[24..28], ticks(3200, 64_000).to_ne_bytes());
    }

    #[test]
    fn u32_keys_match_the_vxlan_flow() {
        let c = Classifier {
            src: Ipv4Addr::new(10, 0, 1, 1),
            dst: Ipv4Addr::new(10, 0, 3, 2),
            protocol: 17,
            vni: Some(0x12_3456),
        };
        let k: Vec<(i32, u32, u32)> = u32_keys(&c)
            .iter()
            .map(|k| (k.off, k.val, k.mask))
            .collect();
        assert_eq!(
            k,
            [
                (12, 0x0a00_0101, 0xffff_ffff),
                (16, 0x0a00_0302, 0xffff_ffff),
                (8, 0x0011_0000, 0x00ff_0000),
                (20, 4789, 0x0000_ffff),
                (32, 0x1234_5600, 0xffff_ff00),
            ]
        );
    }

    #[test]
    fn class_message_bytes() {
        let b = serialize(
            class(7, 2, 1, 8_000_000, 8_000_000),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            9,
        );
        // nlmsghdr: length, RTM_NEWTCLASS (40), flags, seq 9, pid 0
        assert_eq!(b[0..4], (b.len() as u32).to_ne_bytes());
        assert_eq!(b[4..6], 40u16.to_ne_bytes());
        assert_eq!(b[6..8], 0x0605u16.to_ne_bytes());
        assert_eq!(b[8..12], 9u32.to_ne_bytes());
        // tcmsg: family 0, ifindex 7, handle 1:2, parent 1:1, info 0
        assert_eq!(b[16..20], [0, 0, 0, 0]);
        assert_eq!(b[20..24], 7i32.to_ne_bytes());
        assert_eq!(b[24..28], 0x0001_0002u32.to_ne_bytes());
        assert_eq!(b[28..32], 0x0001_0001u32.to_ne_bytes());
        // TCA_KIND "htb\0"
        assert_eq!(b[36..44], [8, 0, 1, 0, b'h', b't', b'b', 0]);
        // TCA_OPTIONS (2) holding TCA_HTB_PARMS (1) with the 44-byte tc_htb_opt
        assert_eq!(b[44..46], (4u16 + 4 + 44).to_ne_bytes());
        assert_eq!(b[46..48], 2u16.to_ne_bytes());
        assert_eq!(b[48..52], [48, 0, 1, 0]);
        assert_eq!(b[52..96], htb_opt(8_000_000, 8_000_000));
        assert_eq!(b.len(), 96);
    }

    #[test]
    fn filter_message_carries_priority_and_protocol() {
        let c = Classifier {
            src: Ipv4Addr::new(1, 2, 3, 4),
            dst: Ipv4Addr::new(5, 6, 7, 8),
            protocol: 17,
            vni: None,
        };
        let b = serialize(filter(3, 5, &c), NLM_F_REQUEST, 1);
        assert_eq!(b[4..6], 44u16.to_ne_bytes(), "RTM_NEWTFILTER");
        assert_eq!(b[28..32], 0x0001_0000u32.to_ne_bytes(), "parent 1:");
        // tcm_info: prio 5 << 16 | htons(ETH_P_IP)
        assert_eq!(b[32..36], [0x08, 0x00, 5, 0]);
        assert_eq!(b[36..44], [8, 0, 1, 0, b'u', b'3', b'2', 0]);
    }

    #[test]
    fn signaling_filters_match_gist_c_mode_ospf_and_bfd() {
        let k: Vec<Vec<(i32, u32, u32)>> = signaling_keys()
            .iter()
            .map(|f| f.iter().map(|k| (k.off, k.val, k.mask)).collect())
            .collect();
        assert_eq!(
            k,
            [
                // IHL 5, UDP, destination port 270
                vec![
                    (0, 0x0500_0000, 0x0f00_0000),
                    (8, 0x0011_0000, 0x00ff_0000),
                    (20, 270, 0x0000_ffff)
                ],
                // IHL 6 (Router Alert, a Q-mode Query), UDP, port 270
                vec![
                    (0, 0x0600_0000, 0x0f00_0000),
                    (8, 0x0011_0000, 0x00ff_0000),
                    (24, 270, 0x0000_ffff)
                ],
                // TCP to and from the MA port 30000
                vec![
                    (0, 0x0500_0000, 0x0f00_0000),
                    (8, 0x0006_0000, 0x00ff_0000),
                    (20, 30_000, 0x0000_ffff)
                ],
                vec![
                    (0, 0x0500_0000, 0x0f00_0000),
                    (8, 0x0006_0000, 0x00ff_0000),
                    (20, 30_000 << 16, 0xffff_0000)
                ],
                // OSPF (protocol 89), any header length
                vec![(8, 0x0059_0000, 0x00ff_0000)],
                // BFD control: IHL 5, UDP, destination port 3784
                vec![
                    (0, 0x0500_0000, 0x0f00_0000),
                    (8, 0x0011_0000, 0x00ff_0000),
                    (20, 3784, 0x0000_ffff)
                ],
            ]
        );
        // Prio 1 (before any reservation's filter), to class 1:fffe.
        let b = serialize(
            u32_filter(3, SIG_PRIO, SIG_MINOR, signaling_keys().remove(0)),
            NLM_F_REQUEST,
            1,
        );
        assert_eq!(b[32..36], [0x08, 0x00, 1, 0]);
        let RouteNetlinkMessage::NewTrafficFilter(m) =
            u32_filter(3, SIG_PRIO, SIG_MINOR, signaling_keys().remove(0))
        else {
            panic!()
        };
        let class_id = m.attributes.iter().find_map(|a| match a {
            TcAttribute::Options(o) => o.iter().find_map(|o| match o {
                TcOption::U32(TcFilterU32Option::ClassId(h)) => Some(*h),
                _ => None,
            }),
            _ => None,
        });
        assert_eq!(class_id, Some(handle(SIG_MINOR)));
    }

    #[test]
    fn signaling_class_has_top_priority_and_a_small_guaranteed_rate() {
        let b = serialize(
            class_prio(7, SIG_MINOR, TOP_MINOR, sig_rate(20_000_000), 20_000_000, 0),
            NLM_F_REQUEST,
            1,
        );
        let mut opt = htb_opt(256_000, 20_000_000);
        opt[40..44].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(b[52..96], opt);
        let be = serialize(
            class_prio(7, BE_MINOR, TOP_MINOR, 1, 2, 1),
            NLM_F_REQUEST,
            1,
        );
        assert_eq!(be[92..96], 1u32.to_ne_bytes(), "best effort borrows after");
        assert_eq!(sig_rate(1_000_000_000), 10_000_000);
        assert_eq!(sig_rate(100_000), 100_000);
    }

    #[test]
    fn large_rates_use_64_bit_attributes() {
        let RouteNetlinkMessage::NewTrafficClass(m) =
            class(1, 2, 1, 100_000_000_000, 100_000_000_000)
        else {
            panic!()
        };
        let TcAttribute::Options(o) = &m.attributes[1] else {
            panic!()
        };
        assert_eq!(o.len(), 3);
    }

    #[test]
    fn kernel_errors_name_the_object_and_hint() {
        let e = QosError::Kernel {
            what: "HTB class 1:2".into(),
            ifname: "eth1".into(),
            errno: libc::ENOENT,
        };
        let s = e.to_string();
        assert!(
            s.contains("HTB class 1:2 on eth1") && s.contains("vlsp up"),
            "{s}"
        );
    }
}
