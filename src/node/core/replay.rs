//! Replay protection for Session Authorization objects (RFC 5981's time
//! attributes plus state, issue 12 item 3).
//!
//! Every HMAC covers the GIST Session-ID, so a replayed object always comes
//! with the session it was signed for. The cache therefore remembers, per
//! session, the newest START_TIME it accepted and until when any of that
//! session's objects stays valid. A verified object is a replay when its
//! session is known here but no longer live (torn down, expired, refused)
//! and it is not newer than what was accepted before: a captured setup
//! replayed after teardown. Inside a live session a repeated object is a
//! retransmission or refresh, left to the NSLP's RSN rules (RFC 5974
//! §5.2.2: an older RSN is refused, an equal one is a refresh). A newer
//! object for a session that lapsed here (the initiator still refreshing
//! after our soft state expired, or after a tear that came from a branch
//! the path left) is a fresh request and re-creates it.
//!
//! "Newer" compares the whole START_TIME, the fraction of a second
//! included (RFC 5981's START_TIME is a 64-bit NTP timestamp): the initiator signs every
//! RESERVE anew, so one signed in the same second as the tear the
//! responder accepted is still newer than it (issue 15: with whole
//! seconds, the refresh after a reroute's tear was refused as a replay and
//! the link lost). A replay carries its original bytes, so it is never
//! newer. The `nsis-ka` profile carries whole seconds only: there, a
//! request signed in the same second as an accepted tear is refused.
//!
//! Memory is one entry per session whose objects are still valid; entries
//! go when their objects expire. When the cache holds `cap` unexpired
//! entries a new session is refused (counted), never let through unseen.

use std::collections::{BTreeSet, HashMap};

use crate::proto::gist::machine::Sid;
use crate::wire::auth::Timestamp;

/// START_TIME of an object without one.
const EPOCH: Timestamp = Timestamp {
    unix_secs: 0,
    frac: 0,
};

/// The cache's answer for one verified object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// First seen, or newer than anything accepted for its session.
    Fresh,
    /// Again, within the live session it was accepted for.
    SameSession,
    /// Accepted before for a session that is no longer live here.
    Replay,
    /// No room for a new session: refused.
    Full,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Newest START_TIME accepted (the epoch without one).
    newest_start: Timestamp,
    /// Unix seconds until which an accepted object of the session verifies.
    until: u64,
}

/// Per-session memory of accepted authorization objects.
#[derive(Debug)]
pub struct ReplayCache {
    entries: HashMap<Sid, Entry>,
    /// (until, sid), to drop expired entries oldest first.
    by_expiry: BTreeSet<(u64, Sid)>,
    cap: usize,
    /// Lifetime of an entry for an object without time attributes.
    untimed_ttl: u64,
}

