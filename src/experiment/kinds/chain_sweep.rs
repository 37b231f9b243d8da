//! `chain-sweep`: setup over chains of several lengths, against the paper's
//! formula d_setup = 2·t_s + Σ_{i<h}(g_i + q_i + r_i) + q_h + r_h (§IV-B).

use anyhow::Result;

use crate::experiment::file::Experiment;
use crate::experiment::kinds::setup_teardown::{Plan, measure, session_runs};
use crate::experiment::rows::{Row, SESSION_KEY, col_ms};
use crate::experiment::stats::{diff, mean};
use crate::testbed::Options;
use crate::topology::Topology;

/// Generates a chain of each length (saved beside the results), and runs
/// it as variant `chain=<n>`: with `sessions` > 1, every length once per
/// session, in rounds, on a fresh chain each time; rows are tagged with
/// their session and numbered on per length.
pub fn run(e: &Experiment, base: &Options, rows: &mut Vec<Row>) -> Result<()> {
    let mut chains = Vec::new();
    for &n in &e.chain {
        let name = format!("sweep{n}");
        let src = crate::topology::chain(&name, n, 1)?;
        let file = e.output.join(format!("chain-{n}.toml"));
        std::fs::write(&file, &src)?;
        chains.push((n, Topology::parse(&src, &file)?));
    }
    let plan = Plan::of(e);
    for (s, n, runs) in rounds(&e.chain, plan.runs, e.sessions) {
        if e.sessions > 1 {
            eprintln!(
                "session {}/{}: {runs} runs across {n} routers",
                s + 1,
                e.sessions
            );
        }
        let t = chains.iter().find(|(m, _)| *m == n).map(|(_, t)| t.clone());
        let variant = format!("chain={n}");
        let done = rows.iter().filter(|r| r.variant == variant).count();
        let first = rows.len();
        measure(
            t.expect("generated above"),
            base,
            Plan { runs, ..plan },
            true,
            &variant,
            rows,
        )?;
        for (i, r) in rows[first..].iter_mut().enumerate() {
            r.run = done + i + 1;
            r.values.insert(SESSION_KEY.into(), (s + 1) as f64);
        }
    }
    group(rows, &e.chain);
    Ok(())
}

/// Each length's rows together, in the file's order, as the report and
/// runs.csv expect them (the session column tells the rounds apart).
fn group(rows: &mut [Row], lengths: &[usize]) {
    let at = |r: &Row| {
        lengths
            .iter()
            .position(|n| r.variant == format!("chain={n}"))
    };
    rows.sort_by_key(at);
}

/// (session, chain length, runs) in the order they run: the lengths in
/// turn within each session.
fn rounds(lengths: &[usize], runs: usize, sessions: usize) -> Vec<(usize, usize, usize)> {
    session_runs(runs, sessions)
        .into_iter()
        .enumerate()
        .flat_map(|(s, r)| lengths.iter().map(move |&n| (s, n, r)))
        .collect()
}

/// One chain length: what was measured and what the formula predicts from
/// the per-hop measurements of the same runs (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainPoint {
    pub routers: usize,
    /// [A] of every run.
    pub setup_a: Vec<f64>,
    /// The formula's setup duration.
    pub formula: f64,
    /// Mean [B].
    pub setup_b: f64,
}

