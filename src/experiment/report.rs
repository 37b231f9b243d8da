//! `vlsp report DIR`: `summary.csv`, `summary.md` and the figures of an
//! experiment folder, redrawn from its `runs.csv` and `meta.json` alone
//! (and `traffic.csv` for qos-isolation). Needs no root, runs nothing, and
//! gives the same bytes from the same CSV. One function per table or figure.

use std::path::Path;

use anyhow::Result;

use crate::experiment::file::Kind;
use crate::experiment::kinds::chain_sweep::predict;
use crate::experiment::kinds::{fault_recovery_plot, qos_isolation, throughput};
use crate::experiment::meta::Meta;
use crate::experiment::plot::{LineChart, Reference, Series};
use crate::experiment::rows::{RSS_KEY, Row, col, col_ms, read_runs, variants};
use crate::experiment::stats::{self, Summary, diff, mean, sum, summarize};
use crate::experiment::{paper, probe};

/// Regenerates `summary.csv`, `summary.md` and the figures of an experiment
/// folder from its `runs.csv` and `meta.json`. Needs no root, runs nothing.
pub fn report(dir: &Path) -> Result<()> {
    let meta = Meta::read(dir)?;
    let rows = read_runs(&dir.join("runs.csv"))?;
    let mut sums: Vec<Summary> = vec![];
    let mut md = header_md(&meta, &mut sums);
    match meta.kind {
        Kind::SetupTeardown | Kind::AuthCompare | Kind::Backends | Kind::QosIsolation => {
            md += &setup_teardown(dir, &rows, &meta, &mut sums)?;
        }
        Kind::Hmac => md += &table2(dir, &rows, &mut sums)?,
        Kind::ChainSweep => md += &chain_sweep(dir, &rows, &mut sums)?,
        Kind::FaultRecovery => md += &fault_recovery_plot::report(dir, &mut sums)?,
        Kind::Throughput => md += &throughput::report(dir, &rows, &mut sums)?,
    }
    stats::write_csv(&dir.join("summary.csv"), &sums)?;
    std::fs::write(dir.join("summary.md"), md)?;
    Ok(())
}

/// The optional modes a run's `VLSP_*` variables switched on (others, e.g.
/// a log level, and values that leave a mode off are not modes).
fn modes_on(env: &[(String, String)]) -> Vec<String> {
    use crate::node::config::{GIST_DATA_IN_QUERY_ENV, GIST_REUSE_PEERS_ENV};
    env.iter()
        .filter(|(k, v)| match k.as_str() {
            // Grouping is the default: a thread per node, or another
            // group size, is the setting to name.
            crate::node::NODES_PER_THREAD_ENV => {
                !v.trim().is_empty()
                    && v.trim() != crate::node::NODES_PER_THREAD_DEFAULT.to_string()
            }
            crate::node::KERNEL_CPUS_ENV => !v.trim().is_empty(),
            crate::model::allocator::ENV => v == crate::model::allocator::GLIBC,
            GIST_DATA_IN_QUERY_ENV | GIST_REUSE_PEERS_ENV => v == "1",
            _ => false,
        })
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect()
}

/// Title, what ran where, and the QEMU guests' boot times (also summaries).
fn header_md(meta: &Meta, sums: &mut Vec<Summary>) -> String {
    let mut md = format!("# {}\n\n{}\n\n", meta.experiment, meta.description);
    md += &format!(
        "{} runs on {} (kernel {}), commit `{}`, {}.{}\n\n",
        meta.runs_done,
        meta.cpu,
        meta.kernel,
        &meta.commit[..meta.commit.len().min(12)],
        meta.date_utc,
        meta.failure
            .as_ref()
            .map(|f| format!(" **Stopped early: {f}**"))
            .unwrap_or_default()
    );
    let on = modes_on(&meta.env);
    if !on.is_empty() {
        md += &format!(
            "Optional modes set for this run (not the paper's defaults): {}.\n\n",
            on.join(", ")
        );
    }
    if let Some(a) = &meta.qemu_accel {
        md += &format!(
            "Virtual nodes are QEMU guests, accelerator: {a}. Boot to readiness (QEMU start → marker on the serial console):"
        );
        for (n, ms) in &meta.qemu_boot_ms {
            md += &format!(" {n} {ms:.0} ms;");
            sums.push(Summary::from_samples(
                &format!("qemu_boot_{n}"),
                "ms",
                &[*ms],
                None,
            ));
        }
        md += "\n\n";
    }
    md
}

