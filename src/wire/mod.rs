//! Pure bytes: every format vlsp puts on the wire, as plain data with
//! `encode`/`decode` and byte-exact tests. No I/O, no clocks, no state.
//!
//! The contract every decoder here keeps: any input, of any length, gives
//! `Ok` or a typed [`tlv::WireError`] naming the object at fault; no input
//! panics, and no length read from the wire is trusted before it is checked
//! against the buffer (proptest and the cargo-fuzz targets in `fuzz/` hold
//! them to it). Encoders never mask or truncate: a length or count that
//! does not fit its field is a [`tlv::WireError::TooLarge`]. This holds for
//! every file below; it is not repeated in each.
//!
//! Offsets are named once: the GIST header's field ranges and its checked
//! view live in [`gist::header`] and [`gist::view`], and every reader of
//! GIST bytes (the GIST codec, the early authorization scan) goes through
//! them.

pub mod auth;
pub mod fixtures;
pub mod gist;
pub mod nslp;
pub mod profile;
pub mod qspec;
pub mod tlv;
pub mod vlsp;
