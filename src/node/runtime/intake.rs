//! What a node does with a datagram before its core sees it: a cheap check
//! of the raw bytes (so junk never takes a place in the queue), a bounded
//! queue shared fairly between the peers that send (so one flooding peer
//! cannot starve the others), and log lines at most once a second per
//! reason (so a flood does not become a flood of log lines).
//!
//! Pure: a node's turn (`pump`) pushes each burst it reads and pops what it
//! handles; tests drive it with datagrams and a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::kernel::sockets::Incoming;
use crate::wire::gist::{Framing, HEADER_LEN, Header, MessageType};

/// Why a datagram is not GIST at all (refused on its first 12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Junk {
    /// Shorter than the magic number and the common header.
    Short,
    /// Not GIST's UDP magic number.
    Magic,
    /// A GIST version other than 1.
    Version,
    /// The header's length field disagrees with the datagram's length.
    Length,
    /// A message type GIST does not define.
    Type,
}

/// Whether `payload` (a UDP payload, magic number first) can be a GIST
/// message: magic number, version 1, a length field that matches the
/// datagram exactly and a known message type. It looks at 12 bytes only;
/// everything else is the decoder's.
pub fn precheck(payload: &[u8]) -> Result<(), Junk> {
    let h = Header::new_checked(payload, Framing::Udp).map_err(|_| {
        if payload.len() < Framing::Udp.pdu_offset() + HEADER_LEN {
            Junk::Short
        } else {
            Junk::Magic
        }
    })?;
    if h.version() != 1 {
        return Err(Junk::Version);
    }
    if Framing::Udp.pdu_offset() + h.pdu_len() != payload.len() {
        return Err(Junk::Length);
    }
    if MessageType::from_u8(h.type_code()).is_none() {
        return Err(Junk::Type);
    }
    Ok(())
}

/// Why a received datagram did not reach the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// Refused by [`precheck`].
    Junk,
    /// The queue was full: the oldest datagram of the peer holding the most
    /// places was dropped (possibly the one just received).
    Shed,
}

impl Dropped {
    fn word(self) -> &'static str {
        match self {
            Self::Junk => "not GIST (failed the check of magic number, version, length and type)",
            Self::Shed => "shed: the node's receive queue was full",
        }
    }
}

/// Emptied per-peer queues an intake keeps for reuse, and the largest
/// (in places) it keeps: a flood's long queue is given back.
const SPARE_QUEUES: usize = 4;
const SPARE_CAPACITY: usize = 16;

/// The node's receive queue: at most `capacity` datagrams, served round
/// robin by source address; when full, the peer with the longest queue
/// loses its oldest datagram.
#[derive(Debug)]
pub struct Intake {
    capacity: usize,
    queues: HashMap<Ipv4Addr, VecDeque<Incoming>>,
    /// Emptied queues kept for the next peers (at most [`SPARE_QUEUES`]):
    /// a datagram that queues behind another (a querier's Data behind its
    /// Confirm) would otherwise cost a fresh queue, an allocation and a free
    /// (issue 17).
    spare: Vec<VecDeque<Incoming>>,
    /// The one datagram of an intake that held nothing else: most datagrams
    /// arrive alone and leave before the next (a chain's), and the queues'
    /// indexes cost a hash, a tree insert and a removal each (~3 % of the
    /// node threads' time on a chain of 1000; issue 17). The next push moves
    /// it into the queues, so order and fairness are as if it had been there.
    solo: Option<Incoming>,
    /// Peers with queued datagrams, in service order.
    order: VecDeque<Ipv4Addr>,
    /// (queue length, peer) of every non-empty queue: the longest is last.
    by_len: BTreeSet<(usize, Ipv4Addr)>,
    len: usize,
    pub junk: u64,
    pub shed: u64,
    log: LogLimit,
}

