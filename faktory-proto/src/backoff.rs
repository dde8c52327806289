//! Reconnect backoff and a small seeded random number generator.
//!
//! Both are deterministic: the caller passes the seed, so machines driven with virtual time replay
//! exactly. Adapters seed from whatever they like (time, address of a local, a counter).

use std::time::Duration;

/// SplitMix64: a tiny, fast, seedable generator (not cryptographic) for jitter and weighted choices.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..bound` (0 when `bound` is 0), without modulo bias worth mentioning for
    /// the small bounds used here (Lemire's multiply-shift).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How reconnect delays grow.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// The growth factor per attempt.
    pub multiplier: f64,
    /// Fraction of each delay that is randomised, `0.0..=1.0` (0.5: the delay is uniform in
    /// `[d/2, d]`).
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(15),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

/// Exponential backoff with jitter, capped; [`Backoff::reset`] after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// A backoff with `config`, jitter drawn from `seed`.
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            config,
            attempt: 0,
            rng: SplitMix64::new(seed),
        }
    }

    /// The delay before the next attempt; grows with each call until [`Backoff::reset`].
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .config
            .multiplier
            .max(1.0)
            .powi(self.attempt.min(64) as i32);
        let base = self.config.initial.as_secs_f64() * exp;
        let capped = base.min(self.config.max.as_secs_f64()).max(0.0);
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        let delay = capped * (1.0 - jitter * self.rng.next_f64());
        self.attempt = self.attempt.saturating_add(1);
        // `Duration::MAX` as seconds rounds up to 2^64, which `from_secs_f64` refuses (a panic).
        Duration::try_from_secs_f64(delay).unwrap_or(self.config.max)
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial delay (call after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let cfg = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
            jitter: 0.5,
        };
        let mut b = Backoff::new(cfg, 7);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let nominal = (0.1 * 2f64.powi(i as i32)).min(2.0);
            assert!(d.as_secs_f64() <= nominal + 1e-9, "{i}: {d:?}");
            assert!(d.as_secs_f64() >= nominal / 2.0 - 1e-9, "{i}: {d:?}");
        }
        assert!(delays[9] > delays[0] * 4);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn the_largest_durations_do_not_panic() {
        let cfg = BackoffConfig {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: f64::MAX,
            jitter: 0.0,
        };
        let mut b = Backoff::new(cfg, 1);
        for _ in 0..3 {
            assert_eq!(b.next_delay(), Duration::MAX);
        }
    }

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(30) < 30);
            let f = a.next_f64();
            assert!((0.0..1.0).contains(&f));
            b.below(30);
            b.next_f64();
        }
        assert_eq!(SplitMix64::new(1).below(0), 0);
    }
}
