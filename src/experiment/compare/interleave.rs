//! `vlsp ab`: two configurations run in alternating blocks in the same
//! minutes, so the machine's drift (tens of % between runs minutes apart
//! on a shared machine) falls on both alike and cancels from the
//! comparison. Pure parts: the block order, pooling the blocks' runs, the
//! blocks' medians (the samples the verdict tests) and the per-block table
//! that shows the drift; the runs themselves are the CLI's (`src/cli/ab.rs`).
//!
//! The verdict tests block medians, not the pooled runs: runs of one block
//! share that block's machine state, so they are not independent, and a
//! same-binary A/A of 10 blocks × 10 runs under load came out "slower" in 3
//! of 32 metrics when its 100 pooled runs were tested as independent. The
//! i-th A and i-th B block ran in the same minutes (one A B or B A pair),
//! so `vlsp compare` pairs them by their row number and tests the log
//! ratios (`Level::Blocks`): the drift both share cancels in each ratio.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::experiment::rows::{Row, col};
use crate::experiment::stats::Summary;

/// Which configuration a block runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Arm {
    A,
    B,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::A => "A",
            Arm::B => "B",
        }
    }
}

/// `blocks` blocks of each arm as A B B A A B B A …: every pair of blocks
/// is counterbalanced, so a drift that is linear over four blocks adds the
/// same to A and B, and neither arm always runs first.
pub fn block_order(blocks: usize) -> Vec<Arm> {
    (0..blocks)
        .flat_map(|i| {
            if i % 2 == 0 {
                [Arm::A, Arm::B]
            } else {
                [Arm::B, Arm::A]
            }
        })
        .collect()
}

/// The runs of several blocks of one arm as one sample, runs renumbered
/// 1, 2, … per variant in block order.
pub fn pool<'a>(blocks: impl IntoIterator<Item = &'a [Row]>) -> Vec<Row> {
    let mut next: std::collections::BTreeMap<String, usize> = Default::default();
    let mut out = vec![];
    for rows in blocks {
        for r in rows {
            let n = next.entry(r.variant.clone()).or_insert(0);
            *n += 1;
            out.push(Row {
                run: *n,
                ..r.clone()
            });
        }
    }
    out
}

/// One row per block (per variant) whose values are the block's medians:
/// the unit of replication of an interleaved comparison.
pub fn block_medians<'a>(blocks: impl IntoIterator<Item = &'a [Row]>) -> Vec<Row> {
    let mut out: Vec<Row> = vec![];
    for rows in blocks {
        let mut variants: Vec<&str> = vec![];
        for r in rows {
            if !variants.contains(&r.variant.as_str()) {
                variants.push(&r.variant);
            }
        }
        for v in variants {
            let keys: BTreeSet<&String> = rows
                .iter()
                .filter(|r| r.variant == v)
                .flat_map(|r| r.values.keys())
                .collect();
            let values = keys
                .into_iter()
                .map(|k| {
                    let x = col(rows, v, k);
                    (k.clone(), Summary::from_samples("", "us", &x, None).median)
                })
                .collect();
            let run = out.iter().filter(|r| r.variant == v).count() + 1;
            out.push(Row {
                variant: v.to_string(),
                run,
                values,
            });
        }
    }
    out
}

/// One block's median of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockStat {
    /// 1-based position in the run order.
    pub block: usize,
    pub arm: Arm,
    pub metric: String,
    pub n: usize,
    /// µs, as in runs.csv.
    pub median: f64,
}

/// The metrics the block table shows: those of `want` (patterns are
/// exact names here) that the runs have, else the first three columns.
pub fn block_metrics(rows: &[Row], want: &[&str]) -> Vec<String> {
    let have: BTreeSet<&String> = rows.iter().flat_map(|r| r.values.keys()).collect();
    let chosen: Vec<String> = want
        .iter()
        .filter(|w| have.iter().any(|h| h == w))
        .map(|w| w.to_string())
        .collect();
    if chosen.is_empty() {
        have.into_iter().take(3).cloned().collect()
    } else {
        chosen
    }
}

/// Every block's median of every metric in `metrics` (first variant of
/// each block).
pub fn block_table(blocks: &[(Arm, Vec<Row>)], metrics: &[String]) -> Vec<BlockStat> {
    let mut out = vec![];
    for (i, (arm, rows)) in blocks.iter().enumerate() {
        let Some(variant) = rows.first().map(|r| r.variant.clone()) else {
            continue;
        };
        for m in metrics {
            let v = col(rows, &variant, m);
            if v.is_empty() {
                continue;
            }
            let s = Summary::from_samples("", "us", &v, None);
            out.push(BlockStat {
                block: i + 1,
                arm: *arm,
                metric: m.clone(),
                n: s.n,
                median: s.median,
            });
        }
    }
    out
}

