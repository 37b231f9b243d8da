//! Sample PDUs and keys shared by tests, benchmarks, fuzz seeds and the HMAC
//! experiment: a RESERVE like the paper's, signed with NSIS-ka's sample keys.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::auth::{AuthEntity, KeyRing, SessionAuthObject, Timestamp, Transform};
use crate::wire::gist::{GistPdu, Mri, PathCoupledMri};
use crate::wire::nslp::{NslpMessage, NslpObject};
use crate::wire::profile::Profile;
use crate::wire::qspec::Qspec;
use crate::wire::vlsp::{TunnelType, VlspObject};

/// The pre-shared keys NSIS-ka's daemon and VLSP client hard-code (key ids 1
/// and 2), which the paper's measurements used.
pub const SAMPLE_KEYS: [(u32, &[u8]); 2] = [
    (1, b"12345678901234567890123456789012"),
    (2, b"abcdefghijklmnopqrstuvwxyz-.,+%$"),
];

/// A key ring holding [`SAMPLE_KEYS`] with `transform`.
pub fn sample_keyring(transform: Transform) -> KeyRing {
    let mut k = KeyRing::new();
    for (id, key) in SAMPLE_KEYS {
        k.insert(id, key, transform);
    }
    k
}

/// A D-mode GIST Data PDU carrying a RESERVE like the paper's (about 240
/// bytes of QoS NSLP message): RSN, RII, REFRESH_PERIOD, PACKET_CLASSIFIER,
/// QSPEC, the 80-byte VLSP object, and one authorization object (about 100
/// bytes) per `(key id, transform)`, each listing RII, QSPEC and VLSP. The
/// MACs are zero: sign it with [`crate::wire::auth::sign_pdu`].
pub fn sample_reserve_pdu(
    profile: Profile,
    signers: &[(u32, Transform)],
    now: Timestamp,
) -> Vec<u8> {
    let src = Ipv4Addr::new(172, 1, 2, 1);
    let dst = Ipv4Addr::new(172, 3, 4, 4);
    let vt = crate::wire::vlsp::vlsp_type(profile);
    let mut m = NslpMessage::reserve(
        0,
        7,
        Some(0x1234),
        Some(Duration::from_secs(30)),
        Some(Qspec::bandwidth_request(125_000.0, profile)),
        Some(VlspObject {
            vnet_id: 1,
            src_vnode: 2,
            dst_vnode: 3,
            src_vif: 1,
            dst_vif: 1,
            vlink_id: 42,
            tunnel_type: TunnelType::Vxlan,
        }),
    );
    for (key_id, t) in signers {
        let o = SessionAuthObject::hmac_template(
            AuthEntity::Fqdn(format!("vnp{key_id}@example.net")),
            Some(src.into()),
            Some(dst.into()),
            now,
            Some(now.plus(Duration::from_secs(600))),
            &[0x001, 0x00b, vt],
            *key_id,
            *t,
            profile,
        );
        m.objects.push(NslpObject::SessionAuth(o.to_bytes(profile)));
    }
    GistPdu::data(
        crate::wire::gist::NSLPID_QOS,
        Mri::PathCoupled(PathCoupledMri::udp_v4(src, dst)),
        [0x5a; 16],
        None,
        m.to_bytes(profile),
    )
    .encode_udp()
    .expect("the sample PDU is well-formed")
}

/// The transform a profile signs with by default.
pub fn default_transform(profile: Profile) -> Transform {
    match profile {
        Profile::Rfc => Transform::HmacSha256_128,
        Profile::NsisKa => Transform::HmacSha1_96,
    }
}
