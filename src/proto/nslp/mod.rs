//! The QoS NSLP reservation logic with the VLSP extension (RFC 5974 §5;
//! paper §III-C and Fig. 6), sans-IO: API requests, received NSLP messages,
//! tunnel-end completions and the current time go in; messages to send,
//! tunnel-end work, API replies and events come out.
//!
//! Roles per session, as the paper's Fig. 6 assigns them:
//! - **QNI** (the node hosting the source virtual node, tb1): creates the
//!   session, sends the RESERVE with RII, RSN, REFRESH_PERIOD, QSPEC, VLSP and
//!   Session Authorization, retransmits it (2 s, doubling, up to 30 s), and on
//!   a successful RESPONSE sets up its own tunnel end ([H]) and answers the
//!   external program ([A]). It refreshes the reservation every R and declares
//!   the link lost if a refresh goes unanswered for R.
//! - **QNE** (tb2, tb3): admission control on the egress link towards the
//!   flow's destination; refuses with INFO_SPEC "Reservation failure" and keeps
//!   nothing, or keeps the reservation pending and forwards the RESERVE with
//!   its own RSN and the VLSP and authorization objects untouched. The
//!   RESPONSE from downstream commits or frees the reservation.
//! - **QNR** (the node whose address is the flow's destination, tb4): refuses
//!   unauthorized requests (INFO_SPEC "Authorization failure") before
//!   touching any state, sets up its tunnel end ([C]) and answers.
//!
//! Soft state: QNE and QNR state expires after `lifetime` without a refresh
//! (the virtual link is removed and an event raised).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::measure::PointKind;
use crate::model::units::Rate;
use crate::proto::gist::machine::{Direction, Flow, Sid};
use crate::proto::rmf::{AdmitError, Classifier, Ledger};
use crate::wire::nslp::{BindingCode, InfoSpec, MsgType, NslpMessage};
use crate::wire::vlsp::VlspObject;

mod admission;
mod contract;
mod egress;
mod qne;
mod qni;
mod qnr;
mod recv;
mod reroute;
#[cfg(test)]
mod reroute_tests;
mod reverse;
#[cfg(test)]
mod tests;

use admission::{Installing, Parked};
pub use contract::{ErrorReason, EventKind, RefusalReason};
pub use egress::NextHop;
mod timers;

/// The packets of `flow` a reservation covers: with a VLSP object, only the
/// virtual link's VXLAN packets.
fn classifier(flow: &Flow, vlsp: Option<&VlspObject>) -> Classifier {
    Classifier {
        src: flow.src,
        dst: flow.dst,
        protocol: flow.protocol,
        vni: vlsp.map(|v| crate::model::tunnel::vni_for(v.vlink_id)),
    }
}

/// What the glue found out about a message's Session Authorization before
/// handing it over (early verification, on the raw PDU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// A signature by one of this node's provider keys verified.
    Verified { entity: String, key_id: u32 },
    /// Verification failed; `reason` is a short machine-readable word.
    Failed {
        reason: RefusalReason,
        message: String,
    },
    /// No authorization object this node could check.
    Unsigned,
    /// This node does not check (an intermediate node).
    NotChecked,
}

/// What the NSLP needs to know about a received message beyond its bytes.
#[derive(Debug, Clone)]
pub struct RecvContext {
    pub auth: AuthVerdict,
    /// The flow's destination (for downstream messages) is one of this node's
    /// addresses: this node is the QNR.
    pub is_destination: bool,
    /// Egress link towards the flow's destination (for admission control).
    pub egress_link: Option<String>,
    /// Egress link towards the flow's source (for a reverse reservation).
    pub reverse_link: Option<String>,
    /// This node's address towards the sender (the ESI of INFO_SPECs).
    pub local: Ipv4Addr,
    /// The GIST peer the message came from (its NLI address).
    pub peer: Ipv4Addr,
}

/// A setup request, resolved by the glue from the API request and the topology.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    pub req_id: u64,
    pub sid: Sid,
    pub flow: Flow,
    pub vlsp: VlspObject,
    pub rate_bps: Rate,
    pub egress_link: String,
    /// Add (and sign) this node's Session Authorization object(s).
    pub authenticate: bool,
    /// The RESERVE's QSPEC, built by the glue for the profile in use.
    pub qspec: crate::wire::qspec::Qspec,
    /// Ask the responder for a reverse reservation bound to this one
    /// (BOUND_SESSION_ID, binding code "bi-directional", RFC 5974 §4.6).
    pub bidirectional: bool,
}

