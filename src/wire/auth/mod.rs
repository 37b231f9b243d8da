//! The NSLP Session Authorization object (RFC 5981) with HMAC_SIGNED
//! integrity protection (paper §III-B, Fig. 4), and the early verification
//! of paper §IV-B: a received GIST PDU is checked on its raw bytes, scanning
//! object headers only, before anything is parsed or any state is touched.
//!
//! ```text
//! object:    NSLP TLV header (type 0x016, AB=10) | attributes...
//! attribute: | Length (16, bytes incl. this header, no padding) | X-Type (8) | SubType (8) |
//!            | value, zero-padded to 4 bytes                                           |
//! ```
//!
//! Signing and verification work on the encoded UDP GIST PDU, because the
//! signature covers GIST objects (MRI, Session-ID) as well as NSLP objects.
//! What is covered depends on the [`Profile`]:
//! - `rfc` (RFC 5981 §4 as read here; the RFC text was not available to
//!   check): the NSLPID, the MRI and Session-ID TLVs, every NSLP object whose
//!   type the NSLP_OBJECT_LIST names (full TLV, in message order), and the
//!   authorization object itself with its HMAC bytes taken as zero. HMAC
//!   output is truncated as the transform says (SHA-256-128: 16 bytes,
//!   SHA1-96: 12 bytes).
//! - `nsis-ka` (as confirmed on the wire against NSIS-ka 0.98): the 2 bytes at
//!   offset 4 of the UDP payload (GIST version and hops), the MRI and
//!   Session-ID TLVs, the listed NSLP objects except types 0, 1 and 0x16 (so
//!   RII is never covered), and every SESSION_AUTH object without its last 20
//!   bytes, all in message order; always HMAC-SHA1 with the full 20 bytes.
//!
//! Only a node that *creates* an authorization object signs it: a forwarding
//! node that happens to hold the same key must not re-sign what it forwards,
//! or it would launder a forged request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;
use thiserror::Error;

use crate::wire::gist::scan_udp;
use crate::wire::profile::Profile;
use crate::wire::tlv::{
    Extensibility, ObjectHeader, ObjectIter, WireError, WireResult, pad4, padded,
};

/// QoS NSLP object type of the Session Authorization object.
pub const SESSION_AUTH_TYPE: u16 = 0x016;

/// Attribute X-Types (NSIS-ka numbering, see protocol.md §5).
pub mod xtype {
    pub const AUTH_ENT_ID: u8 = 1;
    pub const SOURCE_ADDR: u8 = 2;
    pub const DEST_ADDR: u8 = 3;
    pub const START_TIME: u8 = 4;
    pub const END_TIME: u8 = 5;
    pub const NSLP_OBJECT_LIST: u8 = 6;
    pub const AUTHENTICATION_DATA: u8 = 7;
}
/// AUTH_ENT_ID subtype of HMAC_SIGNED.
pub const HMAC_SIGNED: u8 = 10;

/// Seconds between 1900-01-01 (NTP era 0) and 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A point in time, as START_TIME / END_TIME carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub unix_secs: u64,
    /// Fraction of a second in units of 2^-32 s (NTP); 0 in `nsis-ka`.
    pub frac: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            unix_secs: d.as_secs(),
            frac: ((d.subsec_nanos() as u64) << 32).div_euclid(1_000_000_000) as u32,
        }
    }

    pub fn plus(self, d: Duration) -> Self {
        Self {
            unix_secs: self.unix_secs.saturating_add(d.as_secs()),
            frac: self.frac,
        }
    }

    fn encode(self, profile: Profile) -> [u8; 8] {
        match profile {
            Profile::Rfc => {
                // NTP seconds wrap every 136 years (era numbers are not carried).
                let s = self.unix_secs.wrapping_add(NTP_UNIX_OFFSET) as u32;
                let mut b = [0; 8];
                b[..4].copy_from_slice(&s.to_be_bytes());
                b[4..].copy_from_slice(&self.frac.to_be_bytes());
                b
            }
            Profile::NsisKa => self.unix_secs.to_be_bytes(),
        }
    }

    fn decode(b: &[u8; 8], profile: Profile) -> Self {
        match profile {
            Profile::Rfc => {
                let s = u32::from_be_bytes(b[..4].try_into().expect("4")) as u64;
                // NTP era 1 starts in 2036: seconds below the Unix epoch
                // offset belong to it.
                let s = if s >= NTP_UNIX_OFFSET {
                    s
                } else {
                    s + (1 << 32)
                };
                Self {
                    unix_secs: s - NTP_UNIX_OFFSET,
                    frac: u32::from_be_bytes(b[4..].try_into().expect("4")),
                }
            }
            Profile::NsisKa => Self {
                unix_secs: u64::from_be_bytes(*b),
                frac: 0,
            },
        }
    }
}

/// The HMAC transform (IKEv2 integrity transform IDs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, Default,
)]
pub enum Transform {
    /// AUTH_HMAC_SHA1_96 (2).
    #[serde(rename = "hmac-sha1-96")]
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12), the default.
    #[default]
    #[serde(rename = "hmac-sha256-128")]
    HmacSha256_128,
}

impl Transform {
    pub fn id(self) -> u16 {
        match self {
            Self::HmacSha1_96 => 2,
            Self::HmacSha256_128 => 12,
        }
    }
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            2 => Some(Self::HmacSha1_96),
            12 => Some(Self::HmacSha256_128),
            _ => None,
        }
    }
    /// Bytes of HMAC on the wire.
    pub fn mac_len(self, profile: Profile) -> usize {
        match (profile, self) {
            (Profile::NsisKa, _) => 20,
            (Profile::Rfc, Self::HmacSha1_96) => 12,
            (Profile::Rfc, Self::HmacSha256_128) => 16,
        }
    }
}

/// An AUTH_ENT_ID (other than HMAC_SIGNED): who authorizes the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthEntity {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Fqdn(String),
    Uri(String),
    Other { subtype: u8, value: Vec<u8> },
}

impl std::fmt::Display for AuthEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(a) => write!(f, "{a}"),
            Self::V6(a) => write!(f, "{a}"),
            Self::Fqdn(s) | Self::Uri(s) => f.write_str(s),
            Self::Other { subtype, value } => {
                write!(f, "entity type {subtype} ({} bytes)", value.len())
            }
        }
    }
}

