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
    println!("seeds written under {}", root.display());
    Ok(())
}
