//! The GIST objects (RFC 5971 §A.3): MRI, NLI, Stack-Proposal,
//! Stack-Configuration-Data and the Error object, each as plain data with
//! its value codec (the TLV header is written by [`super::pdu`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::tlv::{WireError, WireResult, be16, be32, fit_u8, fit_u16, pad4, padded};

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
    /// Appends the value (no TLV header), as an Error object carries it.
    pub fn encode_value(&self, out: &mut Vec<u8>) -> WireResult<()> {
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

    /// Decodes a value (no TLV header); a path-coupled MRI allocates nothing.
    pub fn decode_value(v: &[u8]) -> WireResult<Self> {
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
    pub(crate) fn encode_value(&self, out: &mut Vec<u8>) -> WireResult<()> {
        let v6 = self.interface.is_ipv6();
        out.push(fit_u8(self.peer_id.len(), "NLI", "PI-Length")?);
        out.push(self.ip_ttl);
        out.extend_from_slice(&(if v6 { 6u16 << 12 } else { 4u16 << 12 }).to_be_bytes());
        out.extend_from_slice(&self.rs_validity_ms.to_be_bytes());
        out.extend_from_slice(&self.peer_id);
        pad4(out);
        match self.interface {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
        Ok(())
    }

    pub(crate) fn decode_value(v: &[u8]) -> WireResult<Self> {
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
    pub(crate) fn encode_value(&self, out: &mut Vec<u8>) -> WireResult<()> {
        const W: &str = "GIST Error object";
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
        out.push(fit_u8(
            self.mri.as_ref().map_or(0, |m| padded(m.len()) / 4),
            W,
            "MRI length (words)",
        )?);
        out.push(fit_u8(self.info.len(), W, "Additional Information count")?);
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
            out.extend_from_slice(
                &fit_u16(padded(v.len()) / 4, W, "Additional Information length")?.to_be_bytes(),
            );
            out.extend_from_slice(v);
            pad4(out);
        }
        if let Some(c) = &self.comment {
            out.extend_from_slice(c);
            pad4(out);
        }
        Ok(())
    }

    pub(crate) fn decode_value(v: &[u8]) -> WireResult<Self> {
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

impl StackProposal {
    pub(crate) fn encode_value(&self, out: &mut Vec<u8>) -> WireResult<()> {
        const W: &str = "Stack-Proposal";
        out.extend_from_slice(&[fit_u8(self.profiles.len(), W, "Prof-Count")?, 0, 0, 0]);
        for p in &self.profiles {
            out.push(fit_u8(p.len(), W, "MA-field count")?);
            out.extend_from_slice(p);
            pad4(out);
        }
        Ok(())
    }

    pub(crate) fn decode_value(v: &[u8]) -> WireResult<Self> {
        decode_stack_proposal(v)
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

impl StackConfigData {
    pub(crate) fn encode_value(&self, out: &mut Vec<u8>) -> WireResult<()> {
        const W: &str = "Stack-Configuration-Data";
        out.extend_from_slice(&[fit_u8(self.options.len(), W, "MPO-Count")?, 0, 0, 0]);
        out.extend_from_slice(&self.ma_hold_time_ms.to_be_bytes());
        for o in &self.options {
            let len = fit_u8(o.data.len(), W, "MA-protocol-option length")?;
            out.extend_from_slice(&[o.protocol, o.profile, len, (o.d as u8) << 7]);
            out.extend_from_slice(&o.data);
            pad4(out);
        }
        Ok(())
    }

    pub(crate) fn decode_value(v: &[u8]) -> WireResult<Self> {
        decode_stack_config(v)
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
