//! The node's static routes, with a dense copy for longest-prefix lookups.
//! A hop asks for its egress link and local address several times, on
//! state that has gone cold on a long chain since the chain last passed
//! (issue 17): what a lookup reads is kept to a few adjacent cache lines.

use std::net::Ipv4Addr;
use std::ops::Deref;

/// A static route (from the topology's shortest paths, a node file, or the
/// kernel's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConf {
    pub dest: Ipv4Addr,
    pub prefix_len: u8,
    pub via: Ipv4Addr,
    pub ifname: String,
}

/// The routes in the order given, and a dense copy of what a lookup reads.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    list: Vec<RouteConf>,
    /// (masked destination, prefix length << 24 | index in `list`), longest
    /// prefix first and, among equals, the last route first (the one a
    /// scan with `max_by_key` picked): the first match is the answer. Eight
    /// bytes a route, so a lookup reads a few adjacent cache lines, where
    /// the list's 40-byte routes took one per one and a half routes, and a
    /// hash index a line per probe (cachegrind of `core_chain`).
    lpm: Vec<(u32, u32)>,
}

pub use crate::model::cidr::mask;

/// Routes a node may hold at most for the dense copy (an index of 24 bits);
/// beyond, a lookup scans the list.
const DENSE_MAX: usize = 1 << 24;

impl Routes {
    pub fn new(list: Vec<RouteConf>) -> Self {
        let mut lpm: Vec<(u32, u32)> = if list.len() <= DENSE_MAX {
            list.iter()
                .enumerate()
                .map(|(i, r)| {
                    let len = r.prefix_len.min(32);
                    (
                        u32::from(r.dest) & mask(len),
                        ((len as u32) << 24) | i as u32,
                    )
                })
                .collect()
        } else {
            vec![]
        };
        // Longest first; among equal lengths the later route first.
        lpm.sort_unstable_by_key(|&(_, key)| std::cmp::Reverse(key));
        Self { list, lpm }
    }

    /// The route with the longest prefix covering `dst`.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&RouteConf> {
        let d = u32::from(dst);
        if self.lpm.len() < self.list.len() {
            return self
                .list
                .iter()
                .filter(|r| d & mask(r.prefix_len) == u32::from(r.dest) & mask(r.prefix_len))
                .max_by_key(|r| r.prefix_len.min(32));
        }
        self.lpm
            .iter()
            .find(|&&(net, key)| d & mask((key >> 24) as u8) == net)
            .map(|&(_, key)| &self.list[(key & 0x00ff_ffff) as usize])
    }
}

impl Deref for Routes {
    type Target = [RouteConf];
    fn deref(&self) -> &[RouteConf] {
        &self.list
    }
}

impl PartialEq for Routes {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Eq for Routes {}

impl From<Vec<RouteConf>> for Routes {
    fn from(list: Vec<RouteConf>) -> Self {
        Self::new(list)
    }
}

impl FromIterator<RouteConf> for Routes {
    fn from_iter<I: IntoIterator<Item = RouteConf>>(it: I) -> Self {
        Self::new(it.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(dest: &str, len: u8, ifname: &str) -> RouteConf {
        RouteConf {
            dest: dest.parse().unwrap(),
            prefix_len: len,
            via: "10.0.0.1".parse().unwrap(),
            ifname: ifname.into(),
        }
    }

    /// What the index replaced: the longest prefix, the last of equals.
    fn scan(list: &[RouteConf], dst: Ipv4Addr) -> Option<&RouteConf> {
        list.iter()
            .filter(|r| {
                u32::from(dst) & mask(r.prefix_len) == u32::from(r.dest) & mask(r.prefix_len)
            })
            .max_by_key(|r| r.prefix_len)
    }

    #[test]
    fn the_longest_prefix_wins_and_the_last_of_equals() {
        let list = vec![
            r("0.0.0.0", 0, "default"),
            r("172.16.0.0", 12, "wide"),
            r("172.16.5.0", 24, "narrow"),
            r("172.16.5.0", 24, "narrow-again"),
            r("172.16.5.7", 32, "host"),
            r("10.1.2.3", 40, "too-long"),
        ];
        let routes = Routes::new(list.clone());
        for dst in [
            "172.16.5.7",
            "172.16.5.8",
            "172.16.9.1",
            "8.8.8.8",
            "10.1.2.3",
            "10.1.2.4",
        ] {
            let dst: Ipv4Addr = dst.parse().unwrap();
            assert_eq!(routes.lookup(dst), scan(&list, dst), "{dst}");
        }
        let at = |d: &str| routes.lookup(d.parse().unwrap()).unwrap().ifname.clone();
        assert_eq!(at("172.16.5.8"), "narrow-again");
        assert_eq!(at("172.16.5.7"), "host");
        assert_eq!(at("10.1.2.3"), "too-long");
        assert_eq!(at("9.9.9.9"), "default");
    }

    #[test]
    fn the_index_answers_as_the_scan_did_on_random_tables() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let list: Vec<RouteConf> = (0..500)
            .map(|i| RouteConf {
                dest: Ipv4Addr::from(next() as u32 & 0xff0f_ffff),
                prefix_len: (next() % 33) as u8,
                via: Ipv4Addr::UNSPECIFIED,
                ifname: format!("if{i}"),
            })
            .collect();
        let routes = Routes::new(list.clone());
        let dsts = list
            .iter()
            .map(|r| r.dest)
            .chain((0..2000).map(|_| Ipv4Addr::from(next() as u32 & 0xff0f_ffff)));
        for dst in dsts {
            assert_eq!(routes.lookup(dst), scan(&list, dst), "{dst}");
        }
    }

    #[test]
    fn no_route_no_answer_and_the_list_keeps_its_order() {
        let routes: Routes = vec![r("192.168.1.0", 24, "a"), r("192.168.0.0", 24, "b")]
            .into_iter()
            .collect();
        assert_eq!(routes.lookup("10.0.0.1".parse().unwrap()), None);
        assert_eq!(routes[0].ifname, "a");
        assert_eq!(routes.len(), 2);
        assert_eq!(Routes::default().lookup(Ipv4Addr::UNSPECIFIED), None);
    }
}
