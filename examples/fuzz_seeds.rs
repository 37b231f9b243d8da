//! Writes seed inputs for the fuzz targets (`fuzz/seeds/<target>/`): the
//! byte vectors of the tests, so the fuzzers start from valid messages.
//! `cargo run --example fuzz_seeds`

use std::path::Path;
use vlsp::wire::auth::{Timestamp, sign_pdu};
use vlsp::wire::fixtures::{default_transform, sample_keyring, sample_reserve_pdu};
use vlsp::wire::gist::{Body, GistPdu};
use vlsp::wire::profile::Profile;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let now = Timestamp {
        unix_secs: 1_800_000_000,
        frac: 0,
    };
    for profile in [Profile::Rfc, Profile::NsisKa] {
        let t = default_transform(profile);
        let mut pdu = sample_reserve_pdu(profile, &[(1, t), (2, t)], now);
        sign_pdu(&mut pdu, profile, &sample_keyring(t)).expect("signable");
        let p = GistPdu::decode_udp(&pdu).expect("valid");
        let Body::Data { nslp_data, .. } = &p.body else {
            unreachable!()
        };
        let tag = profile.to_string();
        for (dir, bytes) in [
            ("gist_decode", pdu.clone()),
            ("early_verify", pdu.clone()),
            ("nslp_decode", nslp_data.clone()),
        ] {
            std::fs::create_dir_all(root.join(dir))?;
            std::fs::write(root.join(dir).join(format!("reserve-{tag}")), bytes)?;
        }
        // The authorization objects alone.
        let m = vlsp::wire::nslp::NslpMessage::decode(nslp_data, profile).expect("valid");
        std::fs::create_dir_all(root.join("session_auth_decode"))?;
        for (i, a) in m.session_auths().enumerate() {
            std::fs::write(
                root.join("session_auth_decode")
                    .join(format!("auth{i}-{tag}")),
                a,
            )?;
        }
    }
    node_core_seeds(&root.join("node_core"))?;
    println!("seeds written under {}", root.display());
    Ok(())
}

/// One record of the `node_core` target: op, length (words for datagrams,
/// bytes for API lines), bytes.
fn record(op: u8, bytes: &[u8]) -> Option<Vec<u8>> {
    let len = if op == 1 {
        bytes.len()
    } else {
        bytes.len() / 4
    };
    let len = u8::try_from(len).ok()?;
    let mut r = vec![op, len];
    r.extend_from_slice(bytes);
    Some(r)
}

/// `node_core` seeds: a setup asked of tb1, and every datagram NSIS-ka sent
/// (tests/data/nsiska-vectors), each to tb4 and to tb1 (as intercepted).
fn node_core_seeds(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let setup = br#"{"op":"setup","from":"VM1","to":"VM2","rate_bps":1000000}"#;
    let mut s = vec![0u8];
    s.extend(record(1, setup).expect("short"));
    s.extend(record(2, &[40, 0, 0, 0]).expect("short"));
    std::fs::write(dir.join("setup-tb1"), s)?;
    let tsv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nsiska-vectors/gist-messages.tsv"),
    )?;
    for l in tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let c: Vec<&str> = l.split('\t').collect();
        if c.len() < 9 || c[2] != "udp" {
            continue;
        }
        let pdu: Vec<u8> = (0..c[8].len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(c[8].get(i..i + 2)?, 16).ok())
            .collect();
        for (node, op) in [(3u8, 0u8), (0, 3)] {
            if let Some(r) = record(op, &pdu) {
                let mut s = vec![node];
                s.extend(r);
                std::fs::write(dir.join(format!("{}-{}-n{node}", c[0], c[1])), s)?;
            }
        }
    }
    Ok(())
}
