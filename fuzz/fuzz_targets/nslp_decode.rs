//! QoS NSLP messages, QSPEC and the VLSP object, in both profiles.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::profile::Profile;
use vlsp::wire::nslp::NslpMessage;
use vlsp::wire::qspec::Qspec;
use vlsp::wire::vlsp::VlspObject;

fuzz_target!(|data: &[u8]| {
    for p in [Profile::Rfc, Profile::NsisKa] {
        if let Ok(m) = NslpMessage::decode(data, p) {
            let b = m.to_bytes(p);
            let again = NslpMessage::decode(&b, p).expect("re-decodes");
            // Floats: compare bytes, NaN != NaN.
            assert_eq!(again.to_bytes(p), b);
        }
        if let Ok(q) = Qspec::decode(data, p) {
            let mut b = vec![];
            q.encode(p, &mut b);
            let _ = Qspec::decode(&b, p).expect("re-decodes");
        }
        if let Ok(v) = VlspObject::decode(data, p) {
            let mut b = vec![];
            v.encode(p, &mut b);
            assert_eq!(VlspObject::decode(&b, p).expect("re-decodes"), v);
        }
    }
});