/// The kinds that repeat setup and teardown: Table I per variant, Figs. 9,
/// 10, 11 (and 13 for auth-compare), and the traffic part of qos-isolation.
fn setup_teardown(
    dir: &Path,
    rows: &[Row],
    meta: &Meta,
    sums: &mut Vec<Summary>,
) -> Result<String> {
    let variants = variants(rows);
    for var in &variants {
        let pre = if variants.len() > 1 {
            format!("{var}_")
        } else {
            String::new()
        };
        let at = Variant { rows, var, pre };
        at.periods(sums);
        at.wire_minus_points(meta, sums);
        at.fig11_hop(meta.last_qne(), sums);
        at.qos_install(meta, sums);
        at.hmac(("setup_hmac_sign", "setup_hmac_verify"), sums);
        at.node_rss(sums);
    }
    let mut md = table1_md(sums, &variants);
    let first = rows.first().map(|r| r.variant.clone()).unwrap_or_default();
    fig9_fig10(dir, rows, &first)?;
    if let Some(n) = meta.last_qne() {
        fig11(dir, rows, &first, n)?;
    }
    if variants.len() > 1 && meta.kind == Kind::AuthCompare {
        fig13(dir, rows)?;
    }
    if meta.kind == Kind::QosIsolation {
        md += &qos_isolation::report(dir, sums)?;
    }
    Ok(md)
}

/// The runs of one variant, and the prefix of its metrics' names ("" when
/// it is the only variant).
struct Variant<'a> {
    rows: &'a [Row],
    var: &'a str,
    pre: String,
}

impl Variant<'_> {
    fn ms(&self, key: &str) -> Vec<f64> {
        col_ms(self.rows, self.var, key)
    }

    fn add(&self, sums: &mut Vec<Summary>, m: &str, unit: &str, v: &[f64], p: Option<f64>) {
        sums.extend(summarize(&format!("{}{m}", self.pre), unit, v, p));
    }

    /// A duration in ms that the paper reports too.
    fn add_ms(&self, sums: &mut Vec<Summary>, m: &str, v: &[f64], paper: f64) {
        self.add(sums, m, "ms", v, Some(paper));
    }

    /// Table I's periods, and the differences the paper reports beside them.
    fn periods(&self, sums: &mut Vec<Summary>) {
        let table = [
            ("setup_A", "setup_A", Some(paper::SETUP_A)),
            ("setup_A_node", "setup_A_node", None),
            ("setup_H", "setup_H", Some(paper::SETUP_H)),
            ("setup_C", "setup_C", Some(paper::SETUP_C)),
            ("setup_B", "setup_B", Some(paper::SETUP_B)),
            ("setup_G", "setup_G", None),
            ("teardown_A", "teardown_A", Some(paper::TEARDOWN_A)),
            ("teardown_H", "teardown_H", Some(paper::TEARDOWN_H)),
            ("teardown_C", "teardown_C", Some(paper::TEARDOWN_C)),
            ("teardown_B", "teardown_B", Some(paper::TEARDOWN_B)),
            ("teardown_delete_tb1", "teardown_delete_qni", None),
            ("teardown_delete_tb4", "teardown_delete_qnr", None),
        ];
        for (m, k, p) in table {
            self.add(sums, m, "ms", &self.ms(k), p);
        }
        let (b, c, g) = (self.ms("setup_B"), self.ms("setup_C"), self.ms("setup_G"));
        self.add_ms(sums, "setup_signaling", &diff(&b, &c), paper::SIGNALING);
        self.add_ms(sums, "setup_qh_rh", &diff(&g, &c), paper::QH_RH);
    }

    /// Capture (`--pcap`): the wire's periods minus the points' (µs).
    fn wire_minus_points(&self, meta: &Meta, sums: &mut Vec<Summary>) {
        let qne = meta.last_qne();
        let at_qne = |p: &str| qne.map(|n| (n.to_string(), format!("setup_{p}_{n}")));
        for (what, node_and_key) in [
            ("D", at_qne("D")),
            ("E", at_qne("E")),
            ("F", at_qne("F")),
            ("G", meta.path.last().map(|n| (n.clone(), "setup_G".into()))),
        ] {
            let Some((n, pk)) = node_and_key else {
                continue;
            };
            let pairs: Vec<f64> = self
                .rows
                .iter()
                .filter(|r| r.variant == self.var)
                .filter_map(|r| {
                    Some(r.values.get(&format!("setup_wire_{what}_{n}"))? - r.values.get(&pk)?)
                })
                .collect();
            self.add(
                sums,
                &format!("wire_minus_points_{what}"),
                "us",
                &pairs,
                None,
            );
        }
    }

    /// Fig. 11's periods at the forwarding node next to the responder.
    fn fig11_hop(&self, qne: Option<&str>, sums: &mut Vec<Summary>) {
        let Some(n) = qne else { return };
        let d = self.ms(&format!("setup_D_{n}"));
        let e = self.ms(&format!("setup_E_{n}"));
        let f = self.ms(&format!("setup_F_{n}"));
        self.add_ms(sums, "setup_D", &d, paper::D);
        self.add_ms(sums, "setup_E_minus_D", &diff(&e, &d), paper::E_MINUS_D);
        self.add_ms(sums, "setup_F", &f, paper::F);
    }

    /// Installing the reservation in the kernel, per hop (µs).
    fn qos_install(&self, meta: &Meta, sums: &mut Vec<Summary>) {
        let mut keys: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.variant == self.var)
            .flat_map(|r| r.values.keys())
            .filter(|k| k.starts_with("setup_qos_install_"))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let node = k.trim_start_matches("setup_qos_install_");
            let node = if node == "qni" {
                meta.path.first().map_or("qni", |s| s.as_str())
            } else {
                node
            };
            let v = col(self.rows, self.var, &k);
            self.add(sums, &format!("qos_install_{node}"), "us", &v, None);
        }
    }

    /// Resident memory of the node processes (KiB), per node and all
    /// nodes' samples together (`node_rss_kib`); nothing for node threads.
    fn node_rss(&self, sums: &mut Vec<Summary>) {
        let mut keys: Vec<&String> = self
            .rows
            .iter()
            .filter(|r| r.variant == self.var)
            .flat_map(|r| r.values.keys())
            .filter(|k| k.starts_with(RSS_KEY))
            .collect();
        keys.sort();
        keys.dedup();
        let all: Vec<f64> = keys
            .iter()
            .flat_map(|k| col(self.rows, self.var, k))
            .collect();
        self.add(sums, "node_rss_kib", "KiB", &all, None);
        for k in keys {
            self.add(sums, k, "KiB", &col(self.rows, self.var, k), None);
        }
    }

    /// HMAC creation and verification (µs) from the columns `keys`.
    fn hmac(&self, keys: (&str, &str), sums: &mut Vec<Summary>) {
        let create = col(self.rows, self.var, keys.0);
        let verify = col(self.rows, self.var, keys.1);
        self.add(
            sums,
            "hmac_create",
            "us",
            &create,
            Some(paper::HMAC_CREATE.0),
        );
        self.add(
            sums,
            "hmac_verify",
            "us",
            &verify,
            Some(paper::HMAC_VERIFY.0),
        );
    }
}

