//! Latency probe targets in the config file: what to probe, how often, and with which labels.
//!
//! Every setting a target can carry has one default, in [`defaults`]; the file's
//! `probes.defaults` overrides it for all targets and a target's own key overrides both.
//! [`ProbesConfig::targets`] merges the three into the fully specified [`Target`]s the probe
//! engine runs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::duration::PositiveDuration;
use super::trace::{self, Trace, TraceConfig, TraceProtocol};
use super::CrossFieldProblem;

/// The `probes:` section of the config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {
    /// Settings every target takes unless it sets its own.
    #[serde(default)]
    pub defaults: SettingsConfig,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Upper bounds (seconds) of the RTT histogram's buckets, for every target. Default:
    /// [`defaults::RTT_BUCKETS`].
    pub rtt_buckets: Option<Buckets>,
    /// More targets from files in Prometheus file_sd format (see [`super::target_files`]):
    /// paths whose file name may hold `*` and `?`, watched for changes.
    #[serde(default)]
    pub target_files: Vec<TargetFilePattern>,
    /// How often the target files are checked for changes. Default:
    /// [`defaults::TARGET_FILES_INTERVAL`].
    pub target_files_interval: Option<PositiveDuration>,
}

/// The protocol a target is probed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ICMP (v4) or ICMPv6 echo request / reply.
    Icmp,
    /// TCP connect: the time from the SYN to the SYN-ACK that establishes the connection.
    Tcp,
}

impl Protocol {
    /// The value of the `protocol` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Icmp => "icmp",
            Protocol::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which address family a target's host name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Family {
    /// IPv4 only.
    #[serde(rename = "ip4")]
    Ip4,
    /// IPv6 only.
    #[serde(rename = "ip6")]
    Ip6,
    /// IPv4 if the name has an IPv4 address, else IPv6.
    #[serde(rename = "prefer-ip4")]
    PreferIp4,
    /// IPv6 if the name has an IPv6 address, else IPv4.
    #[serde(rename = "prefer-ip6")]
    PreferIp6,
    /// Both: the target becomes two, one per family, told apart by the label `family`
    /// (`ip4`, `ip6`). Only for host names.
    #[serde(rename = "both")]
    Both,
}

impl Family {
    /// The spelling in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip4 => "ip4",
            Family::Ip6 => "ip6",
            Family::PreferIp4 => "prefer-ip4",
            Family::PreferIp6 => "prefer-ip6",
            Family::Both => "both",
        }
    }

    /// Whether `address` is allowed at all under this setting.
    pub fn allows(self, address: IpAddr) -> bool {
        match self {
            Family::Ip4 => address.is_ipv4(),
            Family::Ip6 => address.is_ipv6(),
            Family::PreferIp4 | Family::PreferIp6 | Family::Both => true,
        }
    }

    /// Picks the address to probe from a resolver's answer, or `None` when none is allowed.
    pub fn pick(self, addresses: &[IpAddr]) -> Option<IpAddr> {
        let first_v4 = addresses.iter().copied().find(IpAddr::is_ipv4);
        let first_v6 = addresses.iter().copied().find(IpAddr::is_ipv6);
        match self {
            Family::Ip4 => first_v4,
            Family::Ip6 => first_v6,
            Family::PreferIp4 | Family::Both => first_v4.or(first_v6),
            Family::PreferIp6 => first_v6.or(first_v4),
        }
    }
}

