//! GIST cookies (RFC 5971 §8.5), sans-IO.
//!
//! - **Query-Cookie**: unpredictable, so that an off-path node cannot answer
//!   a Query it never saw. An HMAC of a per-machine key (derived from the
//!   node's random master secret) over a counter; as long as the profile's
//!   peers send them (NSIS-ka: 4 bytes). Received ones may have any length.
//! - **Responder-Cookie**: lets the responder install routing state only
//!   when a Confirm comes back (delayed state installation) without keeping
//!   any state per Query. It is `generation (4 bytes) ‖ HMAC-SHA256(secret
//!   of that generation, generation, flow, direction, SID, the querier's NLI
//!   peer identity and address, our interface)` truncated to 24 bytes: 28
//!   bytes in all, as long as NSIS-ka's. The secret rotates every
//!   `rotation` period and only the current and previous generation's
//!   secrets are kept, so a cookie lives between one and two periods: a
//!   Confirm captured and replayed later is refused as stale.
//!
//! Rotation needs no timer of its own: secrets matter only when a message
//! arrives, so the machine catches the generations up to `now` whenever it
//! is given the time. Each secret is derived from the one before by an HMAC
//! (a ratchet): the secrets of older generations cannot be recomputed from
//! the ones kept.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use serde::{Deserialize, Serialize};

use super::session::{Direction, Flow, Nli, Sid};

type HmacSha256 = Hmac<Sha256>;

/// Length of our Responder-Cookies: generation (4) + MAC (24).
pub const RESPONDER_COOKIE_LEN: usize = 28;
const MAC_LEN: usize = RESPONDER_COOKIE_LEN - 4;

fn kdf(key: &[u8], label: &[u8], n: u32) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("any key length");
    m.update(label);
    m.update(&n.to_be_bytes());
    m.finalize().into_bytes().into()
}

/// Why a Responder-Cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Made (or claimed to be made) with a secret rotated out: a Confirm
    /// that took longer than a rotation period, or a replay.
    #[error(
        "stale Responder-Cookie (its secret has been rotated out): the querier must query again"
    )]
    Stale,
    /// Not made by us for this flow, session, querier and interface.
    #[error(
        "forged or mismatched Responder-Cookie (not made here for this flow, session and querier)"
    )]
    Forged,
}

/// What a Responder-Cookie binds.
#[derive(Debug, Clone, Copy)]
pub struct CookieInput<'a> {
    pub flow: &'a Flow,
    /// The Query's direction (the Confirm travels the same way).
    pub dir: Direction,
    pub sid: &'a Sid,
    pub querier: &'a Nli,
    /// Our address on the interface the Query came in on.
    pub local: Ipv4Addr,
}

/// The cookie secrets of one GIST node.
#[derive(Debug)]
pub struct Cookies {
    query_key: [u8; 32],
    query_seq: u64,
    query_len: usize,
    rotation: Duration,
    generation: u32,
    current: [u8; 32],
    previous: Option<[u8; 32]>,
    /// When the current generation ends; set the first time we see a clock.
    next_rotation: Option<Instant>,
}

impl Cookies {
    /// Secrets derived from `master` (random at node start); Query-Cookies
    /// of `query_len` bytes; a new Responder secret every `rotation`.
    pub fn new(master: &[u8; 32], query_len: usize, rotation: Duration) -> Self {
        Self {
            query_key: kdf(master, b"vlsp gist query-cookie key", 0),
            query_seq: 0,
            query_len: query_len.clamp(4, 32),
            rotation: rotation.max(Duration::from_millis(1)),
            generation: 0,
            current: kdf(master, b"vlsp gist responder secret", 0),
            previous: None,
            next_rotation: None,
        }
    }

    /// A fresh Query-Cookie.
    pub fn next_query_cookie(&mut self) -> Vec<u8> {
        self.query_seq += 1;
        let mut m = HmacSha256::new_from_slice(&self.query_key).expect("any key length");
        m.update(&self.query_seq.to_be_bytes());
        m.finalize().into_bytes()[..self.query_len].to_vec()
    }

