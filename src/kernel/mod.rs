//! The Linux kernel seams: namespaces and the journal, substrate links and
//! routes, traffic control, tunnel ends, GIST sockets, QEMU guests, packet
//! capture and the traffic generator. Everything here talks to the kernel;
//! nothing here knows the signaling protocols' state.

pub mod announce_filter;
pub mod bird;
pub mod bpf;
pub mod capture;
pub mod journal;
pub mod links;
pub mod live;
pub mod netns;
pub mod process;
pub mod qemu;
pub mod routes;
pub mod routing;
pub mod sockets;
pub mod substrate;
pub mod tc;
pub mod traffic;
pub mod tunnel;
