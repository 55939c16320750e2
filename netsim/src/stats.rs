//! Counters of what the responder saw and did, and the timer's own lateness distribution.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Lateness is recorded at 1 µs resolution up to this bound; later sends land in `overflow`.
const LATENESS_BUCKETS: usize = 20_000;

/// Live counters shared by the reader and timer threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub echo_requests: AtomicU64,
    pub syns: AtomicU64,
    pub answered: AtomicU64,
    pub dropped: AtomicU64,
    pub silent: AtomicU64,
    pub resets: AtomicU64,
    pub ignored: AtomicU64,
    pub write_errors: AtomicU64,
    pub time_exceeded: AtomicU64,
    pub port_unreachable: AtomicU64,
    pub lateness: Mutex<Lateness>,
    pub by_address: Mutex<HashMap<IpAddr, AddressCounts>>,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request (echo or SYN) for `address`, and whether it was dropped by the loss.
    pub fn add_request(&self, address: IpAddr, traffic_class: u8, dropped: bool) {
        let mut by_address = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let counts = by_address.entry(address).or_default();
        counts.requests += 1;
        counts.traffic_class = traffic_class;
        counts.dropped += u64::from(dropped);
    }

    pub fn by_address(&self) -> HashMap<IpAddr, AddressCounts> {
        self.by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn answers_later_than(&self, bound: Duration) -> u64 {
        self.lateness
            .lock()
            .map(|lateness| lateness.count_over(bound))
            .unwrap_or_default()
    }

    pub fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let timer = self
            .lateness
            .lock()
            .map(|lateness| lateness.summary())
            .unwrap_or_default();
        Stats {
            received: load(&self.received),
            echo_requests: load(&self.echo_requests),
            syns: load(&self.syns),
            answered: load(&self.answered),
            dropped: load(&self.dropped),
            silent: load(&self.silent),
            resets: load(&self.resets),
            ignored: load(&self.ignored),
            write_errors: load(&self.write_errors),
            time_exceeded: load(&self.time_exceeded),
            port_unreachable: load(&self.port_unreachable),
            timer,
        }
    }
}

/// A histogram of how late the timer thread sent each answer (send time minus due time).
#[derive(Debug)]
pub(crate) struct Lateness {
    buckets: Vec<u64>,
    overflow: u64,
    count: u64,
    max: Duration,
}

impl Default for Lateness {
    fn default() -> Lateness {
        Lateness {
            buckets: vec![0; LATENESS_BUCKETS],
            overflow: 0,
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Lateness {
    pub fn record(&mut self, late: Duration) {
        self.count += 1;
        self.max = self.max.max(late);
        match usize::try_from(late.as_micros()) {
            Ok(micros) if micros < LATENESS_BUCKETS => self.buckets[micros] += 1,
            _ => self.overflow += 1,
        }
    }

    /// Recorded lateness strictly above `bound` (to the 1 µs resolution; every send later than
    /// the histogram's 20 ms range counts as above any bound).
    fn count_over(&self, bound: Duration) -> u64 {
        let first = usize::try_from(bound.as_micros())
            .map_or(LATENESS_BUCKETS, |micros| micros.saturating_add(1));
        let within: u64 = self.buckets.iter().skip(first).sum();
        within + self.overflow
    }

    fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (micros, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(micros as u64);
            }
        }
        self.max
    }

    fn summary(&self) -> TimerPrecision {
        let min = self
            .buckets
            .iter()
            .position(|&n| n > 0)
            .map_or(self.max, |micros| Duration::from_micros(micros as u64));
        TimerPrecision {
            samples: self.count,
            min,
            median: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }
}

/// Requests seen for one simulated target address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressCounts {
    /// Echo requests and SYNs (including SYNs to silent ports).
    pub requests: u64,
    /// Of those, dropped by the configured loss.
    pub dropped: u64,
    /// The TOS byte / traffic class of the last one (DSCP × 4 + ECN).
    pub traffic_class: u8,
}

/// How late delayed answers left, relative to their due time (1 µs resolution).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerPrecision {
    /// Answers sent by the timer thread.
    pub samples: u64,
    /// Smallest lateness.
    pub min: Duration,
    /// Median lateness.
    pub median: Duration,
    /// 99th percentile lateness.
    pub p99: Duration,
    /// Largest lateness.
    pub max: Duration,
}

/// What the responder has seen and done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// IP packets read from the device.
    pub received: u64,
    /// ICMP / ICMPv6 echo requests for simulated targets.
    pub echo_requests: u64,
    /// TCP connection requests (SYN) for simulated targets.
    pub syns: u64,
    /// Answers written to the device (echo replies, SYN-ACKs, RSTs).
    pub answered: u64,
    /// Requests dropped by the configured loss.
    pub dropped: u64,
    /// SYNs to silent ports, never answered.
    pub silent: u64,
    /// RSTs sent: for closed ports (delayed like any answer) and for FIN or data (at once).
    pub resets: u64,
    /// Packets not for a simulated target or not understood (router solicitations, MLD, ACKs).
    pub ignored: u64,
    /// Answers the device refused.
    pub write_errors: u64,
    /// ICMP time exceeded from the simulated routers (requests whose TTL ran out before the
    /// target).
    pub time_exceeded: u64,
    /// ICMP port unreachable answering UDP datagrams.
    pub port_unreachable: u64,
    /// The timer's lateness.
    pub timer: TimerPrecision,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received={} echo_requests={} syns={} answered={} dropped={} silent={} resets={} ignored={} write_errors={} timer_samples={} timer_late_min_us={} timer_late_median_us={} timer_late_p99_us={} timer_late_max_us={} time_exceeded={} port_unreachable={}",
            self.received,
            self.echo_requests,
            self.syns,
            self.answered,
            self.dropped,
            self.silent,
            self.resets,
            self.ignored,
            self.write_errors,
            self.timer.samples,
            self.timer.min.as_micros(),
            self.timer.median.as_micros(),
            self.timer.p99.as_micros(),
            self.timer.max.as_micros(),
            self.time_exceeded,
            self.port_unreachable,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_quantiles_come_from_the_histogram() {
        let mut lateness = Lateness::default();
        for micros in 1..=100 {
            lateness.record(Duration::from_micros(micros));
        }
        lateness.record(Duration::from_millis(50));
        let summary = lateness.summary();
        assert_eq!(summary.samples, 101);
        assert_eq!(summary.min, Duration::from_micros(1));
        assert_eq!(summary.median, Duration::from_micros(51));
        assert_eq!(summary.p99, Duration::from_micros(100));
        assert_eq!(summary.max, Duration::from_millis(50));
        assert_eq!(lateness.count_over(Duration::from_micros(90)), 11);
        assert_eq!(lateness.count_over(Duration::from_micros(100)), 1);
        assert_eq!(lateness.count_over(Duration::from_secs(1)), 1);
    }
}
