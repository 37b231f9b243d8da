//! The external program's interface to a node (paper §IV-B: "an external
//! program on tb1 issues a request ... via a UNIX Domain Socket interface").
//!
//! One UNIX stream socket per node at `/run/vlsp/<topology>/<node>.sock`,
//! speaking JSON lines: one request object per line, one reply object per
//! line. `events` turns the connection into a stream of [`Event`] lines.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::tunnel::{Backend, TunnelKind};
use crate::model::units::Rate;
use crate::proto::nslp::{ErrorReason, EventKind, Phase, RefusalReason, Role};

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Set up a virtual link with a QoS reservation from a virtual node hosted
    /// on this node to another virtual node.
    Setup {
        /// Virtual node the link starts at, `VM1`, or with the interface
        /// it attaches to, `VM1:2` (default: the node's first free one).
        from: String,
        /// Virtual node the link ends at, `VM2` or `VM2:2`.
        to: String,
        /// Reserved rate in bit/s (a JSON number).
        rate_bps: Rate,
        /// Also reserve the reverse direction (bound with BOUND_SESSION_ID).
        #[serde(default)]
        bidirectional: bool,
        /// Overrides the topology's tunnel backend for this link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<crate::model::tunnel::Backend>,
        /// Sign the request (default true); false measures the unsigned case.
        #[serde(default = "yes")]
        authenticate: bool,
        /// Tunnel type the VLSP object asks for (default: the topology's);
        /// the responder refuses one its kernel cannot build.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tunnel: Option<TunnelKind>,
    },
    /// Tear a virtual link down.
    Teardown { vlink_id: u64 },
    /// Virtual links known to this node.
    List,
    /// Counters: messages, refusals per reason, reservations.
    Stats,
    /// Subscribe: the connection then carries [`Event`] lines.
    Events,
    /// Take the measurement points recorded so far (they are removed).
    DumpPoints,
    /// Is the node able to signal: its sockets bound, its actors answering
    /// (what a readiness probe asks).
    Health,
    // `vlsp apply` (h7): a running node takes a changed topology.
    /// Adopt the neighbours, capacities, routes and keys of this topology
    /// (TOML text, the effective one); sessions stay. Its own address and
    /// provider must not change (apply restarts such a node instead).
    Reconfigure { topology: String },
    /// Stop this node's actors (its links are not torn down: apply tears
    /// the ones it would strand first).
    Shutdown,
}

fn yes() -> bool {
    true
}

impl Request {
    /// A signed setup of a one-way virtual link from `from` to `to`
    /// reserving `rate`, with the topology's tunnel backend: what the
    /// paper's external program asks for.
    pub fn signed_setup(from: &str, to: &str, rate: crate::model::units::Rate) -> Self {
        Request::Setup {
            from: from.into(),
            to: to.into(),
            rate_bps: rate,
            bidirectional: false,
            backend: None,
            authenticate: true,
            tunnel: None,
        }
    }

    /// Refuses what no node could carry out, naming the field: checked by
    /// the API before the request reaches the node.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Request::Setup { rate_bps, .. } if rate_bps.bps() == 0 => Err(
                "rate_bps is 0: a virtual link reserves a rate; give it in bit/s, e.g. \"rate_bps\": 1000000".into(),
            ),
            _ => Ok(()),
        }
    }
}

/// A reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reply {
    /// The virtual link is up at both ends.
    LinkUp {
        vlink: LinkInfo,
    },
    /// The virtual link is gone at both ends.
    LinkDown {
        vlink_id: u64,
    },
    Links {
        links: Vec<LinkInfo>,
    },
    Stats {
        stats: Stats,
    },
    Points {
        points: Vec<crate::model::measure::Point>,
    },
    Health {
        health: Health,
    },
    /// Events follow on this connection.
    Subscribed,
    /// `reconfigure` or `shutdown` done (h7).
    Done {
        message: String,
    },
    /// The request failed; `reason` is machine-readable, `message` says what
    /// went wrong and what to do.
    Error {
        reason: ErrorReason,
        message: String,
    },
}

