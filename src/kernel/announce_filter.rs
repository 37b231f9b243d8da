//! The route monitor's socket filter: the kernel drops the link
//! announcements of the virtual links' plumbing (tunnel ends, bridges,
//! bridge ports, the VXLAN socket keeper) before they reach the monitor,
//! so making a tunnel end no longer wakes it. Each tunnel end announced
//! itself five or six times, all under the RTNL lock; waking the monitor's
//! thread for each, on an idle CPU or in front of the thread making the
//! tunnel end, made a tunnel end 20 % slower on paper-4node.
//!
//! The filter is narrower than [`super::routes`]' own test of plumbing
//! (for messages that parse), which still runs on what passes: whatever it
//! is unsure of (several messages in a datagram, a name it does not
//! recognise exactly) it lets through. It sits on the all-namespace
//! monitor's listening socket only, which carries no dump replies.

use std::os::fd::RawFd;

use super::bpf::{Line, Line::*, To, assemble};

// Loads at a fixed offset, and of constants.
const LDB: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
const LDH: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_ABS;
const LD_IMM: u32 = libc::BPF_LD | libc::BPF_IMM;
const LDX_IMM: u32 = libc::BPF_LDX | libc::BPF_IMM;
/// `A` = the kernel's answer to an ancillary query (`SKF_AD_*`).
const LD_ANC: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
// Loads at `X` + offset.
const LDB_X: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_IND;
const LDH_X: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_IND;
const LDW_X: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_IND;
// Moves, jumps, returns.
const TAX: u32 = libc::BPF_MISC | libc::BPF_TAX;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JGT: u32 = libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

/// `A` = the offset of the attribute of type `X` among the netlink
/// attributes that start at offset `A`, or 0.
const NLATTR: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_NLATTR) as u32;
/// `A` = the offset of the attribute of type `X` nested in the attribute
/// at offset `A`, or 0.
const NLATTR_NEST: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_NLATTR_NEST) as u32;

/// Where a link message's attributes start: `nlmsghdr` and `ifinfomsg`.
const ATTRS: u32 = 32;
const IFLA_IFNAME: u32 = 3;
const IFLA_MASTER: u32 = 10;
const IFLA_LINKINFO: u32 = 18;
const IFLA_INFO_KIND: u32 = 1;
const AF_BRIDGE: u32 = libc::AF_BRIDGE as u32;

/// Absolute loads read big-endian; netlink is host-endian (little on the
/// machines this runs on; on a big-endian one nothing matches, so all
/// passes to the monitor's own test).
const fn le16(v: u16) -> u32 {
    v.swap_bytes() as u32
}

const fn be32(s: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*s)
}

const fn be16(s: &[u8; 2]) -> u32 {
    u16::from_be_bytes(*s) as u32
}

