//! The pure half of `fault-recovery`: where a reservation sits (its HTB
//! classes, read off `tc class show`), which link to fail, and the per-run
//! metrics from the receiver's counts. No kernel, no clock: everything here
//! is tested on text and numbers.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::kernel::tc::is_reservation_line;
use crate::topology::Topology;

/// Receiver bins: the resolution of `outage_ms` (a bin with no packet of
/// the reserved flow counts as outage; at 5 Mbit/s a packet comes every
/// 2 ms, so an empty 10 ms bin is a gap, not pacing).
pub const BIN: Duration = Duration::from_millis(10);
/// Bins of the rate series in `traffic.csv` and the figure.
pub const RATE_BIN: Duration = Duration::from_millis(100);

/// One reservation class: a router's HTB class on one of its interfaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hop {
    pub node: String,
    pub dev: String,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.dev)
    }
}

/// Hops as one cell of a CSV row: `r0:eth0 r1:eth1`.
pub fn hops_text(h: &BTreeSet<Hop>) -> String {
    h.iter().map(Hop::to_string).collect::<Vec<_>>().join(" ")
}

/// The marker line the poll writes before each interface's classes.
pub fn marker(node: &str, dev: &str) -> String {
    format!("@ {node} {dev}")
}

/// The reservation classes in the output of one poll: `@ NODE DEV` marker
/// lines, each followed by that interface's `tc class show`. The link's
/// own classes (see [`crate::kernel::tc::is_reservation_class`]) and idle ones are not
/// reservations.
pub fn parse_classes(out: &str) -> BTreeSet<Hop> {
    let mut at: Option<Hop> = None;
    let mut hops = BTreeSet::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("@ ") {
            let mut w = rest.split_whitespace();
            at = match (w.next(), w.next()) {
                (Some(n), Some(d)) => Some(Hop {
                    node: n.into(),
                    dev: d.into(),
                }),
                _ => None,
            };
        } else if is_reservation_line(line)
            && let Some(h) = &at
        {
            hops.insert(h.clone());
        }
    }
    hops
}

/// The routers a reservation crosses, from `qni` following the interface
/// of each hop to its link's other end (the QNR holds no class: the last
/// node is the one the last hop leads to).
pub fn path_of(topo: &Topology, qni: &str, hops: &BTreeSet<Hop>) -> Result<Vec<String>> {
    let mut path = vec![qni.to_string()];
    while let Some(h) = hops
        .iter()
        .find(|h| h.node == *path.last().expect("not empty"))
    {
        let (_, peer, _) = topo
            .links_of(&h.node)
            .find(|(me, _, _)| me.ifname == h.dev)
            .ok_or_else(|| anyhow!("{h}: no link of {} on that interface", topo.name))?;
        if path.contains(&peer.node) || path.len() > hops.len() {
            return Err(anyhow!(
                "the reservation's classes {} make no path from {qni}",
                hops_text(hops)
            ));
        }
        path.push(peer.node.clone());
    }
    Ok(path)
}

/// The link in the middle of `path` (`A-B`): a failure there leaves both
/// ends of the path with a neighbour on it, the case of local repair.
pub fn middle_link(path: &[String]) -> Result<String> {
    if path.len() < 2 {
        return Err(anyhow!(
            "the reservation crosses no substrate link ({path:?}): nothing to fail"
        ));
    }
    let i = (path.len() - 2) / 2;
    Ok(format!("{}-{}", path[i], path[i + 1]))
}

/// The hops a reservation along `path` takes: each router's interface
/// towards the next one.
pub fn hops_along(topo: &Topology, path: &[String]) -> Result<BTreeSet<Hop>> {
    path.windows(2)
        .map(|w| {
            topo.links_of(&w[0])
                .find(|(_, peer, _)| peer.node == w[1])
                .map(|(me, _, _)| Hop {
                    node: w[0].clone(),
                    dev: me.ifname.clone(),
                })
                .ok_or_else(|| anyhow!("no link {}-{} in {}", w[0], w[1], topo.name))
        })
        .collect()
}

/// The longest stretch without a packet after the first one, in ms: empty
/// bins counted whole (so a lower bound, to one bin), a gap up to the end
/// included (the flow never came back).
pub fn longest_gap_ms(packets: &[u64], bin: Duration) -> f64 {
    let Some(first) = packets.iter().position(|&p| p > 0) else {
        return packets.len() as f64 * bin.as_secs_f64() * 1e3;
    };
    let (mut best, mut run) = (0usize, 0usize);
    for &p in &packets[first..] {
        run = if p == 0 { run + 1 } else { 0 };
        best = best.max(run);
    }
    best as f64 * bin.as_secs_f64() * 1e3
}

/// The run ended before its outage or share could be measured: no packet
/// of the reserved flow reached the receiver in any bin after `after` (the
/// bin of the repair, or of the fault when there was none), or the repair
/// came too late to measure the share after it (`share_cut`). An empty last
/// bin alone is not: the flow may have come back and then missed only the
/// final bin.
pub fn censored(packets: &[u64], after: usize, share_cut: bool) -> bool {
    share_cut || !packets.iter().skip(after + 1).any(|&p| p > 0)
}