    /// The generation Responder-Cookies are made with now.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Rotates the Responder secret once per period elapsed up to `now`.
    pub fn rotate_to(&mut self, now: Instant) {
        let Some(next) = self.next_rotation else {
            self.next_rotation = Some(now + self.rotation);
            return;
        };
        if now < next {
            return;
        }
        let periods = (now.duration_since(next).as_nanos() / self.rotation.as_nanos()) as u64 + 1;
        // Beyond two steps every kept secret would be replaced anyway: skip
        // the generations nobody made cookies with, ratchet the last two.
        let steps = periods.min(2);
        self.generation = self.generation.wrapping_add((periods - steps) as u32);
        for _ in 0..steps {
            self.generation = self.generation.wrapping_add(1);
            let next_secret = kdf(
                &self.current,
                b"vlsp gist responder secret",
                self.generation,
            );
            self.previous = Some(std::mem::replace(&mut self.current, next_secret));
        }
        self.next_rotation = Some(next + self.rotation * periods as u32);
    }

    fn mac(secret: &[u8; 32], generation: u32, i: &CookieInput) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(secret).expect("any key length");
        m.update(&generation.to_be_bytes());
        m.update(&i.flow.src.octets());
        m.update(&i.flow.dst.octets());
        m.update(&[i.flow.protocol, (i.dir == Direction::Upstream) as u8]);
        m.update(i.sid);
        m.update(&i.querier.peer_id);
        m.update(&i.querier.addr.octets());
        m.update(&i.local.octets());
        m
    }

    /// A Responder-Cookie for a Query, of the current generation.
    pub fn responder_cookie(&self, i: &CookieInput) -> Vec<u8> {
        let mut c = self.generation.to_be_bytes().to_vec();
        let tag = Self::mac(&self.current, self.generation, i)
            .finalize()
            .into_bytes();
        c.extend_from_slice(&tag[..MAC_LEN]);
        c
    }

    /// Checks a Responder-Cookie echoed in a Confirm (constant-time MAC
    /// comparison).
    pub fn check(&self, cookie: &[u8], i: &CookieInput) -> Result<(), CookieError> {
        if cookie.len() != RESPONDER_COOKIE_LEN {
            return Err(CookieError::Forged);
        }
        let generation = u32::from_be_bytes(cookie[..4].try_into().expect("4 bytes"));
        let secret = match self.generation.wrapping_sub(generation) {
            0 => &self.current,
            1 => self.previous.as_ref().ok_or(CookieError::Stale)?,
            // A past generation whose secret is gone (a future one we never
            // made is a forgery).
            age if age < 1 << 31 => return Err(CookieError::Stale),
            _ => return Err(CookieError::Forged),
        };
        Self::mac(secret, generation, i)
            .verify_truncated_left(&cookie[4..])
            .map_err(|_| CookieError::Forged)
    }
}

