//! IPv4 prefixes as topology files write them (`10.0.0.1/24`): one parser
//! for every key that takes one, so they all accept the same spellings.

use std::net::Ipv4Addr;

/// `A.B.C.D/N` with N at most 32, or `None`: callers name the key and the
/// node at fault in their own error message.
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let l: u8 = l.parse().ok()?;
    (l <= 32).then_some(())?;
    Some((a.parse().ok()?, l))
}

/// The network mask of a prefix length (lengths above 32 count as 32).
pub fn mask(prefix_len: u8) -> u32 {
    match prefix_len.min(32) {
        0 => 0,
        n => u32::MAX << (32 - n as u32),
    }
}

/// `a`'s network under a prefix of `prefix_len` bits, as a number.
pub fn network(a: Ipv4Addr, prefix_len: u8) -> u32 {
    u32::from(a) & mask(prefix_len)
}

/// Whether `a` lies in the subnet of `net`/`prefix_len`.
pub fn in_subnet(a: Ipv4Addr, net: Ipv4Addr, prefix_len: u8) -> bool {
    network(a, prefix_len) == network(net, prefix_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_networks_and_subnets() {
        assert_eq!(mask(0), 0);
        assert_eq!(mask(1), 0x8000_0000);
        assert_eq!(mask(24), 0xffff_ff00);
        assert_eq!(mask(32), u32::MAX);
        assert_eq!(mask(33), u32::MAX, "lengths above 32 count as 32");
        let a = Ipv4Addr::new(10, 6, 1, 2);
        assert_eq!(network(a, 24), u32::from(Ipv4Addr::new(10, 6, 1, 0)));
        assert_eq!(network(a, 0), 0);
        assert_eq!(network(a, 32), u32::from(a));
        assert!(in_subnet(a, Ipv4Addr::new(10, 6, 1, 200), 24));
        assert!(!in_subnet(a, Ipv4Addr::new(10, 6, 2, 2), 24));
        assert!(in_subnet(a, Ipv4Addr::new(10, 6, 2, 2), 16));
        assert!(in_subnet(a, Ipv4Addr::BROADCAST, 0));
        assert!(!in_subnet(a, Ipv4Addr::new(10, 6, 1, 3), 32));
    }

    #[test]
    fn address_and_prefix_length() {
        assert_eq!(
            parse_cidr("10.6.1.2/24"),
            Some((Ipv4Addr::new(10, 6, 1, 2), 24))
        );
        assert_eq!(parse_cidr("0.0.0.0/0"), Some((Ipv4Addr::UNSPECIFIED, 0)));
        assert_eq!(parse_cidr("10.0.0.1/32").map(|p| p.1), Some(32));
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0/24",
            "/24",
            "10.0.0.1/",
            "banana/8",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }
}
