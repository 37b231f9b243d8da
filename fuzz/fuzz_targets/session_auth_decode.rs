//! Session Authorization objects in both profiles: decode -> encode ->
//! decode gives an equal value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::auth::SessionAuthObject;
use vlsp::wire::profile::Profile;

fuzz_target!(|data: &[u8]| {
    for p in [Profile::Rfc, Profile::NsisKa] {
        if let Ok(o) = SessionAuthObject::decode(data, p) {
            let b = o.try_to_bytes(p).expect("a decoded object encodes");
            let again = SessionAuthObject::decode(&b, p).expect("re-decodes");
            assert_eq!(again, o, "SESSION_AUTH ({p})");
        }
    }
});
