//! `runs.csv`: every run, raw, in µs — the data everything else is derived
//! from. The column names written here are the ones the report reads.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::experiment::periods::RunPeriods;

/// One row of `runs.csv`: the variant (e.g. "auth", "noauth", "chain=10",
/// "script"), the run number, and named values in µs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub variant: String,
    pub run: usize,
    pub values: BTreeMap<String, f64>,
}

fn us(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| n as f64 / 1e3)
}

/// Stores a run's periods as `<prefix><period>` values in µs.
pub fn put_periods(values: &mut BTreeMap<String, f64>, prefix: &str, p: &RunPeriods) {
    let mut set = |k: &str, v: Option<u64>| {
        if let Some(v) = us(v) {
            values.insert(format!("{prefix}{k}"), v);
        }
    };
    #[rustfmt::skip]
    let named = [
        ("A", p.a_ns), ("A_node", p.a_node_ns), ("B", p.b_ns), ("C", p.c_ns),
        ("G", p.g_ns), ("H", p.h_ns), ("D_qni", p.d_qni_ns),
        ("hmac_sign", p.hmac_sign_ns), ("hmac_verify", p.hmac_verify_ns),
        ("delete_qni", p.delete_qni_ns), ("delete_qnr", p.delete_qnr_ns),
        ("qos_install_qni", p.qos_qni_ns),
    ];
    for (k, v) in named {
        set(k, v);
    }
    for h in &p.hops {
        set(&format!("D_{}", h.node), h.d_ns);
        set(&format!("E_{}", h.node), h.e_ns);
        set(&format!("F_{}", h.node), h.f_ns);
        set(&format!("qos_install_{}", h.node), h.qos_ns);
    }
    // Per run, not per node: the longest wait of a class for its kernel
    // thread, and the time the RESPONSE spent waiting for classes on its way
    // back (it passes the nodes one after the other: the holds add up).
    set(
        "class_wait_max",
        p.hops.iter().filter_map(|h| h.class_wait_ns).max(),
    );
    set(
        "response_held",
        p.hops.iter().filter_map(|h| h.held_ns).reduce(|a, b| a + b),
    );
}

/// Values named `<RSS_KEY><node>` are a node process's resident memory in
/// KiB, not a duration: their columns carry no `_us`.
pub const RSS_KEY: &str = "node_rss_kib_";

/// The value named so is the run's session (1, 2, …: one fresh topology
/// `up` each, see `sessions` in experiment files), not a duration: its
/// column is `session`, third after `variant,run`, and `vlsp compare`
/// groups by it rather than testing it.
pub const SESSION_KEY: &str = "session";

/// Whether a value name is a measurement (not the session number).
pub fn is_metric(name: &str) -> bool {
    name != SESSION_KEY
}

/// Writes rows as CSV: `variant,run[,session],<sorted union of value names>`.
pub fn write_runs(path: &Path, rows: &[Row]) -> Result<()> {
    let mut cols: Vec<String> = rows.iter().flat_map(|r| r.values.keys().cloned()).collect();
    cols.sort_by_key(|c| (is_metric(c), c.clone()));
    cols.dedup();
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut header = vec!["variant".to_string(), "run".to_string()];
    header.extend(
        cols.iter()
            .map(|c| match c.starts_with(RSS_KEY) || !is_metric(c) {
                true => c.clone(),
                false => format!("{c}_us"),
            }),
    );
    w.write_record(&header)?;
    for r in rows {
        let mut rec = vec![r.variant.clone(), r.run.to_string()];
        rec.extend(cols.iter().map(|c| {
            r.values
                .get(c)
                .map(|v| match is_metric(c) {
                    true => format!("{v:.3}"),
                    false => format!("{v:.0}"),
                })
                .unwrap_or_default()
        }));
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads `runs.csv`.
pub fn read_runs(path: &Path) -> Result<Vec<Row>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    let mut rows = vec![];
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", path.display(), i + 2))?;
        let mut values = BTreeMap::new();
        for (k, v) in header.iter().zip(rec.iter()).skip(2) {
            if !v.is_empty() {
                let name = k.strip_suffix("_us").unwrap_or(k).to_string();
                values.insert(
                    name,
                    v.parse().with_context(|| {
                        format!("{}: line {}: {k} = {v:?}", path.display(), i + 2)
                    })?,
                );
            }
        }
        rows.push(Row {
            variant: rec.get(0).unwrap_or_default().to_string(),
            run: rec.get(1).unwrap_or("0").parse().unwrap_or(0),
            values,
        });
    }
    Ok(rows)
}

/// The variants in the order they ran (consecutive repeats folded).
pub fn variants(rows: &[Row]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r.variant.clone()).collect();
    v.dedup();
    v
}

/// The session of a row (1 when the run had none: one session).
pub fn session(r: &Row) -> usize {
    r.values.get(SESSION_KEY).map_or(1, |s| *s as usize)
}

/// One column of one variant, in run order, skipping runs without it.
pub fn col(rows: &[Row], variant: &str, key: &str) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.variant == variant)
        .filter_map(|r| r.values.get(key).copied())
        .collect()
}

/// The same column in ms.
pub fn col_ms(rows: &[Row], variant: &str, key: &str) -> Vec<f64> {
    col(rows, variant, key).iter().map(|x| x / 1e3).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Five runs of a four-node setup and teardown (µs).
    pub(crate) fn sample_rows() -> Vec<Row> {
        (1..=5)
            .map(|i| Row {
                variant: "auth".into(),
                run: i,
                values: BTreeMap::from([
                    ("setup_A".into(), 1000.0 + i as f64),
                    ("setup_B".into(), 600.0),
                    ("setup_C".into(), 300.0),
                    ("setup_H".into(), 250.0),
                    ("setup_G".into(), 350.0),
                    ("setup_D_tb3".into(), 50.0),
                    ("setup_E_tb3".into(), 80.0),
                    ("setup_F_tb3".into(), 20.0),
                    ("teardown_A".into(), 500.0),
                    ("teardown_B".into(), 300.0),
                    ("teardown_C".into(), 100.0),
                    ("teardown_H".into(), 90.0),
                ]),
            })
            .collect()
    }

    #[test]
    fn runs_csv_round_trip() {
        let dir = crate::experiment::scratch::Scratch::new("exp");
        let p = dir.join("runs.csv");
        write_runs(&p, &sample_rows()).unwrap();
        assert_eq!(read_runs(&p).unwrap(), sample_rows());
    }

    #[test]
    fn session_column_comes_first_and_round_trips() {
        let dir = crate::experiment::scratch::Scratch::new("exp");
        let p = dir.join("runs.csv");
        let mut rows = sample_rows();
        for (i, r) in rows.iter_mut().enumerate() {
            r.values.insert(SESSION_KEY.into(), (i / 3 + 1) as f64);
        }
        write_runs(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("variant,run,session,setup_A_us,"),
            "{text}"
        );
        let back = read_runs(&p).unwrap();
        assert_eq!(back, rows);
        assert_eq!(
            back.iter().map(session).collect::<Vec<_>>(),
            [1, 1, 1, 2, 2]
        );
        assert_eq!(session(&sample_rows()[0]), 1);
    }

    #[test]
    fn variants_keep_run_order() {
        let mut rows = sample_rows();
        rows[3].variant = "noauth".into();
        rows[4].variant = "noauth".into();
        assert_eq!(variants(&rows), ["auth", "noauth"]);
        assert_eq!(col_ms(&rows, "noauth", "setup_A"), [1.004, 1.005]);
        assert_eq!(col(&rows, "auth", "setup_X"), Vec::<f64>::new());
    }
}
