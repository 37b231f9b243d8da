//! What names a GIST session and a peer: the plain types the handshake
//! machine and the cookies both build on (kept apart so neither imports the
//! other for them).

use std::net::Ipv4Addr;

/// A session id (128 bits).
pub type Sid = [u8; 16];

/// The flow a session signals for: path-coupled MRI (RFC 5971 §5.8.1), IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
}

/// Which way a message travels relative to the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the flow's destination.
    Downstream,
    /// Back towards the flow's source.
    Upstream,
}

/// The other direction (a Response travels against its Query).
pub(super) fn opposite(d: Direction) -> Direction {
    match d {
        Direction::Downstream => Direction::Upstream,
        Direction::Upstream => Direction::Downstream,
    }
}

/// Network-Layer-Information: who a peer is and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nli {
    pub peer_id: [u8; 16],
    pub ip_ttl: u8,
    pub rs_validity_ms: u32,
    pub addr: Ipv4Addr,
}