/// Work for the glue.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand an NSLP message to GIST. With `authenticate`, the glue adds this
    /// node's Session Authorization object(s) and signs the PDU.
    Send {
        sid: Sid,
        flow: Flow,
        dir: Direction,
        msg: NslpMessage,
        authenticate: bool,
    },
    /// Set up this node's tunnel end; answer with [`Nslp::vlink_done`].
    VlinkUp {
        sid: Sid,
        vlsp: VlspObject,
        flow: Flow,
        initiator: bool,
    },
    /// Hand an NSLP message to GIST for the named peer: upstream, the peer
    /// the session's RESERVEs come from now (its SII-Handle; GIST's own
    /// responder state may name an old-branch node that re-queried later);
    /// downstream, the tear of the branch a path change left.
    SendTo {
        sid: Sid,
        flow: Flow,
        dir: Direction,
        peer: Ipv4Addr,
        msg: NslpMessage,
        authenticate: bool,
    },
    /// Take this node's tunnel end out of service; answer with [`Nslp::vlink_done`].
    VlinkDown {
        sid: Sid,
        vlsp: VlspObject,
        flow: Flow,
        initiator: bool,
    },
    /// Answer API request `req_id`.
    Reply {
        req_id: u64,
        result: Result<LinkUp, ApiError>,
    },
    /// Something the external program should hear about.
    Event {
        vlink_id: Option<u64>,
        kind: EventKind,
        message: String,
    },
    /// Install (or change) the class of an admitted reservation; answer
    /// with [`Nslp::class_done`]. On failure nothing of it may be left.
    InstallClass {
        sid: Sid,
        link: String,
        rate: Rate,
        classifier: Classifier,
    },
    /// Remove the class of `sid` (idempotent); no answer.
    RemoveClass { sid: Sid },
    /// GIST may drop its routing state for the session.
    Forget { sid: Sid },
    /// A measurement point.
    Point { sid: Sid, kind: PointKind },
}

/// A successful setup or teardown, for the API reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkUp {
    pub vlink_id: u64,
    pub sid: Sid,
    pub up: bool,
}

/// A failed request, for the API reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    pub reason: ErrorReason,
    pub message: String,
}

/// Timers and policy of one node.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub profile: crate::wire::profile::Profile,
    /// Refresh period R.
    pub refresh: Duration,
    /// Soft-state lifetime without refresh (default 3·R; RFC 5974 suggests
    /// (K+0.5)·1.5·R with K = 3, which is 5.25·R — tighter here so a broken
    /// link is noticed sooner in the testbed).
    pub lifetime: Duration,
    /// First RESERVE retransmission (QOSNSLP_REQUEST_RETRY, 2 s).
    pub retry: Duration,
    /// Give up after (QOSNSLP_RETRY_MAX, 30 s).
    pub retry_max: Duration,
    /// Refuse unsigned or unverifiable requests at the QNR.
    pub require_auth: bool,
    /// Let an unsigned TEAR through at the QNR, but only for a session a
    /// signed RESERVE from the same GIST peer set up (NSIS-ka tears
    /// unsigned); never lets an unsigned setup through.
    pub unsigned_tear_same_peer: bool,
    /// RSN epoch of this incarnation (changes on restart).
    pub epoch: u32,
    /// Routes come from a routing protocol that may still be converging
    /// after a fault (OSPF): a "path truncated" NOTIFY is then transient
    /// at the initiator, like "no route" (RFC 5974 §5.2.x: informational;
    /// kept and retried within the lifetime). With static routes (an
    /// instant oracle) a truncated path has no other way: lost at once.
    pub routing_converges: bool,
    /// Links whose root qdisc the kernel adds at their first reservation
    /// (`vlsp up` shapes up front only up to 300 routers). Adding it swaps
    /// the link's queue, and the kernel drops what is sent on the link
    /// meanwhile, so the first RESERVE over such a link waits for its class
    /// instead of going on at once.
    pub unshaped: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node: String::new(),
            profile: crate::wire::profile::Profile::default(),
            refresh: Duration::from_secs(30),
            lifetime: Duration::from_secs(90),
            retry: Duration::from_secs(2),
            retry_max: Duration::from_secs(30),
            require_auth: true,
            unsigned_tear_same_peer: false,
            epoch: 1,
            routing_converges: false,
            unshaped: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Qni,
    Qne,
    Qnr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// RESERVE sent (QNI, QNE; the QNI's tunnel end is being made) or
    /// tunnel end being set up (QNR).
    Pending,
    /// QNI: RESPONSE received, own tunnel end still being set up.
    Connecting,
    Up,
    /// TEAR sent / tunnel end being removed.
    Tearing,
}