/// `probes.defaults`: every setting a target can carry, each optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsConfig {
    /// Time between two probes of the target.
    pub interval: Option<PositiveDuration>,
    /// How long to wait for a reply (or the TCP handshake) before counting the probe as lost.
    pub timeout: Option<PositiveDuration>,
    pub family: Option<Family>,
    /// Bytes of ICMP payload after the echo header (ping's `-s`, default 56).
    pub payload_size: Option<PayloadSize>,
    /// DSCP of the probes, 0 to 63 (IPv4 TOS / IPv6 traffic class = DSCP × 4; default 0).
    pub dscp: Option<Dscp>,
    /// Set Don't Fragment (IPv4) / forbid fragmentation (IPv6) on ICMP probes: a probe larger
    /// than the path MTU fails with reason `mtu` instead of being fragmented.
    pub dont_fragment: Option<bool>,
    /// Local address the probes are sent from.
    pub source_address: Option<IpAddr>,
    /// Network interface the probes are bound to (`SO_BINDTODEVICE`).
    pub interface: Option<InterfaceName>,
    /// How often a host name is looked up again; an address change is followed without restart.
    pub resolve_interval: Option<PositiveDuration>,
    /// Labels on every series of the target (a target's own labels win over the defaults').
    #[serde(default)]
    pub labels: BTreeMap<LabelName, String>,
    /// Path tracing (a target's own keys win over the defaults' one by one).
    #[serde(default)]
    pub trace: TraceConfig,
}

/// One entry of `probes.targets`. The settings repeat [`SettingsConfig`]'s keys rather than
/// flattening it: serde's `flatten` buffers the input and loses the line and column of errors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The `target` label. Default: the host (ICMP) or `host:port` (TCP).
    pub name: Option<LabelValue>,
    /// Host name or address literal.
    pub host: HostName,
    pub protocol: Protocol,
    /// TCP port; required for `tcp`, not allowed for `icmp`.
    pub port: Option<u16>,
    pub interval: Option<PositiveDuration>,
    pub timeout: Option<PositiveDuration>,
    pub family: Option<Family>,
    pub payload_size: Option<PayloadSize>,
    pub dscp: Option<Dscp>,
    pub dont_fragment: Option<bool>,
    pub source_address: Option<IpAddr>,
    pub interface: Option<InterfaceName>,
    pub resolve_interval: Option<PositiveDuration>,
    #[serde(default)]
    pub labels: BTreeMap<LabelName, String>,
    #[serde(default)]
    pub trace: TraceConfig,
}

impl TargetConfig {
    /// The target's own settings, in the shape of the defaults they override.
    fn settings(&self) -> SettingsConfig {
        SettingsConfig {
            interval: self.interval,
            timeout: self.timeout,
            family: self.family,
            payload_size: self.payload_size,
            dscp: self.dscp,
            dont_fragment: self.dont_fragment,
            source_address: self.source_address,
            interface: self.interface.clone(),
            resolve_interval: self.resolve_interval,
            labels: self.labels.clone(),
            trace: self.trace.clone(),
        }
    }
}

/// A target with every setting decided: what the probe engine runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The `target` label.
    pub name: String,
    pub host: String,
    pub protocol: Protocol,
    /// `Some` exactly for TCP targets.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub family: Family,
    /// ICMP payload bytes (0 for TCP targets).
    pub payload_size: u16,
    /// DSCP, 0 to 63.
    pub dscp: u8,
    /// Don't Fragment (ICMP targets only; always false for TCP).
    pub dont_fragment: bool,
    pub source_address: Option<IpAddr>,
    pub interface: Option<String>,
    pub resolve_interval: Duration,
    /// The user's labels, sorted by name (defaults merged in).
    pub labels: BTreeMap<String, String>,
    /// The path trace, `None` when disabled.
    pub trace: Option<Trace>,
}

