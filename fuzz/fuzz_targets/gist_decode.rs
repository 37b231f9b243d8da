//! GIST PDUs: decoding never panics, and what decodes re-encodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::gist::{GistPdu, scan_udp};

fuzz_target!(|data: &[u8]| {
    let _ = scan_udp(data);
    let _ = vlsp::proto::gist::codec::decode(data);
    if let Ok(p) = GistPdu::decode_udp(data) {
        let again = p.encode_udp().expect("a decoded PDU encodes");
        assert_eq!(GistPdu::decode_udp(&again).expect("re-decodes"), p);
    }
    if let Ok(p) = GistPdu::decode(data) {
        let again = p.encode().expect("a decoded PDU encodes");
        assert_eq!(GistPdu::decode(&again).expect("re-decodes"), p);
    }
});
