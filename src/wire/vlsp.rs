//! The VLSP object (paper §III-C, Fig. 5): the QoS NSLP object that turns a
//! reservation into a virtual link. 80 bytes with its header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |1|0|r|r|      Object Type      |r|r|r|r|   Length = 19 words   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Virtual Network ID (128 bits)                |
//! |                  Source Virtual Node ID (128 bits)            |
//! |                  Destination Virtual Node ID (128 bits)       |
//! |             Source Virtual Interface ID (64 bits)             |
//! |          Destination Virtual Interface ID (64 bits)           |
//! |                  Virtual Link ID (64 bits)                    |
//! |                      Tunnel Type (32 bits)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The extensibility bits are AB=10 ("forward"): a QoS NSLP node that does
//! not know the object passes it on unmodified, so VLSP deploys over
//! intermediate domains that run the plain QoS NSLP (paper §III-C).

use crate::model::tunnel::TunnelKind;
use crate::wire::profile::Profile;
use crate::wire::tlv::{Extensibility, ObjectHeader, WireError, WireResult, be32};

/// Object type in the `rfc` profile: the first value of the QoS NSLP
/// Private/Experimental range (2000–2047, RFC 5974 §6.2), since VLSP has no
/// IANA assignment.
pub const VLSP_TYPE_RFC: u16 = 0x7d0;
/// Object type NSIS-ka uses (it squats in the IETF-Review range).
pub const VLSP_TYPE_NSIS_KA: u16 = 0x0fe;
/// Value length: 76 bytes (19 words).
pub const VLSP_VALUE_LEN: usize = 76;
/// Whole object: 80 bytes.
pub const VLSP_LEN: usize = ObjectHeader::LEN + VLSP_VALUE_LEN;

/// The object type of the VLSP object in `profile`.
pub fn vlsp_type(profile: Profile) -> u16 {
    match profile {
        Profile::Rfc => VLSP_TYPE_RFC,
        Profile::NsisKa => VLSP_TYPE_NSIS_KA,
    }
}

/// How the virtual link is (de)multiplexed in the substrate.
///
/// `rfc` numbering follows the RADIUS Tunnel-Type registry (RFC 2868: 10 GRE,
/// 12 IP-in-IP, 13 VLAN); the Ethernet-carrying tunnels this testbed uses
/// have no RADIUS number, so they take values above the registry's 8-bit
/// space (0x100 VXLAN, 0x101 Ethernet over GRE, 0x102 Geneve), where they
/// cannot collide with it. `nsis-ka` numbering is NSIS-ka's enum, one below
/// RADIUS (9 GRE, 11 IP-in-IP, 12 VLAN); NSIS-ka reads only the low 8 bits,
/// so there the Ethernet tunnels take 0xF0, 0xF1 and 0xF2, values its enum
/// does not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelType {
    Gre,
    IpInIp,
    Vlan,
    Vxlan,
    Gretap,
    Geneve,
    /// A value this implementation does not know, kept as received.
    Other(u32),
}

impl TunnelType {
    /// The tunnel type for a kernel tunnel kind.
    pub fn from_kind(k: TunnelKind) -> Self {
        match k {
            TunnelKind::Vxlan => Self::Vxlan,
            TunnelKind::Gretap => Self::Gretap,
            TunnelKind::Geneve => Self::Geneve,
            TunnelKind::Gre => Self::Gre,
            TunnelKind::Ipip => Self::IpInIp,
        }
    }

    /// The kernel tunnel kind that realises this type, if any.
    pub fn kind(self) -> Option<TunnelKind> {
        match self {
            Self::Vxlan => Some(TunnelKind::Vxlan),
            Self::Gretap => Some(TunnelKind::Gretap),
            Self::Geneve => Some(TunnelKind::Geneve),
            Self::Gre => Some(TunnelKind::Gre),
            Self::IpInIp => Some(TunnelKind::Ipip),
            _ => None,
        }
    }

    pub fn to_u32(self, profile: Profile) -> u32 {
        let rfc = match self {
            Self::Gre => 10,
            Self::IpInIp => 12,
            Self::Vlan => 13,
            Self::Vxlan => 0x100,
            Self::Gretap => 0x101,
            Self::Geneve => 0x102,
            Self::Other(v) => return v,
        };
        match (profile, self) {
            (Profile::NsisKa, Self::Gre | Self::IpInIp | Self::Vlan) => rfc - 1,
            (Profile::NsisKa, _) => rfc - 0x100 + 0xf0,
            _ => rfc,
        }
    }

