//! The probe families (prefix `latency_`), and each target's handles on its own series.
//!
//! Families are registered once in the long-lived registry. A target's counters and histogram
//! are looked up once ([`TargetSeries::new`]) and updated through cheap clones afterwards, so
//! the probe path never takes a family's lock. Each histogram keeps both classic buckets
//! (`probes.rtt_buckets`, what the text formats show) and native exponential ones (served when
//! the scraper asks for the Prometheus protobuf format).

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{
    exponential_buckets, Histogram, NativeHistogramConfig,
};
use prometheus_client::registry::{Registry, Unit};

use super::jitter::Jitter;
use crate::config::probes::Target;
use crate::lock::{MutexUnpoisoned, RwLockUnpoisoned};

/// A series' labels: `target`, `protocol`, then the user's labels sorted by name.
pub type Labels = Vec<(String, String)>;

/// Why a probe failed: the values of `latency_errors_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No reply (ICMP) or no handshake (TCP) within the timeout.
    Timeout,
    /// TCP: the port answered with a reset.
    Refused,
    /// The network or host is unreachable (ICMP error or no route).
    Unreachable,
    /// A Don't Fragment probe larger than the path MTU: refused by the local send (EMSGSIZE)
    /// or by a router (ICMP fragmentation needed, ICMPv6 packet too big).
    Mtu,
    /// The host name has no address (yet).
    Resolve,
    /// The ICMP socket could not be opened (permissions).
    Socket,
    /// Anything else (the log says what).
    Other,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::Timeout,
        Reason::Refused,
        Reason::Unreachable,
        Reason::Mtu,
        Reason::Resolve,
        Reason::Socket,
        Reason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Refused => "refused",
            Reason::Unreachable => "unreachable",
            Reason::Mtu => "mtu",
            Reason::Resolve => "resolve",
            Reason::Socket => "socket",
            Reason::Other => "other",
        }
    }
}

/// Resolution of the native histograms: schema 4 has 16 buckets per doubling, each 4.4 % wide,
/// so a quantile read from them is within about 2.2 % of the truth (an RTT of 10 ms: ±0.2 ms).
pub const NATIVE_SCHEMA: i8 = 4;

/// At most this many native buckets per series (as client_golang's common setting): a series
/// whose RTTs spread wider halves its resolution instead of growing without bound.
const NATIVE_MAX_BUCKETS: usize = 160;

/// Makes histograms with the configured classic buckets and native buckets beside them.
#[derive(Debug, Clone)]
pub struct Buckets(Arc<Vec<f64>>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new_classic_and_native(
            self.0.iter().copied(),
            NativeHistogramConfig::with_schema(NATIVE_SCHEMA).max_buckets(NATIVE_MAX_BUCKETS),
        )
    }
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every probe family.
#[derive(Debug, Clone)]
pub struct ProbeMetrics {
    requests: Family<Labels, Counter>,
    responses: Family<Labels, Counter>,
    duplicates: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    rtt: Family<Labels, Histogram, Buckets>,
    jitter: Family<Labels, FloatGauge>,
    ttl: Family<Labels, Gauge>,
    target_info: Family<Labels, Gauge>,
    dns_lookups: Family<Labels, Counter>,
    dns_failures: Family<Labels, Counter>,
    dns_duration: Family<Labels, Histogram, Buckets>,
}

impl ProbeMetrics {
    /// Registers the families; `rtt_buckets` are the RTT histogram's upper bounds (seconds).
    pub fn register(registry: &mut Registry, rtt_buckets: Vec<f64>) -> ProbeMetrics {
        let metrics = ProbeMetrics {
            requests: Family::default(),
            responses: Family::default(),
            duplicates: Family::default(),
            errors: Family::default(),
            rtt: Family::new_with_constructor(Buckets(Arc::new(rtt_buckets))),
            jitter: Family::default(),
            ttl: Family::default(),
            target_info: Family::default(),
            dns_lookups: Family::default(),
            dns_failures: Family::default(),
            // 0.5 ms (a local cache) to 8 s (a resolver timing out and retrying).
            dns_duration: Family::new_with_constructor(Buckets(Arc::new(
                exponential_buckets(0.0005, 2.0, 15).collect(),
            ))),
        };
        let prefix = registry.sub_registry_with_prefix("latency");
        prefix.register(
            "requests",
            "Probes sent (ICMP echo requests, TCP connection attempts), including those that failed before leaving",
            metrics.requests.clone(),
        );
        prefix.register(
            "responses",
            "Probes answered in time (echo reply, TCP handshake completed)",
            metrics.responses.clone(),
        );
        prefix.register(
            "duplicates",
            "Extra echo replies to a request already answered",
            metrics.duplicates.clone(),
        );
        prefix.register(
            "errors",
            "Probes that got no answer, by reason: timeout, refused, unreachable, mtu, resolve, socket, other",
            metrics.errors.clone(),
        );
        prefix.register_with_unit(
            "rtt",
            "Round-trip time of answered probes (echo request to reply; SYN to SYN-ACK)",
            Unit::Seconds,
            metrics.rtt.clone(),
        );
        prefix.register_with_unit(
            "jitter",
            "RFC 3550 interarrival jitter of the RTT: J += (|RTT(n) - RTT(n-1)| - J) / 16",
            Unit::Seconds,
            metrics.jitter.clone(),
        );
        prefix.register(
            "reply_ttl",
            "TTL (IPv4) or hop limit (IPv6) of the last echo reply",
            metrics.ttl.clone(),
        );
        prefix.register(
            "target_info",
            "The address a target is probed at now (follows DNS changes)",
            metrics.target_info.clone(),
        );
        prefix.register(
            "dns_lookups",
            "Host name lookups of a target",
            metrics.dns_lookups.clone(),
        );
        prefix.register(
            "dns_failures",
            "Host name lookups that failed or returned no address of the wanted family",
            metrics.dns_failures.clone(),
        );
        prefix.register_with_unit(
            "dns_lookup_duration",
            "Time a host name lookup took",
            Unit::Seconds,
            metrics.dns_duration.clone(),
        );
        metrics
    }
}

