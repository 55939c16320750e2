//! Our writer of metric families, in the Prometheus text format 0.0.4, OpenMetrics 1.0.0 and
//! (through [`crate::scrape::protobuf`]) the Prometheus protobuf format.
//!
//! A host of 1,000 guests is over 120,000 per-domain samples whose label sets all have a known
//! shape. prometheus-client's encoders spent about 470 ns on each (a walk of the label set with
//! an escape check per value, per sample); that was 71 % of a scrape. Here each label set is
//! escaped once per scrape into a [`Labels`] string, and a sample is a few appends to the
//! exposition. A family is written line for line as prometheus-client writes it (the tests below
//! compare the two), so the long-lived registry's families and ours make one exposition.

use std::fmt::Write as _;

use crate::scrape::protobuf::{self as pb, field, metric_type};

/// The exposition formats we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4 (what promtool and older scrapers parse).
    Text,
    /// Prometheus protobuf (length-delimited `io.prometheus.client.MetricFamily`): the only
    /// format that carries native histograms.
    Protobuf,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::Protobuf => crate::scrape::protobuf::CONTENT_TYPE,
        }
    }
}

/// What a family counts. Decides its name suffix (`_total`, `_info`) and `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// `<name>_info{...} 1`: facts carried as labels.
    Info,
}

/// Name, help and unit of one family. `name` excludes the unit and the `_total`/`_info` suffix,
/// which are appended as the conventions (and prometheus-client) do.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// One sentence without its final period (it is appended, as for the registry's families).
    pub help: &'static str,
    pub unit: Option<&'static str>,
}

impl Spec {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            unit: None,
        }
    }

    pub const fn seconds(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            unit: Some("seconds"),
        }
    }

    pub const fn bytes(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            unit: Some("bytes"),
        }
    }
}

/// A label set, escaped once and reused by every sample that carries it:
/// `domain="web",device="xvda"` (and, once a protobuf scrape asked, its `LabelPair` fields).
#[derive(Debug, Clone, Default)]
pub struct Labels(String, std::sync::OnceLock<Box<[u8]>>);

/// Equal when the labels are: whether the protobuf form was made yet does not count.
impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Labels {}

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of this set with `name="value"` appended, allocated once at its final size.
    /// `name` must be a valid label name (ours are constants); `value` may be anything and is
    /// escaped.
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut labels = String::with_capacity(self.0.len() + name.len() + value.len() + 8);
        labels.push_str(&self.0);
        if !labels.is_empty() {
            labels.push(',');
        }
        push_pair(&mut labels, name, value);
        Self(labels, std::sync::OnceLock::new())
    }

    /// The set's `LabelPair` fields in protobuf, encoded by the first protobuf sample that uses
    /// it: a set is shared by every family of its device (some thirty), so it is parsed once.
    fn protobuf(&self) -> &[u8] {
        self.1.get_or_init(|| {
            let mut encoded = Vec::with_capacity(self.0.len() + 8);
            pb::for_each_label(&self.0, |name, value| {
                pb::put_label(&mut encoded, name, value)
            });
            encoded.into_boxed_slice()
        })
    }
}

/// `name="value"`, the value escaped.
fn push_pair(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    push_escaped(out, value, true);
    out.push('"');
}

/// Appends `text` with `\`, newline and (for label values and OpenMetrics help) `"` escaped.
fn push_escaped(out: &mut String, text: &str, quote: bool) {
    let special = |byte: u8| byte == b'\\' || byte == b'\n' || (quote && byte == b'"');
    if !text.bytes().any(special) {
        out.push_str(text);
        return;
    }
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            _ => out.push(character),
        }
    }
}

/// A sample value: integers as integers, everything else as the shortest float that reads back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Integer(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Value::Integer(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Integer(u64::from(value))
    }
}

impl From<usize> for Value {
    fn from(value: usize) -> Self {
        Value::Integer(value as u64)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

/// A flag: 1 for true, 0 for false.
impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Integer(u64::from(value))
    }
}

