//! Early verification on raw PDUs, in both profiles: never panics; a PDU
//! that verifies re-signs to the same bytes (its MAC recomputes), and stops
//! verifying when a byte of a covered object (the MRI) is flipped; what
//! `sign_pdu` signs verifies, unless its time window says otherwise.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::auth::{AuthError, Timestamp, Transform, VerifyPolicy, sign_pdu, verify_pdu};
use vlsp::wire::fixtures::sample_keyring;
use vlsp::wire::gist::scan_udp;
use vlsp::wire::profile::Profile;

fuzz_target!(|data: &[u8]| {
    let keys = sample_keyring(Transform::HmacSha256_128);
    let now = Timestamp {
        unix_secs: 1_800_000_000,
        frac: 0,
    };
    let policy = VerifyPolicy::default();
    let check_verified = |pdu: &[u8], p: Profile| {
        // Its MAC recomputes: signing again changes nothing.
        let mut again = pdu.to_vec();
        let n = sign_pdu(&mut again, p, &keys).expect("a verified PDU signs");
        assert!(n > 0, "a verified PDU holds a MAC under a known key");
        assert_eq!(again, pdu, "re-signing a verified PDU changed it ({p})");
        // A flipped byte inside the MRI (always covered) breaks it.
        let mri = scan_udp(pdu).expect("a verified PDU scans").mri.expect("an MRI");
        let mut forged = pdu.to_vec();
        forged[mri.end - 1] ^= 0x01;
        assert!(
            verify_pdu(&forged, p, &keys, now, &policy).is_err(),
            "a PDU with a flipped MRI byte still verifies ({p})"
        );
    };
    for p in [Profile::Rfc, Profile::NsisKa] {
        if verify_pdu(data, p, &keys, now, &policy).is_ok() {
            check_verified(data, p);
        }
        let mut copy = data.to_vec();
        if sign_pdu(&mut copy, p, &keys).is_ok_and(|n| n > 0) {
            match verify_pdu(&copy, p, &keys, now, &policy) {
                Ok(_) => check_verified(&copy, p),
                // The time window (and its length) is checked after the MAC; other
                // refusals are bugs.
                Err(
                    AuthError::NotYetValid { .. }
                    | AuthError::Expired { .. }
                    | AuthError::WindowTooLong { .. },
                ) => {}
                Err(AuthError::EntityNotAccepted { .. }) => {}
                Err(e) => panic!("what sign_pdu signed does not verify ({p}): {e}"),
            }
        }
    }
});
