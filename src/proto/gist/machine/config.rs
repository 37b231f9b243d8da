//! Timers and identity of one GIST node, and their defaults (RFC 5971's).

use std::time::Duration;

use crate::wire::profile::Profile;

/// Timers and identity of one GIST node.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's peer identity in NLIs.
    pub peer_id: [u8; 16],
    /// Routing-state validity we announce (RS-Validity-Time).
    pub rs_validity: Duration,
    /// First Query retransmission (T1, RFC 5971: 500 ms).
    pub t1: Duration,
    /// Give up after this much back-off (T2, RFC 5971: 64 s).
    pub t2: Duration,
    /// IP TTL for our messages, also put in the NLI (but see `profile`).
    pub ip_ttl: u8,
    /// Master secret the cookie secrets are derived from: random at node
    /// start (RFC 5971 §8.5).
    pub secret: [u8; 32],
    /// How often the Responder-Cookie secret rotates; a cookie is accepted
    /// for one to two periods.
    pub cookie_rotation: Duration,
    /// `nsis-ka`: what NSIS-ka 0.98 puts on the wire (protocol.md §10):
    /// 4-byte Query-Cookies, NLI IP-TTL 0 in Responses, IP TTL 64 on what
    /// the responder sends; `rfc`: 16-byte Query-Cookies and the NLI's
    /// IP-TTL always the TTL the message is sent with.
    pub profile: Profile,
    /// Routing state the NSLP has sent nothing on for this long is not
    /// refreshed but let lapse (RFC 5971's inactive-QNode timer). Longer
    /// than the NSLP's refresh period, or its refreshes find no state.
    pub idle: Duration,
    /// How long a re-Query sent because the routes changed waits for an
    /// answer before the peer counts as lost (not T2: a cut path should be
    /// noticed within about a second).
    pub probe: Duration,
    /// Optional, off by default (the paper's NSIS-ka sends none): the first
    /// NSLP message of a session rides in its Query, so the next node
    /// handles it one round trip earlier; the responder holds what its NSLP
    /// sends back upstream until the Confirm has installed its state.
    pub data_in_query: bool,
    /// Optional, off by default (RFC 5971 keeps routing state per session):
    /// a later session of a flow whose handshake finished within the peer's
    /// routing-state validity sends its first Data straight to that peer,
    /// and a responder takes such Data from the peer it confirmed for the
    /// flow (`reuse`). Both ends must have it on; a peer without it answers
    /// "No Routing State" and the handshake runs as usual.
    pub reuse_peers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            peer_id: [0; 16],
            rs_validity: Duration::from_secs(30),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(64),
            ip_ttl: 64,
            secret: [0; 32],
            cookie_rotation: Duration::from_secs(60),
            profile: Profile::Rfc,
            idle: Duration::from_secs(90),
            probe: Duration::from_millis(1500),
            data_in_query: false,
            reuse_peers: false,
        }
    }
}