/// Handshake refusals, for `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Confirms whose Responder-Cookie's secret was rotated out (slow
    /// Confirms or replays): nothing installed.
    pub stale_cookie: u64,
    /// Confirms whose Responder-Cookie we did not make for that flow,
    /// session and querier: nothing installed.
    pub bad_cookie: u64,
    /// Handshakes run again because the peer read the data sent behind
    /// our Confirm before the Confirm ("No Routing State" within T1).
    #[serde(default)]
    pub resent_behind_confirm: u64,
    /// Data refused with "No Routing State" (from a peer we hold no state
    /// for): each one is an NSLP message lost.
    #[serde(default)]
    pub no_routing_state_sent: u64,
    /// Sessions whose first Data went straight to the flow's known peer
    /// (`reuse_peers`), without a handshake.
    #[serde(default)]
    pub sessions_on_known_peer: u64,
    /// Sessions whose routing state a confirmed peer's Data installed
    /// (`reuse_peers`), without a handshake.
    #[serde(default)]
    pub sessions_adopted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: Flow = Flow {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 1, 1),
        protocol: 17,
    };
    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn querier() -> Nli {
        Nli {
            peer_id: [3; 16],
            ip_ttl: 64,
            rs_validity_ms: 30_000,
            addr: FLOW.src,
        }
    }

    fn input<'a>(q: &'a Nli, sid: &'a Sid) -> CookieInput<'a> {
        CookieInput {
            flow: &FLOW,
            dir: Direction::Downstream,
            sid,
            querier: q,
            local: LOCAL,
        }
    }

    #[test]
    fn cookies_live_one_to_two_rotation_periods() {
        let q = querier();
        let sid = [1; 16];
        let mut c = Cookies::new(&[7; 32], 4, Duration::from_secs(60));
        let t0 = Instant::now();
        c.rotate_to(t0);
        let cookie = c.responder_cookie(&input(&q, &sid));
        assert_eq!(cookie.len(), RESPONDER_COOKIE_LEN);
        assert_eq!(cookie[..4], [0, 0, 0, 0], "generation in clear");
        assert_eq!(c.check(&cookie, &input(&q, &sid)), Ok(()));
        c.rotate_to(t0 + Duration::from_secs(61));
        assert_eq!(c.generation(), 1);
        assert_eq!(c.check(&cookie, &input(&q, &sid)), Ok(()), "previous kept");
        c.rotate_to(t0 + Duration::from_secs(121));
        assert_eq!(c.check(&cookie, &input(&q, &sid)), Err(CookieError::Stale));
        // A long silence skips generations but still refuses old cookies.
        let fresh = c.responder_cookie(&input(&q, &sid));
        c.rotate_to(t0 + Duration::from_secs(3600));
        assert_eq!(c.generation(), 60);
        assert_eq!(c.check(&fresh, &input(&q, &sid)), Err(CookieError::Stale));
    }

    #[test]
    fn a_cookie_is_bound_to_its_inputs_and_generation() {
        let q = querier();
        let sid = [1; 16];
        let c = Cookies::new(&[7; 32], 4, Duration::from_secs(60));
        let cookie = c.responder_cookie(&input(&q, &sid));
        let other_sid = [2; 16];
        assert_eq!(
            c.check(&cookie, &input(&q, &other_sid)),
            Err(CookieError::Forged)
        );
        let mut up = input(&q, &sid);
        up.dir = Direction::Upstream;
        assert_eq!(c.check(&cookie, &up), Err(CookieError::Forged));
        let mut other_if = input(&q, &sid);
        other_if.local = Ipv4Addr::new(10, 9, 9, 9);
        assert_eq!(c.check(&cookie, &other_if), Err(CookieError::Forged));
        let mut future = cookie.clone();
        future[3] = 1;
        assert_eq!(
            c.check(&future, &input(&q, &sid)),
            Err(CookieError::Forged),
            "a generation we never made"
        );
        assert_eq!(
            c.check(&cookie[..16], &input(&q, &sid)),
            Err(CookieError::Forged)
        );
        let other_node = Cookies::new(&[8; 32], 4, Duration::from_secs(60));
        assert_eq!(
            other_node.check(&cookie, &input(&q, &sid)),
            Err(CookieError::Forged)
        );
    }

    #[test]
    fn query_cookies_differ_and_have_the_profile_length() {
        let mut c = Cookies::new(&[7; 32], 4, Duration::from_secs(60));
        let (a, b) = (c.next_query_cookie(), c.next_query_cookie());
        assert_eq!(a.len(), 4);
        assert_ne!(a, b);
        let mut d = Cookies::new(&[8; 32], 16, Duration::from_secs(60));
        assert_eq!(d.next_query_cookie().len(), 16);
    }
}
