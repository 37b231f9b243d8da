//! Pairs two results folders' runs (variant by variant, column by column)
//! and tests every metric both have.
//!
//! The unit of replication (see [`Level`]): when both folders have at
//! least [`MIN_SESSIONS`] sessions, each session's median is one value and
//! the difference test is Welch's t-test on their logarithms; from `vlsp
//! ab`, the paired t-test on the log ratios of the blocks' medians.
//! Otherwise, with the warning that drift between sessions is untested,
//! every run counts and the test is Mann-Whitney's U: run times are skewed
//! (a long right tail of slow runs), where a rank test keeps its error rate
//! and power and a t-test does not. Welch's t-test over the runs is shown
//! beside it. Holm's correction runs over two families: the headline
//! metrics (the experiment's end-to-end periods, `--headline`) and the
//! rest, so the many per-hop sub-periods do not dilute the headline. A significant
//! difference is only called faster or slower when the ratio of geometric
//! means is beyond the equivalence margin; within it, the TOST decides
//! between equivalent and inconclusive (see [`Verdict`]). The TOSTs are not
//! Holm-corrected: "every metric is equivalent" is an intersection-union
//! test, which keeps its level without correction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use thiserror::Error;

use super::hypothesis::Tost;
use super::hypothesis::{Welch, holm, mann_whitney, paired_log, tost_log, welch, welch_log};
use super::model::{Comparison, Level, Metric, Sample, Side, Verdict};
use crate::experiment::meta::Meta;
use crate::experiment::rows::{Row, col, is_metric, read_runs, session, variants};
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
    /// The folders come from alternating blocks (`vlsp ab`): their rows are
    /// block medians, paired by run number.
    pub interleaved: bool,
    /// Headline metric patterns (matched against the column name): their
    /// own Holm family and what `--fail-if-slower` looks at; when none
    /// matches, every metric is headline.
    pub headline: Vec<String>,
}

/// The end-to-end periods of a setup and a teardown (paper Table I's first
/// rows): what a user of the API waits for.
pub const DEFAULT_HEADLINE: [&str; 2] = ["setup_A", "teardown_A"];

/// Sessions each side needs for the session-level test: with two, the
/// variance between sessions has one degree of freedom per side.
pub const MIN_SESSIONS: usize = 3;

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
            headline: DEFAULT_HEADLINE.map(String::from).to_vec(),
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

/// The rows (runs, or blocks) of one variant.
fn variants_runs(rows: &[Row], variant: &str) -> usize {
    rows.iter().filter(|r| r.variant == variant).count()
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

/// One variant's values of a column grouped by `key` (session or run).
fn grouped(
    rows: &[Row],
    variant: &str,
    c: &str,
    key: fn(&Row) -> usize,
) -> BTreeMap<usize, Vec<f64>> {
    let mut g: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.variant == variant) {
        if let Some(v) = r.values.get(c) {
            g.entry(key(r)).or_default().push(*v);
        }
    }
    g
}

fn median(v: &[f64]) -> f64 {
    Summary::from_samples("", "us", v, None).median
}

/// The sessions of one variant (distinct `session` values of its rows).
fn sessions(rows: &[Row], variant: &str) -> usize {
    let s: BTreeSet<usize> = rows
        .iter()
        .filter(|r| r.variant == variant)
        .map(session)
        .collect();
    s.len()
}

