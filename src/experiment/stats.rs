//! Summary statistics of measured samples, and the project-wide summary CSV
//! format that every benchmark and experiment writes:
//!
//! ```text
//! metric,unit,n,mean,stddev,ci95_low,ci95_high,min,median,max,paper,ratio
//! ```
//! `stddev` is the sample standard deviation, the CI is the mean's 95%
//! confidence interval from Student's t (as the paper's Table I), `paper` is
//! the paper's average for the same metric (empty when it has none) and
//! `ratio` = paper / mean.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One row of a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub metric: String,
    pub unit: String,
    pub n: usize,
    pub mean: f64,
    pub stddev: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub paper: Option<f64>,
    pub ratio: Option<f64>,
}

/// Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The t quantile for a 95% two-sided interval with `df` degrees of freedom:
/// the table up to 30, then the Cornish-Fisher expansion (accurate to 1e-4).
pub fn t95(df: usize) -> f64 {
    if df == 0 {
        return f64::NAN;
    }
    if df <= 30 {
        return T975[df - 1];
    }
    let z: f64 = 1.959_963_985;
    let d = df as f64;
    z + (z.powi(3) + z) / (4.0 * d)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * d.powi(3))
}

/// A least-squares line through `(x, y)` points: its slope and the
/// half-width of the slope's 95 % confidence interval (Student's t with
/// n − 2 degrees of freedom). `None` with fewer than three points or a
/// single x.
pub fn slope(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let a = my - b * mx;
    let rss: f64 = points.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let se = (rss / (n - 2) as f64 / sxx).sqrt();
    Some((b, t95(n - 2) * se))
}

/// The slope of `y` over `x` where a covariate `z` moves it: the least
/// squares fit of y = a + d·(z − z0) + b·x + c·x·(z − z0), as (b, the
/// half-width of b's 95 % confidence interval, c). b is the slope at
/// z = z0 and c how much one unit of z adds to it (a chain sweep: [A] over
/// routers, with the machine's speed probe as z, z0 its fastest reading;
/// both the fixed part and the per-router part may slow down with it).
/// `None` with fewer than five points or when the terms do not vary apart.
pub fn slope_at(points: &[(f64, f64, f64)], z0: f64) -> Option<(f64, f64, f64)> {
    const K: usize = 4;
    let n = points.len();
    if n <= K {
        return None;
    }
    let rows: Vec<([f64; K], f64)> = points
        .iter()
        .map(|&(x, y, z)| ([1.0, x, x * (z - z0), z - z0], y))
        .collect();
    // Normal equations X'X β = X'y, through the inverse of X'X, which also
    // gives the coefficients' variances.
    let mut xtx = [[0.0; K]; K];
    let mut xty = [0.0; K];
    for (r, y) in &rows {
        for i in 0..K {
            xty[i] += r[i] * y;
            for j in 0..K {
                xtx[i][j] += r[i] * r[j];
            }
        }
    }
    let inv = invert(xtx)?;
    let beta: Vec<f64> = (0..K)
        .map(|i| (0..K).map(|j| inv[i][j] * xty[j]).sum())
        .collect();
    let rss: f64 = rows
        .iter()
        .map(|(r, y)| (y - (0..K).map(|i| r[i] * beta[i]).sum::<f64>()).powi(2))
        .sum();
    let se = (rss / (n - K) as f64 * inv[1][1]).max(0.0).sqrt();
    Some((beta[1], t95(n - K) * se, beta[2]))
}

