//! GIST PDUs (RFC 5971 Appendix A): the common header, the objects, and
//! the six messages, with the UDP framing (magic number first).
//!
//! ```text
//! common header:
//! |  Version (8)  | GIST hops (8) |     Message Length (16, words)    |
//! |           NSLPID (16)         |C|  Type (7)   |S|R|E|  reserved   |
//! ```
//! Message Length counts the 32-bit words after the common header. Over UDP
//! (Q-mode and D-mode) the 4-byte magic number 0x4e04bda5 precedes it.
//!
//! Objects use the TLV header of [`crate::wire::tlv`]. Unknown objects follow
//! their extensibility bits (RFC 5971 §A.2.1): AB=00 rejects the message
//! (Object Type Error, Unrecognised Object), AB=01 drops the object, AB=10
//! keeps it for forwarding, AB=11 is invalid (Invalid Extensibility Flags).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::wire::tlv::{
    Extensibility, ObjectHeader, ObjectIter, WireError, WireResult, be16, be32, pad4, padded, take,
};

/// UDP magic number that precedes every datagram-mode GIST message.
pub const MAGIC: u32 = 0x4e04_bda5;
/// GIST's port for Q-mode and D-mode.
pub const GIST_PORT: u16 = 270;
/// NSLPID of the QoS NSLP. NSIS-ka uses 1; the IANA value is not confirmed
/// (protocol.md §2.1), so this is configurable where it matters.
pub const NSLPID_QOS: u16 = 1;
/// Common header length.
pub const HEADER_LEN: usize = 8;

/// GIST object types (RFC 5971 §A.2).
pub mod obj {
    pub const MRI: u16 = 0;
    pub const SESSION_ID: u16 = 1;
    pub const NLI: u16 = 2;
    pub const STACK_PROPOSAL: u16 = 3;
    pub const STACK_CONFIG: u16 = 4;
    pub const QUERY_COOKIE: u16 = 5;
    pub const RESPONDER_COOKIE: u16 = 6;
    pub const NAT_TRAVERSAL: u16 = 7;
    pub const NSLP_DATA: u16 = 8;
    pub const ERROR: u16 = 9;
    pub const HELLO_ID: u16 = 10;
}

/// GIST message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Query,
    Response,
    Confirm,
    Data,
    Error,
    MaHello,
}

impl MessageType {
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Query => 0,
            Self::Response => 1,
            Self::Confirm => 2,
            Self::Data => 3,
            Self::Error => 4,
            Self::MaHello => 5,
        }
    }
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Query,
            1 => Self::Response,
            2 => Self::Confirm,
            3 => Self::Data,
            4 => Self::Error,
            5 => Self::MaHello,
            _ => return None,
        })
    }
}

/// The common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonHeader {
    pub version: u8,
    pub hops: u8,
    /// Words after the header.
    pub length_words: u16,
    pub nslpid: u16,
    /// C: Q-mode encapsulation.
    pub c: bool,
    pub msg_type: MessageType,
    /// S: the IP source address is the signalling source.
    pub s: bool,
    /// R: a reply is requested.
    pub r: bool,
    /// E: explicitly routed.
    pub e: bool,
}

impl CommonHeader {
    /// Decodes and validates the header (RFC 5971 §A.4.4.1 error subcodes in
    /// the messages).
    pub fn parse(buf: &[u8]) -> WireResult<Self> {
        let b = take(buf, HEADER_LEN, "GIST common header")?;
        if b[0] != 1 {
            return Err(WireError::BadValue {
                what: "GIST common header",
                detail: format!("unknown version {} (Common Header Parse Error 0)", b[0]),
            });
        }
        let msg_type = MessageType::from_u8(b[6] & 0x7f).ok_or_else(|| WireError::BadValue {
            what: "GIST common header",
            detail: format!("unknown type {} (Common Header Parse Error 1)", b[6] & 0x7f),
        })?;
        let h = Self {
            version: b[0],
            hops: b[1],
            length_words: u16::from_be_bytes([b[2], b[3]]),
            nslpid: u16::from_be_bytes([b[4], b[5]]),
            c: b[6] & 0x80 != 0,
            msg_type,
            s: b[7] & 0x80 != 0,
            r: b[7] & 0x40 != 0,
            e: b[7] & 0x20 != 0,
        };
        if h.r && matches!(msg_type, MessageType::Confirm | MessageType::Error) {
            return Err(WireError::BadValue {
                what: "GIST common header",
                detail: "R flag on a Confirm or Error (Common Header Parse Error 2)".into(),
            });
        }
        if h.c && !matches!(msg_type, MessageType::Query | MessageType::Data) {
            return Err(WireError::BadValue {
                what: "GIST common header",
                detail:
                    "C flag on a message other than Query or Data (Common Header Parse Error 5)"
                        .into(),
            });
        }
        if h.e && msg_type != MessageType::Data {
            return Err(WireError::BadValue {
                what: "GIST common header",
                detail: "E flag on a message other than Data (Common Header Parse Error 4)".into(),
            });
        }
        Ok(h)
    }

    pub fn to_bytes(&self) -> [u8; 8] {
        let l = self.length_words.to_be_bytes();
        let n = self.nslpid.to_be_bytes();
        [
            self.version,
            self.hops,
            l[0],
            l[1],
            n[0],
            n[1],
            ((self.c as u8) << 7) | self.msg_type.to_u8(),
            ((self.s as u8) << 7) | ((self.r as u8) << 6) | ((self.e as u8) << 5),
        ]
    }
}

/// A path-coupled Message Routing Information (MRM-ID 0): the flow a
/// session signals for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCoupledMri {
    /// N flag: NAT traversal has modified the MRI.
    pub nat: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_prefix: u8,
    pub dst_prefix: u8,
    /// IP protocol (P flag).
    pub protocol: Option<u8>,
    /// DiffServ field (T flag), 6 bits.
    pub ds_field: Option<u8>,
    /// IPv6 flow label (F flag), 20 bits.
    pub flow_label: Option<u32>,
    /// IPsec SPI (S flag).
    pub spi: Option<u32>,
    /// Source port (A flag).
    pub src_port: Option<u16>,
    /// Destination port (B flag).
    pub dst_port: Option<u16>,
    /// D flag: the message travels upstream.
    pub upstream: bool,
}

