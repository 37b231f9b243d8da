//! A whole GIST message as plain data ([`GistPdu`]: header fields and
//! [`Body`]), its encoder and decoder, and the Error PDU answering a message
//! that failed to decode.

use super::header::{CommonHeader, Framing, HEADER_LEN, Header, MAGIC, MessageType};
use super::obj;
use super::objects::{
    ErrorObject, Mri, Nli, StackConfigData, StackProposal, error_class, error_code,
};
use crate::wire::tlv::{
    Extensibility, ObjectIter, WireError, WireResult, be32, emit_object, fit_u16, pad4,
};

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
    /// A D-mode Data PDU as GIST nodes send it: one hop, S flag set (the
    /// IP source is the signaling source), no unknown objects.
    pub fn data(
        nslpid: u16,
        mri: Mri,
        sid: [u8; 16],
        nli: Option<Nli>,
        nslp_data: Vec<u8>,
    ) -> Self {
        Self {
            hops: 1,
            nslpid,
            c: false,
            s: true,
            r: false,
            e: false,
            body: Body::Data {
                mri,
                sid,
                nli,
                nslp_data,
            },
            unknown: vec![],
        }
    }

    /// A GIST Error PDU (D-mode, one hop, S flag set).
    pub fn error(nslpid: u16, nli: Option<Nli>, error: ErrorObject) -> Self {
        Self {
            hops: 1,
            nslpid,
            c: false,
            s: true,
            r: false,
            e: false,
            body: Body::Error { nli, error },
            unknown: vec![],
        }
    }

    /// Encodes the bare PDU (common header and objects, no magic number).
    /// Refuses a value, count or message too long for its length field.
    pub fn encode(&self) -> WireResult<Vec<u8>> {
        let mut out = Vec::with_capacity(320);
        out.extend_from_slice(&[0; HEADER_LEN]);
        let o = &mut out;
        let m = Extensibility::Mandatory;
        let bytes = |o: &mut Vec<u8>, t: u16, what: &'static str, b: &[u8]| {
            emit_object(o, m, t, what, |o| {
                o.extend_from_slice(b);
                Ok(())
            })
        };
        let mri =
            |o: &mut Vec<u8>, x: &Mri| emit_object(o, m, obj::MRI, "MRI", |o| x.encode_value(o));
        let sid = |o: &mut Vec<u8>, x: &[u8; 16]| bytes(o, obj::SESSION_ID, "Session-ID", x);
        let nli =
            |o: &mut Vec<u8>, x: &Nli| emit_object(o, m, obj::NLI, "NLI", |o| x.encode_value(o));
        let sp = |o: &mut Vec<u8>, x: &StackProposal| {
            emit_object(o, m, obj::STACK_PROPOSAL, "Stack-Proposal", |o| {
                x.encode_value(o)
            })
        };
        let sc = |o: &mut Vec<u8>, x: &StackConfigData| {
            emit_object(o, m, obj::STACK_CONFIG, "Stack-Configuration-Data", |o| {
                x.encode_value(o)
            })
        };
        let qc = |o: &mut Vec<u8>, x: &[u8]| bytes(o, obj::QUERY_COOKIE, "Query-Cookie", x);
        let rc = |o: &mut Vec<u8>, x: &[u8]| bytes(o, obj::RESPONDER_COOKIE, "Responder-Cookie", x);
        let data = |o: &mut Vec<u8>, x: &[u8]| bytes(o, obj::NSLP_DATA, "NSLP-Data", x);
        // Query, Response and Confirm: the objects in RFC 5971 §5.1 order,
        // each where the message has it.
        let handshake = |o: &mut Vec<u8>,
                         x: &Mri,
                         s: &[u8; 16],
                         n: &Nli,
                         q: Option<&[u8]>,
                         r: Option<&[u8]>,
                         p: Option<&StackProposal>,
                         c: Option<&StackConfigData>,
                         d: Option<&[u8]>|
         -> WireResult<()> {
            mri(o, x)?;
            sid(o, s)?;
            nli(o, n)?;
            if let Some(q) = q {
                qc(o, q)?;
            }
            if let Some(r) = r {
                rc(o, r)?;
            }
            if let Some(p) = p {
                sp(o, p)?;
            }
            if let Some(c) = c {
                sc(o, c)?;
            }
            if let Some(d) = d {
                data(o, d)?;
            }
            Ok(())
        };
        match &self.body {
            Body::Query {
                mri: x,
                sid: s,
                nli: n,
                query_cookie,
                stack,
                nslp_data,
            } => handshake(
                o,
                x,
                s,
                n,
                Some(query_cookie),
                None,
                stack.as_ref().map(|(p, _)| p),
                stack.as_ref().map(|(_, c)| c),
                nslp_data.as_deref(),
            )?,
            Body::Response {
                mri: x,
                sid: s,
                nli: n,
                query_cookie,
                responder_cookie,
                stack,
                nslp_data,
            } => handshake(
                o,
                x,
                s,
                n,
                Some(query_cookie),
                responder_cookie.as_deref(),
                stack.as_ref().map(|(p, _)| p),
                stack.as_ref().map(|(_, c)| c),
                nslp_data.as_deref(),
            )?,
            Body::Confirm {
                mri: x,
                sid: s,
                nli: n,
                responder_cookie,
                stack_proposal,
                stack_config,
                nslp_data,
            } => handshake(
                o,
                x,
                s,
                n,
                None,
                responder_cookie.as_deref(),
                stack_proposal.as_ref(),
                stack_config.as_ref(),
                nslp_data.as_deref(),
            )?,
            Body::Data {
                mri: x,
                sid: s,
                nli: n,
                nslp_data,
            } => {
                mri(o, x)?;
                sid(o, s)?;
                if let Some(n) = n {
                    nli(o, n)?;
                }
                data(o, nslp_data)?;
            }
            Body::Error { nli: n, error } => {
                if let Some(n) = n {
                    nli(o, n)?;
                }
                emit_object(o, m, obj::ERROR, "GIST Error object", |o| {
                    error.encode_value(o)
                })?;
            }
            Body::MaHello { hello_id } => {
                bytes(o, obj::HELLO_ID, "Hello-ID", &hello_id.to_be_bytes())?
            }
        }
        for u in &self.unknown {
            out.extend_from_slice(u);
        }
        let words = fit_u16(
            (out.len() - HEADER_LEN) / 4,
            "GIST PDU",
            "Message Length (words)",
        )?;
        let h = CommonHeader {
            version: 1,
            hops: self.hops,
            length_words: words,
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
        self.encode_framed(Framing::Udp)
    }

    /// Encodes with `framing`'s prefix (the magic number over UDP).
    pub fn encode_framed(&self, framing: Framing) -> WireResult<Vec<u8>> {
        let pdu = self.encode()?;
        if framing == Framing::Tcp {
            return Ok(pdu);
        }
        let mut out = Vec::with_capacity(pdu.len() + 4);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&pdu);
        Ok(out)
    }

    /// Decodes a UDP payload: checks the magic number first.
    pub fn decode_udp(buf: &[u8]) -> WireResult<Self> {
        Self::decode(Framing::Udp.strip(buf)?)
    }

    /// Decodes a framed buffer.
    pub fn decode_framed(buf: &[u8], framing: Framing) -> WireResult<Self> {
        Self::decode(framing.strip(buf)?)
    }

    /// Decodes a bare PDU. The buffer must hold exactly the message.
    pub fn decode(buf: &[u8]) -> WireResult<Self> {
        let hv = Header::new_checked(buf, Framing::Tcp)?;
        let h = CommonHeader::from_view(&hv)?;
        if buf.len() != hv.pdu_len() {
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
                obj::STACK_PROPOSAL => set(&mut bag.sp, StackProposal::decode_value(v)?, t)?,
                obj::STACK_CONFIG => set(&mut bag.sc, StackConfigData::decode_value(v)?, t)?,
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
        // A Confirm keeps the two apart (it may carry either or both); the
        // other messages carry both or neither.
        let stack = if h.msg_type == MessageType::Confirm {
            None
        } else {
            match (bag.sp.take(), bag.sc.take()) {
                (Some(sp), Some(sc)) => Some((sp, sc)),
                (None, None) => None,
                _ => {
                    return Err(WireError::Missing {
                        what: "GIST PDU",
                        missing: "Stack-Proposal and Stack-Configuration-Data together",
                    });
                }
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
        let hv = Header::new_checked(offending, Framing::Udp).ok()?;
        let header = *hv.bytes();
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
        let nslpid = hv.nslpid();
        Some(Self::error(
            nslpid,
            None,
            ErrorObject {
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
        ))
    }
}
