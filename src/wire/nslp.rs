//! QoS NSLP messages (RFC 5974 §5.1): a 4-byte common header and a run of
//! TLV objects, carried as GIST NSLP-Data.
//!
//! ```text
//! | Message Type (8) | Message flags (8) |        Generic flags (16)       |
//! ```
//!
//! Objects are kept in the order received and re-emitted in that order, so
//! a forwarding node changes only what it must (its RSN). Objects this node
//! does not understand follow their extensibility bits: AB=00 rejects the
//! message (INFO_SPEC "Unknown object present"), AB=01 is dropped, AB=10 and
//! AB=11 are kept bit for bit and forwarded. SESSION_AUTH objects are always
//! carried raw: `session_auth` reads and signs them in place.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::wire::profile::Profile;
use crate::wire::qspec::Qspec;
use crate::wire::tlv::{
    Extensibility, ObjectHeader, ObjectIter, WireError, WireResult, be16, be32,
};
use crate::wire::vlsp::{VlspObject, vlsp_type};

/// Object types (RFC 5974 §5.1.3; SESSION_AUTH from RFC 5981).
pub mod obj {
    pub const RII: u16 = 0x001;
    pub const RSN: u16 = 0x002;
    pub const REFRESH_PERIOD: u16 = 0x003;
    pub const BOUND_SESSION_ID: u16 = 0x004;
    pub const PACKET_CLASSIFIER: u16 = 0x005;
    pub const INFO_SPEC: u16 = 0x006;
    pub const SESSION_ID_LIST: u16 = 0x007;
    pub const RSN_LIST: u16 = 0x008;
    pub const MSG_ID: u16 = 0x009;
    pub const BOUND_MSG_ID: u16 = 0x00a;
    pub const QSPEC: u16 = 0x00b;
    pub const SESSION_AUTH: u16 = 0x016;
}

/// QoS NSLP message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    Reserve,
    Query,
    Response,
    Notify,
}

impl MsgType {
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Reserve => 1,
            Self::Query => 2,
            Self::Response => 3,
            Self::Notify => 4,
        }
    }
    pub fn from_u8(v: u8) -> WireResult<Self> {
        Ok(match v {
            1 => Self::Reserve,
            2 => Self::Query,
            3 => Self::Response,
            4 => Self::Notify,
            v => {
                return Err(WireError::BadValue {
                    what: "QoS NSLP header",
                    detail: format!("unknown message type {v}"),
                });
            }
        })
    }
}

/// Common-header flags. Bits this implementation does not know are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// RESERVE: TEAR (0x02).
    pub tear: bool,
    /// RESERVE: REPLACE (0x01).
    pub replace: bool,
    /// QUERY: RESERVE-INIT (0x01).
    pub reserve_init: bool,
    /// Generic SCOPING (0x0001).
    pub scoping: bool,
    /// Generic PROXY (0x0002).
    pub proxy: bool,
    /// Generic ACK-REQ (0x0004).
    pub ack_req: bool,
    /// BREAK: generic 0x0008 in `rfc`; message-specific in `nsis-ka`.
    pub break_: bool,
    /// Unknown message-specific bits.
    pub other_msg: u8,
    /// Unknown generic bits.
    pub other_generic: u16,
}

/// NSIS-ka's message-specific BREAK bit for each message type.
fn nsis_ka_break_bit(t: MsgType) -> u8 {
    match t {
        MsgType::Reserve => 0x08,
        MsgType::Query => 0x02,
        MsgType::Response => 0x01,
        MsgType::Notify => 0x00,
    }
}

impl Flags {
    fn encode(&self, t: MsgType, profile: Profile) -> (u8, u16) {
        let mut m = self.other_msg;
        let mut g = self.other_generic;
        match t {
            MsgType::Reserve => {
                m |= (self.replace as u8) | ((self.tear as u8) << 1);
            }
            MsgType::Query => m |= self.reserve_init as u8,
            _ => {}
        }
        g |= (self.scoping as u16) | ((self.proxy as u16) << 1) | ((self.ack_req as u16) << 2);
        if self.break_ {
            match profile {
                Profile::Rfc => g |= 0x0008,
                Profile::NsisKa => m |= nsis_ka_break_bit(t),
            }
        }
        (m, g)
    }

    fn decode(t: MsgType, mut m: u8, mut g: u16, profile: Profile) -> Self {
        let mut f = Flags::default();
        match t {
            MsgType::Reserve => {
                f.replace = m & 0x01 != 0;
                f.tear = m & 0x02 != 0;
                m &= !0x03;
            }
            MsgType::Query => {
                f.reserve_init = m & 0x01 != 0;
                m &= !0x01;
            }
            _ => {}
        }
        f.scoping = g & 0x0001 != 0;
        f.proxy = g & 0x0002 != 0;
        f.ack_req = g & 0x0004 != 0;
        g &= !0x0007;
        match profile {
            Profile::Rfc => {
                f.break_ = g & 0x0008 != 0;
                g &= !0x0008;
            }
            Profile::NsisKa => {
                let b = nsis_ka_break_bit(t);
                f.break_ = b != 0 && m & b != 0;
                m &= !b;
            }
        }
        f.other_msg = m;
        f.other_generic = g;
        f
    }
}

