//! HMAC creation and verification of a signed RESERVE (paper Table II), and
//! encode + decode of that RESERVE. `cargo bench --bench hmac`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use vlsp::wire::auth::{Timestamp, VerifyPolicy, sign_pdu, verify_pdu};
use vlsp::wire::fixtures::{default_transform, sample_keyring, sample_reserve_pdu};
use vlsp::wire::gist::{Body, GistPdu};
use vlsp::wire::nslp::NslpMessage;
use vlsp::wire::profile::Profile;

fn bench(c: &mut Criterion) {
    for profile in [Profile::Rfc, Profile::NsisKa] {
        let t = default_transform(profile);
        let keys = sample_keyring(t);
        let now = Timestamp::now();
        let template = sample_reserve_pdu(profile, &[(1, t)], now);
        let mut signed = template.clone();
        sign_pdu(&mut signed, profile, &keys).unwrap();
        let policy = VerifyPolicy::default();
        let mut g = c.benchmark_group(format!("reserve/{profile}"));
        g.measurement_time(Duration::from_secs(3));
        g.warm_up_time(Duration::from_millis(500));
        let mut buf = template.clone();
        g.bench_function("hmac_create", |b| {
            b.iter(|| {
                buf.copy_from_slice(&template);
                sign_pdu(black_box(&mut buf), profile, &keys).unwrap()
            })
        });
        g.bench_function("hmac_verify", |b| {
            b.iter(|| verify_pdu(black_box(&signed), profile, &keys, now, &policy).unwrap())
        });
        let pdu = GistPdu::decode_udp(&signed).unwrap();
        g.bench_function("encode_decode", |b| {
            b.iter(|| {
                let bytes = black_box(&pdu).encode_udp().unwrap();
                let p = GistPdu::decode_udp(&bytes).unwrap();
                let Body::Data { nslp_data, .. } = &p.body else {
                    unreachable!()
                };
                NslpMessage::decode(nslp_data, profile).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
