//! Pairs two results folders' runs (variant by variant, column by column)
//! and tests every metric both have.
//!
//! The difference test is the Mann-Whitney U test, Holm-corrected over the
//! metrics: run times are skewed (a long right tail of slow runs), where a
//! rank test keeps its error rate and power and a t-test does not. Welch's
//! t-test is shown beside it for readers who compare means. A significant
//! difference is only called faster or slower when the ratio of geometric
//! means is beyond the equivalence margin; within it, the TOST decides
//! between equivalent and inconclusive (see [`Verdict`]). The TOSTs are not
//! Holm-corrected: "every metric is equivalent" is an intersection-union
//! test, which keeps its level without correction.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use thiserror::Error;

use super::hypothesis::Tost;
use super::hypothesis::{holm, mann_whitney, tost_log, welch};
use super::model::{Comparison, Metric, Sample, Side, Verdict};
use crate::experiment::meta::Meta;
use crate::experiment::rows::{Row, col, read_runs, variants};
use crate::experiment::stats::Summary;

/// What to compare.
#[derive(Debug, Clone)]
pub struct Options {
    /// Family-wise significance level.
    pub alpha: f64,
    /// The variant of A (and of B) to take; by default the variants both
    /// have, or the only one each has.
    pub a_variant: Option<String>,
    pub b_variant: Option<String>,
    /// Metric name patterns (`*` matches any run of characters); empty: all.
    pub metrics: Vec<String>,
    /// Equivalence margin in % (see [`Verdict`]).
    pub margin_pct: f64,
    /// Per-metric margins: the first pattern that matches the metric's
    /// column name wins over `margin_pct`.
    pub margin_for: Vec<(String, f64)>,
    /// The folders come from alternating blocks (`vlsp ab`).
    pub interleaved: bool,
}

/// The default margin: twice what back-to-back runs of the same code
/// differ by at a steady light load on this machine (README, "Comparing
/// runs"); the CLI's `--margin` default says the same.
pub const DEFAULT_MARGIN_PCT: f64 = 10.0;

impl Default for Options {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            a_variant: None,
            b_variant: None,
            metrics: vec![],
            margin_pct: DEFAULT_MARGIN_PCT,
            margin_for: vec![],
            interleaved: false,
        }
    }
}

/// Why two folders cannot be compared.
#[derive(Debug, Error, PartialEq)]
pub enum CompareError {
    #[error(
        "the folders share no variant (A has {a:?}, B has {b:?}): choose with --a-variant and --b-variant"
    )]
    NoCommonVariant { a: Vec<String>, b: Vec<String> },
    #[error("{side} has no variant {want:?} (it has {have:?})")]
    NoSuchVariant {
        side: &'static str,
        want: String,
        have: Vec<String>,
    },
    #[error("no metric is in both folders (and matches --metrics): A has {a:?}, B has {b:?}")]
    NoCommonMetric { a: Vec<String>, b: Vec<String> },
}

/// Compares the results folders `a` (the baseline) and `b`.
pub fn compare_dirs(a: &Path, b: &Path, o: &Options) -> Result<Comparison> {
    let load = |d: &Path| -> Result<(Vec<Row>, Option<Meta>)> {
        let rows = read_runs(&d.join("runs.csv")).with_context(|| {
            format!(
                "{} is not a results folder of `vlsp run` (it needs runs.csv)",
                d.display()
            )
        })?;
        Ok((rows, Meta::read(d).ok()))
    };
    let (ra, ma) = load(a)?;
    let (rb, mb) = load(b)?;
    let side = |d: &Path, m: &Option<Meta>| Side {
        dir: d.display().to_string(),
        variant: String::new(),
        experiment: m.as_ref().map(|m| m.experiment.clone()),
        commit: m.as_ref().map(|m| m.commit.clone()),
        date_utc: m.as_ref().map(|m| m.date_utc.clone()),
    };
    Ok(compare_rows(&ra, &rb, side(a, &ma), side(b, &mb), o)?)
}