impl Intake {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            queues: HashMap::new(),
            spare: Vec::new(),
            solo: None,
            order: VecDeque::new(),
            by_len: BTreeSet::new(),
            len: 0,
            junk: 0,
            shed: 0,
            log: LogLimit::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks and queues `inc`. Returns what was dropped, if anything, and
    /// whether that is to be logged now (with how many drops of that kind
    /// since the last line).
    pub fn push(&mut self, mut inc: Incoming, now: Instant) -> Option<(Dropped, Option<u64>)> {
        if precheck(&inc.payload).is_err() {
            self.junk += 1;
            return Some((Dropped::Junk, self.log.note(Dropped::Junk, now)));
        }
        // The receive buffer is sized for the largest datagram; a queued
        // one keeps only its bytes.
        inc.payload.shrink_to_fit();
        if self.len == 0 {
            self.solo = Some(inc);
            self.len = 1;
            return None;
        }
        if let Some(first) = self.solo.take() {
            self.len -= 1;
            self.enqueue(first);
        }
        self.enqueue(inc);
        if self.len <= self.capacity {
            return None;
        }
        let &(_, heavy) = self.by_len.last().expect("the queue is not empty");
        self.take_from(heavy);
        self.shed += 1;
        Some((Dropped::Shed, self.log.note(Dropped::Shed, now)))
    }

    /// Appends `inc` to its peer's queue, keeping the indexes right.
    fn enqueue(&mut self, inc: Incoming) {
        let peer = *inc.src.ip();
        let spare = &mut self.spare;
        let q = self
            .queues
            .entry(peer)
            .or_insert_with(|| spare.pop().unwrap_or_default());
        let before = q.len();
        q.push_back(inc);
        self.len += 1;
        if before == 0 {
            self.order.push_back(peer);
        } else {
            self.by_len.remove(&(before, peer));
        }
        self.by_len.insert((before + 1, peer));
    }

    /// The next datagram for the core: one from each peer in turn.
    pub fn pop(&mut self) -> Option<Incoming> {
        if let Some(inc) = self.solo.take() {
            self.len -= 1;
            return Some(inc);
        }
        let peer = self.order.pop_front()?;
        let inc = self.take_from(peer);
        if self.queues.contains_key(&peer) {
            self.order.push_back(peer);
        }
        inc
    }

    /// Removes `peer`'s oldest datagram, keeping the indexes right (a peer
    /// whose queue empties leaves `queues`; the caller fixes `order` for
    /// `pop`, `take_from` for the shedding path).
    fn take_from(&mut self, peer: Ipv4Addr) -> Option<Incoming> {
        let q = self.queues.get_mut(&peer)?;
        let before = q.len();
        let inc = q.pop_front();
        self.len -= 1;
        self.by_len.remove(&(before, peer));
        if before > 1 {
            self.by_len.insert((before - 1, peer));
        } else {
            if let Some(q) = self.queues.remove(&peer)
                && self.spare.len() < SPARE_QUEUES
                && q.capacity() <= SPARE_CAPACITY
            {
                self.spare.push(q);
            }
            // Shedding may empty a peer that is still in the service order.
            if let Some(i) = self.order.iter().position(|p| *p == peer) {
                self.order.remove(i);
            }
        }
        inc
    }

    /// A log line for `d`, with the drop counts, unless one was written in
    /// the last second.
    pub fn log_line(&self, d: Dropped, since_last: u64) -> String {
        format!(
            "{since_last} GIST datagrams dropped in the last second or so, {} (total: junk {}, shed {})",
            d.word(),
            self.junk,
            self.shed
        )
    }
}

/// At most one log line per second per reason.
#[derive(Debug, Default)]
pub struct LogLimit {
    last: HashMap<Dropped, (Instant, u64)>,
}

impl LogLimit {
    pub const PERIOD: Duration = Duration::from_secs(1);

