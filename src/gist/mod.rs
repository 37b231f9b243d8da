//! GIST (RFC 5971), the NSIS transport layer: the wire format and the
//! handshake / routing-state machine.

pub mod codec;
pub mod machine;
pub mod wire;
