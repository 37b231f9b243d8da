//! Figures in the paper's style (line charts of a quantity per run), drawn
//! with plotters to PNG and SVG.
//!
//! Text is rendered from a font compiled into the binary (DejaVu Sans), never
//! from the machine's font configuration, so a figure looks the same, and is
//! the same bytes, on every machine: `vlsp report` can regenerate exactly
//! the figures a run drew.

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

pub fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the bundled font assets/DejaVuSans.ttf is not a valid TTF"));
    });
    res
}

/// The colours of successive series (colour-blind safe, Okabe-Ito).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0xd5, 0x5e, 0x00), // vermillion
    RGBColor(0x00, 0x00, 0x00), // black
    RGBColor(0x00, 0x72, 0xb2), // blue
    RGBColor(0x00, 0x9e, 0x73), // green
    RGBColor(0xcc, 0x79, 0xa7), // purple
    RGBColor(0xe6, 0x9f, 0x00), // orange
    RGBColor(0x56, 0xb4, 0xe9), // sky blue
    RGBColor(0x99, 0x99, 0x99), // grey
];

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw markers at the points (for sparse series such as a sweep).
    pub markers: bool,
}

impl Series {
    /// A series over run numbers 1..=n.
    pub fn per_run(name: &str, values: &[f64]) -> Self {
        Self {
            name: name.to_string(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64, *v))
                .collect(),
            markers: false,
        }
    }
}

/// A horizontal reference line (e.g. the paper's average) drawn dashed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub name: String,
    pub value: f64,
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    /// Label of the y axis, with the unit, e.g. "duration [ms]".
    pub y_label: String,
    pub series: Vec<Series>,
    pub references: Vec<Reference>,
    /// Start the y axis at zero (the paper's figures do).
    pub y_from_zero: bool,
}

/// Pixel size of every figure.
pub const SIZE: (u32, u32) = (1000, 620);

impl LineChart {
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.references.iter().map(|r| r.value));
        let (mut x0, mut x1) = minmax(xs).unwrap_or((0.0, 1.0));
        let (mut y0, mut y1) = minmax(ys).unwrap_or((0.0, 1.0));
        if self.y_from_zero {
            y0 = y0.min(0.0);
        }
        if x1 <= x0 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        // Headroom above the highest value for the legend.
        let span = y1 - y0;
        ((x0, x1), (y0, y1 + 0.25 * span))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 26))
            .margin(18)
            .x_label_area_size(52)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .x_label_formatter(&|x| {
                if x.fract() == 0.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x}")
                }
            })
            .y_desc(&self.y_label)
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 18))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let style = ShapeStyle::from(&color).stroke_width(2);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(|e| anyhow!("{e}"))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            if s.markers {
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .map(|p| Circle::new(*p, 4, ShapeStyle::from(&color).filled())),
                    )
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        for (i, r) in self.references.iter().enumerate() {
            let color = PALETTE[(self.series.len() + i) % PALETTE.len()];
            let style = ShapeStyle::from(&color).stroke_width(1);
            let v = r.value;
            chart
                .draw_series(DashedLineSeries::new([(x0, v), (x1, v)], 8, 6, style))
                .map_err(|e| anyhow!("{e}"))?
                .label(r.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
        Ok(())
    }

    /// Writes `<base>.png` and `<base>.svg`; returns both paths.
    pub fn render(&self, base: &Path) -> Result<(PathBuf, PathBuf)> {
        register_font()?;
        let png = base.with_extension("png");
        let svg = base.with_extension("svg");
        if let Some(dir) = base.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        {
            let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            self.draw(&root)
                .with_context(|| format!("drawing {}", png.display()))?;
        }
        {
            let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            self.draw(&root)
                .with_context(|| format!("drawing {}", svg.display()))?;
        }
        Ok((png, svg))
    }
}

fn minmax(it: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    it.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((a, b)) => Some((a.min(v), b.max(v))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> LineChart {
        LineChart {
            title: "Virtual link setup (test)".into(),
            x_label: "run".into(),
            y_label: "duration [ms]".into(),
            series: vec![
                Series::per_run("[A] external program", &[1.0, 1.2, 0.9, 1.1]),
                Series::per_run("[C] tunnel end on tb4", &[0.2, 0.25, 0.2, 0.21]),
            ],
            references: vec![Reference {
                name: "paper [A] 56.8 ms".into(),
                value: 1.5,
            }],
            y_from_zero: true,
        }
    }

    #[test]
    fn renders_png_and_svg_deterministically() {
        let dir = std::env::temp_dir().join(format!("vlsp-plot-{}", std::process::id()));
        let (png1, svg1) = chart().render(&dir.join("a")).unwrap();
        let (png2, svg2) = chart().render(&dir.join("b")).unwrap();
        let (p1, p2) = (std::fs::read(&png1).unwrap(), std::fs::read(&png2).unwrap());
        assert_eq!(&p1[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(p1, p2, "same data must give the same PNG bytes");
        let (s1, s2) = (
            std::fs::read_to_string(&svg1).unwrap(),
            std::fs::read_to_string(&svg2).unwrap(),
        );
        assert_eq!(s1, s2);
        assert!(s1.starts_with("<svg") && s1.contains("duration [ms]"));
        assert!(s1.contains("paper [A] 56.8 ms"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_and_flat_series_still_draw() {
        let mut c = chart();
        c.series = vec![Series::per_run("flat", &[2.0, 2.0])];
        c.references.clear();
        let dir = std::env::temp_dir().join(format!("vlsp-plot-flat-{}", std::process::id()));
        c.render(&dir.join("f")).unwrap();
        c.series.clear();
        c.render(&dir.join("e")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
