//! Durations written the Prometheus way (`500ms`, `5s`, `1m30s`, `2h`), for flags and the config file.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Units from largest to smallest: a duration names them in this order, each at most once, as
/// Prometheus's own parser demands (`1m30s`, never `30s1m` or `1m1m`).
const UNITS: [(&str, u64); 7] = [
    ("y", 31_536_000_000),
    ("w", 604_800_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus-style duration: one or more `<number><unit>` parts, units `y w d h m s ms`
/// in that order, each at most once.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    let mut previous_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number at {rest:?}"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: missing unit (ms, s, m, h, d, w, y)"
            ));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!("invalid duration {text:?}: unknown unit {unit:?}"));
        };
        if let Some(previous) = previous_unit.filter(|&previous| index <= previous) {
            return Err(format!(
                "invalid duration {text:?}: unit {unit:?} after {:?} (units go from largest to \
                 smallest, each at most once: y w d h m s ms)",
                UNITS[previous].0
            ));
        }
        previous_unit = Some(index);
        let millis_per_unit = UNITS[index].1;
        let millis = number
            .checked_mul(millis_per_unit)
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse`] reads it (`1m30s`, `250ms`).
pub fn format(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// `#[serde(deserialize_with = "duration::deserialize")]` for a `Duration` field.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// A duration that must be greater than zero (intervals, timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositiveDuration(pub Duration);

impl PositiveDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserialize(deserializer)?;
        if value.is_zero() {
            return Err(serde::de::Error::custom("must be greater than 0"));
        }
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations() {
        assert_eq!(
            parse("5"),
            Err("invalid duration \"5\": missing unit (ms, s, m, h, d, w, y)".into())
        );
        assert_eq!(
            parse("5x"),
            Err("invalid duration \"5x\": unknown unit \"x\"".into())
        );
        assert_eq!(
            parse("s"),
            Err("invalid duration \"s\": expected a number at \"s\"".into())
        );
        assert_eq!(parse(""), Err("empty duration".into()));
        assert_eq!(
            parse("1s1m"),
            Err(
                "invalid duration \"1s1m\": unit \"m\" after \"s\" (units go from largest \
                 to smallest, each at most once: y w d h m s ms)"
                    .into()
            )
        );
        assert_eq!(
            parse("1m1m"),
            Err(
                "invalid duration \"1m1m\": unit \"m\" after \"m\" (units go from largest \
                 to smallest, each at most once: y w d h m s ms)"
                    .into()
            )
        );
        assert!(parse("500ms1s").is_err());
        assert_eq!(
            parse("1y2w3d4h5m6s7ms"),
            Ok(Duration::from_millis(
                31_536_000_000
                    + 2 * 604_800_000
                    + 3 * 86_400_000
                    + 4 * 3_600_000
                    + 5 * 60_000
                    + 6_007
            ))
        );
        assert!(parse("99999999999999999999s").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1m30s", "250ms", "2h", "1s"] {
            assert_eq!(format(parse(text).expect("valid")), text);
        }
    }
}
