//! Rate limits: the [`RateLimiter`] port and its two adapters, which pass one conformance
//! suite (`tests/conformance.rs`):
//!
//! - [`RedisLimiter`], over the shared [`celeriac_kv::RedisKv`] connection (single node,
//!   cluster, TLS): each check is one Lua script, one round trip, one key;
//! - [`MemoryLimiter`], the embedded default of `celeriac dev`, the same arithmetic under a
//!   lock.
//!
//! Two algorithms ([`Algorithm`]): GCRA for rates with bursts ("100 an hour per IP, 20 at
//! once") and an exact sliding log for quotas that must never be exceeded in any window
//! ("10 generations an hour per user"). A [`Limit`] is a value naming its algorithm and its
//! [`FailurePolicy`]; a [`LimitKey`] says whose requests it counts.
//!
//! Handlers apply a limit with [`enforce`] (`?` turns a refusal into the platform's 429 or
//! 503), or routes get it from [`RateLimitLayer`], which also sets the `RateLimit-*`
//! headers. [`client_ip`] finds the caller's address without trusting any header.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub mod enforcement;
pub mod http;
pub mod limit;
pub mod memory;
pub mod redis;

pub use enforcement::{Admission, Refusal, enforce, unchecked_total};
pub use http::{ClientIp, KeyBy, RateLimitLayer, RateLimitService, client_ip};
pub use limit::{Algorithm, FailurePolicy, Limit, LimitKey};
pub use memory::MemoryLimiter;
pub use redis::RedisLimiter;

/// The outcome of one check: whether the request is admitted, and what a client needs to
/// pace itself (the `RateLimit-*` and `Retry-After` headers are made from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether this request is admitted (and was counted).
    pub allowed: bool,
    /// The most requests the key can be granted at once: the GCRA burst or the quota.
    pub limit: u32,
    /// Requests the key can still make right now, after this one.
    pub remaining: u32,
    /// Time until the key is back to its full `limit` if it makes no more requests.
    pub reset_after: Duration,
    /// Time until the next request can be admitted: zero when this one was.
    pub retry_after: Duration,
}

/// Why a check could not be made. A failed check is never a denial: what the request gets
/// then is the limit's [`FailurePolicy`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// The store is down, or slower than the limiter's timeout. Retrying later can help.
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request (a script error, a key of the wrong type).
    #[error("rate limiter store refused the request: {0}")]
    Rejected(String),
    /// The limit is declared with values no adapter can count (see [`Limit::validate`]).
    #[error("invalid rate limit: {0}")]
    Invalid(String),
}

impl LimitError {
    /// Whether the same check can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<celeriac_kv::KvError> for LimitError {
    fn from(err: celeriac_kv::KvError) -> Self {
        match err {
            celeriac_kv::KvError::Unavailable(reason) => Self::Unavailable(reason),
            celeriac_kv::KvError::Rejected(reason) => Self::Rejected(reason),
        }
    }
}

/// Counts requests against limits.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Which adapter this is (`memory`, `redis`, `redis-cluster`), for logs.
    fn adapter(&self) -> &'static str;

    /// Counts one request of `key` against `limit` if it is admitted, and says whether it
    /// is. A denied request is not counted, so a client that keeps knocking is not locked
    /// out any longer than one that waits.
    async fn check(&self, limit: &Limit, key: &LimitKey) -> Result<Decision, LimitError>;

    /// Forgets what `key` has used of `limit` (an operator lifting a lockout, or a flow
    /// that clears failed attempts once it succeeds).
    async fn reset(&self, limit: &Limit, key: &LimitKey) -> Result<(), LimitError>;
}

/// The limiter as handlers and layers hold it.
pub type SharedLimiter = Arc<dyn RateLimiter>;
