//! Pure bytes: every format vlsp puts on the wire, as plain data with
//! `encode`/`decode` and byte-exact tests. No I/O, no clocks, no state.
//!
//! The contract every decoder here keeps: any input, of any length, gives
//! `Ok` or a typed [`tlv::WireError`] naming the object at fault; no input
//! panics, and no length read from the wire is trusted before it is checked
//! against the buffer (proptest and the cargo-fuzz targets in `fuzz/` hold
//! them to it). Encoders refuse values that do not fit their fields.

pub mod auth;
pub mod fixtures;
pub mod gist;
pub mod nslp;
pub mod profile;
pub mod qspec;
pub mod tlv;
pub mod vlsp;
