//! `vlsp compare A [B]`: two results folders tested against each other.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use super::out;
use crate::experiment::Meta;
use crate::experiment::compare::{self, Comparison, Options, figure, render};

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Format {
    Text,
    Md,
    Json,
}

/// How a comparison is judged and shown (shared by `vlsp compare` and
/// `vlsp ab`).
#[derive(Args)]
pub(super) struct Judge {
    /// Output on standard output.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Exit 1 when a headline metric (--headline) is significantly slower
    /// and grew by more than this much, e.g. "10%" (whatever --margin
    /// says): the ratio of session (or block-pair) geometric means when
    /// both sides have sessions (or from `vlsp ab`), else the median.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub fail_if_slower: Option<f64>,
    /// Equivalence margin: a significant change is called faster/slower
    /// only when B/A (ratio of geometric means) is beyond 1 ± this; inside
    /// it the equivalence test (TOST) says equivalent or inconclusive. 10%
    /// by default: twice what two back-to-back runs of the same code
    /// differed by at a steady light load on this machine (README,
    /// "Comparing runs"). Under a changing load runs minutes apart differ
    /// by tens of %: judge code changes with `vlsp ab`, not a wider margin.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent,
          default_value = "10%")]
    pub margin: f64,
    /// A metric's own margin, PATTERN=PERCENT (repeatable; first match
    /// wins; `*` as wildcard), e.g. "teardown_delete_*=25%".
    #[arg(long, value_name = "PATTERN=PERCENT", value_parser = parse_margin_for)]
    pub margin_for: Vec<(String, f64)>,
    /// Family-wise significance level (also the TOST's level).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Only these metrics (comma-separated, `*` as wildcard), e.g.
    /// "setup_A,teardown_*". The Holm correction counts only these.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// The headline metrics (comma-separated, `*` as wildcard): their own
    /// Holm family, the tally's headline and what --fail-if-slower looks
    /// at; the other metrics are still listed and tested ("*": all).
    #[arg(long, value_delimiter = ',', default_value = "setup_A,teardown_A")]
    pub headline: Vec<String>,
}

impl Judge {
    pub fn options(&self, interleaved: bool) -> Result<Options> {
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            bail!(
                "--alpha {} must lie strictly between 0 and 0.5 (the TOST uses a 1 − 2α interval)",
                self.alpha
            );
        }
        Ok(Options {
            alpha: self.alpha,
            metrics: self.metrics.clone(),
            margin_pct: self.margin,
            margin_for: self.margin_for.clone(),
            interleaved,
            headline: self.headline.clone(),
            ..Options::default()
        })
    }

    /// Writes compare.{md,json,png,svg} into `files` (if any), prints the
    /// comparison (and `extra_md` after a text or Markdown table), and
    /// fails on a regression beyond --fail-if-slower.
    pub fn report(
        &self,
        c: &Comparison,
        files: Option<&Path>,
        extra_md: &str,
        dir_a: &Path,
        dir_b: &Path,
    ) -> Result<()> {
        let md = render::markdown(c);
        if let Some(dir) = files {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(dir.join("compare.md"), format!("{md}{extra_md}"))?;
            std::fs::write(dir.join("compare.json"), render::json(c))?;
            figure::render(c, &dir.join("compare"))?;
            eprintln!(
                "compare: wrote {}/compare.{{md,json,png,svg}}",
                dir.display()
            );
        }
        let shown = match self.format {
            Format::Text => render::text(c) + extra_md,
            Format::Md => md + extra_md,
            Format::Json => render::json(c),
        };
        out!("{}", shown.trim_end());
        if let Some(t) = self.fail_if_slower {
            let bad = c.regressions(t);
            if !bad.is_empty() {
                let names: Vec<String> = bad
                    .iter()
                    .map(|m| format!("{} ({:+.1}%)", m.name, m.tested_change_pct()))
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
}

#[derive(Args)]
pub(super) struct CompareArgs {
    /// The baseline: a results folder of `vlsp run` (e.g. results/paper-table1).
    /// With only this argument it is the new run instead, compared against
    /// the committed results/<its experiment>.
    a: PathBuf,
    /// The folder compared against A.
    b: Option<PathBuf>,
    #[command(flatten)]
    judge: Judge,
    /// The variant (runs.csv `variant` column) of A to compare; by default
    /// the variants both have, or the only one each has.
    #[arg(long)]
    a_variant: Option<String>,
    /// The variant of B to compare.
    #[arg(long)]
    b_variant: Option<String>,
    /// Where compare.{md,json,png,svg} go (default: B/compare).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Write no files, only standard output.
    #[arg(long)]
    no_files: bool,
}

pub(super) fn parse_percent(s: &str) -> Result<f64, String> {
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

fn parse_margin_for(s: &str) -> Result<(String, f64), String> {
    let (pat, pct) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not PATTERN=PERCENT (write e.g. setup_hmac_*=30%)"))?;
    Ok((pat.trim().to_string(), parse_percent(pct)?))
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
    let (dir_a, dir_b) = match a.b {
        Some(b) => (a.a, b),
        None => (committed_baseline(&a.a)?, a.a),
    };
    let o = Options {
        a_variant: a.a_variant,
        b_variant: a.b_variant,
        ..a.judge.options(false)?
    };
    let c = compare::compare_dirs(&dir_a, &dir_b, &o)?;
    let files = (!a.no_files).then(|| a.output.unwrap_or_else(|| dir_b.join("compare")));
    a.judge.report(&c, files.as_deref(), "", &dir_a, &dir_b)
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
        assert_eq!(
            parse_margin_for("setup_*=25%"),
            Ok(("setup_*".to_string(), 25.0))
        );
        assert!(parse_margin_for("setup_*").unwrap_err().contains("PATTERN"));
    }
}
