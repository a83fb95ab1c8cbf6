//! Retry delays: exponential backoff with full jitter, with Celery's defaults.
//!
//! Full jitter (a uniform draw between zero and the exponential bound) spreads the retries
//! of many tasks that failed together, so a dependency that recovers is not hit by all of
//! them at the same instant.

use std::time::Duration;

/// How long to wait before retry number `n` (1 for the first retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The bound for the first retry (Celery: 1 s).
    pub base: Duration,
    /// No delay exceeds this (Celery's `retry_backoff_max`: 600 s).
    pub cap: Duration,
    /// Whether to draw uniformly below the bound (true) or wait the bound exactly.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The upper bound for retry `n`: `min(cap, base * 2^(n-1))`.
    pub fn bound(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay for retry `n`.
    pub fn delay(&self, retry: u32) -> Duration {
        let bound = self.bound(retry);
        if !self.jitter || bound.is_zero() {
            return bound;
        }
        let millis = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_double_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.bound(1), Duration::from_secs(1));
        assert_eq!(b.bound(2), Duration::from_secs(2));
        assert_eq!(b.bound(4), Duration::from_secs(8));
        assert_eq!(b.bound(10), Duration::from_secs(512));
        assert_eq!(b.bound(11), Duration::from_secs(600));
        assert_eq!(b.bound(200), Duration::from_secs(600));
    }

    #[test]
    fn full_jitter_stays_within_the_bound_and_varies() {
        let b = Backoff::default();
        let draws: Vec<Duration> = (0..200).map(|_| b.delay(5)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(16)));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(
            distinct.len() > 50,
            "jitter should spread delays, got {}",
            distinct.len()
        );
    }
}
