//! GIST (RFC 5971), the NSIS transport layer: the handshake / routing-state
//! machine and the codec between its messages and GIST PDUs.

pub mod codec;
pub mod cookie;
pub mod ma;
pub mod machine;
pub mod profile;
pub mod session;
