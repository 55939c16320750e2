//! The Prometheus protobuf exposition (`io.prometheus.client.MetricFamily`, length-delimited) of
//! our per-scrape families, written directly on the wire format.
//!
//! The long-lived registry's families (with the native histograms) come from prometheus-client's
//! `prometheus_protobuf` encoder; ours are counters, gauges and info series of known shape, for
//! which building prost messages per sample would cost an allocation per label. The bytes are
//! what prost writes for the same messages (proto3: zero scalars and empty strings omitted,
//! fields in number order), which the tests check against prometheus-client's encoder.
//!
//! Field numbers are those of `metrics.proto` (prometheus/client_model):
//! `MetricFamily{name=1, help=2, type=3, metric=4, unit=5}`,
//! `Metric{label=1, gauge=2, counter=3}`, `LabelPair{name=1, value=2}`, `Gauge{value=1}`,
//! `Counter{value=1}`.

/// `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Wire type of varints (integers, enums).
const VARINT: u8 = 0;
/// Wire type of doubles.
const FIXED64: u8 = 1;
/// Wire type of strings, bytes and embedded messages.
const LENGTH_DELIMITED: u8 = 2;

pub mod field {
    pub const FAMILY_NAME: u32 = 1;
    pub const FAMILY_HELP: u32 = 2;
    pub const FAMILY_TYPE: u32 = 3;
    pub const FAMILY_METRIC: u32 = 4;
    pub const FAMILY_UNIT: u32 = 5;
    pub const METRIC_LABEL: u32 = 1;
    pub const METRIC_GAUGE: u32 = 2;
    pub const METRIC_COUNTER: u32 = 3;
    pub const LABEL_NAME: u32 = 1;
    pub const LABEL_VALUE: u32 = 2;
    /// `Gauge.value` and `Counter.value`.
    pub const VALUE: u32 = 1;
}

/// `io.prometheus.client.MetricType` values.
pub mod metric_type {
    pub const COUNTER: u64 = 0;
    pub const GAUGE: u64 = 1;
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// A string field; empty strings are omitted, as proto3 (and prost) do.
pub fn put_string(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_bytes(out, field, value.as_bytes());
    }
}

/// A length-delimited field: an embedded message or a string, always written.
pub fn put_bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    put_key(out, field, LENGTH_DELIMITED);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// A varint field; zero is omitted.
pub fn put_uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        put_key(out, field, VARINT);
        put_varint(out, value);
    }
}

/// A double field; zero is omitted (prost compares with `0.0`, so `-0.0` is too).
pub fn put_double(out: &mut Vec<u8>, field: u32, value: f64) {
    if value != 0.0 {
        put_key(out, field, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// An embedded `Gauge` or `Counter`: a message whose only field is the double `value`
/// (9 bytes, or none for 0).
pub fn put_value_message(out: &mut Vec<u8>, field: u32, value: f64) {
    put_key(out, field, LENGTH_DELIMITED);
    put_varint(out, if value != 0.0 { 9 } else { 0 });
    put_double(out, self::field::VALUE, value);
}

/// Appends `message` to `out` with its length in front: one message of a delimited stream.
pub fn put_delimited(out: &mut Vec<u8>, message: &[u8]) {
    put_varint(out, message.len() as u64);
    out.extend_from_slice(message);
}

/// One `LabelPair` field of a `Metric`.
pub fn put_label(out: &mut Vec<u8>, name: &str, value: &str) {
    let mut length = 0;
    if !name.is_empty() {
        length += 1 + varint_length(name.len() as u64) + name.len();
    }
    if !value.is_empty() {
        length += 1 + varint_length(value.len() as u64) + value.len();
    }
    put_key(out, field::METRIC_LABEL, LENGTH_DELIMITED);
    put_varint(out, length as u64);
    put_string(out, field::LABEL_NAME, name);
    put_string(out, field::LABEL_VALUE, value);
}

fn varint_length(value: u64) -> usize {
    // 7 bits per byte, at least one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// The `name="value"` pairs of a label set written by the text writer, values unescaped:
/// `\\`, `\n` and `\"` are the only escapes it writes. Calls `each(name, value)` in order; a
/// value without escapes (nearly all) is passed as it stands, without a copy.
pub fn for_each_label(text: &str, mut each: impl FnMut(&str, &str)) {
    let mut rest = text;
    let mut unescaped = String::new();
    while let Some((name, after)) = rest.split_once("=\"") {
        let name = name.strip_prefix(',').unwrap_or(name);
        let Some(special) = after.find(['"', '\\']) else {
            // Unterminated (never written by our writer): the rest is the value.
            each(name, after);
            return;
        };
        if after.as_bytes()[special] == b'"' {
            each(name, &after[..special]);
            rest = &after[special + 1..];
            continue;
        }
        unescaped.clear();
        let mut characters = after.char_indices();
        let mut end = after.len();
        while let Some((index, character)) = characters.next() {
            match character {
                '"' => {
                    end = index + 1;
                    break;
                }
                '\\' => match characters.next() {
                    Some((_, 'n')) => unescaped.push('\n'),
                    Some((_, escaped)) => unescaped.push(escaped),
                    None => {}
                },
                _ => unescaped.push(character),
            }
        }
        each(name, &unescaped);
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        for (value, bytes) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_length(value), bytes.len(), "{value}");
        }
    }

    /// Known bytes: `Metric{label: [LabelPair{name: "a", value: "b"}], gauge: Gauge{value: 1}}`.
    #[test]
    fn a_gauge_metric_has_the_known_bytes() {
        let mut metric = Vec::new();
        put_label(&mut metric, "a", "b");
        put_value_message(&mut metric, field::METRIC_GAUGE, 1.0);
        assert_eq!(
            metric,
            [
                0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // label
                0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // gauge 1.0
            ]
        );
    }

    #[test]
    fn zero_and_empty_fields_are_omitted() {
        let mut out = Vec::new();
        put_double(&mut out, 1, 0.0);
        put_uint(&mut out, 3, 0);
        put_string(&mut out, 2, "");
        assert!(out.is_empty());
        put_uint(&mut out, 3, 1);
        assert_eq!(out, [0x18, 0x01]);
        out.clear();
        put_value_message(&mut out, field::METRIC_COUNTER, 0.0);
        assert_eq!(out, [0x1a, 0x00]);
    }

    #[test]
    fn labels_are_read_back_unescaped() {
        let mut pairs = Vec::new();
        for_each_label(
            r#"domain="say \"hi\"",device="C:\\vm\nnext",x="",y="sø""#,
            |n, v| pairs.push((n.to_owned(), v.to_owned())),
        );
        let expected = [
            ("domain", "say \"hi\""),
            ("device", "C:\\vm\nnext"),
            ("x", ""),
            ("y", "sø"),
        ];
        assert_eq!(pairs.len(), expected.len());
        for ((name, value), (expected_name, expected_value)) in pairs.iter().zip(expected) {
            assert_eq!(
                (name.as_str(), value.as_str()),
                (expected_name, expected_value)
            );
        }
        let mut none = 0;
        for_each_label("", |_, _| none += 1);
        assert_eq!(none, 0);
    }
}