/// INFO_SPEC error classes (RFC 5974 §5.1.3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InfoClass {
    Informational,
    Success,
    ProtocolError,
    TransientFailure,
    PermanentFailure,
    QosmError,
    Other(u8),
}

impl InfoClass {
    fn to_u8(self) -> u8 {
        match self {
            Self::Informational => 1,
            Self::Success => 2,
            Self::ProtocolError => 3,
            Self::TransientFailure => 4,
            Self::PermanentFailure => 5,
            Self::QosmError => 6,
            Self::Other(v) => v & 0x0f,
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Informational,
            2 => Self::Success,
            3 => Self::ProtocolError,
            4 => Self::TransientFailure,
            5 => Self::PermanentFailure,
            6 => Self::QosmError,
            v => Self::Other(v),
        }
    }
}

/// Error Source Identifier: who generated an INFO_SPEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Esi {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Fqdn(String),
    /// Another ESI type, kept raw.
    Other {
        esi_type: u8,
        value: Vec<u8>,
    },
}

/// INFO_SPEC: the result or error a RESPONSE or NOTIFY carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSpec {
    pub class: InfoClass,
    pub code: u8,
    pub esi: Option<Esi>,
    /// Optional trailing bytes. NSIS-ka puts a zero-padded text there; so do
    /// we (in both profiles), so an error names its cause end to end.
    pub extra: Vec<u8>,
}

impl InfoSpec {
    fn new(class: InfoClass, code: u8, addr: Ipv4Addr, text: &str) -> Self {
        let mut extra = text.as_bytes().to_vec();
        crate::wire::tlv::pad4(&mut extra);
        Self {
            class,
            code,
            esi: Some(Esi::V4(addr)),
            extra,
        }
    }
    pub fn reservation_successful(addr: Ipv4Addr) -> Self {
        Self::new(InfoClass::Success, 0x01, addr, "Reservation successful")
    }
    pub fn teardown_successful(addr: Ipv4Addr) -> Self {
        Self::new(InfoClass::Success, 0x02, addr, "Tear down successful")
    }
    pub fn refresh_successful(addr: Ipv4Addr) -> Self {
        Self::new(InfoClass::Success, 0x04, addr, "Refresh successful")
    }
    pub fn mandatory_object_missing(addr: Ipv4Addr, obj_type: u16) -> Self {
        Self::new(
            InfoClass::ProtocolError,
            0x05,
            addr,
            &format!("Mandatory object {obj_type:#05x} missing"),
        )
    }
    pub fn unknown_object(addr: Ipv4Addr, obj_type: u16) -> Self {
        Self::new(
            InfoClass::ProtocolError,
            0x07,
            addr,
            &format!("Unknown object {obj_type:#05x} present"),
        )
    }
    pub fn full_qspec_required(addr: Ipv4Addr) -> Self {
        Self::new(
            InfoClass::TransientFailure,
            0x04,
            addr,
            "Full QSPEC required",
        )
    }
    pub fn reservation_failure(addr: Ipv4Addr, why: &str) -> Self {
        Self::new(InfoClass::TransientFailure, 0x07, addr, why)
    }
    pub fn path_truncated(addr: Ipv4Addr) -> Self {
        Self::new(
            InfoClass::TransientFailure,
            0x08,
            addr,
            "Path truncated: next peer dead",
        )
    }
    pub fn authorization_failure(addr: Ipv4Addr) -> Self {
        Self::new(
            InfoClass::PermanentFailure,
            0x02,
            addr,
            "Authorization failure",
        )
    }

    pub fn is_success(&self) -> bool {
        self.class == InfoClass::Success
    }

    /// The text NSIS-ka style INFO_SPECs carry, if any.
    pub fn text(&self) -> String {
        let end = self
            .extra
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        String::from_utf8_lossy(&self.extra[..end]).into_owned()
    }