/// SOURCE_ADDR / DEST_ADDR values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrAttr {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    UdpPorts(Vec<u16>),
    TcpPorts(Vec<u16>),
    Spi(u32),
    Other { subtype: u8, value: Vec<u8> },
}

/// One attribute of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Entity(AuthEntity),
    HmacSigned {
        transform: u16,
    },
    SourceAddr(AddrAttr),
    DestAddr(AddrAttr),
    StartTime(Timestamp),
    EndTime(Timestamp),
    /// NSLP object types covered by the signature.
    ObjectList(Vec<u16>),
    AuthData {
        key_id: u32,
        mac: Vec<u8>,
    },
    Unknown {
        xtype: u8,
        subtype: u8,
        value: Vec<u8>,
    },
}

impl Attr {
    fn sort_key(&self) -> (u8, u8) {
        match self {
            Self::Entity(e) => (
                xtype::AUTH_ENT_ID,
                match e {
                    AuthEntity::V4(_) => 1,
                    AuthEntity::V6(_) => 2,
                    AuthEntity::Fqdn(_) => 3,
                    AuthEntity::Uri(_) => 6,
                    AuthEntity::Other { subtype, .. } => *subtype,
                },
            ),
            Self::HmacSigned { .. } => (xtype::AUTH_ENT_ID, HMAC_SIGNED),
            Self::SourceAddr(a) | Self::DestAddr(a) => (
                if matches!(self, Self::SourceAddr(_)) {
                    xtype::SOURCE_ADDR
                } else {
                    xtype::DEST_ADDR
                },
                addr_subtype(a),
            ),
            Self::StartTime(_) => (xtype::START_TIME, 1),
            Self::EndTime(_) => (xtype::END_TIME, 1),
            Self::ObjectList(_) => (xtype::NSLP_OBJECT_LIST, 0),
            Self::AuthData { .. } => (xtype::AUTHENTICATION_DATA, 0),
            Self::Unknown { xtype, subtype, .. } => (*xtype, *subtype),
        }
    }

    fn encode(&self, profile: Profile, out: &mut Vec<u8>) {
        let (xt, st) = self.sort_key();
        let start = out.len();
        out.extend_from_slice(&[0, 0, xt, st]);
        match self {
            Self::Entity(e) => match e {
                AuthEntity::V4(a) => out.extend_from_slice(&a.octets()),
                AuthEntity::V6(a) => out.extend_from_slice(&a.octets()),
                AuthEntity::Fqdn(s) | AuthEntity::Uri(s) => out.extend_from_slice(s.as_bytes()),
                AuthEntity::Other { value, .. } => out.extend_from_slice(value),
            },
            Self::HmacSigned { transform } => {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&transform.to_be_bytes());
            }
            Self::SourceAddr(a) | Self::DestAddr(a) => match a {
                AddrAttr::V4(x) => out.extend_from_slice(&x.octets()),
                AddrAttr::V6(x) => out.extend_from_slice(&x.octets()),
                AddrAttr::UdpPorts(p) | AddrAttr::TcpPorts(p) => p
                    .iter()
                    .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                AddrAttr::Spi(s) => out.extend_from_slice(&s.to_be_bytes()),
                AddrAttr::Other { value, .. } => out.extend_from_slice(value),
            },
            Self::StartTime(t) | Self::EndTime(t) => out.extend_from_slice(&t.encode(profile)),
            Self::ObjectList(l) => {
                out.extend_from_slice(&(l.len() as u16).to_be_bytes());
                l.iter()
                    .for_each(|t| out.extend_from_slice(&(t & 0x0fff).to_be_bytes()));
            }
            Self::AuthData { key_id, mac } => {
                out.extend_from_slice(&key_id.to_be_bytes());
                out.extend_from_slice(mac);
            }
            Self::Unknown { value, .. } => out.extend_from_slice(value),
        }
        let len = (out.len() - start) as u16;
        out[start..start + 2].copy_from_slice(&len.to_be_bytes());
        pad4(out);
    }

    fn decode(xt: u8, st: u8, v: &[u8], profile: Profile) -> WireResult<Self> {
        let bad = |what: &'static str, expected: &'static str| WireError::BadLength {
            what,
            len: v.len(),
            expected,
        };
        let v4 = |what| -> WireResult<Ipv4Addr> {
            <[u8; 4]>::try_from(v)
                .map(Ipv4Addr::from)
                .map_err(|_| bad(what, "4 bytes"))
        };
        let v6 = |what| -> WireResult<Ipv6Addr> {
            <[u8; 16]>::try_from(v)
                .map(Ipv6Addr::from)
                .map_err(|_| bad(what, "16 bytes"))
        };
        let text = || String::from_utf8_lossy(v).into_owned();
        let ports = || -> WireResult<Vec<u16>> {
            if !v.len().is_multiple_of(2) {
                return Err(bad("port list", "an even number of bytes"));
            }
            Ok(v.chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect())
        };
        Ok(match (xt, st) {
            (xtype::AUTH_ENT_ID, 1) => Self::Entity(AuthEntity::V4(v4("AUTH_ENT_ID")?)),
            (xtype::AUTH_ENT_ID, 2) => Self::Entity(AuthEntity::V6(v6("AUTH_ENT_ID")?)),
            (xtype::AUTH_ENT_ID, 3) => Self::Entity(AuthEntity::Fqdn(text())),
            (xtype::AUTH_ENT_ID, 6) => Self::Entity(AuthEntity::Uri(text())),
            (xtype::AUTH_ENT_ID, HMAC_SIGNED) => {
                if v.len() != 4 {
                    return Err(bad("HMAC_SIGNED", "4 bytes"));
                }
                Self::HmacSigned {
                    transform: u16::from_be_bytes([v[2], v[3]]),
                }
            }
            (xtype::AUTH_ENT_ID, st) => Self::Entity(AuthEntity::Other {
                subtype: st,
                value: v.to_vec(),
            }),
            (xtype::SOURCE_ADDR | xtype::DEST_ADDR, st) => {
                let a = match st {
                    1 => AddrAttr::V4(v4("SOURCE_ADDR/DEST_ADDR")?),
                    2 => AddrAttr::V6(v6("SOURCE_ADDR/DEST_ADDR")?),
                    3 => AddrAttr::UdpPorts(ports()?),
                    4 => AddrAttr::TcpPorts(ports()?),
                    5 => AddrAttr::Spi(u32::from_be_bytes(
                        v.try_into().map_err(|_| bad("SPI", "4 bytes"))?,
                    )),
                    st => AddrAttr::Other {
                        subtype: st,
                        value: v.to_vec(),
                    },
                };
                if xt == xtype::SOURCE_ADDR {
                    Self::SourceAddr(a)
                } else {
                    Self::DestAddr(a)
                }
            }
            (xtype::START_TIME | xtype::END_TIME, _) => {
                let b: [u8; 8] = v
                    .try_into()
                    .map_err(|_| bad("START_TIME/END_TIME", "8 bytes"))?;
                let t = Timestamp::decode(&b, profile);
                if xt == xtype::START_TIME {
                    Self::StartTime(t)
                } else {
                    Self::EndTime(t)
                }
            }
            (xtype::NSLP_OBJECT_LIST, _) => {
                let n = u16::from_be_bytes([
                    *v.first()
                        .ok_or(bad("NSLP_OBJECT_LIST", "at least 2 bytes"))?,
                    *v.get(1)
                        .ok_or(bad("NSLP_OBJECT_LIST", "at least 2 bytes"))?,
                ]) as usize;
                if v.len() != 2 + 2 * n {
                    return Err(bad("NSLP_OBJECT_LIST", "2 + 2 × count bytes"));
                }
                Self::ObjectList(
                    v[2..]
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]) & 0x0fff)
                        .collect(),
                )
            }
            (xtype::AUTHENTICATION_DATA, _) => {
                if v.len() < 4 {
                    return Err(bad("AUTHENTICATION_DATA", "a 4-byte key id and the HMAC"));
                }
                Self::AuthData {
                    key_id: u32::from_be_bytes(v[..4].try_into().expect("4")),
                    mac: v[4..].to_vec(),
                }
            }
            (xt, st) => Self::Unknown {
                xtype: xt,
                subtype: st,
                value: v.to_vec(),
            },
        })
    }
}

