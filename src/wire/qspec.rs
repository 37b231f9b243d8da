//! QSPEC (RFC 5975): the QoS description a RESERVE carries. Enough of it for
//! a bandwidth reservation: the TMOD-1 token bucket and the Admission
//! Priority; other parameters are kept as received and re-emitted.
//!
//! ```text
//! QSPEC header:  |Vers(4)|I|QSPEC-Type(5)|r r|MsgSeq(4)|ObjComb(4)|r r r r|Length(12)|
//! QSPEC object:  |E|r r r|  Object Type(12) |r r r r| Length(12) |
//! parameter:     |M|E|N|r|  Parameter ID(12)|r r r r| Length(12) |
//! TMOD-1 value:  r (f32, bytes/s) | b (f32, bytes) | p (f32, bytes/s) | m (u32) | [MPS (u32)]
//! ```
//! All lengths count 32-bit words after their own header.

use crate::wire::profile::Profile;
use crate::wire::tlv::{WireError, WireResult, be16, be32};

/// Parameter ID of TMOD-1.
pub const PARAM_TMOD1: u16 = 1;
/// Parameter ID of Admission Priority.
pub const PARAM_ADMISSION_PRIORITY: u16 = 9;

/// The token bucket of TMOD-1 (rates in bytes/s, sizes in bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tmod1 {
    pub rate: f32,
    pub bucket: f32,
    pub peak: f32,
    pub min_policed_unit: u32,
    /// Maximum packet size; RFC 5975 has it, NSIS-ka omits it.
    pub max_packet_size: Option<u32>,
}

/// A parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Tmod1(Tmod1),
    /// Y.2171 admission priority (2 = high) and the RPH-style value.
    AdmissionPriority {
        y2171: u8,
        priority: u8,
    },
    /// Any other parameter, value kept as received.
    Raw {
        id: u16,
        value: Vec<u8>,
    },
}

/// One parameter with its M (mandatory), E (error) and N (not supported) flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub mandatory: bool,
    pub error: bool,
    pub not_supported: bool,
    pub value: ParamValue,
}

/// QSPEC object types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Desired,
    Available,
    Reserved,
    Minimum,
    Other(u16),
}

impl ObjectKind {
    fn to_u16(self) -> u16 {
        match self {
            Self::Desired => 0,
            Self::Available => 1,
            Self::Reserved => 2,
            Self::Minimum => 3,
            Self::Other(v) => v & 0x0fff,
        }
    }
    fn from_u16(v: u16) -> Self {
        match v {
            0 => Self::Desired,
            1 => Self::Available,
            2 => Self::Reserved,
            3 => Self::Minimum,
            v => Self::Other(v),
        }
    }
}

/// A QSPEC object (QoS Desired, Available, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct QspecObject {
    pub kind: ObjectKind,
    pub error: bool,
    pub params: Vec<Param>,
}

/// A QSPEC PDU (the value of the QoS NSLP QSPEC object).
#[derive(Debug, Clone, PartialEq)]
pub struct Qspec {
    pub version: u8,
    /// I flag: an initiator-local QSPEC rather than end-to-end.
    pub local: bool,
    /// QSPEC Type (the QOSM; 0 = default).
    pub qspec_type: u8,
    /// 0 = sender-initiated two-way, 1 = receiver-initiated, 2 = resource query.
    pub msg_seq: u8,
    pub obj_comb: u8,
    pub objects: Vec<QspecObject>,
}

impl Qspec {
    /// What the paper's client sends (protocol.md §4): a QoS Desired object
    /// with TMOD-1 r = p = `rate_bytes` B/s, b = 100000 B, m = 1500 B (and,
    /// in the `rfc` profile, MPS = 1500 B), plus Admission Priority 2 (high).
    pub fn bandwidth_request(rate_bytes: f32, profile: Profile) -> Self {
        let tmod = Tmod1 {
            rate: rate_bytes,
            bucket: 100_000.0,
            peak: rate_bytes,
            min_policed_unit: 1500,
            max_packet_size: match profile {
                Profile::Rfc => Some(1500),
                Profile::NsisKa => None,
            },
        };
        Self {
            version: 0,
            local: false,
            qspec_type: 0,
            msg_seq: 0,
            obj_comb: 1,
            objects: vec![QspecObject {
                kind: ObjectKind::Desired,
                error: false,
                params: vec![
                    Param {
                        mandatory: true,
                        error: false,
                        not_supported: false,
                        value: ParamValue::Tmod1(tmod),
                    },
                    Param {
                        mandatory: false,
                        error: false,
                        not_supported: false,
                        value: ParamValue::AdmissionPriority {
                            y2171: 2,
                            priority: 0,
                        },
                    },
                ],
            }],
        }
    }

