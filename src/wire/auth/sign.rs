//! Signing after encoding and early verification (paper §IV-B), on the raw
//! framed bytes: the GIST view ([`PduView`]) finds MRI, Session-ID and the
//! NSLP-Data; an object-header walk finds the NSLP objects; nothing else is
//! parsed.

use std::ops::Range;
use std::time::Duration;

use hmac::Mac;
use thiserror::Error;

use super::keyring::{Key, KeyRing};
use super::object::{HMAC_SIGNED, SESSION_AUTH_TYPE, Timestamp, Transform, attrs, xtype};
use crate::wire::gist::{Framing, PduView, field};
use crate::wire::profile::Profile;
use crate::wire::tlv::{ObjectIter, WireError};

/// What verification checks beyond the signature.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Refuse PDUs without an authorization object this node can check.
    pub require_auth: bool,
    /// Accepted clock difference for START_TIME / END_TIME.
    pub max_skew: Duration,
    /// Longest validity accepted: END_TIME − START_TIME, and for an object
    /// with a START_TIME but no END_TIME (NSIS-ka's) the time it counts as
    /// valid after its START_TIME. Bounds how long a replay cache must
    /// remember an accepted object.
    pub max_window: Duration,
    /// Entities accepted (empty: any entity holding a valid key).
    pub accepted_entities: Vec<String>,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            require_auth: true,
            max_skew: Duration::from_secs(30),
            max_window: Duration::from_secs(600),
            accepted_entities: vec![],
        }
    }
}

/// Why a PDU was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("no SESSION_AUTH object this node can verify (the request is unsigned)")]
    Unsigned,
    #[error("key id {key_id:#x} is not known here: add the provider's key to the topology")]
    UnknownKey { key_id: u32 },
    #[error("HMAC of entity {entity} with key {key_id:#x} does not match: forged or tampered")]
    BadSignature { key_id: u32, entity: String },
    #[error("authorization of {entity} expired at {end} (now {now}, Unix seconds)")]
    Expired { entity: String, end: u64, now: u64 },
    #[error("authorization of {entity} starts at {start} (now {now}, Unix seconds)")]
    NotYetValid {
        entity: String,
        start: u64,
        now: u64,
    },
    #[error(
        "authorization of {entity} is valid for {window} s, longer than the {max} s this provider accepts: sign shorter windows or raise max_window_s"
    )]
    WindowTooLong {
        entity: String,
        window: u64,
        max: u64,
    },
    #[error("object type {obj_type:#05x} is listed as signed but absent from the message")]
    ListedObjectMissing { obj_type: u16 },
    #[error("entity {entity} is not accepted by this provider")]
    EntityNotAccepted { entity: String },
    #[error("transform {transform} is not supported (use 2 or 12)")]
    UnsupportedTransform { transform: u16 },
    #[error("malformed PDU: {0}")]
    Malformed(#[from] WireError),
}

impl AuthError {
    /// A short word for counters and API replies.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::UnknownKey { .. } => "unknown_key",
            Self::BadSignature { .. } => "bad_signature",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::WindowTooLong { .. } => "window_too_long",
            Self::ListedObjectMissing { .. } => "listed_object_missing",
            Self::EntityNotAccepted { .. } => "entity_not_accepted",
            Self::UnsupportedTransform { .. } => "unsupported_transform",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entity: String,
    pub key_id: u32,
    /// The verified object's MAC: what a replay cache remembers it by.
    pub mac: Vec<u8>,
    /// Its START_TIME, if it has one, with the fraction of a second the
    /// `rfc` profile carries (NTP format): two signings in one second are
    /// still ordered, which the replay cache relies on.
    pub start: Option<Timestamp>,
    /// Unix seconds after which the object is refused as expired (its
    /// END_TIME, or START_TIME + window, plus the skew); `None` when it
    /// carries no time at all.
    pub valid_until: Option<u64>,
}

/// What the header scan found about one SESSION_AUTH object.
struct AuthView {
    /// The whole object, absolute range in the PDU.
    range: Range<usize>,
    transform: Option<u16>,
    listed: ([u16; 16], usize),
    key_id: Option<u32>,
    /// Absolute range of the MAC bytes.
    mac: Option<Range<usize>>,
    start: Option<Range<usize>>,
    end: Option<Range<usize>>,
    entity: Option<Range<usize>>,
}

/// The NSLP objects of a PDU: (type, absolute range), in message order.
pub(crate) struct NslpView {
    pub(crate) objs: [(u16, usize, usize); 24],
    pub(crate) n: usize,
}

