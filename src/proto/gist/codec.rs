//! Between the GIST machine's messages ([`machine::Msg`]) and the bytes of
//! UDP GIST PDUs ([`wire::GistPdu`]), with NSIS-ka's header conventions
//! (protocol.md §10): Queries with hops 100 and C+S+R, everything else
//! with hops 1 and S; Responses ask for a Confirm; D-mode Data carries an NLI.

use std::net::{IpAddr, Ipv4Addr};

use super::ma::Stack;
use super::machine::{Direction, Flow, Msg, Nli};
use crate::wire::gist::{
    Body, CommonHeader, ErrorObject, Framing, GistPdu, Header, MessageType, Mri, NSLPID_QOS,
    PathCoupledMri, PduView, error_class, error_code,
};
use crate::wire::tlv::{ObjectHeader, WireError, WireResult};

/// GIST hop count a Query starts with (NSIS-ka's QoS NSLP default).
pub const QUERY_HOPS: u8 = 100;

fn mri(flow: &Flow, dir: Direction) -> Mri {
    let mut m = PathCoupledMri::udp_v4(flow.src, flow.dst);
    m.protocol = Some(flow.protocol);
    m.upstream = dir == Direction::Upstream;
    Mri::PathCoupled(m)
}

fn wire_nli(n: &Nli) -> crate::wire::gist::Nli {
    crate::wire::gist::Nli {
        peer_id: n.peer_id.to_vec(),
        ip_ttl: n.ip_ttl,
        rs_validity_ms: n.rs_validity_ms,
        interface: n.addr.into(),
    }
}

fn machine_nli(n: &crate::wire::gist::Nli) -> WireResult<Nli> {
    let IpAddr::V4(addr) = n.interface else {
        return Err(WireError::BadValue {
            what: "NLI",
            detail: "IPv6 interface address (this testbed signals over IPv4)".into(),
        });
    };
    let mut peer_id = [0u8; 16];
    let l = n.peer_id.len().min(16);
    peer_id[..l].copy_from_slice(&n.peer_id[..l]);
    Ok(Nli {
        peer_id,
        ip_ttl: n.ip_ttl,
        rs_validity_ms: n.rs_validity_ms,
        addr,
    })
}

fn flow_of(m: &Mri) -> WireResult<(Flow, Direction)> {
    match m {
        Mri::PathCoupled(p) => match (p.src, p.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Ok((
                Flow {
                    src,
                    dst,
                    protocol: p.protocol.unwrap_or(0),
                },
                if p.upstream {
                    Direction::Upstream
                } else {
                    Direction::Downstream
                },
            )),
            _ => Err(WireError::BadValue {
                what: "MRI",
                detail: "IPv6 flow (this testbed signals over IPv4)".into(),
            }),
        },
        Mri::Other { mrm_id, .. } => Err(WireError::BadValue {
            what: "MRI",
            detail: format!("message routing method {mrm_id} (only path-coupled is supported)"),
        }),
    }
}

/// The UDP payload (magic number first) of `msg`. Panics only when `msg`
/// carries NSLP-Data longer than GIST can (16 380 bytes): callers that
/// cannot rule that out use [`try_encode`].
pub fn encode(msg: &Msg) -> Vec<u8> {
    try_encode(msg).expect("machine messages carry at most 16 380 bytes of NSLP-Data")
}

/// The UDP payload of `msg`, or the field that cannot carry it.
pub fn try_encode(msg: &Msg) -> WireResult<Vec<u8>> {
    encode_framed(msg, &Stack::default(), Framing::Udp)
}

