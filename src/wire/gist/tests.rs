use super::objects::*;
use super::pdu::*;
use super::*;
use crate::wire::tlv::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

const TB1: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 1);
const TB4: Ipv4Addr = Ipv4Addr::new(172, 3, 4, 4);

/// A Query as protocol.md §10 describes NSIS-ka's (with the paper's
/// addresses): hops 100, C+S+R, MRI IPv4 protocol 17, SID, NLI with
/// PI-length 16, TTL 103, RS-validity 30000 ms, 4-byte Query-Cookie.
#[rustfmt::skip]
pub(crate) static QUERY: [u8; 92] = [
    0x4e, 0x04, 0xbd, 0xa5,             // magic number
    0x01, 0x64, 0x00, 0x14,             // version 1, hops 100, 20 words
    0x00, 0x01, 0x80, 0xc0,             // NSLPID 1, C=1 type 0 (Query), S=1 R=1
    0x00, 0x00, 0x00, 0x04,             // MRI, 4 words
    0x00, 0x00, 0x48, 0x00,             //   MRM 0, N=0, IPv4, P=1
    172, 1, 2, 1,                       //   source tb1
    172, 3, 4, 4,                       //   destination tb4
    0x00, 0x00, 0x11, 0x00,             //   prefixes 0/0, protocol 17
    0x00, 0x01, 0x00, 0x04,             // Session-ID, 4 words
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x00, 0x02, 0x00, 0x07,             // NLI, 7 words
    0x10, 0x67, 0x40, 0x00,             //   PI-length 16, IP-TTL 103, IPv4
    0x00, 0x00, 0x75, 0x30,             //   RS-validity 30000 ms
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, // peer identity
    172, 1, 2, 1,                       //   interface address
    0x00, 0x05, 0x00, 0x01,             // Query-Cookie, 1 word
    0xc0, 0x0c, 0x1e, 0x01,
];

pub(crate) fn query() -> GistPdu {
    GistPdu {
        hops: 100,
        nslpid: 1,
        c: true,
        s: true,
        r: true,
        e: false,
        body: Body::Query {
            mri: Mri::PathCoupled(PathCoupledMri::udp_v4(TB1, TB4)),
            sid: [0x5a; 16],
            nli: Nli {
                peer_id: (1..=16).collect(),
                ip_ttl: 103,
                rs_validity_ms: 30_000,
                interface: TB1.into(),
            },
            query_cookie: vec![0xc0, 0x0c, 0x1e, 0x01],
            stack: None,
            nslp_data: None,
        },
        unknown: vec![],
    }
}

#[test]
fn deconstruct_query() {
    assert_eq!(GistPdu::decode_udp(&QUERY).unwrap(), query());
}

#[test]
fn construct_query() {
    assert_eq!(query().encode_udp().unwrap(), QUERY);
}

/// A D-mode Data carrying 8 bytes of NSLP data (hops 1, S only, NLI).
#[test]
fn data_round_trip_and_header() {
    let mut mri = PathCoupledMri::udp_v4(TB1, TB4);
    mri.upstream = true;
    let d = GistPdu::data(
        1,
        Mri::PathCoupled(mri),
        [1; 16],
        None,
        vec![0x03, 0, 0, 0, 0, 1, 0, 1],
    );
    let b = d.encode_udp().unwrap();
    assert_eq!(&b[4..12], &[0x01, 0x01, 0x00, 0x0d, 0x00, 0x01, 0x03, 0x80]);
    assert_eq!(&b[16..20], &[0x00, 0x00, 0x48, 0x20], "D flag set");
    assert_eq!(GistPdu::decode_udp(&b).unwrap(), d);
    let v = scan_udp(&b).unwrap();
    assert_eq!(&b[v.mri.unwrap()][..4], &[0, 0, 0, 4]);
    assert_eq!(&b[v.nslp_data.unwrap()], &[0x03, 0, 0, 0, 0, 1, 0, 1]);
}