fn addr_subtype(a: &AddrAttr) -> u8 {
    match a {
        AddrAttr::V4(_) => 1,
        AddrAttr::V6(_) => 2,
        AddrAttr::UdpPorts(_) => 3,
        AddrAttr::TcpPorts(_) => 4,
        AddrAttr::Spi(_) => 5,
        AddrAttr::Other { subtype, .. } => *subtype,
    }
}

/// Walks the attributes of an object value: (X-Type, SubType, value, range
/// of the whole padded attribute within `v`).
fn attrs(v: &[u8]) -> impl Iterator<Item = WireResult<(u8, u8, &[u8], Range<usize>)>> {
    let mut o = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || o >= v.len() {
            return None;
        }
        let h = match v.get(o..o + 4) {
            Some(h) => h,
            None => {
                failed = true;
                return Some(Err(WireError::Truncated {
                    what: "SESSION_AUTH attribute",
                    need: o + 4,
                    have: v.len(),
                }));
            }
        };
        let len = u16::from_be_bytes([h[0], h[1]]) as usize;
        let end = o + padded(len);
        if len < 4 || end > v.len() {
            failed = true;
            return Some(Err(WireError::BadLength {
                what: "SESSION_AUTH attribute",
                len,
                expected: "at least 4 and within the object",
            }));
        }
        let item = (h[2], h[3], &v[o + 4..o + len], o..end);
        o = end;
        Some(Ok(item))
    })
}

/// A Session Authorization object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAuthObject {
    pub ext: Extensibility,
    pub attrs: Vec<Attr>,
}

impl SessionAuthObject {
    /// An HMAC_SIGNED object whose AUTHENTICATION_DATA holds a zero MAC of
    /// the right length, ready for [`sign_pdu`]. Attributes are sorted by
    /// (X-Type, SubType) as NSIS-ka does, so AUTHENTICATION_DATA is last.
    #[allow(clippy::too_many_arguments)]
    pub fn hmac_template(
        entity: AuthEntity,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
        start: Timestamp,
        end: Option<Timestamp>,
        listed: &[u16],
        key_id: u32,
        transform: Transform,
        profile: Profile,
    ) -> Self {
        let addr = |a: IpAddr| match a {
            IpAddr::V4(x) => AddrAttr::V4(x),
            IpAddr::V6(x) => AddrAttr::V6(x),
        };
        let mut attrs = vec![
            Attr::Entity(entity),
            Attr::HmacSigned {
                transform: transform.id(),
            },
        ];
        attrs.extend(src.map(|a| Attr::SourceAddr(addr(a))));
        attrs.extend(dst.map(|a| Attr::DestAddr(addr(a))));
        attrs.push(Attr::StartTime(start));
        attrs.extend(end.map(Attr::EndTime));
        attrs.push(Attr::ObjectList(listed.to_vec()));
        attrs.push(Attr::AuthData {
            key_id,
            mac: vec![0; transform.mac_len(profile)],
        });
        attrs.sort_by_key(Attr::sort_key);
        Self {
            ext: Extensibility::Forward,
            attrs,
        }
    }

    /// Appends the complete object (NSLP TLV header included).
    pub fn encode(&self, profile: Profile, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        for a in &self.attrs {
            a.encode(profile, out);
        }
        let h = ObjectHeader::new(self.ext, SESSION_AUTH_TYPE, out.len() - start - 4);
        out[start..start + 4].copy_from_slice(&h.to_bytes());
    }

    pub fn to_bytes(&self, profile: Profile) -> Vec<u8> {
        let mut v = Vec::with_capacity(112);
        self.encode(profile, &mut v);
        v
    }

    /// Decodes a complete object (header included).
    pub fn decode(buf: &[u8], profile: Profile) -> WireResult<Self> {
        let h = ObjectHeader::parse(buf)?;
        if h.obj_type != SESSION_AUTH_TYPE {
            return Err(WireError::WrongType {
                what: "SESSION_AUTH",
                got: h.obj_type,
            });
        }
        if buf.len() != h.total_len() {
            return Err(WireError::BadLength {
                what: "SESSION_AUTH",
                len: buf.len(),
                expected: "4 + the header's length",
            });
        }
        let attrs = attrs(&buf[4..])
            .map(|r| r.and_then(|(xt, st, v, _)| Attr::decode(xt, st, v, profile)))
            .collect::<WireResult<Vec<_>>>()?;
        Ok(Self { ext: h.ext, attrs })
    }