/// The program; see the module comment. Offsets are those of one
/// `RTM_NEWLINK`/`RTM_DELLINK` message: `nlmsghdr` (length 0..4, type
/// 4..6), `ifinfomsg` (family at 16), attributes from 32.
fn program() -> Vec<libc::sock_filter> {
    let accept = To::Label("accept");
    let drop = To::Label("drop");
    let mut p: Vec<Line> = vec![
        // A link announcement; anything else passes (a load past the end
        // would drop the datagram, hence the length first).
        Ins(libc::BPF_LD | libc::BPF_W | libc::BPF_LEN, 0),
        Jump(JGE, 16, To::Next, accept),
        Ins(LDH, 4),
        Jump(JEQ, le16(libc::RTM_NEWLINK), To::Label("link"), To::Next),
        Jump(JEQ, le16(libc::RTM_DELLINK), To::Next, accept),
        Label("link"),
        // Alone in the datagram: its length (little-endian, under 64 KiB)
        // is the datagram's, and the attributes are there.
        Ins(LDB, 3),
        Jump(JEQ, 0, To::Next, accept),
        Ins(LDB, 2),
        Jump(JEQ, 0, To::Next, accept),
        Ins(LDB, 1),
        Ins(libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K, 8),
        Ins(TAX, 0),
        Ins(LDB, 0),
        Ins(libc::BPF_ALU | libc::BPF_OR | libc::BPF_X, 0),
        Ins(TAX, 0),
        Ins(libc::BPF_LD | libc::BPF_W | libc::BPF_LEN, 0),
        Jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_X,
            0,
            To::Next,
            accept,
        ),
        Jump(JGE, ATTRS + 4, To::Next, accept),
        // A bridge-port notification.
        Ins(LDB, 16),
        Jump(JEQ, AF_BRIDGE, drop, To::Next),
        // A port of a bridge.
        Ins(LDX_IMM, IFLA_MASTER),
        Ins(LD_IMM, ATTRS),
        Ins(LD_ANC, NLATTR),
        Jump(JEQ, 0, To::Next, drop),
        // A bridge: IFLA_LINKINFO { IFLA_INFO_KIND "bridge" }.
        Ins(LDX_IMM, IFLA_LINKINFO),
        Ins(LD_IMM, ATTRS),
        Ins(LD_ANC, NLATTR),
        Jump(JEQ, 0, To::Label("name"), To::Next),
        Ins(LDX_IMM, IFLA_INFO_KIND),
        Ins(LD_ANC, NLATTR_NEST),
        Jump(JEQ, 0, To::Label("name"), To::Next),
        Ins(TAX, 0),
        Ins(LDH_X, 0),
        Jump(JEQ, le16(4 + 7), To::Next, To::Label("name")),
        Ins(LDW_X, 4),
        Jump(JEQ, be32(b"brid"), To::Next, To::Label("name")),
        Ins(LDH_X, 8),
        Jump(JEQ, be16(b"ge"), To::Next, To::Label("name")),
        Ins(LDB_X, 10),
        Jump(JEQ, 0, drop, To::Label("name")),
        // The name: the socket keeper, or a tunnel end.
        Label("name"),
        Ins(LDX_IMM, IFLA_IFNAME),
        Ins(LD_IMM, ATTRS),
        Ins(LD_ANC, NLATTR),
        Jump(JEQ, 0, accept, To::Next),
        Ins(TAX, 0),
        Ins(LDH_X, 0),
        Jump(JEQ, le16(4 + 9), To::Label("end"), To::Next),
        Jump(JEQ, le16(4 + 7), To::Next, accept),
        // "vxkeep\0" (`tunnel::SOCKET_KEEPER`).
        Ins(LDW_X, 4),
        Jump(JEQ, be32(b"vxke"), To::Next, accept),
        Ins(LDH_X, 8),
        Jump(JEQ, be16(b"ep"), To::Next, accept),
        Ins(LDB_X, 10),
        Jump(JEQ, 0, drop, accept),
        // "vl" and six lowercase hex digits (`TunnelEnd::ifname`).
        Label("end"),
        Ins(LDH_X, 4),
        Jump(JEQ, be16(b"vl"), To::Next, accept),
        Ins(LDB_X, 12),
        Jump(JEQ, 0, To::Next, accept),
    ];
    const DIGIT: [&str; 6] = ["d0", "d1", "d2", "d3", "d4", "d5"];
    for (i, next) in DIGIT.iter().enumerate() {
        p.extend([
            Ins(LDB_X, 6 + i as u32),
            Jump(JGE, b'0'.into(), To::Next, accept),
            Jump(JGT, b'f'.into(), accept, To::Next),
            Jump(JGT, b'9'.into(), To::Next, To::Label(next)),
            Jump(JGE, b'a'.into(), To::Label(next), accept),
            Label(next),
        ]);
    }
    p.extend([
        Label("drop"),
        Ins(RET, 0),
        Label("accept"),
        Ins(RET, u32::MAX),
    ]);
    assemble(&p)
}

/// Attaches the filter to a route monitor's netlink socket.
pub fn attach(fd: RawFd) -> std::io::Result<()> {
    super::bpf::attach(fd, &program(), "the route monitor's netlink socket")
}