    pub fn from_u32(v: u32, profile: Profile) -> Self {
        match (profile, v) {
            (Profile::Rfc, 10) | (Profile::NsisKa, 9) => Self::Gre,
            (Profile::Rfc, 12) | (Profile::NsisKa, 11) => Self::IpInIp,
            (Profile::Rfc, 13) | (Profile::NsisKa, 12) => Self::Vlan,
            (Profile::Rfc, 0x100) | (Profile::NsisKa, 0xf0) => Self::Vxlan,
            (Profile::Rfc, 0x101) | (Profile::NsisKa, 0xf1) => Self::Gretap,
            (Profile::Rfc, 0x102) | (Profile::NsisKa, 0xf2) => Self::Geneve,
            (_, v) => Self::Other(v),
        }
    }
}

/// The VLSP object's fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VlspObject {
    pub vnet_id: u128,
    pub src_vnode: u128,
    pub dst_vnode: u128,
    pub src_vif: u64,
    pub dst_vif: u64,
    pub vlink_id: u64,
    pub tunnel_type: TunnelType,
}

impl VlspObject {
    /// Appends the 80-byte object.
    pub fn encode(&self, profile: Profile, out: &mut Vec<u8>) {
        ObjectHeader::new(Extensibility::Forward, vlsp_type(profile), VLSP_VALUE_LEN).emit(out);
        out.extend_from_slice(&self.vnet_id.to_be_bytes());
        out.extend_from_slice(&self.src_vnode.to_be_bytes());
        out.extend_from_slice(&self.dst_vnode.to_be_bytes());
        out.extend_from_slice(&self.src_vif.to_be_bytes());
        out.extend_from_slice(&self.dst_vif.to_be_bytes());
        out.extend_from_slice(&self.vlink_id.to_be_bytes());
        out.extend_from_slice(&self.tunnel_type.to_u32(profile).to_be_bytes());
    }

    /// Decodes a complete object (header included).
    pub fn decode(buf: &[u8], profile: Profile) -> WireResult<Self> {
        let h = ObjectHeader::parse(buf)?;
        if h.obj_type != vlsp_type(profile) {
            return Err(WireError::WrongType {
                what: "VLSP object",
                got: h.obj_type,
            });
        }
        if buf.len() != h.total_len() {
            return Err(WireError::BadLength {
                what: "VLSP object",
                len: buf.len(),
                expected: "header length + 4",
            });
        }
        Self::decode_value(&buf[ObjectHeader::LEN..], profile)
    }

