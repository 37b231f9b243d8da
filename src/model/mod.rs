//! Shared plain types that every layer may use: rates, well-known ports,
//! tunnel kinds, run paths and in-memory measurement points. Depends on
//! nothing else in the crate.

pub mod cidr;
pub mod measure;
pub mod paths;
pub mod ports;
pub mod spanned;
pub mod tunnel;
pub mod units;
