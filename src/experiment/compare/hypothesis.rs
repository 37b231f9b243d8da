//! Two-sample tests for timing data: Welch's t-test, the Mann-Whitney U
//! test, Holm's correction over a family of p-values, and the equivalence
//! test (TOST) on the ratio of geometric means. Pure functions of the
//! samples; the numbers follow scipy's `ttest_ind(equal_var=False)` and
//! `mannwhitneyu(method="auto")` (two-sided) and statsmodels' `ttost_ind(
//! usevar="unequal")` on the logarithms, so they can be checked there.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Welch's t-test of B against A (unequal variances).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Welch {
    /// (mean B − mean A) / standard error: positive when B is larger.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// 95% confidence interval of mean B − mean A.
    pub diff_ci95: (f64, f64),
}

/// Mean and sample variance (n − 1).
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v)
}

/// Welch's t-test; none when a sample has fewer than two values or both
/// have no spread at all (the statistic is undefined, as scipy's NaN).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    let (d, se, df) = welch_parts(a, b)?;
    let t = d / se;
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let p = (2.0 * dist.sf(t.abs())).min(1.0);
    let half = dist.inverse_cdf(0.975) * se;
    Some(Welch {
        t,
        df,
        p,
        diff_ci95: (d - half, d + half),
    })
}

/// Two one-sided Welch tests (TOST) on the logarithms of the run times:
/// is B / A (ratio of geometric means) inside [1 / (1 + m), 1 + m]? Logs
/// because run times are right-skewed and a change of speed multiplies
/// them (the bioequivalence practice); the bounds are symmetric in the log,
/// so "B 10% slower" and "A 10% slower" are the same distance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tost {
    /// The margin m in %.
    pub margin_pct: f64,
    /// Geometric mean of B / geometric mean of A.
    pub ratio: f64,
    /// (1 − 2α) confidence interval of the ratio: equivalence at α is this
    /// interval inside the bounds.
    pub ratio_ci: (f64, f64),
    /// Its confidence level, 1 − 2α.
    pub ci_level: f64,
    /// t against the lower bound (H0: ratio ≤ 1 / (1 + m)).
    pub t_lower: f64,
    /// t against the upper bound (H0: ratio ≥ 1 + m).
    pub t_upper: f64,
    /// Welch–Satterthwaite degrees of freedom (of the logs).
    pub df: f64,
    /// The larger of the two one-sided p-values: below α means equivalent.
    pub p: f64,
}

/// Difference of means (B − A), its standard error and Welch's df; none
/// when a sample has fewer than two values or neither has spread.
fn welch_parts(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        return None;
    }
    let df = se2 * se2 / (sa * sa / (a.len() - 1) as f64 + sb * sb / (b.len() - 1) as f64);
    Some((mb - ma, se2.sqrt(), df))
}

/// The logarithms of `x`; none when a value is not positive or finite.
fn logs(x: &[f64]) -> Option<Vec<f64>> {
    x.iter()
        .map(|v| (*v > 0.0 && v.is_finite()).then(|| v.ln()))
        .collect()
}

/// TOST of B against A with margin `margin_pct` at level `alpha`; none when
/// a value is not positive (no logarithm) or Welch's test is undefined.
pub fn tost_log(a: &[f64], b: &[f64], margin_pct: f64, alpha: f64) -> Option<Tost> {
    let (la, lb) = (logs(a)?, logs(b)?);
    let (d, se, df) = welch_parts(&la, &lb)?;
    tost_parts(d, se, df, margin_pct, alpha)
}

/// Welch's t-test on the logarithms: the replicate-level difference test
/// of `vlsp compare` when both sides have sessions (A and B are then the
/// sessions' medians). `diff_ci95` is of the difference of mean logs (B/A
/// = exp of it). None as [`welch`], or when a value is not positive.
pub fn welch_log(a: &[f64], b: &[f64]) -> Option<Welch> {
    welch(&logs(a)?, &logs(b)?)
}

/// The paired t-test on the log ratios ln(b_i / a_i) (H0: mean 0) and
/// the TOST on the same ratios: the test of `vlsp ab`, whose i-th A and
/// i-th B block ran in the same minutes (one pair of A B B A), so the
/// drift that both share cancels in each pair's ratio. None with fewer
/// than two pairs, unequal lengths, a value that is not positive, or
/// ratios without spread.
pub fn paired_log(a: &[f64], b: &[f64], margin_pct: f64, alpha: f64) -> Option<(Welch, Tost)> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let d: Vec<f64> = logs(a)?.iter().zip(logs(b)?).map(|(x, y)| y - x).collect();
    let n = d.len() as f64;
    let (m, v) = mean_var(&d);
    if v <= 0.0 {
        return None;
    }
    let (se, df) = ((v / n).sqrt(), n - 1.0);
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let t = m / se;
    let half = dist.inverse_cdf(0.975) * se;
    let test = Welch {
        t,
        df,
        p: (2.0 * dist.sf(t.abs())).min(1.0),
        diff_ci95: (m - half, m + half),
    };
    Some((test, tost_parts(m, se, df, margin_pct, alpha)?))
}

