//! An interface address with its prefix length (`198.19.0.1/24`), and membership tests.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The simulator's own address on the TUN device plus the prefix it answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The device's own address (never answered by the simulator: the kernel owns it).
    pub address: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

/// A prefix that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?}: {reason} (expected ADDRESS/LENGTH, e.g. 198.19.0.1/24)")]
pub struct PrefixError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Prefix {
    /// Builds a prefix; `len` must not exceed the address width.
    pub fn new(address: IpAddr, len: u8) -> Option<Prefix> {
        (len <= max_len(address)).then_some(Prefix { address, len })
    }

    /// Whether `other` lies in this prefix (same family, same leading `len` bits).
    pub fn contains(&self, other: IpAddr) -> bool {
        match (self.address, other) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    /// The `index`-th address of the prefix (`0` is the network address), or `None` beyond it.
    pub fn nth(&self, index: u128) -> Option<IpAddr> {
        let host_bits = u32::from(max_len(self.address) - self.len);
        if host_bits < 128 && index >> host_bits != 0 {
            return None;
        }
        match self.address {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(host_bits).unwrap_or(0);
                let index = u32::try_from(index).ok()?;
                Some(IpAddr::V4((u32::from(a) & mask | index).into()))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
                Some(IpAddr::V6((u128::from(a) & mask | index).into()))
            }
        }
    }
}

fn max_len(address: IpAddr) -> u8 {
    if address.is_ipv4() {
        32
    } else {
        128
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(input: &str) -> Result<Prefix, PrefixError> {
        let error = |reason| PrefixError {
            input: input.to_owned(),
            reason,
        };
        let (address, len) = input
            .split_once('/')
            .ok_or_else(|| error("missing /LENGTH"))?;
        let address: IpAddr = address.parse().map_err(|_| error("not an IP address"))?;
        let len: u8 = len.parse().map_err(|_| error("length is not a number"))?;
        Prefix::new(address, len).ok_or_else(|| error("length exceeds the address width"))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_checks_family_and_leading_bits() {
        let v4: Prefix = "198.19.0.1/24".parse().expect("valid");
        assert!(v4.contains("198.19.0.200".parse().expect("ip")));
        assert!(!v4.contains("198.19.1.2".parse().expect("ip")));
        assert!(!v4.contains("fd00::1".parse().expect("ip")));
        let v6: Prefix = "fd00:198:19::1/64".parse().expect("valid");
        assert!(v6.contains("fd00:198:19::ffff:1".parse().expect("ip")));
        assert!(!v6.contains("fd00:198:20::1".parse().expect("ip")));
        let all: Prefix = "0.0.0.0/0".parse().expect("valid");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
    }

    #[test]
    fn nth_enumerates_hosts_within_the_prefix() {
        let v4: Prefix = "198.18.4.1/22".parse().expect("valid");
        assert_eq!(v4.nth(2), Some("198.18.4.2".parse().expect("ip")));
        assert_eq!(v4.nth(1000), Some("198.18.7.232".parse().expect("ip")));
        assert_eq!(v4.nth(1024), None);
        let v6: Prefix = "fd00:198:19::1/64".parse().expect("valid");
        assert_eq!(
            v6.nth(0x1_0000),
            Some("fd00:198:19::1:0".parse().expect("ip"))
        );
    }

    #[test]
    fn malformed_prefixes_say_why() {
        let error = "198.19.0.1".parse::<Prefix>().expect_err("no length");
        assert_eq!(error.reason, "missing /LENGTH");
        let error = "198.19.0.1/33".parse::<Prefix>().expect_err("too long");
        assert_eq!(error.reason, "length exceeds the address width");
        assert_eq!(
            error.to_string(),
            "\"198.19.0.1/33\": length exceeds the address width (expected ADDRESS/LENGTH, e.g. 198.19.0.1/24)"
        );
    }
}