    /// The authorizing entity, if named.
    pub fn entity(&self) -> Option<&AuthEntity> {
        self.attrs.iter().find_map(|a| match a {
            Attr::Entity(e) => Some(e),
            _ => None,
        })
    }
}

/// A pre-shared key.
#[derive(Clone)]
pub struct Key {
    pub transform: Transform,
    sha1: Hmac<Sha1>,
    sha256: Hmac<Sha256>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("transform", &self.transform)
            .finish_non_exhaustive()
    }
}

/// Keys by key id. Each key is kept pre-keyed (the HMAC's inner and outer
/// pads computed once), so a signature costs only the message's blocks.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: std::collections::HashMap<u32, Key>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key_id: u32, key: &[u8], transform: Transform) {
        self.keys.insert(
            key_id,
            Key {
                transform,
                sha1: Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length"),
                sha256: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
            },
        );
    }

    pub fn contains(&self, key_id: u32) -> bool {
        self.keys.contains_key(&key_id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What verification checks beyond the signature.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Refuse PDUs without an authorization object this node can check.
    pub require_auth: bool,
    /// Accepted clock difference for START_TIME / END_TIME.
    pub max_skew: Duration,
    /// Entities accepted (empty: any entity holding a valid key).
    pub accepted_entities: Vec<String>,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            require_auth: true,
            max_skew: Duration::from_secs(30),
            accepted_entities: vec![],
        }
    }
}

/// Why a PDU was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("no SESSION_AUTH object this node can verify (the request is unsigned)")]
    Unsigned,
    #[error("key id {key_id:#x} is not known here: add the provider's key to the topology")]
    UnknownKey { key_id: u32 },
    #[error("HMAC of entity {entity} with key {key_id:#x} does not match: forged or tampered")]
    BadSignature { key_id: u32, entity: String },
    #[error("authorization of {entity} expired at {end} (now {now}, Unix seconds)")]
    Expired { entity: String, end: u64, now: u64 },
    #[error("authorization of {entity} starts at {start} (now {now}, Unix seconds)")]
    NotYetValid {
        entity: String,
        start: u64,
        now: u64,
    },
    #[error("object type {obj_type:#05x} is listed as signed but absent from the message")]
    ListedObjectMissing { obj_type: u16 },
    #[error("entity {entity} is not accepted by this provider")]
    EntityNotAccepted { entity: String },
    #[error("transform {transform} is not supported (use 2 or 12)")]
    UnsupportedTransform { transform: u16 },
    #[error("malformed PDU: {0}")]
    Malformed(#[from] WireError),
}

impl AuthError {
    /// A short word for counters and API replies.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::UnknownKey { .. } => "unknown_key",
            Self::BadSignature { .. } => "bad_signature",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::ListedObjectMissing { .. } => "listed_object_missing",
            Self::EntityNotAccepted { .. } => "entity_not_accepted",
            Self::UnsupportedTransform { .. } => "unsupported_transform",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entity: String,
    pub key_id: u32,
}

/// What the header scan found about one SESSION_AUTH object.
struct AuthView {
    /// The whole object, absolute range in the PDU.
    range: Range<usize>,
    transform: Option<u16>,
    listed: ([u16; 16], usize),
    key_id: Option<u32>,
    /// Absolute range of the MAC bytes.
    mac: Option<Range<usize>>,
    start: Option<Range<usize>>,
    end: Option<Range<usize>>,
    entity: Option<Range<usize>>,
}

/// The NSLP objects of a PDU: (type, absolute range), in message order.
struct NslpView {
    objs: [(u16, usize, usize); 24],
    n: usize,
}

fn scan(pdu: &[u8]) -> Result<(crate::wire::gist::PduView, NslpView), AuthError> {
    let v = scan_udp(pdu)?;
    let mut nv = NslpView {
        objs: [(0, 0, 0); 24],
        n: 0,
    };
    if let Some(d) = &v.nslp_data {
        let base = d.start + 4;
        if d.len() < 4 {
            return Err(WireError::Truncated {
                what: "QoS NSLP header",
                need: 4,
                have: d.len(),
            }
            .into());
        }
        for raw in ObjectIter::new(&pdu[base..d.end], "QoS NSLP message") {
            let raw = raw?;
            if nv.n == nv.objs.len() {
                return Err(WireError::BadValue {
                    what: "QoS NSLP message",
                    detail: "more than 24 objects".into(),
                }
                .into());
            }
            let s = base + raw.offset;
            nv.objs[nv.n] = (raw.header.obj_type, s, s + raw.bytes.len());
            nv.n += 1;
        }
    }
    Ok((v, nv))
}

fn view_auth(pdu: &[u8], start: usize, end: usize) -> Result<AuthView, AuthError> {
    let mut a = AuthView {
        range: start..end,
        transform: None,
        listed: ([0; 16], 0),
        key_id: None,
        mac: None,
        start: None,
        end: None,
        entity: None,
    };
    let base = start + 4;
    for at in attrs(&pdu[base..end]) {
        let (xt, st, v, r) = at?;
        let vstart = base + r.start + 4;
        match (xt, st) {
            (xtype::AUTH_ENT_ID, HMAC_SIGNED) if v.len() == 4 => {
                a.transform = Some(u16::from_be_bytes([v[2], v[3]]))
            }
            (xtype::AUTH_ENT_ID, _) => a.entity = Some(vstart..vstart + v.len()),
            (xtype::START_TIME, _) if v.len() == 8 => a.start = Some(vstart..vstart + 8),
            (xtype::END_TIME, _) if v.len() == 8 => a.end = Some(vstart..vstart + 8),
            (xtype::NSLP_OBJECT_LIST, _) if v.len() >= 2 => {
                let n = u16::from_be_bytes([v[0], v[1]]) as usize;
                if v.len() != 2 + 2 * n || n > 16 {
                    return Err(WireError::BadLength {
                        what: "NSLP_OBJECT_LIST",
                        len: v.len(),
                        expected: "2 + 2 × count bytes, at most 16 entries",
                    }
                    .into());
                }
                for (i, c) in v[2..].chunks(2).enumerate() {
                    a.listed.0[i] = u16::from_be_bytes([c[0], c[1]]) & 0x0fff;
                }
                a.listed.1 = n;
            }
            (xtype::AUTHENTICATION_DATA, _) if v.len() >= 4 => {
                a.key_id = Some(u32::from_be_bytes(v[..4].try_into().expect("4")));
                a.mac = Some(vstart + 4..vstart + v.len());
            }
            _ => {}
        }
    }
    Ok(a)
}