#[cfg(test)]
mod tests {
    //! The kernel runs the program on exact bytes: a Unix datagram socket
    //! runs its receiver's filter on each datagram sent to it (and drops
    //! what the filter drops without telling the sender).
    use super::*;
    use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
    use rtnetlink::packet_route::route::RouteMessage;
    use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    fn bytes(m: RouteNetlinkMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(m));
        m.finalize();
        let mut b = vec![0; m.buffer_len()];
        m.serialize(&mut b);
        b
    }

    fn link(name: &str, extra: Vec<LinkAttribute>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l.attributes.extend(extra);
        l
    }

    fn new(l: LinkMessage) -> Vec<u8> {
        bytes(RouteNetlinkMessage::NewLink(l))
    }

    /// Whether the kernel's run of the program lets `datagram` through.
    fn passes(datagram: &[u8]) -> bool {
        let (tx, rx) = UnixDatagram::pair().expect("socketpair");
        attach(rx.as_raw_fd()).expect("attach");
        tx.send(datagram).expect("send");
        rx.set_nonblocking(true).expect("nonblocking");
        let mut buf = vec![0; datagram.len() + 1];
        match rx.recv(&mut buf) {
            Ok(n) => {
                assert_eq!(&buf[..n], datagram, "passed whole");
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("recv: {e}"),
        }
    }

    #[test]
    fn plumbing_is_dropped_in_the_kernel() {
        let mut note = link("eth9", vec![]);
        note.header.interface_family = AddressFamily::Bridge;
        let kind = LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]);
        let gone = RouteNetlinkMessage::DelLink(link("vl00a1ff", vec![]));
        let port = link("vn0v7", vec![LinkAttribute::Controller(4)]);
        for (what, d) in [
            ("tunnel end", new(link("vl00a1ff", vec![]))),
            ("tunnel end", new(link("vl9b3c0e", vec![]))),
            ("tunnel end gone", bytes(gone)),
            ("socket keeper", new(link("vxkeep", vec![]))),
            ("bridge port", new(port)),
            ("bridge", new(link("br0v7", vec![kind]))),
            ("bridge-port notification", new(note)),
        ] {
            assert!(!passes(&d), "{what}");
            // Never broader than the monitor's own test.
            assert!(!crate::kernel::routes::announces_change(&d), "{what}");
        }
    }

    #[test]
    fn substrate_links_routes_and_anything_unsure_pass() {
        assert!(passes(&new(link("eth1", vec![]))));
        assert!(passes(&new(link("tb1-tb2", vec![]))));
        let veth = LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]);
        assert!(passes(&new(link("tb1-tb2", vec![veth]))));
        let other = LinkInfo::Kind(InfoKind::Other("bridgx".into()));
        let near = LinkAttribute::LinkInfo(vec![other]);
        assert!(passes(&new(link("br0v7", vec![near]))));
        assert!(passes(&bytes(RouteNetlinkMessage::NewRoute(
            RouteMessage::default()
        ))));
        // Near misses of the plumbing names.
        for name in [
            "vl00a1f",
            "vl00a1ff0",
            "vl00a1fg",
            "vl00A1FF",
            "vl00a1f/",
            "vl00a1f:",
            "vl00a1f`",
            "vm00a1ff",
            "vxkeeq",
            "vxkee",
        ] {
            assert!(passes(&new(link(name, vec![]))), "{name}");
        }
        // Two messages in one datagram, a truncated one, no name, junk.
        let mut two = new(link("vl00a1ff", vec![]));
        two.extend(new(link("vl00a1ff", vec![])));
        assert!(passes(&two));
        let one = new(link("vl00a1ff", vec![]));
        assert!(passes(&one[..one.len() - 4]));
        assert!(passes(&new(LinkMessage::default())));
        assert!(passes(&[0xff; 40]));
        assert!(passes(&[0x10; 5]));
        assert!(passes(&[]));
    }

    #[test]
    fn captured_tunnel_end_announcements_are_dropped_and_the_route_passes() {
        let capture = include_str!("../../tests/data/netlink/all-nsid-announcements.txt");
        let verdicts: Vec<bool> = capture
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let hex = l.split_whitespace().nth(3).expect("datagram");
                passes(&crate::model::unhex(hex).expect("hex"))
            })
            .collect();
        assert_eq!(verdicts, vec![true, false, false]);
    }
}