pub(crate) fn scan(pdu: &[u8], framing: Framing) -> Result<(PduView, NslpView), AuthError> {
    let v = PduView::scan(pdu, framing)?;
    let mut nv = NslpView {
        objs: [(0, 0, 0); 24],
        n: 0,
    };
    if let Some(d) = &v.nslp_data {
        let base = d.start + 4;
        if d.len() < 4 {
            return Err(WireError::Truncated {
                what: "QoS NSLP header",
                need: 4,
                have: d.len(),
            }
            .into());
        }
        for raw in ObjectIter::new(&pdu[base..d.end], "QoS NSLP message") {
            let raw = raw?;
            if nv.n == nv.objs.len() {
                return Err(WireError::BadValue {
                    what: "QoS NSLP message",
                    detail: "more than 24 objects".into(),
                }
                .into());
            }
            let s = base + raw.offset;
            nv.objs[nv.n] = (raw.header.obj_type, s, s + raw.bytes.len());
            nv.n += 1;
        }
    }
    Ok((v, nv))
}

fn view_auth(pdu: &[u8], start: usize, end: usize) -> Result<AuthView, AuthError> {
    let mut a = AuthView {
        range: start..end,
        transform: None,
        listed: ([0; 16], 0),
        key_id: None,
        mac: None,
        start: None,
        end: None,
        entity: None,
    };
    let base = start + 4;
    for at in attrs(&pdu[base..end]) {
        let (xt, st, v, r) = at?;
        let vstart = base + r.start + 4;
        match (xt, st) {
            (xtype::AUTH_ENT_ID, HMAC_SIGNED) if v.len() == 4 => {
                a.transform = Some(u16::from_be_bytes([v[2], v[3]]))
            }
            (xtype::AUTH_ENT_ID, _) => a.entity = Some(vstart..vstart + v.len()),
            (xtype::START_TIME, _) if v.len() == 8 => a.start = Some(vstart..vstart + 8),
            (xtype::END_TIME, _) if v.len() == 8 => a.end = Some(vstart..vstart + 8),
            (xtype::NSLP_OBJECT_LIST, _) if v.len() >= 2 => {
                let n = u16::from_be_bytes([v[0], v[1]]) as usize;
                if v.len() != 2 + 2 * n || n > 16 {
                    return Err(WireError::BadLength {
                        what: "NSLP_OBJECT_LIST",
                        len: v.len(),
                        expected: "2 + 2 × count bytes, at most 16 entries",
                    }
                    .into());
                }
                for (i, c) in v[2..].chunks(2).enumerate() {
                    a.listed.0[i] = u16::from_be_bytes([c[0], c[1]]) & 0x0fff;
                }
                a.listed.1 = n;
            }
            (xtype::AUTHENTICATION_DATA, _) if v.len() >= 4 => {
                a.key_id = Some(u32::from_be_bytes(v[..4].try_into().expect("4")));
                a.mac = Some(vstart + 4..vstart + v.len());
            }
            _ => {}
        }
    }
    Ok(a)
}

fn entity_text(pdu: &[u8], a: &AuthView) -> String {
    a.entity
        .as_ref()
        .map(|r| String::from_utf8_lossy(&pdu[r.clone()]).into_owned())
        .unwrap_or_else(|| "(no entity)".into())
}

static ZEROS: [u8; 32] = [0; 32];

/// What NSIS-ka takes as the NSLPID: the 2 bytes at offset 4 of the framed
/// buffer, which over UDP are the GIST version and hops (the magic number
/// comes first) and over TCP the NSLPID (protocol.md §5.1, §10).
const NSIS_KA_NSLPID: Range<usize> = 4..6;

