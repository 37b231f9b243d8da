use super::info_spec::*;
use super::objects::*;
use super::*;
use crate::wire::tlv::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

const TB4: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 4);

/// A RESPONSE as NSIS-ka sends it (protocol.md §10): header, RII,
/// INFO_SPEC success with an IPv4-mapped IPv6 ESI and its text.
static NSIS_KA_RESPONSE: [u8; 60] = [
    0x03, 0x00, 0x00, 0x00, // RESPONSE, no flags
    0x00, 0x01, 0x00, 0x01, // RII, 1 word
    0x12, 0x34, 0x56, 0x78, //   RII value
    0x00, 0x06, 0x00, 0x0b, // INFO_SPEC, 11 words
    0x00, 0x01, 0x22, 0x04, //   code 1, class 2 (success), ESI type 2, 4 words
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 172, 3, 4, 4, // ::ffff:172.3.4.4
    b'R', b'e', b's', b'e', b'r', b'v', b'a', b't', b'i', b'o', b'n', b' ', b's', b'u', b'c', b'c',
    b'e', b's', b's', b'f', b'u', b'l', 0, 0, // "Reservation successful", padded
];

#[test]
fn deconstruct_nsis_ka_response() {
    let m = NslpMessage::decode(&NSIS_KA_RESPONSE, Profile::NsisKa).unwrap();
    assert_eq!(m.msg_type, MsgType::Response);
    assert_eq!(m.rii(), Some(0x1234_5678));
    let i = m.info_spec().unwrap();
    assert!(i.is_success());
    assert_eq!(i.code, 1);
    assert_eq!(i.origin(), "172.3.4.4");
    assert_eq!(i.text(), "Reservation successful");
}

#[test]
fn construct_nsis_ka_response() {
    let m = NslpMessage::response(
        Some(0x1234_5678),
        None,
        InfoSpec::reservation_successful(TB4),
        None,
    );
    assert_eq!(m.to_bytes(Profile::NsisKa), NSIS_KA_RESPONSE);
}

/// A full RESERVE, rfc profile: RSN, RII, REFRESH_PERIOD, PACKET_CLASSIFIER,
/// QSPEC, VLSP, and a SESSION_AUTH placeholder carried raw.
fn full_reserve() -> NslpMessage {
    let mut m = NslpMessage::reserve(
        0,
        7,
        Some(0xa1b2_c3d4),
        Some(Duration::from_secs(30)),
        Some(Qspec::bandwidth_request(125_000.0, Profile::Rfc)),
        Some(VlspObject {
            vnet_id: 1,
            src_vnode: 2,
            dst_vnode: 3,
            src_vif: 4,
            dst_vif: 5,
            vlink_id: 6,
            tunnel_type: crate::wire::vlsp::TunnelType::Vxlan,
        }),
    );
    m.objects.push(NslpObject::SessionAuth(vec![
        0x80, 0x16, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef,
    ]));
    m
}