impl Target {
    /// The host as an address literal, when it is one (then it is never looked up).
    pub fn literal_address(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// The built-in defaults; the one place they are written down.
pub mod defaults {
    use std::time::Duration;

    use super::Family;

    pub const INTERVAL: Duration = Duration::from_secs(1);
    pub const TIMEOUT: Duration = Duration::from_secs(1);
    pub const FAMILY: Family = Family::PreferIp4;
    /// ping's default payload: 56 bytes, 64 with the ICMP header.
    pub const PAYLOAD_SIZE: u16 = 56;
    pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(300);
    /// Target files are checked (size and modification time) this often.
    pub const TARGET_FILES_INTERVAL: Duration = Duration::from_secs(5);
    /// Probing more often than this is a flood, not a measurement.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
    /// RTT histogram buckets, seconds: 1-2-5 steps from 0.1 ms (a LAN) to 10 s (a timeout).
    pub const RTT_BUCKETS: &[f64] = &[
        0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
        5.0, 10.0,
    ];
}

/// Label names a user may not set: the probe families' own labels and the ones Prometheus owns.
pub const RESERVED_LABELS: &[&str] = &[
    "target",
    "protocol",
    "address",
    "reason",
    "family",
    "le",
    "quantile",
    "job",
    "instance",
    "path_hash",
    "hops",
];

/// The largest ICMP payload that fits an IPv4 datagram (65535 − 20 IP − 8 ICMP).
pub const MAX_PAYLOAD_SIZE: u16 = 65507;

impl ProbesConfig {
    /// Checks that span several fields; run after deserializing, before anything starts.
    pub fn validate(&self) -> Result<(), CrossFieldProblem> {
        let mut seen = std::collections::HashSet::new();
        for (index, target) in self.targets.iter().enumerate() {
            let field = |key: &str| format!("probes.targets[{index}].{key}");
            let host_line = format!("host: {}", target.host.0);
            let problem = |key: &str, reason: String, near: &str| CrossFieldProblem {
                field: field(key),
                reason,
                near: near.to_owned(),
            };
            match (target.protocol, target.port) {
                (Protocol::Tcp, None) => {
                    return Err(problem(
                        "port",
                        "a tcp target needs a port".into(),
                        &host_line,
                    ))
                }
                (Protocol::Icmp, Some(port)) => {
                    return Err(problem(
                        "port",
                        "icmp has no ports; remove it or use protocol: tcp".into(),
                        &format!("port: {port}"),
                    ))
                }
                (Protocol::Tcp, Some(0)) => {
                    return Err(problem("port", "must be 1 to 65535".into(), "port: 0"))
                }
                _ => {}
            }
            if target.protocol == Protocol::Tcp && target.payload_size.is_some() {
                return Err(problem(
                    "payload_size",
                    "applies to icmp targets only".into(),
                    "payload_size:",
                ));
            }
            if target.protocol == Protocol::Tcp && target.dont_fragment.is_some() {
                return Err(problem(
                    "dont_fragment",
                    "applies to icmp targets only (TCP does its own path MTU discovery)".into(),
                    "dont_fragment:",
                ));
            }
            let resolved = self.resolve(target);
            if resolved.timeout > resolved.interval {
                return Err(problem(
                    "timeout",
                    format!(
                        "{} is longer than the interval ({}): a probe must end before the next starts",
                        super::duration::format(resolved.timeout),
                        super::duration::format(resolved.interval)
                    ),
                    &host_line,
                ));
            }
            if resolved.interval < defaults::MIN_INTERVAL {
                return Err(problem(
                    "interval",
                    format!(
                        "must be at least {}",
                        super::duration::format(defaults::MIN_INTERVAL)
                    ),
                    &host_line,
                ));
            }
            if let Some(address) = resolved.literal_address() {
                if resolved.family == Family::Both {
                    return Err(problem(
                        "family",
                        format!("{address} is an address, not a name with one of each family; `both` needs a host name"),
                        "family: both",
                    ));
                }
                if !resolved.family.allows(address) {
                    return Err(problem(
                        "family",
                        format!(
                            "{address} is not an address of family {}",
                            resolved.family.as_str()
                        ),
                        &host_line,
                    ));
                }
                if let Some(source) = resolved.source_address {
                    if source.is_ipv4() != address.is_ipv4() {
                        return Err(problem(
                            "source_address",
                            format!("{source} and the target {address} are of different families"),
                            &host_line,
                        ));
                    }
                }
            }
            if let Some(trace) = resolved.trace {
                let trace_line = "trace:";
                if trace.protocol == TraceProtocol::Tcp && resolved.port.is_none() {
                    return Err(problem(
                        "trace.protocol",
                        "a tcp trace goes to the target's port: only tcp targets have one".into(),
                        trace_line,
                    ));
                }
                if trace.interval < trace::defaults::MIN_INTERVAL {
                    return Err(problem(
                        "trace.interval",
                        format!(
                            "must be at least {}",
                            super::duration::format(trace::defaults::MIN_INTERVAL)
                        ),
                        trace_line,
                    ));
                }
            }
            if !seen.insert((resolved.name.clone(), resolved.protocol)) {
                let near = match &target.name {
                    Some(name) => format!("name: {}", name.0),
                    None => host_line.clone(),
                };
                return Err(problem(
                    "name",
                    format!(
                        "another {} target is already named {:?}; give one a different `name`",
                        resolved.protocol, resolved.name
                    ),
                    &near,
                ));
            }
        }
        Ok(())
    }

    /// The RTT histogram's bucket bounds in seconds.
    pub fn rtt_buckets(&self) -> Vec<f64> {
        self.rtt_buckets.as_ref().map_or_else(
            || defaults::RTT_BUCKETS.to_vec(),
            |buckets| buckets.0.clone(),
        )
    }

    /// Every target with its settings decided (defaults from the file, then built-in ones);
    /// a `family: both` target comes as two, see [`split_families`].
    pub fn targets(&self) -> Vec<Target> {
        split_families(self.targets.iter().map(|target| self.resolve(target)))
    }

    fn resolve(&self, target: &TargetConfig) -> Target {
        let own = &target.settings();
        let file = &self.defaults;
        let pick = |own: Option<PositiveDuration>, file: Option<PositiveDuration>, builtin| {
            own.or(file).map_or(builtin, PositiveDuration::get)
        };
        let labels: BTreeMap<String, String> = file
            .labels
            .iter()
            .chain(&own.labels)
            .map(|(name, value)| (name.0.clone(), value.clone()))
            .collect();
        let name = match (&target.name, target.port) {
            (Some(name), _) => name.0.clone(),
            (None, Some(port)) if target.host.0.contains(':') => {
                format!("[{}]:{port}", target.host.0)
            }
            (None, Some(port)) => format!("{}:{port}", target.host.0),
            (None, None) => target.host.0.clone(),
        };
        Target {
            name,
            host: target.host.0.clone(),
            protocol: target.protocol,
            port: target.port,
            interval: pick(own.interval, file.interval, defaults::INTERVAL),
            timeout: pick(own.timeout, file.timeout, defaults::TIMEOUT),
            family: own.family.or(file.family).unwrap_or(defaults::FAMILY),
            dscp: own.dscp.or(file.dscp).map_or(0, |dscp| dscp.0),
            dont_fragment: target.protocol == Protocol::Icmp
                && own.dont_fragment.or(file.dont_fragment).unwrap_or(false),
            payload_size: match target.protocol {
                Protocol::Icmp => own
                    .payload_size
                    .or(file.payload_size)
                    .map_or(defaults::PAYLOAD_SIZE, |size| size.0),
                Protocol::Tcp => 0,
            },
            source_address: own.source_address.or(file.source_address),
            interface: own
                .interface
                .clone()
                .or_else(|| file.interface.clone())
                .map(|name| name.0),
            resolve_interval: pick(
                own.resolve_interval,
                file.resolve_interval,
                defaults::RESOLVE_INTERVAL,
            ),
            labels,
            trace: resolve_trace(&own.trace.over(&file.trace), target.protocol),
        }
    }
}

/// The trace settings of a target of `protocol`, `None` when tracing is off.
fn resolve_trace(config: &TraceConfig, protocol: Protocol) -> Option<Trace> {
    if !config.enabled.unwrap_or(trace::defaults::ENABLED) {
        return None;
    }
    Some(Trace {
        interval: config
            .interval
            .map_or(trace::defaults::INTERVAL, PositiveDuration::get),
        protocol: config.protocol.unwrap_or(match protocol {
            Protocol::Icmp => TraceProtocol::Icmp,
            Protocol::Tcp => TraceProtocol::Tcp,
        }),
        max_hops: config
            .max_hops
            .map_or(trace::defaults::MAX_HOPS, |hops| hops.0),
        probes_per_hop: config
            .probes_per_hop
            .map_or(trace::defaults::PROBES_PER_HOP, |probes| probes.0),
    })
}

/// Makes each `family: both` target two, one per address family, each with the label
/// `family` (`ip4` / `ip6`): two series of one name.
pub fn split_families(targets: impl IntoIterator<Item = Target>) -> Vec<Target> {
    let mut split = Vec::new();
    for target in targets {
        if target.family != Family::Both {
            split.push(target);
            continue;
        }
        for family in [Family::Ip4, Family::Ip6] {
            let mut one = target.clone();
            one.family = family;
            one.labels
                .insert("family".to_owned(), family.as_str().to_owned());
            split.push(one);
        }
    }
    split
}

/// Defines a string newtype whose `Deserialize` runs `check` and reports its message.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident, $check:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $check(&text).map_err(serde::de::Error::custom)?;
                Ok(Self(text))
            }
        }
    };
}

