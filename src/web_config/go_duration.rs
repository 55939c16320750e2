//! Durations as exporter-toolkit's YAML library reads them into Go's `time.Duration`: a string in
//! `time.ParseDuration`'s syntax (`1s`, `1.5s`, `1m30s`, `250ms`, `500us`) or a bare integer of
//! nanoseconds. Only `rate_limit.interval` is such a field; the main configuration file uses
//! Prometheus-style durations ([`crate::config::duration`]).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// Parses Go's duration syntax: optionally signed, a sequence of decimal numbers each with a unit
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); `0` alone needs no unit. Negative durations are
/// refused: no field of ours has a use for them.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let unsigned = match text.strip_prefix('-') {
        Some(_) => return Err(invalid("negative")),
        None => text.strip_prefix('+').unwrap_or(text),
    };
    if unsigned == "0" {
        return Ok(Duration::ZERO);
    }
    if unsigned.is_empty() {
        return Err(invalid("empty"));
    }
    let mut nanos = 0f64;
    let mut rest = unsigned;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if !number.bytes().any(|byte| byte.is_ascii_digit()) || number.matches('.').count() > 1 {
            return Err(invalid("expected a number"));
        }
        let value: f64 = number.parse().map_err(|_| invalid("expected a number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(invalid("missing unit (ns, us, ms, s, m, h)")),
            other => return Err(invalid(&format!("unknown unit {other:?}"))),
        };
        rest = &rest[unit_len..];
        nanos += value * per_unit;
    }
    if nanos >= u64::MAX as f64 {
        return Err(invalid("too large"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// `#[serde(default, deserialize_with = "go_duration::deserialize_option")]`.
pub fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<GoDuration>::deserialize(deserializer).map(|value| value.map(|GoDuration(d)| d))
}

/// A visitor rather than an untagged enum: the YAML error then points at the value itself.
struct GoDuration(Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GoDurationVisitor)
    }
}

struct GoDurationVisitor;

impl Visitor<'_> for GoDurationVisitor {
    type Value = GoDuration;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a Go duration such as 1s, 1.5s or 250ms, or integer nanoseconds")
    }

    fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<GoDuration, E> {
        Ok(GoDuration(Duration::from_nanos(nanos)))
    }

    fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<GoDuration, E> {
        u64::try_from(nanos)
            .map(|nanos| GoDuration(Duration::from_nanos(nanos)))
            .map_err(|_| E::custom(format!("invalid duration {nanos}: negative")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<GoDuration, E> {
        parse(text).map(GoDuration).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax_is_read_as_go_reads_it() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("+1s", Duration::from_secs(1)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("250ms", Duration::from_millis(250)),
            ("500us", Duration::from_micros(500)),
            ("500µs", Duration::from_micros(500)),
            ("7ns", Duration::from_nanos(7)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        let cases = [
            ("", "empty"),
            ("1", "missing unit (ns, us, ms, s, m, h)"),
            ("1d", "unknown unit \"d\""),
            ("s", "expected a number"),
            ("1..5s", "expected a number"),
            ("-1s", "negative"),
        ];
        for (text, why) in cases {
            assert_eq!(
                parse(text),
                Err(format!("invalid duration {text:?}: {why}")),
                "{text}"
            );
        }
    }

    #[test]
    fn a_bare_integer_is_nanoseconds_as_in_go_yaml() {
        #[derive(Deserialize)]
        struct Field {
            #[serde(default, deserialize_with = "deserialize_option")]
            interval: Option<Duration>,
        }
        let read = |text: &str| {
            serde_yaml_ng::from_str::<Field>(text)
                .map(|field| field.interval)
                .map_err(|error| error.to_string())
        };
        assert_eq!(
            read("interval: 1000000"),
            Ok(Some(Duration::from_millis(1)))
        );
        assert_eq!(read("interval: 2s"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(read("{}"), Ok(None));
        assert!(read("interval: 2x").is_err_and(|error| error.contains("unknown unit")));
    }
}
