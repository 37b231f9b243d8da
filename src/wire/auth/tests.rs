use super::object::*;
use super::sign::*;
use super::*;
use crate::wire::gist::Framing;
use crate::wire::gist::{GistPdu, Mri, PathCoupledMri};
use crate::wire::nslp::{NslpMessage, NslpObject};
use crate::wire::profile::Profile;
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use sha1::Sha1;
use std::net::Ipv4Addr;
use std::time::Duration;

/// protocol.md §5: the 104-byte object of NSIS-ka's VLSP client
/// (10.0.0.1 → 10.0.0.2, START_TIME 0x4d7c6d00, key 1, HMAC still zero).
#[rustfmt::skip]
static NSIS_KA_OBJECT: [u8; 104] = [
    0x80, 0x16, 0x00, 0x19,                         // AB=10, type 0x016, 25 words
    0x00, 0x17, 0x01, 0x03,                         // AUTH_ENT_ID FQDN, length 23
    b'a', b'u', b't', b'h', b'%', b't', b'b', b'4', b'@', b't', b'm', b'.',
    b'k', b'i', b't', b'.', b'e', b'd', b'u', 0x00, //   "auth%tb4@tm.kit.edu" + pad
    0x00, 0x08, 0x01, 0x0a, 0x00, 0x00, 0x00, 0x02, // HMAC_SIGNED, transform 2
    0x00, 0x08, 0x02, 0x01, 10, 0, 0, 1,            // SOURCE_ADDR IPv4 10.0.0.1
    0x00, 0x08, 0x03, 0x01, 10, 0, 0, 2,            // DEST_ADDR IPv4 10.0.0.2
    0x00, 0x0c, 0x04, 0x01,                         // START_TIME, length 12
    0x00, 0x00, 0x00, 0x00, 0x4d, 0x7c, 0x6d, 0x00, //   Unix seconds (NSIS-ka)
    0x00, 0x0a, 0x06, 0x00,                         // NSLP_OBJECT_LIST, length 10
    0x00, 0x02, 0x00, 0x01, 0x00, 0xfe, 0x00, 0x00, //   2 types: RII, VLSP; pad
    0x00, 0x1c, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, // AUTHENTICATION_DATA, key id 1
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // HMAC (20 bytes)
];

fn nsis_ka_object() -> SessionAuthObject {
    SessionAuthObject::hmac_template(
        AuthEntity::Fqdn("auth%tb4@tm.kit.edu".into()),
        Some(Ipv4Addr::new(10, 0, 0, 1).into()),
        Some(Ipv4Addr::new(10, 0, 0, 2).into()),
        Timestamp {
            unix_secs: 0x4d7c_6d00,
            frac: 0,
        },
        None,
        &[0x001, 0x0fe],
        1,
        Transform::HmacSha1_96,
        Profile::NsisKa,
    )
}

#[test]
fn deconstruct_nsis_ka_object() {
    let o = SessionAuthObject::decode(&NSIS_KA_OBJECT, Profile::NsisKa).unwrap();
    assert_eq!(o, nsis_ka_object());
    assert_eq!(o.entity().unwrap().to_string(), "auth%tb4@tm.kit.edu");
}

#[test]
fn construct_nsis_ka_object() {
    assert_eq!(nsis_ka_object().to_bytes(Profile::NsisKa), NSIS_KA_OBJECT);
}

#[test]
fn ntp_time_round_trip() {
    let t = Timestamp {
        unix_secs: 1_800_000_000,
        frac: 0x8000_0000,
    };
    let b = t.encode(Profile::Rfc);
    assert_eq!(
        u32::from_be_bytes(b[..4].try_into().unwrap()),
        (1_800_000_000u64 + NTP_UNIX_OFFSET) as u32
    );
    assert_eq!(Timestamp::decode(&b, Profile::Rfc), t);
    // After 2036 (NTP era 1) the 32-bit seconds wrap and still decode.
    let late = Timestamp {
        unix_secs: 2_200_000_000,
        frac: 0,
    };
    assert_eq!(
        Timestamp::decode(&late.encode(Profile::Rfc), Profile::Rfc),
        late
    );
}

