//! GIST C-mode (RFC 5971 §4.4.3, §5.7): messaging associations (MAs) over
//! TCP, sans-IO. It sits beside the handshake [`machine`](super::machine),
//! which stays transport-blind: every message the machine receives passes
//! [`Cmode::inbound`] first, and every message it sends passes
//! [`Cmode::outbound`], which decides whether it leaves over UDP or over an
//! MA (opening one when needed) and which Stack-Proposal and
//! Stack-Configuration-Data it carries. The runtime owns the sockets and
//! follows [`MaAction`]s.
//!
//! The exchange, as NSIS-ka does it (protocol.md §2.9, §2.14, the
//! `nsiska-both-cmode-4node` vectors):
//! - the querier's Query proposes {TCP} and {TLS, TCP}, with no port;
//! - a responder that accepts answers (over UDP) with a Stack-Proposal
//!   {TCP} and the port it listens on;
//! - the querier opens a TCP MA to that port unless one to that peer is
//!   open already, and sends the Confirm (echoing the responder's
//!   Stack-Proposal) as the MA's first message, then its Data over it;
//! - later Data for any session with that peer travel over the same MA, in
//!   both directions, without an NLI;
//! - an MA that carried nothing for its hold time is closed.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::machine::{Msg, Sid, Transmit};
use crate::wire::gist::{MaOption, StackConfigData, StackProposal};

/// NSIS-ka's TCP port for messaging associations.
pub const MA_PORT: u16 = 30_000;
/// MA-Hold-Time NSIS-ka announces (180 s).
pub const MA_HOLD: Duration = Duration::from_secs(180);
/// MA-Protocol-ID of Forwards-TCP (RFC 5971 §5.7).
pub const PROTO_TCP: u8 = 1;
/// MA-Protocol-ID of TLS.
pub const PROTO_TLS: u8 = 2;
/// A proposal or offer no handshake used for this long is forgotten (a
/// retransmitted Query can draw Responses that no Confirm follows).
const STALE: Duration = Duration::from_secs(64);

/// Stack-Proposal and Stack-Configuration-Data of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stack {
    pub proposal: Option<StackProposal>,
    pub config: Option<StackConfigData>,
}

/// How a message leaves the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// A UDP datagram (Q-mode or D-mode), magic number first.
    Udp,
    /// The TCP MA whose far end is this address (no magic number).
    Ma(SocketAddrV4),
}

/// Socket work for the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaAction {
    /// Connect to the peer's MA port; messages for it follow as
    /// [`Via::Ma`] and wait until the connection is up.
    Open(SocketAddrV4),
    /// Close the MA (its hold time ran out).
    Close(SocketAddrV4),
}

/// C-mode settings of one node.
#[derive(Debug, Clone)]
pub struct MaConfig {
    /// Propose C-mode in our Queries (topology `gist_mode = "c"`).
    pub propose: bool,
    /// The TCP port we accept MAs on.
    pub port: u16,
    /// Close an MA unused for this long (announced as MA-Hold-Time).
    pub hold: Duration,
}

impl Default for MaConfig {
    fn default() -> Self {
        Self {
            propose: false,
            port: MA_PORT,
            hold: MA_HOLD,
        }
    }
}

/// A message leaving, with its transport and stack objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub t: Transmit,
    pub via: Via,
    pub stack: Stack,
}

#[derive(Debug)]
struct Ma {
    remote: SocketAddrV4,
    last_used: Instant,
}

/// The node's MAs and the C-mode offers of handshakes in progress.
#[derive(Debug, Default)]
pub struct Cmode {
    cfg: MaConfig,
    /// Open (or opening) MAs by the peer's NLI address.
    by_peer: HashMap<Ipv4Addr, Ma>,
    /// Sessions whose Query proposed TCP (our Response accepts), and when.
    proposed: HashMap<Sid, Instant>,
    /// Sessions whose Response offered an MA: where, the responder's
    /// Stack-Proposal the Confirm echoes, and when.
    offers: HashMap<Sid, (SocketAddrV4, StackProposal, Instant)>,
    actions: VecDeque<MaAction>,
}

/// The Stack-Proposal of NSIS-ka's Queries: {TCP} and {TLS, TCP}.
pub fn query_proposal() -> StackProposal {
    StackProposal {
        profiles: vec![vec![PROTO_TCP], vec![PROTO_TLS, PROTO_TCP]],
    }
}

/// The Stack-Configuration-Data of NSIS-ka's Queries: TCP for both
/// profiles, no port (the querier does not listen for this MA).
pub fn query_config(hold: Duration) -> StackConfigData {
    StackConfigData {
        ma_hold_time_ms: hold_ms(hold),
        options: (1..=2)
            .map(|profile| MaOption {
                protocol: PROTO_TCP,
                profile,
                d: false,
                data: vec![],
            })
            .collect(),
    }
}

fn hold_ms(hold: Duration) -> u32 {
    hold.as_millis().min(u32::MAX as u128) as u32
}

/// The TCP port a responder offers in `stack`, if it offers TCP.
pub fn offered_tcp_port(stack: &Stack) -> Option<u16> {
    let sc = stack.config.as_ref()?;
    sc.options
        .iter()
        .find(|o| o.protocol == PROTO_TCP && o.data.len() >= 2)
        .map(|o| u16::from_be_bytes([o.data[0], o.data[1]]))
}

