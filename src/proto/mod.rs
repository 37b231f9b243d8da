//! Sans-IO protocol machines: time and messages in, messages and actions
//! out; no sockets, no kernel calls.

pub mod gist;
pub mod nslp;
pub mod rmf;
