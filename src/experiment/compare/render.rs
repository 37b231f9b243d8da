//! A comparison as a terminal table, a Markdown table (CI job summaries)
//! or JSON. Values are shown in ms when a metric's means reach 1000 µs,
//! else in µs.

use super::model::{Comparison, Level, Metric, Side};

/// The unit a metric is shown in and the factor from µs.
fn unit(m: &Metric) -> (&'static str, f64) {
    if m.a.mean.abs().max(m.b.mean.abs()) >= 1000.0 {
        ("ms", 1e-3)
    } else {
        ("µs", 1.0)
    }
}

/// Four significant digits, without exponent notation.
fn sig(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let digits = if x == 0.0 {
        0
    } else {
        (3 - x.abs().log10().floor() as i32).clamp(0, 6)
    };
    format!("{x:.*}", digits as usize)
}

fn p(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else if x < 1e-4 {
        "<0.0001".into()
    } else {
        format!("{x:.4}")
    }
}

fn signed_pct(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.1}%")
    } else {
        "—".into()
    }
}

const HEADER: [&str; 10] = [
    "metric",
    "unit",
    "A mean [95% CI]",
    "B mean [95% CI]",
    "Δ mean",
    "Δ median",
    "Δ geo-mean [CI]", // its level filled in by `header`
    "p diff (Holm)",
    "p TOST (margin)",
    "verdict",
];

/// The column heads, the ratio's interval with its level: it is the
/// TOST's (1 − 2α, 90 % by default), not the 95 % of the means beside it,
/// and unlabelled it was quoted as 95 % (README, stop 29).
fn header(c: &Comparison) -> [String; 10] {
    let mut h = HEADER.map(String::from);
    h[6] = format!("Δ geo-mean [{}% CI]", pct_level(ci_level(c)));
    h
}

/// The confidence level of the ratio's interval.
fn ci_level(c: &Comparison) -> f64 {
    c.metrics
        .iter()
        .find_map(|m| m.tost.map(|t| t.ci_level))
        .unwrap_or(1.0 - 2.0 * c.alpha)
}

