//! QoS NSLP messages, QSPEC and the VLSP object, in both profiles: decode
//! -> encode -> decode gives an equal value. QSPEC floats may be NaN
//! (NaN != NaN), so values holding them compare by their Debug text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::nslp::NslpMessage;
use vlsp::wire::profile::Profile;
use vlsp::wire::qspec::Qspec;
use vlsp::wire::vlsp::VlspObject;

fuzz_target!(|data: &[u8]| {
    for p in [Profile::Rfc, Profile::NsisKa] {
        if let Ok(m) = NslpMessage::decode(data, p) {
            let b = m.try_to_bytes(p).expect("a decoded message encodes");
            let again = NslpMessage::decode(&b, p).expect("re-decodes");
            assert_eq!(format!("{again:?}"), format!("{m:?}"), "NSLP message ({p})");
            assert_eq!(again.to_bytes(p), b);
        }
        if let Ok(q) = Qspec::decode(data, p) {
            let mut b = vec![];
            q.encode(p, &mut b);
            let again = Qspec::decode(&b, p).expect("re-decodes");
            assert_eq!(format!("{again:?}"), format!("{q:?}"), "QSPEC ({p})");
        }
        if let Ok(v) = VlspObject::decode(data, p) {
            let mut b = vec![];
            v.encode(p, &mut b);
            assert_eq!(VlspObject::decode(&b, p).expect("re-decodes"), v);
        }
    }
});