impl PathCoupledMri {
    /// A host-to-host IPv4 UDP flow, as NSIS-ka's QoS NSLP builds it.
    pub fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Self {
            nat: false,
            src: src.into(),
            dst: dst.into(),
            src_prefix: 0,
            dst_prefix: 0,
            protocol: Some(17),
            ds_field: None,
            flow_label: None,
            spi: None,
            src_port: None,
            dst_port: None,
            upstream: false,
        }
    }
}

/// Message Routing Information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mri {
    PathCoupled(PathCoupledMri),
    /// Another routing method, value kept as received.
    Other {
        mrm_id: u8,
        value: Vec<u8>,
    },
}

impl Mri {
    fn encode_value(&self, out: &mut Vec<u8>) -> WireResult<()> {
        let m = match self {
            Self::Other { value, .. } => {
                out.extend_from_slice(value);
                pad4(out);
                return Ok(());
            }
            Self::PathCoupled(m) => m,
        };
        let v6 = match (m.src, m.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => {
                return Err(WireError::BadValue {
                    what: "MRI",
                    detail: "source and destination of different IP versions".into(),
                });
            }
        };
        let mut f: u16 = if v6 { 6 << 12 } else { 4 << 12 };
        f |= (m.protocol.is_some() as u16) << 11;
        f |= (m.ds_field.is_some() as u16) << 10;
        f |= (m.flow_label.is_some() as u16) << 9;
        f |= (m.spi.is_some() as u16) << 8;
        f |= (m.src_port.is_some() as u16) << 7;
        f |= (m.dst_port.is_some() as u16) << 6;
        f |= (m.upstream as u16) << 5;
        out.push(0); // MRM-ID 0
        out.push((m.nat as u8) << 7);
        out.extend_from_slice(&f.to_be_bytes());
        for a in [m.src, m.dst] {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        out.extend_from_slice(&[
            m.src_prefix,
            m.dst_prefix,
            m.protocol.unwrap_or(0),
            m.ds_field.unwrap_or(0) << 2,
        ]);
        if let Some(l) = m.flow_label {
            out.extend_from_slice(&(l & 0x000f_ffff).to_be_bytes());
        }
        if let Some(s) = m.spi {
            out.extend_from_slice(&s.to_be_bytes());
        }
        if m.src_port.is_some() || m.dst_port.is_some() {
            out.extend_from_slice(&m.src_port.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&m.dst_port.unwrap_or(0).to_be_bytes());
        }
        Ok(())
    }

    fn decode_value(v: &[u8]) -> WireResult<Self> {
        let w0 = be32(v, 0, "MRI")?;
        let mrm_id = (w0 >> 24) as u8;
        if mrm_id != 0 {
            return Ok(Self::Other {
                mrm_id,
                value: v.to_vec(),
            });
        }
        let f = w0 as u16;
        let (alen, v6) = match f >> 12 {
            4 => (4, false),
            6 => (16, true),
            x => {
                return Err(WireError::BadValue {
                    what: "MRI",
                    detail: format!("IP version {x}"),
                });
            }
        };
        let flag = |bit: u16| f & (1 << bit) != 0;
        let addr = |o: usize| -> WireResult<IpAddr> {
            let b = v.get(o..o + alen).ok_or(WireError::Truncated {
                what: "MRI",
                need: o + alen,
                have: v.len(),
            })?;
            Ok(if v6 {
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).expect("16")))
            } else {
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).expect("4")))
            })
        };
        let src = addr(4)?;
        let dst = addr(4 + alen)?;
        let mut o = 4 + 2 * alen;
        let w = be32(v, o, "MRI")?;
        o += 4;
        let (p, t, fl, s, a, b) = (flag(11), flag(10), flag(9), flag(8), flag(7), flag(6));
        let mut next = |what| -> WireResult<u32> {
            let x = be32(v, o, what)?;
            o += 4;
            Ok(x)
        };
        let flow_label = if fl {
            Some(next("MRI")? & 0x000f_ffff)
        } else {
            None
        };
        let spi = if s { Some(next("MRI")?) } else { None };
        let ports = if a || b { Some(next("MRI")?) } else { None };
        if o != v.len() {
            return Err(WireError::BadLength {
                what: "MRI",
                len: v.len(),
                expected: "the length its flags imply",
            });
        }
        Ok(Self::PathCoupled(PathCoupledMri {
            nat: (w0 >> 23) & 1 == 1,
            src,
            dst,
            src_prefix: (w >> 24) as u8,
            dst_prefix: (w >> 16) as u8,
            protocol: p.then_some((w >> 8) as u8),
            ds_field: t.then_some((w as u8) >> 2),
            flow_label,
            spi,
            src_port: if a {
                ports.map(|x| (x >> 16) as u16)
            } else {
                None
            },
            dst_port: if b { ports.map(|x| x as u16) } else { None },
            upstream: flag(5),
        }))
    }
}

/// Network-Layer-Information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nli {
    pub peer_id: Vec<u8>,
    pub ip_ttl: u8,
    /// RS-Validity-Time in milliseconds.
    pub rs_validity_ms: u32,
    /// Where replies go.
    pub interface: IpAddr,
}

impl Nli {
    fn encode_value(&self, out: &mut Vec<u8>) {
        let v6 = self.interface.is_ipv6();
        out.push(self.peer_id.len() as u8);
        out.push(self.ip_ttl);
        out.extend_from_slice(&(if v6 { 6u16 << 12 } else { 4u16 << 12 }).to_be_bytes());
        out.extend_from_slice(&self.rs_validity_ms.to_be_bytes());
        out.extend_from_slice(&self.peer_id);
        pad4(out);
        match self.interface {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }

    fn decode_value(v: &[u8]) -> WireResult<Self> {
        let w = be32(v, 0, "NLI")?;
        let pi_len = (w >> 24) as usize;
        let ver = (w >> 12) & 0xf;
        let alen = match ver {
            4 => 4,
            6 => 16,
            x => {
                return Err(WireError::BadValue {
                    what: "NLI",
                    detail: format!("IP version {x}"),
                });
            }
        };
        let rs = be32(v, 4, "NLI")?;
        let pi_end = 8 + padded(pi_len);
        if v.len() != pi_end + alen {
            return Err(WireError::BadLength {
                what: "NLI",
                len: v.len(),
                expected: "8 + padded peer identity + address",
            });
        }
        let a = &v[pi_end..];
        Ok(Self {
            peer_id: v[8..8 + pi_len].to_vec(),
            ip_ttl: (w >> 16) as u8,
            rs_validity_ms: rs,
            interface: if alen == 4 {
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(a).expect("4")))
            } else {
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(a).expect("16")))
            },
        })
    }
}