/// The labels of every series of `target`.
pub fn labels(target: &Target) -> Labels {
    let mut labels = vec![
        ("target".to_owned(), target.name.clone()),
        ("protocol".to_owned(), target.protocol.as_str().to_owned()),
    ];
    labels.extend(
        target
            .labels
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    labels
}

fn with(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut labels = labels.clone();
    labels.push((name.to_owned(), value.to_owned()));
    labels
}

/// One target's series. Shared by its scheduler task, its resolver and the ICMP receive thread.
#[derive(Debug)]
pub struct TargetSeries {
    labels: Labels,
    metrics: ProbeMetrics,
    requests: Counter,
    responses: Counter,
    duplicates: Counter,
    rtt: Histogram,
    jitter: Mutex<Jitter>,
    /// The jitter and TTL gauges, created by the first value (a TCP target never has a TTL).
    jitter_gauge: OnceLock<FloatGauge>,
    ttl_gauge: OnceLock<Gauge>,
    address: Mutex<Option<String>>,
    /// `true` once the target left the configuration: replies still in flight must not bring
    /// its series back. Every update that may create a series holds the read side from its
    /// check to its last `get_or_create`, and [`remove`](Self::remove) the write side, so a
    /// series is either created before the removal (and removed with the rest) or not at all.
    removed: RwLock<bool>,
}

impl TargetSeries {
    /// Creates (or takes over) the series of `labels`: requests, responses, duplicates and the
    /// RTT histogram appear at once at 0; errors, jitter, TTL and DNS when they first happen.
    pub fn new(metrics: &ProbeMetrics, labels: Labels) -> TargetSeries {
        TargetSeries {
            requests: metrics.requests.get_or_create(&labels).clone(),
            responses: metrics.responses.get_or_create(&labels).clone(),
            duplicates: metrics.duplicates.get_or_create(&labels).clone(),
            rtt: metrics.rtt.get_or_create(&labels).clone(),
            jitter: Mutex::new(Jitter::default()),
            jitter_gauge: OnceLock::new(),
            ttl_gauge: OnceLock::new(),
            address: Mutex::new(None),
            removed: RwLock::new(false),
            metrics: metrics.clone(),
            labels,
        }
    }

    /// A probe is due and counts as sent, whatever happens to it next.
    pub fn sent(&self) {
        self.requests.inc();
    }

    /// A probe was answered after `rtt`; `ttl` is the reply's TTL / hop limit when known.
    pub fn answered(&self, rtt: Duration, ttl: Option<u8>) {
        let Some(_live) = self.live() else {
            return;
        };
        let seconds = rtt.as_secs_f64();
        self.responses.inc();
        self.rtt.observe(seconds);
        let jitter = self.jitter.lock_unpoisoned().update(seconds);
        if let Some(jitter) = jitter {
            self.jitter_gauge
                .get_or_init(|| self.metrics.jitter.get_or_create(&self.labels).clone())
                .set(jitter);
        }
        if let Some(ttl) = ttl {
            self.ttl_gauge
                .get_or_init(|| self.metrics.ttl.get_or_create(&self.labels).clone())
                .set(i64::from(ttl));
        }
    }

    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    pub fn failed(&self, reason: Reason) {
        let Some(_live) = self.live() else {
            return;
        };
        self.metrics
            .errors
            .get_or_create(&with(&self.labels, "reason", reason.as_str()))
            .inc();
    }

    /// One host name lookup: how long it took and whether it gave an address.
    pub fn looked_up(&self, duration: Duration, ok: bool) {
        let Some(_live) = self.live() else {
            return;
        };
        self.metrics.dns_lookups.get_or_create(&self.labels).inc();
        self.metrics
            .dns_duration
            .get_or_create(&self.labels)
            .observe(duration.as_secs_f64());
        // Created at 0 by the first lookup, so a failure ratio has a denominator and numerator.
        let failures = self.metrics.dns_failures.get_or_create(&self.labels);
        if !ok {
            failures.inc();
        }
    }

    /// The address probed now: replaces the `latency_target_info` series of the old one.
    pub fn set_address(&self, address: Option<IpAddr>) {
        let Some(_live) = self.live() else {
            return;
        };
        self.replace_address(address);
    }

    /// Replaces the `latency_target_info` series; the caller holds [`removed`](Self::removed).
    fn replace_address(&self, address: Option<IpAddr>) {
        let new = address.map(|address| address.to_string());
        let mut current = self.address.lock_unpoisoned();
        if *current == new {
            return;
        }
        if let Some(old) = current.take() {
            self.metrics
                .target_info
                .remove(&with(&self.labels, "address", &old));
        }
        if let Some(new) = &new {
            self.metrics
                .target_info
                .get_or_create(&with(&self.labels, "address", new))
                .set(1);
        }
        *current = new;
    }

    /// The read side of `removed` while the target is still configured, `None` once removed.
    fn live(&self) -> Option<RwLockReadGuard<'_, bool>> {
        let removed = self.removed.read_unpoisoned();
        (!*removed).then_some(removed)
    }

    /// Removes every series of this target (it left the configuration).
    pub fn remove(&self) {
        // Held to the end: an update that checked before this waits to finish first, one that
        // comes after sees `true`.
        let mut removed = self.removed.write_unpoisoned();
        if *removed {
            return;
        }
        *removed = true;
        self.replace_address(None);
        let labels = &self.labels;
        let metrics = &self.metrics;
        metrics.requests.remove(labels);
        metrics.responses.remove(labels);
        metrics.duplicates.remove(labels);
        metrics.rtt.remove(labels);
        metrics.jitter.remove(labels);
        metrics.ttl.remove(labels);
        metrics.dns_lookups.remove(labels);
        metrics.dns_failures.remove(labels);
        metrics.dns_duration.remove(labels);
        for reason in Reason::ALL {
            metrics
                .errors
                .remove(&with(labels, "reason", reason.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use prometheus_client::encoding::text::encode;

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).expect("encode");
        text
    }

    #[test]
    fn series_appear_update_and_disappear() {
        let mut registry = Registry::default();
        let metrics = ProbeMetrics::register(&mut registry, vec![0.01, 0.1]);
        let labels = vec![
            ("target".to_owned(), "a".to_owned()),
            ("protocol".to_owned(), "icmp".to_owned()),
            ("ix".to_owned(), "NIX".to_owned()),
        ];
        let series = TargetSeries::new(&metrics, labels);
        series.sent();
        series.sent();
        series.answered(Duration::from_millis(25), Some(61));
        series.answered(Duration::from_millis(35), Some(61));
        series.failed(Reason::Timeout);
        series.set_address(Some("10.0.0.1".parse().expect("ip")));
        series.set_address(Some("10.0.0.2".parse().expect("ip")));
        let text = exposition(&registry);
        let want = "target=\"a\",protocol=\"icmp\",ix=\"NIX\"";
        for line in [
            format!("latency_requests_total{{{want}}} 2"),
            format!("latency_responses_total{{{want}}} 2"),
            format!("latency_errors_total{{{want},reason=\"timeout\"}} 1"),
            format!("latency_rtt_seconds_bucket{{le=\"0.1\",{want}}} 2"),
            format!("latency_reply_ttl{{{want}}} 61"),
            format!("latency_jitter_seconds{{{want}}} 0.000625"),
            format!("latency_target_info{{{want},address=\"10.0.0.2\"}} 1"),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("10.0.0.1"), "{text}");
        series.remove();
        let text = exposition(&registry);
        assert!(!text.contains("target=\"a\""), "{text}");
    }

    /// Probes record from several threads (scheduler, resolver, receive thread) while the
    /// supervisor removes the target: whatever they were doing, no series may survive.
    #[test]
    fn no_series_survives_remove_while_probes_record() {
        let addresses: [IpAddr; 2] = [
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        ];
        for round in 0..100 {
            let mut registry = Registry::default();
            let metrics = ProbeMetrics::register(&mut registry, vec![0.01]);
            let series = Arc::new(TargetSeries::new(
                &metrics,
                vec![("target".to_owned(), "a".to_owned())],
            ));
            let stop = Arc::new(AtomicBool::new(false));
            // More threads than cores, so some are preempted between any two steps.
            let recorders: Vec<_> = (0..6)
                .map(|thread| {
                    let (series, stop) = (series.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let mut n = thread;
                        while !stop.load(Ordering::Relaxed) {
                            n += 1;
                            series.failed(Reason::ALL[n % Reason::ALL.len()]);
                            series.looked_up(Duration::from_millis(1), n % 2 == 0);
                            series.set_address(Some(addresses[n % 2]));
                            series.answered(Duration::from_millis(1), Some(64));
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_micros(300));
            series.remove();
            // The recorders go on after the removal, as replies in flight do.
            std::thread::sleep(Duration::from_millis(1));
            stop.store(true, Ordering::Relaxed);
            for recorder in recorders {
                recorder.join().expect("recorder thread");
            }
            let text = exposition(&registry);
            assert!(
                !text.contains("target=\"a\""),
                "round {round}: a series came back after remove:\n{text}"
            );
        }
    }
}
