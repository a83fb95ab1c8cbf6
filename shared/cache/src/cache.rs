//! The cache itself: lookups with the refresh lock, writes behind tag sets, and the
//! guard that turns every store failure into a counted, logged miss (see the crate doc).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use celeriac_kv::{KvError, SharedKv};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::headers;
use crate::key::CacheKey;
use crate::stats::{CacheStats, Counters, Outcome};

/// First pause of a caller waiting for another's fill; doubled up to [`LAST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LAST_PAUSE: Duration = Duration::from_millis(100);

/// Family under which failures of [`Cache::invalidate_tag`] are counted.
const TAG_FAMILY: &str = "tag";

/// How a [`Cache`] names and guards its entries.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// First segment of every key (`cache`; the academy uses `aikademiya`).
    pub prefix: String,
    /// Second segment; change it to abandon every entry written before (`v1`).
    pub version: String,
    /// Bound on each store call; a slower answer is a miss (100 ms).
    pub timeout: Duration,
    /// How long past its TTL an entry may still be served while one caller refreshes it
    /// (60 s).
    pub stale_for: Duration,
    /// Lifetime of the refresh lock, and the longest a caller waits for another's fill
    /// before computing itself (10 s). Set it above the slowest expected compute.
    pub refresh_lock: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            prefix: "cache".into(),
            version: "v1".into(),
            timeout: Duration::from_millis(100),
            stale_for: Duration::from_secs(60),
            refresh_lock: Duration::from_secs(10),
        }
    }
}

/// A cache over a key-value store; cheap to clone (clones share counters).
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    kv: SharedKv,
    config: CacheConfig,
    counters: Counters,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("adapter", &self.inner.kv.adapter())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// An entry as stored: the value and when it stops being fresh. Short field names because
/// every entry carries them.
#[derive(Serialize)]
struct StoredRef<'a, T> {
    #[serde(rename = "f")]
    fresh_until_ms: u64,
    #[serde(rename = "v")]
    value: &'a T,
}

#[derive(Deserialize)]
struct Stored<T> {
    #[serde(rename = "f")]
    fresh_until_ms: u64,
    #[serde(rename = "v")]
    value: T,
}

