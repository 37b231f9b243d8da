//! A substrate node running NSIS: its resolved configuration and the actors
//! (on threads shared by up to 64 nodes, each node's sockets opened inside
//! its namespace) that run the signaling on real sockets.

pub mod api;
pub mod config;
pub mod core;
pub mod nodefile;
pub mod routes;
pub mod runtime;

pub use config::NodeConfig;
pub use runtime::{
    KERNEL_CPUS_ENV, NODES_PER_THREAD_DEFAULT, NODES_PER_THREAD_ENV, NodeHandle, StartingNode,
    spawn_node, start_node,
};