/// The replicate-level tests of one metric: the difference test and the
/// TOST (none at `Level::Runs`, where the runs' tests apply).
fn replicate_tests(
    level: Level,
    (a, b): (&[Row], &[Row]),
    (va, vb): (&str, &str),
    c: &str,
    margin: f64,
    alpha: f64,
) -> (Option<Welch>, Option<Tost>) {
    match level {
        Level::Runs => (None, None),
        Level::Sessions { .. } => {
            let med = |rows, v| -> Vec<f64> {
                grouped(rows, v, c, session)
                    .values()
                    .map(|x| median(x))
                    .collect()
            };
            let (ma, mb) = (med(a, va), med(b, vb));
            (welch_log(&ma, &mb), tost_log(&ma, &mb, margin, alpha))
        }
        Level::Blocks { .. } => {
            let run = |r: &Row| r.run;
            let (ga, gb) = (grouped(a, va, c, run), grouped(b, vb, c, run));
            let (xa, xb): (Vec<f64>, Vec<f64>) = ga
                .iter()
                .filter_map(|(k, x)| Some((median(x), median(gb.get(k)?))))
                .unzip();
            match paired_log(&xa, &xb, margin, alpha) {
                Some((t, tost)) => (Some(t), Some(tost)),
                None => (None, None),
            }
        }
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
            .filter(|k| is_metric(k))
            .filter(|k| o.metrics.is_empty() || o.metrics.iter().any(|p| glob(p, k)))
            .collect()
    };
    let mut warnings = vec![];
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
        let (sa, sb) = (sessions(a, va), sessions(b, vb));
        let (na, nb) = (variants_runs(a, va), variants_runs(b, vb));
        let level = if o.interleaved && na == nb && na >= 2 {
            Level::Blocks { pairs: na }
        } else if sa >= MIN_SESSIONS && sb >= MIN_SESSIONS {
            Level::Sessions { a: sa, b: sb }
        } else {
            Level::Runs
        };
        if level == Level::Runs && !o.interleaved {
            warnings.push(format!(
                "{}A has {sa} session(s) and B {sb}: with fewer than {MIN_SESSIONS} on a side every run counts as independent, but runs of one session share its topology instance, so drift between sessions is untested and the same code can come out faster or slower; run both with `sessions = 5` (or `vlsp run --sessions 5`), or use `vlsp ab`",
                prefix(va)
            ));
        }
        if o.interleaved && !matches!(level, Level::Blocks { .. }) {
            warnings.push(format!(
                "{}A has {na} block(s) and B {nb}: interleaved blocks are paired only when both sides have the same number, 2 or more, so these are compared {} instead (the drift between blocks is not cancelled); run `vlsp ab` again until every block finishes",
                prefix(va),
                if level == Level::Runs {
                    "run by run as if independent"
                } else {
                    "as independent sessions"
                }
            ));
        }
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
            let (replicate, tost) = match level {
                Level::Runs => (None, tost_log(&xa, &xb, margin, o.alpha)),
                _ => replicate_tests(level, (a, b), (va, vb), c, margin, o.alpha),
            };
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
                level,
                replicate,
                headline: o.headline.iter().any(|p| glob(p, c)),
                p_holm: f64::NAN,
                tost,
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
    if !metrics.iter().any(|m| m.headline) {
        for m in &mut metrics {
            m.headline = true;
        }
    }
    for family in [true, false] {
        let idx: Vec<usize> = (0..metrics.len())
            .filter(|&i| metrics[i].headline == family)
            .collect();
        let ps = |f: &dyn Fn(&Metric) -> f64| -> Vec<f64> {
            holm(&idx.iter().map(|&i| f(&metrics[i])).collect::<Vec<_>>())
        };
        let pw = ps(&|m| m.welch.map_or(f64::NAN, |w| w.p));
        let pm = ps(&|m| m.mwu.p);
        let pp = ps(&|m| match m.level {
            Level::Runs => m.mwu.p,
            _ => m.replicate.map_or(f64::NAN, |w| w.p),
        });
        for (k, &i) in idx.iter().enumerate() {
            let m = &mut metrics[i];
            (m.welch_p_holm, m.mwu_p_holm, m.p_holm) = (pw[k], pm[k], pp[k]);
            m.verdict = verdict(pp[k] < o.alpha, m.tost.as_ref(), o.alpha);
        }
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
        primary_test: metrics[0].level.test(),
        warnings,
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

    /// Runs tagged with sessions: `per` runs of each session's value.
    fn sessions_rows(values: &[f64], per: usize) -> Vec<Row> {
        let mut out = vec![];
        for (s, v) in values.iter().enumerate() {
            for k in 0..per {
                out.push(Row {
                    variant: "auth".into(),
                    run: out.len() + 1,
                    values: BTreeMap::from([
                        ("setup_A".to_string(), v + k as f64 * 0.01),
                        (
                            crate::experiment::rows::SESSION_KEY.to_string(),
                            (s + 1) as f64,
                        ),
                    ]),
                });
            }
        }
        out
    }

    /// Sessions 100, 120, 140 against 115, 135, 155 with tight runs inside
    /// each: over the 60 + 60 runs Mann-Whitney sees a shift beyond the
    /// margin ("slower"); the session medians (3 + 3 replicates) do not.
    #[test]
    fn drift_between_sessions_is_not_a_finding() {
        let (a, b) = (
            sessions_rows(&[100.0, 120.0, 140.0], 20),
            sessions_rows(&[115.0, 135.0, 155.0], 20),
        );
        let c = compare_rows(&a, &b, side(), side(), &Options::default()).unwrap();
        let m = &c.metrics[0];
        assert_eq!(m.level, Level::Sessions { a: 3, b: 3 });
        assert!(m.headline && c.warnings.is_empty());
        assert!(m.p_holm > 0.05, "{}", m.p_holm);
        assert_eq!(m.verdict, Verdict::Inconclusive);
        assert!(m.mwu.p < 0.01, "the runs-level test alone would call it");
        // With one session per side, the runs are all there is: warned.
        let strip = |rows: &[Row]| -> Vec<Row> {
            rows.iter()
                .cloned()
                .map(|mut r| {
                    r.values.remove(crate::experiment::rows::SESSION_KEY);
                    r
                })
                .collect()
        };
        let c = compare_rows(&strip(&a), &strip(&b), side(), side(), &Options::default()).unwrap();
        assert_eq!(c.metrics[0].level, Level::Runs);
        assert_eq!(c.metrics[0].verdict, Verdict::Slower);
        assert!(c.warnings[0].contains("1 session(s)"), "{:?}", c.warnings);
    }

    /// Session medians e^0..e^2 against e^1..e^3: the test of the session
    /// level is `welch_log` of the medians (t = √1.5, 4 df, see
    /// hypothesis), and alone in its family Holm leaves its p as it is.
    #[test]
    fn session_level_tests_the_session_medians() {
        let e = std::f64::consts::E;
        let (a, b) = (
            sessions_rows(&[1.0, e, e * e], 3),
            sessions_rows(&[e, e * e, e * e * e], 3),
        );
        let c = compare_rows(&a, &b, side(), side(), &Options::default()).unwrap();
        let m = &c.metrics[0];
        // Medians are the middle run: value + 0.01.
        let med = |x: f64| x + 0.01;
        let w = welch_log(
            &[med(1.0), med(e), med(e * e)],
            &[med(e), med(e * e), med(e * e * e)],
        )
        .unwrap();
        assert_eq!(m.replicate.unwrap(), w);
        assert_eq!(m.p_holm, w.p);
        assert!(c.primary_test.contains("session medians"));
    }

    /// `vlsp ab`'s folders: block medians paired by run number; the
    /// fixture of hypothesis::paired_log_ratios_by_hand (t = 2 on 2 df).
    #[test]
    fn interleaved_blocks_are_paired() {
        let a = rows("auth", "setup_A", &[100.0, 200.0, 400.0]);
        let b = rows("auth", "setup_A", &[110.0, 200.0, 440.0]);
        let o = Options {
            interleaved: true,
            ..Options::default()
        };
        let c = compare_rows(&a, &b, side(), side(), &o).unwrap();
        let m = c.metrics.iter().find(|m| m.name == "setup_A").unwrap();
        assert_eq!(m.level, Level::Blocks { pairs: 3 });
        assert!((m.replicate.unwrap().t - 2.0).abs() < 1e-12);
        assert!((m.p_holm - (1.0 - 2.0 / 6f64.sqrt())).abs() < 1e-9);
        assert!(m.headline);
        // "other" is not headline: its own family, and not a regression.
        assert!(
            !c.metrics
                .iter()
                .find(|m| m.name == "other")
                .unwrap()
                .headline
        );
    }

    /// Blocks that cannot be paired are not compared silently as runs.
    #[test]
    fn unequal_block_counts_say_the_pairing_is_lost() {
        let a = rows("auth", "setup_A", &[100.0, 200.0, 400.0]);
        let b = rows("auth", "setup_A", &[110.0, 200.0]);
        let o = Options {
            interleaved: true,
            ..Options::default()
        };
        let c = compare_rows(&a, &b, side(), side(), &o).unwrap();
        let m = c.metrics.iter().find(|m| m.name == "setup_A").unwrap();
        assert_eq!(m.level, Level::Runs);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("A has 3 block(s) and B 2") && w.contains("run by run")),
            "{:?}",
            c.warnings
        );
        // Equal counts: no such warning.
        let b = rows("auth", "setup_A", &[110.0, 200.0, 440.0]);
        let c = compare_rows(&a, &b, side(), side(), &o).unwrap();
        assert!(
            !c.warnings.iter().any(|w| w.contains("block(s)")),
            "{:?}",
            c.warnings
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
