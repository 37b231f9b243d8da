//! Early verification on raw PDUs: never panics, and signing what verifies
//! leaves it verifying.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::fixtures::sample_keyring;
use vlsp::wire::profile::Profile;
use vlsp::wire::auth::{Timestamp, Transform, VerifyPolicy, sign_pdu, verify_pdu};

fuzz_target!(|data: &[u8]| {
    let keys = sample_keyring(Transform::HmacSha256_128);
    let now = Timestamp { unix_secs: 1_800_000_000, frac: 0 };
    for p in [Profile::Rfc, Profile::NsisKa] {
        let _ = verify_pdu(data, p, &keys, now, &VerifyPolicy::default());
        let mut copy = data.to_vec();
        if sign_pdu(&mut copy, p, &keys).is_ok_and(|n| n > 0) {
            let _ = verify_pdu(&copy, p, &keys, now, &VerifyPolicy::default());
        }
    }
});
