//! The kinds of experiment: each measures one of the paper's tables or
//! figures (or a question the paper leaves open) and appends rows to
//! `runs.csv`. Every testbed kind repeats [`setup_teardown::measure`].

pub mod auth_compare;
pub mod backends;
pub mod chain_sweep;
pub mod fault_recovery;
pub mod fault_recovery_metrics;
pub mod fault_recovery_plot;
pub mod hmac;
pub mod qos_isolation;
pub mod setup_teardown;
// issue 17: setups per second under concurrent clients.
pub mod throughput;
mod throughput_report;
