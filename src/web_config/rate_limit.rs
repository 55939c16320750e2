//! `rate_limit` (exporter-toolkit's request rate limiter): one token bucket for the whole server,
//! `burst` tokens deep and refilled with one token per `interval`. A request that finds the bucket
//! empty is answered 429 before anything else is looked at, as in exporter-toolkit (Go's
//! `rate.NewLimiter(rate.Every(interval), burst)` and `Allow`).

use crate::lock::MutexUnpoisoned;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limiter's settings, as read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// One token comes back per interval (never zero: zero disables the limiter).
    pub interval: Duration,
    /// How many requests may arrive at once; 0 refuses every request, as in Go.
    pub burst: u32,
}

/// The token bucket.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// A full bucket (Go's limiter starts with `burst` tokens).
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(limit.burst),
                refilled: now,
            }),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token if there is one at `now`.
    pub fn admit(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock_unpoisoned();
        // Fractions of a token accrue, so a 1 s interval admits exactly one request per second
        // however the requests fall.
        let earned = now.saturating_duration_since(bucket.refilled).as_secs_f64()
            / self.limit.interval.as_secs_f64();
        bucket.tokens = (bucket.tokens + earned).min(f64::from(self.limit.burst));
        bucket.refilled = bucket.refilled.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(interval_ms: u64, burst: u32) -> (RateLimiter, Instant) {
        let start = Instant::now();
        let limit = RateLimit {
            interval: Duration::from_millis(interval_ms),
            burst,
        };
        (RateLimiter::new(limit, start), start)
    }

    #[test]
    fn a_full_bucket_admits_the_burst_then_one_request_per_interval() {
        let (limiter, start) = limiter(100, 3);
        let admitted = (0..5).filter(|_| limiter.admit(start)).count();
        assert_eq!(admitted, 3);
        assert!(!limiter.admit(start + Duration::from_millis(99)));
        assert!(limiter.admit(start + Duration::from_millis(100)));
        assert!(!limiter.admit(start + Duration::from_millis(100)));
        // Half intervals add up to a token.
        assert!(!limiter.admit(start + Duration::from_millis(150)));
        assert!(limiter.admit(start + Duration::from_millis(200)));
    }

    #[test]
    fn an_idle_bucket_refills_to_the_burst_and_no_further() {
        let (limiter, start) = limiter(10, 2);
        assert!(limiter.admit(start) && limiter.admit(start) && !limiter.admit(start));
        let later = start + Duration::from_secs(60);
        let admitted = (0..10).filter(|_| limiter.admit(later)).count();
        assert_eq!(admitted, 2);
    }

    #[test]
    fn burst_zero_refuses_everything() {
        let (limiter, start) = limiter(1, 0);
        assert!(!limiter.admit(start));
        assert!(!limiter.admit(start + Duration::from_secs(5)));
    }

    #[test]
    fn a_clock_read_before_the_last_refill_earns_nothing() {
        let (limiter, start) = limiter(100, 1);
        let later = start + Duration::from_millis(500);
        assert!(limiter.admit(later));
        // Another thread's earlier reading of the clock arrives late: no token, no panic.
        assert!(!limiter.admit(start));
        assert!(limiter.admit(later + Duration::from_millis(100)));
    }
}