pub(crate) const KEY1: &[u8] = b"12345678901234567890123456789012";
pub(crate) const KEY2: &[u8] = b"abcdefghijklmnopqrstuvwxyz-.,+%$";

pub(crate) fn reserve_pdu(
    profile: Profile,
    signers: &[(u32, Transform)],
    now: Timestamp,
) -> Vec<u8> {
    crate::wire::fixtures::sample_reserve_pdu(profile, signers, now)
}

pub(crate) fn ring() -> KeyRing {
    let mut k = KeyRing::new();
    k.insert(1, KEY1, Transform::HmacSha256_128);
    k.insert(2, KEY2, Transform::HmacSha256_128);
    k
}

const NOW: Timestamp = Timestamp {
    unix_secs: 1_800_000_000,
    frac: 0,
};

fn signed(profile: Profile) -> Vec<u8> {
    let t = match profile {
        Profile::Rfc => Transform::HmacSha256_128,
        Profile::NsisKa => Transform::HmacSha1_96,
    };
    let mut p = reserve_pdu(profile, &[(1, t)], NOW);
    assert_eq!(sign_pdu(&mut p, profile, &ring()).unwrap(), 1);
    p
}

#[test]
fn signs_and_verifies_in_both_profiles() {
    for profile in [Profile::Rfc, Profile::NsisKa] {
        let p = signed(profile);
        let v = verify_pdu(&p, profile, &ring(), NOW, &VerifyPolicy::default()).unwrap();
        let mac_len = if profile == Profile::Rfc { 16 } else { 20 };
        assert_eq!(
            v,
            Verified {
                entity: "vnp1@example.net".into(),
                key_id: 1,
                mac: p[p.len() - mac_len..].to_vec(),
                start: Some(NOW),
                // END_TIME (now + 600 s) plus the 30 s skew.
                valid_until: Some(NOW.unix_secs + 630),
            }
        );
        assert!(p.len() > 250, "about the paper's RESERVE size: {}", p.len());
    }
}

/// The replay cache orders one session's objects by START_TIME; two
/// signings within one second differ only in the fraction the `rfc`
/// profile carries (NSIS-ka's Unix seconds have none).
#[test]
fn a_verified_start_time_keeps_its_fraction_of_a_second() {
    let t = Timestamp {
        frac: 0x8000_0001,
        ..NOW
    };
    for (profile, transform, frac) in [
        (Profile::Rfc, Transform::HmacSha256_128, 0x8000_0001),
        (Profile::NsisKa, Transform::HmacSha1_96, 0),
    ] {
        let mut p = reserve_pdu(profile, &[(1, transform)], t);
        sign_pdu(&mut p, profile, &ring()).unwrap();
        let v = verify_pdu(&p, profile, &ring(), NOW, &VerifyPolicy::default()).unwrap();
        assert_eq!(v.start, Some(Timestamp { frac, ..NOW }), "{profile}");
    }
}