    /// A machine-readable word for the API.
    pub fn reason(&self) -> &'static str {
        match (self.class, self.code) {
            (InfoClass::Success, _) => "success",
            (InfoClass::PermanentFailure, 0x02) => "authorization_failure",
            (InfoClass::TransientFailure, 0x07) => "reservation_failure",
            (InfoClass::TransientFailure, 0x08) => "path_truncated",
            (InfoClass::TransientFailure, _) => "transient_failure",
            (InfoClass::ProtocolError, _) => "protocol_error",
            (InfoClass::PermanentFailure, _) => "permanent_failure",
            _ => "error",
        }
    }

    /// Class, code and text, for messages.
    pub fn describe(&self) -> String {
        let t = self.text();
        format!(
            "INFO_SPEC class {} code {:#04x}{}{}",
            self.class.to_u8(),
            self.code,
            if t.is_empty() { "" } else { ": " },
            t
        )
    }

    /// The ESI as text ("the node that answered").
    pub fn origin(&self) -> String {
        match &self.esi {
            Some(Esi::V4(a)) => a.to_string(),
            Some(Esi::V6(a)) => a
                .to_ipv4_mapped()
                .map_or_else(|| a.to_string(), |v| v.to_string()),
            Some(Esi::Fqdn(s)) => s.clone(),
            _ => "an unknown node".into(),
        }
    }

    fn encode_value(&self, profile: Profile, out: &mut Vec<u8>) {
        let (esi_type, esi): (u8, Vec<u8>) = match &self.esi {
            None => (0, vec![]),
            // NSIS-ka sends IPv4 sources as IPv4-mapped IPv6 (type 2).
            Some(Esi::V4(a)) if profile == Profile::NsisKa => {
                (2, a.to_ipv6_mapped().octets().to_vec())
            }
            Some(Esi::V4(a)) => (1, a.octets().to_vec()),
            Some(Esi::V6(a)) => (2, a.octets().to_vec()),
            Some(Esi::Fqdn(s)) => {
                let mut v = s.as_bytes().to_vec();
                crate::wire::tlv::pad4(&mut v);
                (3, v)
            }
            Some(Esi::Other { esi_type, value }) => {
                let mut v = value.clone();
                crate::wire::tlv::pad4(&mut v);
                (*esi_type, v)
            }
        };
        out.extend_from_slice(&[
            0,
            self.code,
            (self.class.to_u8() << 4) | (esi_type & 0x0f),
            (esi.len() / 4) as u8,
        ]);
        out.extend_from_slice(&esi);
        out.extend_from_slice(&self.extra);
        crate::wire::tlv::pad4(out);
    }

    fn decode_value(v: &[u8]) -> WireResult<Self> {
        let w = be32(v, 0, "INFO_SPEC")?;
        let code = (w >> 16) as u8;
        let class = InfoClass::from_u8(((w >> 12) & 0x0f) as u8);
        let esi_type = ((w >> 8) & 0x0f) as u8;
        let esi_len = (w & 0xff) as usize * 4;
        let esi_bytes = v.get(4..4 + esi_len).ok_or(WireError::Truncated {
            what: "INFO_SPEC ESI",
            need: 4 + esi_len,
            have: v.len(),
        })?;
        let esi = match (esi_type, esi_len) {
            (0, 0) => None,
            (1, 4) => Some(Esi::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(esi_bytes).expect("4"),
            ))),
            (2, 16) => Some(Esi::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(esi_bytes).expect("16"),
            ))),
            (1, _) | (2, _) => {
                return Err(WireError::BadLength {
                    what: "INFO_SPEC ESI",
                    len: esi_len,
                    expected: "4 bytes (IPv4) or 16 bytes (IPv6)",
                });
            }
            (3, _) => {
                let end = esi_bytes.iter().position(|b| *b == 0).unwrap_or(esi_len);
                Some(Esi::Fqdn(
                    String::from_utf8_lossy(&esi_bytes[..end]).into_owned(),
                ))
            }
            (t, _) => Some(Esi::Other {
                esi_type: t,
                value: esi_bytes.to_vec(),
            }),
        };
        Ok(Self {
            class,
            code,
            esi,
            extra: v[4 + esi_len..].to_vec(),
        })
    }
}

/// PACKET_CLASSIFIER: which MRI fields classify the flow (X Y P T F S A B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketClassifier {
    /// X=0x80 source address/prefix, Y=0x40 destination, P=0x20 protocol,
    /// T=0x10 DS field, F=0x08 flow label, S=0x04 SPI, A=0x02 source port,
    /// B=0x01 destination port.
    pub flags: u8,
}

/// The binding codes of BOUND_SESSION_ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingCode {
    Tunnel,
    Bidirectional,
    Aggregate,
    Dependent,
    Preemption,
    Other(u8),
}

impl BindingCode {
    fn to_u8(self) -> u8 {
        match self {
            Self::Tunnel => 1,
            Self::Bidirectional => 2,
            Self::Aggregate => 3,
            Self::Dependent => 4,
            Self::Preemption => 5,
            Self::Other(v) => v,
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Tunnel,
            2 => Self::Bidirectional,
            3 => Self::Aggregate,
            4 => Self::Dependent,
            5 => Self::Preemption,
            v => Self::Other(v),
        }
    }
}

/// One QoS NSLP object.
#[derive(Debug, Clone, PartialEq)]
pub enum NslpObject {
    Rii(u32),
    Rsn {
        rsn: u32,
        epoch: u32,
    },
    /// The refresh period R (ms on the wire in `rfc`, seconds in `nsis-ka`).
    RefreshPeriod(Duration),
    BoundSessionId {
        code: BindingCode,
        sid: [u8; 16],
    },
    PacketClassifier(PacketClassifier),
    InfoSpec(InfoSpec),
    SessionIdList(Vec<[u8; 16]>),
    RsnList {
        epoch: u32,
        rsns: Vec<u32>,
    },
    MsgId {
        d: bool,
        id: [u8; 16],
    },
    BoundMsgId {
        d: bool,
        id: [u8; 16],
    },
    Qspec(Qspec),
    Vlsp(VlspObject),
    /// A SESSION_AUTH object, complete TLV, bit for bit.
    SessionAuth(Vec<u8>),
    /// An object this node does not know (AB=10 or 11), complete TLV.
    Unknown(Vec<u8>),
}