/// Computes the MAC of auth object `a` over `pdu` into `out` (returns its
/// length on the wire).
fn compute(
    pdu: &[u8],
    v: &PduView,
    nv: &NslpView,
    a: &AuthView,
    key: &Key,
    profile: Profile,
    out: &mut [u8; 32],
) -> Result<usize, AuthError> {
    let mac_range = a.mac.clone().ok_or(WireError::Missing {
        what: "SESSION_AUTH",
        missing: "AUTHENTICATION_DATA",
    })?;
    let listed = &a.listed.0[..a.listed.1];
    for t in listed {
        if *t != SESSION_AUTH_TYPE && !nv.objs[..nv.n].iter().any(|o| o.0 == *t) {
            return Err(AuthError::ListedObjectMissing { obj_type: *t });
        }
    }
    let mri = v.mri.clone().ok_or(WireError::Missing {
        what: "GIST PDU",
        missing: "MRI",
    })?;
    let sid = v.sid.clone().ok_or(WireError::Missing {
        what: "GIST PDU",
        missing: "Session-ID",
    })?;
    match profile {
        Profile::Rfc => {
            let transform = a.transform.and_then(Transform::from_id).ok_or(
                AuthError::UnsupportedTransform {
                    transform: a.transform.unwrap_or(0),
                },
            )?;
            let len = transform.mac_len(profile);
            if mac_range.len() != len {
                return Err(WireError::BadLength {
                    what: "AUTHENTICATION_DATA",
                    len: mac_range.len(),
                    expected: "the transform's MAC length",
                }
                .into());
            }
            macro_rules! feed {
                ($m:expr) => {{
                    let mut m = $m;
                    m.update(&pdu[v.absolute(field::NSLPID)]);
                    m.update(&pdu[mri]);
                    m.update(&pdu[sid]);
                    for o in &nv.objs[..nv.n] {
                        if listed.contains(&o.0) && o.0 != SESSION_AUTH_TYPE {
                            m.update(&pdu[o.1..o.2]);
                        }
                    }
                    m.update(&pdu[a.range.start..mac_range.start]);
                    m.update(&ZEROS[..len]);
                    m.update(&pdu[mac_range.end..a.range.end]);
                    let r = m.finalize().into_bytes();
                    out[..len].copy_from_slice(&r[..len]);
                }};
            }
            match transform {
                Transform::HmacSha1_96 => feed!(key.sha1.clone()),
                Transform::HmacSha256_128 => feed!(key.sha256.clone()),
            }
            Ok(len)
        }
        Profile::NsisKa => {
            if mac_range.len() != 20 || a.range.end - a.range.start < 20 {
                return Err(WireError::BadLength {
                    what: "AUTHENTICATION_DATA",
                    len: mac_range.len(),
                    expected: "20 bytes (NSIS-ka HMAC-SHA1)",
                }
                .into());
            }
            // The recipe leaves out each object's last 20 bytes as its MAC:
            // a MAC anywhere else would be fed into its own HMAC, and what
            // follows it would go unprotected.
            if mac_range.end != a.range.end {
                return Err(WireError::BadLength {
                    what: "SESSION_AUTH (NSIS-ka)",
                    len: a.range.end - mac_range.end,
                    expected: "AUTHENTICATION_DATA as the last attribute (0 bytes after it)",
                }
                .into());
            }
            let mut m = key.sha1.clone();
            m.update(&pdu[NSIS_KA_NSLPID]);
            m.update(&pdu[mri]);
            m.update(&pdu[sid]);
            for o in &nv.objs[..nv.n] {
                if o.0 == SESSION_AUTH_TYPE {
                    // Every auth object minus its last 20 bytes (its MAC);
                    // one too short to hold a MAC is malformed.
                    if o.2 - o.1 < 24 {
                        return Err(WireError::BadLength {
                            what: "SESSION_AUTH (NSIS-ka)",
                            len: o.2 - o.1,
                            expected: "at least a header and a 20-byte HMAC",
                        }
                        .into());
                    }
                    m.update(&pdu[o.1..o.2 - 20]);
                } else if o.0 > 1 && listed.contains(&o.0) {
                    m.update(&pdu[o.1..o.2]);
                }
            }
            out[..20].copy_from_slice(&m.finalize().into_bytes());
            Ok(20)
        }
    }
}

fn auth_objects(nv: &NslpView) -> impl Iterator<Item = (usize, usize)> + '_ {
    nv.objs[..nv.n]
        .iter()
        .filter(|o| o.0 == SESSION_AUTH_TYPE)
        .map(|o| (o.1, o.2))
}

/// Fills the MAC of every HMAC_SIGNED authorization object in `pdu` (a UDP
/// GIST payload) whose key id `keys` holds. Returns how many were signed.
pub fn sign_pdu(pdu: &mut [u8], profile: Profile, keys: &KeyRing) -> Result<usize, AuthError> {
    sign_framed(pdu, Framing::Udp, profile, keys)
}