fn find<'a>(sums: &'a [Summary], m: &str) -> Option<&'a Summary> {
    sums.iter().find(|s| s.metric == m)
}

/// Table I (setup, teardown) and the plain signaling table, per variant.
fn table1_md(sums: &[Summary], variants: &[String]) -> String {
    let mut md = String::new();
    for var in variants {
        let pre = if variants.len() > 1 {
            format!("{var}_")
        } else {
            String::new()
        };
        if variants.len() > 1 {
            md += &format!("## Variant `{var}`\n\n");
        }
        md += &table1_section(sums, &pre);
        md += &signaling_md(sums, &pre);
    }
    md += "![Fig. 9](fig9_setup.png)\n\n![Fig. 10](fig10_teardown.png)\n\n![Fig. 11](fig11_signaling.png)\n";
    if variants.len() > 1 {
        md += "\n![Fig. 13](fig13_auth.png)\n";
    }
    md
}

/// Table I's two halves for the metrics named `<pre><metric>`.
fn table1_section(sums: &[Summary], pre: &str) -> String {
    let mut md = String::new();
    for (title, rows) in [
        (
            "Establishment of a virtual link with QoS guarantee [ms]",
            [
                ("External program", "[A]", "setup_A"),
                ("Virtual link setup on tb1", "[H]", "setup_H"),
                ("Virtual link setup on tb4", "[C]", "setup_C"),
                ("Total NSIS signaling duration", "[B]", "setup_B"),
            ],
        ),
        (
            "Removal of a virtual link and tear down of QoS reservation [ms]",
            [
                ("External program", "[A]", "teardown_A"),
                ("Virtual link tear down on tb1", "[H]", "teardown_H"),
                ("Virtual link tear down on tb4", "[C]", "teardown_C"),
                ("Total NSIS signaling duration", "[B]", "teardown_B"),
            ],
        ),
    ] {
        md += &format!(
            "### Table I: {title}\n\n| | | ours avg | stddev | 95% CI | paper avg | paper / ours |\n|---|---|---|---|---|---|---|\n"
        );
        for (label, p, m) in rows {
            if let Some(s) = find(sums, &format!("{pre}{m}")) {
                md += &format!(
                    "| {label} | {p} | {:.3} | {:.3} | [{:.3}, {:.3}] | {} | {} |\n",
                    s.mean,
                    s.stddev,
                    s.ci95_low,
                    s.ci95_high,
                    s.paper.map(|x| format!("{x:.1}")).unwrap_or_default(),
                    s.ratio.map(|x| format!("{x:.0}×")).unwrap_or_default()
                );
            }
        }
        md += "\n";
    }
    md
}