/// Byte offsets the signature covers, found the way a reviewer would:
/// by flipping each bit and seeing whether verification notices.
#[test]
fn every_covered_bit_is_protected() {
    for profile in [Profile::Rfc, Profile::NsisKa] {
        let p = signed(profile);
        let (v, nv) = scan(&p, Framing::Udp).unwrap();
        let rii = nv.objs[..nv.n].iter().find(|o| o.0 == 0x001).unwrap();
        let rsn = nv.objs[..nv.n].iter().find(|o| o.0 == 0x002).unwrap();
        let auth = nv.objs[..nv.n]
            .iter()
            .find(|o| o.0 == SESSION_AUTH_TYPE)
            .unwrap();
        let mut covered: Vec<usize> = vec![];
        covered.extend(v.mri.clone().unwrap());
        covered.extend(v.sid.clone().unwrap());
        for o in &nv.objs[..nv.n] {
            let listed = [0x00b, crate::wire::vlsp::vlsp_type(profile)].contains(&o.0)
                || (o.0 == 0x001 && profile == Profile::Rfc);
            if listed {
                covered.extend(o.1..o.2);
            }
        }
        covered.extend(auth.1..auth.2);
        for &i in &covered {
            for bit in 0..8 {
                let mut q = p.clone();
                q[i] ^= 1 << bit;
                assert!(
                    verify_pdu(&q, profile, &ring(), NOW, &VerifyPolicy::default()).is_err(),
                    "{profile}: flipping bit {bit} of byte {i} went unnoticed"
                );
            }
        }
        // Bytes outside the coverage may change hop by hop: the RSN
        // (each QNE sets its own), and in nsis-ka the never-covered RII.
        let mut q = p.clone();
        q[rsn.1 + 7] ^= 1;
        assert!(verify_pdu(&q, profile, &ring(), NOW, &VerifyPolicy::default()).is_ok());
        if profile == Profile::NsisKa {
            let mut q = p.clone();
            q[rii.1 + 7] ^= 1;
            assert!(verify_pdu(&q, profile, &ring(), NOW, &VerifyPolicy::default()).is_ok());
        }
    }
}

#[test]
fn refusals_are_typed() {
    let p = signed(Profile::Rfc);
    let pol = VerifyPolicy::default();
    // Wrong key under the same id.
    let mut wrong = KeyRing::new();
    wrong.insert(1, b"not the key", Transform::HmacSha256_128);
    assert!(matches!(
        verify_pdu(&p, Profile::Rfc, &wrong, NOW, &pol),
        Err(AuthError::BadSignature { key_id: 1, .. })
    ));
    // Unknown key id.
    let mut other = KeyRing::new();
    other.insert(9, KEY1, Transform::HmacSha256_128);
    assert_eq!(
        verify_pdu(&p, Profile::Rfc, &other, NOW, &pol),
        Err(AuthError::UnknownKey { key_id: 1 })
    );
    // Expired END_TIME (now is past it by more than the skew).
    let later = NOW.plus(Duration::from_secs(700));
    assert!(matches!(
        verify_pdu(&p, Profile::Rfc, &ring(), later, &pol),
        Err(AuthError::Expired { .. })
    ));
    // Not yet valid.
    let early = Timestamp {
        unix_secs: NOW.unix_secs - 100,
        frac: 0,
    };
    assert!(matches!(
        verify_pdu(&p, Profile::Rfc, &ring(), early, &pol),
        Err(AuthError::NotYetValid { .. })
    ));
    // Entity not accepted.
    let strict = VerifyPolicy {
        accepted_entities: vec!["someone@else".into()],
        ..pol.clone()
    };
    assert!(matches!(
        verify_pdu(&p, Profile::Rfc, &ring(), NOW, &strict),
        Err(AuthError::EntityNotAccepted { .. })
    ));
    // A window (END_TIME − START_TIME = 600 s) longer than accepted.
    let short = VerifyPolicy {
        max_window: Duration::from_secs(599),
        ..pol.clone()
    };
    assert!(matches!(
        verify_pdu(&p, Profile::Rfc, &ring(), NOW, &short),
        Err(AuthError::WindowTooLong {
            window: 600,
            max: 599,
            ..
        })
    ));
    // Unsigned.
    let u = reserve_pdu(Profile::Rfc, &[], NOW);
    assert_eq!(
        verify_pdu(&u, Profile::Rfc, &ring(), NOW, &pol),
        Err(AuthError::Unsigned)
    );
}