/// Stack-Proposal: profiles of MA protocols (1 TCP, 2 TLS, 3 SCTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackProposal {
    pub profiles: Vec<Vec<u8>>,
}

/// One MA-protocol-option of Stack-Configuration-Data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaOption {
    pub protocol: u8,
    /// 1-based profile index; 0 = all profiles.
    pub profile: u8,
    /// D flag: do not use this protocol in D-mode.
    pub d: bool,
    pub data: Vec<u8>,
}

/// Stack-Configuration-Data. The option Length field counts *bytes* of
/// option data before padding: NSIS-ka writes it so, and RFC 5971 §A.3.5 is
/// read the same way here (a word count could not describe odd lengths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfigData {
    pub ma_hold_time_ms: u32,
    pub options: Vec<MaOption>,
}

/// The GIST Error object (RFC 5971 §A.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorObject {
    pub class: u8,
    pub code: u16,
    pub subcode: u8,
    /// D flag: the offending message arrived in D-mode.
    pub dmode: bool,
    /// Q flag: it arrived in Q-mode.
    pub qmode: bool,
    /// Common header of the offending message.
    pub header: [u8; 8],
    pub session_id: Option<[u8; 16]>,
    /// MRI value of the offending message (no TLV header).
    pub mri: Option<Vec<u8>>,
    /// Additional information fields: (AI-Type, value).
    pub info: Vec<(u16, Vec<u8>)>,
    /// Debug comment (C flag), padded text.
    pub comment: Option<Vec<u8>>,
}

/// Error classes (RFC 5971 §A.4.3).
pub mod error_class {
    pub const INFORMATIONAL: u8 = 0;
    pub const SUCCESS: u8 = 1;
    pub const PROTOCOL_ERROR: u8 = 2;
    pub const TRANSIENT_FAILURE: u8 = 3;
    pub const PERMANENT_FAILURE: u8 = 4;
}

/// Error codes (RFC 5971 §A.4.4).
pub mod error_code {
    pub const COMMON_HEADER_PARSE: u16 = 1;
    pub const HOP_LIMIT_EXCEEDED: u16 = 2;
    pub const INCORRECT_ENCAPSULATION: u16 = 3;
    pub const INCORRECTLY_DELIVERED: u16 = 4;
    pub const NO_ROUTING_STATE: u16 = 5;
    pub const UNKNOWN_NSLPID: u16 = 6;
    pub const ENDPOINT_FOUND: u16 = 7;
    pub const MESSAGE_TOO_LARGE: u16 = 8;
    pub const OBJECT_TYPE_ERROR: u16 = 9;
    pub const OBJECT_VALUE_ERROR: u16 = 10;
    pub const INVALID_IP_TTL: u16 = 11;
    pub const MRI_VALIDATION_FAILURE: u16 = 12;
}

impl ErrorObject {
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.push(self.class);
        out.extend_from_slice(&self.code.to_be_bytes());
        out.push(self.subcode);
        let mut f: u16 = 0;
        f |= (self.session_id.is_some() as u16) << 15;
        f |= (self.mri.is_some() as u16) << 14;
        f |= (self.comment.is_some() as u16) << 13;
        f |= (self.dmode as u16) << 12;
        f |= (self.qmode as u16) << 11;
        out.extend_from_slice(&f.to_be_bytes());
        out.push(self.mri.as_ref().map_or(0, |m| (padded(m.len()) / 4) as u8));
        out.push(self.info.len() as u8);
        out.extend_from_slice(&self.header);
        if let Some(s) = &self.session_id {
            out.extend_from_slice(s);
        }
        if let Some(m) = &self.mri {
            out.extend_from_slice(m);
            pad4(out);
        }
        for (t, v) in &self.info {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&((padded(v.len()) / 4) as u16).to_be_bytes());
            out.extend_from_slice(v);
            pad4(out);
        }
        if let Some(c) = &self.comment {
            out.extend_from_slice(c);
            pad4(out);
        }
    }

    fn decode_value(v: &[u8]) -> WireResult<Self> {
        let w0 = be32(v, 0, "GIST Error object")?;
        let f = be16(v, 4, "GIST Error object")?;
        let mri_words = *v.get(6).ok_or(WireError::Truncated {
            what: "GIST Error object",
            need: 8,
            have: v.len(),
        })? as usize;
        let count = *v.get(7).ok_or(WireError::Truncated {
            what: "GIST Error object",
            need: 8,
            have: v.len(),
        })? as usize;
        let mut o = 8;
        let mut get = |n: usize| -> WireResult<&[u8]> {
            let b = v.get(o..o + n).ok_or(WireError::Truncated {
                what: "GIST Error object",
                need: o + n,
                have: v.len(),
            })?;
            o += n;
            Ok(b)
        };
        let header: [u8; 8] = get(8)?.try_into().expect("8");
        let session_id = if f & 0x8000 != 0 {
            Some(get(16)?.try_into().expect("16"))
        } else {
            None
        };
        let mri = if f & 0x4000 != 0 {
            Some(get(mri_words * 4)?.to_vec())
        } else {
            None
        };
        let mut info = Vec::with_capacity(count.min(16));
        for _ in 0..count {
            let h = get(4)?;
            let t = u16::from_be_bytes([h[0], h[1]]);
            let words = u16::from_be_bytes([h[2], h[3]]) as usize;
            info.push((t, get(words * 4)?.to_vec()));
        }
        let comment = if f & 0x2000 != 0 {
            Some(v[o..].to_vec())
        } else if o != v.len() {
            return Err(WireError::Trailing {
                what: "GIST Error object",
                extra: v.len() - o,
            });
        } else {
            None
        };
        Ok(Self {
            class: (w0 >> 24) as u8,
            code: (w0 >> 8) as u16,
            subcode: w0 as u8,
            dmode: f & 0x1000 != 0,
            qmode: f & 0x0800 != 0,
            header,
            session_id,
            mri,
            info,
            comment,
        })
    }
}