#[derive(Debug, Clone)]
struct Outstanding {
    rii: u32,
    msg: NslpMessage,
    next_retx: Instant,
    interval: Duration,
    deadline: Instant,
    /// A refresh, not the initial RESERVE.
    refresh: bool,
}

#[derive(Debug, Clone)]
struct Session {
    role: Role,
    phase: Phase,
    flow: Flow,
    vlsp: Option<VlspObject>,
    rate_bps: Rate,
    /// Our RSN towards downstream.
    rsn_out: u32,
    /// Last (RSN, epoch) seen from upstream.
    rsn_in: Option<(u32, u32)>,
    /// QNI: the RESERVE waiting for its RESPONSE.
    outstanding: Option<Outstanding>,
    /// QNE: RIIs forwarded downstream whose RESPONSE goes upstream.
    forwarded_riis: Vec<u32>,
    /// QNR: RII of the RESERVE whose RESPONSE waits for the tunnel end.
    answer_rii: Option<u32>,
    /// API request waiting for this session.
    req_id: Option<u64>,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    /// The full RESERVE, re-sent on refresh (QNI).
    reserve: Option<NslpMessage>,
    authenticate: bool,
    /// The other direction of a bidirectional link: at the responder, the
    /// reverse session it initiates; in that reverse session, the forward.
    bound: Option<Sid>,
    /// Responder: egress link of the reverse reservation.
    reverse_link: Option<String>,
    /// QNR: the GIST peer whose verified (signed) RESERVE set the session
    /// up, the only one an unsigned TEAR may come from.
    signed_by: Option<Ipv4Addr>,
    /// QNI: why the last RESPONSE was refused (forged, unsigned), for the
    /// error when the retry limit is reached.
    refused_response: Option<String>,
    /// QNE, QNR: the GIST peer the current RESERVEs come from (RFC 5974's
    /// SII-Handle): a tear from another one is for a branch the path left.
    upstream: Option<Ipv4Addr>,
    /// QNI, QNE: the next peer after a path change (a NOTIFY from another
    /// one is about the branch the path left).
    downstream: Option<Ipv4Addr>,
    /// A re-reservation along a new path, until its RESPONSE.
    repair: Option<reroute::Repair>,
    /// QNI, QNE: the class of this node's reservation, installed while the
    /// RESERVE travels on.
    class: ClassState,
    /// A RESPONSE that came before this node's class was in place; handled
    /// once it is ([`Nslp::class_done`]).
    held: Option<(NslpMessage, AuthVerdict)>,
    /// QNI: its tunnel end, made while the RESERVE travels.
    end: EndState,
    /// QNI: since when refreshes are answered "no route" (a transient
    /// failure); the link is kept until the lifetime has passed.
    no_route_since: Option<Instant>,
    /// QNI, QNE: where GIST last found the next peer (issue 15: the
    /// reservation belongs on that link, whatever the routes said when it
    /// was admitted).
    next_hop: Option<egress::NextHop>,
}

/// The initiator's tunnel end (issue 17: made while the RESERVE travels;
/// the link is up once the RESPONSE came and the end exists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum EndState {
    /// Not asked for (yet), or not this node's.
    #[default]
    None,
    Creating,
    Ready,
    /// The kernel refused it: why.
    Failed(String),
}

/// Where this node's class of a session stands (issue 17: the install runs
/// off the critical path, the RESPONSE waits for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum ClassState {
    /// Installed, or nothing to install.
    #[default]
    Ready,
    Installing,
    /// The kernel refused it: why (naming the node and link), and this
    /// node's address for the INFO_SPEC that says so.
    Failed(String, Ipv4Addr),
}

/// What an initiator's new session starts with.
struct Initiation {
    flow: Flow,
    vlsp: Option<VlspObject>,
    rate_bps: Rate,
    rii: u32,
    msg: NslpMessage,
    req_id: Option<u64>,
    authenticate: bool,
    bound: Option<Sid>,
}