#[test]
fn listed_but_absent_object_is_refused() {
    // List a type (BOUND_SESSION_ID, 0x004) the message does not carry.
    let src = Ipv4Addr::new(172, 1, 2, 1);
    let o = SessionAuthObject::hmac_template(
        AuthEntity::Fqdn("vnp".into()),
        None,
        None,
        NOW,
        None,
        &[0x004],
        1,
        Transform::HmacSha256_128,
        Profile::Rfc,
    );
    let mut m = NslpMessage::tear(1, 1, Some(1));
    m.objects
        .push(NslpObject::SessionAuth(o.to_bytes(Profile::Rfc)));
    let mut p = GistPdu::data(
        1,
        Mri::PathCoupled(PathCoupledMri::udp_v4(src, src)),
        [1; 16],
        None,
        m.to_bytes(Profile::Rfc),
    )
    .encode_udp()
    .unwrap();
    assert_eq!(
        sign_pdu(&mut p, Profile::Rfc, &ring()),
        Err(AuthError::ListedObjectMissing { obj_type: 0x004 })
    );
}

#[test]
fn one_object_per_provider() {
    let mut p = reserve_pdu(
        Profile::Rfc,
        &[(1, Transform::HmacSha256_128), (2, Transform::HmacSha1_96)],
        NOW,
    );
    // Each provider signs with its own key; neither sees the other's.
    let mut a = KeyRing::new();
    a.insert(1, KEY1, Transform::HmacSha256_128);
    let mut b = KeyRing::new();
    b.insert(2, KEY2, Transform::HmacSha1_96);
    assert_eq!(sign_pdu(&mut p, Profile::Rfc, &a).unwrap(), 1);
    assert_eq!(sign_pdu(&mut p, Profile::Rfc, &b).unwrap(), 1);
    let pol = VerifyPolicy::default();
    assert_eq!(
        verify_pdu(&p, Profile::Rfc, &a, NOW, &pol).unwrap().key_id,
        1
    );
    assert_eq!(
        verify_pdu(&p, Profile::Rfc, &b, NOW, &pol).unwrap().key_id,
        2
    );
    // Tampering with provider 2's object is caught by provider 2 only if
    // the tampered bytes are in its own object; provider 1 covers its own.
    let (_, nv) = scan(&p, Framing::Udp).unwrap();
    let second = nv.objs[..nv.n]
        .iter()
        .filter(|o| o.0 == SESSION_AUTH_TYPE)
        .nth(1)
        .unwrap();
    let mut q = p.clone();
    q[second.1 + 10] ^= 0x40;
    assert!(verify_pdu(&q, Profile::Rfc, &b, NOW, &pol).is_err());
}

/// Found by the `early_verify` fuzz target: an `nsis-ka` PDU whose
/// second authorization object is shorter than a MAC, and an END_TIME
/// near the end of time, once panicked.
#[test]
fn fuzz_regressions_are_errors_not_panics() {
    let keys = crate::wire::fixtures::sample_keyring(Transform::HmacSha256_128);
    for pdu in [
        &include_bytes!("../../../fuzz/regressions/early_verify-short-auth-object.bin")[..],
        // END_TIME near u64::MAX once overflowed the skew check.
        &include_bytes!("../../../fuzz/regressions/early_verify-end-time-overflow.bin")[..],
        // An `nsis-ka` object with attributes after AUTHENTICATION_DATA: its
        // MAC was fed into its own HMAC, so what sign_pdu signed never
        // verified. Such an object is now refused by both.
        &include_bytes!("../../../fuzz/regressions/early_verify-mac-not-last.bin")[..],
    ]
    .iter()
    .flat_map(|pdu| [Profile::Rfc, Profile::NsisKa].map(|p| (*pdu, p)))
    {
        let (pdu, p) = pdu;
        let _ = verify_pdu(pdu, p, &keys, NOW, &VerifyPolicy::default());
        let mut copy = pdu.to_vec();
        if sign_pdu(&mut copy, p, &keys).is_ok_and(|n| n > 0) {
            match verify_pdu(&copy, p, &keys, NOW, &VerifyPolicy::default()) {
                Ok(_)
                | Err(
                    AuthError::NotYetValid { .. }
                    | AuthError::Expired { .. }
                    | AuthError::WindowTooLong { .. }
                    | AuthError::EntityNotAccepted { .. },
                ) => {}
                Err(e) => panic!("what sign_pdu signed does not verify ({p}): {e}"),
            }
        }
    }
}

