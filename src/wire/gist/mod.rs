//! GIST PDUs (RFC 5971 Appendix A): the common header, the objects, and
//! the six messages, with both framings (UDP: magic number first; TCP:
//! none).
//!
//! ```text
//! common header:
//! |  Version (8)  | GIST hops (8) |     Message Length (16, words)    |
//! |           NSLPID (16)         |C|  Type (7)   |S|R|E|  reserved   |
//! ```
//! Message Length counts the 32-bit words after the common header. Over UDP
//! (Q-mode and D-mode) the 4-byte magic number 0x4e04bda5 precedes it.
//!
//! As in smoltcp's `wire`, the bytes are read in one place: [`header`] names
//! the field ranges and gives the checked [`Header`] view, [`view`] finds
//! the objects ([`PduView`]) without decoding them; [`pdu`] turns them into
//! plain data ([`GistPdu`]) and back. Every other reader of GIST bytes (the
//! header scan, the GIST codec, the authorization scan) goes through them.
//!
//! Objects use the TLV header of [`crate::wire::tlv`]. Unknown objects follow
//! their extensibility bits (RFC 5971 §A.2.1): AB=00 rejects the message
//! (Object Type Error, Unrecognised Object), AB=01 drops the object, AB=10
//! keeps it for forwarding, AB=11 is invalid (Invalid Extensibility Flags).

pub mod header;
pub mod objects;
pub mod pdu;
pub mod view;

pub use crate::model::ports::GIST_PORT;
pub use header::{CommonHeader, Framing, HEADER_LEN, Header, MAGIC, MessageType, field};
pub use objects::{
    ErrorObject, MaOption, Mri, Nli, PathCoupledMri, StackConfigData, StackProposal, error_class,
    error_code,
};
pub use pdu::{Body, GistPdu};
pub use view::{PduView, scan_udp};

/// NSLPID of the QoS NSLP. NSIS-ka uses 1; the IANA value is not confirmed
/// (protocol.md §2.1), so this is configurable where it matters.
pub const NSLPID_QOS: u16 = 1;

/// GIST object types (RFC 5971 §A.2).
pub mod obj {
    pub const MRI: u16 = 0;
    pub const SESSION_ID: u16 = 1;
    pub const NLI: u16 = 2;
    pub const STACK_PROPOSAL: u16 = 3;
    pub const STACK_CONFIG: u16 = 4;
    pub const QUERY_COOKIE: u16 = 5;
    pub const RESPONDER_COOKIE: u16 = 6;
    pub const NAT_TRAVERSAL: u16 = 7;
    pub const NSLP_DATA: u16 = 8;
    pub const ERROR: u16 = 9;
    pub const HELLO_ID: u16 = 10;
}

#[cfg(test)]
pub(crate) mod tests;
