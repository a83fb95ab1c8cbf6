//! In-memory key-value store: the embedded default and the fast test double.
//!
//! Expiry is checked on every read, so an expired key is never returned; expired keys are
//! also swept every so often so a long `celeriac dev` session does not grow without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{KeyValue, KvError, Swap};

/// How many writes between sweeps of expired keys.
const SWEEP_EVERY: u64 = 1024;

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    writes: u64,
}

impl Inner {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| !e.live(now)) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn wrote(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.entries.retain(|_, e| e.live(now));
        }
    }
}

/// A process-local store with the same semantics as the Redis adapter.
#[derive(Debug, Default)]
pub struct MemoryKv {
    inner: Mutex<Inner>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave an entry half-written (every update
        // is a single map operation), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn deadline(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|t| now + t)
}

#[async_trait]
impl KeyValue for MemoryKv {
    fn adapter(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let now = Instant::now();
        Ok(self.lock().live(key, now).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                expires_at: deadline(now, ttl),
            },
        );
        inner.wrote(now);
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.live(key, now).is_some() {
            return Ok(false);
        }
        inner.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                expires_at: deadline(now, ttl),
            },
        );
        inner.wrote(now);
        Ok(true)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Swap, KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let current = inner.live(key, now).map(|e| e.value.as_slice());
        if current != expected {
            return Ok(Swap::Current(current.map(<[u8]>::to_vec)));
        }
        inner.entries.insert(
            key.to_owned(),
            Entry {
                value: new.to_vec(),
                expires_at: deadline(now, ttl),
            },
        );
        inner.wrote(now);
        Ok(Swap::Swapped)
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let existed = inner.live(key, now).is_some();
        inner.entries.remove(key);
        Ok(existed)
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let next = match inner.live(key, now) {
            Some(entry) => {
                let current: i64 = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        KvError::Rejected("value is not an integer or out of range".into())
                    })?;
                let next = current.checked_add(by).ok_or_else(|| {
                    KvError::Rejected("increment or decrement would overflow".into())
                })?;
                entry.value = next.to_string().into_bytes();
                if entry.expires_at.is_none() {
                    entry.expires_at = deadline(now, ttl);
                }
                next
            }
            None => {
                inner.entries.insert(
                    key.to_owned(),
                    Entry {
                        value: by.to_string().into_bytes(),
                        expires_at: deadline(now, ttl),
                    },
                );
                by
            }
        };
        inner.wrote(now);
        Ok(next)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, KvError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .live(key, now)
            .and_then(|e| e.expires_at)
            .map(|at| at.saturating_duration_since(now)))
    }

    async fn ping(&self) -> Result<(), KvError> {
        Ok(())
    }
}
