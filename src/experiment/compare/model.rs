//! What a comparison of two results folders found: per metric the two
//! samples' summaries, the change, the difference tests, the equivalence
//! test and the verdict. Plain data, serialised as `--format json`; every
//! value is in µs, as in `runs.csv`.

use serde::Serialize;

use super::hypothesis::{Mwu, Tost, Welch};

/// One side of the comparison: a results folder and the variant taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub dir: String,
    /// The `variant` column value whose runs were used.
    pub variant: String,
    /// From `meta.json`, when the folder has one.
    pub experiment: Option<String>,
    pub commit: Option<String>,
    pub date_utc: Option<String>,
}

/// A sample's summary (µs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub n: usize,
    pub mean: f64,
    /// 95% confidence interval of the mean (Student's t).
    pub ci95: (f64, f64),
    pub median: f64,
    pub stddev: f64,
}

/// What the tests say together. With 100 runs Mann-Whitney detects shifts
/// of a few %, smaller than this machine's drift between two runs of the
/// same code, so "significant" alone is not a finding: it must also be
/// beyond the equivalence margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// B's runs are significantly shorter than A's (Mann-Whitney, Holm) and
    /// the ratio of geometric means is below 1 / (1 + margin).
    Faster,
    /// Significantly longer, and the ratio is above 1 + margin.
    Slower,
    /// The equivalence test (TOST) puts the ratio inside the margin.
    Equivalent,
    /// Neither: too few runs or too much spread to tell, or a significant
    /// shift whose size is not shown to be inside or beyond the margin.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Equivalent => "equivalent",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One metric (a `runs.csv` column) compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// The column name without `_us`, prefixed `variant/` when several
    /// variants are paired.
    pub name: String,
    pub a: Sample,
    pub b: Sample,
    /// (mean B − mean A) / mean A, in %.
    pub change_mean_pct: f64,
    /// (median B − median A) / median A, in %: what `--fail-if-slower`
    /// compares with its threshold (one slow outlier run moves a mean of
    /// timing data, not a median).
    pub change_median_pct: f64,
    /// None when either sample has fewer than two runs or no spread.
    pub welch: Option<Welch>,
    /// Welch's p after Holm's correction over the metrics (NaN: no test).
    pub welch_p_holm: f64,
    pub mwu: Mwu,
    /// Mann-Whitney's p after Holm's correction: the difference test.
    pub mwu_p_holm: f64,
    /// The equivalence test at this metric's margin (none: a value ≤ 0 or
    /// no spread).
    pub tost: Option<Tost>,
    pub verdict: Verdict,
    #[serde(skip)]
    pub samples_a: Vec<f64>,
    #[serde(skip)]
    pub samples_b: Vec<f64>,
}

/// Two results folders compared metric by metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
    /// Family-wise significance level (after Holm's correction).
    pub alpha: f64,
    /// The difference test behind the verdict.
    pub primary_test: &'static str,
    /// The default equivalence margin in % (a metric may have its own, see
    /// `tost.margin_pct`).
    pub margin_pct: f64,
    /// A and B were run in alternating blocks (`vlsp ab`), so the machine's
    /// drift is shared rather than part of the difference.
    pub interleaved: bool,
    pub metrics: Vec<Metric>,
    /// Columns only one side has (not compared).
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
}

impl Comparison {
    /// Metrics significantly slower (Mann-Whitney, Holm; whatever the
    /// margin) whose median grew by more than `threshold_pct`.
    pub fn regressions(&self, threshold_pct: f64) -> Vec<&Metric> {
        self.metrics
            .iter()
            .filter(|m| {
                m.mwu_p_holm < self.alpha
                    && m.mwu.p_b_greater > 0.5
                    && m.change_median_pct > threshold_pct
            })
            .collect()
    }
}
