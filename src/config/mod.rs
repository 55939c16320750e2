//! The configuration file: one typed structure with its defaults, validated before anything serves.
//!
//! Validation happens while deserializing (newtypes such as [`duration::PositiveDuration`] reject
//! bad values in their `Deserialize` impls), so every error carries the line and column of the
//! offending value and the path of the field: `xen_exporter.yml:12:15: probes.targets[2].interval:
//! must be greater than 0`.

pub mod duration;
pub mod limits;
pub mod probes;
pub mod target_files;
pub mod trace;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use probes::ProbesConfig;

/// The configuration compiled into the binary, used when no `--config.file` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.yml");

/// The name under which errors in the embedded default configuration are reported.
const EMBEDDED_NAME: &str = "<embedded default config>";

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Hypervisor collection.
    #[serde(default)]
    pub xen: XenConfig,
    /// Latency probes.
    #[serde(default)]
    pub probes: ProbesConfig,
    /// Internet exchanges by name, with their peering-LAN prefixes: a traced path that has a
    /// hop in one crosses that exchange.
    #[serde(default)]
    pub ixes: trace::Ixes,
}

/// The `xen:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XenConfig {
    /// Read I/O ring statistics (netback debugfs, xenstore ring geometry).
    #[serde(default = "default_true")]
    pub rings: bool,
    /// Overwrite libxenstat's blkback counters with blkback's own sysfs statistics (which are right
    /// on every Xen release and add flush/discard requests).
    #[serde(default = "default_true")]
    pub vbd_sysfs: bool,
    /// VM names from XAPI (XCP-ng, XenServer) instead of xenstore's, which go stale on rename.
    #[serde(default)]
    pub xapi: XapiConfig,
}

impl Default for XenConfig {
    fn default() -> Self {
        Self {
            rings: true,
            vbd_sysfs: true,
            xapi: XapiConfig::default(),
        }
    }
}

/// The `xen.xapi:` section: off unless `names: true`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XapiConfig {
    /// Label domains with their XAPI `name_label`, looked up by VM UUID.
    #[serde(default)]
    pub names: bool,
    /// XAPI's local socket, where root is trusted without a password.
    #[serde(default = "default_xapi_socket")]
    pub socket: PathBuf,
    /// How often the names are read again (renames show within this).
    #[serde(default = "default_xapi_refresh")]
    pub refresh_interval: duration::PositiveDuration,
}

impl Default for XapiConfig {
    fn default() -> Self {
        Self {
            names: false,
            socket: default_xapi_socket(),
            refresh_interval: default_xapi_refresh(),
        }
    }
}

fn default_xapi_socket() -> PathBuf {
    PathBuf::from("/var/lib/xcp/xapi")
}

fn default_xapi_refresh() -> duration::PositiveDuration {
    duration::PositiveDuration(std::time::Duration::from_secs(60))
}

fn default_true() -> bool {
    true
}

/// Where the configuration came from, for logs and the landing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    Embedded,
    File(PathBuf),
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::Embedded => f.write_str(EMBEDDED_NAME),
            ConfigOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A configuration that could not be loaded. Printed once, as is, before exiting with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {field}: {reason}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        field: String,
        reason: String,
    },
    #[error("{file}: larger than {limit} bytes: not a configuration file")]
    TooLarge { file: String, limit: u64 },
    #[error(
        "{file}:{line}:{column}: nested deeper than {max} levels: not a configuration file",
        max = limits::MAX_DEPTH
    )]
    TooDeep {
        file: String,
        line: usize,
        column: usize,
    },
    #[error("{file}: {field}: {reason}")]
    InvalidUnlocated {
        file: String,
        field: String,
        reason: String,
    },
}

/// Loads the configuration from `path`, or the embedded default when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<(Config, ConfigOrigin), ConfigError> {
    match path {
        None => Ok((
            parse(EMBEDDED_DEFAULT, EMBEDDED_NAME)?,
            ConfigOrigin::Embedded,
        )),
        Some(path) => {
            let file = path.display().to_string();
            let text = read_file(path, &file)?;
            Ok((parse(&text, &file)?, ConfigOrigin::File(path.to_owned())))
        }
    }
}