/// 0.9 → "90", 0.98 → "98", 0.975 → "97.5".
fn pct_level(level: f64) -> String {
    let p = (level * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// Columns aligned left in the terminal table (names, verdicts).
const LEFT: [usize; 3] = [0, 1, 9];

fn cells(m: &Metric) -> [String; 10] {
    let (u, f) = unit(m);
    let mean = |s: &super::model::Sample| {
        format!(
            "{} [{}, {}]",
            sig(s.mean * f),
            sig(s.ci95.0 * f),
            sig(s.ci95.1 * f)
        )
    };
    let (geo, tost) = match &m.tost {
        Some(t) => (
            format!(
                "{} [{:+.1}, {:+.1}]",
                signed_pct((t.ratio - 1.0) * 100.0),
                (t.ratio_ci.0 - 1.0) * 100.0,
                (t.ratio_ci.1 - 1.0) * 100.0
            ),
            format!("{} ±{}%", p(t.p), t.margin_pct),
        ),
        None => ("—".into(), "—".into()),
    };
    [
        if m.headline {
            format!("{} (headline)", m.name)
        } else {
            m.name.clone()
        },
        u.to_string(),
        mean(&m.a),
        mean(&m.b),
        signed_pct(m.change_mean_pct),
        signed_pct(m.change_median_pct),
        geo,
        p(m.p_holm),
        tost,
        m.verdict.as_str().to_string(),
    ]
}

fn side_line(tag: &str, s: &Side, n: usize, c: &Comparison) -> String {
    let what = if c.interleaved {
        "block medians"
    } else {
        "runs"
    };
    let mut l = format!("{tag}: {} (variant {}, {n} {what}", s.dir, s.variant);
    match c.metrics.first().map(|m| m.level) {
        Some(Level::Sessions { a, b }) => {
            l += &format!(" in {} sessions", if tag == "A" { a } else { b })
        }
        Some(Level::Runs) if !c.interleaved => l += " in fewer than 3 sessions",
        _ => {}
    }
    if let Some(c) = &s.commit {
        l += &format!(", commit {}", short_commit(c));
    }
    if let Some(d) = &s.date_utc {
        l += &format!(", {d}");
    }
    l + ")"
}

/// A hash cut to 12 digits (keeping "-dirty"); other text as it is.
fn short_commit(c: &str) -> String {
    let hex = c.chars().take_while(char::is_ascii_hexdigit).count();
    if hex >= 12 {
        format!("{}{}", &c[..12], &c[hex..])
    } else {
        c.to_string()
    }
}

fn runs(c: &Comparison, a: bool) -> usize {
    c.metrics
        .iter()
        .map(|m| if a { m.a.n } else { m.b.n })
        .max()
        .unwrap_or(0)
}

fn method_note(c: &Comparison) -> String {
    let level = ci_level(c);
    let unit = match c.metrics.first().map(|m| m.level) {
        Some(Level::Sessions { .. }) => {
            "Each session's median is one replicate (runs of one session share its topology instance; Kalibera & Jones 2013): the difference test is Welch's t-test on the logarithms of the session medians, Δ geo-mean the ratio of their geometric means, and the TOST is on them too."
        }
        Some(Level::Blocks { .. }) => {
            "Each pair of blocks (one A, one B, run in the same minutes) is one replicate: the difference test is the paired t-test on the logarithms of the ratios of the blocks' medians, Δ geo-mean their geometric mean, and the TOST is on them too."
        }
        _ => {
            "Every run is one replicate: the difference test is the two-sided Mann-Whitney U test over the runs, and the TOST is on the runs' logarithms."
        }
    };
    let heads = c.metrics.iter().filter(|m| m.headline).count();
    let mut s = format!(
        "{unit} Faster/slower: the difference test, Holm-corrected within its family (the {heads} headline metrics; the {} others), is significant at α = {} and the ratio of geometric means (Δ geo-mean) lies beyond the margin (±{}%: B/A above {} or below 1/{}). Equivalent: two one-sided t-tests on the logarithms (TOST, α = {}; the {}% CI of the ratio inside the margin). Inconclusive: neither. Δ = (B − A) / A; Welch's t-test over the runs in compare.json.",
        c.metrics.len() - heads,
        c.alpha,
        c.margin_pct,
        1.0 + c.margin_pct / 100.0,
        1.0 + c.margin_pct / 100.0,
        c.alpha,
        pct_level(level)
    );
    if c.interleaved {
        s += " A and B ran in alternating blocks (`vlsp ab`): each value tested is one block's median, so the machine's drift falls on both alike.";
    } else {
        s += " A and B were not run in alternating blocks: this machine's drift between runs is part of every Δ; to judge a code change, run both with `vlsp ab`.";
    }
    s
}

fn tally(c: &Comparison) -> String {
    use super::model::Verdict::*;
    let count = |head: bool| {
        let n = |v| {
            c.metrics
                .iter()
                .filter(|m| m.verdict == v && (m.headline || !head))
                .count()
        };
        format!(
            "{} slower, {} faster, {} equivalent, {} inconclusive",
            n(Slower),
            n(Faster),
            n(Equivalent),
            n(Inconclusive)
        )
    };
    let heads: Vec<String> = c
        .metrics
        .iter()
        .filter(|m| m.headline)
        .map(|m| format!("{} {}", m.name, m.verdict.as_str()))
        .collect();
    let mut s = format!(
        "Headline: {}. All metrics: {}",
        heads.join(", "),
        count(false)
    );
    for w in &c.warnings {
        s += &format!("\nWARNING: {w}.");
    }
    s
}

/// The terminal table.
pub fn text(c: &Comparison) -> String {
    let rows: Vec<[String; 10]> = c.metrics.iter().map(cells).collect();
    let head = header(c);
    let mut w = head.each_ref().map(|h| h.chars().count());
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let line = |r: &[String]| {
        let mut s = String::new();
        for (i, cell) in r.iter().enumerate() {
            let pad = w[i] - cell.chars().count();
            // Names and verdicts left, numbers right.
            if LEFT.contains(&i) {
                s += &format!("{cell}{}  ", " ".repeat(pad));
            } else {
                s += &format!("{}{cell}  ", " ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = side_line("A", &c.a, runs(c, true), c) + "\n";
    out += &(side_line("B", &c.b, runs(c, false), c) + "\n\n");
    out += &line(&head);
    for r in &rows {
        out += &line(r);
    }
    out += &format!("\n{}\n{}\n", tally(c), method_note(c));
    out
}

/// A Markdown table with a heading, for a CI job summary.
pub fn markdown(c: &Comparison) -> String {
    let title =
        c.b.experiment
            .as_deref()
            .or(c.a.experiment.as_deref())
            .unwrap_or("runs");
    let mut out = format!("### Comparison: {title}\n\n");
    out += &format!(
        "- {}\n- {}\n\n",
        side_line("A", &c.a, runs(c, true), c),
        side_line("B", &c.b, runs(c, false), c)
    );
    out += &format!("| {} |\n", header(c).join(" | "));
    out += &format!("|{}\n", "---|".repeat(HEADER.len()));
    for r in c.metrics.iter().map(cells) {
        let mut r = r.to_vec();
        if r[9] == "faster" || r[9] == "slower" {
            r[9] = format!("**{}**", r[9]);
        }
        out += &format!("| {} |\n", r.join(" | "));
    }
    out += &format!("\n{}. {}\n", tally(c), method_note(c));
    out
}

/// JSON (values in µs; NaN as null).
pub fn json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).expect("a comparison serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(sig(2.30801), "2.308");
        assert_eq!(sig(47.9297), "47.93");
        assert_eq!(sig(0.0951), "0.09510");
        assert_eq!(sig(1234.4), "1234");
        assert_eq!(sig(123456.0), "123456");
        assert_eq!(sig(0.0), "0");
        assert_eq!(sig(f64::NAN), "—");
        assert_eq!(p(0.04321), "0.0432");
        assert_eq!(p(1e-9), "<0.0001");
        assert_eq!(signed_pct(-3.21), "-3.2%");
        assert_eq!(signed_pct(560.0), "+560.0%");
        let h = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(short_commit(h), "0123456789ab");
        assert_eq!(short_commit(&format!("{h}-dirty")), "0123456789ab-dirty");
        assert_eq!(short_commit("unknown"), "unknown");
        assert_eq!(pct_level(0.9), "90");
        assert_eq!(pct_level(1.0 - 2.0 * 0.01), "98");
        assert_eq!(pct_level(0.975), "97.5");
    }
}