/// The plain signaling overhead (Fig. 11) and the other per-node periods.
fn signaling_md(sums: &[Summary], pre: &str) -> String {
    let mut md = "### Plain signaling overhead (Fig. 11) [ms]\n\n| | ours avg | stddev | paper |\n|---|---|---|---|\n".to_string();
    for (label, m) in [
        ("GIST handshake at the last forwarding node [D]", "setup_D"),
        ("RESERVE processing there [E]-[D]", "setup_E_minus_D"),
        ("RESPONSE processing there [F]", "setup_F"),
        ("Signaling without tunnel setup [B]-[C]", "setup_signaling"),
        ("q_h + r_h at the responder [G]-[C]", "setup_qh_rh"),
        (
            "Deferred tunnel-device deletion on tb1 after teardown",
            "teardown_delete_tb1",
        ),
        (
            "Deferred tunnel-device deletion on tb4 after teardown",
            "teardown_delete_tb4",
        ),
        ("HMAC creation on tb1 [µs]", "hmac_create"),
        ("HMAC verification on tb4 [µs]", "hmac_verify"),
    ] {
        if let Some(s) = find(sums, &format!("{pre}{m}")) {
            md += &format!(
                "| {label} | {:.3} | {:.3} | {} |\n",
                s.mean,
                s.stddev,
                s.paper.map(|x| format!("{x}")).unwrap_or_default()
            );
        }
    }
    md + "\n"
}

/// A chart of durations per run, y from zero.
fn per_run_chart(title: String, y_label: &str, series: Vec<Series>) -> LineChart {
    LineChart {
        title,
        x_label: "run".into(),
        y_label: y_label.into(),
        series,
        references: vec![],
        y_from_zero: true,
    }
}

/// Figs. 9 and 10: setup and teardown per run of variant `v`.
fn fig9_fig10(dir: &Path, rows: &[Row], v: &str) -> Result<()> {
    for (phase, fig, title) in [
        ("setup", "fig9_setup", "Fig. 9: virtual link setup"),
        (
            "teardown",
            "fig10_teardown",
            "Fig. 10: virtual link teardown",
        ),
    ] {
        let g = |x: &str| col_ms(rows, v, &format!("{phase}_{x}"));
        let (a, b, c, h) = (g("A"), g("B"), g("C"), g("H"));
        per_run_chart(
            format!("{title} ({}, {} runs)", v, a.len()),
            "duration [ms]",
            vec![
                Series::per_run("[A] external program", &a),
                Series::per_run("[H]+[B] tunnel end tb1 + signaling", &sum(&h, &b)),
                Series::per_run("[B] NSIS signaling", &b),
                Series::per_run("[C] tunnel end on tb4", &c),
            ],
        )
        .render(&dir.join(fig))?;
    }
    Ok(())
}

/// Fig. 11: plain signaling at forwarding node `n` per run of variant `v`.
fn fig11(dir: &Path, rows: &[Row], v: &str, n: &str) -> Result<()> {
    let g = |p: &str| col_ms(rows, v, &format!("setup_{p}_{n}"));
    let (d, e, f) = (g("D"), g("E"), g("F"));
    per_run_chart(
        format!(
            "Fig. 11: plain signaling overhead on {n} ({} runs)",
            d.len()
        ),
        "duration [ms]",
        vec![
            Series::per_run("[D] GIST handshake", &d),
            Series::per_run("[E]-[D] RESERVE processing", &diff(&e, &d)),
            Series::per_run("[F] RESPONSE processing", &f),
        ],
    )
    .render(&dir.join("fig11_signaling"))?;
    Ok(())
}

/// Fig. 13: signaling with and without authentication, per run.
fn fig13(dir: &Path, rows: &[Row]) -> Result<()> {
    let g = |var: &str, k: &str| col_ms(rows, var, k);
    let over = |var: &str| {
        diff(
            &diff(&g(var, "setup_A"), &g(var, "setup_C")),
            &g(var, "setup_H"),
        )
    };
    let plain = |var: &str| diff(&g(var, "setup_B"), &g(var, "setup_C"));
    per_run_chart(
        "Fig. 13: signaling with and without authentication".into(),
        "duration [ms]",
        vec![
            Series::per_run("[A]-[C]-[H] with authentication", &over("auth")),
            Series::per_run("[A]-[C]-[H] without authentication", &over("noauth")),
            Series::per_run("[B]-[C] with authentication", &plain("auth")),
            Series::per_run("[B]-[C] without authentication", &plain("noauth")),
        ],
    )
    .render(&dir.join("fig13_auth"))?;
    Ok(())
}

/// Table II (per variant: `paper-count` unprefixed) and Fig. 12.
fn table2(dir: &Path, rows: &[Row], sums: &mut Vec<Summary>) -> Result<String> {
    for var in &variants(rows) {
        let pre = if var == "paper-count" {
            String::new()
        } else {
            format!("{var}_")
        };
        Variant { rows, var, pre }.hmac(("hmac_create", "hmac_verify"), sums);
    }
    let mut md = "## Table II: duration of HMAC-based integrity operations [µs]\n\n| | ours avg | min | max | stddev | paper avg | min | max | stddev |\n|---|---|---|---|---|---|---|---|---|\n".to_string();
    let paper_rows = [paper::HMAC_CREATE, paper::HMAC_VERIFY];
    for (s, p) in sums.iter().zip(paper_rows.iter().cycle()) {
        md += &format!(
            "| {} (n={}) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            s.metric, s.n, s.mean, s.min, s.max, s.stddev, p.0, p.1, p.2, p.3
        );
    }
    fig12(dir, rows)?;
    md += &format!(
        "\nThe paper's averages ({:.1} µs and {:.1} µs) are far above our range and would flatten the plot, so they are in the table, not the figure.\n\n![Fig. 12](fig12_hmac.png)\n",
        paper::HMAC_CREATE.0,
        paper::HMAC_VERIFY.0
    );
    Ok(md)
}