impl NslpObject {
    /// The object type on the wire.
    pub fn obj_type(&self, profile: Profile) -> u16 {
        match self {
            Self::Rii(_) => obj::RII,
            Self::Rsn { .. } => obj::RSN,
            Self::RefreshPeriod(_) => obj::REFRESH_PERIOD,
            Self::BoundSessionId { .. } => obj::BOUND_SESSION_ID,
            Self::PacketClassifier(_) => obj::PACKET_CLASSIFIER,
            Self::InfoSpec(_) => obj::INFO_SPEC,
            Self::SessionIdList(_) => obj::SESSION_ID_LIST,
            Self::RsnList { .. } => obj::RSN_LIST,
            Self::MsgId { .. } => obj::MSG_ID,
            Self::BoundMsgId { .. } => obj::BOUND_MSG_ID,
            Self::Qspec(_) => obj::QSPEC,
            Self::Vlsp(_) => vlsp_type(profile),
            Self::SessionAuth(_) => obj::SESSION_AUTH,
            Self::Unknown(raw) => ObjectHeader::parse(raw).map_or(0, |h| h.obj_type),
        }
    }

    /// Appends the complete object.
    pub fn encode(&self, profile: Profile, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Self::Vlsp(v) => return v.encode(profile, out),
            Self::SessionAuth(raw) | Self::Unknown(raw) => return out.extend_from_slice(raw),
            _ => {}
        }
        out.extend_from_slice(&[0; 4]);
        match self {
            Self::Rii(v) => out.extend_from_slice(&v.to_be_bytes()),
            Self::Rsn { rsn, epoch } => {
                out.extend_from_slice(&rsn.to_be_bytes());
                out.extend_from_slice(&epoch.to_be_bytes());
            }
            Self::RefreshPeriod(d) => {
                let v = match profile {
                    Profile::Rfc => d.as_millis().min(u32::MAX as u128) as u32,
                    Profile::NsisKa => d.as_secs().min(u32::MAX as u64) as u32,
                };
                out.extend_from_slice(&v.to_be_bytes());
            }
            Self::BoundSessionId { code, sid } => {
                out.extend_from_slice(&[0, 0, 0, code.to_u8()]);
                out.extend_from_slice(sid);
            }
            Self::PacketClassifier(pc) => match profile {
                Profile::Rfc => out.extend_from_slice(&[pc.flags, 0, 0, 0]),
                Profile::NsisKa => out.extend_from_slice(&[0, 0, pc.flags, 0]),
            },
            Self::InfoSpec(i) => i.encode_value(profile, out),
            Self::SessionIdList(l) => l.iter().for_each(|s| out.extend_from_slice(s)),
            Self::RsnList { epoch, rsns } => {
                out.extend_from_slice(&epoch.to_be_bytes());
                rsns.iter()
                    .for_each(|r| out.extend_from_slice(&r.to_be_bytes()));
            }
            Self::MsgId { d, id } | Self::BoundMsgId { d, id } => {
                out.extend_from_slice(&(*d as u32).to_be_bytes());
                out.extend_from_slice(id);
            }
            Self::Qspec(q) => q.encode(profile, out),
            Self::Vlsp(_) | Self::SessionAuth(_) | Self::Unknown(_) => unreachable!(),
        }
        let h = ObjectHeader::new(
            Extensibility::Mandatory,
            self.obj_type(profile),
            out.len() - start - 4,
        );
        out[start..start + 4].copy_from_slice(&h.to_bytes());
    }

    fn decode(raw: &[u8], h: &ObjectHeader, profile: Profile) -> WireResult<Option<Self>> {
        let v = &raw[ObjectHeader::LEN..];
        let exact = |n: usize, what: &'static str, expected: &'static str| {
            if v.len() == n {
                Ok(())
            } else {
                Err(WireError::BadLength {
                    what,
                    len: v.len(),
                    expected,
                })
            }
        };
        let id16 = |o: usize| -> [u8; 16] { v[o..o + 16].try_into().expect("16 bytes") };
        Ok(Some(match h.obj_type {
            obj::RII => {
                exact(4, "RII", "4 bytes")?;
                Self::Rii(be32(v, 0, "RII")?)
            }
            obj::RSN => {
                exact(8, "RSN", "8 bytes")?;
                Self::Rsn {
                    rsn: be32(v, 0, "RSN")?,
                    epoch: be32(v, 4, "RSN")?,
                }
            }
            obj::REFRESH_PERIOD => {
                exact(4, "REFRESH_PERIOD", "4 bytes")?;
                let r = be32(v, 0, "REFRESH_PERIOD")? as u64;
                Self::RefreshPeriod(match profile {
                    Profile::Rfc => Duration::from_millis(r),
                    Profile::NsisKa => Duration::from_secs(r),
                })
            }
            obj::BOUND_SESSION_ID => {
                exact(20, "BOUND_SESSION_ID", "20 bytes")?;
                Self::BoundSessionId {
                    code: BindingCode::from_u8(v[3]),
                    sid: id16(4),
                }
            }
            obj::PACKET_CLASSIFIER => {
                exact(4, "PACKET_CLASSIFIER", "4 bytes")?;
                Self::PacketClassifier(PacketClassifier {
                    flags: match profile {
                        Profile::Rfc => v[0],
                        Profile::NsisKa => v[2],
                    },
                })
            }
            obj::INFO_SPEC => Self::InfoSpec(InfoSpec::decode_value(v)?),
            obj::SESSION_ID_LIST => {
                if !v.len().is_multiple_of(16) {
                    return Err(WireError::BadLength {
                        what: "SESSION_ID_LIST",
                        len: v.len(),
                        expected: "a multiple of 16 bytes",
                    });
                }
                Self::SessionIdList(v.chunks(16).map(|c| c.try_into().expect("16")).collect())
            }
            obj::RSN_LIST => {
                let epoch = be32(v, 0, "RSN_LIST")?;
                Self::RsnList {
                    epoch,
                    rsns: v[4..]
                        .chunks(4)
                        .map(|c| u32::from_be_bytes(c.try_into().expect("4")))
                        .collect(),
                }
            }
            obj::MSG_ID | obj::BOUND_MSG_ID => {
                exact(20, "MSG_ID", "20 bytes")?;
                let d = be32(v, 0, "MSG_ID")? & 1 == 1;
                let id = id16(4);
                if h.obj_type == obj::MSG_ID {
                    Self::MsgId { d, id }
                } else {
                    Self::BoundMsgId { d, id }
                }
            }
            obj::QSPEC => Self::Qspec(Qspec::decode(v, profile)?),
            obj::SESSION_AUTH => Self::SessionAuth(raw.to_vec()),
            t if t == vlsp_type(profile) => Self::Vlsp(VlspObject::decode_value(v, profile)?),
            t => match h.ext {
                Extensibility::Mandatory => {
                    return Err(WireError::UnknownMandatory {
                        what: "QoS NSLP message",
                        obj_type: t,
                    });
                }
                Extensibility::Ignore => return Ok(None),
                Extensibility::Forward | Extensibility::Refresh => Self::Unknown(raw.to_vec()),
            },
        }))
    }

    /// May this object appear more than once in a message?
    fn repeatable(&self) -> bool {
        matches!(
            self,
            Self::BoundSessionId { .. } | Self::Qspec(_) | Self::SessionAuth(_) | Self::Unknown(_)
        )
    }
}