/// The message-specific part of a PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Query {
        mri: Mri,
        sid: [u8; 16],
        nli: Nli,
        query_cookie: Vec<u8>,
        stack: Option<(StackProposal, StackConfigData)>,
        nslp_data: Option<Vec<u8>>,
    },
    Response {
        mri: Mri,
        sid: [u8; 16],
        nli: Nli,
        query_cookie: Vec<u8>,
        responder_cookie: Option<Vec<u8>>,
        stack: Option<(StackProposal, StackConfigData)>,
        nslp_data: Option<Vec<u8>>,
    },
    Confirm {
        mri: Mri,
        sid: [u8; 16],
        nli: Nli,
        responder_cookie: Option<Vec<u8>>,
        stack_proposal: Option<StackProposal>,
        stack_config: Option<StackConfigData>,
        nslp_data: Option<Vec<u8>>,
    },
    Data {
        mri: Mri,
        sid: [u8; 16],
        nli: Option<Nli>,
        nslp_data: Vec<u8>,
    },
    Error {
        nli: Option<Nli>,
        error: ErrorObject,
    },
    MaHello {
        hello_id: u32,
    },
}

impl Body {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Self::Query { .. } => MessageType::Query,
            Self::Response { .. } => MessageType::Response,
            Self::Confirm { .. } => MessageType::Confirm,
            Self::Data { .. } => MessageType::Data,
            Self::Error { .. } => MessageType::Error,
            Self::MaHello { .. } => MessageType::MaHello,
        }
    }
}

/// A GIST PDU: header fields and body. Unknown AB=10 objects are kept and
/// re-emitted after the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GistPdu {
    pub hops: u8,
    pub nslpid: u16,
    pub c: bool,
    pub s: bool,
    pub r: bool,
    pub e: bool,
    pub body: Body,
    pub unknown: Vec<Vec<u8>>,
}

fn tlv(out: &mut Vec<u8>, ext: Extensibility, t: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    f(out);
    pad4(out);
    let h = ObjectHeader::new(ext, t, out.len() - start - 4);
    out[start..start + 4].copy_from_slice(&h.to_bytes());
}

fn encode_stack_proposal(sp: &StackProposal, out: &mut Vec<u8>) {
    out.extend_from_slice(&[sp.profiles.len() as u8, 0, 0, 0]);
    for p in &sp.profiles {
        out.push(p.len() as u8);
        out.extend_from_slice(p);
        pad4(out);
    }
}

fn decode_stack_proposal(v: &[u8]) -> WireResult<StackProposal> {
    let n = *v.first().ok_or(WireError::Truncated {
        what: "Stack-Proposal",
        need: 4,
        have: 0,
    })? as usize;
    let mut o = 4;
    let mut profiles = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let c = *v.get(o).ok_or(WireError::Truncated {
            what: "Stack-Proposal",
            need: o + 1,
            have: v.len(),
        })? as usize;
        let ids = v.get(o + 1..o + 1 + c).ok_or(WireError::Truncated {
            what: "Stack-Proposal",
            need: o + 1 + c,
            have: v.len(),
        })?;
        profiles.push(ids.to_vec());
        o += padded(1 + c);
    }
    if o != v.len() {
        return Err(WireError::BadLength {
            what: "Stack-Proposal",
            len: v.len(),
            expected: "the length its profile count implies",
        });
    }
    Ok(StackProposal { profiles })
}

fn encode_stack_config(sc: &StackConfigData, out: &mut Vec<u8>) {
    out.extend_from_slice(&[sc.options.len() as u8, 0, 0, 0]);
    out.extend_from_slice(&sc.ma_hold_time_ms.to_be_bytes());
    for o in &sc.options {
        out.extend_from_slice(&[o.protocol, o.profile, o.data.len() as u8, (o.d as u8) << 7]);
        out.extend_from_slice(&o.data);
        pad4(out);
    }
}

fn decode_stack_config(v: &[u8]) -> WireResult<StackConfigData> {
    let n = *v.first().ok_or(WireError::Truncated {
        what: "Stack-Configuration-Data",
        need: 8,
        have: 0,
    })? as usize;
    let hold = be32(v, 4, "Stack-Configuration-Data")?;
    let mut o = 8;
    let mut options = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let h = v.get(o..o + 4).ok_or(WireError::Truncated {
            what: "Stack-Configuration-Data",
            need: o + 4,
            have: v.len(),
        })?;
        let len = h[2] as usize;
        let data = v.get(o + 4..o + 4 + len).ok_or(WireError::Truncated {
            what: "Stack-Configuration-Data",
            need: o + 4 + len,
            have: v.len(),
        })?;
        options.push(MaOption {
            protocol: h[0],
            profile: h[1],
            d: h[3] & 0x80 != 0,
            data: data.to_vec(),
        });
        o += 4 + padded(len);
    }
    if o != v.len() {
        return Err(WireError::BadLength {
            what: "Stack-Configuration-Data",
            len: v.len(),
            expected: "the length its option count implies",
        });
    }
    Ok(StackConfigData {
        ma_hold_time_ms: hold,
        options,
    })
}

/// Objects collected while decoding, before the body is assembled.
#[derive(Default)]
struct Bag {
    mri: Option<Mri>,
    sid: Option<[u8; 16]>,
    nli: Option<Nli>,
    sp: Option<StackProposal>,
    sc: Option<StackConfigData>,
    qc: Option<Vec<u8>>,
    rc: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
    error: Option<ErrorObject>,
    hello: Option<u32>,
    unknown: Vec<Vec<u8>>,
}

fn set<T>(slot: &mut Option<T>, v: T, t: u16) -> WireResult<()> {
    if slot.is_some() {
        return Err(WireError::Duplicate {
            what: "GIST PDU",
            obj_type: t,
        });
    }
    *slot = Some(v);
    Ok(())
}

fn need<T>(v: Option<T>, missing: &'static str) -> WireResult<T> {
    v.ok_or(WireError::Missing {
        what: "GIST PDU",
        missing,
    })
}