/// Fig. 12: HMAC creation and verification per run (paper count).
fn fig12(dir: &Path, rows: &[Row]) -> Result<()> {
    per_run_chart(
        "Fig. 12: HMAC creation and verification per run".into(),
        "duration [µs]",
        vec![
            Series::per_run(
                "HMAC creation (tb1 side)",
                &col(rows, "paper-count", "hmac_create"),
            ),
            Series::per_run(
                "HMAC verification (tb4 side)",
                &col(rows, "paper-count", "hmac_verify"),
            ),
        ],
    )
    .render(&dir.join("fig12_hmac"))?;
    Ok(())
}

/// The chain sweep's table and figure: measured [A] against the formula.
fn chain_sweep(dir: &Path, rows: &[Row], sums: &mut Vec<Summary>) -> Result<String> {
    let mut measured = vec![];
    let mut predicted = vec![];
    // (routers, setup [A] in µs) of every run.
    let mut runs = vec![];
    let mut md = "## Setup over chains of routers, against the paper's formula\n\n\
        d_setup = 2·t_s + Σ_{i<h}(g_i + q_i + r_i) + q_h + r_h, with t_s = mean of [C] and [H], \
        g_i = [D], q_i = [E]−[D], r_i = [F] measured on each forwarding node (the initiator's \
        handshake and processing stand in for its own terms), q_h + r_h = [G]−[C].\n\n\
        | routers | measured [A] avg [ms] | formula [ms] | [B] avg [ms] |\n|---|---|---|---|\n"
        .to_string();
    // (routers, [A] less the time the RESPONSE waited for classes) of every run.
    let mut less_held = vec![];
    let mut holds = "\n### Reservations behind the signaling\n\n\
        Each router's class is installed by its node thread's kernel thread while the \
        RESERVE goes on; the RESPONSE waits at a router whose class is not in place yet. \
        The kernel threads share one CPU and can fall behind. Held: the time the RESPONSE \
        waited, summed over the forwarding routers of a run (it passes them one after the \
        other); class wait: admission done → install started (the node's own sends of that \
        turn, then the kernel thread's queue), the longest of a run. The slope line of [A] \
        less the holds takes out the waits a run recorded; it does not predict [A] without \
        them (the RESPONSE could then wait longer elsewhere).\n\n\
        | routers | runs held | held per run, mean [ms] | longest hold [ms] | class wait, median of the runs' longest [ms] |\n\
        |---|---|---|---|---|\n"
        .to_string();
    // Whether any run recorded the holds: not those from before they were.
    let mut recorded = false;
    // (routers, [A] in µs, the speed probe after it in µs) of every run
    // that has one.
    let mut probed = vec![];
    for var in &variants(rows) {
        let p = predict(rows, var);
        let n = p.routers;
        let (mut held, mut has) = (vec![], false);
        for r in rows.iter().filter(|r| &r.variant == var) {
            let h = r.values.get("setup_response_held").copied();
            has |= h.is_some();
            if let Some(a) = r.values.get("setup_A") {
                less_held.push((n as f64, a - h.unwrap_or(0.0)));
                held.push(h.unwrap_or(0.0) / 1e3);
                if let Some(p) = r.values.get(probe::KEY) {
                    probed.push((n as f64, *a, *p));
                }
            }
        }
        recorded |= has;
        let waits = col_ms(rows, var, "setup_class_wait_max");
        // A chain of 2 has no router in between to hold the RESPONSE.
        holds += &if !has {
            format!("| {n} | – | – | – | – |\n")
        } else {
            format!(
                "| {n} | {} of {} | {:.3} | {:.3} | {} |\n",
                held.iter().filter(|h| **h > 0.0).count(),
                held.len(),
                mean(&held),
                held.iter().copied().fold(0.0, f64::max),
                summarize("", "", &waits, None)
                    .map_or("–".into(), |w| format!("{:.3}", w.median)),
            )
        };
        let estimate = (n == 10).then_some(paper::TEN_NODE_ESTIMATE);
        sums.extend(summarize(
            &format!("setup_A_chain{n}"),
            "ms",
            &p.setup_a,
            estimate,
        ));
        let a = mean(&p.setup_a);
        let formula = if p.formula.is_finite() {
            format!("{:.3}", p.formula)
        } else {
            "–".to_string()
        };
        md += &format!("| {n} | {a:.3} | {formula} | {:.3} |\n", p.setup_b);
        if has {
            sums.extend(summarize(
                &format!("setup_response_held_chain{n}"),
                "ms",
                &held,
                None,
            ));
        }
        measured.push((n as f64, a));
        predicted.push((n as f64, p.formula));
        runs.extend(p.setup_a.iter().map(|ms| (n as f64, ms * 1000.0)));
    }
    // Runs from before the holds were recorded (`vlsp report` of an old
    // sweep): no line and no table rather than zeros.
    md += &slopes(&runs, recorded.then_some(&less_held[..]), &predicted);
    if !probed.is_empty() {
        let probes: Vec<f64> = probed.iter().map(|p| p.2).collect();
        sums.extend(summarize(probe::KEY, "us", &probes, None));
        md += &at_fastest_probe(&probed);
    }
    if recorded {
        md += &holds;
    }
    predicted.retain(|p| p.1.is_finite());
    fig_chain_sweep(dir, measured, predicted)?;
    md += "\n![chain sweep](fig_chain_sweep.png)\n";
    Ok(md)
}