    /// The TMOD-1 of the QoS Desired object.
    pub fn tmod1(&self) -> Option<&Tmod1> {
        self.objects
            .iter()
            .filter(|o| o.kind == ObjectKind::Desired)
            .flat_map(|o| o.params.iter())
            .find_map(|p| match &p.value {
                ParamValue::Tmod1(t) => Some(t),
                _ => None,
            })
    }

    /// The desired rate in bit/s (what admission control charges).
    pub fn rate_bps(&self) -> Option<u64> {
        let r = self.tmod1()?.rate;
        (r.is_finite() && r >= 0.0).then(|| (r as f64 * 8.0).round() as u64)
    }

    /// Appends the QSPEC PDU (without the NSLP object header). The bytes
    /// follow the value (a TMOD-1 has its MPS word when it has an MPS); the
    /// profile chose that when the value was built or decoded.
    pub fn encode(&self, _profile: Profile, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        for o in &self.objects {
            let ostart = out.len();
            out.extend_from_slice(&[0; 4]);
            for p in &o.params {
                encode_param(p, out);
            }
            let words = ((out.len() - ostart - 4) / 4) as u16;
            let h = ((o.error as u32) << 31)
                | ((o.kind.to_u16() as u32 & 0x0fff) << 16)
                | (words as u32 & 0x0fff);
            out[ostart..ostart + 4].copy_from_slice(&h.to_be_bytes());
        }
        let words = ((out.len() - start - 4) / 4) as u32;
        let h = ((self.version as u32 & 0xf) << 28)
            | ((self.local as u32) << 27)
            | ((self.qspec_type as u32 & 0x1f) << 22)
            | ((self.msg_seq as u32 & 0xf) << 16)
            | ((self.obj_comb as u32 & 0xf) << 12)
            | (words & 0x0fff);
        out[start..start + 4].copy_from_slice(&h.to_be_bytes());
    }

    /// Decodes a QSPEC PDU (the whole value of the QSPEC object).
    pub fn decode(buf: &[u8], profile: Profile) -> WireResult<Self> {
        let _ = profile; // both TMOD-1 lengths are accepted in both profiles
        let h = be32(buf, 0, "QSPEC header")?;
        let words = (h & 0x0fff) as usize;
        if buf.len() != 4 + words * 4 {
            return Err(WireError::BadLength {
                what: "QSPEC",
                len: buf.len(),
                expected: "4 + 4 × the header's length field",
            });
        }
        let mut objects = Vec::new();
        let mut rest = &buf[4..];
        while !rest.is_empty() {
            let oh = be32(rest, 0, "QSPEC object header")?;
            let olen = 4 + (oh & 0x0fff) as usize * 4;
            if olen > rest.len() {
                return Err(WireError::Truncated {
                    what: "QSPEC object",
                    need: olen,
                    have: rest.len(),
                });
            }
            let mut params = Vec::new();
            let mut prest = &rest[4..olen];
            while !prest.is_empty() {
                let (p, used) = decode_param(prest)?;
                params.push(p);
                prest = &prest[used..];
            }
            objects.push(QspecObject {
                kind: ObjectKind::from_u16(((oh >> 16) & 0x0fff) as u16),
                error: oh & 0x8000_0000 != 0,
                params,
            });
            rest = &rest[olen..];
        }
        Ok(Self {
            version: (h >> 28) as u8,
            local: h & 0x0800_0000 != 0,
            qspec_type: ((h >> 22) & 0x1f) as u8,
            msg_seq: ((h >> 16) & 0xf) as u8,
            obj_comb: ((h >> 12) & 0xf) as u8,
            objects,
        })
    }
}