/// The (A variant, B variant) pairs to compare.
fn pairs(a: &[Row], b: &[Row], o: &Options) -> Result<Vec<(String, String)>, CompareError> {
    let (va, vb) = (variants(a), variants(b));
    let pick = |side, want: &Option<String>, have: &Vec<String>| match want {
        Some(w) if have.contains(w) => Ok(Some(w.clone())),
        Some(w) => Err(CompareError::NoSuchVariant {
            side,
            want: w.clone(),
            have: have.clone(),
        }),
        None => Ok(None),
    };
    let (pa, pb) = (pick("A", &o.a_variant, &va)?, pick("B", &o.b_variant, &vb)?);
    let only = |v: &Vec<String>| (v.len() == 1).then(|| v[0].clone());
    let no_common = || CompareError::NoCommonVariant {
        a: va.clone(),
        b: vb.clone(),
    };
    match (pa, pb) {
        (Some(x), Some(y)) => Ok(vec![(x, y)]),
        (Some(x), None) => {
            let y = if vb.contains(&x) {
                Some(x.clone())
            } else {
                only(&vb)
            };
            Ok(vec![(x, y.ok_or_else(no_common)?)])
        }
        (None, Some(y)) => {
            let x = if va.contains(&y) {
                Some(y.clone())
            } else {
                only(&va)
            };
            Ok(vec![(x.ok_or_else(no_common)?, y)])
        }
        (None, None) => {
            let common: Vec<_> = va
                .iter()
                .filter(|v| vb.contains(v))
                .map(|v| (v.clone(), v.clone()))
                .collect();
            if !common.is_empty() {
                Ok(common)
            } else if let (Some(x), Some(y)) = (only(&va), only(&vb)) {
                Ok(vec![(x, y)])
            } else {
                Err(no_common())
            }
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((head, tail)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len())
                    .any(|i| s.is_char_boundary(head.len() + i) && glob(tail, &s[head.len() + i..]))
        }
    }
}

fn sample(v: &[f64]) -> Sample {
    let s = Summary::from_samples("", "us", v, None);
    Sample {
        n: s.n,
        mean: s.mean,
        ci95: (s.ci95_low, s.ci95_high),
        median: s.median,
        stddev: s.stddev,
    }
}

fn pct(a: f64, b: f64) -> f64 {
    (b - a) / a * 100.0
}

/// Faster or slower: significant and the ratio beyond the margin (as the
/// point estimate; the direction from the ratio agrees with Mann-Whitney's
/// whenever both are clear). Equivalent: the TOST at `alpha`.
fn verdict(significant: bool, tost: Option<&Tost>, alpha: f64) -> Verdict {
    let Some(t) = tost else {
        return Verdict::Inconclusive;
    };
    let bound = 1.0 + t.margin_pct / 100.0;
    if significant && t.ratio > bound {
        Verdict::Slower
    } else if significant && t.ratio < 1.0 / bound {
        Verdict::Faster
    } else if t.p < alpha {
        Verdict::Equivalent
    } else {
        Verdict::Inconclusive
    }
}