impl Reply {
    pub fn error(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self::Error {
            reason,
            message: message.into(),
        }
    }
}

/// The counters of a node (`stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub node: String,
    pub nslp: crate::proto::nslp::Stats,
    /// Reservations held by the admission ledger.
    pub reservations: usize,
    /// Tunnel-end operations not finished yet (deferred deletions included).
    pub vlink_pending: usize,
    /// PDUs refused before parsing (early verification, malformed).
    #[serde(default)]
    pub refused_early: std::collections::BTreeMap<RefusalReason, u64>,
    /// Datagrams dropped unread because the node's queue was full (a burst
    /// or a flood); the node keeps reading its socket.
    #[serde(default)]
    pub shed_overload: u64,
    /// GIST handshake refusals (stale and forged Responder-Cookies).
    #[serde(default)]
    pub gist: crate::proto::gist::machine::Counters,
    /// Datagrams dropped unqueued because they are not GIST (magic number,
    /// version, length or message type wrong): junk costs no queue place.
    #[serde(default)]
    pub junk: u64,
    /// GIST PDUs that passed that check but failed to decode (also under
    /// `refused_early`; shown here even when zero).
    #[serde(default)]
    pub malformed: u64,
    /// API requests whose client had gone before the reply: not carried
    /// out, or (a link set up meanwhile) torn down again.
    #[serde(default)]
    pub api_abandoned: u64,
}

/// What `health` reports: enough for a readiness probe to decide, and for
/// a person to see why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub node: String,
    /// The `vlsp` version the node runs.
    pub version: String,
    /// Seconds since the node's sockets were opened.
    pub uptime_s: f64,
    /// Local address of the GIST UDP socket (port 270), if bound.
    pub gist_udp: Option<String>,
    /// The raw socket that intercepts Router Alert (Q-mode) datagrams is open.
    pub router_alert: bool,
    /// Local address of the TCP listener for messaging associations, if bound.
    pub ma_listener: Option<String>,
    /// C-mode: the node needs that listener.
    pub cmode: bool,
    /// Signaling sessions held (any role, any phase).
    pub sessions: usize,
    /// Virtual links among them.
    pub links: usize,
}

impl Health {
    /// What keeps the node from signaling, one sentence each; none when
    /// healthy.
    pub fn problems(&self) -> Vec<String> {
        let mut p = vec![];
        if self.gist_udp.is_none() {
            p.push(format!(
                "node {}: GIST UDP socket not bound (port 270 taken in this namespace?)",
                self.node
            ));
        }
        if !self.router_alert {
            p.push(format!(
                "node {}: no Router Alert socket (the node needs CAP_NET_RAW)",
                self.node
            ));
        }
        if self.cmode && self.ma_listener.is_none() {
            p.push(format!(
                "node {}: C-mode without a TCP listener for messaging associations",
                self.node
            ));
        }
        p
    }
}

/// Where a virtual link stands on a node: its role there (absent right
/// after a setup) and its phase. On the wire `"up"` or `"qni/up"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct LinkState {
    pub role: Option<Role>,
    pub phase: Phase,
}

impl LinkState {
    pub fn up() -> Self {
        Self {
            role: None,
            phase: Phase::Up,
        }
    }
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.role {
            Some(r) => write!(f, "{}/{}", word(&r), word(&self.phase)),
            None => f.write_str(&word(&self.phase)),
        }
    }
}

impl From<LinkState> for String {
    fn from(s: LinkState) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for LinkState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (role, phase) = match s.split_once('/') {
            Some((r, p)) => (Some(r), p),
            None => (None, s.as_str()),
        };
        let q = |w: &str| serde_json::Value::String(w.to_string());
        let bad = || format!("bad link state {s:?}: expected PHASE or ROLE/PHASE, e.g. qni/up");
        Ok(Self {
            role: role
                .map(|r| serde_json::from_value(q(r)).map_err(|_| bad()))
                .transpose()?,
            phase: serde_json::from_value(q(phase)).map_err(|_| bad())?,
        })
    }
}

