//! The `throughput` kind's summaries, table and figure (setups per second
//! against concurrency), from `runs.csv` alone.

use std::path::Path;

use anyhow::Result;

use crate::experiment::plot::{LineChart, Reference, Series};
use crate::experiment::rows::{Row, col, variants};
use crate::experiment::stats::{Summary, mean, summarize};

/// Issue 17's goal: setups per second with 64 concurrent clients.
pub const GOAL_PER_S: f64 = 1000.0;

/// The metrics of every variant, as `<variant>_<metric>`: (column, name,
/// unit, divisor from the column's unit).
const METRICS: [(&str, &str, &str, f64); 14] = [
    ("setups_per_s", "setups_per_s", "1/s", 1.0),
    ("teardowns_per_s", "teardowns_per_s", "1/s", 1.0),
    ("setup_p50", "setup_p50_ms", "ms", 1e3),
    ("setup_p99", "setup_p99_ms", "ms", 1e3),
    ("setup_max", "setup_max_ms", "ms", 1e3),
    ("teardown_p50", "teardown_p50_ms", "ms", 1e3),
    ("teardown_p99", "teardown_p99_ms", "ms", 1e3),
    ("setup_failures", "setup_failures", "count", 1.0),
    ("teardown_failures", "teardown_failures", "count", 1.0),
    ("setup_kernel_share", "setup_kernel_share", "ratio", 1.0),
    (
        "teardown_kernel_share",
        "teardown_kernel_share",
        "ratio",
        1.0,
    ),
    ("setup_late", "setup_late", "count", 1.0),
    ("setup_queries_resent", "setup_queries_resent", "count", 1.0),
    (
        "setup_reserves_resent",
        "setup_reserves_resent",
        "count",
        1.0,
    ),
];

/// Adds every variant's summaries to `sums`, draws the figure and returns
/// the Markdown table.
pub fn report(dir: &Path, rows: &[Row], sums: &mut Vec<Summary>) -> Result<String> {
    let mut md = "## Setups per second against concurrent API clients\n\n\
        Each run sets `links` virtual links up from C concurrent clients (each keeps one API \
        connection open and sends its next request when the reply is in), then tears them \
        down. Rates are successes over the phase's wall time; latencies are request to reply \
        at the client; the kernel share is the time the nodes spent in kernel calls (per node the \
        union of its calls, summed over nodes) over wall time. \
        Closed loop, latency ≈ C / rate (Little's law); `@R/s` variants are paced at R setups \
        per second in all. Resent: GIST Queries and RESERVEs sent again in the setup phase \
        (a Query after T1 = 500 ms or a \"No Routing State\" answer, a RESERVE after the \
        NSLP's 2 s retry or right behind such a new handshake).\n\n\
        | variant | runs | setups/s | teardowns/s | setup p50 [ms] | setup p99 [ms] | teardown p99 [ms] | failures | kernel share (setup) | resent (Q+R) |\n\
        |---|---|---|---|---|---|---|---|---|---|\n"
        .to_string();
    for var in variants(rows) {
        for (c, m, unit, div) in METRICS {
            let v: Vec<f64> = col(rows, &var, c).iter().map(|x| x / div).collect();
            sums.extend(summarize(&format!("{var}_{m}"), unit, &v, None));
        }
        let g = |c: &str| mean(&col(rows, &var, c));
        let fails = g("setup_failures") + g("teardown_failures");
        md += &format!(
            "| {var} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.1} |\n",
            col(rows, &var, "setups_per_s").len(),
            g("setups_per_s"),
            g("teardowns_per_s"),
            g("setup_p50") / 1e3,
            g("setup_p99") / 1e3,
            g("teardown_p99") / 1e3,
            fails,
            g("setup_kernel_share"),
            g("setup_queries_resent") + g("setup_reserves_resent"),
        );
    }
    figure(dir, rows)?;
    md += "\n![setups per second](fig_throughput.png)\n";
    Ok(md)
}

/// Mean of `key` per closed-loop variant with `initiators` routers, by
/// concurrency.
fn by_concurrency(rows: &[Row], key: &str, initiators: f64) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = variants(rows)
        .iter()
        .filter(|v| {
            col(rows, v, "initiators").first() == Some(&initiators)
                && col(rows, v, "offered_per_s").first() == Some(&0.0)
        })
        .filter_map(|v| {
            Some((
                *col(rows, v, "concurrency").first()?,
                mean(&col(rows, v, key)),
            ))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// Setups and teardowns per second against concurrency, one initiator
/// (and two, where measured), beside issue 17's goal.
fn figure(dir: &Path, rows: &[Row]) -> Result<()> {
    let mut series = vec![];
    for (key, what) in [("setups_per_s", "setups"), ("teardowns_per_s", "teardowns")] {
        series.push(Series {
            name: format!("{what}/s, one initiator (mean)"),
            points: by_concurrency(rows, key, 1.0),
            markers: true,
        });
        let two = by_concurrency(rows, key, 2.0);
        if !two.is_empty() {
            series.push(Series {
                name: format!("{what}/s, two initiators (mean)"),
                points: two,
                markers: true,
            });
        }
    }
    LineChart {
        title: "Virtual link setups per second against concurrent API clients".into(),
        x_label: "concurrent API clients".into(),
        y_label: "per second".into(),
        series,
        references: vec![Reference {
            name: format!("issue 17 goal: {GOAL_PER_S:.0} setups/s at 64 clients"),
            value: GOAL_PER_S,
        }],
        y_from_zero: true,
    }
    .render(&dir.join("fig_throughput"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn row(variant: &str, run: usize, c: f64, init: f64, per_s: f64) -> Row {
        Row {
            variant: variant.into(),
            run,
            values: BTreeMap::from([
                ("concurrency".into(), c),
                ("initiators".into(), init),
                ("offered_per_s".into(), 0.0),
                ("setups_per_s".into(), per_s),
                ("teardowns_per_s".into(), 2.0 * per_s),
                ("setup_p50".into(), 1500.0),
                ("setup_p99".into(), 4000.0),
                ("setup_failures".into(), 0.0),
                ("teardown_failures".into(), 0.0),
                ("setup_kernel_share".into(), 0.25),
            ]),
        }
    }

    #[test]
    fn summaries_table_and_figure_per_variant() {
        let rows = vec![
            row("c=1", 1, 1.0, 1.0, 400.0),
            row("c=1", 2, 1.0, 1.0, 600.0),
            row("c=64", 1, 64.0, 1.0, 1200.0),
            row("c=64x2", 1, 64.0, 2.0, 1500.0),
        ];
        let dir = crate::experiment::scratch::Scratch::new("thr");
        let mut sums = vec![];
        let md = report(dir.path(), &rows, &mut sums).unwrap();
        let s = sums
            .iter()
            .find(|s| s.metric == "c=1_setups_per_s")
            .unwrap();
        assert_eq!((s.n, s.mean), (2, 500.0));
        let p = sums
            .iter()
            .find(|s| s.metric == "c=64_setup_p99_ms")
            .unwrap();
        assert_eq!((p.unit.as_str(), p.mean), ("ms", 4.0));
        assert!(
            md.contains("| c=64x2 | 1 | 1500 | 3000 | 1.50 | 4.00 |"),
            "{md}"
        );
        assert_eq!(
            by_concurrency(&rows, "setups_per_s", 1.0),
            [(1.0, 500.0), (64.0, 1200.0)]
        );
        assert!(dir.path().join("fig_throughput.png").exists());
        assert!(dir.path().join("fig_throughput.svg").exists());
    }
}
