//! What a comparison of two results folders found: per metric the two
//! samples' summaries, the change, the difference tests, the equivalence
//! test and the verdict. Plain data, serialised as `--format json`; every
//! value is in µs, as in `runs.csv`.

use serde::Serialize;

use super::hypothesis::{Mwu, Tost, Welch};

/// What the verdict treats as independent replicates. Runs of one `vlsp
/// run` share one topology instance (threads, CPU placement, kernel
/// state), so their spread misses the variation between instances, which
/// on this machine is larger: tests that take the runs as independent call
/// the same code "faster" or "slower". Kalibera and Jones ("Rigorous
/// benchmarking in reasonable time", ISMM 2013) model such timings as
/// random effects per level (execution, iteration) and replicate at the
/// highest level that varies: here the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "unit")]
pub enum Level {
    /// Every run as independent (Mann-Whitney over the runs): too few
    /// sessions on a side, so drift between sessions goes untested.
    Runs,
    /// Each session's median is one replicate (Welch's t-test on their
    /// logarithms; TOST on them).
    Sessions { a: usize, b: usize },
    /// `vlsp ab`: the i-th A and i-th B block ran in the same minutes; each
    /// pair's ratio of block medians is one replicate (paired t-test on the
    /// log ratios; TOST on them).
    Blocks { pairs: usize },
}

impl Level {
    /// The verdict's difference test.
    pub fn test(self) -> &'static str {
        match self {
            Level::Runs => "mann-whitney-u over runs",
            Level::Sessions { .. } => "welch-t on log session medians",
            Level::Blocks { .. } => "paired-t on log block-median ratios",
        }
    }
}

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
    /// The unit of replication of `tost` and the verdict.
    pub level: Level,
    /// The difference test at that level (none at `Level::Runs`, where it
    /// is `mwu`; none too when undefined: no spread, a value ≤ 0).
    pub replicate: Option<Welch>,
    /// A headline metric (its own Holm family, and what --fail-if-slower
    /// looks at); the others are listed and tested as a second family.
    pub headline: bool,
    /// The p-value of the verdict's difference test after Holm's
    /// correction within its family (NaN: no test).
    pub p_holm: f64,
    /// The equivalence test at this metric's margin, at `level` (none: a
    /// value ≤ 0 or no spread).
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
    /// The difference test behind the verdicts (of the first metric; see
    /// each metric's `level`).
    pub primary_test: &'static str,
    /// What the reader must know before trusting a verdict (e.g. too few
    /// sessions for drift between them to be tested).
    pub warnings: Vec<String>,
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

impl Metric {
    /// The change the verdict's test is about, in %: the ratio of the
    /// replicates' geometric means at the session and block levels, the
    /// change of the median over the runs otherwise (one slow outlier run
    /// moves a mean of timing data, not a median).
    pub fn tested_change_pct(&self) -> f64 {
        match (self.level, &self.tost) {
            (Level::Runs, _) | (_, None) => self.change_median_pct,
            (_, Some(t)) => (t.ratio - 1.0) * 100.0,
        }
    }

    /// B significantly longer than A (whatever the margin).
    pub fn significantly_slower(&self, alpha: f64) -> bool {
        let longer = match (self.level, &self.replicate) {
            (Level::Runs, _) => self.mwu.p_b_greater > 0.5,
            (_, Some(w)) => w.t > 0.0,
            (_, None) => false,
        };
        self.p_holm < alpha && longer
    }
}

impl Comparison {
    /// Headline metrics (all metrics when none is) significantly slower
    /// whose tested change exceeds `threshold_pct`.
    pub fn regressions(&self, threshold_pct: f64) -> Vec<&Metric> {
        let any_headline = self.metrics.iter().any(|m| m.headline);
        self.metrics
            .iter()
            .filter(|m| m.headline || !any_headline)
            .filter(|m| m.significantly_slower(self.alpha) && m.tested_change_pct() > threshold_pct)
            .collect()
    }
}