/// Received wire rate over bins `[from, to)` against `offered` bit/s, in
/// percent; none when the window is empty.
pub fn share_pct(
    wire_bytes: &[u64],
    bin: Duration,
    from: usize,
    to: usize,
    offered: u64,
) -> Option<f64> {
    let to = to.min(wire_bytes.len());
    if from >= to || offered == 0 {
        return None;
    }
    let bytes: u64 = wire_bytes[from..to].iter().sum();
    let secs = (to - from) as f64 * bin.as_secs_f64();
    Some(100.0 * bytes as f64 * 8.0 / secs / offered as f64)
}

/// Sums `per` consecutive bins into one (the last may be short).
pub fn coarsen(bins: &[u64], per: usize) -> Vec<u64> {
    bins.chunks(per.max(1)).map(|c| c.iter().sum()).collect()
}

/// One run: a row of `recovery.csv`. Times are from the fault, in ms;
/// empty when it did not happen within the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// `static` or `ospf`.
    pub routing: String,
    pub run: usize,
    /// The fault measured from (the schedule's first).
    pub fault: String,
    /// When it was applied, from the start of traffic.
    pub fault_at_ms: f64,
    /// The QNI reported `repaired` and every hop of the new path holds a
    /// class.
    pub repaired: bool,
    /// The QNI ended the link after the repair (`link_lost`: a refresh
    /// unanswered while the flood filled the new path's queues).
    pub lost_after_repair: bool,
    /// Fault → every hop of the new path holds an HTB class.
    pub repair_ms: Option<f64>,
    /// Fault → the QNI's `repaired` event.
    pub repaired_event_ms: Option<f64>,
    /// Fault → no class left on a hop of the old path that is not on the
    /// new one.
    pub old_branch_freed_ms: Option<f64>,
    /// Longest gap of the reserved flow at its receiver.
    pub outage_ms: f64,
    /// The reserved flow's received rate from half a second after the
    /// repair to the end, over its offered rate, under the flood.
    pub reserved_share_after_pct: Option<f64>,
    /// Outage or share cut short by the end of the traffic ([`censored`]);
    /// a longer `traffic_seconds` (`ospf_traffic_seconds`) measures them.
    #[serde(default)]
    pub censored: bool,
    pub old_hops: String,
    pub new_hops: String,
}

/// One rate bin of one flow of one run: a row of `traffic.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateSample {
    pub routing: String,
    pub run: usize,
    /// `reserved` (VM1→VM2 over the virtual link) or `flood`.
    pub flow: String,
    /// End of the bin, seconds from the start of traffic.
    pub t_s: f64,
    /// Received rate at substrate wire size.
    pub wire_bps: f64,
}

