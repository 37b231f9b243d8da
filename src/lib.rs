//! vlsp: a testbed for the Virtual Link Setup Protocol, an authenticated QoS NSLP
//! extension carried by GIST, on a real multi-provider Linux substrate.

pub mod tlv;
pub mod measure;
pub mod vlink;
pub mod rmf;
pub mod api;
