//! The report of `fault-recovery`, from `recovery.csv` and `traffic.csv`
//! alone: the four metrics per routing kind, the reserved flow's median
//! rate over time with the fault marked, and the CDF of repair times.

use std::path::Path;

use anyhow::Result;

use crate::experiment::kinds::fault_recovery_metrics::{RateSample, Recovery, read_csv};
use crate::experiment::plot::{LineChart, Reference, Series};
use crate::experiment::stats::{Summary, summarize};

const ROUTINGS: [&str; 2] = ["static", "ospf"];

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The values of one metric of one routing kind (runs where it happened).
fn col(recs: &[Recovery], routing: &str, f: impl Fn(&Recovery) -> Option<f64>) -> Vec<f64> {
    recs.iter()
        .filter(|r| r.routing == routing)
        .filter_map(f)
        .filter(|v| v.is_finite())
        .collect()
}

/// Adds the metrics and figures of a fault-recovery folder; returns the
/// Markdown section.
pub fn report(dir: &Path, sums: &mut Vec<Summary>) -> Result<String> {
    let p = dir.join("recovery.csv");
    if !p.exists() {
        return Ok("\n(no recovery.csv: no run finished)\n".into());
    }
    let recs: Vec<Recovery> = read_csv(&p)?;
    let mut md = String::from(
        "\n## Fault recovery\n\nA signed reserved virtual link VM1→VM2 carries a flow at its reserved rate; a substrate link in the middle of the reserved path fails; once the new path holds the reservation, a best-effort flood crosses its links. Times from the fault. repair: every hop of the new path holds an HTB class; old branch freed: no class left on the old path's other hops; outage: the reserved flow's longest receiver gap (10 ms bins); share: its received rate from 0.5 s after the repair to the end of the run, over the offered rate. censored: runs whose traffic ended before the flow was back or the share could be measured (their outage and share are cut short; raise `traffic_seconds` or `ospf_traffic_seconds`).\n\n| routing | runs | repaired | lost after repair | repair_ms | `repaired` event ms | old_branch_freed_ms | outage_ms | reserved_share_after_pct | censored |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut repair_cdf = vec![];
    for routing in ROUTINGS {
        let n = recs.iter().filter(|r| r.routing == routing).count();
        if n == 0 {
            continue;
        }
        let ok = recs
            .iter()
            .filter(|r| r.routing == routing && r.repaired)
            .count();
        let lost = recs
            .iter()
            .filter(|r| r.routing == routing && r.lost_after_repair)
            .count();
        let cut = recs
            .iter()
            .filter(|r| r.routing == routing && r.censored)
            .count();
        let mut metric = |name: &str, unit: &str, f: &dyn Fn(&Recovery) -> Option<f64>| {
            let mut v = col(&recs, routing, f);
            sums.extend(summarize(&format!("{routing}_{name}"), unit, &v, None));
            median(&mut v)
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "–".into())
        };
        let repair = metric("repair_ms", "ms", &|r| r.repair_ms);
        let event = metric("repaired_event_ms", "ms", &|r| r.repaired_event_ms);
        let freed = metric("old_branch_freed_ms", "ms", &|r| r.old_branch_freed_ms);
        let outage = metric("outage_ms", "ms", &|r| Some(r.outage_ms));
        let share = metric("reserved_share_after_pct", "%", &|r| {
            r.reserved_share_after_pct
        });
        md += &format!(
            "| {routing} | {n} | {ok} | {lost} | {repair} | {event} | {freed} | {outage} | {share} | {cut} |\n"
        );
        repair_cdf.push((routing, col(&recs, routing, |r| r.repair_ms)));
    }
    md += "\nMedians; summary.csv has mean, spread and the 95 % interval.\n\n![reserved rate over time](fault_recovery_rate.png)\n![CDF of repair times](fault_recovery_repair_cdf.png)\n";
    let t = dir.join("traffic.csv");
    let samples: Vec<RateSample> = if t.exists() { read_csv(&t)? } else { vec![] };
    rate_figure(dir, &recs, &samples)?;
    cdf_figure(dir, &repair_cdf)?;
    Ok(md)
}

/// Per time bin, the median over runs of one flow's rate (Mbit/s).
fn median_series(samples: &[RateSample], routing: &str, flow: &str) -> Vec<(f64, f64)> {
    let mut by_t: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    for s in samples
        .iter()
        .filter(|s| s.routing == routing && s.flow == flow)
    {
        by_t.entry((s.t_s * 1e3).round() as u64)
            .or_default()
            .push(s.wire_bps / 1e6);
    }
    by_t.into_iter()
        .filter_map(|(t, mut v)| Some((t as f64 / 1e3, median(&mut v)?)))
        .collect()
}