/// `msg` with the Stack-Proposal / Stack-Configuration-Data of `stack`
/// (C-mode, [`super::ma`]), framed for UDP (magic number) or an MA (none).
/// Query and Response carry the two together or not at all.
pub fn encode_framed(msg: &Msg, stack: &Stack, framing: Framing) -> WireResult<Vec<u8>> {
    let both = stack.proposal.clone().zip(stack.config.clone());
    // Only the hop count and the C and R flags differ between messages.
    let (hops, c, r, body) = match msg {
        Msg::Query {
            flow,
            dir,
            sid,
            nli,
            query_cookie,
            nslp_data,
        } => (
            QUERY_HOPS,
            true,
            true,
            Body::Query {
                mri: mri(flow, *dir),
                sid: *sid,
                nli: wire_nli(nli),
                query_cookie: query_cookie.clone(),
                stack: both,
                nslp_data: nslp_data.clone(),
            },
        ),
        Msg::Response {
            flow,
            dir,
            sid,
            nli,
            query_cookie,
            responder_cookie,
        } => (
            1,
            false,
            true,
            Body::Response {
                mri: mri(flow, *dir),
                sid: *sid,
                nli: wire_nli(nli),
                query_cookie: query_cookie.clone(),
                responder_cookie: Some(responder_cookie.clone()),
                stack: both,
                nslp_data: None,
            },
        ),
        Msg::Confirm {
            flow,
            dir,
            sid,
            nli,
            responder_cookie,
        } => (
            1,
            false,
            false,
            Body::Confirm {
                mri: mri(flow, *dir),
                sid: *sid,
                nli: wire_nli(nli),
                responder_cookie: Some(responder_cookie.clone()),
                stack_proposal: stack.proposal.clone(),
                stack_config: stack.config.clone(),
                nslp_data: None,
            },
        ),
        Msg::Data {
            flow,
            dir,
            sid,
            nli,
            nslp_data,
        } => (
            1,
            false,
            false,
            Body::Data {
                mri: mri(flow, *dir),
                sid: *sid,
                nli: nli.as_ref().map(wire_nli),
                nslp_data: nslp_data.clone(),
            },
        ),
        Msg::NoRoutingState {
            flow,
            dir,
            sid,
            nli,
        } => {
            // The offending Data's MRI value (its D flag as it came) without
            // its TLV header, as the Error object carries it.
            let mut m = vec![];
            mri(flow, *dir).encode_value(&mut m)?;
            (
                1,
                false,
                false,
                Body::Error {
                    nli: Some(wire_nli(nli)),
                    error: ErrorObject {
                        class: error_class::PROTOCOL_ERROR,
                        code: error_code::NO_ROUTING_STATE,
                        subcode: 0,
                        dmode: true,
                        qmode: false,
                        // The header of the Data that found no state.
                        header: CommonHeader {
                            version: 1,
                            hops: 1,
                            length_words: 0,
                            nslpid: NSLPID_QOS,
                            c: false,
                            msg_type: MessageType::Data,
                            s: true,
                            r: false,
                            e: false,
                        }
                        .to_bytes(),
                        session_id: Some(*sid),
                        mri: Some(m),
                        info: vec![],
                        comment: None,
                    },
                },
            )
        }
    };
    GistPdu {
        hops,
        nslpid: NSLPID_QOS,
        c,
        s: true,
        r,
        e: false,
        body,
        unknown: vec![],
    }
    .encode_framed(framing)
}

/// Decodes a UDP payload into a machine message; `Ok(None)` for messages the
/// machine does not act on (MA-Hello, Errors other than No Routing State,
/// other NSLPs).
pub fn decode(buf: &[u8]) -> WireResult<Option<Msg>> {
    Ok(decode_framed(buf, Framing::Udp)?.map(|(m, _)| m))
}

