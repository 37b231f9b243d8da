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

#[cfg(test)]
mod tests {
    use super::*;

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