    /// Decodes the 76-byte value.
    pub fn decode_value(v: &[u8], profile: Profile) -> WireResult<Self> {
        if v.len() != VLSP_VALUE_LEN {
            return Err(WireError::BadLength {
                what: "VLSP object",
                len: v.len(),
                expected: "76 bytes of value",
            });
        }
        let u128_at = |o: usize| u128::from_be_bytes(v[o..o + 16].try_into().expect("16 bytes"));
        let u64_at = |o: usize| u64::from_be_bytes(v[o..o + 8].try_into().expect("8 bytes"));
        let tt = be32(v, 72, "VLSP tunnel type")?;
        let tt = match profile {
            // NSIS-ka reads only the low 8 bits; the rest is reserved.
            Profile::NsisKa => tt & 0xff,
            Profile::Rfc => tt,
        };
        Ok(Self {
            vnet_id: u128_at(0),
            src_vnode: u128_at(16),
            dst_vnode: u128_at(32),
            src_vif: u64_at(48),
            dst_vif: u64_at(56),
            vlink_id: u64_at(64),
            tunnel_type: TunnelType::from_u32(tt, profile),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// protocol.md §6: the paper's client defaults (vnet (1,2,3,4), vnodes
    /// (0,0,0,1), interface and link IDs 0, IP-in-IP), NSIS-ka profile.
    static NSIS_KA_VECTOR: [u8; 80] = [
        0x80, 0xfe, 0x00, 0x13, // AB=10, type 0x0FE, 19 words
        0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, // VNet ID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // source VNode ID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // destination VNode ID
        0, 0, 0, 0, 0, 0, 0, 0, // source VInterface ID
        0, 0, 0, 0, 0, 0, 0, 0, // destination VInterface ID
        0, 0, 0, 0, 0, 0, 0, 0, // VLink ID
        0, 0, 0, 0x0b, // tunnel type 11 = IP-in-IP tunnelling (NSIS-ka enum)
    ];

    fn vector_obj() -> VlspObject {
        VlspObject {
            vnet_id: 0x0000_0001_0000_0002_0000_0003_0000_0004,
            src_vnode: 1,
            dst_vnode: 1,
            src_vif: 0,
            dst_vif: 0,
            vlink_id: 0,
            tunnel_type: TunnelType::IpInIp,
        }
    }

    #[test]
    fn deconstruct_nsis_ka_vector() {
        let o = VlspObject::decode(&NSIS_KA_VECTOR, Profile::NsisKa).unwrap();
        assert_eq!(o, vector_obj());
    }

    #[test]
    fn construct_nsis_ka_vector() {
        let mut out = vec![];
        vector_obj().encode(Profile::NsisKa, &mut out);
        assert_eq!(out, NSIS_KA_VECTOR);
        assert_eq!(out.len(), VLSP_LEN);
    }

    #[test]
    fn rfc_profile_uses_experimental_type() {
        let mut out = vec![];
        vector_obj().encode(Profile::Rfc, &mut out);
        assert_eq!(&out[..4], &[0x87, 0xd0, 0x00, 0x13]);
        assert_eq!(&out[76..], &[0, 0, 0, 12], "RADIUS IP-in-IP");
        assert_eq!(
            VlspObject::decode(&out, Profile::Rfc).unwrap(),
            vector_obj()
        );
    }

    #[test]
    fn wrong_length_type_and_truncation_are_typed() {
        let mut long = NSIS_KA_VECTOR.to_vec();
        long[3] = 0x14;
        long.extend_from_slice(&[0; 4]);
        assert!(matches!(
            VlspObject::decode(&long, Profile::NsisKa),
            Err(WireError::BadLength {
                what: "VLSP object",
                len: 80,
                ..
            })
        ));
        assert!(matches!(
            VlspObject::decode(&NSIS_KA_VECTOR, Profile::Rfc),
            Err(WireError::WrongType { got: 0x0fe, .. })
        ));
        for n in 0..80 {
            assert!(VlspObject::decode(&NSIS_KA_VECTOR[..n], Profile::NsisKa).is_err());
        }
        // NSIS-ka masks the reserved upper 24 bits of the tunnel type.
        let mut masked = NSIS_KA_VECTOR;
        masked[76] = 0xff;
        assert_eq!(
            VlspObject::decode(&masked, Profile::NsisKa)
                .unwrap()
                .tunnel_type,
            TunnelType::IpInIp
        );
    }

    #[test]
    fn tunnel_numbering_differs_by_one_for_radius_types() {
        for t in [TunnelType::Gre, TunnelType::IpInIp, TunnelType::Vlan] {
            assert_eq!(t.to_u32(Profile::Rfc), t.to_u32(Profile::NsisKa) + 1);
            for p in [Profile::Rfc, Profile::NsisKa] {
                assert_eq!(TunnelType::from_u32(t.to_u32(p), p), t);
            }
        }
        assert_eq!(TunnelType::from_u32(3, Profile::Rfc), TunnelType::Other(3));
    }

    fn arb_tunnel() -> impl Strategy<Value = TunnelType> {
        prop_oneof![
            Just(TunnelType::Gre),
            Just(TunnelType::IpInIp),
            Just(TunnelType::Vlan),
            Just(TunnelType::Vxlan),
            Just(TunnelType::Gretap),
            Just(TunnelType::Geneve),
            (14u32..0xf0).prop_map(TunnelType::Other),
        ]
    }

    pub(crate) fn arb_vlsp() -> impl Strategy<Value = VlspObject> {
        (any::<[u128; 3]>(), any::<[u64; 3]>(), arb_tunnel()).prop_map(|(a, b, t)| VlspObject {
            vnet_id: a[0],
            src_vnode: a[1],
            dst_vnode: a[2],
            src_vif: b[0],
            dst_vif: b[1],
            vlink_id: b[2],
            tunnel_type: t,
        })
    }

    proptest! {
        #[test]
        fn round_trip(o in arb_vlsp(), nsis in any::<bool>()) {
            let p = if nsis { Profile::NsisKa } else { Profile::Rfc };
            let mut out = vec![];
            o.encode(p, &mut out);
            prop_assert_eq!(out.len(), VLSP_LEN);
            prop_assert_eq!(VlspObject::decode(&out, p).unwrap(), o);
        }
    }
}
