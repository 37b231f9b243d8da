//! The machine's typed outputs: why something was refused (counted in
//! [`super::Stats`]), why an API request failed, what an event reports.
//! Serialized in snake_case, the words the JSON API has always used.

use serde::{Deserialize, Serialize};

/// Why a message or request was refused (the keys of `stats.refused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    DuplicateLink,
    Admission,
    Malformed,
    OldRsn,
    NoRoute,
    NoQspec,
    UnknownRii,
    UnsupportedMessage,
    /// A RESERVE (a tear included) for a session this node initiated,
    /// come back from a downstream node whose route leads back here (a
    /// loop while routes converge): dropped, the session stays.
    Looped,
    /// A tunnel end could not be set up.
    Vlink,
    /// The VNI of a requested link is already used by another link here.
    VniInUse,
    /// This node's own PDU could not be signed: it was not sent.
    SignFailed,
    AuthUnsigned,
    AuthUnknownKey,
    AuthBadSignature,
    AuthExpired,
    AuthNotYetValid,
    /// END_TIME − START_TIME longer than the provider's `max_window_s`.
    AuthWindowTooLong,
    /// An authorization object accepted before, used again outside the
    /// session it was accepted for (a replay).
    AuthReplay,
    /// The replay cache is full of unexpired objects: refused rather than
    /// forgotten (a forgotten object could be replayed).
    AuthReplayCacheFull,
    AuthListedObjectMissing,
    AuthEntityNotAccepted,
    AuthUnsupportedTransform,
    AuthMalformed,
}

impl RefusalReason {
    /// The refusal for a failed verification, from the auth error's word
    /// (`AuthError::reason`).
    pub fn from_auth(word: &str) -> Self {
        match word {
            "unsigned" => Self::AuthUnsigned,
            "unknown_key" => Self::AuthUnknownKey,
            "bad_signature" => Self::AuthBadSignature,
            "expired" => Self::AuthExpired,
            "not_yet_valid" => Self::AuthNotYetValid,
            "window_too_long" => Self::AuthWindowTooLong,
            "listed_object_missing" => Self::AuthListedObjectMissing,
            "entity_not_accepted" => Self::AuthEntityNotAccepted,
            "unsupported_transform" => Self::AuthUnsupportedTransform,
            _ => Self::AuthMalformed,
        }
    }
}

/// Why an API request failed (`reason` of an error reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorReason {
    /// The request names unknown nodes or cannot be signaled from here.
    BadRequest,
    /// The virtual link exists already.
    Exists,
    /// Admission control refused it on this node.
    Admission,
    UnknownLink,
    /// The link is not up (being set up or torn down).
    Busy,
    /// No answer within the retry limit (or a refresh went unanswered).
    Timeout,
    /// A tunnel end failed.
    Vlink,
    /// This node could not sign its request.
    SignFailed,
    /// Refused downstream, by INFO_SPEC.
    AuthorizationFailure,
    ReservationFailure,
    PathTruncated,
    TransientFailure,
    ProtocolError,
    PermanentFailure,
    /// The node dropped the request.
    Internal,
    Error,
}

impl ErrorReason {
    /// The reason for a refusing INFO_SPEC (`InfoSpec::reason`).
    pub fn from_info(word: &str) -> Self {
        match word {
            "authorization_failure" => Self::AuthorizationFailure,
            "reservation_failure" => Self::ReservationFailure,
            "path_truncated" => Self::PathTruncated,
            "transient_failure" | "no_route" => Self::TransientFailure,
            "protocol_error" => Self::ProtocolError,
            "permanent_failure" => Self::PermanentFailure,
            _ => Self::Error,
        }
    }
}

/// What an unsolicited event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The initiator lost the link (refresh unanswered or refused).
    LinkLost,
    /// The responder's soft state expired.
    Expired,
    /// The reverse half of a bidirectional link was refused.
    ReverseRefused,
    Notify,
    /// A PDU of this node could not be signed and was not sent.
    SignFailed,
    /// The next peer of a reservation changed (a route change): this node
    /// re-reserves along the new path.
    PathChanged,
    /// The reservation holds on the new path; the old branch is torn.
    Repaired,
    /// The new path refused the reservation: what it took is freed and
    /// the link is lost.
    RepairFailed,
}

/// The snake_case word serde writes for a unit variant.
fn word<T: Serialize>(v: &T, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => f.write_str(&s),
        _ => f.write_str("?"),
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        word(self, f)
    }
}

impl std::fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        word(self, f)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        word(self, f)
    }
}