/// The inverse of a small square matrix by Gauss-Jordan elimination with
/// partial pivoting, `None` when it is (nearly) singular.
fn invert<const K: usize>(mut m: [[f64; K]; K]) -> Option<[[f64; K]; K]> {
    let scale = m.iter().flatten().fold(0.0_f64, |a, v| a.max(v.abs()));
    let mut inv = [[0.0; K]; K];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..K {
        let pivot = (col..K).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let p = m[col][col];
        for j in 0..K {
            m[col][j] /= p;
            inv[col][j] /= p;
        }
        for r in 0..K {
            if r != col {
                let f = m[r][col];
                for j in 0..K {
                    m[r][j] -= f * m[col][j];
                    inv[r][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

impl Summary {
    /// Summarises `samples` (kept in any order; NaNs are not allowed).
    pub fn from_samples(metric: &str, unit: &str, samples: &[f64], paper: Option<f64>) -> Self {
        let n = samples.len();
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let mean = if n > 0 {
            s.iter().sum::<f64>() / n as f64
        } else {
            f64::NAN
        };
        let var = if n > 1 {
            s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let stddev = var.sqrt();
        let half = if n > 1 {
            t95(n - 1) * stddev / (n as f64).sqrt()
        } else {
            0.0
        };
        let median = match n {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        };
        Self {
            metric: metric.to_string(),
            unit: unit.to_string(),
            n,
            mean,
            stddev,
            ci95_low: mean - half,
            ci95_high: mean + half,
            min: s.first().copied().unwrap_or(f64::NAN),
            median,
            max: s.last().copied().unwrap_or(f64::NAN),
            paper,
            ratio: paper.map(|p| p / mean),
        }
    }
}

/// A summary of `v`, or none when there are no samples (a column that the
/// run did not record).
pub fn summarize(metric: &str, unit: &str, v: &[f64], paper: Option<f64>) -> Option<Summary> {
    (!v.is_empty()).then(|| Summary::from_samples(metric, unit, v, paper))
}

/// The mean, NaN for no samples.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// `a - b` run by run (as long as the shorter).
pub fn diff(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// `a + b` run by run (as long as the shorter).
pub fn sum(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Writes summaries as CSV (the header above, fixed precision so that the
/// same data always give the same bytes).
pub fn write_csv(path: &Path, rows: &[Summary]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    std::fs::write(path, to_csv(rows)).with_context(|| format!("cannot write {}", path.display()))
}

/// The CSV text of `rows`.
pub fn to_csv(rows: &[Summary]) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record([
        "metric",
        "unit",
        "n",
        "mean",
        "stddev",
        "ci95_low",
        "ci95_high",
        "min",
        "median",
        "max",
        "paper",
        "ratio",
    ])
    .expect("writing to memory");
    let f = |x: f64| format!("{x:.4}");
    let o = |x: Option<f64>| x.map(f).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.metric.clone(),
            r.unit.clone(),
            r.n.to_string(),
            f(r.mean),
            f(r.stddev),
            f(r.ci95_low),
            f(r.ci95_high),
            f(r.min),
            f(r.median),
            f(r.max),
            o(r.paper),
            o(r.ratio),
        ])
        .expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("flush to memory")).expect("CSV is UTF-8")
}

/// Reads a summary CSV written by [`write_csv`].
pub fn read_csv(path: &Path) -> Result<Vec<Summary>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = vec![];
    for (i, row) in r.deserialize().enumerate() {
        let s: Summary = row.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn known_values_one_to_ten() {
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Summary::from_samples("x", "ms", &x, Some(11.0));
        assert_eq!(s.n, 10);
        assert!(close(s.mean, 5.5, 1e-12));
        assert!(close(s.stddev, 3.02765, 1e-5));
        assert!(close(s.ci95_low, 3.3341, 1e-3), "{}", s.ci95_low);
        assert!(close(s.ci95_high, 7.6659, 1e-3), "{}", s.ci95_high);
        assert_eq!((s.min, s.median, s.max), (1.0, 5.5, 10.0));
        assert!(close(s.ratio.unwrap(), 2.0, 1e-12));
    }

    /// 20 µs per router at z = 5, 4 µs more per unit of z, and a fixed
    /// part that grows with z too: the fit finds both slopes exactly on
    /// exact data, and a wider interval with noise.
    #[test]
    fn slope_at_the_covariates_reference_value() {
        let exact: Vec<(f64, f64, f64)> = [2.0, 10.0, 50.0, 100.0, 500.0]
            .iter()
            .flat_map(|&x| {
                [5.0, 7.0, 10.0].map(|z| (x, 1000.0 + 50.0 * z + (20.0 + 4.0 * (z - 5.0)) * x, z))
            })
            .collect();
        let (b, w, c) = slope_at(&exact, 5.0).unwrap();
        assert!((b - 20.0).abs() < 1e-9 && w < 1e-6 && (c - 4.0).abs() < 1e-9);
        let noisy: Vec<_> = exact
            .iter()
            .enumerate()
            .map(|(i, &(x, y, z))| (x, y + if i % 2 == 0 { 30.0 } else { -30.0 }, z))
            .collect();
        let (b, w, _) = slope_at(&noisy, 5.0).unwrap();
        assert!((b - 20.0).abs() < w && w > 0.0, "{b} ± {w}");
        // z never varies: b and c cannot be told apart.
        let flat: Vec<_> = exact.iter().map(|&(x, y, _)| (x, y, 5.0)).collect();
        assert_eq!(slope_at(&flat, 5.0), None);
        assert_eq!(slope_at(&exact[..4], 5.0), None);
    }

    #[test]
    fn t_quantiles() {
        assert!(close(t95(1), 12.706, 1e-3));
        assert!(close(t95(31), 2.0395, 1e-3));
        assert!(close(t95(99), 1.9842, 1e-3));
        assert!(close(t95(1_000_000), 1.96, 1e-3));
    }

    /// The paper's Table I row [A]: 56.8 ms, sd 1.96, n = 100 gives the
    /// interval it prints, [56.40, 57.16], to within its rounding.
    #[test]
    fn reproduces_paper_interval_width() {
        let half = t95(99) * 1.96 / 10.0;
        assert!(close(56.8 - half, 56.40, 0.02) && close(56.8 + half, 57.16, 0.04));
    }

    #[test]
    fn csv_round_trip() {
        let rows = vec![
            Summary::from_samples("hmac_create", "us", &[0.5, 0.6, 0.7], Some(28.672)),
            Summary::from_samples("setup_A", "ms", &[1.0], None),
        ];
        let dir = crate::experiment::scratch::Scratch::new("stats");
        let p = dir.join("summary.csv");
        write_csv(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with(
            "metric,unit,n,mean,stddev,ci95_low,ci95_high,min,median,max,paper,ratio\n"
        ));
        assert!(text.contains("setup_A,ms,1,1.0000,0.0000,1.0000,1.0000,1.0000,1.0000,1.0000,,\n"));
        let back = read_csv(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].paper, None);
        assert!(close(back[0].mean, 0.6, 1e-4));
        assert!(close(back[0].paper.unwrap(), 28.672, 1e-9));
    }

    #[test]
    fn slope_of_a_line_with_noise_and_its_interval() {
        // y = 2 + 3x exactly: slope 3, no width.
        let exact: Vec<(f64, f64)> = (0..5).map(|x| (x as f64, 2.0 + 3.0 * x as f64)).collect();
        let (b, w) = slope(&exact).unwrap();
        assert!((b - 3.0).abs() < 1e-12 && w.abs() < 1e-9, "{b} {w}");
        // Residuals +1, -1, -1, +1 around y = x: slope 1, se = sqrt(4 / 2 / 5).
        let p = [(0.0, 1.0), (1.0, 0.0), (2.0, 1.0), (3.0, 4.0)];
        let (b, w) = slope(&p).unwrap();
        assert!((b - 1.0).abs() < 1e-12, "{b}");
        assert!((w - 4.303 * (0.4f64).sqrt()).abs() < 1e-9, "{w}");
        assert_eq!(slope(&p[..2]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
    }
}
