//! What happens to each request: delay, jitter (uniform or normal), loss, per destination
//! address, drawn from a seeded generator so a run can be repeated exactly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// How jitter is distributed around the configured delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JitterDist {
    /// Uniform in `[delay - jitter, delay + jitter]` (standard deviation jitter/sqrt 3).
    #[default]
    Uniform,
    /// Normal with mean `delay` and standard deviation `jitter`.
    Normal,
}

/// The impairment of one path.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    /// One-way added delay between receiving the request and sending the answer.
    pub delay: Duration,
    /// Jitter: half-width (uniform) or standard deviation (normal).
    pub jitter: Duration,
    /// Probability in `[0, 1]` that a request is dropped unanswered.
    pub loss: f64,
}

impl Impairment {
    /// A fixed delay without jitter or loss.
    pub fn delay(delay: Duration) -> Impairment {
        Impairment {
            delay,
            ..Impairment::default()
        }
    }

    /// Draws the fate of one request: `None` if lost, else the delay before answering
    /// (never negative: a sample below zero answers at once).
    pub fn sample(&self, dist: JitterDist, rng: &mut Rng) -> Option<Duration> {
        // Draw loss first and always, so the loss sequence does not depend on the jitter.
        if rng.next_f64() < self.loss {
            return None;
        }
        if self.jitter.is_zero() {
            return Some(self.delay);
        }
        let offset = match dist {
            JitterDist::Uniform => (rng.next_f64() * 2.0 - 1.0) * self.jitter.as_secs_f64(),
            JitterDist::Normal => rng.next_normal() * self.jitter.as_secs_f64(),
        };
        Some(Duration::from_secs_f64(
            (self.delay.as_secs_f64() + offset).max(0.0),
        ))
    }
}

/// A per-address override, written `ADDR:DELAY_MS:JITTER_MS:LOSS` (IPv6 addresses keep their
/// colons: the last three fields are split off from the right).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetSpec {
    /// The simulated target's address.
    pub address: IpAddr,
    /// Its impairment.
    pub impairment: Impairment,
}

/// A malformed `--target`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "target {input:?}: {reason} (expected ADDR:DELAY_MS:JITTER_MS:LOSS, e.g. 198.19.0.3:50:0:0.1)"
)]
pub struct TargetSpecError {
    /// The text given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl FromStr for TargetSpec {
    type Err = TargetSpecError;

    fn from_str(input: &str) -> Result<TargetSpec, TargetSpecError> {
        let error = |reason: String| TargetSpecError {
            input: input.to_owned(),
            reason,
        };
        let mut fields = input.rsplitn(4, ':');
        let loss = fields.next().unwrap_or_default();
        let jitter = fields
            .next()
            .ok_or_else(|| error("too few fields".into()))?;
        let delay = fields
            .next()
            .ok_or_else(|| error("too few fields".into()))?;
        let address = fields
            .next()
            .ok_or_else(|| error("too few fields".into()))?;
        let address = address.trim_start_matches('[').trim_end_matches(']');
        let address: IpAddr = address
            .parse()
            .map_err(|_| error(format!("{address:?} is not an IP address")))?;
        let impairment = Impairment {
            delay: parse_millis(delay).map_err(|reason| error(format!("delay: {reason}")))?,
            jitter: parse_millis(jitter).map_err(|reason| error(format!("jitter: {reason}")))?,
            loss: parse_probability(loss).map_err(|reason| error(format!("loss: {reason}")))?,
        };
        Ok(TargetSpec {
            address,
            impairment,
        })
    }
}

/// Parses a non-negative number of milliseconds (fractions allowed) into a duration.
pub fn parse_millis(text: &str) -> Result<Duration, String> {
    let millis: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of milliseconds"))?;
    if !(0.0..=3_600_000.0).contains(&millis) {
        return Err(format!("{text:?} must be between 0 and 3600000 ms"));
    }
    Ok(Duration::from_secs_f64(millis / 1000.0))
}

/// Parses a probability in `[0, 1]`.
pub fn parse_probability(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{text:?} must be between 0 and 1"));
    }
    Ok(value)
}

