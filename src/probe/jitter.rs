//! RFC 3550 interarrival jitter over a target's RTTs. Pure arithmetic.
//!
//! RFC 3550 §6.4.1 defines J += (|D(i-1,i)| − J) / 16, where D is the change in transit time
//! between consecutive packets. For a round trip the transit time is the RTT, so D is the
//! difference of consecutive RTTs; lost probes are simply not part of the sequence.

/// The running estimate for one target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Jitter {
    last_rtt: Option<f64>,
    value: f64,
}

impl Jitter {
    /// Adds one RTT (seconds); returns the estimate once there is a difference to estimate from.
    pub fn update(&mut self, rtt_seconds: f64) -> Option<f64> {
        let previous = self.last_rtt.replace(rtt_seconds)?;
        let difference = (rtt_seconds - previous).abs();
        self.value += (difference - self.value) / 16.0;
        Some(self.value)
    }

    /// The current estimate (0 before the second RTT).
    #[cfg(test)]
    pub fn value(&self) -> f64 {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_rtt_gives_no_estimate_and_constant_rtts_give_zero() {
        let mut jitter = Jitter::default();
        assert_eq!(jitter.update(0.025), None);
        for _ in 0..10 {
            assert_eq!(jitter.update(0.025), Some(0.0));
        }
    }

    #[test]
    fn one_step_moves_the_estimate_by_a_sixteenth() {
        let mut jitter = Jitter::default();
        jitter.update(0.010);
        assert_eq!(jitter.update(0.026), Some(0.001));
        // |D| = 0.016 again: J = 0.001 + (0.016 - 0.001) / 16.
        let expected = 0.001 + 0.015 / 16.0;
        assert!((jitter.update(0.010).expect("estimate") - expected).abs() < 1e-12);
    }

    #[test]
    fn alternating_rtts_converge_to_their_difference() {
        let mut jitter = Jitter::default();
        for i in 0..1000 {
            jitter.update(if i % 2 == 0 { 0.020 } else { 0.030 });
        }
        assert!((jitter.value() - 0.010).abs() < 1e-9, "{}", jitter.value());
    }
}