impl GistPdu {
    /// Encodes the bare PDU (common header and objects, no magic number).
    pub fn encode(&self) -> WireResult<Vec<u8>> {
        let mut out = Vec::with_capacity(320);
        out.extend_from_slice(&[0; HEADER_LEN]);
        let m = Extensibility::Mandatory;
        let mri_obj = |out: &mut Vec<u8>, mri: &Mri| -> WireResult<()> {
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            mri.encode_value(out)?;
            let h = ObjectHeader::new(m, obj::MRI, out.len() - start - 4);
            out[start..start + 4].copy_from_slice(&h.to_bytes());
            Ok(())
        };
        let sid_obj = |out: &mut Vec<u8>, sid: &[u8; 16]| {
            tlv(out, m, obj::SESSION_ID, |o| o.extend_from_slice(sid))
        };
        let nli_obj = |out: &mut Vec<u8>, nli: &Nli| tlv(out, m, obj::NLI, |o| nli.encode_value(o));
        let bytes_obj =
            |out: &mut Vec<u8>, t: u16, b: &[u8]| tlv(out, m, t, |o| o.extend_from_slice(b));
        let stack = |out: &mut Vec<u8>, sp: &StackProposal, sc: &StackConfigData| {
            tlv(out, m, obj::STACK_PROPOSAL, |o| {
                encode_stack_proposal(sp, o)
            });
            tlv(out, m, obj::STACK_CONFIG, |o| encode_stack_config(sc, o));
        };
        match &self.body {
            Body::Query {
                mri,
                sid,
                nli,
                query_cookie,
                stack: st,
                nslp_data,
            } => {
                mri_obj(&mut out, mri)?;
                sid_obj(&mut out, sid);
                nli_obj(&mut out, nli);
                bytes_obj(&mut out, obj::QUERY_COOKIE, query_cookie);
                if let Some((sp, sc)) = st {
                    stack(&mut out, sp, sc);
                }
                if let Some(d) = nslp_data {
                    bytes_obj(&mut out, obj::NSLP_DATA, d);
                }
            }
            Body::Response {
                mri,
                sid,
                nli,
                query_cookie,
                responder_cookie,
                stack: st,
                nslp_data,
            } => {
                mri_obj(&mut out, mri)?;
                sid_obj(&mut out, sid);
                nli_obj(&mut out, nli);
                bytes_obj(&mut out, obj::QUERY_COOKIE, query_cookie);
                if let Some(rc) = responder_cookie {
                    bytes_obj(&mut out, obj::RESPONDER_COOKIE, rc);
                }
                if let Some((sp, sc)) = st {
                    stack(&mut out, sp, sc);
                }
                if let Some(d) = nslp_data {
                    bytes_obj(&mut out, obj::NSLP_DATA, d);
                }
            }
            Body::Confirm {
                mri,
                sid,
                nli,
                responder_cookie,
                stack_proposal,
                stack_config,
                nslp_data,
            } => {
                mri_obj(&mut out, mri)?;
                sid_obj(&mut out, sid);
                nli_obj(&mut out, nli);
                if let Some(rc) = responder_cookie {
                    bytes_obj(&mut out, obj::RESPONDER_COOKIE, rc);
                }
                if let Some(sp) = stack_proposal {
                    tlv(&mut out, m, obj::STACK_PROPOSAL, |o| {
                        encode_stack_proposal(sp, o)
                    });
                }
                if let Some(sc) = stack_config {
                    tlv(&mut out, m, obj::STACK_CONFIG, |o| {
                        encode_stack_config(sc, o)
                    });
                }
                if let Some(d) = nslp_data {
                    bytes_obj(&mut out, obj::NSLP_DATA, d);
                }
            }
            Body::Data {
                mri,
                sid,
                nli,
                nslp_data,
            } => {
                mri_obj(&mut out, mri)?;
                sid_obj(&mut out, sid);
                if let Some(n) = nli {
                    nli_obj(&mut out, n);
                }
                bytes_obj(&mut out, obj::NSLP_DATA, nslp_data);
            }
            Body::Error { nli, error } => {
                if let Some(n) = nli {
                    nli_obj(&mut out, n);
                }
                tlv(&mut out, m, obj::ERROR, |o| error.encode_value(o));
            }
            Body::MaHello { hello_id } => {
                bytes_obj(&mut out, obj::HELLO_ID, &hello_id.to_be_bytes());
            }
        }
        for u in &self.unknown {
            out.extend_from_slice(u);
        }
        let words = (out.len() - HEADER_LEN) / 4;
        if out.len() > u16::MAX as usize * 4 || words > u16::MAX as usize {
            return Err(WireError::BadLength {
                what: "GIST PDU",
                len: out.len(),
                expected: "at most 65535 words",
            });
        }
        let h = CommonHeader {
            version: 1,
            hops: self.hops,
            length_words: words as u16,
            nslpid: self.nslpid,
            c: self.c,
            msg_type: self.body.msg_type(),
            s: self.s,
            r: self.r,
            e: self.e,
        };
        out[..HEADER_LEN].copy_from_slice(&h.to_bytes());
        Ok(out)
    }