fn entity_text(pdu: &[u8], a: &AuthView) -> String {
    a.entity
        .as_ref()
        .map(|r| String::from_utf8_lossy(&pdu[r.clone()]).into_owned())
        .unwrap_or_else(|| "(no entity)".into())
}

static ZEROS: [u8; 32] = [0; 32];

/// Computes the MAC of auth object `a` over `pdu` into `out` (returns its
/// length on the wire).
fn compute(
    pdu: &[u8],
    v: &crate::wire::gist::PduView,
    nv: &NslpView,
    a: &AuthView,
    key: &Key,
    profile: Profile,
    out: &mut [u8; 32],
) -> Result<usize, AuthError> {
    let mac_range = a.mac.clone().ok_or(WireError::Missing {
        what: "SESSION_AUTH",
        missing: "AUTHENTICATION_DATA",
    })?;
    let listed = &a.listed.0[..a.listed.1];
    for t in listed {
        if *t != SESSION_AUTH_TYPE && !nv.objs[..nv.n].iter().any(|o| o.0 == *t) {
            return Err(AuthError::ListedObjectMissing { obj_type: *t });
        }
    }
    let mri = v.mri.clone().ok_or(WireError::Missing {
        what: "GIST PDU",
        missing: "MRI",
    })?;
    let sid = v.sid.clone().ok_or(WireError::Missing {
        what: "GIST PDU",
        missing: "Session-ID",
    })?;
    match profile {
        Profile::Rfc => {
            let transform = a.transform.and_then(Transform::from_id).ok_or(
                AuthError::UnsupportedTransform {
                    transform: a.transform.unwrap_or(0),
                },
            )?;
            let len = transform.mac_len(profile);
            if mac_range.len() != len {
                return Err(WireError::BadLength {
                    what: "AUTHENTICATION_DATA",
                    len: mac_range.len(),
                    expected: "the transform's MAC length",
                }
                .into());
            }
            macro_rules! feed {
                ($m:expr) => {{
                    let mut m = $m;
                    m.update(&pdu[8..10]); // NSLPID
                    m.update(&pdu[mri]);
                    m.update(&pdu[sid]);
                    for o in &nv.objs[..nv.n] {
                        if listed.contains(&o.0) && o.0 != SESSION_AUTH_TYPE {
                            m.update(&pdu[o.1..o.2]);
                        }
                    }
                    m.update(&pdu[a.range.start..mac_range.start]);
                    m.update(&ZEROS[..len]);
                    m.update(&pdu[mac_range.end..a.range.end]);
                    let r = m.finalize().into_bytes();
                    out[..len].copy_from_slice(&r[..len]);
                }};
            }
            match transform {
                Transform::HmacSha1_96 => feed!(key.sha1.clone()),
                Transform::HmacSha256_128 => feed!(key.sha256.clone()),
            }
            Ok(len)
        }
        Profile::NsisKa => {
            if mac_range.len() != 20 || a.range.end - a.range.start < 20 {
                return Err(WireError::BadLength {
                    what: "AUTHENTICATION_DATA",
                    len: mac_range.len(),
                    expected: "20 bytes (NSIS-ka HMAC-SHA1)",
                }
                .into());
            }
            let mut m = key.sha1.clone();
            m.update(&pdu[4..6]); // version + hops (NSIS-ka's "NSLPID")
            m.update(&pdu[mri]);
            m.update(&pdu[sid]);
            for o in &nv.objs[..nv.n] {
                if o.0 == SESSION_AUTH_TYPE {
                    // Every auth object minus its last 20 bytes (its MAC);
                    // one too short to hold a MAC is malformed.
                    if o.2 - o.1 < 24 {
                        return Err(WireError::BadLength {
                            what: "SESSION_AUTH (NSIS-ka)",
                            len: o.2 - o.1,
                            expected: "at least a header and a 20-byte HMAC",
                        }
                        .into());
                    }
                    m.update(&pdu[o.1..o.2 - 20]);
                } else if o.0 > 1 && listed.contains(&o.0) {
                    m.update(&pdu[o.1..o.2]);
                }
            }
            out[..20].copy_from_slice(&m.finalize().into_bytes());
            Ok(20)
        }
    }
}

fn auth_objects(nv: &NslpView) -> impl Iterator<Item = (usize, usize)> + '_ {
    nv.objs[..nv.n]
        .iter()
        .filter(|o| o.0 == SESSION_AUTH_TYPE)
        .map(|o| (o.1, o.2))
}

/// Fills the MAC of every HMAC_SIGNED authorization object in `pdu` (a UDP
/// GIST payload) whose key id `keys` holds. Returns how many were signed.
pub fn sign_pdu(pdu: &mut [u8], profile: Profile, keys: &KeyRing) -> Result<usize, AuthError> {
    let (v, nv) = scan(pdu)?;
    let mut signed = 0;
    let mut out = [0u8; 32];
    for (s, e) in auth_objects(&nv) {
        let a = view_auth(pdu, s, e)?;
        let (Some(key_id), Some(_)) = (a.key_id, a.transform) else {
            continue;
        };
        let Some(key) = keys.keys.get(&key_id) else {
            continue;
        };
        let len = compute(pdu, &v, &nv, &a, key, profile, &mut out)?;
        let mac = a.mac.clone().expect("compute checked it");
        pdu[mac].copy_from_slice(&out[..len]);
        signed += 1;
    }
    Ok(signed)
}

