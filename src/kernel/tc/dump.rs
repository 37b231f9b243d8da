//! What reservation classes a link holds: a dump of its classes, read by
//! the fixed offsets of `nlmsghdr` and `tcmsg`.

use rtnetlink::packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::tc::{TcHandle, TcMessage};

use super::{BE_MINOR, MAJOR, QosError, SIG_MINOR, TOP_MINOR, Tc, header, serialize};

/// Asks for every class of interface `ifindex` (sent with `NLM_F_DUMP`).
pub fn get_classes(ifindex: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetTrafficClass(TcMessage::from_parts(
        header(ifindex, TcHandle::UNSPEC, TcHandle::UNSPEC, 0),
        vec![],
    ))
}

/// Whether class `h` is a reservation's (`1:N`, none of the link's own),
/// as [`is_reservation_class`] tells it from `tc` output.
fn is_reservation_handle(h: TcHandle) -> bool {
    h.major == MAJOR && ![0, TOP_MINOR, BE_MINOR, SIG_MINOR].contains(&h.minor)
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWTCLASS: u16 = 40;

/// Reads one datagram of a class dump (`nlmsghdr` and `tcmsg` by their
/// fixed offsets, so no message the crate cannot parse is skipped) into
/// `minors`: the reservation classes of interface `ifindex` in answers to
/// `seq`. `Some` when the dump ended: `Ok` at `NLMSG_DONE`, the errno of
/// an error (also one carried by `NLMSG_DONE`).
fn read_class_dump(
    buf: &[u8],
    seq: u32,
    ifindex: u32,
    minors: &mut Vec<u16>,
) -> Option<Result<(), i32>> {
    let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let mut off = 0;
    while off < buf.len() {
        let len = match buf.get(off..off + 4) {
            Some(b) => u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize,
            None => return Some(Err(libc::EPROTO)),
        };
        // The kernel never splits a message: one cut short would leave the
        // dump's end unread, and its reader waiting for it.
        let Some(m) = off.checked_add(len).and_then(|end| buf.get(off..end)) else {
            return Some(Err(libc::EPROTO));
        };
        if len < 16 {
            return Some(Err(libc::EPROTO));
        }
        off += len.next_multiple_of(4);
        if u32_at(m, 8) != seq {
            continue;
        }
        let kind = u16::from_ne_bytes([m[4], m[5]]);
        // NLMSG_ERROR always carries its code; NLMSG_DONE may.
        let errno = match (kind, m.len() >= 20) {
            (_, true) => (u32_at(m, 16) as i32).wrapping_neg(),
            (NLMSG_ERROR, false) => libc::EPROTO,
            (_, false) => 0,
        };
        match kind {
            NLMSG_DONE | NLMSG_ERROR => {
                return Some(match errno {
                    0 => Ok(()),
                    e => Err(e),
                });
            }
            // tcmsg: family, 3 bytes of padding, ifindex, handle, parent, info.
            RTM_NEWTCLASS if m.len() >= 36 && u32_at(m, 20) == ifindex => {
                let h = u32_at(m, 24);
                let handle = TcHandle {
                    major: (h >> 16) as u16,
                    minor: h as u16,
                };
                if is_reservation_handle(handle) {
                    minors.push(handle.minor);
                }
            }
            _ => {}
        }
    }
    None
}

impl Tc {
    /// The minors of the reservation classes on `ifname`, at work or idle,
    /// whoever made them (a dump of its classes).
    pub fn reservation_minors(&mut self, ifname: &str) -> Result<Vec<u16>, QosError> {
        let i = self.ifindex(ifname)?;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let what = "dump of HTB classes";
        let kernel = |errno: i32| QosError::Kernel {
            what: what.to_string(),
            ifname: ifname.to_string(),
            errno,
        };
        self.sock.send(
            &serialize(get_classes(i), NLM_F_REQUEST | NLM_F_DUMP, seq),
            0,
        )?;
        let mut minors = vec![];
        loop {
            // An error here leaves the kernel's dump unfinished; the next
            // dump on this socket is refused (EBUSY) until it is read out,
            // and the sweep that asked tries again at the next reservation.
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            if n == 0 {
                return Err(QosError::NoAck {
                    what: what.to_string(),
                    ifname: ifname.to_string(),
                });
            }
            match read_class_dump(&self.buf[..n], seq, i, &mut minors) {
                Some(Ok(())) => return Ok(minors),
                Some(Err(errno)) => return Err(kernel(errno)),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_dump_request_bytes() {
        let got = serialize(get_classes(7), NLM_F_REQUEST | NLM_F_DUMP, 9);
        #[rustfmt::skip]
        let want = [
            36, 0, 0, 0,    // nlmsg_len: header 16 + tcmsg 20
            42, 0,          // RTM_GETTCLASS
            0x01, 0x03,     // NLM_F_REQUEST | NLM_F_DUMP
            9, 0, 0, 0,     // sequence
            0, 0, 0, 0,     // port id: the kernel's
            0, 0, 0, 0,     // tcm_family, padding
            7, 0, 0, 0,     // tcm_ifindex: that interface's classes only
            0, 0, 0, 0,     // tcm_handle
            0, 0, 0, 0,     // tcm_parent
            0, 0, 0, 0,     // tcm_info
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_class_dump_is_read_to_its_end() {
        // One class message: nlmsghdr (len, type, flags, seq, pid), then
        // tcmsg (family, pad, ifindex, handle, parent, info); attributes
        // follow in the kernel's, and are not read.
        let class = |seq: u32, ifindex: u32, handle: u32| {
            let mut m = vec![];
            m.extend(40u32.to_ne_bytes());
            m.extend(RTM_NEWTCLASS.to_ne_bytes());
            m.extend(2u16.to_ne_bytes()); // NLM_F_MULTI
            m.extend(seq.to_ne_bytes());
            m.extend(0u32.to_ne_bytes());
            m.extend([0, 0, 0, 0]);
            m.extend(ifindex.to_ne_bytes());
            m.extend(handle.to_ne_bytes());
            m.extend(0x0001_0001u32.to_ne_bytes());
            m.extend(0u32.to_ne_bytes());
            m.extend([0, 0, 0, 0]); // an attribute's worth of padding
            m
        };
        let done = |seq: u32, err: i32| {
            let mut m = vec![];
            m.extend(20u32.to_ne_bytes());
            m.extend(NLMSG_DONE.to_ne_bytes());
            m.extend(2u16.to_ne_bytes());
            m.extend(seq.to_ne_bytes());
            m.extend(0u32.to_ne_bytes());
            m.extend(err.to_ne_bytes());
            m
        };
        let mut minors = vec![];
        // 1:2 and 1:3 are reservations; 1:1, 1:fffe and 1:ffff the link's
        // own; another interface's and another request's are not counted.
        let mut first = vec![];
        for (seq, i, h) in [
            (5, 7, 0x0001_0002),
            (5, 7, 0x0001_0001),
            (5, 7, 0x0001_fffe),
            (5, 8, 0x0001_0004),
            (4, 7, 0x0001_0005),
        ] {
            first.extend(class(seq, i, h));
        }
        assert_eq!(read_class_dump(&first, 5, 7, &mut minors), None);
        let mut second = class(5, 7, 0x0001_0003);
        second.extend(class(5, 7, 0x0001_ffff));
        second.extend(done(5, 0));
        assert_eq!(read_class_dump(&second, 5, 7, &mut minors), Some(Ok(())));
        assert_eq!(minors, [2, 3]);
        assert_eq!(
            read_class_dump(&done(5, -libc::EINTR), 5, 7, &mut vec![]),
            Some(Err(libc::EINTR)),
            "an error the dump ended with"
        );
        let mut error = done(5, -libc::EBUSY);
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(
            read_class_dump(&error, 5, 7, &mut vec![]),
            Some(Err(libc::EBUSY))
        );
        // Cut short, or a length that cannot be: an error, not a wait.
        let whole = class(5, 7, 0x0001_0002);
        for cut in [&whole[..30], &whole[..3]] {
            assert_eq!(
                read_class_dump(cut, 5, 7, &mut vec![]),
                Some(Err(libc::EPROTO))
            );
        }
        let mut short = whole.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(
            read_class_dump(&short, 5, 7, &mut vec![]),
            Some(Err(libc::EPROTO))
        );
    }

    #[test]
    fn only_reservation_handles_are_swept() {
        let h = |major, minor| TcHandle { major, minor };
        assert!(is_reservation_handle(h(1, 2)));
        assert!(is_reservation_handle(h(1, 0xfffd)));
        for other in [h(1, 0), h(1, 1), h(1, 0xffff), h(1, 0xfffe), h(2, 2)] {
            assert!(!is_reservation_handle(other), "{other:?}");
        }
    }
}
