//! The calendar's cached reads and their invalidation, over [`celeriac_cache`].
//!
//! The seed's keys map onto the cache's `{prefix}:{version}:{family}:{id}` layout with
//! prefix `calendar`, so each seed key gains only the version segment:
//!
//! | seed key | celeriac key | family |
//! |---|---|---|
//! | `calendar:events:{user_id}` | `calendar:v1:events:{user_id}` | `events` |
//! | `calendar:event:{user_id}:{event_id}` | `calendar:v1:event:{user_id}:{event_id}` | `event` |
//! | `calendar:user_calendars:{user_id}` | `calendar:v1:user_calendars:{user_id}` | `user_calendars` |
//!
//! The version segment cannot be dropped (it is how a change of the cached JSON's shape
//! ships), and it keeps the seed's names readable in `redis-cli`. The seed's
//! `calendar:sync_token:{user_id}` is not a cache entry here: it lives in the calendar
//! store (PostgreSQL), without expiry.

use std::time::Duration;

use celeriac_cache::{Cache, CacheConfig, CacheKey};
use celeriac_kv::SharedKv;

/// Key prefix of the calendar's entries.
pub const PREFIX: &str = "calendar";

/// The calendar's cache: the three key families and their TTL.
#[derive(Debug, Clone)]
pub struct CalendarCache {
    cache: Cache,
    ttl: Duration,
}

impl CalendarCache {
    /// Entries under `calendar:v1:` in `kv`, living `ttl`.
    pub fn new(kv: SharedKv, ttl: Duration) -> Self {
        Self::with_config(
            kv,
            CacheConfig {
                prefix: PREFIX.into(),
                ..CacheConfig::default()
            },
            ttl,
        )
    }

    /// Entries as `config` names them (tests use a prefix of their own).
    pub fn with_config(kv: SharedKv, config: CacheConfig, ttl: Duration) -> Self {
        Self {
            cache: Cache::new(kv, config),
            ttl,
        }
    }

    /// The cache itself, for lookups.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// How long entries live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// `calendar:events:{user_id}`.
    pub fn events_key(user_id: &str) -> CacheKey {
        CacheKey::new("events", user_id)
    }

    /// `calendar:event:{user_id}:{event_id}`.
    pub fn event_key(user_id: &str, event_id: &str) -> CacheKey {
        CacheKey::new("event", format!("{user_id}:{event_id}"))
    }

    /// `calendar:user_calendars:{user_id}`.
    pub fn calendars_key(user_id: &str) -> CacheKey {
        CacheKey::new("user_calendars", user_id)
    }

    /// Drops the user's event list, calendar list and each of `event_ids`; false when some
    /// deletion failed (logged by the cache; those entries may live out their TTL).
    pub async fn invalidate_user<'a>(
        &self,
        user_id: &str,
        event_ids: impl IntoIterator<Item = &'a String>,
    ) -> bool {
        let keys: Vec<CacheKey> = [Self::events_key(user_id), Self::calendars_key(user_id)]
            .into_iter()
            .chain(event_ids.into_iter().map(|id| Self::event_key(user_id, id)))
            .collect();
        let deletions = keys.iter().map(|key| self.cache.invalidate(key));
        futures::future::join_all(deletions)
            .await
            .into_iter()
            .all(|deleted| deleted)
    }
}