/// [`decode`] for either framing, with the message's stack objects.
pub fn decode_framed(buf: &[u8], framing: Framing) -> WireResult<Option<(Msg, Stack)>> {
    let pdu = GistPdu::decode_framed(buf, framing)?;
    if pdu.nslpid != NSLPID_QOS {
        return Ok(None);
    }
    let mut st = Stack::default();
    let msg = match pdu.body {
        Body::Query {
            mri,
            sid,
            nli,
            query_cookie,
            stack,
            nslp_data,
        } => {
            st = split(stack);
            let (flow, dir) = flow_of(&mri)?;
            Msg::Query {
                flow,
                dir,
                sid,
                nli: machine_nli(&nli)?,
                query_cookie,
                nslp_data,
            }
        }
        Body::Response {
            mri,
            sid,
            nli,
            query_cookie,
            responder_cookie,
            stack,
            ..
        } => {
            st = split(stack);
            let (flow, dir) = flow_of(&mri)?;
            Msg::Response {
                flow,
                dir,
                sid,
                nli: machine_nli(&nli)?,
                query_cookie,
                responder_cookie: responder_cookie.unwrap_or_default(),
            }
        }
        Body::Confirm {
            mri,
            sid,
            nli,
            responder_cookie,
            stack_proposal,
            stack_config,
            ..
        } => {
            st = Stack {
                proposal: stack_proposal,
                config: stack_config,
            };
            let (flow, dir) = flow_of(&mri)?;
            Msg::Confirm {
                flow,
                dir,
                sid,
                nli: machine_nli(&nli)?,
                responder_cookie: responder_cookie.unwrap_or_default(),
            }
        }
        Body::Data {
            mri,
            sid,
            nli,
            nslp_data,
        } => {
            let (flow, dir) = flow_of(&mri)?;
            Msg::Data {
                flow,
                dir,
                sid,
                nli: nli.as_ref().map(machine_nli).transpose()?,
                nslp_data,
            }
        }
        Body::Error { nli, error } if error.code == error_code::NO_ROUTING_STATE => {
            let (Some(sid), Some(nli)) = (error.session_id, nli) else {
                return Ok(None);
            };
            // The machine acts on the session and the peer; the quoted MRI
            // is kept when there is one.
            let (flow, dir) = match error.mri {
                Some(m) => flow_of(&Mri::decode_value(&m)?)?,
                None => (
                    Flow {
                        src: Ipv4Addr::UNSPECIFIED,
                        dst: Ipv4Addr::UNSPECIFIED,
                        protocol: 0,
                    },
                    Direction::Downstream,
                ),
            };
            Msg::NoRoutingState {
                flow,
                dir,
                sid,
                nli: machine_nli(&nli)?,
            }
        }
        Body::Error { .. } | Body::MaHello { .. } => return Ok(None),
    };
    Ok(Some((msg, st)))
}

fn split(
    s: Option<(
        crate::wire::gist::StackProposal,
        crate::wire::gist::StackConfigData,
    )>,
) -> Stack {
    let (proposal, config) = s.unzip();
    Stack { proposal, config }
}

/// Whether an intercepted datagram is GIST for `nslpid` (magic number and
/// header), so that anything else is forwarded untouched.
pub fn is_gist_for(payload: &[u8], nslpid: u16) -> bool {
    Header::new_checked(payload, Framing::Udp).is_ok_and(|h| h.nslpid() == nslpid)
}

/// For a Data PDU whose flow ends here (downstream: destination is local;
/// upstream: source is local), the session id: this node is an end of the
/// virtual link and verifies the authorization early. `None` otherwise.
pub fn auth_relevant(payload: &[u8], local: &[Ipv4Addr]) -> Option<[u8; 16]> {
    auth_relevant_framed(payload, Framing::Udp, local)
}

/// [`auth_relevant`] for either framing (an MA carries no magic number).
pub fn auth_relevant_framed(
    payload: &[u8],
    framing: Framing,
    local: &[Ipv4Addr],
) -> Option<[u8; 16]> {
    let v = PduView::scan(payload, framing).ok()?;
    // A Query carries NSLP data only in the optional `data_in_query` mode.
    let with_data = v.header.msg_type == MessageType::Query && v.nslp_data.is_some();
    if v.header.msg_type != MessageType::Data && !with_data {
        return None;
    }
    let (flow, dir) =
        flow_of(&Mri::decode_value(&payload[v.mri?][ObjectHeader::LEN..]).ok()?).ok()?;
    let end = match dir {
        Direction::Upstream => flow.src,
        Direction::Downstream => flow.dst,
    };
    if !local.contains(&end) {
        return None;
    }
    payload[v.sid?][ObjectHeader::LEN..].try_into().ok()
}

