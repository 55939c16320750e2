//! Writing snapshot values as constant metric families: one descriptor, then every sample.
//!
//! A family without samples is left out entirely, so a host without VBDs shows no empty VBD
//! families and a destroyed domain leaves nothing behind.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Name, help and unit of one family. `name` excludes the unit and the `_total`/`_info` suffix
/// (prometheus-client appends them).
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<&'static Unit>,
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
            unit: Some(&Unit::Seconds),
        }
    }

    /// The help text as a sentence, like the registry's own families (it appends the period).
    fn sentence(&self) -> String {
        format!("{}.", self.help)
    }

    pub const fn bytes(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            unit: Some(&Unit::Bytes),
        }
    }
}

/// A gauge family with one sample per row.
pub fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    spec: Spec,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family =
        encoder.encode_descriptor(spec.name, &spec.sentence(), spec.unit, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter family with one sample per row; `V` is `u64` for counts, `f64` for seconds.
pub fn counters<L: EncodeLabelSet, V>(
    encoder: &mut DescriptorEncoder,
    spec: Spec,
    rows: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result
where
    ConstCounter<V>: EncodeMetric,
{
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family =
        encoder.encode_descriptor(spec.name, &spec.sentence(), spec.unit, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// An info family (`<name>_info{...} 1`) with one sample per label set.
pub fn infos<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    spec: Spec,
    rows: impl IntoIterator<Item = L>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family =
        encoder.encode_descriptor(spec.name, &spec.sentence(), None, MetricType::Info)?;
    for labels in rows {
        family.encode_info(&labels)?;
    }
    Ok(())
}

/// 1.0 for true, 0.0 for false.
pub fn flag(value: bool) -> f64 {
    if value {
        1.0
    } else {
        0.0
    }
}
