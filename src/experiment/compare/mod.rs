//! `vlsp compare A B`: do two results folders differ, and by more than
//! matters? For every `runs.csv` column both have (per variant), the two
//! means with confidence intervals, the change, Welch's t-test and the
//! Mann-Whitney U test (Holm-corrected over the metrics), an equivalence
//! test against a margin, and a verdict: faster, slower, equivalent or
//! inconclusive (see [`analyse`]). Output as a terminal table, Markdown or
//! JSON, and a figure of the two distributions side by side.
//!
//! Files: `hypothesis` (the tests, pure), `model` (the result), `analyse`
//! (pairing folders and testing), `render` (table, Markdown, JSON),
//! `figure` (box plots), `interleave` (the pure parts of `vlsp ab`).

pub mod analyse;
pub mod figure;
pub mod hypothesis;
pub mod interleave;
pub mod model;
pub mod render;

pub use analyse::{CompareError, DEFAULT_MARGIN_PCT, Options, compare_dirs, compare_rows};
pub use model::{Comparison, Metric, Verdict};
