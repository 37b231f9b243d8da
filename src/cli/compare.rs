//! `vlsp compare A [B]`: two results folders tested against each other.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use super::out;
use crate::experiment::Meta;
use crate::experiment::compare::{self, Options, figure, render};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Md,
    Json,
}

#[derive(Args)]
pub(super) struct CompareArgs {
    /// The baseline: a results folder of `vlsp run` (e.g. results/paper-table1).
    /// With only this argument it is the new run instead, compared against
    /// the committed results/<its experiment>.
    a: PathBuf,
    /// The folder compared against A.
    b: Option<PathBuf>,
    /// Output on standard output.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Exit 1 when a metric is significantly slower (Mann-Whitney, Holm)
    /// and its median grew by more than this much, e.g. "10%".
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    fail_if_slower: Option<f64>,
    /// Family-wise significance level.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// The variant (runs.csv `variant` column) of A to compare; by default
    /// the variants both have, or the only one each has.
    #[arg(long)]
    a_variant: Option<String>,
    /// The variant of B to compare.
    #[arg(long)]
    b_variant: Option<String>,
    /// Only these metrics (comma-separated, `*` as wildcard), e.g.
    /// "setup_A,teardown_*". The Holm correction counts only these.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Where compare.{md,json,png,svg} go (default: B/compare).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Write no files, only standard output.
    #[arg(long)]
    no_files: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (write e.g. 10%)"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s:?}: the threshold must be 0% or more"))
    }
}

/// The committed results folder of the experiment that wrote `new`.
fn committed_baseline(new: &Path) -> Result<PathBuf> {
    let meta = Meta::read(new).with_context(|| {
        format!(
            "{}: without its meta.json the committed baseline is unknown; name both folders",
            new.display()
        )
    })?;
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("results")
        .join(&meta.experiment);
    if !p.join("runs.csv").is_file() {
        bail!(
            "no committed results for {} at {}: name both folders",
            meta.experiment,
            p.display()
        );
    }
    Ok(p)
}

pub(super) fn compare(a: CompareArgs) -> Result<()> {
    if !(a.alpha > 0.0 && a.alpha < 1.0) {
        bail!("--alpha {} must lie strictly between 0 and 1", a.alpha);
    }
    let (dir_a, dir_b) = match a.b {
        Some(b) => (a.a, b),
        None => (committed_baseline(&a.a)?, a.a),
    };
    let o = Options {
        alpha: a.alpha,
        a_variant: a.a_variant,
        b_variant: a.b_variant,
        metrics: a.metrics,
    };
    let c = compare::compare_dirs(&dir_a, &dir_b, &o)?;
    let md = render::markdown(&c);
    if !a.no_files {
        let dir = a.output.unwrap_or_else(|| dir_b.join("compare"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("compare.md"), &md)?;
        std::fs::write(dir.join("compare.json"), render::json(&c))?;
        figure::render(&c, &dir.join("compare"))?;
        eprintln!(
            "compare: wrote {}/compare.{{md,json,png,svg}}",
            dir.display()
        );
    }
    out!(
        "{}",
        match a.format {
            Format::Text => render::text(&c),
            Format::Md => md,
            Format::Json => render::json(&c),
        }
        .trim_end()
    );
    if let Some(t) = a.fail_if_slower {
        let bad = c.regressions(t);
        if !bad.is_empty() {
            let names: Vec<String> = bad
                .iter()
                .map(|m| format!("{} ({:+.1}% median)", m.name, m.change_median_pct))
                .collect();
            bail!(
                "{} significantly slower than {} by more than {t}%: {}",
                dir_b.display(),
                dir_a.display(),
                names.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10%"), Ok(10.0));
        assert_eq!(parse_percent("2.5"), Ok(2.5));
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("ten").unwrap_err().contains("10%"));
    }
}
