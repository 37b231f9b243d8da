//! Experiments: the paper's §IV measurements, rerun on the real testbed.
//!
//! An experiment file (TOML, in `experiments/`) names a topology and a kind
//! of measurement. `vlsp run FILE` brings the topology up, runs it, tears it
//! down (also on Ctrl-C and on error) and writes to the output folder:
//! `runs.csv` (every run, raw, in µs — the data everything else is derived
//! from), `summary.csv` (the project's summary format), `summary.md` (the
//! paper's tables with our numbers beside the paper's), `meta.json` (what
//! ran where), and the figures. `vlsp report DIR` regenerates summaries and
//! figures from `runs.csv` and `meta.json` alone.
//!
//! Kinds (see [`kinds`]):
//! - `setup-teardown`: Table I, Figs. 9, 10, 11 — virtual link setup and
//!   teardown through tb1's API, periods [A]..[H] from measurement points;
//! - `hmac`: Table II, Fig. 12 — HMAC creation and verification per run;
//! - `auth-compare`: Fig. 13 — setup with and without authentication;
//! - `chain-sweep`: setup over chains of several lengths, against the
//!   paper's formula d = 2·t_s + Σ(g+q+r) + q_h + r_h;
//! - `backends`: setup and teardown with the netlink and script backends;
//! - `qos-isolation`: setup and teardown with QoS enforcement on and off,
//!   the per-hop cost of installing a reservation, and a reserved virtual
//!   link's goodput under a best-effort flood with and without it.
//!
//! Files, bottom up: `paper` (the paper's numbers), `stats`, `plot`,
//! `periods`, `probe` (the machine's speed beside a run), `file`
//! (experiment files), `rows` (`runs.csv`), `meta`
//! (`meta.json`), `progress`, `kinds/*`, `report`, `run`; `graph` draws
//! topologies for `vlsp graph`; `compare` tests two results folders
//! against each other (`vlsp compare`).

pub mod compare;
pub mod file;
pub mod graph;
pub mod kinds;
pub mod meta;
pub mod paper;
pub mod periods;
pub mod plot;
pub mod probe;
pub mod progress;
pub mod report;
pub mod rows;
pub mod run;
#[cfg(test)]
mod scratch;
pub mod stats;

pub use file::{Experiment, Kind};
pub use kinds::{hmac, qos_isolation};
pub use meta::Meta;
pub use report::report;
pub use rows::{Row, read_runs, write_runs};
pub use run::{PAPER_EXPERIMENTS, run};
