//! Root test of the Router Alert socket's binding: a node's raw UDP socket
//! is bound to the loopback address so that the kernel stops handing it a
//! copy of every UDP datagram delivered to the node, while it still takes
//! the Router Alert datagrams the node forwards (GIST's Q-mode
//! interception). Three fresh namespaces: a sender, a router running the
//! socket, and a receiver behind the router.

mod common;

use common::{Netns, in_netns, ip_in as ip, require_root};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// The payloads of the UDP datagrams queued on raw socket `fd`.
fn payloads(fd: &OwnedFd) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(n) => {
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                out.push(buf[ihl + 8..n].to_vec());
            }
            Err(_) => return out,
        }
    }
}

#[test]
fn the_router_alert_socket_takes_forwarded_alerts_but_no_local_copies() {
    if !require_root("the_router_alert_socket_takes_forwarded_alerts_but_no_local_copies") {
        return;
    }
    let id = std::process::id();
    let (a, r, b) = (
        Netns::add(format!("vlsp-raa-{id}")),
        Netns::add(format!("vlsp-rar-{id}")),
        Netns::add(format!("vlsp-rab-{id}")),
    );
    let (a, r, b) = (&a.0, &r.0, &b.0);
    ip(a, &format!("link add va type veth peer name ra netns {r}"));
    ip(b, &format!("link add vb type veth peer name rb netns {r}"));
    ip(a, "addr add 10.78.1.1/24 dev va");
    ip(r, "addr add 10.78.1.2/24 dev ra");
    ip(r, "addr add 10.78.2.2/24 dev rb");
    ip(b, "addr add 10.78.2.1/24 dev vb");
    // A node address on the router's loopback, as `vlsp up` gives it.
    ip(r, "addr add 10.78.9.1/32 dev lo");
    for (ns, dev) in [(a, "va"), (r, "ra"), (r, "rb"), (r, "lo"), (b, "vb")] {
        ip(ns, &format!("link set {dev} up"));
    }
    ip(a, "route add default via 10.78.1.2");
    ip(b, "route add default via 10.78.2.2");
    let forwarding = std::process::Command::new("ip")
        .args(["netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .status()
        .unwrap();
    assert!(forwarding.success());

    // On the router: the node's socket, and an unbound raw UDP socket (what
    // the node's was) as the premise.
    let (alert, plain) = in_netns(r, || {
        use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
        let alert = vlsp::kernel::sockets::router_alert_socket().unwrap();
        let plain = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::Udp,
        )
        .unwrap();
        (alert, plain)
    });
    let receiver = in_netns(b, || UdpSocket::bind("0.0.0.0:4444").unwrap());
    receiver.set_nonblocking(true).unwrap();
    in_netns(a, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let ra = vlsp::kernel::sockets::ROUTER_ALERT;
        // SAFETY: `ra` outlives the call and the length is its own.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_OPTIONS,
                ra.as_ptr().cast(),
                ra.len() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "IP_OPTIONS: {}", std::io::Error::last_os_error());
        let to = |a: [u8; 4]| SocketAddrV4::new(Ipv4Addr::from(a), 4444);
        s.send_to(b"passing through", to([10, 78, 2, 1])).unwrap();
        s.send_to(b"for the router", to([10, 78, 9, 1])).unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));

    assert_eq!(
        payloads(&alert),
        [b"passing through".to_vec()],
        "the node's socket takes the forwarded alert and nothing delivered locally"
    );
    assert_eq!(
        payloads(&plain),
        [b"for the router".to_vec()],
        "an unbound raw socket gets a copy of what is delivered locally"
    );
    let mut buf = [0u8; 64];
    assert!(
        receiver.recv(&mut buf).is_err(),
        "the intercepted alert was not forwarded"
    );
}