/// A QoS NSLP message.
#[derive(Debug, Clone, PartialEq)]
pub struct NslpMessage {
    pub msg_type: MsgType,
    pub flags: Flags,
    pub objects: Vec<NslpObject>,
}

impl NslpMessage {
    /// A RESERVE in RFC object order, VLSP last (SESSION_AUTH objects are
    /// appended after it by whoever signs).
    pub fn reserve(
        rsn: u32,
        epoch: u32,
        rii: Option<u32>,
        refresh: Option<Duration>,
        qspec: Option<Qspec>,
        vlsp: Option<VlspObject>,
    ) -> Self {
        let mut objects = vec![NslpObject::Rsn { rsn, epoch }];
        objects.extend(rii.map(NslpObject::Rii));
        objects.extend(refresh.map(NslpObject::RefreshPeriod));
        if let Some(q) = qspec {
            objects.push(NslpObject::PacketClassifier(PacketClassifier {
                flags: 0x04,
            }));
            objects.push(NslpObject::Qspec(q));
        }
        objects.extend(vlsp.map(NslpObject::Vlsp));
        Self {
            msg_type: MsgType::Reserve,
            flags: Flags::default(),
            objects,
        }
    }

    /// The same message with a BOUND_SESSION_ID object, placed after
    /// REFRESH_PERIOD as RFC 5974 orders the objects.
    pub fn with_bound_session(mut self, code: BindingCode, sid: [u8; 16]) -> Self {
        let at = self
            .objects
            .iter()
            .position(|o| {
                !matches!(
                    o,
                    NslpObject::Rsn { .. } | NslpObject::Rii(_) | NslpObject::RefreshPeriod(_)
                )
            })
            .unwrap_or(self.objects.len());
        self.objects
            .insert(at, NslpObject::BoundSessionId { code, sid });
        self
    }

    /// The BOUND_SESSION_ID with binding code `code`, if present.
    pub fn bound_session(&self, code: BindingCode) -> Option<[u8; 16]> {
        self.objects.iter().find_map(|o| match o {
            NslpObject::BoundSessionId { code: c, sid } if *c == code => Some(*sid),
            _ => None,
        })
    }

    /// A tearing RESERVE (TEAR flag, RSN, optional RII).
    pub fn tear(rsn: u32, epoch: u32, rii: Option<u32>) -> Self {
        let mut m = Self::reserve(rsn, epoch, rii, None, None, None);
        m.flags.tear = true;
        m
    }

    /// A RESPONSE answering `rii` (or `rsn`) with `info`, echoing `vlsp`.
    pub fn response(
        rii: Option<u32>,
        rsn: Option<(u32, u32)>,
        info: InfoSpec,
        vlsp: Option<VlspObject>,
    ) -> Self {
        let mut objects = Vec::new();
        objects.extend(rii.map(NslpObject::Rii));
        objects.extend(rsn.map(|(rsn, epoch)| NslpObject::Rsn { rsn, epoch }));
        objects.push(NslpObject::InfoSpec(info));
        objects.extend(vlsp.map(NslpObject::Vlsp));
        Self {
            msg_type: MsgType::Response,
            flags: Flags::default(),
            objects,
        }
    }

