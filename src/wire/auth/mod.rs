//! The NSLP Session Authorization object (RFC 5981) with HMAC_SIGNED
//! integrity protection (paper §III-B, Fig. 4), and the early verification
//! of paper §IV-B: a received GIST PDU is checked on its raw bytes, scanning
//! object headers only, before anything is parsed or any state is touched.
//!
//! ```text
//! object:    NSLP TLV header (type 0x016, AB=10) | attributes...
//! attribute: | Length (16, bytes incl. this header, no padding) | X-Type (8) | SubType (8) |
//!            | value, zero-padded to 4 bytes                                           |
//! ```
//!
//! Signing and verification work on the encoded, framed GIST PDU (UDP with
//! its magic number, or TCP without), because the signature covers GIST
//! objects (MRI, Session-ID) as well as NSLP objects.
//! What is covered depends on the [`Profile`]:
//! - `rfc` (RFC 5981 §4 as read here; the RFC text was not available to
//!   check): the NSLPID, the MRI and Session-ID TLVs, every NSLP object whose
//!   type the NSLP_OBJECT_LIST names (full TLV, in message order), and the
//!   authorization object itself with its HMAC bytes taken as zero. HMAC
//!   output is truncated as the transform says (SHA-256-128: 16 bytes,
//!   SHA1-96: 12 bytes).
//! - `nsis-ka` (as confirmed on the wire against NSIS-ka 0.98): the 2 bytes at
//!   offset 4 of the framed buffer (over UDP the GIST version and hops, over
//!   TCP the NSLPID; the 96 captured vectors confirm both), the MRI and
//!   Session-ID TLVs, the listed NSLP objects except types 0, 1 and 0x16 (so
//!   RII is never covered), and every SESSION_AUTH object without its last 20
//!   bytes, all in message order; always HMAC-SHA1 with the full 20 bytes.
//!
//! Only a node that *creates* an authorization object signs it: a forwarding
//! node that happens to hold the same key must not re-sign what it forwards,
//! or it would launder a forged request.

mod keyring;
mod object;
mod sign;

pub use keyring::{Key, KeyRing};
pub use object::{
    AddrAttr, Attr, AuthEntity, HMAC_SIGNED, SESSION_AUTH_TYPE, SessionAuthObject, Timestamp,
    Transform, xtype,
};
pub use sign::{
    AuthError, Verified, VerifyPolicy, sign_framed, sign_pdu, verify_framed, verify_pdu,
};

#[cfg(test)]
pub(crate) mod tests;