pub fn write_csv<T: Serialize>(path: &std::path::Path, rows: &[T]) -> Result<()> {
    use anyhow::Context;
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

pub fn read_csv<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Vec<T>> {
    use anyhow::Context;
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    r.deserialize()
        .map(|s| s.with_context(|| format!("{}: bad row", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tc::is_reservation_class;

    fn ring() -> Topology {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring-6node.toml");
        Topology::load(&p).unwrap()
    }

    fn hop(n: &str, d: &str) -> Hop {
        Hop {
            node: n.into(),
            dev: d.into(),
        }
    }

    #[test]
    fn classes_other_than_the_links_own_are_reservations_unless_idle() {
        let out = "@ r0 eth0\nclass htb 1:1 root rate 20Mbit ceil 20Mbit burst 1600b cburst 1600b\nclass htb 1:2 parent 1:1 prio 0 rate 5Mbit ceil 5Mbit burst 1600b\nclass htb 1:ffff parent 1:1 prio 0 rate 8bit ceil 20Mbit\n@ r0 eth1\nclass htb 1:1 root rate 20Mbit\nclass htb 1:ffff parent 1:1 rate 8bit\nclass htb 1:3 parent 1:1 prio 7 rate 5Mbit ceil 5Mbit burst 6250b cburst 6250b\n@ r1 eth1\nclass htb 1:a parent 1:1 rate 5Mbit\n";
        assert_eq!(
            parse_classes(out),
            BTreeSet::from([hop("r0", "eth0"), hop("r1", "eth1")])
        );
        assert!(parse_classes("class htb 1:2 parent 1:1\n").is_empty());
    }

    #[test]
    fn the_signaling_class_is_the_links_own() {
        use crate::kernel::tc::{MAJOR, SIG_MINOR, SIGNALING_CLASS};
        assert_eq!(SIGNALING_CLASS, format!("{MAJOR}:{SIG_MINOR:x}"));
        assert!(!is_reservation_class(SIGNALING_CLASS));
        for own in ["1:1", "1:ffff", "1:fffe"] {
            assert!(!is_reservation_class(own), "{own}");
        }
        for r in ["1:2", "1:a", "1:fffd"] {
            assert!(is_reservation_class(r), "{r}");
        }
        for other in ["2:2", "1", "", "1:xyz", "ffff:"] {
            assert!(!is_reservation_class(other), "{other}");
        }
    }

    #[test]
    fn the_path_follows_the_classes_and_the_middle_link_is_failed() {
        let t = ring();
        // ring-6node: r0 eth0 → r1, r1 eth1 → r2, r2 eth1 → r3.
        let old = BTreeSet::from([hop("r0", "eth0"), hop("r1", "eth1"), hop("r2", "eth1")]);
        let p = path_of(&t, "r0", &old).unwrap();
        assert_eq!(p, ["r0", "r1", "r2", "r3"]);
        assert_eq!(middle_link(&p).unwrap(), "r1-r2");
        assert_eq!(hops_along(&t, &p).unwrap(), old);
        let new: Vec<String> = ["r0", "r5", "r4", "r3"].map(String::from).to_vec();
        assert_eq!(
            hops_along(&t, &new).unwrap(),
            BTreeSet::from([hop("r0", "eth1"), hop("r5", "eth0"), hop("r4", "eth0")])
        );
        assert_eq!(middle_link(&new[..2]).unwrap(), "r0-r5");
        assert!(middle_link(&new[..1]).is_err());
        let bad = BTreeSet::from([hop("r0", "eth7")]);
        assert!(format!("{:#}", path_of(&t, "r0", &bad).unwrap_err()).contains("r0:eth7"));
    }

    #[test]
    fn gaps_count_empty_bins_after_the_first_packet() {
        let b = Duration::from_millis(10);
        assert_eq!(longest_gap_ms(&[0, 0, 3, 4, 0, 0, 0, 5, 0, 2], b), 30.0);
        assert_eq!(longest_gap_ms(&[1, 1, 1], b), 0.0);
        // Never back: the gap runs to the end.
        assert_eq!(longest_gap_ms(&[1, 0, 0], b), 20.0);
        assert_eq!(longest_gap_ms(&[0, 0], b), 20.0);
    }

    #[test]
    fn a_run_is_censored_when_it_ends_before_the_flow_is_back_or_the_share_is_measured() {
        // Back after the repair (bin 2), then the final bin empty (partial,
        // or the last packets still on their way): measured, not censored.
        assert!(!censored(&[3, 0, 0, 4, 5, 0], 2, false));
        assert!(!censored(&[3, 0, 0, 4, 5, 0, 0, 0], 2, false));
        // Never back after the repair: still in the outage when the
        // traffic stopped.
        assert!(censored(&[3, 4, 0, 0, 0], 1, false));
        // Packets before the repair's bin do not count as back.
        assert!(censored(&[3, 4, 5, 0], 2, false));
        // Repaired too late to measure the share after it.
        assert!(censored(&[3, 0, 4], 1, true));
        assert!(censored(&[], 0, false));
    }

    #[test]
    fn share_is_received_over_offered_in_the_window() {
        let b = Duration::from_millis(100);
        // 12 500 bytes per 100 ms = 1 Mbit/s.
        let w = [0, 12_500, 12_500, 6_250];
        assert_eq!(share_pct(&w, b, 1, 3, 1_000_000), Some(100.0));
        assert_eq!(share_pct(&w, b, 1, 9, 1_000_000), Some(250.0 / 3.0));
        assert_eq!(share_pct(&w, b, 3, 3, 1_000_000), None);
        assert_eq!(coarsen(&[1, 2, 3, 4, 5], 2), [3, 7, 5]);
    }

    #[test]
    fn recovery_rows_round_trip_with_empty_cells() {
        let dir = crate::experiment::scratch::Scratch::new("frcsv");
        let r = Recovery {
            routing: "static".into(),
            run: 1,
            fault: "link-down r1-r2".into(),
            fault_at_ms: 1500.0,
            repaired: false,
            lost_after_repair: true,
            repair_ms: None,
            repaired_event_ms: Some(12.5),
            old_branch_freed_ms: None,
            outage_ms: 40.0,
            reserved_share_after_pct: None,
            censored: true,
            old_hops: "r0:eth0 r1:eth1".into(),
            new_hops: String::new(),
        };
        let p = dir.join("recovery.csv");
        write_csv(&p, std::slice::from_ref(&r)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("routing,run,fault,fault_at_ms,repaired,lost_after_repair,repair_ms,repaired_event_ms,old_branch_freed_ms,outage_ms,reserved_share_after_pct,censored,old_hops,new_hops\n"), "{text}");
        assert_eq!(read_csv::<Recovery>(&p).unwrap(), std::slice::from_ref(&r));
        // A recovery.csv from before the column reads as not censored.
        let old = text.replace(",censored,", ",").replace(",,true,", ",,");
        std::fs::write(&p, old).unwrap();
        assert!(!read_csv::<Recovery>(&p).unwrap()[0].censored);
    }
}