#[test]
fn construct_full_reserve_bytes() {
    let b = full_reserve().to_bytes(Profile::Rfc);
    #[rustfmt::skip]
    let head: [u8; 36] = [
        0x01, 0x00, 0x00, 0x00, // RESERVE
        0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // RSN 0, epoch 7
        0x00, 0x01, 0x00, 0x01, 0xa1, 0xb2, 0xc3, 0xd4, // RII
        0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30, // REFRESH_PERIOD 30000 ms
        0x00, 0x05, 0x00, 0x01, // PACKET_CLASSIFIER header
    ];
    assert_eq!(&b[..36], &head);
    assert_eq!(&b[36..40], &[0x04, 0, 0, 0], "S flag in the top byte (rfc)");
    assert_eq!(&b[40..44], &[0x00, 0x0b, 0x00, 0x0a], "QSPEC, 10 words");
    assert_eq!(
        &b[84..88],
        &[0x87, 0xd0, 0x00, 0x13],
        "VLSP, forward, 19 words"
    );
    assert_eq!(&b[164..], &[0x80, 0x16, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(
        NslpMessage::decode(&b, Profile::Rfc).unwrap(),
        full_reserve()
    );
}

#[test]
fn nsis_ka_layouts_of_refresh_and_classifier() {
    let b = full_reserve().to_bytes(Profile::NsisKa);
    assert_eq!(
        &b[24..32],
        &[0x00, 0x03, 0x00, 0x01, 0, 0, 0, 30],
        "seconds"
    );
    assert_eq!(
        &b[32..40],
        &[0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x04, 0x00]
    );
    let tear = NslpMessage::tear(1, 7, None).to_bytes(Profile::NsisKa);
    assert_eq!(&tear[..4], &[0x01, 0x02, 0x00, 0x00]);
}

#[test]
fn unknown_objects_follow_their_extensibility_bits() {
    let mut b = NslpMessage::tear(1, 7, None).to_bytes(Profile::Rfc);
    let forward = [0x87, 0xff, 0x00, 0x01, 1, 2, 3, 4]; // AB=10, type 0x7ff
    let ignore = [0x47, 0xfe, 0x00, 0x01, 9, 9, 9, 9]; // AB=01
    b.extend_from_slice(&forward);
    b.extend_from_slice(&ignore);
    let m = NslpMessage::decode(&b, Profile::Rfc).unwrap();
    assert_eq!(
        m.objects.last(),
        Some(&NslpObject::Unknown(forward.to_vec()))
    );
    assert_eq!(m.objects.len(), 2, "the AB=01 object is dropped");
    let re = m.to_bytes(Profile::Rfc);
    assert_eq!(&re[re.len() - 8..], &forward, "forwarded bit for bit");
    // AB=00: the message is rejected, and the answer says why.
    let mut bad = NslpMessage::tear(1, 7, None).to_bytes(Profile::Rfc);
    bad.extend_from_slice(&[0x07, 0xfd, 0x00, 0x00]);
    let e = NslpMessage::decode(&bad, Profile::Rfc).unwrap_err();
    assert_eq!(
        e,
        WireError::UnknownMandatory {
            what: "QoS NSLP message",
            obj_type: 0x7fd
        }
    );
    let i = info_spec_for(&e, TB4);
    assert_eq!((i.class, i.code), (InfoClass::ProtocolError, 0x07));
}

#[test]
fn malformed_messages_are_typed() {
    let b = full_reserve().to_bytes(Profile::Rfc);
    for n in 0..b.len() {
        // Every truncation that cuts an object is an error, never a panic.
        let r = NslpMessage::decode(&b[..n], Profile::Rfc);
        if n < 4 {
            assert!(r.is_err());
        }
    }
    let mut dup = NslpMessage::tear(1, 7, Some(5)).to_bytes(Profile::Rfc);
    dup.extend_from_slice(&[0x00, 0x01, 0x00, 0x01, 0, 0, 0, 6]);
    assert!(matches!(
        NslpMessage::decode(&dup, Profile::Rfc),
        Err(WireError::Duplicate { obj_type: 1, .. })
    ));
    let mut badrii = vec![0x01, 0, 0, 0];
    badrii.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2]);
    assert!(matches!(
        NslpMessage::decode(&badrii, Profile::Rfc),
        Err(WireError::BadLength {
            what: "RII",
            len: 8,
            ..
        })
    ));
    assert!(matches!(
        NslpMessage::decode(&[9, 0, 0, 0], Profile::Rfc),
        Err(WireError::BadValue { .. })
    ));
}

#[test]
fn break_flag_placement_differs_by_profile() {
    let mut m = NslpMessage::tear(1, 1, None);
    m.flags.break_ = true;
    assert_eq!(&m.to_bytes(Profile::Rfc)[..4], &[0x01, 0x02, 0x00, 0x08]);
    assert_eq!(&m.to_bytes(Profile::NsisKa)[..4], &[0x01, 0x0a, 0x00, 0x00]);
    for p in [Profile::Rfc, Profile::NsisKa] {
        assert_eq!(NslpMessage::decode(&m.to_bytes(p), p).unwrap(), m);
    }
}

