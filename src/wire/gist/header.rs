//! The GIST common header: its field ranges, a checked view of its bytes
//! ([`Header`]) and its plain form ([`CommonHeader`]).

use std::ops::Range;

use crate::wire::tlv::{WireError, WireResult, be32};

/// UDP magic number that precedes every datagram-mode GIST message.
pub const MAGIC: u32 = 0x4e04_bda5;
/// Common header length.
pub const HEADER_LEN: usize = 8;

/// Byte ranges of the common header, counted from the start of the bare PDU
/// (after the magic number over UDP).
pub mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const HOPS: usize = 1;
    /// Words after the header.
    pub const LENGTH: Range<usize> = 2..4;
    pub const NSLPID: Range<usize> = 4..6;
    /// C flag (0x80) and the 7-bit message type.
    pub const TYPE: usize = 6;
    /// S (0x80), R (0x40), E (0x20).
    pub const FLAGS: usize = 7;
    /// The first object.
    pub const OBJECTS: usize = super::HEADER_LEN;
}

/// How a GIST message is framed on its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Datagram (Q-mode and D-mode): the magic number comes first.
    Udp,
    /// A messaging association over TCP (C-mode): no magic number.
    Tcp,
}

impl Framing {
    /// Where the common header starts in the framed buffer.
    pub const fn pdu_offset(self) -> usize {
        match self {
            Self::Udp => 4,
            Self::Tcp => 0,
        }
    }

    /// The bare PDU inside a framed buffer: checks the magic number over UDP.
    pub fn strip(self, buf: &[u8]) -> WireResult<&[u8]> {
        if self == Self::Udp {
            let m = be32(buf, 0, "GIST magic number")?;
            if m != MAGIC {
                return Err(WireError::BadValue {
                    what: "GIST magic number",
                    detail: format!("{m:#010x} instead of {MAGIC:#010x}"),
                });
            }
        }
        Ok(&buf[self.pdu_offset()..])
    }
}

/// A checked view of a framed buffer's common header: the magic number (over
/// UDP) is right and the 8 header bytes are there, so the accessors cannot
/// fail. Nothing else is validated: [`CommonHeader::from_view`] does that.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    b: &'a [u8; HEADER_LEN],
    framing: Framing,
}

impl<'a> Header<'a> {
    pub fn new_checked(buf: &'a [u8], framing: Framing) -> WireResult<Self> {
        let pdu = framing.strip(buf)?;
        let b = pdu
            .first_chunk::<HEADER_LEN>()
            .ok_or(WireError::Truncated {
                what: "GIST common header",
                need: framing.pdu_offset() + HEADER_LEN,
                have: buf.len(),
            })?;
        Ok(Self { b, framing })
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }
    /// The 8 header bytes.
    pub fn bytes(&self) -> &'a [u8; HEADER_LEN] {
        self.b
    }
    /// `r` (a [`field`] range) as a range of the framed buffer.
    pub fn absolute(&self, r: Range<usize>) -> Range<usize> {
        let o = self.framing.pdu_offset();
        r.start + o..r.end + o
    }
    pub fn version(&self) -> u8 {
        self.b[field::VERSION]
    }
    pub fn hops(&self) -> u8 {
        self.b[field::HOPS]
    }
    pub fn length_words(&self) -> u16 {
        u16::from_be_bytes([self.b[field::LENGTH.start], self.b[field::LENGTH.start + 1]])
    }
    /// Header plus the words the length field announces.
    pub fn pdu_len(&self) -> usize {
        HEADER_LEN + self.length_words() as usize * 4
    }
    pub fn nslpid(&self) -> u16 {
        u16::from_be_bytes([self.b[field::NSLPID.start], self.b[field::NSLPID.start + 1]])
    }
    /// The 7-bit message type code, known or not.
    pub fn type_code(&self) -> u8 {
        self.b[field::TYPE] & 0x7f
    }
    pub fn c(&self) -> bool {
        self.b[field::TYPE] & 0x80 != 0
    }
    pub fn s(&self) -> bool {
        self.b[field::FLAGS] & 0x80 != 0
    }
    pub fn r(&self) -> bool {
        self.b[field::FLAGS] & 0x40 != 0
    }
    pub fn e(&self) -> bool {
        self.b[field::FLAGS] & 0x20 != 0
    }
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
    /// Decodes and validates the header at the start of a bare PDU (RFC
    /// 5971 §A.4.4.1 error subcodes in the messages).
    pub fn parse(buf: &[u8]) -> WireResult<Self> {
        Self::from_view(&Header::new_checked(buf, Framing::Tcp)?)
    }

    /// Validates what the view shows.
    pub fn from_view(v: &Header<'_>) -> WireResult<Self> {
        let bad = |detail: String| WireError::BadValue {
            what: "GIST common header",
            detail,
        };
        if v.version() != 1 {
            return Err(bad(format!(
                "unknown version {} (Common Header Parse Error 0)",
                v.version()
            )));
        }
        let msg_type = MessageType::from_u8(v.type_code()).ok_or_else(|| {
            bad(format!(
                "unknown type {} (Common Header Parse Error 1)",
                v.type_code()
            ))
        })?;
        let h = Self {
            version: v.version(),
            hops: v.hops(),
            length_words: v.length_words(),
            nslpid: v.nslpid(),
            c: v.c(),
            msg_type,
            s: v.s(),
            r: v.r(),
            e: v.e(),
        };
        if h.r && matches!(msg_type, MessageType::Confirm | MessageType::Error) {
            return Err(bad(
                "R flag on a Confirm or Error (Common Header Parse Error 2)".into(),
            ));
        }
        if h.c && !matches!(msg_type, MessageType::Query | MessageType::Data) {
            return Err(bad(
                "C flag on a message other than Query or Data (Common Header Parse Error 5)".into(),
            ));
        }
        if h.e && msg_type != MessageType::Data {
            return Err(bad(
                "E flag on a message other than Data (Common Header Parse Error 4)".into(),
            ));
        }
        Ok(h)
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0; HEADER_LEN];
        b[field::VERSION] = self.version;
        b[field::HOPS] = self.hops;
        b[field::LENGTH].copy_from_slice(&self.length_words.to_be_bytes());
        b[field::NSLPID].copy_from_slice(&self.nslpid.to_be_bytes());
        b[field::TYPE] = ((self.c as u8) << 7) | self.msg_type.to_u8();
        b[field::FLAGS] = ((self.s as u8) << 7) | ((self.r as u8) << 6) | ((self.e as u8) << 5);
        b
    }
}