/// Reads a YAML file the exporter is given (this one, the web configuration), refusing one
/// larger than [`limits::MAX_BYTES`] without reading it all.
pub(crate) fn read_file(path: &Path, file: &str) -> Result<String, ConfigError> {
    read_bounded(path)
        .map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?
        .ok_or_else(|| ConfigError::TooLarge {
            file: file.to_owned(),
            limit: limits::MAX_BYTES,
        })
}

/// Refuses YAML text that is too large or too deeply nested, before any parser sees it: the
/// parser's time grows far faster than the text with nesting.
pub(crate) fn check_limits(text: &str, file: &str) -> Result<(), ConfigError> {
    if text.len() as u64 > limits::MAX_BYTES {
        return Err(ConfigError::TooLarge {
            file: file.to_owned(),
            limit: limits::MAX_BYTES,
        });
    }
    limits::check_depth(text).map_err(|deep| ConfigError::TooDeep {
        file: file.to_owned(),
        line: deep.line,
        column: deep.column,
    })
}

/// Reads the file as UTF-8, or `None` if it is larger than [`limits::MAX_BYTES`]: one byte past
/// the limit is read to tell a file at the limit from a larger one, or an endless one (a device).
fn read_bounded(path: &Path) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limits::MAX_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limits::MAX_BYTES {
        return Ok(None);
    }
    String::from_utf8(bytes).map(Some).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Parses and validates configuration text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    check_limits(text, file)?;
    // An empty file (or one with only comments) means "all defaults", as in Prometheus.
    if text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---"
    }) {
        return Ok(Config::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = match error.path().to_string() {
            path if path == "." || path.is_empty() => "(top level)".to_owned(),
            path => path,
        };
        let inner = error.into_inner();
        let reason = clean_message(&inner.to_string());
        match inner.location() {
            Some(location) => {
                let (line, column) =
                    refine_location(text, (location.line(), location.column()), &field);
                ConfigError::Invalid {
                    file: file.to_owned(),
                    line,
                    column,
                    field,
                    reason,
                }
            }
            None => ConfigError::InvalidUnlocated {
                file: file.to_owned(),
                field,
                reason,
            },
        }
    })?;
    config
        .probes
        .validate()
        .map_err(|problem| match locate(text, &problem.near) {
            Some((line, column)) => ConfigError::Invalid {
                file: file.to_owned(),
                line,
                column,
                field: problem.field,
                reason: problem.reason,
            },
            None => ConfigError::InvalidUnlocated {
                file: file.to_owned(),
                field: problem.field,
                reason: problem.reason,
            },
        })?;
    Ok(config)
}

/// A problem found by a check that spans several fields (after deserializing, so without a
/// position): `near` is a snippet of the offending line, used to find its position in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossFieldProblem {
    pub field: String,
    pub reason: String,
    /// Text that occurs on the offending line, e.g. `name: nix` for a duplicate target name.
    pub near: String,
}

/// serde_yaml_ng places a value's own error (a zero interval, a bad host name) at the start of the
/// mapping that holds it; the operator wants the line of the key. Unless the position already is
/// at the key, looks for `key:` (the last segment of `field`) from there on and points at it.
fn refine_location(text: &str, (line, column): (usize, usize), field: &str) -> (usize, usize) {
    if let Some(item) = sequence_item(text, (line, column), field) {
        return item;
    }
    let Some(key) = field.rsplit('.').next().filter(|key| {
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) else {
        return (line, column);
    };
    let at_reported = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|text_line| text_line.get(column.saturating_sub(1)..));
    if at_reported.is_some_and(|rest| rest.starts_with(key)) {
        return (line, column);
    }
    let pattern = format!("{key}:");
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find_map(|(index, text_line)| {
            let from = if index + 1 == line {
                column.saturating_sub(1)
            } else {
                0
            };
            let found = text_line.get(from..)?.find(&pattern)? + from;
            let before = text_line[..found].chars().next_back();
            // `key:` must start a key, not end one (`timeout:` inside `resolve_timeout:`).
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            Some((index + 1, found + 1))
        })
        .unwrap_or((line, column))
}