/// Compares rows already read (pure: the folders' reading is above).
pub fn compare_rows(
    a: &[Row],
    b: &[Row],
    mut side_a: Side,
    mut side_b: Side,
    o: &Options,
) -> Result<Comparison, CompareError> {
    let pairs = pairs(a, b, o)?;
    let columns = |rows: &[Row], var: &str| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| r.variant == var)
            .flat_map(|r| r.values.keys().cloned())
            .filter(|k| o.metrics.is_empty() || o.metrics.iter().any(|p| glob(p, k)))
            .collect()
    };
    let prefix = |va: &str| {
        if pairs.len() > 1 {
            format!("{va}/")
        } else {
            String::new()
        }
    };
    let mut metrics = vec![];
    let (mut only_a, mut only_b) = (vec![], vec![]);
    for (va, vb) in &pairs {
        let (ca, cb) = (columns(a, va), columns(b, vb));
        only_a.extend(ca.difference(&cb).map(|c| format!("{}{c}", prefix(va))));
        only_b.extend(cb.difference(&ca).map(|c| format!("{}{c}", prefix(va))));
        for c in ca.intersection(&cb) {
            let (xa, xb) = (col(a, va, c), col(b, vb, c));
            let (sa, sb) = (sample(&xa), sample(&xb));
            let margin = o
                .margin_for
                .iter()
                .find(|(p, _)| glob(p, c))
                .map_or(o.margin_pct, |(_, m)| *m);
            metrics.push(Metric {
                name: format!("{}{c}", prefix(va)),
                change_mean_pct: pct(sa.mean, sb.mean),
                change_median_pct: pct(sa.median, sb.median),
                a: sa,
                b: sb,
                welch: welch(&xa, &xb),
                welch_p_holm: f64::NAN,
                mwu: mann_whitney(&xa, &xb).expect("both columns have runs"),
                mwu_p_holm: f64::NAN,
                tost: tost_log(&xa, &xb, margin, o.alpha),
                verdict: Verdict::Inconclusive,
                samples_a: xa,
                samples_b: xb,
            });
        }
    }
    if metrics.is_empty() {
        let all = |rows: &[Row]| -> Vec<String> {
            let s: BTreeSet<String> = rows.iter().flat_map(|r| r.values.keys().cloned()).collect();
            s.into_iter().collect()
        };
        return Err(CompareError::NoCommonMetric {
            a: all(a),
            b: all(b),
        });
    }
    let pw: Vec<f64> = metrics
        .iter()
        .map(|m| m.welch.map_or(f64::NAN, |w| w.p))
        .collect();
    let pm: Vec<f64> = metrics.iter().map(|m| m.mwu.p).collect();
    for ((m, w), u) in metrics.iter_mut().zip(holm(&pw)).zip(holm(&pm)) {
        m.welch_p_holm = w;
        m.mwu_p_holm = u;
        m.verdict = verdict(u < o.alpha, m.tost.as_ref(), o.alpha);
    }
    let join = |v: Vec<&String>| {
        v.into_iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    side_a.variant = join(pairs.iter().map(|p| &p.0).collect());
    side_b.variant = join(pairs.iter().map(|p| &p.1).collect());
    Ok(Comparison {
        a: side_a,
        b: side_b,
        alpha: o.alpha,
        primary_test: "mann-whitney-u",
        margin_pct: o.margin_pct,
        interleaved: o.interleaved,
        metrics,
        only_in_a: only_a,
        only_in_b: only_b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rows(variant: &str, col: &str, v: &[f64]) -> Vec<Row> {
        v.iter()
            .enumerate()
            .map(|(i, x)| Row {
                variant: variant.into(),
                run: i + 1,
                values: BTreeMap::from([(col.to_string(), *x), ("other".to_string(), 1.0)]),
            })
            .collect()
    }

    fn side() -> Side {
        Side {
            dir: "d".into(),
            variant: String::new(),
            experiment: None,
            commit: None,
            date_utc: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob("setup_*", "setup_A"));
        assert!(glob("*_A", "setup_A"));
        assert!(glob("*", ""));
        assert!(glob("s*A*e", "setup_A_node"));
        assert!(!glob("setup_A", "setup_A_node"));
        assert!(!glob("t*", "setup"));
    }

    #[test]
    fn single_variants_pair_whatever_their_names() {
        let a = rows("netlink", "x", &[1.0, 2.0, 3.0, 4.0]);
        let b = rows("script", "x", &[11.0, 12.0, 13.0, 14.0]);
        let c = compare_rows(&a, &b, side(), side(), &Options::default()).unwrap();
        assert_eq!(
            (c.a.variant.as_str(), c.b.variant.as_str()),
            ("netlink", "script")
        );
        assert_eq!(c.metrics.len(), 2);
        assert_eq!(c.metrics[1].name, "x");
        assert_eq!(c.metrics[1].change_mean_pct, 400.0);
    }

    #[test]
    fn several_variants_need_common_names_or_a_choice() {
        let mut a = rows("netlink", "x", &[1.0, 2.0]);
        a.extend(rows("script", "x", &[5.0, 6.0]));
        let b = rows("auth", "x", &[1.0, 2.0]);
        let e = compare_rows(&a, &b, side(), side(), &Options::default()).unwrap_err();
        assert!(matches!(e, CompareError::NoCommonVariant { .. }), "{e}");
        let o = Options {
            a_variant: Some("script".into()),
            metrics: vec!["x".into()],
            ..Options::default()
        };
        let c = compare_rows(&a, &b, side(), side(), &o).unwrap();
        assert_eq!(c.metrics.len(), 1);
        assert_eq!(c.metrics[0].a.mean, 5.5);
        let o = Options {
            a_variant: Some("nope".into()),
            ..Options::default()
        };
        let e = compare_rows(&a, &b, side(), side(), &o).unwrap_err();
        assert!(e.to_string().contains("A has no variant \"nope\""), "{e}");
        // Against itself: both variants, prefixed.
        let c = compare_rows(&a, &a, side(), side(), &Options::default()).unwrap();
        let names: Vec<_> = c.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["netlink/other", "netlink/x", "script/other", "script/x"]
        );
        assert!(
            c.metrics
                .iter()
                .all(|m| !matches!(m.verdict, Verdict::Faster | Verdict::Slower))
        );
    }

    #[test]
    fn no_common_metric_is_an_error() {
        let a = rows("v", "x", &[1.0]);
        let b = rows("v", "y", &[1.0]);
        let o = Options {
            metrics: vec!["x".into(), "y".into()],
            ..Options::default()
        };
        let e = compare_rows(&a, &b, side(), side(), &o).unwrap_err();
        assert!(matches!(e, CompareError::NoCommonMetric { .. }));
    }
}