checked_string!(
    /// A user label name: a Prometheus label name that the probe families do not use themselves.
    LabelName,
    check_label_name
);
checked_string!(
    /// A non-empty label value.
    LabelValue,
    check_label_value
);
checked_string!(
    /// A host name (RFC 1123 letters, digits, `-`, `.`, `_`) or an IPv4/IPv6 address literal.
    HostName,
    check_host
);
checked_string!(
    /// A target file path; `*` and `?` only in its file name.
    TargetFilePattern,
    check_target_file_pattern
);
checked_string!(
    /// A network interface name as Linux accepts it (1 to 15 bytes, no `/` or whitespace).
    InterfaceName,
    check_interface
);

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a label name (letters, digits and _, not starting with a digit)"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "{name:?}: names starting with __ are Prometheus's own"
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "{name:?} is set by the exporter or by Prometheus; reserved: {}",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && !part.starts_with('-')
                && !part.ends_with('-')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is neither an IP address nor a host name (letters, digits, -, . and _)"
        ))
    }
}

fn check_target_file_pattern(pattern: &str) -> Result<(), String> {
    let (directory, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    if name.is_empty() {
        return Err(format!("{pattern:?} names no file"));
    }
    if directory.contains(['*', '?', '[']) {
        return Err(format!(
            "{pattern:?}: wildcards (* and ?) are allowed in the file name only"
        ));
    }
    Ok(())
}

impl ProbesConfig {
    /// How often the target files are checked for changes.
    pub fn target_files_interval(&self) -> Duration {
        self.target_files_interval
            .map_or(defaults::TARGET_FILES_INTERVAL, PositiveDuration::get)
    }
}

fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\t', '\n']) {
        return Err(format!(
            "{name:?} is not an interface name (1 to 15 bytes, no / or whitespace)"
        ));
    }
    Ok(())
}

