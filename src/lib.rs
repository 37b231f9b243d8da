//! vlsp: a testbed for the Virtual Link Setup Protocol, an authenticated QoS NSLP
//! extension carried by GIST, on a real multi-provider Linux substrate.

pub mod api;
pub mod bench;
pub mod experiment;
pub mod gist;
pub mod graph;
pub mod measure;
pub mod node;
pub mod pcap;
pub mod periods;
pub mod plot;
pub mod profile;
pub mod qemu;
pub mod qos;
pub mod qos_experiment;
pub mod qos_nslp;
pub mod qspec;
pub mod rmf;
pub mod session_auth;
pub mod stats;
pub mod substrate;
pub mod testbed;
pub mod tlv;
pub mod topology;
pub mod traffic;
pub mod transport;
pub mod vlink;
pub mod vlsp;