/// Whether a Query's `stack` proposes a profile we can serve (plain TCP).
pub fn proposes_tcp(stack: &Stack) -> bool {
    stack
        .proposal
        .as_ref()
        .is_some_and(|p| p.profiles.iter().any(|pr| pr.as_slice() == [PROTO_TCP]))
}

impl Cmode {
    pub fn new(cfg: MaConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Notes what a received message says about MAs; call it before the
    /// machine handles the message. `via` is how it arrived.
    pub fn inbound(&mut self, now: Instant, via: Via, msg: &Msg, stack: &Stack) {
        if let Via::Ma(remote) = via {
            self.touch(remote, now);
        }
        match msg {
            Msg::Query { sid, .. } if proposes_tcp(stack) => {
                self.proposed.retain(|_, t| now.duration_since(*t) < STALE);
                self.proposed.insert(*sid, now);
            }
            Msg::Response { sid, nli, .. } => {
                if let (Some(port), Some(sp)) = (offered_tcp_port(stack), &stack.proposal) {
                    self.offers.retain(|_, o| now.duration_since(o.2) < STALE);
                    self.offers
                        .insert(*sid, (SocketAddrV4::new(nli.addr, port), sp.clone(), now));
                }
            }
            // A Confirm on an MA binds it to the querier: our Data for that
            // peer use it from now on.
            Msg::Confirm { nli, .. } => {
                if let Via::Ma(remote) = via {
                    self.by_peer.entry(nli.addr).or_insert(Ma {
                        remote,
                        last_used: now,
                    });
                }
            }
            _ => {}
        }
    }

    /// Routes a message the machine sends, adding its stack objects.
    pub fn outbound(&mut self, now: Instant, mut t: Transmit) -> Outgoing {
        let mut stack = Stack::default();
        let mut via = Via::Udp;
        match &mut t.msg {
            Msg::Query { .. } if self.cfg.propose => {
                stack.proposal = Some(query_proposal());
                stack.config = Some(query_config(self.cfg.hold));
            }
            // Accept the querier's proposal: TCP, on our port.
            Msg::Response { sid, .. } if self.proposed.remove(sid).is_some() => {
                stack.proposal = Some(StackProposal {
                    profiles: vec![vec![PROTO_TCP]],
                });
                stack.config = Some(StackConfigData {
                    ma_hold_time_ms: hold_ms(self.cfg.hold),
                    options: vec![MaOption {
                        protocol: PROTO_TCP,
                        profile: 1,
                        d: false,
                        data: self.cfg.port.to_be_bytes().to_vec(),
                    }],
                });
            }
            Msg::Confirm { sid, .. } => {
                if let Some((remote, sp, _)) = self.offers.remove(sid) {
                    let peer = *remote.ip();
                    if let Some(ma) = self.by_peer.get_mut(&peer) {
                        ma.last_used = now;
                        via = Via::Ma(ma.remote);
                    } else {
                        self.actions.push_back(MaAction::Open(remote));
                        self.by_peer.insert(
                            peer,
                            Ma {
                                remote,
                                last_used: now,
                            },
                        );
                        via = Via::Ma(remote);
                        // A new MA: the Confirm echoes the responder's
                        // proposal and gives our hold time.
                        stack.proposal = Some(sp);
                        stack.config = Some(StackConfigData {
                            ma_hold_time_ms: hold_ms(self.cfg.hold),
                            options: vec![],
                        });
                    }
                } else if let Some(ma) = self.by_peer.get_mut(t.dst.ip()) {
                    // A refresh handshake with a peer we share an MA with
                    // (NSIS-ka then answers on the MA, without an offer).
                    ma.last_used = now;
                    via = Via::Ma(ma.remote);
                }
            }
            Msg::Data { nli, .. } => {
                if let Some(ma) = self.by_peer.get_mut(t.dst.ip()) {
                    ma.last_used = now;
                    via = Via::Ma(ma.remote);
                    // C-mode Data carry no NLI: the MA names the peer.
                    *nli = None;
                }
            }
            _ => {}
        }
        Outgoing { t, via, stack }
    }

    fn touch(&mut self, remote: SocketAddrV4, now: Instant) {
        for ma in self.by_peer.values_mut().filter(|m| m.remote == remote) {
            ma.last_used = now;
        }
    }

    /// The runtime lost the MA to `remote` (closed by the peer, or it
    /// could not connect): later messages go over UDP or a new MA.
    pub fn closed(&mut self, remote: SocketAddrV4) {
        self.by_peer.retain(|_, m| m.remote != remote);
    }

    /// When the next MA's hold time runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.by_peer
            .values()
            .map(|m| m.last_used + self.cfg.hold)
            .min()
    }

    /// Closes the MAs unused for their hold time.
    pub fn handle_timeout(&mut self, now: Instant) {
        let hold = self.cfg.hold;
        let actions = &mut self.actions;
        self.by_peer.retain(|_, m| {
            let keep = m.last_used + hold > now;
            if !keep {
                actions.push_back(MaAction::Close(m.remote));
            }
            keep
        });
    }

    pub fn poll_action(&mut self) -> Option<MaAction> {
        self.actions.pop_front()
    }

    /// The far ends of the open MAs, by peer.
    pub fn associations(&self) -> impl Iterator<Item = (Ipv4Addr, SocketAddrV4)> + '_ {
        self.by_peer.iter().map(|(p, m)| (*p, m.remote))
    }
}

#[cfg(test)]
#[path = "ma_tests.rs"]
mod tests;