    /// Encodes for UDP: magic number, then the PDU.
    pub fn encode_udp(&self) -> WireResult<Vec<u8>> {
        let pdu = self.encode()?;
        let mut out = Vec::with_capacity(pdu.len() + 4);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&pdu);
        Ok(out)
    }

    /// Decodes a UDP payload: checks the magic number first.
    pub fn decode_udp(buf: &[u8]) -> WireResult<Self> {
        let m = be32(buf, 0, "GIST magic number")?;
        if m != MAGIC {
            return Err(WireError::BadValue {
                what: "GIST magic number",
                detail: format!("{m:#010x} instead of {MAGIC:#010x}"),
            });
        }
        Self::decode(&buf[4..])
    }

    /// Decodes a bare PDU. The buffer must hold exactly the message.
    pub fn decode(buf: &[u8]) -> WireResult<Self> {
        let h = CommonHeader::parse(buf)?;
        let len = HEADER_LEN + h.length_words as usize * 4;
        if buf.len() != len {
            return Err(WireError::BadLength {
                what: "GIST PDU",
                len: buf.len(),
                expected: "8 + 4 × Message Length (Common Header Parse Error 3)",
            });
        }
        let mut bag = Bag::default();
        for raw in ObjectIter::new(&buf[HEADER_LEN..], "GIST PDU") {
            let raw = raw?;
            let v = raw.value();
            let t = raw.header.obj_type;
            match t {
                obj::MRI => set(&mut bag.mri, Mri::decode_value(v)?, t)?,
                obj::SESSION_ID => {
                    let s: [u8; 16] = v.try_into().map_err(|_| WireError::BadLength {
                        what: "Session-ID",
                        len: v.len(),
                        expected: "16 bytes",
                    })?;
                    set(&mut bag.sid, s, t)?
                }
                obj::NLI => set(&mut bag.nli, Nli::decode_value(v)?, t)?,
                obj::STACK_PROPOSAL => set(&mut bag.sp, decode_stack_proposal(v)?, t)?,
                obj::STACK_CONFIG => set(&mut bag.sc, decode_stack_config(v)?, t)?,
                obj::QUERY_COOKIE => set(&mut bag.qc, v.to_vec(), t)?,
                obj::RESPONDER_COOKIE => set(&mut bag.rc, v.to_vec(), t)?,
                obj::NSLP_DATA => set(&mut bag.data, v.to_vec(), t)?,
                obj::ERROR => set(&mut bag.error, ErrorObject::decode_value(v)?, t)?,
                obj::HELLO_ID => {
                    if v.len() != 4 {
                        return Err(WireError::BadLength {
                            what: "Hello-ID",
                            len: v.len(),
                            expected: "4 bytes",
                        });
                    }
                    set(&mut bag.hello, be32(v, 0, "Hello-ID")?, t)?
                }
                _ => match raw.header.ext {
                    Extensibility::Mandatory => {
                        return Err(WireError::UnknownMandatory {
                            what: "GIST PDU",
                            obj_type: t,
                        });
                    }
                    Extensibility::Ignore => {}
                    Extensibility::Forward => bag.unknown.push(raw.bytes.to_vec()),
                    Extensibility::Refresh => {
                        return Err(WireError::BadValue {
                            what: "GIST PDU",
                            detail: format!(
                                "object {t} has extensibility flags AB=11 (Object Type Error 5)"
                            ),
                        });
                    }
                },
            }
        }
        let stack = match (bag.sp.take(), bag.sc.take()) {
            (Some(sp), Some(sc)) => Some((sp, sc)),
            (None, None) => None,
            (sp, sc) => {
                // Only a Confirm may carry one without the other.
                if h.msg_type != MessageType::Confirm {
                    return Err(WireError::Missing {
                        what: "GIST PDU",
                        missing: "Stack-Proposal and Stack-Configuration-Data together",
                    });
                }
                bag.sp = sp;
                bag.sc = sc;
                None
            }
        };
        let body = match h.msg_type {
            MessageType::Query => Body::Query {
                mri: need(bag.mri, "MRI")?,
                sid: need(bag.sid, "Session-ID")?,
                nli: need(bag.nli, "NLI")?,
                query_cookie: need(bag.qc, "Query-Cookie")?,
                stack,
                nslp_data: bag.data,
            },
            MessageType::Response => Body::Response {
                mri: need(bag.mri, "MRI")?,
                sid: need(bag.sid, "Session-ID")?,
                nli: need(bag.nli, "NLI")?,
                query_cookie: need(bag.qc, "Query-Cookie")?,
                responder_cookie: bag.rc,
                stack,
                nslp_data: bag.data,
            },
            MessageType::Confirm => Body::Confirm {
                mri: need(bag.mri, "MRI")?,
                sid: need(bag.sid, "Session-ID")?,
                nli: need(bag.nli, "NLI")?,
                responder_cookie: bag.rc,
                stack_proposal: bag.sp,
                stack_config: bag.sc,
                nslp_data: bag.data,
            },
            MessageType::Data => Body::Data {
                mri: need(bag.mri, "MRI")?,
                sid: need(bag.sid, "Session-ID")?,
                nli: bag.nli,
                nslp_data: need(bag.data, "NSLP-Data")?,
            },
            MessageType::Error => Body::Error {
                nli: bag.nli,
                error: need(bag.error, "Error object")?,
            },
            MessageType::MaHello => Body::MaHello {
                hello_id: need(bag.hello, "Hello-ID")?,
            },
        };
        Ok(Self {
            hops: h.hops,
            nslpid: h.nslpid,
            c: h.c,
            s: h.s,
            r: h.r,
            e: h.e,
            body,
            unknown: bag.unknown,
        })
    }

    /// The Error PDU that answers a message which failed to decode with
    /// `err` (RFC 5971 §A.4.4), or `None` when no answer is due (the
    /// header itself was unreadable: nothing identifies the sender's intent).
    pub fn error_reply(offending: &[u8], err: &WireError, dmode: bool) -> Option<Self> {
        let pdu = offending.get(4..)?;
        let header: [u8; 8] = pdu.get(..8)?.try_into().ok()?;
        let (class, code, subcode) = match err {
            WireError::BadValue {
                what: "GIST common header",
                detail,
            } => {
                let sub = if detail.contains("version") {
                    0
                } else if detail.contains("type") {
                    1
                } else if detail.contains("R flag") {
                    2
                } else if detail.contains("E flag") {
                    4
                } else {
                    5
                };
                (
                    error_class::PROTOCOL_ERROR,
                    error_code::COMMON_HEADER_PARSE,
                    sub,
                )
            }
            WireError::BadLength {
                what: "GIST PDU", ..
            } => (
                error_class::PROTOCOL_ERROR,
                error_code::COMMON_HEADER_PARSE,
                3,
            ),
            WireError::Duplicate { .. } => (
                error_class::PROTOCOL_ERROR,
                error_code::OBJECT_TYPE_ERROR,
                0,
            ),
            WireError::UnknownMandatory { .. } => (
                error_class::PROTOCOL_ERROR,
                error_code::OBJECT_TYPE_ERROR,
                1,
            ),
            WireError::Missing { .. } => (
                error_class::PROTOCOL_ERROR,
                error_code::OBJECT_TYPE_ERROR,
                2,
            ),
            WireError::BadValue { detail, .. } if detail.contains("AB=11") => (
                error_class::PROTOCOL_ERROR,
                error_code::OBJECT_TYPE_ERROR,
                5,
            ),
            WireError::BadValue {
                what: "GIST magic number",
                ..
            } => return None,
            _ => (
                error_class::PROTOCOL_ERROR,
                error_code::OBJECT_VALUE_ERROR,
                0,
            ),
        };
        let nslpid = u16::from_be_bytes([header[4], header[5]]);
        Some(Self {
            hops: 1,
            nslpid,
            c: false,
            s: true,
            r: false,
            e: false,
            body: Body::Error {
                nli: None,
                error: ErrorObject {
                    class,
                    code,
                    subcode,
                    dmode,
                    qmode: !dmode,
                    header,
                    session_id: None,
                    mri: None,
                    info: vec![],
                    comment: Some({
                        let mut c = err.to_string().into_bytes();
                        c.truncate(200);
                        pad4(&mut c);
                        c
                    }),
                },
            },
            unknown: vec![],
        })
    }
}

/// Where the objects that matter for authorization sit in a UDP GIST
/// payload, found by scanning headers only (no object is decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduView {
    pub header: CommonHeader,
    /// Complete MRI TLV (header included), offsets into the UDP payload.
    pub mri: Option<Range<usize>>,
    /// Complete Session-ID TLV.
    pub sid: Option<Range<usize>>,
    /// NSLP-Data *value* (the NSLP message).
    pub nslp_data: Option<Range<usize>>,
}