    /// A NOTIFY carrying `info`.
    pub fn notify(info: InfoSpec) -> Self {
        Self {
            msg_type: MsgType::Notify,
            flags: Flags::default(),
            objects: vec![NslpObject::InfoSpec(info)],
        }
    }

    pub fn rii(&self) -> Option<u32> {
        self.objects.iter().find_map(|o| match o {
            NslpObject::Rii(v) => Some(*v),
            _ => None,
        })
    }

    pub fn rsn(&self) -> Option<(u32, u32)> {
        self.objects.iter().find_map(|o| match o {
            NslpObject::Rsn { rsn, epoch } => Some((*rsn, *epoch)),
            _ => None,
        })
    }

    pub fn refresh_period(&self) -> Option<Duration> {
        self.objects.iter().find_map(|o| match o {
            NslpObject::RefreshPeriod(d) => Some(*d),
            _ => None,
        })
    }

    pub fn qspec(&self) -> Option<&Qspec> {
        self.objects.iter().find_map(|o| match o {
            NslpObject::Qspec(q) => Some(q),
            _ => None,
        })
    }

    pub fn vlsp(&self) -> Option<&VlspObject> {
        self.objects.iter().find_map(|o| match o {
            NslpObject::Vlsp(v) => Some(v),
            _ => None,
        })
    }

    pub fn info_spec(&self) -> Option<&InfoSpec> {
        self.objects.iter().find_map(|o| match o {
            NslpObject::InfoSpec(i) => Some(i),
            _ => None,
        })
    }

    /// The raw SESSION_AUTH objects.
    pub fn session_auths(&self) -> impl Iterator<Item = &[u8]> {
        self.objects.iter().filter_map(|o| match o {
            NslpObject::SessionAuth(raw) => Some(raw.as_slice()),
            _ => None,
        })
    }

    /// The same message with this node's RSN (a forwarding QNE's change).
    pub fn with_rsn(&self, rsn: u32, epoch: u32) -> Self {
        let mut m = self.clone();
        for o in &mut m.objects {
            if let NslpObject::Rsn { .. } = o {
                *o = NslpObject::Rsn { rsn, epoch };
            }
        }
        m
    }

    /// The same message with another RII (inserted after the RSN if absent).
    pub fn with_rii(&self, rii: u32) -> Self {
        let mut m = self.clone();
        if let Some(o) = m
            .objects
            .iter_mut()
            .find(|o| matches!(o, NslpObject::Rii(_)))
        {
            *o = NslpObject::Rii(rii);
        } else {
            let at = m
                .objects
                .iter()
                .position(|o| matches!(o, NslpObject::Rsn { .. }))
                .map_or(0, |i| i + 1);
            m.objects.insert(at, NslpObject::Rii(rii));
        }
        m
    }

    /// Appends the encoded message.
    pub fn encode(&self, profile: Profile, out: &mut Vec<u8>) {
        let (m, g) = self.flags.encode(self.msg_type, profile);
        out.push(self.msg_type.to_u8());
        out.push(m);
        out.extend_from_slice(&g.to_be_bytes());
        for o in &self.objects {
            o.encode(profile, out);
        }
    }

    pub fn to_bytes(&self, profile: Profile) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode(profile, &mut out);
        out
    }

    /// Decodes a complete message (the value of GIST's NSLP-Data).
    pub fn decode(buf: &[u8], profile: Profile) -> WireResult<Self> {
        let t = MsgType::from_u8(*buf.first().ok_or(WireError::Truncated {
            what: "QoS NSLP header",
            need: 4,
            have: 0,
        })?)?;
        if buf.len() < 4 {
            return Err(WireError::Truncated {
                what: "QoS NSLP header",
                need: 4,
                have: buf.len(),
            });
        }
        let flags = Flags::decode(t, buf[1], be16(buf, 2, "QoS NSLP header")?, profile);
        let mut objects: Vec<NslpObject> = Vec::new();
        for raw in ObjectIter::new(&buf[4..], "QoS NSLP message") {
            let raw = raw?;
            let Some(o) = NslpObject::decode(raw.bytes, &raw.header, profile)? else {
                continue;
            };
            if !o.repeatable()
                && objects
                    .iter()
                    .any(|x| x.obj_type(profile) == o.obj_type(profile))
            {
                return Err(WireError::Duplicate {
                    what: "QoS NSLP message",
                    obj_type: o.obj_type(profile),
                });
            }
            objects.push(o);
        }
        Ok(Self {
            msg_type: t,
            flags,
            objects,
        })
    }
}

