//! The two runs side by side: a panel per metric with a box for A and one
//! for B (quartiles, median, whiskers to the furthest run within 1.5 IQR,
//! slower runs beyond as dots), each panel on its own scale.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::{Comparison, Metric, Verdict};
use crate::experiment::plot::{PALETTE, register_font};

const FAMILY: &str = "sans-serif";
const COLUMNS: usize = 4;
const PANEL: (u32, u32) = (330, 260);
const TITLE_H: u32 = 70;
/// At most this many panels (chain-sweep has hundreds of metrics): the
/// significant ones first, then the rest in order.
pub const MAX_PANELS: usize = 32;

/// The metrics drawn, in panel order.
fn shown(c: &Comparison) -> Vec<&Metric> {
    let mut v: Vec<&Metric> = c.metrics.iter().collect();
    v.sort_by_key(|m| !matches!(m.verdict, Verdict::Faster | Verdict::Slower));
    v.truncate(MAX_PANELS);
    v
}

/// A box's five numbers and its outliers (in the panel's unit).
#[derive(Debug, Clone, PartialEq)]
pub struct BoxStats {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub low: f64,
    pub high: f64,
    pub outliers: Vec<f64>,
}

/// Linear-interpolated quantile of sorted data (numpy's default).
fn quantile(s: &[f64], q: f64) -> f64 {
    let h = (s.len() - 1) as f64 * q;
    let (i, f) = (h.floor() as usize, h.fract());
    if i + 1 < s.len() {
        s[i] + f * (s[i + 1] - s[i])
    } else {
        s[i]
    }
}

impl BoxStats {
    /// Tukey's box of `v` (not empty); at most ~200 distinct outlier dots
    /// (rounded to 1/200 of the range), so 100 000 runs stay a small SVG.
    pub fn of(v: &[f64]) -> Self {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let (q1, median, q3) = (quantile(&s, 0.25), quantile(&s, 0.5), quantile(&s, 0.75));
        let (lo_fence, hi_fence) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
        let inside = s.iter().filter(|x| **x >= lo_fence && **x <= hi_fence);
        let low = inside.clone().next().copied().unwrap_or(q1);
        let high = inside.clone().next_back().copied().unwrap_or(q3);
        let step = (s[s.len() - 1] - s[0]) / 200.0;
        let mut outliers = vec![];
        let mut last = None;
        for x in s.iter().filter(|x| **x < lo_fence || **x > hi_fence) {
            let bucket = if step > 0.0 {
                (x / step).round() as i64
            } else {
                0
            };
            if last != Some(bucket) {
                outliers.push(*x);
                last = Some(bucket);
            }
        }
        Self {
            q1,
            median,
            q3,
            low,
            high,
            outliers,
        }
    }
}