/// The TOST from a difference of mean logs, its standard error and df.
fn tost_parts(d: f64, se: f64, df: f64, margin_pct: f64, alpha: f64) -> Option<Tost> {
    let bound = (1.0 + margin_pct / 100.0).ln();
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let t_lower = (d + bound) / se;
    let t_upper = (d - bound) / se;
    let p = dist.sf(t_lower).max(dist.cdf(t_upper));
    let half = dist.inverse_cdf(1.0 - alpha) * se;
    Some(Tost {
        margin_pct,
        ratio: d.exp(),
        ratio_ci: ((d - half).exp(), (d + half).exp()),
        ci_level: 1.0 - 2.0 * alpha,
        t_lower,
        t_upper,
        df,
        p,
    })
}

/// How the Mann-Whitney p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MwuMethod {
    /// The exact distribution of U (no ties, a sample of at most 8).
    Exact,
    /// Normal approximation with tie and continuity correction.
    Asymptotic,
}

/// The Mann-Whitney U test of B against A.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mwu {
    /// U of sample B: the number of pairs (a, b) with b > a, ties counting ½.
    pub u_b: f64,
    /// U_B / (n_A · n_B): the probability that a run of B is slower than
    /// one of A (ties ½); above 0.5 means B tends to be slower.
    pub p_b_greater: f64,
    /// Two-sided p-value.
    pub p: f64,
    pub method: MwuMethod,
}

/// Largest sample size of the smaller sample for the exact distribution
/// (scipy's rule for `method="auto"`).
const EXACT_MAX: usize = 8;