/// Known answer: the `nsis-ka` recipe spelled out by hand.
#[test]
fn nsis_ka_recipe_known_answer() {
    let p = signed(Profile::NsisKa);
    let (v, nv) = scan(&p, Framing::Udp).unwrap();
    let mut input = vec![];
    input.extend_from_slice(&p[4..6]);
    input.extend_from_slice(&p[v.mri.clone().unwrap()]);
    input.extend_from_slice(&p[v.sid.clone().unwrap()]);
    let o = |t: u16| nv.objs[..nv.n].iter().find(|o| o.0 == t).unwrap();
    input.extend_from_slice(&p[o(0x00b).1..o(0x00b).2]); // QSPEC
    input.extend_from_slice(&p[o(0x0fe).1..o(0x0fe).2]); // VLSP
    let a = o(SESSION_AUTH_TYPE);
    input.extend_from_slice(&p[a.1..a.2 - 20]);
    let mut m = Hmac::<Sha1>::new_from_slice(KEY1).unwrap();
    m.update(&input);
    assert_eq!(&p[a.2 - 20..a.2], &m.finalize().into_bytes()[..]);
}

proptest! {
    #[test]
    fn object_round_trip(entity in "[a-z%@.]{1,40}", key_id in any::<u32>(), listed in proptest::collection::vec(0u16..0xfff, 0..6), secs in 0u64..4_000_000_000u64) {
        for profile in [Profile::Rfc, Profile::NsisKa] {
            let o = SessionAuthObject::hmac_template(
                AuthEntity::Fqdn(entity.clone()), None, Some(Ipv4Addr::new(1, 2, 3, 4).into()),
                Timestamp { unix_secs: secs, frac: 0 }, None, &listed, key_id, Transform::HmacSha256_128, profile);
            let b = o.to_bytes(profile);
            prop_assert_eq!(SessionAuthObject::decode(&b, profile).unwrap(), o);
        }
    }

    #[test]
    fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = verify_pdu(&bytes, Profile::Rfc, &ring(), NOW, &VerifyPolicy::default());
        let _ = verify_pdu(&bytes, Profile::NsisKa, &ring(), NOW, &VerifyPolicy::default());
    }

    #[test]
    fn verify_never_panics_on_mutated_reserves(i in 0usize..300, x in any::<u8>()) {
        let mut p = signed(Profile::Rfc);
        let n = p.len();
        p[i % n] = x;
        let _ = verify_pdu(&p, Profile::Rfc, &ring(), NOW, &VerifyPolicy::default());
    }
}

#[test]
fn fields_too_small_for_their_values_are_refused() {
    let with = |attrs: Vec<Attr>| SessionAuthObject {
        ext: crate::wire::tlv::Extensibility::Forward,
        attrs,
    };
    let too_large = |o: SessionAuthObject| match o.try_to_bytes(Profile::NsisKa) {
        Err(crate::wire::tlv::WireError::TooLarge { what, field, .. }) => (what, field),
        r => panic!("expected TooLarge, got {r:?}"),
    };
    assert_eq!(
        too_large(with(vec![Attr::ObjectList(vec![1; 65_536])])),
        ("NSLP_OBJECT_LIST", "count")
    );
    assert_eq!(
        too_large(with(vec![Attr::Entity(AuthEntity::Fqdn(
            "x".repeat(65_532)
        ))])),
        ("SESSION_AUTH attribute", "Length")
    );
    assert_eq!(
        too_large(with(vec![Attr::Entity(AuthEntity::Fqdn(
            "x".repeat(16_380)
        ))])),
        ("SESSION_AUTH", "object length (bytes)")
    );
    // The largest that fits: 4 + 16 376 bytes of attribute = 4095 words.
    let b = with(vec![Attr::Entity(AuthEntity::Fqdn("x".repeat(16_376)))])
        .try_to_bytes(Profile::NsisKa)
        .unwrap();
    assert_eq!(&b[..8], &[0x80, 0x16, 0x0f, 0xff, 0x3f, 0xfc, 0x01, 0x03]);
}