/// The cost of one more router: least-squares lines through every run's
/// [A] (all lengths, and up to 200 routers, where the sweep is still
/// straight) and through the formula's predictions.
fn slopes(
    runs: &[(f64, f64)],
    less_held: Option<&[(f64, f64)]>,
    predicted: &[(f64, f64)],
) -> String {
    let line = |what: &str, pts: &[(f64, f64)]| match crate::experiment::stats::slope(pts) {
        Some((b, w)) => format!(
            "| {what} | {} | {b:.1} | [{:.1}, {:.1}] |\n",
            pts.len(),
            b - w,
            b + w
        ),
        None => format!("| {what} | {} | – | – |\n", pts.len()),
    };
    let upto = |n: f64| {
        runs.iter()
            .copied()
            .filter(|p| p.0 <= n)
            .collect::<Vec<_>>()
    };
    // The formula needs [E] and [G] (q_h + r_h = [G] − [C]), which a run
    // with the RESERVE in the Query (VLSP_GIST_DATA_IN_QUERY) does not
    // record: no line then.
    let formula: Vec<(f64, f64)> = predicted
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|&(n, ms)| (n, ms * 1000.0))
        .collect();
    let mut md = "\n### Per router: the slope of setup [A]\n\n\
        Least-squares lines, µs per router, with the 95 % confidence interval of the slope.\n\n\
        | line through | points | µs per router | 95 % CI |\n|---|---|---|---|\n"
        .to_string();
    md += &line("every run's [A]", runs);
    md += &line("every run's [A], chains up to 200 routers", &upto(200.0));
    if let Some(l) = less_held {
        md += &line(
            "every run's [A] less the time its RESPONSE waited for classes",
            l,
        );
    }
    md += &line("the formula's prediction per length", &formula);
    md
}

/// The slope at the machine's fastest: a line through every run's [A]
/// with the speed probe after it as a covariate (`stats::slope_at`), read
/// at the sweep's fastest probe. Not a proportional scaling: the hop's
/// kernel part need not slow down as much as the probed code.
fn at_fastest_probe(probed: &[(f64, f64, f64)]) -> String {
    let probes: Vec<f64> = probed.iter().map(|p| p.2).collect();
    let s = Summary::from_samples(probe::KEY, "us", &probes, None);
    let (fastest, median, slowest) = (s.min, s.median, s.max);
    let line = match crate::experiment::stats::slope_at(probed, fastest) {
        Some((b, w, c)) => format!(
            "{b:.1} µs per router at the fastest probe (95 % CI [{:.1}, {:.1}]), {c:.2} µs per \
             router more per µs of probe, so {:.1} at the median probe",
            b - w,
            b + w,
            b + c * (median - fastest)
        ),
        None => "– (too few runs, or a probe that never moved)".into(),
    };
    format!(
        "\n### The machine's speed beside the runs\n\n\
         After each run the signaling code of a 20-router chain was timed in memory, on the \
         nodes' signaling CPUs when the testbed pinned them (the default with two CPUs or \
         more; else where the runner ran), as `speed_probe_us` in runs.csv (µs per router \
         and signed setup, no kernel): {fastest:.2} at the fastest, {median:.2} in the median, {slowest:.2} at \
         the slowest, over {} runs. A line through every run's [A] with its probe as a \
         covariate ([A] = a + d·(probe − fastest) + b·routers + c·routers·(probe − \
         fastest)) gives {line}.\n",
        probed.len()
    )
}

