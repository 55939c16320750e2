//! Probe targets from files in Prometheus file_sd format (`probes.target_files`): a YAML or
//! JSON list of `{targets: [...], labels: {...}}` groups, turned into [`Target`]s with the
//! same checks and defaults as the config file's own targets.
//!
//! A target is `host`, `host:port` or `[v6 address]:port`. Labels starting with `__` carry the
//! settings (`__protocol`, `__port`, `__name`, `__interval`, `__timeout`, `__family`,
//! `__payload_size`, `__dscp`, `__dont_fragment`, `__source_address`, `__interface`,
//! `__resolve_interval`); every other label is a user label of the group's targets.
//! `__protocol` defaults to `icmp`, and `probes.defaults` applies as to any target.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::probes::{split_families, ProbesConfig, Target, TargetConfig};

/// One file_sd group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The settings labels and the target key each one sets.
const SETTINGS: &[(&str, &str)] = &[
    ("__protocol", "protocol"),
    ("__port", "port"),
    ("__name", "name"),
    ("__interval", "interval"),
    ("__timeout", "timeout"),
    ("__family", "family"),
    ("__payload_size", "payload_size"),
    ("__dscp", "dscp"),
    ("__dont_fragment", "dont_fragment"),
    ("__source_address", "source_address"),
    ("__interface", "interface"),
    ("__resolve_interval", "resolve_interval"),
];

/// Settings whose value is a number or a boolean, not a string.
const NUMERIC: &[&str] = &["port", "payload_size", "dscp"];

/// A target file that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct TargetFileError {
    pub file: String,
    /// 1-based: the line of the offending target, or where the parser stopped; 0 for the
    /// whole file (it cannot be read, a name defined elsewhere).
    pub line: usize,
    pub reason: String,
}

/// Parses one target file's `text`; `probes` gives the defaults.
pub fn parse(
    path: &Path,
    text: &str,
    probes: &ProbesConfig,
) -> Result<Vec<Target>, TargetFileError> {
    let file = path.display().to_string();
    let fail = |line: usize, reason: String| TargetFileError {
        file: file.clone(),
        line,
        reason,
    };
    let groups: Vec<Group> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(text).map_err(|error| {
            let line = error.location().map_or(1, |location| location.line());
            fail(line, error.to_string())
        })?
    };
    let mut configs = Vec::new();
    for group in &groups {
        for entry in &group.targets {
            let line = line_of(text, entry);
            let config = target_config(entry, &group.labels)
                .map_err(|reason| fail(line, format!("target {entry:?}: {reason}")))?;
            let one = ProbesConfig {
                defaults: probes.defaults.clone(),
                targets: vec![config],
                ..ProbesConfig::default()
            };
            one.validate().map_err(|problem| {
                let key = problem.field.rsplit('.').next().unwrap_or_default();
                fail(line, format!("target {entry:?}: {key}: {}", problem.reason))
            })?;
            configs.push((line, entry, one));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut targets = Vec::new();
    for (line, entry, one) in configs {
        for target in one.targets() {
            if !seen.insert(identity(&target)) {
                return Err(fail(
                    line,
                    format!(
                        "target {entry:?}: another {} target of this file is already named {:?}",
                        target.protocol, target.name
                    ),
                ));
            }
            targets.push(target);
        }
    }
    Ok(split_families(targets))
}

/// What two targets may not share: they would write the same series.
pub fn identity(target: &Target) -> (String, super::probes::Protocol, Option<String>) {
    (
        target.name.clone(),
        target.protocol,
        target.labels.get("family").cloned(),
    )
}

/// A group's entry and labels as the config file would spell the target, checked by the same
/// deserializer (host names, durations, label names and values).
fn target_config(entry: &str, labels: &BTreeMap<String, String>) -> Result<TargetConfig, String> {
    let (host, port) = split_host_port(entry)?;
    let mut mapping = Mapping::new();
    let mut user = Mapping::new();
    mapping.insert("host".into(), host.into());
    mapping.insert("protocol".into(), "icmp".into());
    for (name, value) in labels {
        if !name.starts_with("__") {
            user.insert(name.as_str().into(), value.as_str().into());
            continue;
        }
        if name.starts_with("__meta_") {
            // Service-discovery metadata: not ours, and harmless.
            continue;
        }
        let Some((_, key)) = SETTINGS.iter().find(|(label, _)| label == name) else {
            let known: Vec<&str> = SETTINGS.iter().map(|(label, _)| *label).collect();
            return Err(format!(
                "unknown setting label {name:?}; known: {}",
                known.join(", ")
            ));
        };
        let value = if NUMERIC.contains(key) {
            Value::from(
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{name}: {value:?} is not a whole number"))?,
            )
        } else if *key == "dont_fragment" {
            Value::from(
                value
                    .parse::<bool>()
                    .map_err(|_| format!("{name}: {value:?} is neither true nor false"))?,
            )
        } else {
            Value::from(value.as_str())
        };
        mapping.insert((*key).into(), value);
    }
    if let Some(port) = port {
        if let Some(other) = mapping.get("port").and_then(Value::as_u64) {
            if other != u64::from(port) {
                return Err(format!("port {port} in the target, but __port is {other}"));
            }
        }
        mapping.insert("port".into(), u64::from(port).into());
    }
    if !user.is_empty() {
        mapping.insert("labels".into(), Value::Mapping(user));
    }
    serde_path_to_error::deserialize(Value::Mapping(mapping)).map_err(|error| {
        let key = error.path().to_string();
        let label = SETTINGS
            .iter()
            .find(|(_, setting)| *setting == key)
            .map_or(key.as_str(), |(label, _)| label);
        format!("{label}: {}", error.into_inner())
    })
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
fn split_host_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let port = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("{text:?} is not a port"))
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, rest) = rest
            .split_once(']')
            .ok_or_else(|| "a '[' without its ']'".to_owned())?;
        return match rest.strip_prefix(':') {
            Some(number) => Ok((host, Some(port(number)?))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(format!("{rest:?} after the address")),
        };
    }
    if entry.parse::<std::net::IpAddr>().is_ok() {
        return Ok((entry, None));
    }
    match entry.split_once(':') {
        Some((host, number)) => Ok((host, Some(port(number)?))),
        None => Ok((entry, None)),
    }
}