/// ICMP payload bytes, at most [`MAX_PAYLOAD_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadSize(pub u16);

impl<'de> Deserialize<'de> for PayloadSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let size = u64::deserialize(deserializer)?;
        match u16::try_from(size) {
            Ok(size) if size <= MAX_PAYLOAD_SIZE => Ok(Self(size)),
            _ => Err(serde::de::Error::custom(format!(
                "{size} bytes do not fit an ICMP echo (at most {MAX_PAYLOAD_SIZE})"
            ))),
        }
    }
}

/// A DSCP value, 0 to 63.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dscp(pub u8);

impl<'de> Deserialize<'de> for Dscp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        match u8::try_from(value) {
            Ok(value) if value <= 63 => Ok(Self(value)),
            _ => Err(serde::de::Error::custom(format!(
                "{value} is no DSCP (0 to 63; a TOS byte of 184 is DSCP 46)"
            ))),
        }
    }
}

/// Histogram bucket bounds: finite, positive and strictly increasing.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(pub Vec<f64>);

impl<'de> Deserialize<'de> for Buckets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bounds = Vec::<f64>::deserialize(deserializer)?;
        if bounds.is_empty() {
            return Err(serde::de::Error::custom("needs at least one bucket bound"));
        }
        if let Some(bad) = bounds.iter().find(|b| !b.is_finite() || **b <= 0.0) {
            return Err(serde::de::Error::custom(format!(
                "{bad} is not a positive number of seconds"
            )));
        }
        if let Some(pair) = bounds.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(serde::de::Error::custom(format!(
                "bounds must increase: {} comes after {}",
                pair[1], pair[0]
            )));
        }
        Ok(Self(bounds))
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn targets(text: &str) -> Vec<Target> {
        parse(text, "p.yml").expect("valid").probes.targets()
    }

    fn error(text: &str) -> String {
        parse(text, "p.yml").expect_err("must fail").to_string()
    }

    #[test]
    fn defaults_fill_every_setting() {
        let [target] = targets("probes:\n  targets:\n    - {host: www.nix.no, protocol: icmp}\n")
            .try_into()
            .expect("one target");
        assert_eq!(
            target,
            Target {
                name: "www.nix.no".into(),
                host: "www.nix.no".into(),
                protocol: Protocol::Icmp,
                port: None,
                interval: defaults::INTERVAL,
                timeout: defaults::TIMEOUT,
                family: defaults::FAMILY,
                payload_size: defaults::PAYLOAD_SIZE,
                dscp: 0,
                dont_fragment: false,
                source_address: None,
                interface: None,
                resolve_interval: defaults::RESOLVE_INTERVAL,
                labels: BTreeMap::new(),
                trace: Some(Trace {
                    interval: trace::defaults::INTERVAL,
                    protocol: TraceProtocol::Icmp,
                    max_hops: trace::defaults::MAX_HOPS,
                    probes_per_hop: trace::defaults::PROBES_PER_HOP,
                }),
            }
        );
    }

    #[test]
    fn target_beats_file_defaults_beat_builtin() {
        let text = "probes:\n  defaults:\n    interval: 5s\n    timeout: 2s\n    family: ip6\n    \
                    labels: {ix: NIX, city: Oslo}\n  targets:\n    - host: ::1\n      protocol: tcp\n      \
                    port: 443\n      timeout: 500ms\n      labels: {city: Bergen, org: UiB}\n";
        let [target] = targets(text).try_into().expect("one target");
        assert_eq!(target.name, "[::1]:443");
        assert_eq!(target.interval, Duration::from_secs(5));
        assert_eq!(target.timeout, Duration::from_millis(500));
        assert_eq!(target.family, Family::Ip6);
        assert_eq!(target.payload_size, 0);
        let labels: Vec<_> = target
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(labels, ["city=Bergen", "ix=NIX", "org=UiB"]);
    }

    #[test]
    fn bad_targets_name_line_field_and_reason() {
        let cases = [
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: tcp\n",
                "p.yml:3:7: probes.targets[0].port: a tcp target needs a port",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      port: 80\n",
                "p.yml:5:7: probes.targets[0].port: icmp has no ports; remove it or use protocol: tcp",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: udp\n",
                "p.yml:4:17: probes.targets[0].protocol: unknown variant `udp`, expected `icmp` or `tcp`",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      interval: 1s\n      timeout: 2s\n",
                "p.yml:3:7: probes.targets[0].timeout: 2s is longer than the interval (1s): a probe must end before the next starts",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      labels: {target: x}\n",
                "p.yml:5:16: probes.targets[0].labels.target: \"target\" is set by the exporter or by Prometheus; reserved: target, protocol, address, reason, family, le, quantile, job, instance, path_hash, hops",
            ),
            (
                "probes:\n  targets:\n    - host: 'bad host'\n      protocol: icmp\n",
                "p.yml:3:7: probes.targets[0].host: \"bad host\" is neither an IP address nor a host name (letters, digits, -, . and _)",
            ),
            (
                "probes:\n  targets:\n    - {host: a.example, protocol: icmp}\n    - {host: b.example, protocol: icmp, name: a.example}\n",
                "p.yml:4:41: probes.targets[1].name: another icmp target is already named \"a.example\"; give one a different `name`",
            ),
            (
                "probes:\n  targets:\n    - host: 192.0.2.1\n      protocol: icmp\n      family: ip6\n",
                "p.yml:3:7: probes.targets[0].family: 192.0.2.1 is not an address of family ip6",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      payload_size: 70000\n",
                "p.yml:5:7: probes.targets[0].payload_size: 70000 bytes do not fit an ICMP echo (at most 65507)",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      interval: 0s\n",
                "p.yml:5:7: probes.targets[0].interval: must be greater than 0",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error(text), want, "{text}");
        }
    }

    #[test]
    fn trace_settings_merge_key_by_key_and_follow_the_protocol() {
        let text = "probes:\n  defaults:\n    trace: {interval: 1m, max_hops: 12}\n  targets:\n\
                    \x20   - {host: a.example, protocol: icmp}\n\
                    \x20   - {host: b.example, protocol: tcp, port: 443, trace: {probes_per_hop: 1}}\n\
                    \x20   - {host: c.example, protocol: icmp, trace: {protocol: udp, interval: 2s}}\n\
                    \x20   - {host: d.example, protocol: icmp, trace: {enabled: false}}\n\
                    ixes:\n  NIX: [10.200.0.0/24, 'fd00:200::/64']\n";
        let config = parse(text, "p.yml").expect("valid");
        let traces: Vec<Option<Trace>> = config
            .probes
            .targets()
            .into_iter()
            .map(|target| target.trace)
            .collect();
        let trace = |interval: u64, protocol, max_hops, probes_per_hop| {
            Some(Trace {
                interval: Duration::from_secs(interval),
                protocol,
                max_hops,
                probes_per_hop,
            })
        };
        assert_eq!(
            traces,
            [
                trace(60, TraceProtocol::Icmp, 12, 3),
                trace(60, TraceProtocol::Tcp, 12, 1),
                trace(2, TraceProtocol::Udp, 12, 3),
                None,
            ]
        );
        assert_eq!(config.ixes.len(), 1);
    }

    #[test]
    fn bad_trace_settings_and_exchanges_name_line_field_and_reason() {
        let cases = [
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      trace: {protocol: tcp}\n",
                "p.yml:5:7: probes.targets[0].trace.protocol: a tcp trace goes to the target's port: only tcp targets have one",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      trace: {max_hops: 0}\n",
                "p.yml:5:15: probes.targets[0].trace.max_hops: 0 is not 1 to 64",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      trace:\n        probes_per_hop: 9\n",
                "p.yml:6:9: probes.targets[0].trace.probes_per_hop: 9 is not 1 to 5",
            ),
            (
                "probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      trace: {interval: 500ms}\n",
                "p.yml:5:7: probes.targets[0].trace.interval: must be at least 1s",
            ),
            (
                "ixes:\n  NIX: [10.200.0.1/24]\n",
                "p.yml:2:8: ixes.NIX[0]: \"10.200.0.1/24\" has host bits set; the prefix is 10.200.0.0/24",
            ),
            (
                "ixes:\n  NIX: []\n",
                "p.yml:2:3: ixes.NIX: needs at least one peering-LAN prefix",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error(text), want, "{text}");
        }
    }

    #[test]
    fn buckets_default_and_override() {
        assert_eq!(
            ProbesConfig::default().rtt_buckets(),
            defaults::RTT_BUCKETS.to_vec()
        );
        let config =
            parse("probes:\n  rtt_buckets: [0.025, 0.0255, 0.03]\n", "p.yml").expect("valid");
        assert_eq!(config.probes.rtt_buckets(), vec![0.025, 0.0255, 0.03]);
        assert_eq!(
            error("probes:\n  rtt_buckets: [0.03, 0.025]\n"),
            "p.yml:2:3: probes.rtt_buckets: bounds must increase: 0.025 comes after 0.03"
        );
    }

    #[test]
    fn same_name_different_protocols_is_fine() {
        let text = "probes:\n  targets:\n    - {host: a.example, protocol: icmp, name: a}\n    - {host: a.example, protocol: tcp, port: 443, name: a}\n";
        assert_eq!(targets(text).len(), 2);
    }

    #[test]
    fn dscp_and_dont_fragment_are_settings_with_defaults() {
        let text = "probes:\n  defaults: {dscp: 46, dont_fragment: true}\n  targets:\n    - {host: a.example, protocol: icmp}\n    - {host: b.example, protocol: icmp, dscp: 0}\n    - {host: c.example, protocol: tcp, port: 443}\n";
        let [a, b, c] = targets(text).try_into().expect("three targets");
        assert_eq!((a.dscp, a.dont_fragment), (46, true));
        assert_eq!((b.dscp, b.dont_fragment), (0, true));
        // TCP takes the DSCP; Don't Fragment is ICMP's only.
        assert_eq!((c.dscp, c.dont_fragment), (46, false));
        assert_eq!(
            error("probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      dscp: 64\n"),
            "p.yml:5:7: probes.targets[0].dscp: 64 is no DSCP (0 to 63; a TOS byte of 184 is DSCP 46)"
        );
        let tcp_df = error("probes:\n  targets:\n    - host: a.example\n      protocol: tcp\n      port: 1\n      dont_fragment: true\n");
        assert!(
            tcp_df.starts_with(
                "p.yml:6:7: probes.targets[0].dont_fragment: applies to icmp targets only"
            ),
            "{tcp_df}"
        );
    }

    #[test]
    fn family_both_makes_two_targets_told_apart_by_a_label() {
        let text = "probes:\n  targets:\n    - {host: a.example, protocol: icmp, family: both}\n";
        let [v4, v6] = targets(text).try_into().expect("two targets");
        assert_eq!((v4.family, v6.family), (Family::Ip4, Family::Ip6));
        assert_eq!(v4.name, v6.name);
        assert_eq!(v4.labels.get("family").map(String::as_str), Some("ip4"));
        assert_eq!(v6.labels.get("family").map(String::as_str), Some("ip6"));
        let literal = error("probes:\n  targets:\n    - host: 192.0.2.1\n      protocol: icmp\n      family: both\n");
        assert!(
            literal.contains("probes.targets[0].family: 192.0.2.1 is an address"),
            "{literal}"
        );
        let label = error("probes:\n  targets:\n    - host: a.example\n      protocol: icmp\n      labels: {family: x}\n");
        assert!(label.contains("reserved"), "{label}");
    }

    #[test]
    fn family_picks_the_preferred_address() {
        let v4: IpAddr = "192.0.2.1".parse().expect("v4");
        let v6: IpAddr = "2001:db8::1".parse().expect("v6");
        assert_eq!(Family::PreferIp4.pick(&[v6, v4]), Some(v4));
        assert_eq!(Family::PreferIp6.pick(&[v4, v6]), Some(v6));
        assert_eq!(Family::PreferIp6.pick(&[v4]), Some(v4));
        assert_eq!(Family::Ip6.pick(&[v4]), None);
        assert_eq!(Family::Ip4.pick(&[]), None);
    }

    #[test]
    fn embedded_default_probes_the_exchange() {
        let config = super::super::load(None).expect("embedded").0;
        let targets = config.probes.targets();
        assert!(targets.len() >= 6, "{targets:?}");
        assert!(targets
            .iter()
            .all(|t| t.labels.get("ix").map(String::as_str) == Some("NIX")));
        assert!(targets.iter().any(|t| t.protocol == Protocol::Tcp));
        assert!(targets.iter().all(|t| t.literal_address().is_none()));
    }
}