#[test]
fn full_mri_v6_round_trip() {
    let m = Mri::PathCoupled(PathCoupledMri {
        nat: true,
        src: "2001:db8::1".parse().unwrap(),
        dst: "2001:db8::2".parse().unwrap(),
        src_prefix: 128,
        dst_prefix: 64,
        protocol: Some(6),
        ds_field: Some(46),
        flow_label: Some(0xabcde),
        spi: Some(0xdeadbeef),
        src_port: Some(5000),
        dst_port: None,
        upstream: false,
    });
    let mut out = vec![];
    m.encode_value(&mut out).unwrap();
    assert_eq!(out.len(), 4 + 32 + 4 + 4 + 4 + 4);
    assert_eq!(&out[0..4], &[0x00, 0x80, 0x6f, 0x80], "N; IPv6, P T F S A");
    assert_eq!(Mri::decode_value(&out).unwrap(), m);
}

#[test]
fn header_errors_are_typed() {
    // (byte, value, the object the error names)
    for (i, v, what) in [
        (4, 2, "GIST common header"), // version 2
        (0, 0, "GIST magic number"),  // magic broken
        (7, 0x16, "GIST PDU"),        // length says 22 words
    ] {
        let mut b = QUERY;
        b[i] = v;
        match GistPdu::decode_udp(&b) {
            Err(WireError::BadValue { what: w, .. } | WireError::BadLength { what: w, .. }) => {
                assert_eq!(w, what, "byte {i} = {v:#x}")
            }
            other => panic!("byte {i} = {v:#x}: {other:?}"),
        }
    }
    let mut b = QUERY;
    b[10] = 0x82; // Confirm with C
    b[11] = 0x80;
    assert!(GistPdu::decode_udp(&b).is_err());
    for n in 0..QUERY.len() {
        assert!(GistPdu::decode_udp(&QUERY[..n]).is_err(), "prefix {n}");
    }
}

#[test]
fn missing_and_unknown_objects() {
    // A Query without its cookie: drop the last object, fix the length.
    let mut b = QUERY[..84].to_vec();
    b[7] = 0x12;
    assert_eq!(
        GistPdu::decode_udp(&b).unwrap_err(),
        WireError::Missing {
            what: "GIST PDU",
            missing: "Query-Cookie"
        }
    );
    // An unknown AB=10 object is kept, AB=00 rejects, AB=11 is invalid.
    for (first, ok) in [(0x83u8, true), (0x03, false), (0xc3, false), (0x43, true)] {
        let mut b = QUERY.to_vec();
        b.extend_from_slice(&[first, 0xe8, 0x00, 0x01, 9, 9, 9, 9]);
        b[7] += 2;
        let r = GistPdu::decode_udp(&b);
        assert_eq!(r.is_ok(), ok, "AB byte {first:#x}");
        if first == 0x83 {
            let p = r.unwrap();
            assert_eq!(p.unknown.len(), 1);
            assert_eq!(p.encode_udp().unwrap(), b, "re-emitted bit for bit");
        }
    }
}

#[test]
fn error_reply_names_the_fault() {
    let mut b = QUERY;
    b[4] = 7;
    let e = GistPdu::decode_udp(&b).unwrap_err();
    let reply = GistPdu::error_reply(&b, &e, false).unwrap();
    let Body::Error { error, .. } = &reply.body else {
        panic!()
    };
    assert_eq!((error.class, error.code, error.subcode), (2, 1, 0));
    assert_eq!(error.header, b[4..12]);
    let bytes = reply.encode_udp().unwrap();
    assert_eq!(GistPdu::decode_udp(&bytes).unwrap(), reply);
}

/// Stack-Configuration-Data as NSIS-ka offers it: TCP on port 30000, MA
/// hold time 180 s.
fn tcp_30000() -> StackConfigData {
    StackConfigData {
        ma_hold_time_ms: 180_000,
        options: vec![MaOption {
            protocol: 1,
            profile: 1,
            d: false,
            data: vec![0x75, 0x30],
        }],
    }
}

fn data_with(nslp_data: Vec<u8>) -> GistPdu {
    GistPdu::data(
        1,
        Mri::PathCoupled(PathCoupledMri::udp_v4(TB1, TB4)),
        [1; 16],
        None,
        nslp_data,
    )
}