/// Scans a UDP GIST payload (magic number first) without allocating.
pub fn scan_udp(buf: &[u8]) -> WireResult<PduView> {
    let m = be32(buf, 0, "GIST magic number")?;
    if m != MAGIC {
        return Err(WireError::BadValue {
            what: "GIST magic number",
            detail: format!("{m:#010x}"),
        });
    }
    let h = CommonHeader::parse(&buf[4..])?;
    let end = 4 + HEADER_LEN + h.length_words as usize * 4;
    if end != buf.len() {
        return Err(WireError::BadLength {
            what: "GIST PDU",
            len: buf.len() - 4,
            expected: "8 + 4 × Message Length",
        });
    }
    let base = 4 + HEADER_LEN;
    let mut v = PduView {
        header: h,
        mri: None,
        sid: None,
        nslp_data: None,
    };
    for raw in ObjectIter::new(&buf[base..], "GIST PDU") {
        let raw = raw?;
        let start = base + raw.offset;
        let r = start..start + raw.bytes.len();
        match raw.header.obj_type {
            obj::MRI if v.mri.is_none() => v.mri = Some(r),
            obj::SESSION_ID if v.sid.is_none() => v.sid = Some(r),
            obj::NSLP_DATA if v.nslp_data.is_none() => v.nslp_data = Some(r.start + 4..r.end),
            _ => {}
        }
    }
    Ok(v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const TB1: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 1);
    const TB4: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 4);

    /// A Query as protocol.md §10 describes NSIS-ka's (with the paper's
    /// addresses): hops 100, C+S+R, MRI IPv4 protocol 17, SID, NLI with
    /// PI-length 16, TTL 103, RS-validity 30000 ms, 4-byte Query-Cookie.
    #[rustfmt::skip]
    pub(crate) static QUERY: [u8; 92] = [
        0x4e, 0x04, 0xbd, 0xa5,             // magic number
        0x01, 0x64, 0x00, 0x14,             // version 1, hops 100, 20 words
        0x00, 0x01, 0x80, 0xc0,             // NSLPID 1, C=1 type 0 (Query), S=1 R=1
        0x00, 0x00, 0x00, 0x04,             // MRI, 4 words
        0x00, 0x00, 0x48, 0x00,             //   MRM 0, N=0, IPv4, P=1
        172, 1, 2, 1,                       //   source tb1
        172, 3, 4, 4,                       //   destination tb4
        0x00, 0x00, 0x11, 0x00,             //   prefixes 0/0, protocol 17
        0x00, 0x01, 0x00, 0x04,             // Session-ID, 4 words
        0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
        0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
        0x00, 0x02, 0x00, 0x07,             // NLI, 7 words
        0x10, 0x67, 0x40, 0x00,             //   PI-length 16, IP-TTL 103, IPv4
        0x00, 0x00, 0x75, 0x30,             //   RS-validity 30000 ms
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, // peer identity
        172, 1, 2, 1,                       //   interface address
        0x00, 0x05, 0x00, 0x01,             // Query-Cookie, 1 word
        0xc0, 0x0c, 0x1e, 0x01,
    ];

    pub(crate) fn query() -> GistPdu {
        GistPdu {
            hops: 100,
            nslpid: 1,
            c: true,
            s: true,
            r: true,
            e: false,
            body: Body::Query {
                mri: Mri::PathCoupled(PathCoupledMri::udp_v4(TB1, TB4)),
                sid: [0x5a; 16],
                nli: Nli {
                    peer_id: (1..=16).collect(),
                    ip_ttl: 103,
                    rs_validity_ms: 30_000,
                    interface: TB1.into(),
                },
                query_cookie: vec![0xc0, 0x0c, 0x1e, 0x01],
                stack: None,
                nslp_data: None,
            },
            unknown: vec![],
        }
    }

    #[test]
    fn deconstruct_query() {
        assert_eq!(GistPdu::decode_udp(&QUERY).unwrap(), query());
    }

    #[test]
    fn construct_query() {
        assert_eq!(query().encode_udp().unwrap(), QUERY);
    }

    /// A D-mode Data carrying 8 bytes of NSLP data (hops 1, S only, NLI).
    #[test]
    fn data_round_trip_and_header() {
        let mut mri = PathCoupledMri::udp_v4(TB1, TB4);
        mri.upstream = true;
        let d = GistPdu {
            hops: 1,
            nslpid: 1,
            c: false,
            s: true,
            r: false,
            e: false,
            body: Body::Data {
                mri: Mri::PathCoupled(mri),
                sid: [1; 16],
                nli: None,
                nslp_data: vec![0x03, 0, 0, 0, 0, 1, 0, 1],
            },
            unknown: vec![],
        };
        let b = d.encode_udp().unwrap();
        assert_eq!(&b[4..12], &[0x01, 0x01, 0x00, 0x0d, 0x00, 0x01, 0x03, 0x80]);
        assert_eq!(&b[16..20], &[0x00, 0x00, 0x48, 0x20], "D flag set");
        assert_eq!(GistPdu::decode_udp(&b).unwrap(), d);
        let v = scan_udp(&b).unwrap();
        assert_eq!(&b[v.mri.unwrap()][..4], &[0, 0, 0, 4]);
        assert_eq!(&b[v.nslp_data.unwrap()], &[0x03, 0, 0, 0, 0, 1, 0, 1]);
    }

    #[test]
    fn full_mri_v6_round_trip() {
        let m = Mri::PathCoupled(PathCoupledMri {
            nat: true,
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            src_prefix: 128,
            dst_prefix: 64,
            protocol: Some(6),
            ds_field: Some(46),
            flow_label: Some(0xabcde),
            spi: Some(0xdeadbeef),
            src_port: Some(5000),
            dst_port: None,
            upstream: false,
        });
        let mut out = vec![];
        m.encode_value(&mut out).unwrap();
        assert_eq!(out.len(), 4 + 32 + 4 + 4 + 4 + 4);
        assert_eq!(&out[0..4], &[0x00, 0x80, 0x6f, 0x80], "N; IPv6, P T F S A");
        assert_eq!(Mri::decode_value(&out).unwrap(), m);
    }

    #[test]
    fn header_errors_are_typed() {
        let mut b = QUERY;
        b[4] = 2;
        assert!(matches!(
            GistPdu::decode_udp(&b),
            Err(WireError::BadValue {
                what: "GIST common header",
                ..
            })
        ));
        let mut b = QUERY;
        b[0] = 0;
        assert!(matches!(
            GistPdu::decode_udp(&b),
            Err(WireError::BadValue {
                what: "GIST magic number",
                ..
            })
        ));
        let mut b = QUERY;
        b[7] = 0x16; // length says 22 words
        assert!(matches!(
            GistPdu::decode_udp(&b),
            Err(WireError::BadLength {
                what: "GIST PDU",
                ..
            })
        ));
        let mut b = QUERY;
        b[10] = 0x82; // Confirm with C
        b[11] = 0x80;
        assert!(GistPdu::decode_udp(&b).is_err());
        for n in 0..QUERY.len() {
            assert!(GistPdu::decode_udp(&QUERY[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn missing_and_unknown_objects() {
        // A Query without its cookie: drop the last object, fix the length.
        let mut b = QUERY[..84].to_vec();
        b[7] = 0x12;
        assert_eq!(
            GistPdu::decode_udp(&b).unwrap_err(),
            WireError::Missing {
                what: "GIST PDU",
                missing: "Query-Cookie"
            }
        );
        // An unknown AB=10 object is kept, AB=00 rejects, AB=11 is invalid.
        for (first, ok) in [(0x83u8, true), (0x03, false), (0xc3, false), (0x43, true)] {
            let mut b = QUERY.to_vec();
            b.extend_from_slice(&[first, 0xe8, 0x00, 0x01, 9, 9, 9, 9]);
            b[7] += 2;
            let r = GistPdu::decode_udp(&b);
            assert_eq!(r.is_ok(), ok, "AB byte {first:#x}");
            if first == 0x83 {
                let p = r.unwrap();
                assert_eq!(p.unknown.len(), 1);
                assert_eq!(p.encode_udp().unwrap(), b, "re-emitted bit for bit");
            }
        }
    }

    #[test]
    fn error_reply_names_the_fault() {
        let mut b = QUERY;
        b[4] = 7;
        let e = GistPdu::decode_udp(&b).unwrap_err();
        let reply = GistPdu::error_reply(&b, &e, false).unwrap();
        let Body::Error { error, .. } = &reply.body else {
            panic!()
        };
        assert_eq!((error.class, error.code, error.subcode), (2, 1, 0));
        assert_eq!(error.header, b[4..12]);
        let bytes = reply.encode_udp().unwrap();
        assert_eq!(GistPdu::decode_udp(&bytes).unwrap(), reply);
    }

    fn arb_v4() -> impl Strategy<Value = IpAddr> {
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(b.into()))
    }

    pub(crate) fn arb_mri() -> impl Strategy<Value = Mri> {
        (
            (arb_v4(), arb_v4(), any::<u8>(), any::<u8>()),
            (
                proptest::option::of(any::<u8>()),
                proptest::option::of(0u8..64),
            ),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u16>()),
                proptest::option::of(any::<u16>()),
            ),
            (any::<bool>(), any::<bool>()),
        )
            .prop_map(
                |(
                    (src, dst, sp, dp),
                    (protocol, ds_field),
                    (spi, src_port, dst_port),
                    (nat, upstream),
                )| {
                    Mri::PathCoupled(PathCoupledMri {
                        nat,
                        src,
                        dst,
                        src_prefix: sp,
                        dst_prefix: dp,
                        protocol,
                        ds_field,
                        flow_label: None,
                        spi,
                        src_port,
                        dst_port,
                        upstream,
                    })
                },
            )
    }

    fn arb_nli() -> impl Strategy<Value = Nli> {
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<u8>(),
            any::<u32>(),
            arb_v4(),
        )
            .prop_map(|(peer_id, ip_ttl, rs_validity_ms, interface)| Nli {
                peer_id,
                ip_ttl,
                rs_validity_ms,
                interface,
            })
    }

    fn words(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<[u8; 4]>(), 1..max).prop_map(|v| v.concat())
    }

    fn arb_pdu() -> impl Strategy<Value = GistPdu> {
        (
            arb_mri(),
            any::<[u8; 16]>(),
            arb_nli(),
            words(8),
            proptest::option::of(words(40)),
            0u8..4,
            any::<u8>(),
        )
            .prop_map(|(mri, sid, nli, cookie, data, kind, hops)| {
                let body = match kind {
                    0 => Body::Query {
                        mri,
                        sid,
                        nli,
                        query_cookie: cookie,
                        stack: None,
                        nslp_data: data,
                    },
                    1 => Body::Response {
                        mri,
                        sid,
                        nli,
                        query_cookie: cookie.clone(),
                        responder_cookie: Some(cookie),
                        stack: Some((
                            StackProposal {
                                profiles: vec![vec![1], vec![2, 1]],
                            },
                            StackConfigData {
                                ma_hold_time_ms: 180_000,
                                options: vec![MaOption {
                                    protocol: 1,
                                    profile: 1,
                                    d: false,
                                    data: vec![0x75, 0x30],
                                }],
                            },
                        )),
                        nslp_data: data,
                    },
                    2 => Body::Confirm {
                        mri,
                        sid,
                        nli,
                        responder_cookie: Some(cookie),
                        stack_proposal: None,
                        stack_config: None,
                        nslp_data: data,
                    },
                    _ => Body::Data {
                        mri,
                        sid,
                        nli: Some(nli),
                        nslp_data: data.unwrap_or(cookie),
                    },
                };
                GistPdu {
                    hops,
                    nslpid: 1,
                    c: kind == 0,
                    s: true,
                    r: kind < 2,
                    e: false,
                    body,
                    unknown: vec![],
                }
            })
    }

    proptest! {
        #[test]
        fn mri_round_trip(m in arb_mri()) {
            let mut out = vec![];
            m.encode_value(&mut out).unwrap();
            prop_assert_eq!(Mri::decode_value(&out).unwrap(), m);
        }

        #[test]
        fn nli_round_trip(n in arb_nli()) {
            let mut out = vec![];
            n.encode_value(&mut out);
            prop_assert_eq!(Nli::decode_value(&out).unwrap(), n);
        }

        #[test]
        fn pdu_round_trip(p in arb_pdu()) {
            let b = p.encode_udp().unwrap();
            prop_assert_eq!(GistPdu::decode_udp(&b).unwrap(), p);
            prop_assert!(scan_udp(&b).is_ok());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = GistPdu::decode_udp(&bytes);
            let _ = scan_udp(&bytes);
        }
    }
}