/// A virtual link as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub vlink_id: u64,
    pub from: String,
    pub to: String,
    /// The virtual interfaces the link joins at each end.
    #[serde(default)]
    pub from_vif: u64,
    #[serde(default)]
    pub to_vif: u64,
    /// Reserved rate in bit/s (a JSON number).
    pub rate_bps: Rate,
    /// GIST session id, hex.
    pub session: String,
    pub tunnel: TunnelKind,
    pub backend: Backend,
    pub state: LinkState,
}

impl LinkInfo {
    /// The session id as bytes (`session` is its hex form).
    pub fn sid(&self) -> Option<[u8; 16]> {
        let mut s = [0u8; 16];
        for (i, b) in s.iter_mut().enumerate() {
            *b = u8::from_str_radix(self.session.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(s)
    }
}

/// Something that happened without a request (peer lost, state expired).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub node: String,
    pub vlink_id: Option<u64>,
    pub kind: EventKind,
    pub message: String,
}

/// Why talking to a node's API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to {path}: {source} (is the topology up? start it with `vlsp up TOPOLOGY`)"
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("API socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("API socket {path}: bad reply {line:?}: {source}")]
    BadReply {
        path: PathBuf,
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("API socket {path}: connection closed before a reply")]
    Closed { path: PathBuf },
}

/// A blocking client: the external program of the paper's experiments.
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    line: String,
}

impl Client {
    /// Connects to the socket at `path`; replies must come within `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        let s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let io = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        let writer = s.try_clone().map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::new(s),
            writer,
            line: String::with_capacity(512),
        })
    }

    /// Sends `req` and waits for one reply line.
    pub fn call(&mut self, req: &Request) -> Result<Reply, ClientError> {
        self.send(req)?;
        self.recv()
    }

    /// Writes one request line.
    pub fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let mut buf = serde_json::to_vec(req).expect("requests always serialize");
        buf.push(b'\n');
        self.writer
            .write_all(&buf)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Reads one reply line.
    pub fn recv(&mut self) -> Result<Reply, ClientError> {
        self.read_json()
    }

    /// Reads one event line (after [`Request::Events`]).
    pub fn next_event(&mut self) -> Result<Event, ClientError> {
        self.read_json()
    }

    /// Reads one line and decodes it as `T`, naming the socket on failure.
    fn read_json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ClientError> {
        self.line.clear();
        let n = self
            .reader
            .read_line(&mut self.line)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Closed {
                path: self.path.clone(),
            });
        }
        serde_json::from_str(self.line.trim_end()).map_err(|source| ClientError::BadReply {
            path: self.path.clone(),
            line: self.line.trim_end().to_string(),
            source,
        })
    }
}

// ------------------------------------------------------------ link ids
//
// A link id is the VLSP object's 64-bit VLink ID (random). People see it
// as hex: all 16 digits in JSON's "id", the first 8 in tables, and may type
// any unique prefix of 4 or more digits, like a git hash. The 20-digit
// decimal form of older output is still accepted.

/// The fewest hex digits a typed id may have.
pub const LINK_ID_MIN_DIGITS: usize = 4;

/// All 16 hex digits of link id `id`.
pub fn link_id_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// The first 8 hex digits of link id `id`, as tables show it.
pub fn link_id_short(id: u64) -> String {
    link_id_hex(id)[..8].to_string()
}

/// Why a typed link id names no single link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkIdError {
    #[error(
        "{0:?} is not a link id: give 4 to 16 hex digits as `vlsp link list` shows them (e.g. 3f9a0c12)"
    )]
    Syntax(String),
    #[error("no virtual link has id {typed}: `vlsp link list` shows the ids ({known})")]
    NotFound { typed: String, known: String },
    #[error("link id {typed} is ambiguous ({candidates}): type more digits")]
    Ambiguous { typed: String, candidates: String },
}