fn e<E: std::fmt::Display>(x: E) -> anyhow::Error {
    anyhow!("{x}")
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, m: &Metric) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (unit, f) = if m.a.mean.abs().max(m.b.mean.abs()) >= 1000.0 {
        ("ms", 1e-3)
    } else {
        ("µs", 1.0)
    };
    let scale = |v: &[f64]| v.iter().map(|x| x * f).collect::<Vec<_>>();
    let boxes = [
        BoxStats::of(&scale(&m.samples_a)),
        BoxStats::of(&scale(&m.samples_b)),
    ];
    let all = m.samples_a.iter().chain(&m.samples_b).map(|x| x * f);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-3).max(1e-9);
    let mark = match m.verdict {
        Verdict::Slower => " ▲",
        Verdict::Faster => " ▼",
        Verdict::Equivalent => " =",
        Verdict::Inconclusive => "",
    };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}{mark}", m.name), (FAMILY, 15))
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..2.0, (lo - pad)..(hi + pad))
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(format!("A  {:+.1}% (median)  B", m.change_median_pct))
        .y_desc(unit)
        .y_labels(5)
        .label_style((FAMILY, 11))
        .axis_desc_style((FAMILY, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    for (i, b) in boxes.iter().enumerate() {
        let c = PALETTE[if i == 0 { 2 } else { 0 }];
        let x = 0.5 + i as f64;
        let (l, r) = (x - 0.28, x + 0.28);
        let line = ShapeStyle::from(&c).stroke_width(2);
        chart
            .draw_series([Rectangle::new([(l, b.q1), (r, b.q3)], c.mix(0.25).filled())])
            .map_err(e)?;
        chart
            .draw_series([Rectangle::new([(l, b.q1), (r, b.q3)], line)])
            .map_err(e)?;
        let segs = [
            [(l, b.median), (r, b.median)],
            [(x, b.q3), (x, b.high)],
            [(x, b.q1), (x, b.low)],
            [(x - 0.12, b.high), (x + 0.12, b.high)],
            [(x - 0.12, b.low), (x + 0.12, b.low)],
        ];
        chart
            .draw_series(segs.iter().map(|s| PathElement::new(s.to_vec(), line)))
            .map_err(e)?;
        chart
            .draw_series(
                b.outliers
                    .iter()
                    .map(|y| Circle::new((x, *y), 2, c.filled())),
            )
            .map_err(e)?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Comparison) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e)?;
    let (title, body) = root.split_vertically(TITLE_H);
    let line = |tag: &str, s: &super::model::Side| format!("{tag}: {} ({})", s.dir, s.variant);
    title
        .draw_text(
            &line("A (blue)", &c.a),
            &(FAMILY, 16).into_text_style(&title).color(&PALETTE[2]),
            (12, 8),
        )
        .map_err(e)?;
    title
        .draw_text(
            &line("B (vermillion)", &c.b),
            &(FAMILY, 16).into_text_style(&title).color(&PALETTE[0]),
            (12, 30),
        )
        .map_err(e)?;
    let shown = shown(c);
    let note = if shown.len() < c.metrics.len() {
        format!(
            "; {} of {} metrics, faster/slower first (all in compare.json)",
            shown.len(),
            c.metrics.len()
        )
    } else {
        String::new()
    };
    title
        .draw_text(
            &format!(
                "▲ slower, ▼ faster (Mann-Whitney U, Holm, and beyond ±{}%), = equivalent (TOST){note}",
                c.margin_pct
            ),
            &(FAMILY, 13).into_text_style(&title),
            (12, 52),
        )
        .map_err(e)?;
    let rows = shown.len().div_ceil(COLUMNS).max(1);
    let panels = body.split_evenly((rows, COLUMNS));
    for (m, area) in shown.into_iter().zip(&panels) {
        panel(area, m)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Writes `<base>.png` and `<base>.svg`; returns both paths.
pub fn render(c: &Comparison, base: &Path) -> Result<(PathBuf, PathBuf)> {
    register_font()?;
    let rows = shown(c).len().div_ceil(COLUMNS).max(1) as u32;
    let size = (PANEL.0 * COLUMNS as u32, TITLE_H + PANEL.1 * rows);
    let png = base.with_extension("png");
    let svg = base.with_extension("svg");
    if let Some(dir) = base.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    draw(&BitMapBackend::new(&png, size).into_drawing_area(), c)
        .with_context(|| format!("drawing {}", png.display()))?;
    draw(&SVGBackend::new(&svg, size).into_drawing_area(), c)
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok((png, svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy.percentile([1..=9, 30], [25, 50, 75]) = 3.25, 5.5, 7.75; the
    /// upper fence 7.75 + 1.5·4.5 = 14.5 leaves 30 outside.
    #[test]
    fn tukey_box() {
        let mut v: Vec<f64> = (1..=9).map(f64::from).collect();
        v.push(30.0);
        let b = BoxStats::of(&v);
        assert_eq!((b.q1, b.median, b.q3), (3.25, 5.5, 7.75));
        assert_eq!((b.low, b.high), (1.0, 9.0));
        assert_eq!(b.outliers, [30.0]);
        let many: Vec<f64> = (0..100_000)
            .map(|i| f64::from(i % 1000) + if i % 10 == 0 { 5000.0 } else { 0.0 })
            .collect();
        assert!(BoxStats::of(&many).outliers.len() <= 201);
    }
}