impl ReplayCache {
    /// A cache holding at most `cap` sessions; objects without START_TIME
    /// or END_TIME are remembered for `untimed_ttl_s`.
    pub fn new(cap: usize, untimed_ttl_s: u64) -> Self {
        Self {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            cap,
            untimed_ttl: untimed_ttl_s,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks an object of session `sid`, verified at `now` (Unix
    /// seconds), with its START_TIME; `live`: this node holds state for
    /// `sid`. Nothing is recorded: see [`Self::record`].
    pub fn check(&mut self, sid: Sid, start: Option<Timestamp>, live: bool, now: u64) -> Check {
        self.expire(now);
        let start = start.unwrap_or(EPOCH);
        match self.entries.get(&sid) {
            Some(_) if live => Check::SameSession,
            Some(e) if start > e.newest_start => Check::Fresh,
            Some(_) => Check::Replay,
            None if self.entries.len() >= self.cap => Check::Full,
            None => Check::Fresh,
        }
    }

    /// Records an accepted object once it was delivered (a PDU GIST drops,
    /// e.g. Data ahead of its Confirm, was not used and may come again).
    pub fn record(
        &mut self,
        sid: Sid,
        start: Option<Timestamp>,
        valid_until: Option<u64>,
        now: u64,
    ) {
        let start = start.unwrap_or(EPOCH);
        let until = valid_until.unwrap_or(now.saturating_add(self.untimed_ttl));
        let e = self.entries.entry(sid).or_insert(Entry {
            newest_start: EPOCH,
            until: 0,
        });
        let old_until = e.until;
        e.newest_start = e.newest_start.max(start);
        e.until = e.until.max(until);
        let new_until = e.until;
        if new_until != old_until {
            self.by_expiry.remove(&(old_until, sid));
            self.by_expiry.insert((new_until, sid));
        }
    }

    /// Drops the entries whose objects have all expired by `now`.
    fn expire(&mut self, now: u64) {
        while let Some(&(until, sid)) = self.by_expiry.first() {
            if until >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.entries.remove(&sid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Sid = [1; 16];
    const T: Sid = [2; 16];

    /// Checks and, when accepted, records (as the node does on delivery).
    fn use_(
        c: &mut ReplayCache,
        sid: Sid,
        start: Option<u64>,
        until: Option<u64>,
        live: bool,
        now: u64,
    ) -> Check {
        let start = start.map(|s| at(s, 0));
        let r = c.check(sid, start, live, now);
        if matches!(r, Check::Fresh | Check::SameSession) {
            c.record(sid, start, until, now);
        }
        r
    }

    fn at(unix_secs: u64, frac: u32) -> Timestamp {
        Timestamp { unix_secs, frac }
    }

    /// Issue 15: a reroute's tear of the old branch reached the responder
    /// and ended the session there; the initiator's next RESERVE, signed
    /// anew in the same second, is newer and re-creates it. The tear's and
    /// the RESERVE's own bytes, replayed, are not newer.
    #[test]
    fn an_object_signed_later_within_the_same_second_is_fresh_after_a_tear() {
        let mut c = ReplayCache::new(8, 600);
        let (tear, next) = (at(100, 1 << 30), at(100, 3 << 30));
        assert_eq!(c.check(S, Some(at(100, 0)), false, 100), Check::Fresh);
        c.record(S, Some(at(100, 0)), Some(730), 100);
        // The tear, accepted while the session was live.
        assert_eq!(c.check(S, Some(tear), true, 100), Check::SameSession);
        c.record(S, Some(tear), Some(730), 100);
        // The session is over here: the next RESERVE is newer.
        assert_eq!(c.check(S, Some(next), false, 100), Check::Fresh);
        // Captured objects from before are still replays.
        assert_eq!(c.check(S, Some(tear), false, 100), Check::Replay);
        assert_eq!(c.check(S, Some(at(100, 0)), false, 101), Check::Replay);
    }

    #[test]
    fn a_captured_object_replayed_after_its_session_ended_is_refused() {
        let mut c = ReplayCache::new(8, 600);
        assert_eq!(
            use_(&mut c, S, Some(100), Some(730), false, 100),
            Check::Fresh
        );
        // Retransmitted or duplicated while the session is up.
        assert_eq!(
            use_(&mut c, S, Some(100), Some(730), true, 101),
            Check::SameSession
        );
        // After teardown: the same object (or an older one) again.
        assert_eq!(
            use_(&mut c, S, Some(100), Some(730), false, 124),
            Check::Replay
        );
        assert_eq!(
            use_(&mut c, S, Some(90), Some(720), false, 600),
            Check::Replay
        );
        // The initiator still refreshing after our state lapsed: newer.
        assert_eq!(
            use_(&mut c, S, Some(700), Some(1330), false, 700),
            Check::Fresh
        );
    }

    #[test]
    fn an_object_checked_but_not_delivered_is_not_remembered() {
        let mut c = ReplayCache::new(8, 600);
        assert_eq!(c.check(S, Some(at(100, 0)), false, 100), Check::Fresh);
        assert_eq!(c.check(S, Some(at(100, 0)), false, 100), Check::Fresh);
        assert!(c.is_empty());
    }

    #[test]
    fn entries_expire_with_their_objects_and_the_cap_refuses_new_sessions() {
        let mut c = ReplayCache::new(1, 600);
        assert_eq!(
            use_(&mut c, S, Some(100), Some(730), false, 100),
            Check::Fresh
        );
        assert_eq!(
            use_(&mut c, T, Some(100), Some(730), false, 100),
            Check::Full
        );
        // Once S's objects are past their validity it is forgotten (a
        // replay would now fail verification as expired instead).
        assert_eq!(
            use_(&mut c, T, Some(700), Some(1330), false, 731),
            Check::Fresh
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_object_without_time_is_remembered_for_the_untimed_lifetime() {
        let mut c = ReplayCache::new(4, 50);
        assert_eq!(use_(&mut c, S, None, None, false, 1000), Check::Fresh);
        assert_eq!(use_(&mut c, S, None, None, false, 1040), Check::Replay);
        assert_eq!(use_(&mut c, S, None, None, false, 1051), Check::Fresh);
    }
}