/// serde_yaml_ng places an error in the N-th item of a block sequence (`- a` lines) at the
/// first item; for a field ending in `[N]`, the position of the N-th item at that indent.
fn sequence_item(
    text: &str,
    (line, column): (usize, usize),
    field: &str,
) -> Option<(usize, usize)> {
    let index: usize = field.strip_suffix(']')?.rsplit_once('[')?.1.parse().ok()?;
    let first = text.lines().nth(line.checked_sub(1)?)?;
    let indent = column.checked_sub(1)?;
    if !first.get(indent..)?.starts_with("- ") {
        return None;
    }
    text.lines()
        .enumerate()
        .skip(line - 1)
        .filter(|(_, text_line)| {
            text_line.len() > indent
                && text_line[..indent].trim().is_empty()
                && text_line[indent..].starts_with("- ")
        })
        .nth(index)
        .map(|(number, _)| (number + 1, column + 2))
}

/// Finds the last line containing `needle` (a duplicate is the later occurrence) and the column
/// where it starts, both 1-based.
fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| line.find(needle).map(|column| (index + 1, column + 1)))
        .last()
}

/// serde_yaml_ng puts its own field path in front of messages and positions (" at line L column
/// C") inside them; we print the position and the path ourselves, once. Rust type names mean
/// nothing to an operator: "expected struct XenConfig" becomes "expected a mapping". Shared by
/// every YAML file the exporter reads (this one and the web configuration).
pub(crate) fn clean_message(message: &str) -> String {
    let mut message = match message.split_once(": ") {
        Some((path, rest)) if is_field_path(path) => rest.to_owned(),
        _ => message.to_owned(),
    };
    while let Some(start) = message.find(" at line ") {
        let after = &message[start + " at line ".len()..];
        let Some(column) = after.find(" column ") else {
            break;
        };
        let digits_end = after[column + " column ".len()..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(after.len(), |end| column + " column ".len() + end);
        message.replace_range(start..start + " at line ".len() + digits_end, "");
    }
    while let Some(start) = message.find("expected struct ") {
        let name_start = start + "expected struct ".len();
        let name_end = message[name_start..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(message.len(), |end| name_start + end);
        message.replace_range(start..name_end, "expected a mapping");
    }
    // serde's name for a map; "mapping" is YAML's, the word an operator's editor uses.
    if message.ends_with("expected a map") {
        message.push_str("ping");
    }
    message.replace("expected a map,", "expected a mapping,")
}

fn is_field_path(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let (config, origin) = load(None).expect("embedded default config must parse");
        assert_eq!(origin, ConfigOrigin::Embedded);
        assert!(config.xen.rings);
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(
            parse("# nothing\n", "x.yml").expect("valid"),
            Config::default()
        );
    }

    #[test]
    fn unknown_field_names_line_column_and_field() {
        let error = parse("xen:\n  ringz: true\n", "x.yml").expect_err("must fail");
        assert_eq!(
            error.to_string(),
            "x.yml:2:3: xen.ringz: unknown field `ringz`, expected one of `rings`, `vbd_sysfs`, `xapi`"
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let error = parse("xen:\n  rings: maybe\n", "x.yml").expect_err("must fail");
        assert_eq!(
            error.to_string(),
            "x.yml:2:10: xen.rings: invalid type: string \"maybe\", expected a boolean"
        );
    }

    #[test]
    fn messages_lose_positions_paths_and_type_names() {
        assert_eq!(
            clean_message("xen.rings: found unexpected end of stream at line 4 column 1, while scanning a quoted scalar"),
            "found unexpected end of stream, while scanning a quoted scalar"
        );
        assert_eq!(
            clean_message(
                "invalid type: integer `3`, expected struct XenConfig at line 2 column 6"
            ),
            "invalid type: integer `3`, expected a mapping"
        );
    }

    #[test]
    fn an_error_in_a_later_sequence_item_points_at_that_item() {
        let error = parse(
            "ixes:\n  NIX:\n    - 10.200.0.0/24\n    - 10.200.0.1/33\n",
            "x.yml",
        )
        .expect_err("must fail");
        assert_eq!(
            error.to_string(),
            "x.yml:4:7: ixes.NIX[1]: \"10.200.0.1/33\": the length must be 0 to 32"
        );
    }

    #[test]
    fn locate_finds_the_last_occurrence() {
        assert_eq!(
            locate("a: 1\n  name: x\n  name: x\n", "name: x"),
            Some((3, 3))
        );
        assert_eq!(locate("a: 1\n", "zzz"), None);
    }
}