/// Counters shown by `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Stats {
    pub reserves_received: u64,
    pub responses_received: u64,
    pub refreshes_received: u64,
    pub refused: std::collections::BTreeMap<RefusalReason, u64>,
    pub expired: u64,
    pub links_lost: u64,
    /// Reservations moved onto the link their next peer lies on (issue 15).
    #[serde(default)]
    pub egress_moved: u64,
}

/// The per-node QoS NSLP machine.
pub struct Nslp {
    cfg: Config,
    sessions: HashMap<Sid, Session>,
    ledger: Ledger,
    actions: VecDeque<Action>,
    stats: Stats,
    rng_state: u64,
    /// Admissions whose class the kernel is installing.
    installing: HashMap<Sid, Installing>,
    /// Class installs asked for and not yet answered, per session: the
    /// glue answers them in order, and only the last one's outcome counts
    /// (an admission that supersedes one still installing, e.g. a path
    /// change during a move, must not be settled by the earlier answer).
    in_flight: HashMap<Sid, u32>,
    /// The last RSN this node sent downstream for sessions it dropped
    /// (newest last, bounded): a session set up here again continues after
    /// it, so a next hop that still holds the old state (its tear was lost)
    /// takes the new RESERVEs as updates, not as out of order.
    dropped_rsn: VecDeque<(Sid, u32)>,
    /// Links of [`Config::unshaped`] with no class installed yet.
    unshaped: HashSet<String>,
}

impl Nslp {
    pub fn new(cfg: Config, ledger: Ledger, seed: u64) -> Self {
        let unshaped = cfg.unshaped.iter().cloned().collect();
        Self {
            cfg,
            sessions: HashMap::new(),
            ledger,
            actions: VecDeque::new(),
            stats: Stats::default(),
            rng_state: seed | 1,
            installing: HashMap::new(),
            in_flight: HashMap::new(),
            dropped_rsn: VecDeque::new(),
            unshaped,
        }
    }

    /// A 32-bit request identifier (xorshift; RIIs need only be unlikely to
    /// collide within a session, RFC 5974 §5.1.3.2).
    fn next_rii(&mut self) -> u32 {
        let mut x = self.rng_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng_state = x;
        (x >> 16) as u32
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The admission ledger, to declare links a reconfigured node gained
    /// or whose capacity changed (`vlsp apply`).
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Sessions and their phases (for `list`).
    pub fn sessions(&self) -> impl Iterator<Item = (&Sid, Role, Phase, Option<&VlspObject>, Rate)> {
        self.sessions
            .iter()
            .map(|(s, x)| (s, x.role, x.phase, x.vlsp.as_ref(), x.rate_bps))
    }

    /// VNIs of the virtual links with a tunnel end on this node (initiator
    /// or responder sessions), which a new link must not reuse.
    pub fn vnis_in_use(&self) -> impl Iterator<Item = u32> + '_ {
        self.sessions
            .values()
            .filter(|s| s.role != Role::Qne)
            .filter_map(|s| s.vlsp.as_ref())
            .map(|v| crate::model::tunnel::vni_for(v.vlink_id))
    }

    fn refuse(&mut self, reason: RefusalReason) {
        *self.stats.refused.entry(reason).or_insert(0) += 1;
    }

    /// Counts a refusal the glue made on the machine's behalf (e.g. a PDU
    /// whose signing failed).
    pub fn count_refusal(&mut self, reason: RefusalReason) {
        self.refuse(reason);
    }

    /// Queues `msg` for GIST. The "sent" measurement points are taken by the
    /// glue when the datagram leaves, after any handshake GIST needs first.
    fn send(&mut self, sid: Sid, flow: Flow, dir: Direction, msg: NslpMessage, authenticate: bool) {
        if dir == Direction::Upstream
            && let Some(peer) = self.sessions.get(&sid).and_then(|s| s.upstream)
        {
            self.actions.push_back(Action::SendTo {
                sid,
                flow,
                dir,
                peer,
                msg,
                authenticate,
            });
            return;
        }
        self.actions.push_back(Action::Send {
            sid,
            flow,
            dir,
            msg,
            authenticate,
        });
    }

    /// Whether this node holds state for `sid` (any role).
    pub fn has_session(&self, sid: &Sid) -> bool {
        self.sessions.contains_key(sid)
    }

    /// The next action for the glue.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

/// RFC 1982 serial-number comparison: is `a` before `b`?
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}
