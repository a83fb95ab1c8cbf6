//! The in-memory adapter: the embedded default of `celeriac dev`, with the same arithmetic
//! as the Redis scripts (whole microseconds, the same boundaries) under one lock.
//!
//! Counters live in one map; a counter whose key would have expired in Redis is treated
//! as absent and swept out every 1024 checks, so memory stays bounded by the
//! keys active within their windows.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::limit::gcra_interval;
use crate::{Algorithm, Decision, Limit, LimitError, LimitKey, RateLimiter};

/// Checks between two sweeps of expired counters.
const SWEEP_EVERY: u32 = 1024;

/// The in-memory adapter of [`RateLimiter`]. Counts for this process only.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    counters: HashMap<String, Counter>,
    checks_since_sweep: u32,
}

#[derive(Debug)]
struct Counter {
    /// When the Redis key would expire: past it, the counter is as good as absent.
    expires_at: Instant,
    kind: CounterKind,
}

#[derive(Debug)]
enum CounterKind {
    /// The theoretical arrival time of the next request.
    Gcra(Instant),
    /// When each admitted request in the window arrived, oldest first.
    Log(VecDeque<Instant>),
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent after any panic (every update is a single assignment).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    fn adapter(&self) -> &'static str {
        "memory"
    }

    async fn check(&self, limit: &Limit, key: &LimitKey) -> Result<Decision, LimitError> {
        limit.validate()?;
        let storage_key = limit.storage_key(key);
        let mut state = self.state();
        // Read the clock under the lock: decisions then happen in time order, as Redis
        // runs scripts one after another, and the log stays sorted.
        let now = Instant::now();
        state.checks_since_sweep += 1;
        if state.checks_since_sweep >= SWEEP_EVERY {
            state.checks_since_sweep = 0;
            state.counters.retain(|_, c| c.expires_at > now);
        }
        let live = state
            .counters
            .remove(&storage_key)
            .filter(|c| c.expires_at > now);
        let (decision, kept) = match limit.algorithm {
            Algorithm::Gcra {
                rate,
                period,
                burst,
            } => {
                let tat = match live {
                    Some(Counter {
                        kind: CounterKind::Gcra(tat),
                        ..
                    }) => Some(tat),
                    _ => None,
                };
                gcra(now, tat, gcra_interval(period, rate), burst)
            }
            Algorithm::SlidingLog { quota, window } => {
                let admitted = match live {
                    Some(Counter {
                        kind: CounterKind::Log(admitted),
                        ..
                    }) => admitted,
                    _ => VecDeque::new(),
                };
                sliding_log(now, admitted, quota, window)
            }
        };
        if let Some(counter) = kept {
            state.counters.insert(storage_key, counter);
        }
        Ok(decision)
    }

    async fn reset(&self, limit: &Limit, key: &LimitKey) -> Result<(), LimitError> {
        self.state().counters.remove(&limit.storage_key(key));
        Ok(())
    }
}

fn micros(d: Duration) -> u128 {
    d.as_micros()
}

/// GCRA as in the Redis script: `ahead` is how far the theoretical arrival time would run
/// ahead of now with this request; within `burst` intervals it is admitted.
fn gcra(
    now: Instant,
    tat: Option<Instant>,
    interval: Duration,
    burst: u32,
) -> (Decision, Option<Counter>) {
    let tolerance = interval.saturating_mul(burst);
    let previous = tat.map_or(Duration::ZERO, |tat| tat.saturating_duration_since(now));
    let ahead = previous + interval;
    if ahead > tolerance {
        let decision = Decision {
            allowed: false,
            limit: burst,
            remaining: 0,
            reset_after: previous,
            retry_after: ahead - tolerance,
        };
        // Unchanged: a denied request is not counted.
        let kept = tat.map(|tat| Counter {
            expires_at: tat,
            kind: CounterKind::Gcra(tat),
        });
        return (decision, kept);
    }
    let remaining = micros(tolerance - ahead) / micros(interval);
    let decision = Decision {
        allowed: true,
        limit: burst,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        reset_after: ahead,
        retry_after: Duration::ZERO,
    };
    let new_tat = now + ahead;
    (
        decision,
        Some(Counter {
            expires_at: new_tat,
            kind: CounterKind::Gcra(new_tat),
        }),
    )
}

