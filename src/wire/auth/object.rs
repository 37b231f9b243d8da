//! The Session Authorization object itself (RFC 5981, NSIS-ka's attribute
//! numbering): attributes as plain data, encode and decode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wire::profile::Profile;
use crate::wire::tlv::{
    Extensibility, ObjectHeader, WireError, WireResult, emit_object, fit_u16, pad4, padded,
};

/// QoS NSLP object type of the Session Authorization object (defined once,
/// with the other QoS NSLP object types).
pub use crate::wire::nslp::obj::SESSION_AUTH as SESSION_AUTH_TYPE;

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
pub(crate) const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

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

    pub(crate) fn encode(self, profile: Profile) -> [u8; 8] {
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

    pub(crate) fn decode(b: &[u8; 8], profile: Profile) -> Self {
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
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    Default,
    schemars::JsonSchema,
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

    fn encode(&self, profile: Profile, out: &mut Vec<u8>) -> WireResult<()> {
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
                out.extend_from_slice(
                    &fit_u16(l.len(), "NSLP_OBJECT_LIST", "count")?.to_be_bytes(),
                );
                l.iter()
                    .for_each(|t| out.extend_from_slice(&(t & 0x0fff).to_be_bytes()));
            }
            Self::AuthData { key_id, mac } => {
                out.extend_from_slice(&key_id.to_be_bytes());
                out.extend_from_slice(mac);
            }
            Self::Unknown { value, .. } => out.extend_from_slice(value),
        }
        let len = fit_u16(out.len() - start, "SESSION_AUTH attribute", "Length")?;
        out[start..start + 2].copy_from_slice(&len.to_be_bytes());
        pad4(out);
        Ok(())
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
pub(crate) fn attrs(v: &[u8]) -> impl Iterator<Item = WireResult<(u8, u8, &[u8], Range<usize>)>> {
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

    /// Appends the complete object (NSLP TLV header included); refuses
    /// attributes or an object too long for their length fields.
    pub fn encode(&self, profile: Profile, out: &mut Vec<u8>) -> WireResult<()> {
        emit_object(out, self.ext, SESSION_AUTH_TYPE, "SESSION_AUTH", |o| {
            self.attrs.iter().try_for_each(|a| a.encode(profile, o))
        })
    }

    /// The complete object; see [`SessionAuthObject::encode`].
    pub fn try_to_bytes(&self, profile: Profile) -> WireResult<Vec<u8>> {
        let mut v = Vec::with_capacity(112);
        self.encode(profile, &mut v)?;
        Ok(v)
    }

    /// The complete object, for objects built here (a template's
    /// attributes always fit); decoded or hand-built ones use
    /// [`SessionAuthObject::try_to_bytes`].
    pub fn to_bytes(&self, profile: Profile) -> Vec<u8> {
        self.try_to_bytes(profile)
            .expect("a SESSION_AUTH object of at most 65535-byte attributes and 4095 words")
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