/// The INFO_SPEC answer RFC 5974 gives for a message that failed to decode.
pub fn info_spec_for(err: &WireError, addr: Ipv4Addr) -> InfoSpec {
    match err {
        WireError::UnknownMandatory { obj_type, .. } => InfoSpec::unknown_object(addr, *obj_type),
        WireError::Duplicate { .. } => {
            InfoSpec::new(InfoClass::ProtocolError, 0x0b, addr, "Duplicate object")
        }
        WireError::BadLength {
            what: "TMOD-1" | "QSPEC",
            ..
        } => InfoSpec::new(InfoClass::ProtocolError, 0x0c, addr, "Malformed QSPEC"),
        WireError::BadLength { .. } | WireError::Truncated { .. } => {
            InfoSpec::new(InfoClass::ProtocolError, 0x08, addr, "Wrong object length")
        }
        WireError::BadValue {
            what: "QoS NSLP header",
            ..
        } => InfoSpec::new(InfoClass::ProtocolError, 0x01, addr, "Illegal message type"),
        _ => InfoSpec::new(InfoClass::ProtocolError, 0x0e, addr, "Erroneous TLV value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TB4: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 4);

    /// A RESPONSE as NSIS-ka sends it (protocol.md §10): header, RII,
    /// INFO_SPEC success with an IPv4-mapped IPv6 ESI and its text.
    static NSIS_KA_RESPONSE: [u8; 60] = [
        0x03, 0x00, 0x00, 0x00, // RESPONSE, no flags
        0x00, 0x01, 0x00, 0x01, // RII, 1 word
        0x12, 0x34, 0x56, 0x78, //   RII value
        0x00, 0x06, 0x00, 0x0b, // INFO_SPEC, 11 words
        0x00, 0x01, 0x22, 0x04, //   code 1, class 2 (success), ESI type 2, 4 words
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 172, 3, 4, 4, // ::ffff:172.3.4.4
        b'R', b'e', b's', b'e', b'r', b'v', b'a', b't', b'i', b'o', b'n', b' ', b's', b'u', b'c',
        b'c', b'e', b's', b's', b'f', b'u', b'l', 0, 0, // "Reservation successful", padded
    ];

    #[test]
    fn deconstruct_nsis_ka_response() {
        let m = NslpMessage::decode(&NSIS_KA_RESPONSE, Profile::NsisKa).unwrap();
        assert_eq!(m.msg_type, MsgType::Response);
        assert_eq!(m.rii(), Some(0x1234_5678));
        let i = m.info_spec().unwrap();
        assert!(i.is_success());
        assert_eq!(i.code, 1);
        assert_eq!(i.origin(), "172.3.4.4");
        assert_eq!(i.text(), "Reservation successful");
    }

    #[test]
    fn construct_nsis_ka_response() {
        let m = NslpMessage::response(
            Some(0x1234_5678),
            None,
            InfoSpec::reservation_successful(TB4),
            None,
        );
        assert_eq!(m.to_bytes(Profile::NsisKa), NSIS_KA_RESPONSE);
    }

    /// A full RESERVE, rfc profile: RSN, RII, REFRESH_PERIOD, PACKET_CLASSIFIER,
    /// QSPEC, VLSP, and a SESSION_AUTH placeholder carried raw.
    fn full_reserve() -> NslpMessage {
        let mut m = NslpMessage::reserve(
            0,
            7,
            Some(0xa1b2_c3d4),
            Some(Duration::from_secs(30)),
            Some(Qspec::bandwidth_request(125_000.0, Profile::Rfc)),
            Some(VlspObject {
                vnet_id: 1,
                src_vnode: 2,
                dst_vnode: 3,
                src_vif: 4,
                dst_vif: 5,
                vlink_id: 6,
                tunnel_type: crate::wire::vlsp::TunnelType::Vxlan,
            }),
        );
        m.objects.push(NslpObject::SessionAuth(vec![
            0x80, 0x16, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef,
        ]));
        m
    }

    #[test]
    fn construct_full_reserve_bytes() {
        let b = full_reserve().to_bytes(Profile::Rfc);
        #[rustfmt::skip]
        let head: [u8; 36] = [
            0x01, 0x00, 0x00, 0x00, // RESERVE
            0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // RSN 0, epoch 7
            0x00, 0x01, 0x00, 0x01, 0xa1, 0xb2, 0xc3, 0xd4, // RII
            0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30, // REFRESH_PERIOD 30000 ms
            0x00, 0x05, 0x00, 0x01, // PACKET_CLASSIFIER header
        ];
        assert_eq!(&b[..36], &head);
        assert_eq!(&b[36..40], &[0x04, 0, 0, 0], "S flag in the top byte (rfc)");
        assert_eq!(&b[40..44], &[0x00, 0x0b, 0x00, 0x0a], "QSPEC, 10 words");
        assert_eq!(
            &b[84..88],
            &[0x87, 0xd0, 0x00, 0x13],
            "VLSP, forward, 19 words"
        );
        assert_eq!(&b[164..], &[0x80, 0x16, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            NslpMessage::decode(&b, Profile::Rfc).unwrap(),
            full_reserve()
        );
    }

    #[test]
    fn nsis_ka_layouts_of_refresh_and_classifier() {
        let b = full_reserve().to_bytes(Profile::NsisKa);
        assert_eq!(
            &b[24..32],
            &[0x00, 0x03, 0x00, 0x01, 0, 0, 0, 30],
            "seconds"
        );
        assert_eq!(
            &b[32..40],
            &[0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x04, 0x00]
        );
        let tear = NslpMessage::tear(1, 7, None).to_bytes(Profile::NsisKa);
        assert_eq!(&tear[..4], &[0x01, 0x02, 0x00, 0x00]);
    }

    #[test]
    fn unknown_objects_follow_their_extensibility_bits() {
        let mut b = NslpMessage::tear(1, 7, None).to_bytes(Profile::Rfc);
        let forward = [0x87, 0xff, 0x00, 0x01, 1, 2, 3, 4]; // AB=10, type 0x7ff
        let ignore = [0x47, 0xfe, 0x00, 0x01, 9, 9, 9, 9]; // AB=01
        b.extend_from_slice(&forward);
        b.extend_from_slice(&ignore);
        let m = NslpMessage::decode(&b, Profile::Rfc).unwrap();
        assert_eq!(
            m.objects.last(),
            Some(&NslpObject::Unknown(forward.to_vec()))
        );
        assert_eq!(m.objects.len(), 2, "the AB=01 object is dropped");
        let re = m.to_bytes(Profile::Rfc);
        assert_eq!(&re[re.len() - 8..], &forward, "forwarded bit for bit");
        // AB=00: the message is rejected, and the answer says why.
        let mut bad = NslpMessage::tear(1, 7, None).to_bytes(Profile::Rfc);
        bad.extend_from_slice(&[0x07, 0xfd, 0x00, 0x00]);
        let e = NslpMessage::decode(&bad, Profile::Rfc).unwrap_err();
        assert_eq!(
            e,
            WireError::UnknownMandatory {
                what: "QoS NSLP message",
                obj_type: 0x7fd
            }
        );
        let i = info_spec_for(&e, TB4);
        assert_eq!((i.class, i.code), (InfoClass::ProtocolError, 0x07));
    }

    #[test]
    fn malformed_messages_are_typed() {
        let b = full_reserve().to_bytes(Profile::Rfc);
        for n in 0..b.len() {
            // Every truncation that cuts an object is an error, never a panic.
            let r = NslpMessage::decode(&b[..n], Profile::Rfc);
            if n < 4 {
                assert!(r.is_err());
            }
        }
        let mut dup = NslpMessage::tear(1, 7, Some(5)).to_bytes(Profile::Rfc);
        dup.extend_from_slice(&[0x00, 0x01, 0x00, 0x01, 0, 0, 0, 6]);
        assert!(matches!(
            NslpMessage::decode(&dup, Profile::Rfc),
            Err(WireError::Duplicate { obj_type: 1, .. })
        ));
        let mut badrii = vec![0x01, 0, 0, 0];
        badrii.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert!(matches!(
            NslpMessage::decode(&badrii, Profile::Rfc),
            Err(WireError::BadLength {
                what: "RII",
                len: 8,
                ..
            })
        ));
        assert!(matches!(
            NslpMessage::decode(&[9, 0, 0, 0], Profile::Rfc),
            Err(WireError::BadValue { .. })
        ));
    }

    #[test]
    fn break_flag_placement_differs_by_profile() {
        let mut m = NslpMessage::tear(1, 1, None);
        m.flags.break_ = true;
        assert_eq!(&m.to_bytes(Profile::Rfc)[..4], &[0x01, 0x02, 0x00, 0x08]);
        assert_eq!(&m.to_bytes(Profile::NsisKa)[..4], &[0x01, 0x0a, 0x00, 0x00]);
        for p in [Profile::Rfc, Profile::NsisKa] {
            assert_eq!(NslpMessage::decode(&m.to_bytes(p), p).unwrap(), m);
        }
    }

    fn arb_msg() -> impl Strategy<Value = NslpMessage> {
        (
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(0u64..1_000_000),
            proptest::option::of(crate::wire::qspec::tests::arb_qspec()),
            proptest::option::of(crate::wire::vlsp::tests::arb_vlsp()),
            any::<bool>(),
        )
            .prop_map(|(rsn, epoch, rii, refresh, q, v, tear)| {
                let mut m =
                    NslpMessage::reserve(rsn, epoch, rii, refresh.map(Duration::from_secs), q, v);
                m.flags.tear = tear;
                m
            })
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_msg(), nsis in any::<bool>()) {
            let p = if nsis { Profile::NsisKa } else { Profile::Rfc };
            let mut m = m;
            if p == Profile::NsisKa {
                // NSIS-ka's TMOD-1 has no MPS.
                for o in &mut m.objects {
                    if let NslpObject::Qspec(q) = o {
                        for obj in &mut q.objects {
                            for par in &mut obj.params {
                                if let crate::wire::qspec::ParamValue::Tmod1(t) = &mut par.value {
                                    t.max_packet_size = None;
                                }
                            }
                        }
                    }
                }
            }
            let b = m.to_bytes(p);
            prop_assert_eq!(NslpMessage::decode(&b, p).unwrap(), m);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = NslpMessage::decode(&bytes, Profile::Rfc);
            let _ = NslpMessage::decode(&bytes, Profile::NsisKa);
        }
    }
}
