//! Shared plain types that every layer may use: rates, well-known ports,
//! tunnel kinds, run paths, in-memory measurement points and the hex of
//! session ids. Depends on nothing else in the crate.

pub mod cidr;
pub mod measure;
pub mod paths;
pub mod ports;
pub mod spanned;
pub mod tunnel;
pub mod units;

/// Lower-case hex of bytes (session ids in log lines and the API).
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(2 * b.len()), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