fn push_value(out: &mut String, value: Value) {
    match value {
        Value::Integer(value) => out.push_str(itoa::Buffer::new().format(value)),
        Value::Float(value) if value.is_finite() => {
            out.push_str(dtoa::Buffer::new().format_finite(value))
        }
        Value::Float(value) if value.is_nan() => out.push_str("NaN"),
        Value::Float(value) if value > 0.0 => out.push_str("+Inf"),
        Value::Float(_) => out.push_str("-Inf"),
    }
}

/// Where a writer appends.
enum Output<'a> {
    Text(&'a mut String),
    /// The delimited stream, and two buffers reused for every family and sample: a message's
    /// length goes before it, so it is built aside and copied once. The family being written
    /// stays in `family` until the next one starts or the exposition ends (empty if it had no
    /// samples); its unit field goes last, in field order.
    Protobuf {
        out: &'a mut Vec<u8>,
        family: Vec<u8>,
        unit: Option<&'static str>,
        metric: Vec<u8>,
    },
}

/// Writes families into one exposition.
pub struct Writer<'a> {
    output: Output<'a>,
    format: Format,
}

impl<'a> Writer<'a> {
    /// Appends text to `out`, which may already hold other families of the same exposition.
    /// `format` is a text format; [`Format::Protobuf`] writes the 0.0.4 text here (protobuf is
    /// bytes: see [`Writer::protobuf`]).
    pub fn new(out: &'a mut String, format: Format) -> Self {
        let format = match format {
            Format::Protobuf => Format::Text,
            text => text,
        };
        Self {
            output: Output::Text(out),
            format,
        }
    }

    /// Appends length-delimited `MetricFamily` messages to `out`.
    pub fn protobuf(out: &'a mut Vec<u8>) -> Self {
        Self {
            output: Output::Protobuf {
                out,
                family: Vec::with_capacity(64 * 1024),
                unit: None,
                metric: Vec::with_capacity(256),
            },
            format: Format::Protobuf,
        }
    }

    /// Starts a family. Its descriptor is written with its first sample: a family without
    /// samples leaves nothing in the exposition.
    pub fn family(&mut self, spec: Spec, kind: Kind) -> Family<'_> {
        let mut sample_name = String::with_capacity(spec.name.len() + 16);
        sample_name.push_str(spec.name);
        if let Some(unit) = spec.unit {
            sample_name.push('_');
            sample_name.push_str(unit);
        }
        match kind {
            Kind::Counter => sample_name.push_str("_total"),
            Kind::Info => sample_name.push_str("_info"),
            Kind::Gauge => {}
        }
        self.end_family();
        let sink = match &mut self.output {
            Output::Text(out) => Sink::Text(out),
            Output::Protobuf {
                family,
                unit,
                metric,
                ..
            } => {
                *unit = spec.unit;
                Sink::Protobuf { family, metric }
            }
        };
        Family {
            sink,
            format: self.format,
            spec,
            kind,
            sample_name,
            described: false,
        }
    }

    /// Ends the exposition: `# EOF` for OpenMetrics, the last family for protobuf.
    pub fn finish(mut self) {
        self.end_family();
        if let (Format::OpenMetrics, Output::Text(out)) = (self.format, self.output) {
            out.push_str("# EOF\n");
        }
    }

    /// Protobuf: appends the family written last, if it had samples, to the stream.
    fn end_family(&mut self) {
        if let Output::Protobuf {
            out, family, unit, ..
        } = &mut self.output
        {
            if !family.is_empty() {
                if let Some(unit) = unit.take() {
                    pb::put_string(family, field::FAMILY_UNIT, unit);
                }
                pb::put_delimited(out, family);
                family.clear();
            }
        }
    }
}

