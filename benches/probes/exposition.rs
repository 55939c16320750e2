//! Reads the Prometheus text format (0.0.4) that every prober here serves, sums series over
//! their labels, and reads RTT error quantiles off a histogram's buckets.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Every sample of `text`; comment lines and lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, rest) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"} rest` into the labels and what follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (index, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break index,
                other => value.push(other),
            }
        };
        labels.push((key.trim().to_owned(), value));
        text = &rest[end + 1..];
    }
}

/// The sum of every series of `name` whose labels pass `keep`.
pub fn sum(samples: &[Sample], name: &str, keep: &dyn Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|sample| sample.name == name && keep(sample))
        .map(|sample| sample.value)
        .sum()
}

/// A histogram summed over its series: cumulative count per upper bound (seconds), ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

impl Buckets {
    /// The `<name>_bucket` series that pass `keep`, summed per `le`.
    pub fn of(samples: &[Sample], name: &str, keep: &dyn Fn(&Sample) -> bool) -> Buckets {
        let bucket = format!("{name}_bucket");
        let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for sample in samples
            .iter()
            .filter(|sample| sample.name == bucket && keep(sample))
        {
            let Some(bound) = sample.label("le").and_then(parse_bound) else {
                continue;
            };
            // Non-negative floats order like their bit patterns.
            let entry = by_bound.entry(bound.to_bits()).or_insert((bound, 0.0));
            entry.1 += sample.value;
        }
        Buckets(by_bound.into_values().collect())
    }

    /// `self − earlier`, bound by bound (the counts of a measuring window).
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|&(bound, count)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(b, _)| *b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (bound, count - before)
                })
                .collect(),
        )
    }

    /// Observations in all (the `+Inf` bucket).
    pub fn total(&self) -> f64 {
        self.0.last().map_or(0.0, |(_, count)| *count)
    }

    /// Observations at or below `bound`.
    pub fn at_or_below(&self, bound: f64) -> f64 {
        self.0
            .iter()
            .take_while(|(b, _)| *b <= bound)
            .last()
            .map_or(0.0, |(_, count)| *count)
    }

    /// The bucket holding the `q` quantile: `(lower bound or None for the first, upper bound)`.
    pub fn quantile_bucket(&self, q: f64) -> Option<(Option<f64>, f64)> {
        let total = self.total();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = None;
        for &(bound, count) in &self.0 {
            if count >= rank {
                return Some((lower, bound));
            }
            lower = Some(bound);
        }
        None
    }
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

/// `(lower, upper]` of a quantile bucket as an error against `injected` seconds, in ms.
pub fn error_interval(bucket: Option<(Option<f64>, f64)>, injected: f64) -> String {
    let Some((lower, upper)) = bucket else {
        return "–".into();
    };
    let ms = |bound: f64| (bound - injected) * 1e3;
    match (lower, upper.is_finite()) {
        (None, _) => format!("≤ {:+.3} ms", ms(upper)),
        (Some(lower), false) => format!("> {:+.3} ms", ms(lower)),
        (Some(lower), true) => format!("({:+.3}, {:+.3}] ms", ms(lower), ms(upper)),
    }
}