    /// Counts one `d`; `Some(n)` when a line is due now (n drops of that kind
    /// since the previous line, this one included).
    pub fn note(&mut self, d: Dropped, now: Instant) -> Option<u64> {
        match self.last.get_mut(&d) {
            Some((at, n)) if now.saturating_duration_since(*at) < Self::PERIOD => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let count = *n + 1;
                *at = now;
                *n = 0;
                Some(count)
            }
            None => {
                self.last.insert(d, (now, 0));
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures::{default_transform, sample_reserve_pdu};
    use crate::wire::profile::Profile;
    use std::net::SocketAddrV4;

    fn valid() -> Vec<u8> {
        let now = crate::wire::auth::Timestamp {
            unix_secs: 1_800_000_000,
            frac: 0,
        };
        let t = default_transform(Profile::Rfc);
        sample_reserve_pdu(Profile::Rfc, &[(1, t)], now)
    }

    fn from(peer: u8, payload: Vec<u8>) -> Incoming {
        Incoming {
            src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, peer), 270),
            dst: Ipv4Addr::new(10, 0, 0, 100),
            ttl: Some(64),
            intercepted: false,
            payload,
            at_ns: peer as u64,
        }
    }

    /// A lone datagram takes no queue, datagrams behind one reuse emptied
    /// queues, and a flood's long queue is not kept once it drains (a spare
    /// holds at most a few small queues).
    #[test]
    fn emptied_queues_are_reused_and_a_floods_queue_is_given_back() {
        let now = Instant::now();
        let mut q = Intake::new(1000);
        for peer in 1..=3 {
            assert!(q.push(from(peer, valid()), now).is_none());
            assert_eq!(q.pop().map(|i| i.at_ns), Some(peer as u64));
        }
        assert!(
            q.spare.is_empty() && q.queues.is_empty() && q.order.is_empty(),
            "a lone datagram takes no queue"
        );
        q.push(from(1, valid()), now);
        q.push(from(2, valid()), now);
        while q.pop().is_some() {}
        assert_eq!(q.spare.len(), 2, "emptied queues are kept");
        for peer in 1..=3 {
            q.push(from(peer, valid()), now);
            q.push(from(peer, valid()), now);
            q.pop();
            q.pop();
        }
        assert_eq!(q.spare.len(), 2, "one queue serves peer after peer");
        for _ in 0..200 {
            q.push(from(9, valid()), now);
        }
        assert_eq!(q.spare.len(), 1, "the flood took a spare");
        while q.pop().is_some() {}
        assert_eq!(q.spare.len(), 1, "the flood's queue is freed");
        for peer in 1..=10 {
            q.push(from(peer, valid()), now);
        }
        while q.pop().is_some() {}
        assert_eq!(q.spare.len(), SPARE_QUEUES);
        assert!(q.is_empty() && q.queues.is_empty() && q.by_len.is_empty());
    }

