//! The QoS NSLP objects (RFC 5974 §5.1.3) as plain data, with their codecs.

use std::time::Duration;

use super::info_spec::InfoSpec;
use super::obj;
use crate::wire::profile::Profile;
use crate::wire::qspec::Qspec;
use crate::wire::tlv::{Extensibility, ObjectHeader, WireError, WireResult, be32, emit_object};
use crate::wire::vlsp::{VlspObject, vlsp_type};

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

    /// Appends the complete object; refuses a value too long for its
    /// length field.
    pub fn encode(&self, profile: Profile, out: &mut Vec<u8>) -> WireResult<()> {
        match self {
            Self::Vlsp(v) => {
                v.encode(profile, out);
                return Ok(());
            }
            Self::SessionAuth(raw) | Self::Unknown(raw) => {
                out.extend_from_slice(raw);
                return Ok(());
            }
            _ => {}
        }
        let what = "QoS NSLP object";
        emit_object(
            out,
            Extensibility::Mandatory,
            self.obj_type(profile),
            what,
            |out| self.encode_value(profile, out),
        )
    }

    fn encode_value(&self, profile: Profile, out: &mut Vec<u8>) -> WireResult<()> {
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
            Self::InfoSpec(i) => i.encode_value(profile, out)?,
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
            // Written whole by `encode`.
            Self::Vlsp(_) | Self::SessionAuth(_) | Self::Unknown(_) => {}
        }
        Ok(())
    }

    pub(crate) fn decode(
        raw: &[u8],
        h: &ObjectHeader,
        profile: Profile,
    ) -> WireResult<Option<Self>> {
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
    pub(crate) fn repeatable(&self) -> bool {
        matches!(
            self,
            Self::BoundSessionId { .. } | Self::Qspec(_) | Self::SessionAuth(_) | Self::Unknown(_)
        )
    }
}
