//! Exponential backoff with jitter for export retries: the wait doubles from `initial` up to
//! `max`, and each wait is drawn from its upper half so exporters that failed together do not
//! retry together.

use std::time::Duration;

/// The waits between attempts of one delivery.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial`, never waits longer than `max` (raised to `initial` if below it).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// Failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self
            .initial
            .checked_mul(2_u32.saturating_pow(self.attempt))
            .unwrap_or(self.max)
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::random_range(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_within_jitter_and_stop_at_the_maximum() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for (i, ceiling) in ceilings.into_iter().enumerate() {
            let w = b.next_wait().as_millis();
            assert!(
                (ceiling / 2..=ceiling).contains(&w),
                "attempt {i}: {w} ms outside {}..={ceiling}",
                ceiling / 2
            );
        }
        assert_eq!(b.attempts(), 7);
        for _ in 0..100 {
            assert!(b.next_wait() <= Duration::from_secs(1));
        }
    }
}