/// The exact sliding log as in the Redis script: entries at or before `now - window` have
/// left the window; a request is admitted while fewer than `quota` remain.
fn sliding_log(
    now: Instant,
    mut admitted: VecDeque<Instant>,
    quota: u32,
    window: Duration,
) -> (Decision, Option<Counter>) {
    while admitted.front().is_some_and(|&at| at + window <= now) {
        admitted.pop_front();
    }
    let count = u32::try_from(admitted.len()).unwrap_or(u32::MAX);
    if count < quota {
        return admit(now, admitted, quota, window);
    }
    // Full, so not empty (a quota is at least 1).
    let oldest = admitted.front().copied().unwrap_or(now);
    let newest = admitted.back().copied().unwrap_or(now);
    let decision = Decision {
        allowed: false,
        limit: quota,
        remaining: 0,
        reset_after: (newest + window).saturating_duration_since(now),
        retry_after: (oldest + window).saturating_duration_since(now),
    };
    let expires_at = newest + window;
    (
        decision,
        Some(Counter {
            expires_at,
            kind: CounterKind::Log(admitted),
        }),
    )
}

fn admit(
    now: Instant,
    mut admitted: VecDeque<Instant>,
    quota: u32,
    window: Duration,
) -> (Decision, Option<Counter>) {
    admitted.push_back(now);
    let count = u32::try_from(admitted.len()).unwrap_or(u32::MAX);
    let decision = Decision {
        allowed: true,
        limit: quota,
        remaining: quota.saturating_sub(count),
        reset_after: window,
        retry_after: Duration::ZERO,
    };
    (
        decision,
        Some(Counter {
            expires_at: now + window,
            kind: CounterKind::Log(admitted),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn gcra_arithmetic_at_fixed_instants() {
        let t0 = Instant::now();
        let interval = 100 * MS;
        let mut tat = None;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (d, c) = gcra(t0, tat, interval, 3);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = c.map(|c| c.expires_at);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let (denied, kept) = gcra(t0, tat, interval, 3);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, interval);
        assert_eq!(denied.reset_after, 3 * interval);
        assert_eq!(kept.map(|c| c.expires_at), tat, "a denial changes nothing");
        // Exactly one interval later, exactly one more.
        let (d, c) = gcra(t0 + interval, tat, interval, 3);
        assert!(d.allowed && d.remaining == 0);
        let (d, _) = gcra(t0 + interval, c.map(|c| c.expires_at), interval, 3);
        assert!(!d.allowed);
    }

    #[test]
    fn sliding_log_boundaries_at_fixed_instants() {
        let t0 = Instant::now();
        let window = 1000 * MS;
        let mut log = VecDeque::new();
        for (i, at) in [0, 100, 200].into_iter().enumerate() {
            let (d, c) = sliding_log(t0 + at * MS, log, 3, window);
            assert!(d.allowed, "request {i}");
            let Some(Counter {
                kind: CounterKind::Log(next),
                ..
            }) = c
            else {
                panic!("a log")
            };
            log = next;
        }
        let (d, c) = sliding_log(t0 + 999 * MS, log, 3, window);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, MS);
        assert_eq!(d.reset_after, 201 * MS);
        let Some(Counter {
            kind: CounterKind::Log(log),
            ..
        }) = c
        else {
            panic!("a log")
        };
        // At t0 + window the first entry has left the window: one slot, no more.
        let (d, c) = sliding_log(t0 + window, log, 3, window);
        assert!(d.allowed && d.remaining == 0);
        let Some(Counter {
            kind: CounterKind::Log(log),
            ..
        }) = c
        else {
            panic!("a log")
        };
        assert!(!sliding_log(t0 + window, log, 3, window).0.allowed);
    }

    #[tokio::test]
    async fn expired_counters_are_swept() {
        let limiter = MemoryLimiter::new();
        let limit = Limit::sliding_log(
            "sweep",
            1,
            Duration::from_millis(1),
            crate::FailurePolicy::Open,
        );
        for i in 1..SWEEP_EVERY {
            limiter
                .check(&limit, &LimitKey::user(i))
                .await
                .expect("check");
        }
        assert_eq!(limiter.state().counters.len(), 1023);
        std::thread::sleep(Duration::from_millis(5));
        // The 1024th check sweeps the expired ones out before counting itself.
        limiter
            .check(&limit, &LimitKey::user("last"))
            .await
            .expect("check");
        assert_eq!(limiter.state().counters.len(), 1);
    }
}