/// What a read found.
enum Lookup<T> {
    Fresh(T),
    Stale(T),
    Absent,
    /// The store failed or timed out (already logged and counted).
    Unavailable,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Cache {
    /// A cache over `kv`.
    pub fn new(kv: SharedKv, config: CacheConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                kv,
                config,
                counters: Counters::default(),
            }),
        }
    }

    /// The value at `key`, or `compute`'s, stored for `ttl` (cache-aside). `compute` runs
    /// on a miss, when the entry is stale and this caller won the refresh, and whenever the
    /// store fails; its error is returned as is and nothing is stored. Store failures are
    /// never returned.
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Duration,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let entry = self.entry_key(key);
        match self.lookup::<T>(key, &entry).await {
            Lookup::Fresh(value) => return Ok(self.hit(key, value)),
            // A store that just failed is not asked again for a lock or a write.
            Lookup::Unavailable => return self.miss(key, compute).await,
            Lookup::Stale(stale) => {
                return match self.lock(key).await {
                    Some(locked_at) => self.fill(key, &entry, ttl, compute, Some(locked_at)).await,
                    // Someone else is refreshing (or the lock failed): stale is good enough.
                    None => Ok(self.hit(key, stale)),
                };
            }
            Lookup::Absent => {}
        }

        let waiting_since = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            match self.try_lock(key).await {
                Some(true) => {
                    return self
                        .fill(key, &entry, ttl, compute, Some(Instant::now()))
                        .await;
                }
                Some(false) => {}
                None => return self.miss(key, compute).await,
            }
            if waiting_since.elapsed() >= self.inner.config.refresh_lock {
                tracing::warn!(
                    family = key.family,
                    key = %entry,
                    waited_ms = waiting_since.elapsed().as_millis(),
                    "cache fill by another caller did not land; computing here"
                );
                return self.fill(key, &entry, ttl, compute, None).await;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_PAUSE);
            match self.lookup::<T>(key, &entry).await {
                Lookup::Fresh(value) | Lookup::Stale(value) => return Ok(self.hit(key, value)),
                Lookup::Absent => {}
                Lookup::Unavailable => return self.miss(key, compute).await,
            }
        }
    }

    /// The fresh value at `key`, if there is one: for values that only a writer elsewhere
    /// can produce (a task's result), where computing on a miss is not the reader's job.
    /// A stale entry, an undecodable one and a store failure are all a miss.
    pub async fn get<T: DeserializeOwned>(&self, key: &CacheKey) -> Option<T> {
        let entry = self.entry_key(key);
        match self.lookup::<T>(key, &entry).await {
            Lookup::Fresh(value) => Some(self.hit(key, value)),
            Lookup::Stale(_) | Lookup::Absent | Lookup::Unavailable => {
                self.count_miss(key);
                None
            }
        }
    }

    /// Stores `value` at `key` for `ttl`, replacing what was there (write-through after
    /// the source changed). False when the store failed (logged and counted); the old
    /// entry, if any, may then live until its TTL.
    pub async fn put<T: Serialize>(&self, key: &CacheKey, value: &T, ttl: Duration) -> bool {
        let entry = self.entry_key(key);
        self.store(key, &entry, value, ttl).await
    }

    /// Removes the entry at `key`. False when the store failed (logged and counted).
    pub async fn invalidate(&self, key: &CacheKey) -> bool {
        let entry = self.entry_key(key);
        self.guard(key.family, "delete", &entry, self.inner.kv.delete(&entry))
            .await
            .is_some()
    }

    /// Removes every entry stored with `tag`. False when the store failed for some of them
    /// (logged and counted under the family `tag`); those stay in the tag set, so calling
    /// again finishes the job.
    pub async fn invalidate_tag(&self, tag: &str) -> bool {
        let tag_key = self.tag_key(tag);
        let kv = &self.inner.kv;
        let Some(members) = self
            .guard(
                TAG_FAMILY,
                "set_members",
                &tag_key,
                kv.set_members(&tag_key),
            )
            .await
        else {
            return false;
        };
        // One command per key: members live in any slot of a cluster.
        let deletions = members.iter().map(|member| async move {
            self.guard(TAG_FAMILY, "delete", member, kv.delete(member))
                .await
                .map(|_| member.as_str())
        });
        let results = futures::future::join_all(deletions).await;
        let deleted: Vec<&str> = results.iter().filter_map(|r| *r).collect();
        let removed = self
            .guard(
                TAG_FAMILY,
                "set_remove",
                &tag_key,
                kv.set_remove(&tag_key, &deleted),
            )
            .await
            .is_some();
        tracing::debug!(tag, entries = deleted.len(), "cache tag invalidated");
        removed && deleted.len() == members.len()
    }

    /// Hit, miss and error counts per family since this cache was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    fn entry_key(&self, key: &CacheKey) -> String {
        let c = &self.inner.config;
        format!("{}:{}:{}:{}", c.prefix, c.version, key.family, key.id)
    }

    fn lock_key(&self, key: &CacheKey) -> String {
        let c = &self.inner.config;
        format!("{}:{}:lock:{}:{}", c.prefix, c.version, key.family, key.id)
    }

    fn tag_key(&self, tag: &str) -> String {
        let c = &self.inner.config;
        format!("{}:{}:tag:{tag}", c.prefix, c.version)
    }

    fn hit<T>(&self, key: &CacheKey, value: T) -> T {
        self.inner.counters.count(key.family, Outcome::Hit);
        headers::tally(true);
        value
    }

    /// Computes without touching the store (it has just failed).
    async fn miss<T, E, F, Fut>(&self, key: &CacheKey, compute: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.count_miss(key);
        compute().await
    }

    fn count_miss(&self, key: &CacheKey) {
        self.inner.counters.count(key.family, Outcome::Miss);
        headers::tally(false);
    }

    async fn lookup<T: DeserializeOwned>(&self, key: &CacheKey, entry: &str) -> Lookup<T> {
        let Some(found) = self
            .guard(key.family, "get", entry, self.inner.kv.get(entry))
            .await
        else {
            return Lookup::Unavailable;
        };
        let Some(bytes) = found else {
            return Lookup::Absent;
        };
        match serde_json::from_slice::<Stored<T>>(&bytes) {
            Ok(stored) if stored.fresh_until_ms > unix_ms(SystemTime::now()) => {
                Lookup::Fresh(stored.value)
            }
            Ok(stored) => Lookup::Stale(stored.value),
            Err(err) => {
                // Written by a build with another shape of T: recompute and overwrite.
                tracing::warn!(family = key.family, key = %entry, error = %err, "cache entry does not decode; treated as a miss");
                self.inner.counters.count(key.family, Outcome::Error);
                Lookup::Absent
            }
        }
    }

    /// `Some(true)` when this caller now holds the refresh lock, `None` when the store failed.
    async fn try_lock(&self, key: &CacheKey) -> Option<bool> {
        let lock = self.lock_key(key);
        self.guard(
            key.family,
            "lock",
            &lock,
            self.inner
                .kv
                .set_if_absent(&lock, b"1", Some(self.inner.config.refresh_lock)),
        )
        .await
    }

    /// When this caller took the refresh lock, if it did.
    async fn lock(&self, key: &CacheKey) -> Option<Instant> {
        let asked_at = Instant::now();
        (self.try_lock(key).await == Some(true)).then_some(asked_at)
    }

    /// Computes as the lock holder (or after giving up on one), stores a success, and
    /// releases the lock.
    async fn fill<T, E, F, Fut>(
        &self,
        key: &CacheKey,
        entry: &str,
        ttl: Duration,
        compute: F,
        locked_at: Option<Instant>,
    ) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.count_miss(key);
        let result = compute().await;
        if let Ok(value) = &result {
            self.store(key, entry, value, ttl).await;
        }
        // Past its lifetime the lock may be someone else's by now; it expires on its own.
        if let Some(locked_at) = locked_at
            && locked_at.elapsed() < self.inner.config.refresh_lock
        {
            let lock = self.lock_key(key);
            self.guard(key.family, "unlock", &lock, self.inner.kv.delete(&lock))
                .await;
        }
        result
    }

    async fn store<T: Serialize>(
        &self,
        key: &CacheKey,
        entry: &str,
        value: &T,
        ttl: Duration,
    ) -> bool {
        let config = &self.inner.config;
        let stored = StoredRef {
            fresh_until_ms: unix_ms(SystemTime::now() + ttl),
            value,
        };
        let bytes = match serde_json::to_vec(&stored) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(family = key.family, key = %entry, error = %err, "cache value does not serialize; not stored");
                self.inner.counters.count(key.family, Outcome::Error);
                return false;
            }
        };
        let keep_for = ttl + config.stale_for;
        let kv = &self.inner.kv;
        // Tags first: an entry is written only once every tag can find it.
        let tagging = key.tags.iter().map(|tag| async move {
            let tag_key = self.tag_key(tag);
            self.guard(
                key.family,
                "tag",
                &tag_key,
                kv.set_add(&tag_key, &[entry], keep_for),
            )
            .await
            .is_some()
        });
        if !futures::future::join_all(tagging)
            .await
            .into_iter()
            .all(|tagged| tagged)
        {
            return false;
        }
        self.guard(
            key.family,
            "set",
            entry,
            kv.set(entry, &bytes, Some(keep_for)),
        )
        .await
        .is_some()
    }

    /// Runs one store call within the timeout; a failure is logged, counted and `None`.
    async fn guard<T>(
        &self,
        family: &'static str,
        operation: &'static str,
        key: &str,
        call: impl Future<Output = Result<T, KvError>>,
    ) -> Option<T> {
        let timeout = self.inner.config.timeout;
        let error = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {} ms", timeout.as_millis()),
        };
        tracing::warn!(
            family,
            operation,
            key,
            adapter = self.inner.kv.adapter(),
            error,
            "cache store failed; treated as a miss"
        );
        self.inner.counters.count(family, Outcome::Error);
        None
    }
}
