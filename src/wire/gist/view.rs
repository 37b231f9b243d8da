//! Where the objects sit in a framed GIST message, found by scanning object
//! headers only (nothing is decoded, nothing allocated): what the header
//! scan, the GIST codec's cheap checks and the authorization scan read.

use std::ops::Range;

use super::header::{CommonHeader, Framing, HEADER_LEN, Header};
use super::obj;
use crate::wire::tlv::{ObjectIter, WireError, WireResult};

/// The objects that matter for forwarding and authorization, as ranges of
/// the framed buffer the view was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduView {
    pub framing: Framing,
    pub header: CommonHeader,
    /// Complete MRI TLV (header included).
    pub mri: Option<Range<usize>>,
    /// Complete Session-ID TLV.
    pub sid: Option<Range<usize>>,
    /// NSLP-Data *value* (the NSLP message).
    pub nslp_data: Option<Range<usize>>,
}

impl PduView {
    /// Checks the framing, the header and that the objects tile the message
    /// exactly as the length field says.
    pub fn scan(buf: &[u8], framing: Framing) -> WireResult<Self> {
        let hv = Header::new_checked(buf, framing)?;
        let header = CommonHeader::from_view(&hv)?;
        let base = framing.pdu_offset() + HEADER_LEN;
        if framing.pdu_offset() + hv.pdu_len() != buf.len() {
            return Err(WireError::BadLength {
                what: "GIST PDU",
                len: buf.len() - framing.pdu_offset(),
                expected: "8 + 4 × Message Length (Common Header Parse Error 3)",
            });
        }
        let mut v = Self {
            framing,
            header,
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

    /// A header [`field`](super::field) range as a range of the framed buffer.
    pub fn absolute(&self, r: Range<usize>) -> Range<usize> {
        let o = self.framing.pdu_offset();
        r.start + o..r.end + o
    }
}

/// [`PduView::scan`] of a UDP payload (magic number first).
pub fn scan_udp(buf: &[u8]) -> WireResult<PduView> {
    PduView::scan(buf, Framing::Udp)
}
