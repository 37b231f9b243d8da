//! The per-session state of the machine: a querier's handshake and
//! routing state ([`QNode`]), a responder's ([`RNode`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::early_data::BehindConfirm;
use super::{Direction, Flow, Nli};

/// A Query out and its retransmission schedule.
#[derive(Debug)]
pub(super) struct Querying {
    pub(super) cookie: Vec<u8>,
    pub(super) next_retx: Instant,
    pub(super) interval: Duration,
    pub(super) elapsed: Duration,
    /// Give up when the back-off would overrun this (T2, or the probe time).
    pub(super) limit: Duration,
}

impl Querying {
    pub(super) fn new(now: Instant, t1: Duration, cookie: Vec<u8>) -> Self {
        Self {
            cookie,
            next_retx: now + t1,
            interval: t1,
            elapsed: Duration::ZERO,
            limit: Duration::MAX,
        }
    }
}

#[derive(Debug)]
pub(super) enum QState {
    /// Query sent, no usable peer: data wait in the queue.
    Waiting(Querying),
    /// Handshake done: data go in D-mode to `peer` until `expires` (when
    /// the peer's copy of the state may be gone); refreshed at `refresh_at`.
    Established {
        peer: Nli,
        refresh_at: Instant,
        expires: Instant,
    },
    /// A refresh Query is out; data still go to `peer` until `expires`.
    Refreshing {
        peer: Nli,
        expires: Instant,
        query: Querying,
    },
}

#[derive(Debug)]
pub(super) struct QNode {
    pub(super) flow: Flow,
    pub(super) dir: Direction,
    pub(super) state: QState,
    pub(super) queue: VecDeque<(Vec<u8>, bool)>,
    /// When the NSLP last sent on this state (for the idle lapse).
    pub(super) last_used: Instant,
    /// What the first Query carried (`data_in_query`), repeated in its
    /// retransmissions.
    pub(super) in_query: Option<(Vec<u8>, bool)>,
    /// The data sent right behind the Confirm (see `early_data`).
    pub(super) behind_confirm: BehindConfirm,
    /// Our last handshake's peer, also while a new one runs: its answers to
    /// earlier data are taken, not refused with "No Routing State".
    pub(super) last_peer: Option<Nli>,
    /// Made on a flow's known peer, without a handshake (`reuse_peers`).
    pub(super) on_known_peer: bool,
}

impl QNode {
    /// A session's querier state, with nothing queued or sent yet.
    pub(super) fn new(flow: Flow, dir: Direction, state: QState, now: Instant) -> Self {
        Self {
            flow,
            dir,
            state,
            queue: VecDeque::new(),
            last_used: now,
            in_query: None,
            behind_confirm: BehindConfirm::default(),
            last_peer: None,
            on_known_peer: false,
        }
    }

    /// The peer data may go to now.
    pub(super) fn usable_peer(&self, now: Instant) -> Option<&Nli> {
        match &self.state {
            QState::Established { peer, expires, .. }
            | QState::Refreshing { peer, expires, .. }
                if now < *expires =>
            {
                Some(peer)
            }
            _ => None,
        }
    }

    /// The peer that answered our last handshake, while its state lasts or not.
    pub(super) fn known_peer(&self) -> Option<&Nli> {
        match &self.state {
            QState::Established { peer, .. } | QState::Refreshing { peer, .. } => Some(peer),
            QState::Waiting(_) => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct RNode {
    pub(super) peer: Nli,
    pub(super) expires: Instant,
    /// The peer before a reroute's new one, until its state expires.
    pub(super) old: Option<(Nli, Instant)>,
}
