//! In-memory key-value store: the embedded default and the fast test double.
//!
//! Expiry is checked on every read, so an expired key is never returned; expired keys are
//! also swept every so often so a long `celeriac dev` session does not grow without bound.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{KeyValue, KvError, Swap};

/// How many writes between sweeps of expired keys.
const SWEEP_EVERY: u64 = 1024;

#[derive(Debug)]
enum Value {
    Bytes(Vec<u8>),
    Set(BTreeSet<String>),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Option<Instant>,
}

impl Entry {
    fn bytes(value: &[u8], expires_at: Option<Instant>) -> Self {
        Self {
            value: Value::Bytes(value.to_vec()),
            expires_at,
        }
    }

    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    fn as_bytes(&self) -> Result<&Vec<u8>, KvError> {
        match &self.value {
            Value::Bytes(bytes) => Ok(bytes),
            Value::Set(_) => Err(wrong_type()),
        }
    }
}

// Redis's own wording, so callers see the same message from either adapter.
fn wrong_type() -> KvError {
    KvError::Rejected("WRONGTYPE Operation against a key holding the wrong kind of value".into())
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
        match self.lock().live(key, now) {
            Some(entry) => Ok(Some(entry.as_bytes()?.clone())),
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner
            .entries
            .insert(key.to_owned(), Entry::bytes(value, deadline(now, ttl)));
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
        inner
            .entries
            .insert(key.to_owned(), Entry::bytes(value, deadline(now, ttl)));
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
        let current = match inner.live(key, now) {
            Some(entry) => Some(entry.as_bytes()?.as_slice()),
            None => None,
        };
        if current != expected {
            return Ok(Swap::Current(current.map(<[u8]>::to_vec)));
        }
        inner
            .entries
            .insert(key.to_owned(), Entry::bytes(new, deadline(now, ttl)));
        inner.wrote(now);
        Ok(Swap::Swapped)
    }

    async fn set_if_present(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entry) = inner.live(key, now) else {
            return Ok(false);
        };
        *entry = Entry::bytes(value, deadline(now, ttl));
        inner.wrote(now);
        Ok(true)
    }

    async fn get_and_refresh(&self, key: &str, ttl: Duration) -> Result<Option<Vec<u8>>, KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entry) = inner.live(key, now) else {
            return Ok(None);
        };
        let value = entry.as_bytes()?.clone();
        entry.expires_at = Some(now + ttl);
        Ok(Some(value))
    }

    async fn set_add(&self, key: &str, members: &[&str], ttl: Duration) -> Result<(), KvError> {
        // Redis does not create an empty set, and an empty SADD changes nothing.
        if members.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let at_least = now + ttl;
        let mut inner = self.lock();
        match inner.live(key, now) {
            Some(entry) => {
                let Value::Set(set) = &mut entry.value else {
                    return Err(wrong_type());
                };
                set.extend(members.iter().map(|m| (*m).to_owned()));
                // Never shortened; a set that had no expiry gets one, as PEXPIRE NX does.
                entry.expires_at = Some(entry.expires_at.map_or(at_least, |at| at.max(at_least)));
            }
            None => {
                inner.entries.insert(
                    key.to_owned(),
                    Entry {
                        value: Value::Set(members.iter().map(|m| (*m).to_owned()).collect()),
                        expires_at: Some(at_least),
                    },
                );
            }
        }
        inner.wrote(now);
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, KvError> {
        let now = Instant::now();
        match self.lock().live(key, now) {
            Some(Entry {
                value: Value::Set(set),
                ..
            }) => Ok(set.iter().cloned().collect()),
            Some(_) => Err(wrong_type()),
            None => Ok(Vec::new()),
        }
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<usize, KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let (removed, now_empty) = match inner.live(key, now) {
            Some(Entry {
                value: Value::Set(set),
                ..
            }) => {
                let removed = members.iter().filter(|m| set.remove(**m)).count();
                (removed, set.is_empty())
            }
            Some(_) => return Err(wrong_type()),
            None => return Ok(0),
        };
        if now_empty {
            inner.entries.remove(key);
        }
        Ok(removed)
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
                let current: i64 = std::str::from_utf8(entry.as_bytes()?)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        KvError::Rejected("value is not an integer or out of range".into())
                    })?;
                let next = current.checked_add(by).ok_or_else(|| {
                    KvError::Rejected("increment or decrement would overflow".into())
                })?;
                entry.value = Value::Bytes(next.to_string().into_bytes());
                if entry.expires_at.is_none() {
                    entry.expires_at = deadline(now, ttl);
                }
                next
            }
            None => {
                inner.entries.insert(
                    key.to_owned(),
                    Entry::bytes(by.to_string().as_bytes(), deadline(now, ttl)),
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