/// How far one arm's block medians of a metric spread: (max − min) / min
/// in %, the drift over the session that interleaving cancels.
pub fn drift_pct(stats: &[BlockStat], arm: Arm, metric: &str) -> Option<f64> {
    let v: Vec<f64> = stats
        .iter()
        .filter(|s| s.arm == arm && s.metric == metric)
        .map(|s| s.median)
        .collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (v.len() >= 2 && lo > 0.0).then(|| (hi - lo) / lo * 100.0)
}

/// The per-block table (medians, µs) as Markdown: one row per block.
pub fn block_markdown(stats: &[BlockStat], metrics: &[String]) -> String {
    let mut out = format!(
        "| block | arm | {} |\n",
        metrics.join(" median µs | ") + " median µs"
    );
    out += &format!("|{}\n", "---|".repeat(metrics.len() + 2));
    let blocks: BTreeSet<usize> = stats.iter().map(|s| s.block).collect();
    for b in blocks {
        let row: Vec<&BlockStat> = stats.iter().filter(|s| s.block == b).collect();
        let arm = row.first().map_or("?", |s| s.arm.as_str());
        let cells: Vec<String> = metrics
            .iter()
            .map(|m| {
                row.iter()
                    .find(|s| &s.metric == m)
                    .map_or("—".into(), |s| format!("{:.1}", s.median))
            })
            .collect();
        out += &format!("| {b} | {arm} | {} |\n", cells.join(" | "));
    }
    for arm in [Arm::A, Arm::B] {
        let spreads: Vec<String> = metrics
            .iter()
            .filter_map(|m| drift_pct(stats, arm, m).map(|d| format!("{m} {d:.0}%")))
            .collect();
        if !spreads.is_empty() {
            out += &format!(
                "\nSpread of {}'s block medians (max/min − 1, the drift across blocks): {}",
                arm.as_str(),
                spreads.join(", ")
            );
        }
    }
    out + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rows(variant: &str, v: &[f64]) -> Vec<Row> {
        v.iter()
            .enumerate()
            .map(|(i, x)| Row {
                variant: variant.into(),
                run: i + 1,
                values: BTreeMap::from([("setup_A".to_string(), *x)]),
            })
            .collect()
    }

    #[test]
    fn blocks_alternate_counterbalanced() {
        use Arm::*;
        assert_eq!(block_order(3), [A, B, B, A, A, B]);
        assert_eq!(block_order(0), []);
        // Positions 1..=8: A at 1, 4, 5, 8 (sum 18), B at 2, 3, 6, 7 (18).
        let pos = |arm| -> usize {
            block_order(4)
                .iter()
                .enumerate()
                .filter(|(_, a)| **a == arm)
                .map(|(i, _)| i + 1)
                .sum()
        };
        assert_eq!(pos(A), pos(B));
    }

    #[test]
    fn pooling_renumbers_runs() {
        let (x, y) = (rows("auth", &[1.0, 2.0]), rows("auth", &[3.0]));
        let p = pool([x.as_slice(), y.as_slice()]);
        assert_eq!(p.iter().map(|r| r.run).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(p[2].values["setup_A"], 3.0);
    }

    #[test]
    fn block_medians_are_one_row_per_block() {
        let (x, y) = (rows("auth", &[1.0, 2.0, 9.0]), rows("auth", &[3.0, 5.0]));
        let m = block_medians([x.as_slice(), y.as_slice()]);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].run, m[0].values["setup_A"]), (1, 2.0));
        assert_eq!((m[1].run, m[1].values["setup_A"]), (2, 4.0));
    }

    #[test]
    fn block_table_shows_the_drift() {
        let blocks = vec![
            (Arm::A, rows("auth", &[100.0, 110.0, 120.0])),
            (Arm::B, rows("auth", &[101.0, 111.0, 121.0])),
            (Arm::B, rows("auth", &[131.0, 141.0, 151.0])),
            (Arm::A, rows("auth", &[130.0, 140.0, 150.0])),
        ];
        let m = block_metrics(&blocks[0].1, &["setup_A", "teardown_A"]);
        assert_eq!(m, ["setup_A"]);
        let t = block_table(&blocks, &m);
        assert_eq!(t.len(), 4);
        assert_eq!((t[2].block, t[2].arm, t[2].median), (3, Arm::B, 141.0));
        let d = drift_pct(&t, Arm::A, "setup_A").unwrap();
        assert!((d - 140.0 / 110.0 * 100.0 + 100.0).abs() < 1e-9, "{d}");
        let md = block_markdown(&t, &m);
        assert!(md.contains("| 3 | B | 141.0 |"), "{md}");
        assert!(md.contains("Spread of A's block medians"), "{md}");
        assert_eq!(block_metrics(&blocks[0].1, &["nope"]), ["setup_A"]);
    }
}