/// Setup over chain length: measured means and the formula's predictions.
fn fig_chain_sweep(
    dir: &Path,
    measured: Vec<(f64, f64)>,
    predicted: Vec<(f64, f64)>,
) -> Result<()> {
    LineChart {
        title: "Setup [A] over chain length: measured and formula".into(),
        x_label: "routers in the chain".into(),
        y_label: "setup [ms]".into(),
        series: vec![
            Series {
                name: "measured [A] (mean)".into(),
                points: measured,
                markers: true,
            },
            Series {
                name: "formula from per-hop measurements".into(),
                points: predicted,
                markers: true,
            },
        ],
        references: vec![Reference {
            name: format!(
                "paper's estimate for 10 routers: {} ms",
                paper::TEN_NODE_ESTIMATE
            ),
            value: paper::TEN_NODE_ESTIMATE,
        }],
        y_from_zero: true,
    }
    .render(&dir.join("fig_chain_sweep"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::rows::tests::sample_rows;
    use crate::experiment::rows::write_runs;
    use crate::experiment::scratch::Scratch;

    /// Runs on a machine whose speed halves and comes back: read at the
    /// fastest probe, the line is the fast machine's, not the mix.
    #[test]
    fn the_slope_at_the_fastest_probe_takes_the_machines_phases_out() {
        // 20 µs per router at probe 5 µs; the runs at probe 10 took twice
        // as long.
        let probed: Vec<(f64, f64, f64)> = [2.0, 10.0, 50.0, 100.0, 200.0]
            .iter()
            .flat_map(|&n| {
                let a = 1000.0 + 20.0 * n;
                [(n, a, 5.0), (n, 2.0 * a, 10.0)]
            })
            .collect();
        let md = at_fastest_probe(&probed);
        let want = "gives 20.0 µs per router at the fastest probe (95 % CI [20.0, 20.0]), 4.00 µs \
                    per router more per µs of probe, so 30.0 at the median probe";
        assert!(md.contains(want), "{md}");
        let probes = "5.00 at the fastest, 7.50 in the median, 10.00 at the slowest, over 10 runs";
        assert!(md.contains(probes), "{md}");
        let one = at_fastest_probe(&probed[..1]);
        assert!(
            one.contains("– (too few runs, or a probe that never moved)"),
            "{one}"
        );
    }

    #[test]
    fn chain_sweep_slopes_name_what_they_fit_and_leave_a_missing_formula_out() {
        // 20 µs per router plus noise; a formula that is NaN everywhere (data
        // in the Query: no [E] or [G]) gives no line, not "NaN".
        let runs: Vec<(f64, f64)> = [2.0, 10.0, 50.0, 100.0, 200.0, 500.0]
            .iter()
            .flat_map(|&n| [(n, 1000.0 + 20.0 * n - 5.0), (n, 1000.0 + 20.0 * n + 5.0)])
            .collect();
        let nan = [(2.0, f64::NAN), (10.0, f64::NAN), (50.0, f64::NAN)];
        let md = slopes(&runs, None, &nan);
        assert!(md.contains("| every run's [A] | 12 | 20.0 |"), "{md}");
        assert!(
            md.contains("| every run's [A], chains up to 200 routers | 10 | 20.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| the formula's prediction per length | 0 | – | – |"),
            "{md}"
        );
        assert!(!md.contains("NaN"), "{md}");
        // ms in, µs per router out.
        let formula = [(2.0, 1.04), (10.0, 1.2), (50.0, 2.0)];
        assert!(
            slopes(&runs, None, &formula)
                .contains("| the formula's prediction per length | 3 | 20.0 |")
        );
    }

    /// The RESPONSE's holds give a line of their own and a table; a sweep
    /// from before they were recorded (`vlsp report` of an old one) gets
    /// neither, not zeros.
    #[test]
    fn chain_sweep_reports_the_holds_only_when_recorded() {
        let row = |n: usize, run: usize, a: f64, held: Option<f64>| {
            let mut values = std::collections::BTreeMap::new();
            values.insert("setup_A".to_string(), a);
            if let Some(h) = held {
                values.insert("setup_response_held".to_string(), h);
                values.insert("setup_class_wait_max".to_string(), 2.0 * h);
            }
            Row {
                variant: format!("chain={n}"),
                run,
                values,
            }
        };
        // 20 µs per router, and on the chain of 100 one run held 500 µs.
        let rows = vec![
            row(2, 1, 1040.0, None),
            row(10, 1, 1200.0, Some(0.0)),
            row(10, 2, 1200.0, Some(0.0)),
            row(100, 1, 3000.0, Some(0.0)),
            row(100, 2, 3500.0, Some(500.0)),
        ];
        let dir = Scratch::new("chain-holds");
        let mut sums = vec![];
        let md = chain_sweep(dir.path(), &rows, &mut sums).unwrap();
        assert!(
            md.contains(
                "| every run's [A] less the time its RESPONSE waited for classes | 5 | 20.0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 100 | 1 of 2 | 0.250 | 0.500 | 0.500 |"),
            "{md}"
        );
        assert!(
            md.contains("| 10 | 0 of 2 | 0.000 | 0.000 | 0.000 |"),
            "{md}"
        );
        // No router between the ends of a chain of 2: nothing to hold.
        assert!(md.contains("| 2 | – | – | – | – |"), "{md}");
        assert!(
            !sums
                .iter()
                .any(|s| s.metric == "setup_response_held_chain2")
        );
        assert!(
            sums.iter()
                .any(|s| s.metric == "setup_response_held_chain100")
        );
        let old: Vec<Row> = rows
            .iter()
            .map(|r| Row {
                values: r
                    .values
                    .iter()
                    .filter(|(k, _)| *k == "setup_A")
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                ..r.clone()
            })
            .collect();
        let mut sums = vec![];
        let md = chain_sweep(dir.path(), &old, &mut sums).unwrap();
        assert!(!md.contains("waited for classes"), "{md}");
        assert!(!md.contains("Reservations behind"), "{md}");
        assert!(
            !sums
                .iter()
                .any(|s| s.metric.starts_with("setup_response_held"))
        );
    }

    fn meta(kind: Kind) -> Meta {
        Meta {
            experiment: "t".into(),
            kind,
            description: String::new(),
            runs_requested: 5,
            runs_done: 5,
            sessions: 1,
            commit: "abc".into(),
            kernel: "k".into(),
            cpu: "c".into(),
            date_utc: "d".into(),
            backend: "netlink".into(),
            topology_file: None,
            topology_sha256: None,
            path: vec!["tb1".into(), "tb2".into(), "tb3".into(), "tb4".into()],
            command_line: String::new(),
            failure: None,
            qemu_accel: None,
            qemu_boot_ms: vec![],
            gist_data_in_query: false,
            shape_eagerly_up_to: Some(1000),
            env: vec![],
            allocator: None,
        }
    }

    /// A run with an optional mode says so at the top of its summary.
    #[test]
    fn summary_names_the_optional_modes_of_the_run() {
        let mut m = meta(Kind::SetupTeardown);
        assert!(!header_md(&m, &mut vec![]).contains("Optional modes"));
        m.env = vec![("VLSP_LOG".into(), "debug".into())];
        m.env.push(("VLSP_NODES_PER_THREAD".into(), "64".into()));
        assert!(!header_md(&m, &mut vec![]).contains("Optional modes"));
        m.env[1].1 = "1".into();
        let md = header_md(&m, &mut vec![]);
        assert!(md.contains("`VLSP_NODES_PER_THREAD=1`."), "{md}");
        m.env.pop();
        m.env.push(("VLSP_GIST_REUSE_PEERS".into(), "1".into()));
        let md = header_md(&m, &mut vec![]);
        assert!(md.contains("Optional modes set for this run"), "{md}");
        assert!(md.contains("`VLSP_GIST_REUSE_PEERS=1`."), "{md}");
        m.env.push(("VLSP_KERNEL_CPUS".into(), "1".into()));
        let md = header_md(&m, &mut vec![]);
        assert!(md.contains("`VLSP_KERNEL_CPUS=1`."), "{md}");
    }

    /// `report` draws the same figures from the same CSV, byte for byte.
    #[test]
    fn report_is_reproducible() {
        let scratch = Scratch::new("rep");
        let dir = scratch.path();
        write_runs(&dir.join("runs.csv"), &sample_rows()).unwrap();
        let meta = meta(Kind::SetupTeardown);
        std::fs::write(dir.join("meta.json"), serde_json::to_string(&meta).unwrap()).unwrap();
        report(dir).unwrap();
        let svg1 = std::fs::read(dir.join("fig9_setup.svg")).unwrap();
        let png1 = std::fs::read(dir.join("fig11_signaling.png")).unwrap();
        report(dir).unwrap();
        assert_eq!(svg1, std::fs::read(dir.join("fig9_setup.svg")).unwrap());
        assert_eq!(
            png1,
            std::fs::read(dir.join("fig11_signaling.png")).unwrap()
        );
        let s = stats::read_csv(&dir.join("summary.csv")).unwrap();
        let a = s.iter().find(|x| x.metric == "setup_A").unwrap();
        assert_eq!(a.paper, Some(paper::SETUP_A));
        assert!((a.mean - 1.003).abs() < 1e-9);
        let ed = s.iter().find(|x| x.metric == "setup_E_minus_D").unwrap();
        assert!((ed.mean - 0.03).abs() < 1e-9);
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(md.contains("| External program | [A] | 1.003"));
    }

    /// Table II lists every variant, creation then verification, beside the
    /// paper's row; the paper-count variant keeps the unprefixed names.
    #[test]
    fn table2_rows_alternate_with_the_paper() {
        let rows: Vec<Row> = ["paper-count", "paper-count", "high-count"]
            .iter()
            .enumerate()
            .map(|(i, v)| Row {
                variant: v.to_string(),
                run: i + 1,
                values: [("hmac_create".into(), 1.0), ("hmac_verify".into(), 2.0)].into(),
            })
            .collect();
        let dir = Scratch::new("rep2");
        let mut sums = vec![];
        let md = table2(dir.path(), &rows, &mut sums).unwrap();
        let names: Vec<&str> = sums.iter().map(|s| s.metric.as_str()).collect();
        assert_eq!(
            names,
            [
                "hmac_create",
                "hmac_verify",
                "high-count_hmac_create",
                "high-count_hmac_verify"
            ]
        );
        assert!(
            md.contains("| high-count_hmac_verify (n=1) | 2.000 | 2.000 | 2.000 | 0.000 | 33.903")
        );
        assert!(md.contains("The paper's averages (28.7 µs and 33.9 µs)"));
    }
}