    /// A lone datagram skips the queues; the next push puts it back in
    /// line first, so service is as if it had been queued.
    #[test]
    fn a_lone_datagram_keeps_its_place_when_others_follow() {
        let now = Instant::now();
        let mut q = Intake::new(1000);
        let mark = |peer, at| Incoming {
            at_ns: at,
            ..from(peer, valid())
        };
        q.push(mark(1, 10), now);
        assert_eq!(q.len(), 1);
        q.push(mark(1, 11), now);
        q.push(mark(2, 20), now);
        assert_eq!(q.len(), 3);
        let order: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|i| i.at_ns).collect();
        assert_eq!(order, [10, 20, 11], "round robin from the first peer");
        assert!(q.is_empty() && q.solo.is_none() && q.by_len.is_empty());
        // Junk never takes the lone place.
        assert_eq!(
            q.push(from(3, vec![0; 20]), now).map(|d| d.0),
            Some(Dropped::Junk)
        );
        assert!(q.is_empty() && q.pop().is_none());
    }

    #[test]
    fn precheck_passes_gist_and_names_what_is_wrong_with_junk() {
        let ok = valid();
        assert_eq!(precheck(&ok), Ok(()));
        assert_eq!(precheck(&ok[..11]), Err(Junk::Short));
        assert_eq!(precheck(&[0u8; 20]), Err(Junk::Magic));
        let mut v = ok.clone();
        v[4] = 2;
        assert_eq!(precheck(&v), Err(Junk::Version));
        let mut long = ok.clone();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(precheck(&long), Err(Junk::Length));
        assert_eq!(precheck(&ok[..ok.len() - 4]), Err(Junk::Length));
        let mut t = ok.clone();
        t[10] = (t[10] & 0x80) | 0x7f;
        assert_eq!(precheck(&t), Err(Junk::Type));
    }

    #[test]
    fn precheck_passes_every_datagram_nsis_ka_sent() {
        const TSV: &str = include_str!("../../../tests/data/nsiska-vectors/gist-messages.tsv");
        let mut n = 0;
        for l in TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let c: Vec<&str> = l.split('\t').collect();
            if c[2] != "udp" {
                continue;
            }
            let pdu = crate::model::unhex(c[8]).expect("hex");
            assert_eq!(precheck(&pdu), Ok(()), "{} #{}", c[0], c[1]);
            n += 1;
        }
        assert!(n > 10, "only {n} UDP vectors");
    }

    #[test]
    fn junk_is_counted_and_never_queued() {
        let mut q = Intake::new(4);
        let now = Instant::now();
        assert_eq!(
            q.push(from(1, vec![0; 20]), now),
            Some((Dropped::Junk, Some(1)))
        );
        assert_eq!(
            q.push(from(1, vec![0; 20]), now),
            Some((Dropped::Junk, None))
        );
        assert!(q.is_empty());
        assert_eq!((q.junk, q.shed), (2, 0));
    }

    #[test]
    fn a_flooding_peer_loses_its_own_datagrams_not_the_others() {
        let mut q = Intake::new(8);
        let now = Instant::now();
        // Peer 2 sends one datagram, then peer 1 floods.
        assert_eq!(q.push(from(2, valid()), now), None);
        for _ in 0..1000 {
            q.push(from(1, valid()), now);
        }
        assert_eq!(q.len(), 8);
        assert_eq!(q.shed, 1000 + 1 - 8);
        // Peer 3 arrives late: still queued, the flooder pays.
        q.push(from(3, valid()), now);
        let peers: Vec<u8> = std::iter::from_fn(|| q.pop())
            .map(|i| i.src.ip().octets()[3])
            .collect();
        assert_eq!(peers.len(), 8);
        assert_eq!(peers.iter().filter(|p| **p == 2).count(), 1);
        assert_eq!(peers.iter().filter(|p| **p == 3).count(), 1);
        // Round robin: the others are served before the flooder's backlog.
        assert_eq!(&peers[..3], &[2, 1, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn shedding_drops_the_oldest_of_the_heaviest_peer() {
        let mut q = Intake::new(2);
        let now = Instant::now();
        let mut a = from(1, valid());
        a.at_ns = 1;
        let mut b = from(1, valid());
        b.at_ns = 2;
        let mut c = from(1, valid());
        c.at_ns = 3;
        q.push(a, now);
        q.push(b, now);
        assert_eq!(q.push(c, now).map(|d| d.0), Some(Dropped::Shed));
        assert_eq!(q.pop().map(|i| i.at_ns), Some(2));
        assert_eq!(q.pop().map(|i| i.at_ns), Some(3));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_lone_peer_that_is_shed_to_nothing_leaves_the_service_order() {
        let mut q = Intake::new(1);
        let now = Instant::now();
        q.push(from(1, valid()), now);
        // Peer 2's arrival makes 2 > 1: peer 1 and 2 tie at one each, and
        // the heavier-or-later one is shed; the survivor is served once.
        q.push(from(2, valid()), now);
        assert_eq!(q.len(), 1);
        assert!(q.pop().is_some());
        assert_eq!(q.pop(), None);
        assert!(q.order.is_empty() && q.by_len.is_empty() && q.queues.is_empty());
    }

    #[test]
    fn log_lines_come_at_most_once_a_second_per_reason() {
        let mut l = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(l.note(Dropped::Shed, t0), Some(1));
        assert_eq!(l.note(Dropped::Junk, t0), Some(1));
        for i in 1..100 {
            assert_eq!(l.note(Dropped::Shed, t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(
            l.note(Dropped::Shed, t0 + Duration::from_secs(1)),
            Some(100)
        );
        assert_eq!(l.note(Dropped::Junk, t0 + Duration::from_millis(10)), None);
    }
}
