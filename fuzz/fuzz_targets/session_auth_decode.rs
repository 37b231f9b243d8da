//! Session Authorization objects in both profiles.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::profile::Profile;
use vlsp::wire::auth::SessionAuthObject;

fuzz_target!(|data: &[u8]| {
    for p in [Profile::Rfc, Profile::NsisKa] {
        if let Ok(o) = SessionAuthObject::decode(data, p) {
            let b = o.to_bytes(p);
            let _ = SessionAuthObject::decode(&b, p).expect("re-decodes");
        }
    }
});