fn arb_msg() -> impl Strategy<Value = NslpMessage> {
    (
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(0u64..1_000_000),
        proptest::option::of(crate::wire::qspec::tests::arb_qspec()),
        proptest::option::of(crate::wire::vlsp::tests::arb_vlsp()),
        any::<bool>(),
    )
        .prop_map(|(rsn, epoch, rii, refresh, q, v, tear)| {
            let mut m =
                NslpMessage::reserve(rsn, epoch, rii, refresh.map(Duration::from_secs), q, v);
            m.flags.tear = tear;
            m
        })
}

proptest! {
    #[test]
    fn round_trip(m in arb_msg(), nsis in any::<bool>()) {
        let p = if nsis { Profile::NsisKa } else { Profile::Rfc };
        let mut m = m;
        if p == Profile::NsisKa {
            // NSIS-ka's TMOD-1 has no MPS.
            for o in &mut m.objects {
                if let NslpObject::Qspec(q) = o {
                    for obj in &mut q.objects {
                        for par in &mut obj.params {
                            if let crate::wire::qspec::ParamValue::Tmod1(t) = &mut par.value {
                                t.max_packet_size = None;
                            }
                        }
                    }
                }
            }
        }
        let b = m.to_bytes(p);
        prop_assert_eq!(NslpMessage::decode(&b, p).unwrap(), m);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = NslpMessage::decode(&bytes, Profile::Rfc);
        let _ = NslpMessage::decode(&bytes, Profile::NsisKa);
    }
}

#[test]
fn objects_too_long_for_their_length_field_are_refused() {
    let mut m = NslpMessage::tear(1, 0, Some(2));
    m.objects
        .push(NslpObject::SessionIdList(vec![[0; 16]; 1024]));
    match m.try_to_bytes(Profile::Rfc) {
        Err(WireError::TooLarge { what, value, .. }) => {
            assert_eq!((what, value), ("QoS NSLP object", 16_384))
        }
        r => panic!("expected TooLarge, got {r:?}"),
    }
    m.objects.pop();
    m.objects
        .push(NslpObject::SessionIdList(vec![[0; 16]; 1023]));
    let b = m.try_to_bytes(Profile::Rfc).unwrap();
    assert_eq!(
        &b[b.len() - 16_372..b.len() - 16_368],
        &[0x00, 0x07, 0x0f, 0xfc]
    );
}

/// The inputs the `nslp_decode` fuzz target crashed on: decode -> encode ->
/// decode now gives an equal value in both profiles.
#[test]
fn fuzz_regressions_round_trip() {
    for (name, data) in [
        (
            "negative-rate",
            &include_bytes!("../../../fuzz/regressions/nslp_decode-negative-rate.bin")[..],
        ),
        (
            "nsis-ka-drops-decoded-mps",
            &include_bytes!("../../../fuzz/regressions/nslp_decode-nsis-ka-drops-decoded-mps.bin")
                [..],
        ),
        (
            "mapped-esi",
            &include_bytes!("../../../fuzz/regressions/nslp_decode-mapped-esi.bin")[..],
        ),
    ] {
        for p in [Profile::Rfc, Profile::NsisKa] {
            if let Ok(m) = NslpMessage::decode(data, p) {
                let b = m.try_to_bytes(p).expect("a decoded message encodes");
                let again = NslpMessage::decode(&b, p).expect("re-decodes");
                assert_eq!(format!("{again:?}"), format!("{m:?}"), "{name} ({p})");
            }
        }
    }
}

/// RFC 5974 §5.1.3.6: Reserved, Error Code, Error Class (4 bits) | ESI-Type
/// (4 bits), ESI-Length. "No route" is Transient Failure (class 4) with an
/// experimental code (0x80, §6.4), IPv4 ESI (type 1, one word).
#[test]
fn no_route_is_a_retryable_transient_failure() {
    let i = InfoSpec::no_route(TB4);
    let mut out = vec![];
    i.encode_value(Profile::Rfc, &mut out).unwrap();
    assert_eq!(out[..8], [0x00, 0x80, 0x41, 0x01, 172, 3, 4, 4]);
    assert!(i.is_retryable());
    assert_eq!(i.reason(), "no_route");
    assert_eq!(InfoSpec::decode_value(&out).unwrap(), i);
    assert!(!InfoSpec::reservation_failure(TB4, "no bandwidth").is_retryable());
    assert!(!InfoSpec::path_truncated(TB4).is_retryable());
}