fn too_large(r: WireResult<Vec<u8>>) -> (&'static str, &'static str, usize) {
    match r {
        Err(WireError::TooLarge {
            what, field, value, ..
        }) => (what, field, value),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// NSLP-Data up to 4095 words is carried with its exact length; one byte
/// more is refused (it used to go out with a masked length field).
#[test]
fn nslp_data_longer_than_its_length_field_is_refused() {
    let b = data_with(vec![7; ObjectHeader::MAX_VALUE_LEN])
        .encode()
        .unwrap();
    let v = PduView::scan(&b, Framing::Tcp).unwrap();
    let d = v.nslp_data.unwrap();
    assert_eq!(d.len(), 16_380);
    assert_eq!(&b[d.start - 4..d.start], &[0x00, 0x08, 0x0f, 0xff]);
    let (what, _, value) = too_large(data_with(vec![7; 16_381]).encode());
    assert_eq!((what, value), ("NSLP-Data", 16_384));
}

#[test]
fn counts_that_do_not_fit_a_byte_are_refused() {
    let mut q = query();
    let Body::Query { nli, .. } = &mut q.body else {
        unreachable!()
    };
    nli.peer_id = vec![1; 256];
    assert_eq!(too_large(q.encode()).1, "PI-Length");

    let stack_with = |sp: StackProposal, sc: StackConfigData| {
        let mut q = query();
        let Body::Query { stack, .. } = &mut q.body else {
            unreachable!()
        };
        *stack = Some((sp, sc));
        q.encode()
    };
    let sc = StackConfigData {
        ma_hold_time_ms: 180_000,
        options: vec![],
    };
    let sp = StackProposal {
        profiles: vec![vec![1]; 256],
    };
    assert_eq!(too_large(stack_with(sp, sc.clone())).1, "Prof-Count");
    let sp = StackProposal {
        profiles: vec![vec![1; 256]],
    };
    assert_eq!(too_large(stack_with(sp, sc.clone())).1, "MA-field count");
    let one = StackProposal {
        profiles: vec![vec![1]],
    };
    let opt = MaOption {
        protocol: 1,
        profile: 1,
        d: false,
        data: vec![0; 256],
    };
    let sc2 = StackConfigData {
        ma_hold_time_ms: 1,
        options: vec![opt.clone()],
    };
    assert_eq!(
        too_large(stack_with(one.clone(), sc2)).1,
        "MA-protocol-option length"
    );
    let sc3 = StackConfigData {
        ma_hold_time_ms: 1,
        options: vec![
            MaOption {
                data: vec![],
                ..opt
            };
            256
        ],
    };
    assert_eq!(too_large(stack_with(one, sc3)).1, "MPO-Count");

    let err = |info: Vec<(u16, Vec<u8>)>, mri: Option<Vec<u8>>| {
        GistPdu::error(
            1,
            None,
            ErrorObject {
                class: 2,
                code: 1,
                subcode: 0,
                dmode: true,
                qmode: false,
                header: [1; 8],
                session_id: None,
                mri,
                info,
                comment: None,
            },
        )
    };
    assert_eq!(
        too_large(err(vec![(1, vec![]); 256], None).encode()).1,
        "Additional Information count"
    );
    assert_eq!(
        too_large(err(vec![], Some(vec![0; 1024])).encode()).1,
        "MRI length (words)"
    );
    err(vec![(1, vec![]); 255], Some(vec![0; 1020]))
        .encode()
        .unwrap();
}

#[test]
fn a_message_longer_than_65535_words_is_refused() {
    let mut d = data_with(vec![]);
    let mut big = vec![0x80, 0x7f, 0x0f, 0xff];
    big.resize(4 + 16_380, 0);
    d.unknown = vec![big; 17];
    assert_eq!(too_large(d.encode()).1, "Message Length (words)");
}

/// The C-mode Confirm of the NSIS-ka vectors carries both stack objects;
/// both survive a round trip (3 vectors re-encoded 28 bytes short before).
#[test]
fn confirm_keeps_both_stack_objects() {
    let mut q = query();
    let Body::Query { mri, sid, nli, .. } = q.body.clone() else {
        unreachable!()
    };
    q.c = false;
    q.r = false;
    q.hops = 1;
    q.body = Body::Confirm {
        mri,
        sid,
        nli,
        responder_cookie: Some(vec![9; 28]),
        stack_proposal: Some(StackProposal {
            profiles: vec![vec![1]],
        }),
        stack_config: Some(tcp_30000()),
        nslp_data: None,
    };
    let b = q.encode_framed(Framing::Tcp).unwrap();
    assert_eq!(GistPdu::decode_framed(&b, Framing::Tcp).unwrap(), q);
}

fn arb_v4() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 4]>().prop_map(|b| IpAddr::V4(b.into()))
}

