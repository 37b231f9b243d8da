//! The 96 GIST messages captured from NSIS-ka 0.98 (tests/data/nsiska-vectors,
//! README there): each decodes with the `nsis-ka` profile and re-encodes byte
//! for byte, over UDP (magic number first) and TCP (C-mode, no magic); each
//! signed one verifies with NSIS-ka's key 1 at its capture time, except the
//! RFC-style signature of `nsiska-responder-rfc-hmac-rejected`, which must be
//! refused as NSIS-ka refused it.

use std::time::Duration;

use vlsp::wire::auth::{AuthError, KeyRing, Timestamp, Transform, VerifyPolicy, verify_framed};
use vlsp::wire::gist::{Body, Framing, GistPdu};
use vlsp::wire::nslp::NslpMessage;
use vlsp::wire::profile::Profile;

const TSV: &str = include_str!("data/nsiska-vectors/gist-messages.tsv");

struct Vector {
    scenario: String,
    index: u32,
    tcp: bool,
    gist_type: String,
    captured: u64,
    bytes: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn vectors() -> Vec<Vector> {
    TSV.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 9, "9 columns in {l:.60}");
            Vector {
                scenario: c[0].into(),
                index: c[1].parse().unwrap(),
                tcp: match c[2] {
                    "udp" => false,
                    "tcp" => true,
                    t => panic!("transport {t}"),
                },
                gist_type: c[5].into(),
                captured: c[7].split('.').next().unwrap().parse().unwrap(),
                bytes: hex(c[8]),
            }
        })
        .collect()
}

fn decode(v: &Vector) -> Result<GistPdu, String> {
    if v.tcp {
        GistPdu::decode(&v.bytes)
    } else {
        GistPdu::decode_udp(&v.bytes)
    }
    .map_err(|e| e.to_string())
}

fn nslp_data(p: &GistPdu) -> Option<&[u8]> {
    match &p.body {
        Body::Query { nslp_data, .. }
        | Body::Response { nslp_data, .. }
        | Body::Confirm { nslp_data, .. } => nslp_data.as_deref(),
        Body::Data { nslp_data, .. } => Some(nslp_data),
        _ => None,
    }
}

fn key1() -> KeyRing {
    let mut k = KeyRing::new();
    k.insert(
        1,
        b"12345678901234567890123456789012",
        Transform::HmacSha1_96,
    );
    k
}

/// NSIS-ka's client writes START_TIME = now + 6000 s.
fn policy() -> VerifyPolicy {
    VerifyPolicy {
        max_skew: Duration::from_secs(6100),
        ..VerifyPolicy::default()
    }
}

fn name(v: &Vector) -> String {
    format!("{}#{} ({})", v.scenario, v.index, v.gist_type)
}

#[test]
fn all_96_decode_and_reencode_byte_identical() {
    let vs = vectors();
    assert_eq!(vs.len(), 96);
    let mut failed = vec![];
    for v in &vs {
        let res = decode(v).and_then(|p| {
            let again =
                if v.tcp { p.encode() } else { p.encode_udp() }.map_err(|e| e.to_string())?;
            if again != v.bytes {
                return Err(format!(
                    "re-encodes to {} bytes instead of {}",
                    again.len(),
                    v.bytes.len()
                ));
            }
            if let Some(d) = nslp_data(&p) {
                let m = NslpMessage::decode(d, Profile::NsisKa).map_err(|e| e.to_string())?;
                if m.to_bytes(Profile::NsisKa) != d {
                    return Err("QoS NSLP message does not re-encode byte-identical".into());
                }
            }
            Ok(())
        });
        if let Err(e) = res {
            failed.push(format!("{}: {e}", name(v)));
        }
    }
    assert!(
        failed.is_empty(),
        "{}/96 vectors round-trip; failures:\n{}",
        96 - failed.len(),
        failed.join("\n")
    );
}

#[test]
fn tcp_vectors_carry_no_magic_number() {
    for v in vectors().iter().filter(|v| v.tcp) {
        assert_eq!(v.bytes[0], 1, "{}: GIST version first", name(v));
        assert!(GistPdu::decode_udp(&v.bytes).is_err(), "{}", name(v));
    }
}

fn is_signed(v: &Vector) -> bool {
    decode(v)
        .ok()
        .as_ref()
        .and_then(nslp_data)
        .is_some_and(|d| {
            NslpMessage::decode(d, Profile::NsisKa).is_ok_and(|m| m.session_auths().count() > 0)
        })
}

const RFC_STYLE: &str = "nsiska-responder-rfc-hmac-rejected";

#[test]
fn every_signed_vector_verifies_with_key_1_but_the_rfc_style_one() {
    let keys = key1();
    let (mut udp, mut tcp, mut refused) = (0, 0, 0);
    for v in vectors().iter().filter(|v| is_signed(v)) {
        let framing = if v.tcp { Framing::Tcp } else { Framing::Udp };
        let now = Timestamp {
            unix_secs: v.captured,
            frac: 0,
        };
        let r = verify_framed(&v.bytes, framing, Profile::NsisKa, &keys, now, &policy());
        if v.scenario == RFC_STYLE {
            assert!(
                matches!(r, Err(AuthError::BadSignature { key_id: 1, .. })),
                "{}: an RFC-style HMAC must be refused under nsis-ka, got {r:?}",
                name(v)
            );
            refused += 1;
            continue;
        }
        let ok = r.unwrap_or_else(|e| panic!("{}: {e}", name(v)));
        assert_eq!(ok.key_id, 1);
        if v.tcp {
            tcp += 1;
        } else {
            udp += 1;
        }
    }
    assert_eq!(refused, 1, "one RFC-style RESERVE");
    eprintln!("verified: {udp} UDP, {tcp} TCP; refused: {refused}");
    assert_eq!((udp, tcp), (12, 6), "signed vectors verified (UDP, TCP)");
}

#[test]
fn a_flipped_covered_byte_breaks_the_signature() {
    let keys = key1();
    let v = vectors()
        .into_iter()
        .find(|v| v.scenario == "nsiska-both-dmode-2node" && is_signed(v))
        .expect("a signed 2-node vector");
    let now = Timestamp {
        unix_secs: v.captured,
        frac: 0,
    };
    // Byte 21 of the UDP payload: inside the MRI (source address).
    let mut b = v.bytes.clone();
    b[21] ^= 1;
    let r = verify_framed(&b, Framing::Udp, Profile::NsisKa, &keys, now, &policy());
    assert!(matches!(r, Err(AuthError::BadSignature { .. })), "{r:?}");
}

#[test]
fn responses_travel_upstream() {
    for v in vectors().iter().filter(|v| v.gist_type == "Response") {
        let p = decode(v).unwrap();
        let Body::Response {
            mri: vlsp::wire::gist::Mri::PathCoupled(m),
            ..
        } = p.body
        else {
            panic!("{}: path-coupled Response", name(v));
        };
        assert!(m.upstream, "{}: the D flag is set", name(v));
    }
}