/// The default impairment plus per-address overrides.
#[derive(Debug, Clone, Default)]
pub struct Impairments {
    /// For every address without an override.
    pub default: Impairment,
    /// Jitter distribution for all addresses.
    pub dist: JitterDist,
    /// Overrides by destination address.
    pub targets: HashMap<IpAddr, Impairment>,
}

impl Impairments {
    /// The impairment that applies to requests for `address`.
    pub fn for_address(&self, address: IpAddr) -> &Impairment {
        self.targets.get(&address).unwrap_or(&self.default)
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast, and reproducible across platforms.
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn seeded(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            state: [next(), next(), next(), next()],
            spare_normal: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller, both values used).
    pub fn next_normal(&mut self) -> f64 {
        if let Some(spare) = self.spare_normal.take() {
            return spare;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.next_f64()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.next_f64();
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_specs_parse_for_both_families() {
        let v4: TargetSpec = "198.19.0.3:50:2.5:0.1".parse().expect("valid");
        assert_eq!(v4.address, "198.19.0.3".parse::<IpAddr>().expect("ip"));
        assert_eq!(v4.impairment.delay, Duration::from_millis(50));
        assert_eq!(v4.impairment.jitter, Duration::from_micros(2500));
        assert_eq!(v4.impairment.loss, 0.1);
        let v6: TargetSpec = "fd00:198:19::3:10:0:0".parse().expect("valid");
        assert_eq!(v6.address, "fd00:198:19::3".parse::<IpAddr>().expect("ip"));
        let bracketed: TargetSpec = "[fd00::3]:10:0:0".parse().expect("valid");
        assert_eq!(bracketed.address, "fd00::3".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn malformed_target_specs_name_the_field() {
        let error = "198.19.0.3:50:0:1.5"
            .parse::<TargetSpec>()
            .expect_err("loss > 1");
        assert_eq!(error.reason, "loss: \"1.5\" must be between 0 and 1");
        let error = "198.19.0.3:x:0:0"
            .parse::<TargetSpec>()
            .expect_err("bad delay");
        assert_eq!(error.reason, "delay: \"x\" is not a number of milliseconds");
        let error = "198.19.0.3:5".parse::<TargetSpec>().expect_err("short");
        assert_eq!(error.reason, "too few fields");
    }

    #[test]
    fn same_seed_gives_same_fates() {
        let impairment = Impairment {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(2),
            loss: 0.3,
        };
        let draw = |seed| {
            let mut rng = Rng::seeded(seed);
            (0..100)
                .map(|_| impairment.sample(JitterDist::Normal, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn loss_and_jitter_follow_their_distributions() {
        let mut rng = Rng::seeded(1);
        let impairment = Impairment {
            delay: Duration::from_millis(25),
            jitter: Duration::from_millis(5),
            loss: 0.2,
        };
        let samples: Vec<Option<Duration>> = (0..20_000)
            .map(|_| impairment.sample(JitterDist::Uniform, &mut rng))
            .collect();
        let delivered: Vec<f64> = samples
            .iter()
            .flatten()
            .map(Duration::as_secs_f64)
            .collect();
        let loss = 1.0 - delivered.len() as f64 / samples.len() as f64;
        assert!((loss - 0.2).abs() < 0.015, "loss {loss}");
        assert!(delivered.iter().all(|d| (0.020..=0.030).contains(d)));
        let mean = delivered.iter().sum::<f64>() / delivered.len() as f64;
        let sd = (delivered.iter().map(|d| (d - mean).powi(2)).sum::<f64>()
            / delivered.len() as f64)
            .sqrt();
        assert!((mean - 0.025).abs() < 0.0002, "mean {mean}");
        // Uniform +-5 ms has standard deviation 5/sqrt(3) = 2.887 ms.
        assert!((sd - 0.002_887).abs() < 0.0001, "sd {sd}");

        let mut rng = Rng::seeded(2);
        let normal = Impairment {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(10),
            loss: 0.0,
        };
        let delays: Vec<f64> = (0..20_000)
            .filter_map(|_| normal.sample(JitterDist::Normal, &mut rng))
            .map(|d| d.as_secs_f64())
            .collect();
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        let sd =
            (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64).sqrt();
        assert!((mean - 0.1).abs() < 0.0005, "mean {mean}");
        assert!((sd - 0.01).abs() < 0.0003, "sd {sd}");
    }
}