/// The one id among `ids` that `typed` names: a hex prefix (optionally
/// `0x`), or the full decimal number.
pub fn match_link_id(typed: &str, ids: impl IntoIterator<Item = u64>) -> Result<u64, LinkIdError> {
    let t = typed.trim();
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    // 17 or more decimal digits cannot be hex (16 digits at most).
    if t.len() >= 17 && t.bytes().all(|b| b.is_ascii_digit()) {
        let id: u64 = t.parse().map_err(|_| LinkIdError::Syntax(typed.into()))?;
        return ids
            .contains(&id)
            .then_some(id)
            .ok_or_else(|| not_found(t, &ids));
    }
    let h = t.strip_prefix("0x").unwrap_or(t).to_ascii_lowercase();
    if !(LINK_ID_MIN_DIGITS..=16).contains(&h.len()) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LinkIdError::Syntax(typed.into()));
    }
    let hits: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|i| link_id_hex(*i).starts_with(&h))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(not_found(&h, &ids)),
        many => Err(LinkIdError::Ambiguous {
            typed: h,
            candidates: many
                .iter()
                .map(|i| link_id_hex(*i))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn not_found(typed: &str, ids: &[u64]) -> LinkIdError {
    LinkIdError::NotFound {
        typed: typed.into(),
        known: if ids.is_empty() {
            "none is up".into()
        } else {
            ids.iter()
                .map(|i| link_id_short(*i))
                .collect::<Vec<_>>()
                .join(", ")
        },
    }
}

#[cfg(test)]
mod link_id_tests {
    use super::*;

    const A: u64 = 0x3f9a_0c12_0000_0001;
    const B: u64 = 0x3f9a_0c12_ffff_0002;
    const C: u64 = 0x0000_0000_0000_00ff;

    #[test]
    fn ids_show_as_hex() {
        assert_eq!(link_id_hex(C), "00000000000000ff");
        assert_eq!(link_id_short(A), "3f9a0c12");
    }

    #[test]
    fn a_unique_prefix_names_the_link() {
        assert_eq!(match_link_id("0000", [A, C]), Ok(C));
        assert_eq!(match_link_id("3F9A0C12FFFF", [A, B, C]), Ok(B));
        assert_eq!(match_link_id("0x3f9a0c120000", [A, B]), Ok(A));
        assert_eq!(match_link_id(&link_id_hex(A), [A, B]), Ok(A));
        // The decimal form older output printed.
        assert_eq!(match_link_id(&A.to_string(), [A, B]), Ok(A));
    }

    #[test]
    fn ambiguous_unknown_and_malformed_ids_are_refused() {
        let e = match_link_id("3f9a0c12", [A, B]).unwrap_err();
        assert!(matches!(e, LinkIdError::Ambiguous { .. }), "{e}");
        assert!(e.to_string().contains(&link_id_hex(B)), "{e}");
        let e = match_link_id("beef", [A]).unwrap_err();
        assert!(e.to_string().contains("3f9a0c12"), "{e}");
        assert!(
            match_link_id("beef", [])
                .unwrap_err()
                .to_string()
                .contains("none is up")
        );
        for bad in [
            "abc",
            "xyz1",
            "99999999999999999999999",
            "0x",
            "01234567890abcdef",
        ] {
            assert!(
                matches!(match_link_id(bad, [A]), Err(LinkIdError::Syntax(_))),
                "{bad}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_info_gives_the_session_id_as_bytes() {
        let mut l = LinkInfo {
            vlink_id: 1,
            from: "VM1".into(),
            to: "VM2".into(),
            from_vif: 1,
            to_vif: 2,
            rate_bps: Rate::from_bps(1),
            session: "00112233445566778899aabbccddeeff".into(),
            tunnel: TunnelKind::Vxlan,
            backend: Backend::Netlink,
            state: LinkState::up(),
        };
        assert_eq!(
            l.sid().unwrap(),
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        l.session = "0011".into();
        assert_eq!(l.sid(), None);
    }

    #[test]
    fn link_info_keeps_its_json_words() {
        let l = LinkInfo {
            vlink_id: 1,
            from: "VM1".into(),
            to: "VM2".into(),
            from_vif: 1,
            to_vif: 2,
            rate_bps: Rate::from_bps(1),
            session: "00".into(),
            tunnel: TunnelKind::Gretap,
            backend: Backend::Script,
            state: LinkState {
                role: Some(Role::Qni),
                phase: Phase::Up,
            },
        };
        let j = serde_json::to_value(&l).unwrap();
        assert_eq!(j["tunnel"], "gretap");
        assert_eq!(j["backend"], "script");
        assert_eq!(j["state"], "qni/up");
        assert_eq!(serde_json::from_value::<LinkInfo>(j).unwrap(), l);
        let up: LinkState = serde_json::from_str("\"up\"").unwrap();
        assert_eq!(up, LinkState::up());
        assert!(serde_json::from_str::<LinkState>("\"qni/flying\"").is_err());
    }

    #[test]
    fn request_lines_are_stable_json() {
        let r = Request::Setup {
            from: "VM1".into(),
            to: "VM2".into(),
            rate_bps: Rate::from_bps(10_000_000),
            bidirectional: false,
            backend: None,
            authenticate: true,
            tunnel: None,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"setup","from":"VM1","to":"VM2","rate_bps":10000000,"bidirectional":false,"authenticate":true}"#
        );
        let back: Request =
            serde_json::from_str(r#"{"op":"setup","from":"VM1","to":"VM2","rate_bps":1}"#).unwrap();
        assert!(matches!(
            back,
            Request::Setup {
                authenticate: true,
                ..
            }
        ));
        let ipip: Request = serde_json::from_str(
            r#"{"op":"setup","from":"VM1:2","to":"VM2","rate_bps":1,"tunnel":"ipip"}"#,
        )
        .unwrap();
        assert!(matches!(
            ipip,
            Request::Setup {
                tunnel: Some(TunnelKind::Ipip),
                ..
            }
        ));
        let t: Request = serde_json::from_str(r#"{"op":"teardown","vlink_id":7}"#).unwrap();
        assert_eq!(t, Request::Teardown { vlink_id: 7 });
    }

    #[test]
    fn a_zero_rate_is_refused_naming_the_field() {
        let mut r = Request::Setup {
            from: "VM1".into(),
            to: "VM2".into(),
            rate_bps: Rate::from_bps(0),
            bidirectional: false,
            backend: None,
            tunnel: None,
            authenticate: true,
        };
        assert!(r.check().unwrap_err().contains("rate_bps"));
        if let Request::Setup { rate_bps, .. } = &mut r {
            *rate_bps = Rate::from_bps(1);
        }
        assert_eq!(r.check(), Ok(()));
        assert_eq!(Request::List.check(), Ok(()));
    }

    #[test]
    fn health_names_what_keeps_a_node_from_signaling() {
        let mut h = Health {
            node: "tb2".into(),
            version: "0".into(),
            uptime_s: 1.0,
            gist_udp: Some("0.0.0.0:270".into()),
            router_alert: true,
            ma_listener: None,
            cmode: false,
            sessions: 0,
            links: 0,
        };
        assert!(h.problems().is_empty(), "D-mode needs no listener");
        h.cmode = true;
        h.gist_udp = None;
        h.router_alert = false;
        let p = h.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().all(|m| m.starts_with("node tb2:")));
        assert!(p[0].contains("270") && p[1].contains("NET_RAW") && p[2].contains("C-mode"));
        let line = serde_json::to_string(&Request::Health).unwrap();
        assert_eq!(line, r#"{"op":"health"}"#);
        let j = serde_json::to_value(Reply::Health { health: h.clone() }).unwrap();
        assert_eq!(j["status"], "health");
        assert_eq!(
            serde_json::from_value::<Reply>(j).unwrap(),
            Reply::Health { health: h }
        );
    }

    #[test]
    fn client_names_the_socket_when_nothing_listens() {
        let p = std::env::temp_dir().join(format!("vlsp-test-{}.sock", std::process::id()));
        let err = match Client::connect(&p, Duration::from_millis(10)) {
            Err(e) => e,
            Ok(_) => panic!("connected to nothing"),
        };
        let msg = err.to_string();
        assert!(msg.contains(&p.display().to_string()) && msg.contains("vlsp up"));
    }
}
