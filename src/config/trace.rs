//! Path tracing in the config file: a target's `trace:` settings (merged like its other
//! settings: the target's own key, then `probes.defaults.trace`, then [`defaults`]) and the
//! top-level `ixes:` map of exchange name to peering-LAN prefixes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::duration::PositiveDuration;

/// How a trace probes each hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceProtocol {
    /// ICMP / ICMPv6 echo requests, through the shared ICMP sockets.
    Icmp,
    /// UDP datagrams to the classic traceroute ports (33434 on).
    Udp,
    /// TCP SYNs to the target's port: passes firewalls that drop ICMP and UDP.
    Tcp,
}

impl TraceProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceProtocol::Icmp => "icmp",
            TraceProtocol::Udp => "udp",
            TraceProtocol::Tcp => "tcp",
        }
    }
}

impl fmt::Display for TraceProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `trace:` of a target or of `probes.defaults`: every key optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// Whether the target's path is traced at all.
    pub enabled: Option<bool>,
    /// Time between two traces of the target.
    pub interval: Option<PositiveDuration>,
    /// Default: the target's own protocol.
    pub protocol: Option<TraceProtocol>,
    /// Highest TTL / hop limit tried.
    pub max_hops: Option<MaxHops>,
    /// Probes sent to each hop at once; a hop answers if any of them is answered.
    pub probes_per_hop: Option<ProbesPerHop>,
}

impl TraceConfig {
    /// `self`'s keys over `under`'s.
    pub fn over(&self, under: &TraceConfig) -> TraceConfig {
        TraceConfig {
            enabled: self.enabled.or(under.enabled),
            interval: self.interval.or(under.interval),
            protocol: self.protocol.or(under.protocol),
            max_hops: self.max_hops.or(under.max_hops),
            probes_per_hop: self.probes_per_hop.or(under.probes_per_hop),
        }
    }
}

/// A target's trace with every setting decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trace {
    pub interval: Duration,
    pub protocol: TraceProtocol,
    pub max_hops: u8,
    pub probes_per_hop: u8,
}

/// The built-in trace defaults.
pub mod defaults {
    use std::time::Duration;

    pub const ENABLED: bool = true;
    pub const INTERVAL: Duration = Duration::from_secs(300);
    pub const MAX_HOPS: u8 = 30;
    pub const PROBES_PER_HOP: u8 = 3;
    /// Tracing more often than this is a load on every router of the path, not a measurement.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
    /// The highest `max_hops` accepted (the Internet's paths are far shorter).
    pub const MAX_MAX_HOPS: u8 = 64;
    /// The most probes per hop accepted: each one may cost a router an ICMP message.
    pub const MAX_PROBES_PER_HOP: u8 = 5;
}

/// `max_hops`: 1 to [`defaults::MAX_MAX_HOPS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxHops(pub u8);

impl<'de> Deserialize<'de> for MaxHops {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        match u8::try_from(value) {
            Ok(hops) if (1..=defaults::MAX_MAX_HOPS).contains(&hops) => Ok(Self(hops)),
            _ => Err(serde::de::Error::custom(format!(
                "{value} is not 1 to {}",
                defaults::MAX_MAX_HOPS
            ))),
        }
    }
}

/// `probes_per_hop`: 1 to [`defaults::MAX_PROBES_PER_HOP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbesPerHop(pub u8);

impl<'de> Deserialize<'de> for ProbesPerHop {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        match u8::try_from(value) {
            Ok(probes) if (1..=defaults::MAX_PROBES_PER_HOP).contains(&probes) => Ok(Self(probes)),
            _ => Err(serde::de::Error::custom(format!(
                "{value} is not 1 to {}",
                defaults::MAX_PROBES_PER_HOP
            ))),
        }
    }
}

/// An IPv4 or IPv6 prefix in CIDR notation (`185.1.0.0/24`, `2001:7f8::/64`), host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub address: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// Parses `address/len`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, len) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a prefix: write address/length"))?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?}: {address:?} is not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|len| *len <= max)
            .ok_or_else(|| format!("{text:?}: the length must be 0 to {max}"))?;
        let cidr = Cidr { address, len };
        let network = cidr.network();
        if network != address {
            return Err(format!(
                "{text:?} has host bits set; the prefix is {network}/{len}"
            ));
        }
        Ok(cidr)
    }

    /// The address with every host bit cleared.
    fn network(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        }
    }

    /// Whether `address` lies in the prefix (never across families).
    pub fn contains(&self, address: IpAddr) -> bool {
        let inside = Cidr {
            address,
            len: self.len,
        };
        address.is_ipv4() == self.address.is_ipv4() && inside.network() == self.address
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.len)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One exchange's peering-LAN prefixes: at least one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefixes(pub Vec<Cidr>);

impl<'de> Deserialize<'de> for Prefixes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let prefixes = Vec::<Cidr>::deserialize(deserializer)?;
        if prefixes.is_empty() {
            return Err(serde::de::Error::custom(
                "needs at least one peering-LAN prefix",
            ));
        }
        Ok(Self(prefixes))
    }
}

/// An exchange name: the value of the `ix` label, so a non-empty one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeName(pub String);

impl<'de> Deserialize<'de> for ExchangeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty() {
            return Err(serde::de::Error::custom("an exchange needs a name"));
        }
        Ok(Self(name))
    }
}

/// The top-level `ixes:` map: exchange name → its peering-LAN prefixes.
pub type Ixes = BTreeMap<ExchangeName, Prefixes>;

/// The exchanges whose prefixes hold `address`.
pub fn exchanges_of(ixes: &Ixes, address: IpAddr) -> impl Iterator<Item = &str> {
    ixes.iter()
        .filter(move |(_, prefixes)| prefixes.0.iter().any(|cidr| cidr.contains(address)))
        .map(|(name, _)| name.0.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_contain() {
        let v4 = Cidr::parse("10.200.0.0/24").expect("v4");
        assert!(v4.contains("10.200.0.77".parse().expect("ip")));
        assert!(!v4.contains("10.200.1.1".parse().expect("ip")));
        assert!(!v4.contains("::ffff:10.200.0.1".parse().expect("ip")));
        let v6 = Cidr::parse("fd00:200::/64").expect("v6");
        assert!(v6.contains("fd00:200::2".parse().expect("ip")));
        assert!(!v6.contains("fd00:200:0:1::2".parse().expect("ip")));
        let all = Cidr::parse("0.0.0.0/0").expect("all");
        assert!(all.contains("192.0.2.1".parse().expect("ip")));
        assert_eq!(Cidr::parse("192.0.2.1/32").map(|c| c.len), Ok(32));
    }

    #[test]
    fn bad_prefixes_say_why() {
        assert_eq!(
            Cidr::parse("10.200.0.1/24"),
            Err("\"10.200.0.1/24\" has host bits set; the prefix is 10.200.0.0/24".into())
        );
        assert_eq!(
            Cidr::parse("10.200.0.0"),
            Err("\"10.200.0.0\" is not a prefix: write address/length".into())
        );
        assert_eq!(
            Cidr::parse("10.200.0.0/33"),
            Err("\"10.200.0.0/33\": the length must be 0 to 32".into())
        );
        assert_eq!(
            Cidr::parse("nix/24"),
            Err("\"nix/24\": \"nix\" is not an IP address".into())
        );
    }
}