/// The formula's inputs, from the runs of `variant` ("chain=<n>"):
/// t_s = mean of [C] and [H]; g_i + q_i = [E] and r_i = [F], averaged over
/// the forwarding nodes (the initiator's own handshake and RESERVE are
/// approximated by a forwarding node's: it does the same work);
/// q_h + r_h = [G] − [C].
pub fn predict(rows: &[Row], variant: &str) -> ChainPoint {
    let n: usize = variant.trim_start_matches("chain=").parse().unwrap_or(0);
    let get = |k: &str| col_ms(rows, variant, k);
    let ts = (mean(&get("setup_C")) + mean(&get("setup_H"))) / 2.0;
    let mut hop_sum = 0.0;
    let mut hops = 0;
    if let Some(r) = rows.iter().find(|r| r.variant == variant) {
        // By [E], not [D]: a session on a flow's known peer
        // (`VLSP_GIST_REUSE_PEERS`) has no handshake, g_i = 0.
        for k in r
            .values
            .keys()
            .filter(|k| k.starts_with("setup_E_") && *k != "setup_E_qni")
        {
            let node = &k["setup_E_".len()..];
            let e = mean(&get(&format!("setup_E_{node}")));
            let f = mean(&get(&format!("setup_F_{node}")));
            hop_sum += e + f; // [E] includes [D]: g + q = e
            hops += 1;
        }
    }
    let per_hop = if hops > 0 { hop_sum / hops as f64 } else { 0.0 };
    let qhrh = mean(&diff(&get("setup_G"), &get("setup_C")));
    ChainPoint {
        routers: n,
        setup_a: get("setup_A"),
        formula: 2.0 * ts + per_hop * (n.saturating_sub(1)) as f64 + qhrh,
        setup_b: mean(&get("setup_B")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Two forwarding nodes in a chain of four: 2·t_s + 3·(e+f) + q_h + r_h.
    #[test]
    fn sessions_run_every_length_in_rounds() {
        assert_eq!(
            rounds(&[2, 10, 1000], 10, 3),
            [
                (0, 2, 4),
                (0, 10, 4),
                (0, 1000, 4),
                (1, 2, 3),
                (1, 10, 3),
                (1, 1000, 3),
                (2, 2, 3),
                (2, 10, 3),
                (2, 1000, 3),
            ]
        );
        assert_eq!(rounds(&[2, 50], 10, 1), [(0, 2, 10), (0, 50, 10)]);
        // Rows come back grouped by length, each length's in run order.
        let row = |n: usize, run| Row {
            variant: format!("chain={n}"),
            run,
            values: Default::default(),
        };
        let mut rows = vec![row(2, 1), row(1000, 1), row(2, 2), row(1000, 2)];
        group(&mut rows, &[2, 1000]);
        let got: Vec<_> = rows.iter().map(|r| (r.variant.as_str(), r.run)).collect();
        assert_eq!(
            got,
            [
                ("chain=2", 1),
                ("chain=2", 2),
                ("chain=1000", 1),
                ("chain=1000", 2)
            ]
        );
    }

    #[test]
    fn formula_from_per_hop_means() {
        let rows: Vec<Row> = (1..=2)
            .map(|i| Row {
                variant: "chain=4".into(),
                run: i,
                values: BTreeMap::from([
                    ("setup_A".into(), 9000.0),
                    ("setup_B".into(), 5000.0),
                    ("setup_C".into(), 2000.0),
                    ("setup_H".into(), 1000.0 * i as f64),
                    ("setup_G".into(), 2500.0),
                    ("setup_D_qni".into(), 99.0),
                    ("setup_D_r2".into(), 100.0),
                    ("setup_E_r2".into(), 300.0),
                    ("setup_F_r2".into(), 100.0),
                    ("setup_D_r3".into(), 100.0),
                    ("setup_E_r3".into(), 500.0),
                    ("setup_F_r3".into(), 300.0),
                ]),
            })
            .collect();
        let p = predict(&rows, "chain=4");
        // t_s = (2 + 1.5) / 2; per hop = (0.4 + 0.8) / 2; q_h + r_h = 0.5.
        let want = 2.0 * 1.75 + 3.0 * 0.6 + 0.5;
        assert_eq!(p.routers, 4);
        assert!((p.formula - want).abs() < 1e-12, "{}", p.formula);
        assert_eq!(p.setup_a, [9.0, 9.0]);
        assert_eq!(p.setup_b, 5.0);
        // Sessions on known peers (`VLSP_GIST_REUSE_PEERS`) have no [D]:
        // the hops still count, with g_i = 0 inside [E].
        let no_d: Vec<Row> = rows
            .into_iter()
            .map(|mut r| {
                r.values.retain(|k, _| !k.starts_with("setup_D_"));
                r
            })
            .collect();
        assert!((predict(&no_d, "chain=4").formula - want).abs() < 1e-12);
    }
}
