//! Applying a limit: a check plus the limit's failure policy, with the one mapping from
//! refusals to the platform's HTTP errors.
//!
//! A handler writes `enforce(&limiter, &LOGIN_PER_IP, &LimitKey::ip(ip)).await?;`: an
//! admitted request goes on, a limited one becomes 429 with `Retry-After`, and a limiter
//! that cannot be asked becomes 503 (fail-closed) or is let through and counted
//! (fail-open).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::{IntoResponse, Response};

use crate::{Decision, FailurePolicy, Limit, LimitError, LimitKey, RateLimiter};

/// Requests let through unchecked by fail-open limits since the process started.
static UNCHECKED: AtomicU64 = AtomicU64::new(0);

/// How many requests fail-open limits have let through unchecked in this process (each is
/// also logged at warn with the limit's name), for health pages and metrics.
pub fn unchecked_total() -> u64 {
    UNCHECKED.load(Ordering::Relaxed)
}

/// A request the limit lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted and admitted; the decision carries what the `RateLimit-*` headers say.
    Counted(Decision),
    /// The limiter could not be asked and the limit fails open.
    Unchecked,
}

/// A request the limit refuses. `?` turns it into [`celeriac_platform::Error`]; as a
/// response of its own it also carries the `RateLimit-*` headers.
#[derive(Debug)]
pub enum Refusal {
    /// Over the limit: 429 with `Retry-After`.
    Limited {
        /// The limit's name.
        limit: &'static str,
        /// The denial, with its retry time.
        decision: Decision,
    },
    /// The limiter could not be asked and the limit fails closed (503), or the limit is
    /// declared with unusable values (500, whatever its policy: that is a bug to see).
    Failed {
        /// The limit's name.
        limit: &'static str,
        /// Why.
        error: LimitError,
    },
}

/// Seconds for a header: rounded up, so a client that waits that long is not refused again.
pub(crate) fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl From<Refusal> for celeriac_platform::Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Limited { limit, decision } => Self::RateLimited {
                message: format!("rate limit {limit} exceeded"),
                retry_after_secs: whole_seconds(decision.retry_after).max(1),
                quota: Some((decision.limit, whole_seconds(decision.reset_after))),
            },
            Refusal::Failed {
                error: error @ LimitError::Invalid(_),
                ..
            } => Self::internal(error),
            Refusal::Failed { error, .. } => Self::Unavailable {
                component: "rate limiter",
                reason: error.to_string(),
            },
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let decision = match &self {
            Self::Limited { decision, .. } => Some(*decision),
            Self::Failed { .. } => None,
        };
        let mut response = celeriac_platform::Error::from(self).into_response();
        if let Some(decision) = decision {
            decision.write_headers(response.headers_mut());
        }
        response
    }
}

/// Checks `key` against `limit` and applies the limit's failure policy.
pub async fn enforce(
    limiter: &dyn RateLimiter,
    limit: &Limit,
    key: &LimitKey,
) -> Result<Admission, Refusal> {
    match limiter.check(limit, key).await {
        Ok(decision) if decision.allowed => Ok(Admission::Counted(decision)),
        Ok(decision) => {
            tracing::debug!(
                limit = limit.name,
                retry_after_ms =
                    u64::try_from(decision.retry_after.as_millis()).unwrap_or(u64::MAX),
                "rate limited"
            );
            Err(Refusal::Limited {
                limit: limit.name,
                decision,
            })
        }
        Err(error) => on_failure(limiter.adapter(), limit, error),
    }
}

/// What a request gets when `limit` could not be checked.
pub(crate) fn on_failure(
    adapter: &'static str,
    limit: &Limit,
    error: LimitError,
) -> Result<Admission, Refusal> {
    match (limit.on_failure, &error) {
        (_, LimitError::Invalid(_)) => {
            tracing::error!(limit = limit.name, error = %error, "rate limit declared with unusable values");
        }
        (FailurePolicy::Open, _) => {
            UNCHECKED.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                limit = limit.name,
                adapter,
                policy = "open",
                error = %error,
                "rate limiter failed; request admitted unchecked"
            );
            return Ok(Admission::Unchecked);
        }
        (FailurePolicy::Closed, _) => {
            tracing::warn!(
                limit = limit.name,
                adapter,
                policy = "closed",
                error = %error,
                "rate limiter failed; request refused"
            );
        }
    }
    Err(Refusal::Failed {
        limit: limit.name,
        error,
    })
}