/// The 1-based line where `entry` first appears in `text` (as a string), else 1.
fn line_of(text: &str, entry: &str) -> usize {
    text.lines()
        .position(|line| line.contains(entry))
        .map_or(1, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::probes::{Family, Protocol};

    fn parse_text(text: &str) -> Result<Vec<Target>, TargetFileError> {
        let probes = ProbesConfig::default();
        parse(Path::new("t.yml"), text, &probes)
    }

    #[test]
    fn yaml_and_json_groups_give_targets_with_their_settings_and_labels() {
        let yaml = "- targets: [198.19.0.2, 'web.example:443']\n  labels: {__protocol: tcp, __interval: 2s, org: Example}\n- targets: ['fd00::2', dual.example]\n  labels: {__family: both, __dscp: '46'}\n";
        let err = parse_text(yaml).expect_err("198.19.0.2 has no port but tcp needs one");
        assert_eq!(err.line, 1, "{err}");
        assert!(
            err.reason.contains("port: a tcp target needs a port"),
            "{err}"
        );
        let yaml = "- targets: ['198.19.0.2:80', 'web.example:443']\n  labels: {__protocol: tcp, __interval: 2s, org: Example}\n- targets: ['fd00::2', dual.example]\n  labels: {__dscp: '46', __dont_fragment: 'true'}\n";
        let targets = parse_text(yaml).expect("valid");
        assert_eq!(targets.len(), 4);
        assert_eq!(targets[0].name, "198.19.0.2:80");
        assert_eq!(targets[1].port, Some(443));
        assert_eq!(targets[1].interval, std::time::Duration::from_secs(2));
        assert_eq!(
            targets[1].labels.get("org").map(String::as_str),
            Some("Example")
        );
        assert_eq!((targets[2].protocol, targets[2].dscp), (Protocol::Icmp, 46));
        assert!(targets[3].dont_fragment);
        let json = r#"[{"targets": ["dual.example"], "labels": {"__family": "both"}}]"#;
        let both = parse_text(json).expect("json");
        assert_eq!(
            both.iter().map(|t| t.family).collect::<Vec<_>>(),
            [Family::Ip4, Family::Ip6]
        );
        assert_eq!(parse_text("").expect("empty"), Vec::new());
    }

    #[test]
    fn bad_files_name_the_line_and_the_reason() {
        let cases = [
            (
                "- targets: [a.example]\n  labels: {__protcol: tcp}\n",
                1,
                "unknown setting label \"__protcol\"",
            ),
            (
                "- targets: [a.example]\n- targets: [b.example, 'c.example:x']\n",
                2,
                "\"x\" is not a port",
            ),
            (
                "- targets: [a.example]\n  labels: {__interval: 0s}\n",
                1,
                "interval",
            ),
            (
                "- targets: [a.example]\n  labls: {}\n",
                2,
                "unknown field `labls`",
            ),
            (
                "- targets: [a.example]\n- targets: [a.example]\n",
                1,
                "already named \"a.example\"",
            ),
            (
                "- targets: [a.example]\n  labels: {target: x}\n",
                1,
                "reserved",
            ),
        ];
        for (text, line, reason) in cases {
            let error = parse_text(text).expect_err(text);
            assert_eq!(error.line, line, "{error}");
            assert!(error.reason.contains(reason), "{error}");
            assert!(
                error.to_string().starts_with(&format!("t.yml:{line}: ")),
                "{error}"
            );
        }
    }
}
