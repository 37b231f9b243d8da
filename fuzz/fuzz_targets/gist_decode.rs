//! GIST PDUs in both framings: decoding and scanning never panic, and
//! decode -> encode -> decode gives an equal value (and the same bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vlsp::wire::gist::{Framing, GistPdu, PduView};

fuzz_target!(|data: &[u8]| {
    let _ = vlsp::proto::gist::codec::decode(data);
    let _ = vlsp::proto::gist::codec::auth_relevant(data, &[]);
    for f in [Framing::Udp, Framing::Tcp] {
        let _ = PduView::scan(data, f);
        if let Ok(p) = GistPdu::decode_framed(data, f) {
            let bytes = p.encode_framed(f).expect("a decoded PDU encodes");
            let again = GistPdu::decode_framed(&bytes, f).expect("re-decodes");
            assert_eq!(again, p, "decode -> encode -> decode changed the value");
            assert_eq!(again.encode_framed(f).expect("encodes"), bytes);
        }
    }
});