fn encode_param(p: &Param, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let id = match &p.value {
        ParamValue::Tmod1(t) => {
            // NSIS-ka clears the sign bit; rates are never negative.
            for f in [t.rate, t.bucket, t.peak] {
                out.extend_from_slice(&(f.to_bits() & 0x7fff_ffff).to_be_bytes());
            }
            out.extend_from_slice(&t.min_policed_unit.to_be_bytes());
            // Written whenever present: `nsis-ka` requests carry none, and
            // a received 5-word TMOD-1 is forwarded as it came.
            if let Some(m) = t.max_packet_size {
                out.extend_from_slice(&m.to_be_bytes());
            }
            PARAM_TMOD1
        }
        ParamValue::AdmissionPriority { y2171, priority } => {
            out.extend_from_slice(&[*y2171, *priority, 0, 0]);
            PARAM_ADMISSION_PRIORITY
        }
        ParamValue::Raw { id, value } => {
            out.extend_from_slice(value);
            crate::wire::tlv::pad4(out);
            *id
        }
    };
    let words = ((out.len() - start - 4) / 4) as u32;
    let h = ((p.mandatory as u32) << 31)
        | ((p.error as u32) << 30)
        | ((p.not_supported as u32) << 29)
        | ((id as u32 & 0x0fff) << 16)
        | (words & 0x0fff);
    out[start..start + 4].copy_from_slice(&h.to_be_bytes());
}

