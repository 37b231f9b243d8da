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

mod info_spec;
mod objects;

use std::time::Duration;

use crate::wire::profile::Profile;
use crate::wire::qspec::Qspec;
use crate::wire::tlv::{ObjectIter, WireError, WireResult, be16};
use crate::wire::vlsp::VlspObject;

pub use info_spec::{Esi, InfoClass, InfoSpec, info_spec_for};
pub use objects::{BindingCode, NslpObject, PacketClassifier};

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

    /// Appends the encoded message; refuses an object too long for its
    /// length field.
    pub fn encode(&self, profile: Profile, out: &mut Vec<u8>) -> WireResult<()> {
        let (m, g) = self.flags.encode(self.msg_type, profile);
        out.push(self.msg_type.to_u8());
        out.push(m);
        out.extend_from_slice(&g.to_be_bytes());
        self.objects.iter().try_for_each(|o| o.encode(profile, out))
    }

    /// The encoded message; see [`NslpMessage::encode`].
    pub fn try_to_bytes(&self, profile: Profile) -> WireResult<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        self.encode(profile, &mut out)?;
        Ok(out)
    }

    /// The encoded message, for messages whose objects were decoded (each
    /// fitted its length field then) or built by the constructors here;
    /// anything else uses [`NslpMessage::try_to_bytes`]. The size of the
    /// whole message is GIST's to check (NSLP-Data, 16 380 bytes).
    pub fn to_bytes(&self, profile: Profile) -> Vec<u8> {
        self.try_to_bytes(profile)
            .expect("decoded or constructed QoS NSLP objects fit their length fields")
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

#[cfg(test)]
mod tests;