/// [`sign_pdu`] for a message framed as `framing` says.
pub fn sign_framed(
    pdu: &mut [u8],
    framing: Framing,
    profile: Profile,
    keys: &KeyRing,
) -> Result<usize, AuthError> {
    let (v, nv) = scan(pdu, framing)?;
    let mut signed = 0;
    let mut out = [0u8; 32];
    for (s, e) in auth_objects(&nv) {
        let a = view_auth(pdu, s, e)?;
        let (Some(key_id), Some(_)) = (a.key_id, a.transform) else {
            continue;
        };
        let Some(key) = keys.get(key_id) else {
            continue;
        };
        let len = compute(pdu, &v, &nv, &a, key, profile, &mut out)?;
        let mac = a.mac.clone().expect("compute checked it");
        pdu[mac].copy_from_slice(&out[..len]);
        signed += 1;
    }
    Ok(signed)
}

/// Early verification of a received UDP GIST payload: header scan, time
/// window, listed objects, HMAC — nothing is parsed beyond object headers
/// and authorization attributes. Succeeds if every authorization object
/// whose key this node holds verifies and at least one does; objects for
/// other providers' keys are left alone.
pub fn verify_pdu(
    pdu: &[u8],
    profile: Profile,
    keys: &KeyRing,
    now: Timestamp,
    policy: &VerifyPolicy,
) -> Result<Verified, AuthError> {
    verify_framed(pdu, Framing::Udp, profile, keys, now, policy)
}

/// [`verify_pdu`] for a message framed as `framing` says (over TCP the
/// `nsis-ka` recipe's first two bytes are the NSLPID).
pub fn verify_framed(
    pdu: &[u8],
    framing: Framing,
    profile: Profile,
    keys: &KeyRing,
    now: Timestamp,
    policy: &VerifyPolicy,
) -> Result<Verified, AuthError> {
    let (v, nv) = scan(pdu, framing)?;
    let mut out = [0u8; 32];
    let mut ok: Option<Verified> = None;
    let mut unknown: Option<u32> = None;
    for (s, e) in auth_objects(&nv) {
        let a = view_auth(pdu, s, e)?;
        let (Some(key_id), Some(_)) = (a.key_id, a.transform) else {
            continue;
        };
        let Some(key) = keys.get(key_id) else {
            unknown.get_or_insert(key_id);
            continue;
        };
        let entity = entity_text(pdu, &a);
        let len = compute(pdu, &v, &nv, &a, key, profile, &mut out)?;
        let mac = &pdu[a.mac.clone().expect("compute checked it")];
        // Constant-time comparison.
        let diff = mac
            .iter()
            .zip(&out[..len])
            .fold(0u8, |d, (x, y)| d | (x ^ y));
        if diff != 0 || mac.len() != len {
            return Err(AuthError::BadSignature { key_id, entity });
        }
        let skew = policy.max_skew.as_secs();
        let ts = |r: &Range<usize>| {
            Timestamp::decode(&pdu[r.clone()].try_into().expect("8 bytes"), profile)
        };
        if let Some(r) = &a.start {
            let st = ts(r);
            if st.unix_secs > now.unix_secs.saturating_add(skew) {
                return Err(AuthError::NotYetValid {
                    entity,
                    start: st.unix_secs,
                    now: now.unix_secs,
                });
            }
        }
        let start_time = a.start.as_ref().map(ts);
        let start = start_time.map(|t| t.unix_secs);
        let window = policy.max_window.as_secs();
        if let (Some(st), Some(r)) = (start, &a.end) {
            let w = ts(r).unix_secs.saturating_sub(st);
            if w > window {
                return Err(AuthError::WindowTooLong {
                    entity,
                    window: w,
                    max: window,
                });
            }
        }
        let end = match (&a.end, start) {
            (Some(r), _) => Some(ts(r).unix_secs),
            (None, Some(st)) => Some(st.saturating_add(window)),
            (None, None) => None,
        };
        if let Some(en) = end
            && en.saturating_add(skew) < now.unix_secs
        {
            return Err(AuthError::Expired {
                entity,
                end: en,
                now: now.unix_secs,
            });
        }
        if !policy.accepted_entities.is_empty() && !policy.accepted_entities.contains(&entity) {
            return Err(AuthError::EntityNotAccepted { entity });
        }
        ok.get_or_insert(Verified {
            entity,
            key_id,
            mac: mac.to_vec(),
            start: start_time,
            valid_until: end.map(|e| e.saturating_add(skew)),
        });
    }
    match (ok, unknown) {
        (Some(v), _) => Ok(v),
        (None, Some(key_id)) => Err(AuthError::UnknownKey { key_id }),
        (None, None) => Err(AuthError::Unsigned),
    }
}
