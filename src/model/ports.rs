//! Well-known ports, defined once.

/// GIST's UDP port (RFC 5971 §5.4: IANA port 270).
pub const GIST_PORT: u16 = 270;

/// IANA's VXLAN port; rtnetlink otherwise falls back to the legacy 8472.
pub const VXLAN_PORT: u16 = 4789;