/// Mid-ranks (1-based) of the pooled samples, and Σ(t³ − t) over tie groups.
fn ranks(pooled: &[f64]) -> (Vec<f64>, f64) {
    let mut idx: Vec<usize> = (0..pooled.len()).collect();
    idx.sort_by(|&i, &j| pooled[i].total_cmp(&pooled[j]));
    let mut r = vec![0.0; pooled.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && pooled[idx[j + 1]] == pooled[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mid;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    (r, ties)
}

/// Two-sided Mann-Whitney U test; none when a sample is empty.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<Mwu> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (na, nb) = (a.len(), b.len());
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (r, ties) = ranks(&pooled);
    let rb: f64 = r[na..].iter().sum();
    let u_b = rb - (nb * (nb + 1)) as f64 / 2.0;
    let nn = (na * nb) as f64;
    let u = u_b.max(nn - u_b);
    let (p, method) = if ties == 0.0 && na.min(nb) <= EXACT_MAX {
        (
            (2.0 * exact_sf(u as usize, na.min(nb), na.max(nb))).min(1.0),
            MwuMethod::Exact,
        )
    } else {
        let n = (na + nb) as f64;
        let s = (nn / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
        let p = if s > 0.0 {
            let z = (u - nn / 2.0 - 0.5) / s;
            (2.0 * Normal::standard().sf(z)).min(1.0)
        } else {
            1.0
        };
        (p, MwuMethod::Asymptotic)
    };
    Some(Mwu {
        u_b,
        p_b_greater: u_b / nn,
        p,
        method,
    })
}

/// P(U ≥ k) for samples of sizes m ≤ n without ties. The counts of U are
/// the coefficients of the Gaussian binomial [m+n choose m]_q =
/// Π_{i=1..m} (1 − q^{n+i}) / (1 − q^i), built one factor at a time
/// (every partial product is a polynomial; i128 holds C(n+8, 8) exactly).
fn exact_sf(k: usize, m: usize, n: usize) -> f64 {
    let mut c = vec![0i128; m * n + 1];
    c[0] = 1;
    for i in 1..=m {
        for j in (n + i..c.len()).rev() {
            c[j] -= c[j - n - i];
        }
        for j in i..c.len() {
            c[j] += c[j - i];
        }
    }
    let total: i128 = c.iter().sum();
    let tail: i128 = c[k.min(c.len())..].iter().sum();
    tail as f64 / total as f64
}

/// Holm's step-down adjustment: the adjusted p-values in the input order.
/// NaNs (tests that could not be done) stay NaN and do not count in the
/// family.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = idx.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut run = 0.0f64;
    for (rank, &i) in idx.iter().enumerate() {
        run = run.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn ranks_share_ties() {
        let (r, t) = ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]);
        assert_eq!(r, [4.0, 1.0, 4.0, 2.0, 4.0]);
        assert_eq!(t, 24.0);
    }

    /// The full distribution of U for m = 2, n = 3 by enumeration: the ten
    /// placements give U = 0,1,2,2,3,3,4,4,5,6.
    #[test]
    fn exact_distribution_small() {
        assert!(close(exact_sf(0, 2, 3), 1.0, 1e-12));
        assert!(close(exact_sf(6, 2, 3), 0.1, 1e-12));
        assert!(close(exact_sf(4, 2, 3), 0.4, 1e-12));
        assert!(close(exact_sf(7, 2, 3), 0.0, 1e-12) || exact_sf(7, 2, 3) == 0.0);
    }

    #[test]
    fn complete_separation_small() {
        let m = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(m.method, MwuMethod::Exact);
        assert_eq!(m.u_b, 9.0);
        assert_eq!(m.p_b_greater, 1.0);
        // 2 · 1/C(6,3)
        assert!(close(m.p, 0.1, 1e-12), "{}", m.p);
    }

    #[test]
    fn identical_constant_samples_have_no_difference() {
        let m = mann_whitney(&[2.0; 5], &[2.0; 5]).unwrap();
        assert_eq!(m.method, MwuMethod::Asymptotic);
        assert_eq!(m.p, 1.0);
        assert!(welch(&[2.0; 5], &[2.0; 5]).is_none());
        assert!(welch(&[2.0], &[1.0, 3.0]).is_none());
    }

    /// Equal samples: ratio 1, and the one-sided t's are ±ln(1.1)/se.
    #[test]
    fn tost_of_a_sample_against_itself() {
        let x = [1.0, 2.0, 4.0, 8.0];
        let t = tost_log(&x, &x, 10.0, 0.05).unwrap();
        assert!(close(t.ratio, 1.0, 1e-12));
        assert!(close(t.t_lower, -t.t_upper, 1e-12));
        // The logs are 0, ln2, 2ln2, 3ln2: variance 5/3·ln²2, se² = 2·var/4.
        let se = (5.0f64 / 6.0).sqrt() * 2f64.ln();
        assert!(close(t.t_lower, 1.1f64.ln() / se, 1e-12));
        assert!(t.p > 0.05);
        assert!(tost_log(&[0.0, 1.0], &x, 10.0, 0.05).is_none());
    }

    /// Log ratios ln1.1, 0, ln1.1: mean ⅔·ln1.1, sd ln1.1/√3, se ln1.1/3,
    /// so t = 2 on 2 df, where the t CDF is ½ + t / (2√(2 + t²)): p = 2·(½
    /// − 1/√6). TOST at 10%: t against the bounds 5 and −1, p = F(−1) =
    /// ½ − 1/(2√3).
    #[test]
    fn paired_log_ratios_by_hand() {
        let (a, b) = ([100.0, 200.0, 400.0], [110.0, 200.0, 440.0]);
        let (t, tost) = paired_log(&a, &b, 10.0, 0.05).unwrap();
        assert!(close(t.t, 2.0, 1e-12), "{}", t.t);
        assert_eq!(t.df, 2.0);
        assert!(close(t.p, 1.0 - 2.0 / 6f64.sqrt(), 1e-9), "{}", t.p);
        assert!(close(tost.ratio, 1.1f64.powf(2.0 / 3.0), 1e-12));
        assert!(close(tost.t_lower, 5.0, 1e-12));
        assert!(close(tost.t_upper, -1.0, 1e-12));
        assert!(close(tost.p, 0.5 - 0.5 / 3f64.sqrt(), 1e-9), "{}", tost.p);
        // Unpaired, the same values are far from significant: the pairing
        // is what removes the spread between pairs.
        assert!(welch_log(&a, &b).unwrap().p > 0.7);
        assert!(paired_log(&a, &b[..2], 10.0, 0.05).is_none());
        assert!(paired_log(&a, &a, 10.0, 0.05).is_none());
        assert!(paired_log(&[0.0, 1.0], &[1.0, 1.0], 10.0, 0.05).is_none());
    }

    /// Session medians e^0, e^1, e^2 against e^1, e^2, e^3: the logs
    /// differ by 1 with variance 1 each, so se = √(⅔), t = √1.5 on
    /// (⅔)² / (2·(⅓)²/2) = 4 df, where the t CDF is ½ + x(3 − x²)/4 with
    /// x = t/√(4 + t²) (checked against numerical integration).
    #[test]
    fn welch_on_log_session_medians_by_hand() {
        let e = std::f64::consts::E;
        let a = [1.0, e, e * e];
        let b = [e, e * e, e * e * e];
        let w = welch_log(&a, &b).unwrap();
        assert!(close(w.t, 1.5f64.sqrt(), 1e-12), "{}", w.t);
        assert!(close(w.df, 4.0, 1e-12), "{}", w.df);
        let x = w.t / (4.0 + w.t * w.t).sqrt();
        let sf = 0.5 - x * (3.0 - x * x) / 4.0;
        assert!(close(w.p, 2.0 * sf, 1e-9), "{} vs {}", w.p, 2.0 * sf);
        assert!(welch_log(&[0.0, 1.0], &b).is_none());
    }

    #[test]
    fn holm_steps_down_and_keeps_order() {
        let adj = holm(&[0.01, 0.04, f64::NAN, 0.03]);
        // m = 3: 3·0.01 = 0.03; 2·0.03 = 0.06; max(0.06, 1·0.04) = 0.06
        assert!(close(adj[0], 0.03, 1e-12));
        assert!(close(adj[3], 0.06, 1e-12));
        assert!(close(adj[1], 0.06, 1e-12));
        assert!(adj[2].is_nan());
        assert_eq!(holm(&[0.9, 0.8]), [1.0, 1.0]);
    }
}
