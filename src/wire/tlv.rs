//! The 32-bit object header shared by GIST (RFC 5971 §A.2) and every NSLP
//! (RFC 5974 §5.1.3), and a checked scanner over a run of such objects.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |A|B|r|r|         Type          |r|r|r|r|        Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! Length counts 32-bit words of value, header excluded.
//!
//! Every decoder in this crate returns [`WireError`], which names the object at
//! fault so that a log line or an Error/INFO_SPEC answer can say what was wrong.

use thiserror::Error;

/// Why bytes could not be decoded. `what` names the object or message at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The buffer ended before the object did.
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// The object's length field is not one its type allows.
    #[error("{what}: wrong length {len} bytes (expected {expected})")]
    BadLength {
        what: &'static str,
        len: usize,
        expected: &'static str,
    },
    /// An object of another type stood where this one was required.
    #[error("{what}: unexpected object type {got:#05x}")]
    WrongType { what: &'static str, got: u16 },
    /// A field holds a value the protocol does not allow.
    #[error("{what}: invalid value: {detail}")]
    BadValue { what: &'static str, detail: String },
    /// A required object is absent.
    #[error("{what}: missing {missing}")]
    Missing {
        what: &'static str,
        missing: &'static str,
    },
    /// An unknown object with extensibility bits AB=00 (mandatory): the whole
    /// message must be rejected (RFC 5971 §A.2.1, RFC 5974 §5.1.3).
    #[error("{what}: unknown mandatory object type {obj_type:#05x}")]
    UnknownMandatory { what: &'static str, obj_type: u16 },
    /// An object that may appear once appeared again.
    #[error("{what}: duplicate object type {obj_type:#05x}")]
    Duplicate { what: &'static str, obj_type: u16 },
    /// Bytes were left over after the last object.
    #[error("{what}: {extra} trailing bytes")]
    Trailing { what: &'static str, extra: usize },
    /// An encoder was given a length or count its field cannot carry.
    #[error("{what}: {field} is {value}, more than the {max} its field can carry")]
    TooLarge {
        what: &'static str,
        field: &'static str,
        value: usize,
        max: usize,
    },
}

/// Shorthand used by every codec in the crate.
pub type WireResult<T> = Result<T, WireError>;

/// Returns `buf[..n]` or a [`WireError::Truncated`] naming `what`.
pub fn take<'a>(buf: &'a [u8], n: usize, what: &'static str) -> WireResult<&'a [u8]> {
    buf.get(..n).ok_or(WireError::Truncated {
        what,
        need: n,
        have: buf.len(),
    })
}

/// `value` as a u8 field, or [`WireError::TooLarge`] naming `what`'s `field`.
pub fn fit_u8(value: usize, what: &'static str, field: &'static str) -> WireResult<u8> {
    u8::try_from(value).map_err(|_| WireError::TooLarge {
        what,
        field,
        value,
        max: u8::MAX as usize,
    })
}

/// `value` as a u16 field, or [`WireError::TooLarge`] naming `what`'s `field`.
pub fn fit_u16(value: usize, what: &'static str, field: &'static str) -> WireResult<u16> {
    u16::try_from(value).map_err(|_| WireError::TooLarge {
        what,
        field,
        value,
        max: u16::MAX as usize,
    })
}

/// Reads a big-endian u16 at `off`, naming `what` on truncation.
pub fn be16(buf: &[u8], off: usize, what: &'static str) -> WireResult<u16> {
    let b = buf.get(off..off + 2).ok_or(WireError::Truncated {
        what,
        need: off + 2,
        have: buf.len(),
    })?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian u32 at `off`, naming `what` on truncation.
pub fn be32(buf: &[u8], off: usize, what: &'static str) -> WireResult<u32> {
    let b = buf.get(off..off + 4).ok_or(WireError::Truncated {
        what,
        need: off + 4,
        have: buf.len(),
    })?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The A/B extensibility bits: what a node that does not know the object
/// type must do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Extensibility {
    /// AB=00: reject the whole message.
    Mandatory,
    /// AB=01: drop the object, process the rest.
    Ignore,
    /// AB=10: keep it unchanged in any message forwarded; do not store it.
    Forward,
    /// AB=11: QoS NSLP "refresh" (store, forward, include in refreshes);
    /// invalid in GIST.
    Refresh,
}

impl Extensibility {
    /// The two top bits of the header's first byte.
    pub fn from_bits(ab: u8) -> Self {
        match ab & 0b11 {
            0 => Self::Mandatory,
            1 => Self::Ignore,
            2 => Self::Forward,
            _ => Self::Refresh,
        }
    }

    /// The two-bit AB value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Mandatory => 0,
            Self::Ignore => 1,
            Self::Forward => 2,
            Self::Refresh => 3,
        }
    }
}

/// A decoded object header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectHeader {
    pub ext: Extensibility,
    /// 12-bit object type.
    pub obj_type: u16,
    /// Value length in bytes (a multiple of 4, at most 4095 words).
    pub value_len: usize,
}

impl ObjectHeader {
    /// Header size in bytes.
    pub const LEN: usize = 4;
    /// Largest value the 12-bit length field can describe, in bytes.
    pub const MAX_VALUE_LEN: usize = 0xfff * 4;

    /// Builds a header for a value whose length is known to fit (a fixed-size
    /// object); variable-length values go through [`ObjectHeader::checked`].
    pub fn new(ext: Extensibility, obj_type: u16, value_len: usize) -> Self {
        debug_assert!(value_len.is_multiple_of(4) && value_len <= Self::MAX_VALUE_LEN);
        debug_assert!(obj_type <= 0xfff);
        Self {
            ext,
            obj_type,
            value_len,
        }
    }

    /// Builds a header, refusing a value longer than 4095 words or not word
    /// aligned, and a type wider than 12 bits.
    pub fn checked(
        ext: Extensibility,
        obj_type: u16,
        value_len: usize,
        what: &'static str,
    ) -> WireResult<Self> {
        if value_len > Self::MAX_VALUE_LEN {
            return Err(WireError::TooLarge {
                what,
                field: "object length (bytes)",
                value: value_len,
                max: Self::MAX_VALUE_LEN,
            });
        }
        if obj_type > 0xfff || !value_len.is_multiple_of(4) {
            return Err(WireError::BadValue {
                what,
                detail: format!(
                    "object type {obj_type:#x} or length {value_len} does not fit a TLV header"
                ),
            });
        }
        Ok(Self {
            ext,
            obj_type,
            value_len,
        })
    }

    /// Decodes the first 4 bytes of `buf`. Reserved bits are ignored.
    pub fn parse(buf: &[u8]) -> WireResult<Self> {
        let b = take(buf, Self::LEN, "object header")?;
        Ok(Self {
            ext: Extensibility::from_bits(b[0] >> 6),
            obj_type: u16::from_be_bytes([b[0] & 0x0f, b[1]]),
            value_len: (u16::from_be_bytes([b[2] & 0x0f, b[3]]) as usize) * 4,
        })
    }

    /// The 4 header bytes.
    pub fn to_bytes(&self) -> [u8; 4] {
        let t = self.obj_type & 0x0fff;
        let l = ((self.value_len / 4) & 0x0fff) as u16;
        [
            (self.ext.bits() << 6) | (t >> 8) as u8,
            t as u8,
            (l >> 8) as u8,
            l as u8,
        ]
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// Header plus value, in bytes.
    pub fn total_len(&self) -> usize {
        Self::LEN + self.value_len
    }
}

/// Pads `out` with zero bytes to a multiple of 4.
pub fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Appends one object: its header, then the value `f` writes, padded to a
/// word; refuses a value too long for the 12-bit length field.
pub fn emit_object(
    out: &mut Vec<u8>,
    ext: Extensibility,
    obj_type: u16,
    what: &'static str,
    f: impl FnOnce(&mut Vec<u8>) -> WireResult<()>,
) -> WireResult<()> {
    let start = out.len();
    out.extend_from_slice(&[0; ObjectHeader::LEN]);
    let r = f(out).and_then(|()| {
        while !(out.len() - start).is_multiple_of(4) {
            out.push(0);
        }
        ObjectHeader::checked(ext, obj_type, out.len() - start - ObjectHeader::LEN, what)
    });
    match r {
        Ok(h) => {
            out[start..start + ObjectHeader::LEN].copy_from_slice(&h.to_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Rounds `n` up to a multiple of 4.
pub const fn padded(n: usize) -> usize {
    (n + 3) & !3
}

/// One object as found by [`ObjectIter`]: its header, where it starts in the
/// scanned buffer, and its complete bytes (header included), so that an
/// object a node does not understand can be forwarded bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawObject<'a> {
    pub header: ObjectHeader,
    /// Offset of the object's header within the buffer given to the iterator.
    pub offset: usize,
    /// Header and value.
    pub bytes: &'a [u8],
}

impl<'a> RawObject<'a> {
    /// The value, without the 4-byte header.
    pub fn value(&self) -> &'a [u8] {
        &self.bytes[ObjectHeader::LEN..]
    }
}

/// Walks a run of objects, checking only headers and lengths. Yields an
/// error (and then stops) at the first object that overruns the buffer.
#[derive(Debug, Clone)]
pub struct ObjectIter<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
    failed: bool,
}

impl<'a> ObjectIter<'a> {
    /// Scans `buf`; `what` names the enclosing message in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            what,
            failed: false,
        }
    }
}

impl<'a> Iterator for ObjectIter<'a> {
    type Item = WireResult<RawObject<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let header = match ObjectHeader::parse(rest) {
            Ok(h) => h,
            Err(_) => {
                self.failed = true;
                return Some(Err(WireError::Truncated {
                    what: self.what,
                    need: ObjectHeader::LEN,
                    have: rest.len(),
                }));
            }
        };
        let total = header.total_len();
        if total > rest.len() {
            self.failed = true;
            return Some(Err(WireError::Truncated {
                what: self.what,
                need: total,
                have: rest.len(),
            }));
        }
        let obj = RawObject {
            header,
            offset: self.pos,
            bytes: &rest[..total],
        };
        self.pos += total;
        Some(Ok(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VLSP object header from protocol.md §6: AB=10, type 0x0FE, 19 words.
    static VLSP_HDR: [u8; 4] = [0x80, 0xfe, 0x00, 0x13];

    #[test]
    fn header_deconstruct() {
        let h = ObjectHeader::parse(&VLSP_HDR).unwrap();
        assert_eq!(h.ext, Extensibility::Forward);
        assert_eq!(h.obj_type, 0x0fe);
        assert_eq!(h.value_len, 76);
        assert_eq!(h.total_len(), 80);
    }

    #[test]
    fn header_construct() {
        let h = ObjectHeader::new(Extensibility::Forward, 0x0fe, 76);
        assert_eq!(h.to_bytes(), VLSP_HDR);
        // reserved bits set on the wire are ignored on parse
        let h2 = ObjectHeader::parse(&[0xb0, 0xfe, 0xf0, 0x13]).unwrap();
        assert_eq!(h2, h);
    }

    #[test]
    fn an_object_too_long_for_its_length_field_is_refused() {
        let mut out = vec![9];
        let r = emit_object(&mut out, Extensibility::Mandatory, 8, "NSLP-Data", |o| {
            o.resize(o.len() + ObjectHeader::MAX_VALUE_LEN + 1, 0);
            Ok(())
        });
        assert!(matches!(
            r,
            Err(WireError::TooLarge {
                value: 16384,
                max: 16380,
                ..
            })
        ));
        assert_eq!(out, [9], "nothing is left half-written");
        emit_object(&mut out, Extensibility::Forward, 0x0fe, "x", |o| {
            o.extend_from_slice(&[1, 2, 3]);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, [9, 0x80, 0xfe, 0x00, 0x01, 1, 2, 3, 0]);
        assert!(fit_u8(256, "Stack-Proposal", "profile count").is_err());
        assert_eq!(fit_u16(65535, "x", "y"), Ok(65535));
    }

    #[test]
    fn iter_stops_on_overrun() {
        let mut buf = vec![0x00, 0x01, 0x00, 0x01, 1, 2, 3, 4];
        buf.extend_from_slice(&[0x00, 0x02, 0x00, 0x02, 9, 9]);
        let items: Vec<_> = ObjectIter::new(&buf, "test").collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().value(), &[1, 2, 3, 4]);
        assert!(matches!(
            items[1],
            Err(WireError::Truncated {
                need: 12,
                have: 6,
                ..
            })
        ));
    }
}