/// Early verification of a received UDP GIST payload: header scan, time
/// window, listed objects, HMAC — nothing is parsed beyond object headers
/// and authorization attributes. Succeeds if every authorization object
/// whose key this node holds verifies and at least one does; objects for
/// other providers' keys are left alone.
pub fn verify_pdu(
    pdu: &[u8],
    profile: Profile,
    keys: &KeyRing,
    now: Timestamp,
    policy: &VerifyPolicy,
) -> Result<Verified, AuthError> {
    let (v, nv) = scan(pdu)?;
    let mut out = [0u8; 32];
    let mut ok: Option<Verified> = None;
    let mut unknown: Option<u32> = None;
    for (s, e) in auth_objects(&nv) {
        let a = view_auth(pdu, s, e)?;
        let (Some(key_id), Some(_)) = (a.key_id, a.transform) else {
            continue;
        };
        let Some(key) = keys.keys.get(&key_id) else {
            unknown.get_or_insert(key_id);
            continue;
        };
        let entity = entity_text(pdu, &a);
        let len = compute(pdu, &v, &nv, &a, key, profile, &mut out)?;
        let mac = &pdu[a.mac.clone().expect("compute checked it")];
        // Constant-time comparison.
        let diff = mac
            .iter()
            .zip(&out[..len])
            .fold(0u8, |d, (x, y)| d | (x ^ y));
        if diff != 0 || mac.len() != len {
            return Err(AuthError::BadSignature { key_id, entity });
        }
        let skew = policy.max_skew.as_secs();
        let ts = |r: &Range<usize>| {
            Timestamp::decode(&pdu[r.clone()].try_into().expect("8 bytes"), profile)
        };
        if let Some(r) = &a.start {
            let st = ts(r);
            if st.unix_secs > now.unix_secs.saturating_add(skew) {
                return Err(AuthError::NotYetValid {
                    entity,
                    start: st.unix_secs,
                    now: now.unix_secs,
                });
            }
        }
        if let Some(r) = &a.end {
            let en = ts(r);
            if en.unix_secs.saturating_add(skew) < now.unix_secs {
                return Err(AuthError::Expired {
                    entity,
                    end: en.unix_secs,
                    now: now.unix_secs,
                });
            }
        }
        if !policy.accepted_entities.is_empty() && !policy.accepted_entities.contains(&entity) {
            return Err(AuthError::EntityNotAccepted { entity });
        }
        ok.get_or_insert(Verified { entity, key_id });
    }
    match (ok, unknown) {
        (Some(v), _) => Ok(v),
        (None, Some(key_id)) => Err(AuthError::UnknownKey { key_id }),
        (None, None) => Err(AuthError::Unsigned),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::gist::{Body, GistPdu, Mri, PathCoupledMri};
    use crate::wire::nslp::{NslpMessage, NslpObject};
    use proptest::prelude::*;

    /// protocol.md §5: the 104-byte object of NSIS-ka's VLSP client
    /// (10.0.0.1 → 10.0.0.2, START_TIME 0x4d7c6d00, key 1, HMAC still zero).
    #[rustfmt::skip]
    static NSIS_KA_OBJECT: [u8; 104] = [
        0x80, 0x16, 0x00, 0x19,                         // AB=10, type 0x016, 25 words
        0x00, 0x17, 0x01, 0x03,                         // AUTH_ENT_ID FQDN, length 23
        b'a', b'u', b't', b'h', b'%', b't', b'b', b'4', b'@', b't', b'm', b'.',
        b'k', b'i', b't', b'.', b'e', b'd', b'u', 0x00, //   "auth%tb4@tm.kit.edu" + pad
        0x00, 0x08, 0x01, 0x0a, 0x00, 0x00, 0x00, 0x02, // HMAC_SIGNED, transform 2
        0x00, 0x08, 0x02, 0x01, 10, 0, 0, 1,            // SOURCE_ADDR IPv4 10.0.0.1
        0x00, 0x08, 0x03, 0x01, 10, 0, 0, 2,            // DEST_ADDR IPv4 10.0.0.2
        0x00, 0x0c, 0x04, 0x01,                         // START_TIME, length 12
        0x00, 0x00, 0x00, 0x00, 0x4d, 0x7c, 0x6d, 0x00, //   Unix seconds (NSIS-ka)
        0x00, 0x0a, 0x06, 0x00,                         // NSLP_OBJECT_LIST, length 10
        0x00, 0x02, 0x00, 0x01, 0x00, 0xfe, 0x00, 0x00, //   2 types: RII, VLSP; pad
        0x00, 0x1c, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, // AUTHENTICATION_DATA, key id 1
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // HMAC (20 bytes)
    ];

    fn nsis_ka_object() -> SessionAuthObject {
        SessionAuthObject::hmac_template(
            AuthEntity::Fqdn("auth%tb4@tm.kit.edu".into()),
            Some(Ipv4Addr::new(10, 0, 0, 1).into()),
            Some(Ipv4Addr::new(10, 0, 0, 2).into()),
            Timestamp {
                unix_secs: 0x4d7c_6d00,
                frac: 0,
            },
            None,
            &[0x001, 0x0fe],
            1,
            Transform::HmacSha1_96,
            Profile::NsisKa,
        )
    }

    #[test]
    fn deconstruct_nsis_ka_object() {
        let o = SessionAuthObject::decode(&NSIS_KA_OBJECT, Profile::NsisKa).unwrap();
        assert_eq!(o, nsis_ka_object());
        assert_eq!(o.entity().unwrap().to_string(), "auth%tb4@tm.kit.edu");
    }

    #[test]
    fn construct_nsis_ka_object() {
        assert_eq!(nsis_ka_object().to_bytes(Profile::NsisKa), NSIS_KA_OBJECT);
    }

    #[test]
    fn ntp_time_round_trip() {
        let t = Timestamp {
            unix_secs: 1_800_000_000,
            frac: 0x8000_0000,
        };
        let b = t.encode(Profile::Rfc);
        assert_eq!(
            u32::from_be_bytes(b[..4].try_into().unwrap()),
            (1_800_000_000u64 + NTP_UNIX_OFFSET) as u32
        );
        assert_eq!(Timestamp::decode(&b, Profile::Rfc), t);
        // After 2036 (NTP era 1) the 32-bit seconds wrap and still decode.
        let late = Timestamp {
            unix_secs: 2_200_000_000,
            frac: 0,
        };
        assert_eq!(
            Timestamp::decode(&late.encode(Profile::Rfc), Profile::Rfc),
            late
        );
    }

    pub(crate) const KEY1: &[u8] = b"12345678901234567890123456789012";
    pub(crate) const KEY2: &[u8] = b"abcdefghijklmnopqrstuvwxyz-.,+%$";

    pub(crate) fn reserve_pdu(
        profile: Profile,
        signers: &[(u32, Transform)],
        now: Timestamp,
    ) -> Vec<u8> {
        crate::wire::fixtures::sample_reserve_pdu(profile, signers, now)
    }

    pub(crate) fn ring() -> KeyRing {
        let mut k = KeyRing::new();
        k.insert(1, KEY1, Transform::HmacSha256_128);
        k.insert(2, KEY2, Transform::HmacSha256_128);
        k
    }

    const NOW: Timestamp = Timestamp {
        unix_secs: 1_800_000_000,
        frac: 0,
    };

    fn signed(profile: Profile) -> Vec<u8> {
        let t = match profile {
            Profile::Rfc => Transform::HmacSha256_128,
            Profile::NsisKa => Transform::HmacSha1_96,
        };
        let mut p = reserve_pdu(profile, &[(1, t)], NOW);
        assert_eq!(sign_pdu(&mut p, profile, &ring()).unwrap(), 1);
        p
    }

    #[test]
    fn signs_and_verifies_in_both_profiles() {
        for profile in [Profile::Rfc, Profile::NsisKa] {
            let p = signed(profile);
            let v = verify_pdu(&p, profile, &ring(), NOW, &VerifyPolicy::default()).unwrap();
            assert_eq!(
                v,
                Verified {
                    entity: "vnp1@example.net".into(),
                    key_id: 1
                }
            );
            assert!(p.len() > 250, "about the paper's RESERVE size: {}", p.len());
        }
    }

    /// Byte offsets the signature covers, found the way a reviewer would:
    /// by flipping each bit and seeing whether verification notices.
    #[test]
    fn every_covered_bit_is_protected() {
        for profile in [Profile::Rfc, Profile::NsisKa] {
            let p = signed(profile);
            let (v, nv) = scan(&p).unwrap();
            let rii = nv.objs[..nv.n].iter().find(|o| o.0 == 0x001).unwrap();
            let rsn = nv.objs[..nv.n].iter().find(|o| o.0 == 0x002).unwrap();
            let auth = nv.objs[..nv.n]
                .iter()
                .find(|o| o.0 == SESSION_AUTH_TYPE)
                .unwrap();
            let mut covered: Vec<usize> = vec![];
            covered.extend(v.mri.clone().unwrap());
            covered.extend(v.sid.clone().unwrap());
            for o in &nv.objs[..nv.n] {
                let listed = [0x00b, crate::wire::vlsp::vlsp_type(profile)].contains(&o.0)
                    || (o.0 == 0x001 && profile == Profile::Rfc);
                if listed {
                    covered.extend(o.1..o.2);
                }
            }
            covered.extend(auth.1..auth.2);
            for &i in &covered {
                for bit in 0..8 {
                    let mut q = p.clone();
                    q[i] ^= 1 << bit;
                    assert!(
                        verify_pdu(&q, profile, &ring(), NOW, &VerifyPolicy::default()).is_err(),
                        "{profile}: flipping bit {bit} of byte {i} went unnoticed"
                    );
                }
            }
            // Bytes outside the coverage may change hop by hop: the RSN
            // (each QNE sets its own), and in nsis-ka the never-covered RII.
            let mut q = p.clone();
            q[rsn.1 + 7] ^= 1;
            assert!(verify_pdu(&q, profile, &ring(), NOW, &VerifyPolicy::default()).is_ok());
            if profile == Profile::NsisKa {
                let mut q = p.clone();
                q[rii.1 + 7] ^= 1;
                assert!(verify_pdu(&q, profile, &ring(), NOW, &VerifyPolicy::default()).is_ok());
            }
        }
    }

    #[test]
    fn refusals_are_typed() {
        let p = signed(Profile::Rfc);
        let pol = VerifyPolicy::default();
        // Wrong key under the same id.
        let mut wrong = KeyRing::new();
        wrong.insert(1, b"not the key", Transform::HmacSha256_128);
        assert!(matches!(
            verify_pdu(&p, Profile::Rfc, &wrong, NOW, &pol),
            Err(AuthError::BadSignature { key_id: 1, .. })
        ));
        // Unknown key id.
        let mut other = KeyRing::new();
        other.insert(9, KEY1, Transform::HmacSha256_128);
        assert_eq!(
            verify_pdu(&p, Profile::Rfc, &other, NOW, &pol),
            Err(AuthError::UnknownKey { key_id: 1 })
        );
        // Expired END_TIME (now is past it by more than the skew).
        let later = NOW.plus(Duration::from_secs(700));
        assert!(matches!(
            verify_pdu(&p, Profile::Rfc, &ring(), later, &pol),
            Err(AuthError::Expired { .. })
        ));
        // Not yet valid.
        let early = Timestamp {
            unix_secs: NOW.unix_secs - 100,
            frac: 0,
        };
        assert!(matches!(
            verify_pdu(&p, Profile::Rfc, &ring(), early, &pol),
            Err(AuthError::NotYetValid { .. })
        ));
        // Entity not accepted.
        let strict = VerifyPolicy {
            accepted_entities: vec!["someone@else".into()],
            ..pol.clone()
        };
        assert!(matches!(
            verify_pdu(&p, Profile::Rfc, &ring(), NOW, &strict),
            Err(AuthError::EntityNotAccepted { .. })
        ));
        // Unsigned.
        let u = reserve_pdu(Profile::Rfc, &[], NOW);
        assert_eq!(
            verify_pdu(&u, Profile::Rfc, &ring(), NOW, &pol),
            Err(AuthError::Unsigned)
        );
    }

    #[test]
    fn listed_but_absent_object_is_refused() {
        // List a type (BOUND_SESSION_ID, 0x004) the message does not carry.
        let src = Ipv4Addr::new(172, 1, 2, 1);
        let o = SessionAuthObject::hmac_template(
            AuthEntity::Fqdn("vnp".into()),
            None,
            None,
            NOW,
            None,
            &[0x004],
            1,
            Transform::HmacSha256_128,
            Profile::Rfc,
        );
        let mut m = NslpMessage::tear(1, 1, Some(1));
        m.objects
            .push(NslpObject::SessionAuth(o.to_bytes(Profile::Rfc)));
        let mut p = GistPdu {
            hops: 1,
            nslpid: 1,
            c: false,
            s: true,
            r: false,
            e: false,
            body: Body::Data {
                mri: Mri::PathCoupled(PathCoupledMri::udp_v4(src, src)),
                sid: [1; 16],
                nli: None,
                nslp_data: m.to_bytes(Profile::Rfc),
            },
            unknown: vec![],
        }
        .encode_udp()
        .unwrap();
        assert_eq!(
            sign_pdu(&mut p, Profile::Rfc, &ring()),
            Err(AuthError::ListedObjectMissing { obj_type: 0x004 })
        );
    }

    #[test]
    fn one_object_per_provider() {
        let mut p = reserve_pdu(
            Profile::Rfc,
            &[(1, Transform::HmacSha256_128), (2, Transform::HmacSha1_96)],
            NOW,
        );
        // Each provider signs with its own key; neither sees the other's.
        let mut a = KeyRing::new();
        a.insert(1, KEY1, Transform::HmacSha256_128);
        let mut b = KeyRing::new();
        b.insert(2, KEY2, Transform::HmacSha1_96);
        assert_eq!(sign_pdu(&mut p, Profile::Rfc, &a).unwrap(), 1);
        assert_eq!(sign_pdu(&mut p, Profile::Rfc, &b).unwrap(), 1);
        let pol = VerifyPolicy::default();
        assert_eq!(
            verify_pdu(&p, Profile::Rfc, &a, NOW, &pol).unwrap().key_id,
            1
        );
        assert_eq!(
            verify_pdu(&p, Profile::Rfc, &b, NOW, &pol).unwrap().key_id,
            2
        );
        // Tampering with provider 2's object is caught by provider 2 only if
        // the tampered bytes are in its own object; provider 1 covers its own.
        let (_, nv) = scan(&p).unwrap();
        let second = nv.objs[..nv.n]
            .iter()
            .filter(|o| o.0 == SESSION_AUTH_TYPE)
            .nth(1)
            .unwrap();
        let mut q = p.clone();
        q[second.1 + 10] ^= 0x40;
        assert!(verify_pdu(&q, Profile::Rfc, &b, NOW, &pol).is_err());
    }

    /// Found by the `early_verify` fuzz target: an `nsis-ka` PDU whose
    /// second authorization object is shorter than a MAC, and an END_TIME
    /// near the end of time, once panicked.
    #[test]
    fn fuzz_regressions_are_errors_not_panics() {
        let keys = crate::wire::fixtures::sample_keyring(Transform::HmacSha256_128);
        for pdu in [
            &include_bytes!("../../../fuzz/regressions/early_verify-short-auth-object.bin")[..],
            // END_TIME near u64::MAX once overflowed the skew check.
            &include_bytes!("../../../fuzz/regressions/early_verify-end-time-overflow.bin")[..],
        ]
        .iter()
        .flat_map(|pdu| [Profile::Rfc, Profile::NsisKa].map(|p| (*pdu, p)))
        {
            let (pdu, p) = pdu;
            let _ = verify_pdu(pdu, p, &keys, NOW, &VerifyPolicy::default());
            let mut copy = pdu.to_vec();
            if sign_pdu(&mut copy, p, &keys).is_ok_and(|n| n > 0) {
                let _ = verify_pdu(&copy, p, &keys, NOW, &VerifyPolicy::default());
            }
        }
    }

    /// Known answer: the `nsis-ka` recipe spelled out by hand.
    #[test]
    fn nsis_ka_recipe_known_answer() {
        let p = signed(Profile::NsisKa);
        let (v, nv) = scan(&p).unwrap();
        let mut input = vec![];
        input.extend_from_slice(&p[4..6]);
        input.extend_from_slice(&p[v.mri.clone().unwrap()]);
        input.extend_from_slice(&p[v.sid.clone().unwrap()]);
        let o = |t: u16| nv.objs[..nv.n].iter().find(|o| o.0 == t).unwrap();
        input.extend_from_slice(&p[o(0x00b).1..o(0x00b).2]); // QSPEC
        input.extend_from_slice(&p[o(0x0fe).1..o(0x0fe).2]); // VLSP
        let a = o(SESSION_AUTH_TYPE);
        input.extend_from_slice(&p[a.1..a.2 - 20]);
        let mut m = Hmac::<Sha1>::new_from_slice(KEY1).unwrap();
        m.update(&input);
        assert_eq!(&p[a.2 - 20..a.2], &m.finalize().into_bytes()[..]);
    }

    proptest! {
        #[test]
        fn object_round_trip(entity in "[a-z%@.]{1,40}", key_id in any::<u32>(), listed in proptest::collection::vec(0u16..0xfff, 0..6), secs in 0u64..4_000_000_000u64) {
            for profile in [Profile::Rfc, Profile::NsisKa] {
                let o = SessionAuthObject::hmac_template(
                    AuthEntity::Fqdn(entity.clone()), None, Some(Ipv4Addr::new(1, 2, 3, 4).into()),
                    Timestamp { unix_secs: secs, frac: 0 }, None, &listed, key_id, Transform::HmacSha256_128, profile);
                let b = o.to_bytes(profile);
                prop_assert_eq!(SessionAuthObject::decode(&b, profile).unwrap(), o);
            }
        }

        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = verify_pdu(&bytes, Profile::Rfc, &ring(), NOW, &VerifyPolicy::default());
            let _ = verify_pdu(&bytes, Profile::NsisKa, &ring(), NOW, &VerifyPolicy::default());
        }

        #[test]
        fn verify_never_panics_on_mutated_reserves(i in 0usize..300, x in any::<u8>()) {
            let mut p = signed(Profile::Rfc);
            let n = p.len();
            p[i % n] = x;
            let _ = verify_pdu(&p, Profile::Rfc, &ring(), NOW, &VerifyPolicy::default());
        }
    }
}