fn decode_param(buf: &[u8]) -> WireResult<(Param, usize)> {
    let h = be32(buf, 0, "QSPEC parameter header")?;
    let len = 4 + (h & 0x0fff) as usize * 4;
    if len > buf.len() {
        return Err(WireError::Truncated {
            what: "QSPEC parameter",
            need: len,
            have: buf.len(),
        });
    }
    let id = ((h >> 16) & 0x0fff) as u16;
    let v = &buf[4..len];
    let value = match id {
        PARAM_TMOD1 => {
            if v.len() != 16 && v.len() != 20 {
                return Err(WireError::BadLength {
                    what: "TMOD-1",
                    len: v.len(),
                    expected: "16 bytes (NSIS-ka) or 20 bytes (with MPS)",
                });
            }
            // The sign bit is cleared as the encoder clears it: rates are never negative.
            let f = |o| {
                f32::from_bits(u32::from_be_bytes(v[o..o + 4].try_into().expect("4")) & 0x7fff_ffff)
            };
            ParamValue::Tmod1(Tmod1 {
                rate: f(0),
                bucket: f(4),
                peak: f(8),
                min_policed_unit: be32(v, 12, "TMOD-1")?,
                max_packet_size: if v.len() == 20 {
                    Some(be32(v, 16, "TMOD-1")?)
                } else {
                    None
                },
            })
        }
        PARAM_ADMISSION_PRIORITY => {
            if v.len() != 4 {
                return Err(WireError::BadLength {
                    what: "Admission Priority",
                    len: v.len(),
                    expected: "4 bytes",
                });
            }
            let _ = be16(v, 2, "Admission Priority")?;
            ParamValue::AdmissionPriority {
                y2171: v[0],
                priority: v[1],
            }
        }
        id => ParamValue::Raw {
            id,
            value: v.to_vec(),
        },
    };
    Ok((
        Param {
            mandatory: h & 0x8000_0000 != 0,
            error: h & 0x4000_0000 != 0,
            not_supported: h & 0x2000_0000 != 0,
            value,
        },
        len,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The paper's client QSPEC at 125000 B/s (1 Mbit/s), NSIS-ka profile:
    /// 36 bytes of QSPEC PDU, 40 with the NSLP object header.
    static NSIS_KA_QSPEC: [u8; 36] = [
        0x00, 0x00, 0x10, 0x08, // version 0, I=0, type 0, MsgSeq 0, ObjComb 1, 8 words
        0x00, 0x00, 0x00, 0x07, // QSPEC object: QoS Desired, 7 words
        0x80, 0x01, 0x00, 0x04, // parameter M=1, TMOD-1, 4 words (no MPS)
        0x47, 0xf4, 0x24, 0x00, // r = 125000.0 B/s
        0x47, 0xc3, 0x50, 0x00, // b = 100000.0 B
        0x47, 0xf4, 0x24, 0x00, // p = 125000.0 B/s
        0x00, 0x00, 0x05, 0xdc, // m = 1500 B
        0x00, 0x09, 0x00, 0x01, // parameter Admission Priority, 1 word
        0x02, 0x00, 0x00, 0x00, // Y.2171 priority 2 (high)
    ];

    #[test]
    fn deconstruct_paper_client_qspec() {
        let q = Qspec::decode(&NSIS_KA_QSPEC, Profile::NsisKa).unwrap();
        assert_eq!(q, Qspec::bandwidth_request(125_000.0, Profile::NsisKa));
        assert_eq!(q.rate_bps(), Some(1_000_000));
    }

    #[test]
    fn construct_paper_client_qspec() {
        let mut out = vec![];
        Qspec::bandwidth_request(125_000.0, Profile::NsisKa).encode(Profile::NsisKa, &mut out);
        assert_eq!(out, NSIS_KA_QSPEC);
    }

    #[test]
    fn rfc_profile_adds_mps_and_both_lengths_decode() {
        let q = Qspec::bandwidth_request(125_000.0, Profile::Rfc);
        let mut out = vec![];
        q.encode(Profile::Rfc, &mut out);
        assert_eq!(out.len(), 40);
        assert_eq!(&out[8..12], &[0x80, 0x01, 0x00, 0x05]);
        assert_eq!(&out[28..32], &[0x00, 0x00, 0x05, 0xdc], "MPS 1500");
        assert_eq!(Qspec::decode(&out, Profile::NsisKa).unwrap(), q);
        // Found by the nslp_decode fuzz target: re-encoding under `nsis-ka`
        // used to drop the MPS it had decoded.
        let mut again = vec![];
        q.encode(Profile::NsisKa, &mut again);
        assert_eq!(again, out, "a decoded MPS is re-encoded");
        assert_eq!(
            Qspec::decode(&NSIS_KA_QSPEC, Profile::Rfc)
                .unwrap()
                .tmod1()
                .unwrap()
                .max_packet_size,
            None
        );
    }

    #[test]
    fn malformed_qspecs_are_typed() {
        for n in 0..NSIS_KA_QSPEC.len() {
            assert!(
                Qspec::decode(&NSIS_KA_QSPEC[..n], Profile::Rfc).is_err(),
                "prefix {n}"
            );
        }
        let mut bad = NSIS_KA_QSPEC;
        bad[11] = 0x03; // TMOD-1 of 3 words
        bad[7] = 0x07;
        let e = Qspec::decode(&bad, Profile::Rfc).unwrap_err();
        assert!(
            matches!(
                e,
                WireError::BadLength { what: "TMOD-1", .. } | WireError::Truncated { .. }
            ),
            "{e:?}"
        );
        let mut over = NSIS_KA_QSPEC;
        over[7] = 0x09; // object claims more than the QSPEC holds
        assert!(matches!(
            Qspec::decode(&over, Profile::Rfc),
            Err(WireError::Truncated {
                what: "QSPEC object",
                ..
            })
        ));
    }

    #[test]
    fn unknown_parameters_survive() {
        let mut q = Qspec::bandwidth_request(1000.0, Profile::Rfc);
        q.objects[0].params.push(Param {
            mandatory: false,
            error: false,
            not_supported: true,
            value: ParamValue::Raw {
                id: 3,
                value: vec![0, 0, 0, 9],
            },
        });
        let mut out = vec![];
        q.encode(Profile::Rfc, &mut out);
        assert_eq!(Qspec::decode(&out, Profile::Rfc).unwrap(), q);
    }

    pub(crate) fn arb_qspec() -> impl Strategy<Value = Qspec> {
        (0f32..1e9, 0f32..1e9, any::<u32>(), any::<bool>()).prop_map(|(r, b, m, with_mps)| {
            let mut q = Qspec::bandwidth_request(r, Profile::Rfc);
            if let ParamValue::Tmod1(t) = &mut q.objects[0].params[0].value {
                t.bucket = b;
                t.min_policed_unit = m;
                t.max_packet_size = with_mps.then_some(m);
            }
            q
        })
    }

    proptest! {
        #[test]
        fn round_trip(q in arb_qspec()) {
            let mut out = vec![];
            q.encode(Profile::Rfc, &mut out);
            prop_assert_eq!(Qspec::decode(&out, Profile::Rfc).unwrap(), q);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = Qspec::decode(&bytes, Profile::Rfc);
        }
    }
}
