//! QoS NSLP (RFC 5974) with the VLSP extension: the wire format and the
//! reservation state machine.

pub mod machine;
pub mod wire;