/// Where one family is written.
enum Sink<'w> {
    Text(&'w mut String),
    /// The family's message, built in the writer's buffer.
    Protobuf {
        family: &'w mut Vec<u8>,
        metric: &'w mut Vec<u8>,
    },
}

/// One family being written.
pub struct Family<'w> {
    sink: Sink<'w>,
    format: Format,
    spec: Spec,
    kind: Kind,
    /// `name[_unit][_total|_info]`.
    sample_name: String,
    described: bool,
}

impl Family<'_> {
    /// One sample of the family.
    pub fn sample(&mut self, labels: &Labels, value: impl Into<Value>) {
        self.sample_with(labels, &[], value);
    }

    /// One sample whose labels are `labels` followed by `extra` (values escaped here): for a
    /// label that varies within one device, such as a VCPU or a queue.
    pub fn sample_with(
        &mut self,
        labels: &Labels,
        extra: &[(&str, &str)],
        value: impl Into<Value>,
    ) {
        self.describe();
        let value = value.into();
        let out = match &mut self.sink {
            Sink::Text(out) => &mut **out,
            Sink::Protobuf { family, metric, .. } => {
                metric.clear();
                metric.extend_from_slice(labels.protobuf());
                for (name, value) in extra {
                    pb::put_label(metric, name, value);
                }
                let value = match value {
                    Value::Integer(value) => value as f64,
                    Value::Float(value) => value,
                };
                let value_field = match self.kind {
                    Kind::Counter => field::METRIC_COUNTER,
                    Kind::Gauge | Kind::Info => field::METRIC_GAUGE,
                };
                pb::put_value_message(metric, value_field, value);
                pb::put_bytes(family, field::FAMILY_METRIC, metric);
                return;
            }
        };
        out.push_str(&self.sample_name);
        if !labels.0.is_empty() || !extra.is_empty() {
            out.push('{');
            out.push_str(&labels.0);
            for (index, (name, value)) in extra.iter().enumerate() {
                if index > 0 || !labels.0.is_empty() {
                    out.push(',');
                }
                push_pair(out, name, value);
            }
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
        out.push('\n');
    }

    /// One sample of an info family (its value is always 1).
    pub fn info(&mut self, labels: &Labels, extra: &[(&str, &str)]) {
        self.sample_with(labels, extra, 1u64);
    }

    /// `# HELP`, `# TYPE` and, in OpenMetrics, `# UNIT`; once, before the first sample. In
    /// protobuf the family's name, help and type (its unit follows its metrics, in field order).
    fn describe(&mut self) {
        if self.described {
            return;
        }
        self.described = true;
        let out = match &mut self.sink {
            Sink::Text(out) => &mut **out,
            Sink::Protobuf { family, .. } => {
                // Named as prometheus-client's protobuf encoder names it: with `_total` and
                // `_info`; an info family is a gauge (Prometheus has no info type).
                pb::put_string(family, field::FAMILY_NAME, &self.sample_name);
                let mut help = String::with_capacity(self.spec.help.len() + 1);
                help.push_str(self.spec.help);
                help.push('.');
                pb::put_string(family, field::FAMILY_HELP, &help);
                let kind = match self.kind {
                    Kind::Counter => metric_type::COUNTER,
                    Kind::Gauge | Kind::Info => metric_type::GAUGE,
                };
                pb::put_uint(family, field::FAMILY_TYPE, kind);
                return;
            }
        };
        // OpenMetrics names the family without `_total`/`_info`; the text format names its
        // samples, and has no info type.
        let (name, kind) = match self.format {
            Format::OpenMetrics => {
                let name = match self.spec.unit {
                    Some(unit) => format!("{}_{unit}", self.spec.name),
                    None => self.spec.name.to_owned(),
                };
                let kind = match self.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Info => "info",
                };
                (name, kind)
            }
            Format::Text | Format::Protobuf => {
                let kind = match self.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge | Kind::Info => "gauge",
                };
                (self.sample_name.clone(), kind)
            }
        };
        out.push_str("# HELP ");
        out.push_str(&name);
        out.push(' ');
        push_escaped(out, self.spec.help, self.format == Format::OpenMetrics);
        out.push_str(".\n# TYPE ");
        out.push_str(&name);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
        if let (Format::OpenMetrics, Some(unit)) = (self.format, self.spec.unit) {
            let _ = writeln!(out, "# UNIT {name} {unit}");
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::MetricFamily;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::{Registry, Unit};

    use super::*;

    const FORMATS: [Format; 2] = [Format::Text, Format::OpenMetrics];

    /// Domain names as an operator may really choose them: quotes, backslashes, a newline,
    /// UTF-8.
    const NAMES: [&str; 4] = ["web-1", "say \"hi\"", "C:\\vm\nnext", "sørlandet"];

    /// The same families, written by prometheus-client.
    #[derive(Debug)]
    struct Reference;

    impl Collector for Reference {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let mut family = encoder.encode_descriptor(
                "demo_read",
                "Bytes read.",
                Some(&Unit::Bytes),
                MetricType::Counter,
            )?;
            for name in NAMES {
                let labels = [("domain", name), ("device", "xvda")];
                ConstCounter::new(1_048_576u64).encode(family.encode_family(&labels)?)?;
            }
            let mut family = encoder.encode_descriptor(
                "demo_cpu",
                "CPU time.",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            for (vcpu, seconds) in [(0, 61.990065786), (1, 0.5)] {
                let labels = ([("domain", NAMES[1])], [("vcpu", vcpu)]);
                ConstCounter::new(seconds).encode(family.encode_family(&labels)?)?;
            }
            let family =
                encoder.encode_descriptor("demo_up", "Whether up.", None, MetricType::Gauge)?;
            ConstGauge::new(1i64).encode(family)?;
            let mut family = encoder.encode_descriptor("demo", "Facts.", None, MetricType::Info)?;
            for name in NAMES {
                family.encode_info(&[("domain", name), ("uuid", "5e1a\"7")])?;
            }
            let family =
                encoder.encode_descriptor("demo_down", "Whether down.", None, MetricType::Gauge)?;
            ConstGauge::new(0i64).encode(family)?;
            Ok(())
        }
    }

    fn ours(format: Format) -> String {
        let mut out = String::new();
        write_demo(Writer::new(&mut out, format));
        out
    }

    fn write_demo(mut writer: Writer<'_>) {
        let labels = |name| Labels::new().with("domain", name);
        let mut family = writer.family(Spec::bytes("demo_read", "Bytes read"), Kind::Counter);
        for name in NAMES {
            family.sample(&labels(name).with("device", "xvda"), 1_048_576u64);
        }
        let mut family = writer.family(Spec::seconds("demo_cpu", "CPU time"), Kind::Counter);
        for (vcpu, seconds) in [("0", 61.990065786), ("1", 0.5)] {
            family.sample_with(&labels(NAMES[1]), &[("vcpu", vcpu)], seconds);
        }
        writer
            .family(Spec::new("demo_up", "Whether up"), Kind::Gauge)
            .sample(&Labels::new(), true);
        let mut family = writer.family(Spec::new("demo", "Facts"), Kind::Info);
        for name in NAMES {
            family.info(&labels(name), &[("uuid", "5e1a\"7")]);
        }
        // A zero value: prost omits the field but keeps the (empty) message.
        writer
            .family(Spec::new("demo_down", "Whether down"), Kind::Gauge)
            .sample(&Labels::new(), false);
        writer.finish();
    }

    fn reference(format: Format) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Reference));
        let mut out = String::new();
        match format {
            Format::Text | Format::Protobuf => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        }
        .expect("encode");
        out
    }

    /// Line for line what prometheus-client writes, escapes included, in both formats.
    #[test]
    fn writes_what_prometheus_client_writes() {
        for format in FORMATS {
            let expected = reference(format);
            assert!(expected.contains(r#"domain="C:\\vm\nnext""#), "{expected}");
            assert_eq!(ours(format), expected, "{format:?}");
        }
    }

    /// Byte for byte what prometheus-client's Prometheus protobuf encoder (prost) writes.
    #[test]
    fn writes_the_protobuf_prometheus_client_writes() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Reference));
        let expected = prometheus_client::encoding::prometheus_protobuf::encode_to_vec(&registry)
            .expect("encode");
        let mut ours = Vec::new();
        write_demo(Writer::protobuf(&mut ours));
        assert_eq!(ours, expected);
        // And it decodes to the families and values written.
        let mut body = ours.as_slice();
        let mut families = Vec::new();
        while !body.is_empty() {
            families.push(
                <MetricFamily as prost::Message>::decode_length_delimited(&mut body)
                    .expect("decode"),
            );
        }
        let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "demo_read_bytes_total",
                "demo_cpu_seconds_total",
                "demo_up",
                "demo_info",
                "demo_down"
            ]
        );
        let label = &families[0].metric[3].label[0];
        assert_eq!(
            (label.name.as_str(), label.value.as_str()),
            ("domain", NAMES[3])
        );
        assert_eq!(families[1].metric[0].label[0].value, "say \"hi\"");
        assert_eq!(families[1].unit, "seconds");
        let counter = families[1].metric[0].counter.as_ref().expect("counter");
        assert_eq!(counter.value, 61.990065786);
        assert_eq!(
            families[4].metric[0].gauge.as_ref().map(|g| g.value),
            Some(0.0)
        );
    }

    #[test]
    fn a_family_without_samples_leaves_nothing() {
        for format in FORMATS {
            let mut out = String::new();
            let mut writer = Writer::new(&mut out, format);
            writer.family(Spec::bytes("empty", "Nothing"), Kind::Counter);
            writer.finish();
            let expected = if format == Format::OpenMetrics {
                "# EOF\n"
            } else {
                ""
            };
            assert_eq!(out, expected);
        }
        let mut out = Vec::new();
        let mut writer = Writer::protobuf(&mut out);
        writer.family(Spec::bytes("empty", "Nothing"), Kind::Counter);
        writer.family(Spec::new("empty_too", "Nothing"), Kind::Gauge);
        writer.finish();
        assert!(out.is_empty());
    }

    #[test]
    fn values_are_integers_or_floats_that_read_back() {
        let cases = [
            (Value::from(0u64), "0"),
            (Value::from(u64::MAX), "18446744073709551615"),
            (Value::from(false), "0"),
            (Value::from(0.25), "0.25"),
            (Value::from(1e21), "1e21"),
            (Value::from(f64::INFINITY), "+Inf"),
            (Value::from(f64::NEG_INFINITY), "-Inf"),
            (Value::from(f64::NAN), "NaN"),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            push_value(&mut out, value);
            assert_eq!(out, expected, "{value:?}");
            if let Value::Float(float) = value {
                let read: f64 = out.replace("Inf", "inf").parse().expect("parse");
                assert!(read == float || (read.is_nan() && float.is_nan()), "{out}");
            }
        }
    }

    /// Help text is escaped as each format asks: OpenMetrics escapes quotes, 0.0.4 does not.
    #[test]
    fn help_is_escaped_per_format() {
        let spec = Spec::new("demo", "A \"quoted\" \\ help\nline");
        let help_line = |format| {
            let mut out = String::new();
            Writer::new(&mut out, format)
                .family(spec, Kind::Gauge)
                .sample(&Labels::new(), 1u64);
            out.lines().next().map(str::to_owned).unwrap_or_default()
        };
        assert_eq!(
            help_line(Format::Text),
            r#"# HELP demo A "quoted" \\ help\nline."#
        );
        assert_eq!(
            help_line(Format::OpenMetrics),
            r#"# HELP demo A \"quoted\" \\ help\nline."#
        );
    }
}
