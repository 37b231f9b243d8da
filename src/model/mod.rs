//! Shared plain types that every layer may use: rates, well-known ports,
//! tunnel kinds, run paths, in-memory measurement points and the hex of
//! session ids. Depends on nothing else in the crate.

pub mod allocator;
pub mod cidr;
pub mod measure;
pub mod paths;
pub mod ports;
pub mod spanned;
pub mod tunnel;
pub mod units;

/// The bytes written as hex digits (the inverse of [`hex`], either case);
/// `None` for an odd number of digits or anything not a hex digit pair.
pub fn unhex(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) || !h.is_ascii() {
        return None;
    }
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Lower-case hex of bytes (session ids in log lines and the API).
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(2 * b.len()), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
