//! The key-value port: what the cache, rate limits, sessions, task state and locks need
//! from a store, with two adapters that pass the same conformance suite
//! (`tests/conformance.rs`):
//!
//! - [`memory::MemoryKv`], the embedded default of `celeriac dev` and the unit-test double;
//! - [`redis::RedisKv`], Redis single node, cluster or TLS (ElastiCache-compatible).
//!
//! Keys are plain strings; callers put `{hash tags}` in them where several keys must share
//! a slot. Every write takes an optional TTL, because in this system almost every key
//! should expire. Values are bytes, except sets of strings (index keys: cache tags, a
//! user's sessions); using a key as the other kind is [`KvError::Rejected`], as in Redis.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub mod memory;
pub mod redis;

pub use memory::MemoryKv;
pub use redis::RedisKv;

/// Why a key-value operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    /// The store cannot be reached or did not answer in time. Retrying later can help.
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error for this request (wrong type, bad script).
    /// Retrying the same request will fail the same way.
    #[error("key-value store refused the request: {0}")]
    Rejected(String),
}

impl KvError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<KvError> for celeriac_platform::Error {
    fn from(err: KvError) -> Self {
        match err {
            KvError::Unavailable(reason) => Self::Unavailable {
                component: "redis",
                reason,
            },
            KvError::Rejected(reason) => Self::internal(reason),
        }
    }
}

/// A key-value store with expiring keys.
#[async_trait]
pub trait KeyValue: Send + Sync + std::fmt::Debug {
    /// Which adapter this is (`memory`, `redis`, `redis-cluster`), for health and logs.
    fn adapter(&self) -> &'static str;

    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Sets `key`, replacing any value and TTL; `ttl: None` keeps it until deleted.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError>;

    /// Sets `key` only if it is absent; true when this call set it. The building block of
    /// locks and idempotency records.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvError>;

    /// Replaces `key` with `new` only if its current value is `expected` (`None`: absent),
    /// atomically. On a mismatch nothing is written and the current value comes back, so
    /// a caller can decide again without a second read: state machines (task records)
    /// keep their rules in Rust, one place, whichever adapter stores them.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Swap, KvError>;

    /// Removes `key`; true when it existed.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;

    /// Adds `by` to the integer at `key` (absent counts as 0) and returns the new value.
    /// A TTL given here is set only when the key has none, so a counter's window is
    /// fixed by its first increment.
    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, KvError>;

    /// Sets `key` only if it is present, replacing its value and TTL like [`Self::set`];
    /// true when this call set it. Updates a record without resurrecting one that was
    /// deleted in the meantime (a session logged out while it was being touched).
    async fn set_if_present(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvError>;

    /// The value of `key`, if present, with its TTL reset to `ttl` in the same step:
    /// sliding expiry in one round trip.
    async fn get_and_refresh(&self, key: &str, ttl: Duration) -> Result<Option<Vec<u8>>, KvError>;

    /// Adds `members` to the set at `key` (created if absent). The set's TTL becomes at
    /// least `ttl` and is never shortened, so a set that indexes other keys (a cache tag,
    /// a user's sessions) outlives each of them when given their TTL.
    async fn set_add(&self, key: &str, members: &[&str], ttl: Duration) -> Result<(), KvError>;

    /// The members of the set at `key`, in no particular order; empty when it is absent.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, KvError>;

    /// Removes `members` from the set at `key`; the set is gone once empty. Returns how
    /// many were members.
    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<usize, KvError>;

    /// The time `key` has left: `Ok(None)` when it is absent or never expires.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, KvError>;

    /// One round trip to the store.
    async fn ping(&self) -> Result<(), KvError>;
}

/// What [`KeyValue::compare_and_swap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was as expected and is now the new one.
    Swapped,
    /// It was not; this is what it is (`None`: absent).
    Current(Option<Vec<u8>>),
}

/// The store as handlers hold it.
pub type SharedKv = Arc<dyn KeyValue>;

/// Health probe for any key-value adapter.
#[derive(Debug, Clone)]
pub struct KvProbe(pub SharedKv);

#[async_trait]
impl celeriac_platform::health::Probe for KvProbe {
    fn adapter(&self) -> &'static str {
        self.0.adapter()
    }
    async fn check(&self) -> Result<(), celeriac_platform::health::ProbeError> {
        self.0
            .ping()
            .await
            .map_err(|e| celeriac_platform::health::ProbeError::from_message(e.to_string()))
    }
}