pub(crate) fn arb_mri() -> impl Strategy<Value = Mri> {
    (
        (arb_v4(), arb_v4(), any::<u8>(), any::<u8>()),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(0u8..64),
        ),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
        ),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (src, dst, sp, dp),
                (protocol, ds_field),
                (spi, src_port, dst_port),
                (nat, upstream),
            )| {
                Mri::PathCoupled(PathCoupledMri {
                    nat,
                    src,
                    dst,
                    src_prefix: sp,
                    dst_prefix: dp,
                    protocol,
                    ds_field,
                    flow_label: None,
                    spi,
                    src_port,
                    dst_port,
                    upstream,
                })
            },
        )
}

fn arb_nli() -> impl Strategy<Value = Nli> {
    (
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<u8>(),
        any::<u32>(),
        arb_v4(),
    )
        .prop_map(|(peer_id, ip_ttl, rs_validity_ms, interface)| Nli {
            peer_id,
            ip_ttl,
            rs_validity_ms,
            interface,
        })
}

fn words(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<[u8; 4]>(), 1..max).prop_map(|v| v.concat())
}

fn arb_pdu() -> impl Strategy<Value = GistPdu> {
    (
        arb_mri(),
        any::<[u8; 16]>(),
        arb_nli(),
        words(8),
        proptest::option::of(words(40)),
        0u8..4,
        any::<u8>(),
    )
        .prop_map(|(mri, sid, nli, cookie, data, kind, hops)| {
            let body = match kind {
                0 => Body::Query {
                    mri,
                    sid,
                    nli,
                    query_cookie: cookie,
                    stack: None,
                    nslp_data: data,
                },
                1 => Body::Response {
                    mri,
                    sid,
                    nli,
                    query_cookie: cookie.clone(),
                    responder_cookie: Some(cookie),
                    stack: Some((
                        StackProposal {
                            profiles: vec![vec![1], vec![2, 1]],
                        },
                        tcp_30000(),
                    )),
                    nslp_data: data,
                },
                2 => Body::Confirm {
                    mri,
                    sid,
                    nli,
                    responder_cookie: Some(cookie),
                    stack_proposal: None,
                    stack_config: None,
                    nslp_data: data,
                },
                _ => Body::Data {
                    mri,
                    sid,
                    nli: Some(nli),
                    nslp_data: data.unwrap_or(cookie),
                },
            };
            GistPdu {
                hops,
                nslpid: 1,
                c: kind == 0,
                s: true,
                r: kind < 2,
                e: false,
                body,
                unknown: vec![],
            }
        })
}

proptest! {
    #[test]
    fn mri_round_trip(m in arb_mri()) {
        let mut out = vec![];
        m.encode_value(&mut out).unwrap();
        prop_assert_eq!(Mri::decode_value(&out).unwrap(), m);
    }

    #[test]
    fn nli_round_trip(n in arb_nli()) {
        let mut out = vec![];
        n.encode_value(&mut out).unwrap();
        prop_assert_eq!(Nli::decode_value(&out).unwrap(), n);
    }

    #[test]
    fn pdu_round_trip(p in arb_pdu()) {
        let b = p.encode_udp().unwrap();
        prop_assert_eq!(GistPdu::decode_udp(&b).unwrap(), p);
        prop_assert!(scan_udp(&b).is_ok());
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = GistPdu::decode_udp(&bytes);
        let _ = scan_udp(&bytes);
    }
}
