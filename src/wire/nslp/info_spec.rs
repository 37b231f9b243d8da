//! INFO_SPEC (RFC 5974 §5.1.3.6): the result or error a RESPONSE or NOTIFY
//! carries, and the answer to a message that failed to decode.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::profile::Profile;
use crate::wire::tlv::{WireError, WireResult, be32, fit_u8};

/// INFO_SPEC error classes (RFC 5974 §5.1.3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InfoClass {
    Informational,
    Success,
    ProtocolError,
    TransientFailure,
    PermanentFailure,
    QosmError,
    Other(u8),
}

impl InfoClass {
    fn to_u8(self) -> u8 {
        match self {
            Self::Informational => 1,
            Self::Success => 2,
            Self::ProtocolError => 3,
            Self::TransientFailure => 4,
            Self::PermanentFailure => 5,
            Self::QosmError => 6,
            Self::Other(v) => v & 0x0f,
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Informational,
            2 => Self::Success,
            3 => Self::ProtocolError,
            4 => Self::TransientFailure,
            5 => Self::PermanentFailure,
            6 => Self::QosmError,
            v => Self::Other(v),
        }
    }
}

/// Error Source Identifier: who generated an INFO_SPEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Esi {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Fqdn(String),
    /// Another ESI type, kept raw.
    Other {
        esi_type: u8,
        value: Vec<u8>,
    },
}

/// INFO_SPEC: the result or error a RESPONSE or NOTIFY carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSpec {
    pub class: InfoClass,
    pub code: u8,
    pub esi: Option<Esi>,
    /// Optional trailing bytes. NSIS-ka puts a zero-padded text there; so do
    /// we (in both profiles), so an error names its cause end to end.
    pub extra: Vec<u8>,
}

impl InfoSpec {
    fn new(class: InfoClass, code: u8, addr: Ipv4Addr, text: &str) -> Self {
        let mut extra = text.as_bytes().to_vec();
        crate::wire::tlv::pad4(&mut extra);
        Self {
            class,
            code,
            esi: Some(Esi::V4(addr)),
            extra,
        }
    }
    pub fn reservation_successful(addr: Ipv4Addr) -> Self {
        Self::new(InfoClass::Success, 0x01, addr, "Reservation successful")
    }
    pub fn teardown_successful(addr: Ipv4Addr) -> Self {
        Self::new(InfoClass::Success, 0x02, addr, "Tear down successful")
    }
    pub fn refresh_successful(addr: Ipv4Addr) -> Self {
        Self::new(InfoClass::Success, 0x04, addr, "Refresh successful")
    }
    pub fn mandatory_object_missing(addr: Ipv4Addr, obj_type: u16) -> Self {
        Self::new(
            InfoClass::ProtocolError,
            0x05,
            addr,
            &format!("Mandatory object {obj_type:#05x} missing"),
        )
    }
    pub fn unknown_object(addr: Ipv4Addr, obj_type: u16) -> Self {
        Self::new(
            InfoClass::ProtocolError,
            0x07,
            addr,
            &format!("Unknown object {obj_type:#05x} present"),
        )
    }
    pub fn full_qspec_required(addr: Ipv4Addr) -> Self {
        Self::new(
            InfoClass::TransientFailure,
            0x04,
            addr,
            "Full QSPEC required",
        )
    }
    pub fn reservation_failure(addr: Ipv4Addr, why: &str) -> Self {
        Self::new(InfoClass::TransientFailure, 0x07, addr, why)
    }
    /// Transient Failure, code 0x80 (RFC 5974 §6.4 leaves 128-191 of each
    /// class for experiments; no IETF code says "no route"): this node has
    /// no route towards the flow's destination right now, e.g. while OSPF
    /// converges. The initiator keeps its reservation and retries.
    pub fn no_route(addr: Ipv4Addr) -> Self {
        Self::new(
            InfoClass::TransientFailure,
            Self::NO_ROUTE,
            addr,
            "No route towards the flow's destination (transient; retry)",
        )
    }
    pub const NO_ROUTE: u8 = 0x80;

    /// A failure that says "try again later" and not "give up": only a
    /// missing route (admission failures stay final).
    pub fn is_retryable(&self) -> bool {
        self.class == InfoClass::TransientFailure && self.code == Self::NO_ROUTE
    }

    pub fn path_truncated(addr: Ipv4Addr) -> Self {
        Self::new(
            InfoClass::TransientFailure,
            0x08,
            addr,
            "Path truncated: next peer dead",
        )
    }
    pub fn authorization_failure(addr: Ipv4Addr) -> Self {
        Self::new(
            InfoClass::PermanentFailure,
            0x02,
            addr,
            "Authorization failure",
        )
    }

    pub fn is_success(&self) -> bool {
        self.class == InfoClass::Success
    }

    /// The text NSIS-ka style INFO_SPECs carry, if any.
    pub fn text(&self) -> String {
        let end = self
            .extra
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        String::from_utf8_lossy(&self.extra[..end]).into_owned()
    }

