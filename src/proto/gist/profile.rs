//! What the wire profile changes in GIST (protocol.md §10): NSIS-ka 0.98
//! sends with IP TTL 103 (and says so in its NLIs) but answers with 64 and
//! an NLI IP-TTL of 0 in Responses, and uses 4-byte Query-Cookies. Header
//! flags and hop counts are the same in both profiles (NSIS-ka's choices are
//! within RFC 5971), so the codec needs no profile.

use super::machine::Config;
use crate::wire::profile::Profile;

/// The IP TTL (and NLI IP-TTL) NSIS-ka's QoS NSLP sends with.
pub const NSISKA_IP_TTL: u8 = 103;
/// The IP TTL of what an NSIS-ka responder sends (Response, its Data).
pub const NSISKA_REPLY_TTL: u8 = 64;

impl Config {
    /// The defaults, with the IP TTL of `profile`.
    pub fn for_profile(profile: Profile) -> Self {
        Self {
            profile,
            ip_ttl: match profile {
                Profile::Rfc => 64,
                Profile::NsisKa => NSISKA_IP_TTL,
            },
            ..Self::default()
        }
    }

    pub(super) fn query_cookie_len(&self) -> usize {
        match self.profile {
            Profile::Rfc => 16,
            Profile::NsisKa => 4,
        }
    }

    /// IP TTL of what the responder side sends (Response, upstream Data).
    pub(super) fn reply_ttl(&self) -> u8 {
        match self.profile {
            Profile::Rfc => self.ip_ttl,
            Profile::NsisKa => NSISKA_REPLY_TTL,
        }
    }
}