/// The GIST Error answering a datagram that failed to decode, if one is due.
pub fn error_reply(payload: &[u8], err: &WireError) -> Option<Vec<u8>> {
    // Never answer an Error with an Error.
    if Header::new_checked(payload, Framing::Udp)
        .is_ok_and(|h| h.type_code() == MessageType::Error.to_u8())
    {
        return None;
    }
    GistPdu::error_reply(payload, err, true).and_then(|p| p.encode_udp().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(172, 1, 2, 1);
    const FLOW: Flow = Flow {
        src: A,
        dst: Ipv4Addr::new(172, 3, 4, 4),
        protocol: 17,
    };

    fn nli() -> Nli {
        Nli {
            peer_id: [7; 16],
            ip_ttl: 64,
            rs_validity_ms: 30_000,
            addr: A,
        }
    }

    #[test]
    fn every_machine_message_round_trips() {
        let msgs = vec![
            Msg::Query {
                flow: FLOW,
                dir: Direction::Downstream,
                sid: [1; 16],
                nli: nli(),
                query_cookie: vec![1, 2, 3, 4],
                nslp_data: None,
            },
            Msg::Query {
                flow: FLOW,
                dir: Direction::Downstream,
                sid: [1; 16],
                nli: nli(),
                query_cookie: vec![1, 2, 3, 4],
                nslp_data: Some(vec![1, 0, 0, 0, 9, 9, 9, 9]),
            },
            Msg::Response {
                flow: FLOW,
                dir: Direction::Downstream,
                sid: [1; 16],
                nli: nli(),
                query_cookie: vec![1, 2, 3, 4],
                responder_cookie: vec![9; 16],
            },
            Msg::Confirm {
                flow: FLOW,
                dir: Direction::Downstream,
                sid: [1; 16],
                nli: nli(),
                responder_cookie: vec![9; 16],
            },
            Msg::Data {
                flow: FLOW,
                dir: Direction::Upstream,
                sid: [1; 16],
                nli: Some(nli()),
                nslp_data: vec![3, 0, 0, 0],
            },
        ];
        for m in msgs {
            let b = encode(&m);
            assert!(is_gist_for(&b, NSLPID_QOS));
            assert_eq!(decode(&b).unwrap(), Some(m));
        }
        // Query header as NSIS-ka sends it.
        let q = encode(&Msg::Query {
            flow: FLOW,
            dir: Direction::Downstream,
            sid: [1; 16],
            nli: nli(),
            query_cookie: vec![1, 2, 3, 4],
            nslp_data: None,
        });
        assert_eq!(q[4..6], [0x01, 0x64]);
        assert_eq!(q[10..12], [0x80, 0xc0]);
    }

    #[test]
    fn no_routing_state_round_trips_and_is_never_answered() {
        let m = Msg::NoRoutingState {
            flow: FLOW,
            dir: Direction::Upstream,
            sid: [2; 16],
            nli: nli(),
        };
        let b = encode(&m);
        assert_eq!(decode(&b).unwrap(), Some(m), "flow and D flag kept");
        // A peer's Error without the offending MRI is still acted on.
        let mut pdu = GistPdu::decode_udp(&b).unwrap();
        let Body::Error { error, .. } = &mut pdu.body else {
            panic!()
        };
        error.mri = None;
        let Some(Msg::NoRoutingState { sid, flow, .. }) =
            decode(&pdu.encode_udp().unwrap()).unwrap()
        else {
            panic!("No Routing State without MRI")
        };
        assert_eq!((sid, flow.dst), ([2; 16], Ipv4Addr::UNSPECIFIED));
        assert!(
            error_reply(
                &b,
                &WireError::Trailing {
                    what: "x",
                    extra: 1
                }
            )
            .is_none()
        );
    }

    #[test]
    fn ends_verify_and_intermediates_do_not() {
        let d = encode(&Msg::Data {
            flow: FLOW,
            dir: Direction::Downstream,
            sid: [3; 16],
            nli: None,
            nslp_data: vec![1, 0, 0, 0],
        });
        assert_eq!(auth_relevant(&d, &[FLOW.dst]), Some([3; 16]));
        assert_eq!(auth_relevant(&d, &[Ipv4Addr::new(172, 2, 3, 3)]), None);
        let up = encode(&Msg::Data {
            flow: FLOW,
            dir: Direction::Upstream,
            sid: [3; 16],
            nli: None,
            nslp_data: vec![3, 0, 0, 0],
        });
        assert_eq!(auth_relevant(&up, &[A]), Some([3; 16]));
        assert_eq!(auth_relevant(&up, &[FLOW.dst]), None);
    }

    #[test]
    fn nslp_data_too_long_for_gist_is_refused_not_masked() {
        let data = |n| Msg::Data {
            flow: FLOW,
            dir: Direction::Downstream,
            sid: [3; 16],
            nli: None,
            nslp_data: vec![1; n],
        };
        let ok = try_encode(&data(16_380)).unwrap();
        assert_eq!(decode(&ok).unwrap(), Some(data(16_380)));
        assert!(matches!(
            try_encode(&data(16_381)),
            Err(WireError::TooLarge {
                what: "NSLP-Data",
                ..
            })
        ));
    }
}
