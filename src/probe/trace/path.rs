//! A traced path as plain data: the hops' addresses (`None` for a hop that never answered), its
//! stable hash and bounded `hops` label, whether it crosses an exchange, and when a new trace is
//! a change. Pure, no I/O.

use std::net::IpAddr;

use crate::config::trace::{exchanges_of, Ixes};

/// The longest `hops` label written; a longer path is cut at a hop boundary and ends in `,…`
/// (its hash still covers every hop).
pub const MAX_HOPS_LABEL: usize = 512;

/// One finished trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Per TTL from 1: the address that answered (the lowest, if several did), or `None`.
    /// Never ends in `None`: silent hops after the last answer are not part of the path.
    pub hops: Vec<Option<IpAddr>>,
    /// Whether the last hop is the target itself.
    pub reached: bool,
}

impl Path {
    /// A path from the answers per TTL, the silent tail dropped.
    pub fn new(mut hops: Vec<Option<IpAddr>>, reached: bool) -> Path {
        while hops.last().is_some_and(Option::is_none) {
            hops.pop();
        }
        Path { hops, reached }
    }

    /// `latency_path_hops`: to the target, or to the last hop that answered.
    pub fn len(&self) -> usize {
        self.hops.len()
    }

    /// Every hop, `*` for a silent one: `10.0.0.1,*,10.200.0.2`.
    fn text(&self) -> String {
        let hops: Vec<String> = self
            .hops
            .iter()
            .map(|hop| hop.map_or_else(|| "*".to_owned(), |address| address.to_string()))
            .collect();
        hops.join(",")
    }

    /// The `hops` label: [`text`](Self::text), cut to [`MAX_HOPS_LABEL`] bytes at a hop boundary.
    pub fn label(&self) -> String {
        let text = self.text();
        if text.len() <= MAX_HOPS_LABEL {
            return text;
        }
        let cut = text[..MAX_HOPS_LABEL - 4].rfind(',').unwrap_or(0);
        format!("{},…", &text[..cut])
    }

    /// The `path_hash` label: FNV-1a (64 bits) of every hop and whether the target answered,
    /// in hex; the same path gives the same hash on every run and version.
    pub fn hash(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let text = format!("{}{}", self.text(), if self.reached { "" } else { ",!" });
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// Whether a hop lies in one of `exchange`'s prefixes.
    pub fn via(&self, ixes: &Ixes, exchange: &str) -> bool {
        self.hops
            .iter()
            .flatten()
            .any(|address| exchanges_of(ixes, *address).any(|name| name == exchange))
    }

    /// The path to export after `previous`: `self`, except that a trace which differs from the
    /// previous path only by hops that did not answer this time (a router rate-limiting its
    /// ICMP) is the previous path: it is not a change.
    pub fn settle(self, previous: Option<&Path>) -> Path {
        match previous {
            Some(previous)
                if previous.reached == self.reached
                    && previous.hops.len() == self.hops.len()
                    && self
                        .hops
                        .iter()
                        .zip(&previous.hops)
                        .all(|(now, before)| now.is_none() || now == before) =>
            {
                previous.clone()
            }
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::trace::{Cidr, ExchangeName, Prefixes};

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    #[test]
    fn label_hash_and_length() {
        let path = Path::new(
            vec![
                ip("10.201.1.1"),
                None,
                ip("10.200.0.2"),
                ip("10.204.0.2"),
                None,
            ],
            true,
        );
        assert_eq!(path.len(), 4, "the silent tail is not part of the path");
        assert_eq!(path.label(), "10.201.1.1,*,10.200.0.2,10.204.0.2");
        assert_eq!(path.hash(), path.clone().hash());
        assert_eq!(path.hash().len(), 16);
        let unreached = Path::new(path.hops.clone(), false);
        assert_ne!(path.hash(), unreached.hash());
    }

    #[test]
    fn a_long_path_is_cut_at_a_hop_but_hashed_whole() {
        let hops: Vec<Option<IpAddr>> = (0..64)
            .map(|n| ip(&format!("2001:db8:ffff:ffff:ffff:ffff:ffff:{n:x}")))
            .collect();
        let path = Path::new(hops.clone(), true);
        let label = path.label();
        assert!(label.len() <= MAX_HOPS_LABEL, "{}", label.len());
        assert!(label.ends_with(",…"), "{label}");
        let mut other = hops;
        other[63] = ip("2001:db8::1");
        assert_ne!(path.hash(), Path::new(other, true).hash());
    }

    #[test]
    fn via_an_exchange() {
        let mut ixes = Ixes::new();
        ixes.insert(
            ExchangeName("NIX".into()),
            Prefixes(vec![
                Cidr::parse("10.200.0.0/24").expect("v4"),
                Cidr::parse("fd00:200::/64").expect("v6"),
            ]),
        );
        let via = Path::new(vec![ip("10.201.1.1"), ip("10.200.0.2")], true);
        let transit = Path::new(vec![ip("10.201.1.1"), None, ip("10.203.0.2")], true);
        assert!(via.via(&ixes, "NIX"));
        assert!(!transit.via(&ixes, "NIX"));
        assert!(!via.via(&ixes, "OTHER"));
        assert!(Path::new(vec![ip("fd00:200::9")], false).via(&ixes, "NIX"));
    }

    #[test]
    fn a_hop_silent_this_time_is_no_change() {
        let before = Path::new(vec![ip("10.0.0.1"), ip("10.0.1.1"), ip("10.0.2.1")], true);
        let silent = Path::new(vec![ip("10.0.0.1"), None, ip("10.0.2.1")], true);
        assert_eq!(silent.clone().settle(Some(&before)), before);
        assert_eq!(silent.clone().settle(None), silent);
        let moved = Path::new(vec![ip("10.0.0.1"), ip("10.0.9.1"), ip("10.0.2.1")], true);
        assert_eq!(moved.clone().settle(Some(&before)), moved);
        let longer = Path::new(
            vec![ip("10.0.0.1"), None, ip("10.0.1.1"), ip("10.0.2.1")],
            true,
        );
        assert_eq!(longer.clone().settle(Some(&before)), longer);
    }
}
