//! vlsp: a testbed for the Virtual Link Setup Protocol, an authenticated QoS NSLP
//! extension carried by GIST, on a real multi-provider Linux substrate.
//!
//! Layers, bottom up; a layer imports only the layers below it
//! (`tests/architecture.rs` keeps it so):
//!
//! | layer | holds |
//! |---|---|
//! | `model` | shared plain types: rates, ports, tunnel kinds, run paths, measurement points |
//! | `wire` | pure bytes: TLV, GIST, QoS NSLP, QSPEC, VLSP, session authorization |
//! | `proto` | sans-IO machines: GIST, QoS NSLP, resource management |
//! | `topology` | topology files: parse, validate, routes, generate |
//! | `kernel` | namespaces, links, tc, tunnels, sockets, QEMU, capture, traffic |
//! | `node` | a signaling node: its configuration, API types, actors |
//! | `testbed` | a running topology: substrate, nodes, guests |
//! | `experiment` | experiment files, runs, statistics, reports, figures |
//! | `cli` | the `vlsp` command line |

pub mod cli;
pub mod experiment;
pub mod kernel;
pub mod model;
pub mod node;
pub mod proto;
pub mod testbed;
pub mod topology;
pub mod wire;