/// The reserved flow's (and the flood's) median rate over time per routing
/// kind, the fault as a vertical line.
fn rate_figure(dir: &Path, recs: &[Recovery], samples: &[RateSample]) -> Result<()> {
    let mut series = vec![];
    for routing in ROUTINGS {
        for (flow, name) in [
            ("reserved", "reserved flow"),
            ("flood", "best-effort flood"),
        ] {
            let points = median_series(samples, routing, flow);
            if !points.is_empty() {
                series.push(Series {
                    name: format!("{name}, {routing} routing"),
                    points,
                    markers: false,
                });
            }
        }
    }
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let mut at: Vec<f64> = recs.iter().map(|r| r.fault_at_ms / 1e3).collect();
    if let Some(f) = median(&mut at) {
        series.push(Series {
            name: format!("fault ({})", recs[0].fault),
            points: vec![(f, 0.0), (f, top)],
            markers: false,
        });
    }
    LineChart {
        title: "Reserved virtual link through a link failure (median over runs)".into(),
        x_label: "time from the start of traffic [s]".into(),
        y_label: "received rate at substrate wire size [Mbit/s]".into(),
        series,
        references: vec![],
        y_from_zero: true,
    }
    .render(&dir.join("fault_recovery_rate"))?;
    Ok(())
}

/// Empirical CDF of the repair times, one line per routing kind.
fn cdf_figure(dir: &Path, per: &[(&str, Vec<f64>)]) -> Result<()> {
    let series = per
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(routing, v)| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            Series {
                name: format!("{routing} routing ({} runs)", v.len()),
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (*x, (i + 1) as f64 / n))
                    .collect(),
                markers: true,
            }
        })
        .collect();
    LineChart {
        title: "Repair: fault → HTB classes on every hop of the new path".into(),
        x_label: "repair time [ms]".into(),
        y_label: "fraction of runs".into(),
        series,
        references: vec![Reference {
            name: "all runs".into(),
            value: 1.0,
        }],
        y_from_zero: true,
    }
    .render(&dir.join("fault_recovery_repair_cdf"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_per_bin_over_runs() {
        let s = |run, t_s, bps: f64| RateSample {
            routing: "static".into(),
            run,
            flow: "reserved".into(),
            t_s,
            wire_bps: bps,
        };
        let v = [
            s(1, 0.1, 1e6),
            s(2, 0.1, 3e6),
            s(3, 0.1, 2e6),
            s(1, 0.2, 0.0),
            s(2, 0.2, 4e6),
        ];
        assert_eq!(
            median_series(&v, "static", "reserved"),
            [(0.1, 2.0), (0.2, 2.0)]
        );
        assert!(median_series(&v, "ospf", "reserved").is_empty());
    }

    #[test]
    fn report_writes_metrics_and_both_figures() {
        let dir = crate::experiment::scratch::Scratch::new("frrep");
        let rec = |routing: &str, run, repair| Recovery {
            routing: routing.into(),
            run,
            fault: "link-down r1-r2".into(),
            fault_at_ms: 1000.0,
            repaired: true,
            lost_after_repair: false,
            repair_ms: Some(repair),
            repaired_event_ms: Some(repair - 1.0),
            old_branch_freed_ms: Some(2500.0),
            outage_ms: 30.0,
            reserved_share_after_pct: Some(99.0),
            censored: false,
            old_hops: String::new(),
            new_hops: String::new(),
        };
        let recs = [
            rec("static", 1, 20.0),
            rec("static", 2, 40.0),
            rec("ospf", 1, 90.0),
        ];
        crate::experiment::kinds::fault_recovery_metrics::write_csv(
            &dir.join("recovery.csv"),
            &recs,
        )
        .unwrap();
        let mut sums = vec![];
        let md = report(dir.path(), &mut sums).unwrap();
        assert!(md.contains("| static | 2 | 2 | 0 | 30.0 |"), "{md}");
        assert!(md.contains("| 99.0 | 0 |\n"), "{md}");
        let names: Vec<_> = sums.iter().map(|s| s.metric.as_str()).collect();
        for m in [
            "static_repair_ms",
            "ospf_outage_ms",
            "static_reserved_share_after_pct",
            "ospf_old_branch_freed_ms",
        ] {
            assert!(names.contains(&m), "{names:?}");
        }
        for f in ["fault_recovery_rate", "fault_recovery_repair_cdf"] {
            assert!(dir.join(format!("{f}.png")).exists() && dir.join(format!("{f}.svg")).exists());
        }
    }
}
