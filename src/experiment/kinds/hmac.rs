//! `hmac` (Table II, Fig. 12) and `vlsp bench hmac`: HMAC creation and
//! verification of a signed RESERVE, one timed run after another, as the
//! paper measured them. Needs no testbed.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use crate::experiment::file::Experiment;
use crate::experiment::paper::{HMAC_CREATE, HMAC_VERIFY};
use crate::experiment::rows::Row;
use crate::experiment::stats::Summary;
use crate::wire::auth::{Timestamp, VerifyPolicy, sign_pdu, verify_pdu};
use crate::wire::fixtures::{default_transform, sample_keyring, sample_reserve_pdu};
use crate::wire::profile::Profile;

/// Times `runs` HMAC creations and verifications, one run at a time as the
/// paper did; returns (creation, verification) summaries in µs and the raw
/// per-run samples.
pub fn hmac_runs(runs: usize, profile: Profile) -> (Summary, Summary, Vec<(f64, f64)>) {
    let t = default_transform(profile);
    let keys = sample_keyring(t);
    let now = Timestamp::now();
    let template = sample_reserve_pdu(profile, &[(1, t)], now);
    let policy = VerifyPolicy::default();
    let mut samples = Vec::with_capacity(runs);
    let mut pdu = template.clone();
    for _ in 0..runs {
        pdu.copy_from_slice(&template);
        let t0 = Instant::now();
        let n = sign_pdu(black_box(&mut pdu), profile, &keys);
        let t1 = Instant::now();
        let v = verify_pdu(black_box(&pdu), profile, &keys, now, &policy);
        let t2 = Instant::now();
        assert_eq!(n, Ok(1), "the sample PDU has one signable object");
        assert!(v.is_ok(), "the sample PDU verifies: {v:?}");
        samples.push(((t1 - t0).as_secs_f64() * 1e6, (t2 - t1).as_secs_f64() * 1e6));
    }
    let create: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let verify: Vec<f64> = samples.iter().map(|s| s.1).collect();
    (
        Summary::from_samples("hmac_create", "us", &create, Some(HMAC_CREATE.0)),
        Summary::from_samples("hmac_verify", "us", &verify, Some(HMAC_VERIFY.0)),
        samples,
    )
}

/// The kind itself: variant `paper-count` with the experiment's runs, and
/// `high-count` when the file asks for it; values `hmac_create` and
/// `hmac_verify` in µs.
pub fn run(e: &Experiment, rows: &mut Vec<Row>) {
    for (variant, runs) in
        std::iter::once(("paper-count", e.runs)).chain(e.high_count.map(|h| ("high-count", h)))
    {
        let (_, _, samples) = hmac_runs(runs, Profile::Rfc);
        for (i, (c, v)) in samples.into_iter().enumerate() {
            rows.push(Row {
                variant: variant.to_string(),
                run: i + 1,
                values: std::collections::BTreeMap::from([
                    ("hmac_create".to_string(), c),
                    ("hmac_verify".to_string(), v),
                ]),
            });
        }
    }
}

/// Arguments of `vlsp bench hmac`.
#[derive(Debug, clap::Args)]
pub struct HmacArgs {
    /// Number of timed runs (the paper: 100).
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Also write the summary CSV (metric,unit,n,mean,...) to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Wire profile (which HMAC recipe): rfc (HMAC-SHA-256-128) or nsis-ka
    /// (NSIS-ka's HMAC-SHA1 over its coverage).
    #[arg(long, value_enum, default_value_t = Profile::Rfc)]
    pub profile: Profile,
}

/// Runs `vlsp bench hmac` and prints Table II with the paper's numbers.
pub fn run_hmac(args: &HmacArgs) -> Result<()> {
    anyhow::ensure!(
        args.runs >= 2,
        "--runs must be at least 2 (got {})",
        args.runs
    );
    let (c, v, _) = hmac_runs(args.runs, args.profile);
    let pdu = sample_reserve_pdu(
        args.profile,
        &[(1, default_transform(args.profile))],
        Timestamp::now(),
    );
    println!(
        "HMAC creation and verification of a signed RESERVE ({} bytes of GIST PDU, profile {}), {} runs [µs]",
        pdu.len(),
        args.profile,
        args.runs
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9}",
        "", "avg", "median", "min", "max", "stddev", "paper avg", "min", "max", "stddev"
    );
    for (s, p) in [(&c, HMAC_CREATE), (&v, HMAC_VERIFY)] {
        let name = if s.metric == "hmac_create" {
            "HMAC creation"
        } else {
            "HMAC verification"
        };
        println!(
            "{:<18} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} | {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            name, s.mean, s.median, s.min, s.max, s.stddev, p.0, p.1, p.2, p.3
        );
    }
    println!(
        "paper / ours (averages): creation {:.1}×, verification {:.1}×",
        c.ratio.unwrap_or(f64::NAN),
        v.ratio.unwrap_or(f64::NAN)
    );
    if let Some(path) = &args.csv {
        crate::experiment::stats::write_csv(path, &[c, v])?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::auth::Transform;

    #[test]
    fn sample_is_paper_sized_and_bench_runs() {
        let p = sample_reserve_pdu(
            Profile::NsisKa,
            &[(1, Transform::HmacSha1_96)],
            Timestamp::now(),
        );
        let v = crate::wire::gist::scan_udp(&p).unwrap();
        let nslp = v.nslp_data.unwrap().len();
        // The paper: a 240-byte RESERVE with an 80-byte VLSP and a 104-byte
        // authorization object; ours lists QSPEC too and names another entity.
        assert!((200..300).contains(&nslp), "RESERVE of {nslp} bytes");
        let (c, v, raw) = hmac_runs(20, Profile::Rfc);
        assert_eq!((c.n, v.n, raw.len()), (20, 20, 20));
        assert!(c.mean > 0.0 && v.mean > 0.0);
    }
}
