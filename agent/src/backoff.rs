//! Jittered exponential backoff for reconnects, so a fleet of agents that lost the aggregator
//! at the same moment does not reconnect in lockstep.

use std::time::Duration;

use rand::Rng;

/// Why a backoff could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    /// Occurs when the minimum is zero or larger than the maximum.
    #[error("backoff minimum must be non-zero and not above the maximum ({min:?} > {max:?})")]
    Invalid {
        /// The minimum given.
        min: Duration,
        /// The maximum given.
        max: Duration,
    },
}

/// Delays of `min · 2ⁿ` capped at `max`, each drawn uniformly from its upper half
/// ("equal jitter"), so the wait is never less than half the nominal delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 0.5 s doubling to 30 s.
    fn default() -> Self {
        Self {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
            attempt: 0,
        }
    }
}

impl Backoff {
    /// A backoff from `min` to `max`.
    ///
    /// # Errors
    /// [`BackoffError::Invalid`] when `min` is zero or above `max`.
    pub fn new(min: Duration, max: Duration) -> Result<Self, BackoffError> {
        if min.is_zero() || min > max {
            return Err(BackoffError::Invalid { min, max });
        }
        Ok(Self {
            min,
            max,
            attempt: 0,
        })
    }

    /// The next delay; each call doubles the nominal delay up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self
            .min
            .checked_mul(2_u32.saturating_pow(self.attempt))
            .map_or(self.max, |d| d.min(self.max));
        self.attempt = self.attempt.saturating_add(1);
        let half = nominal / 2;
        let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=jitter_ns))
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_within_bounds_and_reset() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(min, max).unwrap();
        let mut nominal = min;
        for _ in 0..64 {
            let d = b.next_delay();
            assert!(
                d >= nominal / 2 && d <= nominal,
                "{d:?} outside [{:?}, {nominal:?}]",
                nominal / 2
            );
            nominal = (nominal * 2).min(max);
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn zero_or_inverted_bounds_are_rejected() {
        assert!(Backoff::new(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(Backoff::new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
    }
}