    /// A machine-readable word for the API.
    pub fn reason(&self) -> &'static str {
        match (self.class, self.code) {
            (InfoClass::Success, _) => "success",
            (InfoClass::PermanentFailure, 0x02) => "authorization_failure",
            (InfoClass::TransientFailure, 0x07) => "reservation_failure",
            (InfoClass::TransientFailure, 0x08) => "path_truncated",
            (InfoClass::TransientFailure, Self::NO_ROUTE) => "no_route",
            (InfoClass::TransientFailure, _) => "transient_failure",
            (InfoClass::ProtocolError, _) => "protocol_error",
            (InfoClass::PermanentFailure, _) => "permanent_failure",
            _ => "error",
        }
    }

    /// Class, code and text, for messages.
    pub fn describe(&self) -> String {
        let t = self.text();
        format!(
            "INFO_SPEC class {} code {:#04x}{}{}",
            self.class.to_u8(),
            self.code,
            if t.is_empty() { "" } else { ": " },
            t
        )
    }

    /// The ESI as text ("the node that answered").
    pub fn origin(&self) -> String {
        match &self.esi {
            Some(Esi::V4(a)) => a.to_string(),
            Some(Esi::V6(a)) => a
                .to_ipv4_mapped()
                .map_or_else(|| a.to_string(), |v| v.to_string()),
            Some(Esi::Fqdn(s)) => s.clone(),
            _ => "an unknown node".into(),
        }
    }

    pub(crate) fn encode_value(&self, profile: Profile, out: &mut Vec<u8>) -> WireResult<()> {
        let (esi_type, esi): (u8, Vec<u8>) = match &self.esi {
            None => (0, vec![]),
            // NSIS-ka sends IPv4 sources as IPv4-mapped IPv6 (type 2).
            Some(Esi::V4(a)) if profile == Profile::NsisKa => {
                (2, a.to_ipv6_mapped().octets().to_vec())
            }
            Some(Esi::V4(a)) => (1, a.octets().to_vec()),
            Some(Esi::V6(a)) => (2, a.octets().to_vec()),
            Some(Esi::Fqdn(s)) => {
                let mut v = s.as_bytes().to_vec();
                crate::wire::tlv::pad4(&mut v);
                (3, v)
            }
            Some(Esi::Other { esi_type, value }) => {
                let mut v = value.clone();
                crate::wire::tlv::pad4(&mut v);
                (*esi_type, v)
            }
        };
        out.extend_from_slice(&[
            0,
            self.code,
            (self.class.to_u8() << 4) | (esi_type & 0x0f),
            fit_u8(esi.len() / 4, "INFO_SPEC", "ESI length (words)")?,
        ]);
        out.extend_from_slice(&esi);
        out.extend_from_slice(&self.extra);
        crate::wire::tlv::pad4(out);
        Ok(())
    }

    pub(crate) fn decode_value(v: &[u8]) -> WireResult<Self> {
        let w = be32(v, 0, "INFO_SPEC")?;
        let code = (w >> 16) as u8;
        let class = InfoClass::from_u8(((w >> 12) & 0x0f) as u8);
        let esi_type = ((w >> 8) & 0x0f) as u8;
        let esi_len = (w & 0xff) as usize * 4;
        let esi_bytes = v.get(4..4 + esi_len).ok_or(WireError::Truncated {
            what: "INFO_SPEC ESI",
            need: 4 + esi_len,
            have: v.len(),
        })?;
        let esi = match (esi_type, esi_len) {
            (0, 0) => None,
            (1, 4) => Some(Esi::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(esi_bytes).expect("4"),
            ))),
            // An IPv4-mapped address is the IPv4 node (NSIS-ka writes IPv4
            // sources that way): one value, whichever way it came, so a
            // re-encoded INFO_SPEC names the same node.
            (2, 16) => {
                let a = Ipv6Addr::from(<[u8; 16]>::try_from(esi_bytes).expect("16"));
                Some(a.to_ipv4_mapped().map_or(Esi::V6(a), Esi::V4))
            }
            (1, _) | (2, _) => {
                return Err(WireError::BadLength {
                    what: "INFO_SPEC ESI",
                    len: esi_len,
                    expected: "4 bytes (IPv4) or 16 bytes (IPv6)",
                });
            }
            (3, _) => {
                let end = esi_bytes.iter().position(|b| *b == 0).unwrap_or(esi_len);
                Some(Esi::Fqdn(
                    String::from_utf8_lossy(&esi_bytes[..end]).into_owned(),
                ))
            }
            (t, _) => Some(Esi::Other {
                esi_type: t,
                value: esi_bytes.to_vec(),
            }),
        };
        Ok(Self {
            class,
            code,
            esi,
            extra: v[4 + esi_len..].to_vec(),
        })
    }
}

/// The INFO_SPEC answer RFC 5974 gives for a message that failed to decode.
pub fn info_spec_for(err: &WireError, addr: Ipv4Addr) -> InfoSpec {
    match err {
        WireError::UnknownMandatory { obj_type, .. } => InfoSpec::unknown_object(addr, *obj_type),
        WireError::Duplicate { .. } => {
            InfoSpec::new(InfoClass::ProtocolError, 0x0b, addr, "Duplicate object")
        }
        WireError::BadLength {
            what: "TMOD-1" | "QSPEC",
            ..
        } => InfoSpec::new(InfoClass::ProtocolError, 0x0c, addr, "Malformed QSPEC"),
        WireError::BadLength { .. } | WireError::Truncated { .. } => {
            InfoSpec::new(InfoClass::ProtocolError, 0x08, addr, "Wrong object length")
        }
        WireError::BadValue {
            what: "QoS NSLP header",
            ..
        } => InfoSpec::new(InfoClass::ProtocolError, 0x01, addr, "Illegal message type"),
        _ => InfoSpec::new(InfoClass::ProtocolError, 0x0e, addr, "Erroneous TLV value"),
    }
}
